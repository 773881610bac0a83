//! The local runner under load, and a webhook burst.
//!
//! 1. Throughput: the release `visitpay-local` (embedded store and queue) as
//!    a child process; `wrk` on loopback drives staff reads (`GET
//!    /actions/{id}`) and then signed webhooks, each for a bounded time,
//!    several runs each; req/s, p50/p99 and the runner's peak RSS.
//! 2. Burst: 1,000 signed Stripe events (800 distinct, 200 duplicates, in a
//!    shuffled order) posted to `/webhooks/stripe` of the local runner's
//!    router; the time until the embedded queue has applied them all, and a
//!    check that the final state equals one clean in-order delivery of the
//!    800 events to a copy of the same starting state.
//!
//!     local-load --bin-dir target/release [--runs 5] [--seconds 5] [--connections 16] [--out FILE.json]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use visitpay_app::ports::{EventQueue, Payments};
use visitpay_app::{actions, invoices, Deps};
use visitpay_bench::BenchDeps;
use visitpay_bench::{BoxError, Summary, STRIPE_KEY, WEBHOOK_SECRET};
use visitpay_devkit::embedded::EmbeddedStore;
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_edge::http::views::{ActionView, InvoiceView};
use visitpay_edge::lambda::consumer::{self, apply_message};
use visitpay_local::LocalClock;
use visitpay_stripe::events::HANDLED_TYPES;
use visitpay_stripe::StripePayments;

struct Args {
    bin_dir: PathBuf,
    runs: usize,
    seconds: u64,
    connections: usize,
    out: Option<PathBuf>,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args { bin_dir: "target/release".into(), runs: 5, seconds: 5, connections: 16, out: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => a.bin_dir = value()?.into(),
            "--runs" => a.runs = value()?.parse()?,
            "--seconds" => a.seconds = value()?.parse()?,
            "--connections" => a.connections = value()?.parse()?,
            "--out" => a.out = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let throughput = throughput(&args).await?;
    let burst = burst(&args).await?;
    let report = json!({
        "benchmark": "local_runner",
        "measured_at": visitpay_bench::now_rfc3339(),
        "machine": {"arch": std::env::consts::ARCH, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "throughput": throughput,
        "webhook_burst": burst,
    });
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

// ---------------------------------------------------------------- throughput

struct Runner {
    child: tokio::process::Child,
    base: String,
    staff: String,
    support: String,
    invoices: Vec<String>,
}

async fn start_runner(bin_dir: &std::path::Path) -> Result<Runner, BoxError> {
    std::fs::create_dir_all("bench/results/logs")?;
    let log = std::fs::File::create("bench/results/logs/visitpay-local.stderr")?;
    let mut child = tokio::process::Command::new(bin_dir.join("visitpay-local"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VISITPAY_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin_dir.join("visitpay-local").display()))?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let (mut base, mut staff, mut support, mut invoices) = (None, None, None, Vec::new());
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await?? {
        if let Some(rest) = line.strip_prefix("visitpay-local listening on ") {
            base = Some(rest.trim().to_owned());
        } else if let Some((_, t)) = line.split_once("staff token (clinic demo-clinic): ") {
            staff = Some(t.trim().to_owned());
        } else if let Some(t) = line.strip_prefix("support token: ") {
            support = Some(t.trim().to_owned());
        } else if let Some((_, list)) = line.split_once("(unprocessed invoices: ") {
            invoices = list.trim_end_matches(')').split(", ").map(str::to_owned).collect();
        } else if line == "ready" {
            break;
        }
    }
    // Keep reading stdout so the runner never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Runner {
        child,
        base: base.ok_or("the runner did not say where it listens")?,
        staff: staff.ok_or("no staff token")?,
        support: support.ok_or("no support token")?,
        invoices,
    })
}

fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// A duration as wrk prints it (`812.00us`, `1.25ms`, `2.00s`), in ms.
fn wrk_ms(s: &str) -> Option<f64> {
    let (n, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map(|i| s.split_at(i))?;
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

struct WrkRun {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

async fn wrk(args: &Args, url: &str, extra: &[String]) -> Result<WrkRun, BoxError> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{}", args.connections), &format!("-d{}s", args.seconds), "--latency"])
        .args(extra)
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("wrk: {e} (install it: apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors")) {
        return Err(format!("wrk saw failures: {}\n{text}", line.trim()).into());
    }
    let field = |prefix: &str| text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix).map(str::trim));
    let rps = field("Requests/sec:").and_then(|v| v.parse().ok()).ok_or("no Requests/sec")?;
    let p50_ms = field("50%").and_then(wrk_ms).ok_or("no p50")?;
    let p99_ms = field("99%").and_then(wrk_ms).ok_or("no p99")?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or("no request count")?;
    Ok(WrkRun { rps, p50_ms, p99_ms, requests })
}

