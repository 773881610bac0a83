//! Cold starts through a minimal Lambda Runtime API emulator: for each
//! function, the time from exec to its first `GET /invocation/next` (what
//! Lambda reports as Init Duration) and to its first answer, over repeated
//! cold starts, then the same process's second (warm) invocation, what
//! Lambda bills, and the peak RSS of both. Our functions, a hello-world Rust Lambda
//! and Node.js 20 functions doing the same jobs run round-robin in one run, so
//! ratios compare like with like on a noisy machine.
//!
//!     VISITPAY_BENCH_AWS_ENDPOINT=http://127.0.0.1:PORT \
//!     cold-start --bin-dir target/release --node-dir bench/node --runs 20 [--out FILE.json]
//!
//! Every function does its real first job against moto and the Stripe
//! emulator (assign creates an action, checkout opens a session, the consumer
//! marks an action paid...); a wrong answer fails the benchmark.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;
use visitpay_app::actions;
use visitpay_app::ports::Payments;
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::tables;
use visitpay_bench::{BoxError, Summary, ACCOUNT, CLINIC, PATIENT, PATIENT_LINK_BASE, STRIPE_KEY, WEBHOOK_SECRET};
use visitpay_devkit::setup::ensure_queue;
use visitpay_domain::ActionStatus;
use visitpay_stripe::StripePayments;

type Answer = (Instant, Result<Value, String>);

/// The invocations waiting for the process under test: its cold one, then
/// a warm one (a fresh job of the same kind).
#[derive(Default)]
struct Pending {
    events: VecDeque<Value>,
    served_at: Vec<Instant>,
    answers: Vec<Answer>,
}

#[derive(Clone, Default)]
struct RuntimeApi {
    pending: Arc<Mutex<Pending>>,
    answered: Arc<Notify>,
}

const REQUEST_IDS: [&str; 2] = ["bench-request-0001", "bench-request-0002"];

async fn next(State(api): State<RuntimeApi>) -> axum::response::Response {
    let served = {
        let mut p = api.pending.lock().unwrap();
        p.events.pop_front().map(|event| {
            p.served_at.push(Instant::now());
            (event, p.served_at.len() - 1)
        })
    };
    let Some((event, n)) = served else {
        // A process asking for more than it was given waits here until it is killed.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000 + 30_000).to_string();
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static(REQUEST_IDS[n.min(1)]));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline).unwrap());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:bench"),
    );
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, event.to_string()).into_response()
}