fn summarise(runs: &[WrkRun]) -> (Summary, Summary, Summary, Value) {
    let rps = Summary::of(&runs.iter().map(|r| r.rps).collect::<Vec<_>>());
    let p50 = Summary::of(&runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
    let p99 = Summary::of(&runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let json = json!({"requests_per_s": rps.json(), "p50_ms": p50.json(), "p99_ms": p99.json(), "requests": requests});
    (rps, p50, p99, json)
}

async fn throughput(args: &Args) -> Result<Value, BoxError> {
    let mut runner = start_runner(&args.bin_dir).await?;
    let pid = runner.child.id().ok_or("the runner exited")?;
    let (base, staff) = (runner.base.clone(), runner.staff.clone());
    let http = reqwest::Client::new();
    println!("==> local runner at {base} (pid {pid}): an action to read, a paid session to announce");

    // Through the API, as in the README walkthrough.
    let settings = json!({"enabled": true, "label": {"en": "Pay", "fr": "Payer"}, "stripe_account_id": "acct_1DemoClinic",
        "currency": "cad", "checkout_ttl_minutes": 60, "action_ttl_hours": 72, "line_item_text": "generic"});
    http.put(format!("{base}/clinics/demo-clinic/payment-settings"))
        .bearer_auth(&runner.support)
        .json(&settings)
        .send()
        .await?
        .error_for_status()?;
    http.post(format!("{base}/patients/demo-patient/invoices/select"))
        .bearer_auth(&staff)
        .json(&json!({"invoice_ids": runner.invoices}))
        .send()
        .await?
        .error_for_status()?;
    let action: Value = http
        .post(format!("{base}/visits/demo-visit/actions"))
        .bearer_auth(&staff)
        .json(&json!({"patient_id": "demo-patient", "invoice_ids": runner.invoices, "locale": "fr-CA"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let action_id = action["action_id"].as_str().ok_or("no action id")?.to_owned();
    let patient_url = action["patient_url"].as_str().ok_or("no patient url")?;
    let token = patient_url.rsplit('/').next().ok_or("no token")?;
    let opened: Value =
        http.post(format!("{base}/patient/actions/{token}/checkout")).send().await?.error_for_status()?.json().await?;
    let session = opened["checkout_url"].as_str().and_then(|u| u.rsplit('/').next()).ok_or("no session")?.to_owned();
    http.post(format!("{base}/stripe/test/checkout_sessions/{session}/pay"))
        .json(&json!({"outcome": "succeeded", "send_webhooks": false}))
        .send()
        .await?
        .error_for_status()?;
    let events: Value = http
        .get(format!("{base}/stripe/v1/events?limit=100"))
        .bearer_auth("sk_test_visitpay_local")
        .header("Stripe-Account", "acct_1DemoClinic")
        .send()
        .await?
        .json()
        .await?;
    let completed = events["data"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "checkout.session.completed"))
        .ok_or("no checkout.session.completed")?
        .to_string();

    let runs = args.runs;
    println!(
        "==> wrk: {runs} runs × {} s, {} connections, 1 thread, GET /actions/{{id}} as staff",
        args.seconds, args.connections
    );
    let mut reads = Vec::new();
    let auth = format!("Authorization: Bearer {staff}");
    for _ in 0..runs {
        reads.push(wrk(args, &format!("{base}/actions/{action_id}"), &["-H".into(), auth.clone()]).await?);
    }
    let rss_after_reads = status_kb(pid, "VmHWM:") / 1024.0;

    println!("==> wrk: {runs} runs × {} s, POST /webhooks/stripe (signed checkout.session.completed)", args.seconds);
    let mut webhooks = Vec::new();
    let script = std::env::temp_dir().join(format!("visitpay-webhook-{}.lua", std::process::id()));
    for _ in 0..runs {
        // Signed afresh for every run: Stripe's tolerance is 300 s.
        let signature = visitpay_bench::sign("whsec_visitpay_dev_secret", &completed, visitpay_bench::unix_now());
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = [==[{completed}]==]\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Stripe-Signature\"] = \"{signature}\"\n"
            ),
        )?;
        webhooks
            .push(wrk(args, &format!("{base}/webhooks/stripe"), &["-s".into(), script.display().to_string()]).await?);
    }
    let _ = std::fs::remove_file(&script);
    // Every delivery was queued; the consumer applies the first and finds the rest already applied.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now: Value =
            http.get(format!("{base}/actions/{action_id}")).bearer_auth(&staff).send().await?.json().await?;
        if now["status"] == "paid" {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the webhook never made the action paid: {now}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak_rss = status_kb(pid, "VmHWM:") / 1024.0;
    runner.child.start_kill()?;
    let _ = runner.child.wait().await;

    let (r_rps, r_p50, r_p99, reads_json) = summarise(&reads);
    let (w_rps, w_p50, w_p99, webhooks_json) = summarise(&webhooks);
    println!("\nLocal runner (release, embedded store and queue), wrk on loopback, 2 cores shared; median (p25–p75)");
    println!("{:<28} {:>26} {:>22} {:>22}", "load", "req/s", "p50 ms", "p99 ms");
    println!("{:<28} {:>26} {:>22} {:>22}", "GET /actions/{id} (staff)", r_rps.show(0), r_p50.show(2), r_p99.show(2));
    println!("{:<28} {:>26} {:>22} {:>22}", "POST /webhooks/stripe", w_rps.show(0), w_p50.show(2), w_p99.show(2));
    println!("peak RSS of the runner: {rss_after_reads:.1} MB after the reads, {peak_rss:.1} MB at the end");
    println!("targets: ≥ 2,000 staff reads/s with p99 ≤ 10 ms");
    Ok(json!({
        "runs": runs, "seconds_per_run": args.seconds, "connections": args.connections, "wrk_threads": 1,
        "staff_reads": reads_json, "signed_webhooks": webhooks_json,
        "peak_rss_mb_after_reads": (rss_after_reads * 10.0).round() / 10.0,
        "peak_rss_mb": (peak_rss * 10.0).round() / 10.0,
        "targets": {"staff_reads_per_s_min": 2000, "staff_read_p99_ms_max": 10},
    }))
}

// --------------------------------------------------------------------- burst

/// Small, seeded and reproducible: the same shuffle in every run.
struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const BURST_ACTIONS: usize = 200;
const REFUNDS_PER_ACTION: usize = 3;
/// What Stripe sends of one paid action with its refunds, among the types
/// visitpay handles: checkout.session.completed for the payment,
/// charge.refunded and refund.created for each refund (succeeded at once, so
/// no refund.updated).
const EVENTS_PER_ACTION: usize = 1 + 2 * REFUNDS_PER_ACTION;
const BURST_EVENTS: usize = BURST_ACTIONS * EVENTS_PER_ACTION;
const DUPLICATES: usize = 200;
const SENDERS: usize = 16;
const BURST_SEED: u64 = 0x5eed_2026_1127;

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Actions paid at the emulator and refunded three times from its dashboard
/// API; returns the events Stripe would send (subscribed types), oldest first.
async fn burst_world(
    deps: &BenchDeps,
    stripe_base: &str,
) -> Result<(Vec<visitpay_domain::ActionId>, Vec<String>), BoxError> {
    let http = reqwest::Client::new();
    visitpay_bench::seed_clinic(deps).await?;
    let mut ids = Vec::new();
    for k in 0..BURST_ACTIONS {
        let (action, token) =
            visitpay_bench::seed_action(deps, &[&format!("burst-{k}")], &format!("burst-{k}")).await?;
        let session = visitpay_bench::open_and_pay(deps, stripe_base, &token).await?;
        let s = visitpay_bench::stripe_call(http.get(format!("{stripe_base}/v1/checkout/sessions/{session}")), None)
            .await?;
        let intent = s["payment_intent"].as_str().ok_or("no payment intent")?.to_owned();
        for _ in 0..REFUNDS_PER_ACTION {
            let body = form(&[("payment_intent", &intent), ("amount", "500")]);
            visitpay_bench::stripe_call(http.post(format!("{stripe_base}/v1/refunds")), Some(body)).await?;
        }
        ids.push(action);
    }
    let events = visitpay_bench::all_stripe_events(stripe_base, visitpay_bench::ACCOUNT).await?;
    let subscribed: Vec<String> = events
        .into_iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| HANDLED_TYPES.contains(&t)))
        .map(|e| e.to_string())
        .collect();
    Ok((ids, subscribed))
}

/// What the staff see of every action and invoice. An action's `history` is
/// kept apart: it is the audit trail of what arrived when, so it follows the
/// delivery order (three cumulative refund events in reverse are one step).
/// So do its `version` (how many writes the arrivals took), left out, and
/// the order its refunds were learnt in, compared as a set.
async fn state_of(deps: &BenchDeps, ids: &[visitpay_domain::ActionId]) -> Result<(Value, Vec<Value>), BoxError> {
    let clinic = visitpay_bench::clinic();
    let (mut out, mut histories) = (Vec::new(), Vec::new());
    for id in ids {
        let a = actions::get(deps, &clinic, id).await?;
        let mut view = serde_json::to_value(ActionView::new(&a, None))?;
        let fields = view.as_object_mut().ok_or("a view is an object")?;
        histories.push(fields.remove("history").unwrap_or_default());
        fields.remove("version");
        if let Some(Value::Array(refunds)) = fields.get_mut("refunds") {
            refunds.sort_by(|a, b| a["refund_id"].as_str().cmp(&b["refund_id"].as_str()));
        }
        out.push(view);
    }
    let invoices = invoices::list(deps, &clinic, &visitpay_bench::patient(), None).await?;
    let invoices: Vec<Value> =
        invoices.iter().map(|i| serde_json::to_value(InvoiceView::from(i))).collect::<Result<_, _>>()?;
    Ok((json!({"actions": out, "invoices": invoices}), histories))
}

struct BurstRun {
    accepted_ms: f64,
    applied_ms: f64,
    histories_in_another_order: usize,
}

async fn burst_once(round: usize) -> Result<BurstRun, BoxError> {
    let stripe_base = visitpay_bench::stripe_emulator().await?;
    let payments: Arc<dyn Payments> = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{stripe_base}/")))?);
    // One fixed clock for both worlds, so "equal" includes every timestamp we write.
    let clock = Arc::new(LocalClock::sharing(Arc::new(stripe_emulator::Clock::fixed(visitpay_bench::unix_now()))));
    let store = Arc::new(EmbeddedStore::new());
    let mut deps = visitpay_bench::deps(store.clone(), payments, visitpay_bench::unread_queue());
    deps.clock = clock.clone();
    let (ids, unique) = burst_world(&deps, &stripe_base).await?;
    if unique.len() != BURST_EVENTS {
        let mut by_type = std::collections::BTreeMap::<String, usize>::new();
        for e in &unique {
            let kind = serde_json::from_str::<Value>(e)?["type"].as_str().unwrap_or_default().to_owned();
            *by_type.entry(kind).or_default() += 1;
        }
        return Err(format!("expected {BURST_EVENTS} subscribed events, the emulator produced {by_type:?}").into());
    }
    let clean = Deps { store: Arc::new(store.fork()), ..deps.clone() };

    // The burst: through the local runner's router, into its embedded queue,
    // consumed ten batches at once as the local runner (and Lambda) does.
    let queue = Arc::new(EmbeddedQueue::new(5, Duration::from_secs(1)));
    let burst = Deps { queue: queue.clone() as Arc<dyn EventQueue>, ..deps.clone() };
    let consumer = burst.clone();
    let worker = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.run_concurrently(10, |event| consumer::handle(&consumer, event)).await })
    };

    let router = visitpay_bench::local_router(&burst, "bench-unused", Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let mut rng = XorShift(BURST_SEED ^ round as u64);
    let mut deliveries: Vec<&String> = unique.iter().collect();
    for _ in 0..DUPLICATES {
        deliveries.push(&unique[rng.below(unique.len())]);
    }
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.below(i + 1));
    }
    let now = visitpay_bench::unix_now();
    let signed: Arc<Vec<(String, String)>> =
        Arc::new(deliveries.iter().map(|b| ((*b).clone(), visitpay_bench::sign(WEBHOOK_SECRET, b, now))).collect());

    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (http, url, next, signed) = (http.clone(), url.clone(), next.clone(), signed.clone());
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((body, signature)) = signed.get(i) else { return Ok::<(), String>(()) };
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", signature)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("delivery {i} answered {}", r.status()));
                }
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r??;
    }
    let accepted = started.elapsed();
    while queue.depth() > 0 {
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!("{} events still queued after 300 s", queue.depth()).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let applied = started.elapsed();
    worker.abort();
    server.abort();
    if !queue.dead_letters().is_empty() {
        return Err(format!("{} events went to the dead-letter queue", queue.dead_letters().len()).into());
    }

    // The same 800 events, once each, in the order Stripe created them.
    for body in &unique {
        apply_message(&clean, Some(body)).await.map_err(|e| format!("in-order delivery failed: {e}"))?;
    }
    let ((after_burst, burst_histories), (after_clean, clean_histories)) =
        (state_of(&burst, &ids).await?, state_of(&clean, &ids).await?);
    if after_burst != after_clean {
        let pairs = after_burst["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(after_clean["actions"].as_array().into_iter().flatten());
        if let Some((a, b)) = pairs.clone().find(|(a, b)| a != b) {
            eprintln!("burst:    {a}\nin order: {b}");
        }
        eprintln!("{} of {} actions differ", pairs.filter(|(a, b)| a != b).count(), ids.len());
        return Err("the burst's final state differs from one clean in-order delivery".into());
    }
    let refunded = after_burst["actions"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|a| a["status"] == "partially_refunded" && a["refunded_amount"] == 500 * REFUNDS_PER_ACTION)
            .count()
    });
    if refunded != BURST_ACTIONS {
        return Err(format!("only {refunded} of {BURST_ACTIONS} actions ended paid, with every refund").into());
    }
    let histories_in_another_order = burst_histories.iter().zip(&clean_histories).filter(|(a, b)| a != b).count();
    Ok(BurstRun {
        accepted_ms: accepted.as_secs_f64() * 1000.0,
        applied_ms: applied.as_secs_f64() * 1000.0,
        histories_in_another_order,
    })
}