fn finish(api: &RuntimeApi, answer: Result<Value, String>) -> StatusCode {
    api.pending.lock().unwrap().answers.push((Instant::now(), answer));
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(State(api): State<RuntimeApi>, Path(_id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    finish(&api, Ok(value))
}

async fn error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    finish(&api, Err(body))
}

async fn invocation_error(State(api): State<RuntimeApi>, Path(_id): Path<String>, body: String) -> StatusCode {
    finish(&api, Err(body))
}

struct Sample {
    init_ms: f64,
    first_answer_ms: f64,
    /// The second invocation, from its `next` to its answer: what Lambda
    /// bills a warm invocation (rounded up to the millisecond).
    warm_ms: f64,
    /// After both answers.
    peak_rss_kb: f64,
}

fn peak_rss_kb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// One function under test: how to start it, and its answer's check.
struct Subject {
    name: &'static str,
    kind: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The Node.js function doing the same job (for ours/Node).
    node_peer: Option<&'static str>,
    expect: fn(&Value) -> bool,
}

fn http_status(v: &Value) -> Option<u64> {
    v.get("statusCode").and_then(Value::as_u64)
}

fn ok_2xx(v: &Value) -> bool {
    http_status(v).is_some_and(|s| (200..300).contains(&s))
}

fn created(v: &Value) -> bool {
    http_status(v) == Some(201)
}

fn no_batch_failures(v: &Value) -> bool {
    v.get("batchItemFailures").and_then(Value::as_array).is_some_and(Vec::is_empty)
}

fn any_answer(_: &Value) -> bool {
    true
}

/// Waits for the process's `n`-th answer (1-based).
async fn answers(api: &RuntimeApi, n: usize) -> Vec<Answer> {
    loop {
        let answered = api.answered.notified();
        {
            let p = api.pending.lock().unwrap();
            if p.answers.len() >= n {
                return p.answers.clone();
            }
        }
        answered.await;
    }
}

async fn cold_start(
    api: &RuntimeApi,
    subject: &Subject,
    base_env: &[(String, String)],
    (cold, warm): (Value, Value),
    stderr: &std::path::Path,
) -> Result<Sample, BoxError> {
    *api.pending.lock().unwrap() = Pending { events: VecDeque::from([cold, warm]), ..Default::default() };
    let log = std::fs::OpenOptions::new().create(true).append(true).open(stderr)?;
    let mut command = tokio::process::Command::new(&subject.program);
    command
        .args(&subject.args)
        .env_clear()
        .envs(base_env.iter().cloned())
        .envs(subject.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{}: {e}", subject.program.display()))?;
    let pid = child.id().unwrap_or(0);
    let outcome = tokio::select! {
        answers = tokio::time::timeout(Duration::from_secs(30), answers(api, 2)) => answers,
        status = child.wait() => {
            return Err(format!("{} exited before answering twice ({status:?}); see {}", subject.name, stderr.display()).into())
        }
    };
    let rss = peak_rss_kb(pid);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let pending = std::mem::take(&mut *api.pending.lock().unwrap());
    let answers = outcome.map_err(|_| format!("{} did not answer twice within 30 s", subject.name))?;
    for (_, answer) in &answers {
        let answer = answer.as_ref().map_err(|e| format!("{} reported an error: {e}", subject.name))?;
        if !(subject.expect)(answer) {
            return Err(format!("{} answered unexpectedly: {answer}", subject.name).into());
        }
    }
    let [cold_next, warm_next] = pending.served_at[..] else {
        return Err(format!("{} answered without asking for both events", subject.name).into());
    };
    Ok(Sample {
        init_ms: (cold_next - started).as_secs_f64() * 1000.0,
        first_answer_ms: (answers[0].0 - started).as_secs_f64() * 1000.0,
        warm_ms: (answers[1].0 - warm_next).as_secs_f64() * 1000.0,
        peak_rss_kb: rss,
    })
}

struct Args {
    bin_dir: PathBuf,
    node_dir: PathBuf,
    events_dir: PathBuf,
    runs: usize,
    out: Option<PathBuf>,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        bin_dir: "target/release".into(),
        node_dir: "bench/node".into(),
        events_dir: "events".into(),
        runs: 20,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => a.bin_dir = value()?.into(),
            "--node-dir" => a.node_dir = value()?.into(),
            "--events" => a.events_dir = value()?.into(),
            "--runs" => a.runs = value()?.parse()?,
            "--out" => a.out = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// An event from `events/`, moved onto the bench clinic and patient.
fn event(dir: &std::path::Path, name: &str) -> Result<Value, BoxError> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json")))?;
    Ok(serde_json::from_str(&text.replace("clinic-a", CLINIC).replace("patient-42", PATIENT))?)
}

/// The event with every occurrence of `from` (an id or token) replaced.
fn replaced(e: Value, from: &str, to: &str) -> Value {
    serde_json::from_str(&e.to_string().replace(from, to)).expect("still JSON")
}

fn signed_webhook(template: &Value, n: usize) -> Value {
    let body = json!({
        "id": format!("evt_bench_cold_{n}"), "object": "event", "account": ACCOUNT,
        "api_version": "2026-09-30.endive", "created": visitpay_bench::unix_now(), "livemode": false,
        "type": "checkout.session.expired",
        "data": {"object": {"id": format!("cs_test_bench_{n}"), "object": "checkout.session",
                             "status": "expired", "payment_status": "unpaid", "metadata": {}}}
    })
    .to_string();
    let mut e = template.clone();
    e["headers"]["stripe-signature"] = json!(visitpay_bench::sign(WEBHOOK_SECRET, &body, visitpay_bench::unix_now()));
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
    e["isBase64Encoded"] = json!(true);
    e
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let endpoint = visitpay_bench::moto_endpoint()?;
    let sdk = visitpay_bench::sdk(&endpoint).await;
    let stamp = visitpay_bench::run_stamp();
    let table = format!("bench-cold-{stamp}");
    let stripe_base = visitpay_bench::stripe_emulator().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(dynamodb.clone(), table.clone());
    visitpay_devkit::setup::ensure_table(&store, &tables::main_table()).await?;
    let queue_url = ensure_queue(&aws_sdk_sqs::Client::new(&sdk), &format!("bench-cold-{stamp}"), 5, 30).await?;
    let bus = format!("bench-cold-status-{stamp}");
    aws_sdk_eventbridge::Client::new(&sdk).create_event_bus().name(&bus).send().await?;
    let payments: Arc<dyn Payments> = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{stripe_base}/")))?);
    let deps = visitpay_bench::deps(Arc::new(store), payments, visitpay_bench::unread_queue());

    // The Runtime API emulator.
    let api = RuntimeApi::default();
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let runtime_api = listener.local_addr()?.to_string();
    // No Nagle delay between a response's head and body, as on Lambda's own Runtime API.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });

    // What Lambda gives every function, plus our configuration. HOME is an
    // empty directory, as on Lambda, so no SDK reads a developer's ~/.aws.
    let home = std::env::temp_dir().join(format!("visitpay-bench-home-{stamp}"));
    std::fs::create_dir_all(&home)?;
    let logs = PathBuf::from("bench/results/logs");
    std::fs::create_dir_all(&logs)?;
    let base_env: Vec<(String, String)> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", home.display().to_string()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("VISITPAY_TABLE", table.clone()),
        ("VISITPAY_EVENTS_QUEUE_URL", queue_url.clone()),
        ("VISITPAY_QUEUE_URL", queue_url.clone()),
        ("VISITPAY_EVENT_BUS", bus.clone()),
        ("VISITPAY_PATIENT_LINK_BASE", PATIENT_LINK_BASE.into()),
        // Where Stripe's hosted onboarding sends support back (clinic-settings reads it at start).
        ("VISITPAY_ONBOARDING_PAGE", "https://clinic.example.test/console".into()),
        ("STRIPE_SECRET_KEY", STRIPE_KEY.into()),
        ("STRIPE_API_BASE", format!("{stripe_base}/")),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let ours = |name: &'static str, node_peer: &'static str, expect: fn(&Value) -> bool| Subject {
        name,
        kind: "ours",
        program: args.bin_dir.join(name),
        args: vec![],
        env: vec![("AWS_LAMBDA_FUNCTION_NAME".into(), name.into())],
        node_peer: Some(node_peer),
        expect,
    };
    let node = |name: &'static str, module: &str, expect: fn(&Value) -> bool| Subject {
        name,
        kind: "node",
        program: "node".into(),
        args: vec![args.node_dir.join("runtime.mjs").display().to_string(), module.into()],
        env: vec![
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.into()),
            // The SDK's notice that Node 20 support ends would be written at every init.
            ("AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED".into(), "true".into()),
        ],
        node_peer: None,
        expect,
    };
    let subjects = vec![
        Subject {
            name: "hello-world",
            kind: "baseline",
            program: args.bin_dir.join("hello-world"),
            args: vec![],
            env: vec![("AWS_LAMBDA_FUNCTION_NAME".into(), "hello-world".into())],
            node_peer: None,
            expect: ok_2xx,
        },
        node("node-hello", "hello", ok_2xx),
        node("node-dynamodb-read", "status", ok_2xx),
        node("node-stripe-webhook", "webhook", ok_2xx),
        node("node-create-checkout", "checkout", ok_2xx),
        node("node-publish-events", "publish", no_batch_failures),
        ours("clinic-settings", "node-dynamodb-read", ok_2xx),
        ours("select-invoices", "node-dynamodb-read", ok_2xx),
        ours("assign-action", "node-create-checkout", created),
        ours("action-status", "node-dynamodb-read", ok_2xx),
        ours("create-checkout", "node-create-checkout", ok_2xx),
        ours("stripe-webhook", "node-stripe-webhook", ok_2xx),
        ours("process-payment-events", "node-dynamodb-read", no_batch_failures),
        ours("reconcile", "node-create-checkout", any_answer),
        ours("publish-action-events", "node-publish-events", no_batch_failures),
        // The route-table trial (bench/axum-trial): action-status through an
        // axum Router, its same wiring and job.
        Subject { kind: "trial", ..ours("axum-trial", "node-dynamodb-read", ok_2xx) },
        // The receipt's PDF, in a function of its own so that its fonts weigh
        // on no other: measured, not held to the others' targets.
        Subject { kind: "pdf", ..ours("receipt-pdf", "node-dynamodb-read", ok_2xx) },
    ];
    for s in &subjects {
        if s.kind != "node" && !s.program.exists() {
            return Err(format!("{} is missing: build it with the release profile first", s.program.display()).into());
        }
    }

    // Set-up, not timed: the clinic, one action to read, and per cold start
    // the fresh things each job needs.
    let runs = args.runs + 1; // the first round warms the page cache and is discarded
    println!("==> seeding moto and the Stripe emulator for {runs} rounds (a cold and a warm job each)");
    visitpay_bench::seed_clinic(&deps).await?;
    let (status_action, _) = visitpay_bench::seed_action(&deps, &["cold-read-1"], "cold-read").await?;
    // receipt-pdf renders the receipt of one action, paid once here.
    let (receipt_action, receipt_token) =
        visitpay_bench::seed_action(&deps, &["cold-receipt-1"], "cold-receipt").await?;
    let receipt_session = visitpay_bench::open_and_pay(&deps, &stripe_base, &receipt_token).await?;
    let paid = visitpay_bench::stripe_events(&stripe_base)
        .await?
        .into_iter()
        .find(|e| e["type"] == "checkout.session.completed" && e["data"]["object"]["id"] == receipt_session.as_str())
        .ok_or("no checkout.session.completed for the receipt's action")?;
    visitpay_edge::lambda::consumer::apply_message(&deps, Some(&paid.to_string()))
        .await
        .map_err(|e| format!("the receipt's action was not paid: {e}"))?;
    let mut events: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut consumer_actions = Vec::new();
    let dir = &args.events_dir;
    for n in 0..runs * 2 {
        let get_action = replaced(event(dir, "get-action")?, "act_0001", status_action.as_str());
        events.entry("hello-world").or_default().push(get_action.clone());
        events.entry("node-hello").or_default().push(get_action.clone());
        events.entry("action-status").or_default().push(get_action.clone());
        events.entry("axum-trial").or_default().push(get_action.clone());
        let mut receipt_pdf = replaced(event(dir, "get-action")?, "act_0001", receipt_action.as_str());
        let path = format!("/actions/{receipt_action}/receipt.pdf");
        receipt_pdf["routeKey"] = json!("GET /actions/{action_id}/receipt.pdf");
        receipt_pdf["requestContext"]["routeKey"] = receipt_pdf["routeKey"].clone();
        receipt_pdf["rawPath"] = json!(path);
        receipt_pdf["requestContext"]["http"]["path"] = json!(path);
        events.entry("receipt-pdf").or_default().push(receipt_pdf);
        events.entry("clinic-settings").or_default().push(event(dir, "get-payment-settings")?);
        events.entry("select-invoices").or_default().push(event(dir, "list-invoices")?);

        let invoice = format!("cold-assign-{n}");
        visitpay_bench::seed_selected_invoices(&deps, &[&invoice]).await?;
        let mut assign = replaced(event(dir, "assign-action")?, "visit-7", &format!("cold-visit-{n}"));
        assign["body"] = json!(json!({"patient_id": PATIENT, "invoice_ids": [invoice], "locale": "fr-CA"}).to_string());
        assign["headers"]["idempotency-key"] = json!(format!("cold-assign-{stamp}-{n}"));
        events.entry("assign-action").or_default().push(assign);

        let (action, token) =
            visitpay_bench::seed_action(&deps, &[&format!("cold-checkout-{n}")], &format!("cold-co-{n}")).await?;
        let template = event(dir, "create-checkout")?;
        let original = template["pathParameters"]["token"].as_str().ok_or("no token in create-checkout.json")?;
        let original = original.to_owned();
        events.entry("create-checkout").or_default().push(replaced(template.clone(), &original, &token));
        // The Node function reads its own record for the same token.
        let node_token = format!("{token}n");
        dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", attr(&format!("bench#{node_token}")))
            .item("sk", attr("link"))
            .item("action_id", attr(&format!("{}-node", action.as_str())))
            .item("clinic_id", attr(CLINIC))
            .item("account", attr(ACCOUNT))
            .item("currency", attr("cad"))
            .item("amount", aws_sdk_dynamodb::types::AttributeValue::N("2500".into()))
            .send()
            .await?;
        events.entry("node-create-checkout").or_default().push(replaced(template, &original, &node_token));
        let get_node = json!({"rawPath": format!("/bench/{node_token}"), "pathParameters": {"token": node_token}});
        events.entry("node-dynamodb-read").or_default().push(get_node);

        let webhook = signed_webhook(&event(dir, "stripe-webhook")?, n);
        events.entry("stripe-webhook").or_default().push(webhook.clone());
        events.entry("node-stripe-webhook").or_default().push(webhook);

        // The consumer gets Stripe's own checkout.session.completed for a paid session.
        let (action, token) =
            visitpay_bench::seed_action(&deps, &[&format!("cold-consume-{n}")], &format!("cold-pay-{n}")).await?;
        let session = visitpay_bench::open_and_pay(&deps, &stripe_base, &token).await?;
        let listed = visitpay_bench::stripe_events(&stripe_base).await?;
        let completed = listed
            .iter()
            .find(|e| e["type"] == "checkout.session.completed" && e["data"]["object"]["id"] == session.as_str())
            .ok_or("no checkout.session.completed")?
            .clone();
        let mut sqs = event(dir, "sqs-payment-events")?;
        let mut record = sqs["Records"][0].clone();
        record["body"] = json!(completed.to_string());
        record["messageId"] = json!(format!("cold-consume-{stamp}-{n}"));
        record.as_object_mut().ok_or("a record is an object")?.remove("md5OfBody");
        sqs["Records"] = json!([record]);
        events.entry("process-payment-events").or_default().push(sqs);
        consumer_actions.push(action);

        events.entry("reconcile").or_default().push(event(dir, "reconcile-schedule")?);
        // The stream's records of an assignment and its checkout, as Lambda sends them.
        let stream = event(dir, "dynamodb-stream-action-changes")?;
        events.entry("publish-action-events").or_default().push(stream.clone());
        events.entry("node-publish-events").or_default().push(stream);
    }

    // Round-robin, so drift on the machine touches every subject alike.
    println!("==> {} cold starts of each of {} functions", args.runs, subjects.len());
    let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for round in 0..runs {
        for s in &subjects {
            let jobs = (events[s.name][2 * round].clone(), events[s.name][2 * round + 1].clone());
            let sample = cold_start(&api, s, &base_env, jobs, &logs.join(format!("{}.stderr", s.name))).await?;
            if round > 0 {
                samples.entry(s.name).or_default().push(sample);
            }
        }
    }
    for action in &consumer_actions {
        let status = actions::get(&deps, &visitpay_bench::clinic(), action).await?.status();
        if status != ActionStatus::Paid {
            return Err(format!("the consumer left {action} {status}, not paid").into());
        }
    }

    // Report.
    let summary = |name: &str, f: fn(&Sample) -> f64| Summary::of(&samples[name].iter().map(f).collect::<Vec<_>>());
    let init = |name: &str| summary(name, |s| s.init_ms);
    let hello = init("hello-world").median;
    println!(
        "\nCold starts on this machine (x86_64, release profile: opt-level s, LTO, stripped), {} each; \
         median (p25–p75) in ms",
        args.runs
    );
    println!(
        "{:<24} {:>22} {:>22} {:>20} {:>12} {:>7} {:>9} {:>9}  node peer",
        "function", "init", "first answer", "warm invocation", "peak RSS MB", "128 MB", "/hello", "/node"
    );
    let mut rows = Vec::new();
    for s in &subjects {
        let i = init(s.name);
        let a = summary(s.name, |x| x.first_answer_ms);
        let warm = summary(s.name, |x| x.warm_ms);
        let rss = summary(s.name, |x| x.peak_rss_kb / 1024.0);
        // Lambda's smallest size leaves the runtime agent and the sandbox a
        // few MB; a function whose worst run stays under 3/4 of it fits.
        let fits_128 = rss.max <= 96.0;
        let vs_hello = i.median / hello;
        let vs_node = s.node_peer.map(|p| i.median / init(p).median);
        println!(
            "{:<24} {:>22} {:>22} {:>20} {:>12.1} {:>7} {:>9.2} {:>9}  {}",
            s.name,
            i.show(2),
            a.show(2),
            warm.show(2),
            rss.max,
            if fits_128 { "yes" } else { "no" },
            vs_hello,
            vs_node.map_or("".into(), |r| format!("{r:.3}")),
            s.node_peer.unwrap_or("")
        );
        let raw = |f: fn(&Sample) -> f64| {
            samples[s.name].iter().map(|x| (f(x) * 1000.0).round() / 1000.0).collect::<Vec<_>>()
        };
        rows.push(json!({
            "function": s.name, "kind": s.kind, "node_peer": s.node_peer,
            "init_ms": i.json(), "first_answer_ms": a.json(), "peak_rss_mb": rss.json(),
            "warm_invocation_ms": warm.json(), "warm_billed_ms": warm.median.ceil(),
            "fits_128_mb": fits_128,
            "init_vs_hello_world": (vs_hello * 1000.0).round() / 1000.0,
            "init_vs_node_peer": vs_node.map(|r| (r * 1000.0).round() / 1000.0),
            "init_samples_ms": raw(|x| x.init_ms),
        }));
    }
    let report = json!({
        "benchmark": "cold_start",
        "measured_at": visitpay_bench::now_rfc3339(),
        "machine": {"arch": std::env::consts::ARCH, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "cold_starts_per_function": args.runs,
        "discarded_warmup_rounds": 1,
        "init": "exec to the first GET /runtime/invocation/next (Lambda's Init Duration)",
        "first_answer": "exec to the first POST /runtime/invocation/{id}/response",
        "warm_invocation": "the same process's second GET /runtime/invocation/next (a fresh job) to its answer",
        "peak_rss": "VmHWM after both answers; fits_128_mb: the worst run ≤ 96 MB (3/4 of Lambda's 128 MB)",
        "targets": {"init_vs_node_peer_max": 0.125, "init_vs_hello_world_max": 1.5},
        "functions": rows,
    });
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

fn attr(s: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(s.to_owned())
}