async fn burst(args: &Args) -> Result<Value, BoxError> {
    let total = BURST_EVENTS + DUPLICATES;
    println!(
        "\n==> webhook burst: {total} signed events ({DUPLICATES} duplicates, shuffled), {SENDERS} senders, {} runs",
        args.runs
    );
    let mut runs = Vec::new();
    for round in 0..args.runs {
        runs.push(burst_once(round).await?);
    }
    let accepted = Summary::of(&runs.iter().map(|r| r.accepted_ms).collect::<Vec<_>>());
    let applied = Summary::of(&runs.iter().map(|r| r.applied_ms).collect::<Vec<_>>());
    println!("all {total} accepted (200) after {} ms; all applied after {} ms", accepted.show(0), applied.show(0));
    println!(
        "final state = one clean in-order delivery of the {} distinct events: yes, in every run \
         (histories recorded in another order: {:?} of {BURST_ACTIONS} actions per run)",
        BURST_EVENTS,
        runs.iter().map(|r| r.histories_in_another_order).collect::<Vec<_>>()
    );
    Ok(json!({
        "events": total, "distinct": BURST_EVENTS, "duplicates": DUPLICATES,
        "actions": BURST_ACTIONS, "refunds_per_action": REFUNDS_PER_ACTION, "senders": SENDERS,
        "runs": args.runs, "accepted_ms": accepted.json(), "applied_ms": applied.json(),
        "final_state_equals_in_order_delivery": true,
        "compared": "every action as staff see it (but its history) and every invoice",
        "histories_in_another_order": runs.iter().map(|r| r.histories_in_another_order).collect::<Vec<_>>(),
    }))
}
