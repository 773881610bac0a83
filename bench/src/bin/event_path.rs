//! The path a Stripe event takes, end to end.
//!
//! 1. Visible: for each of N payments, one after another, the time from
//!    Stripe's first webhook POST to the first staff read (`GET
//!    /actions/{id}`) that shows `paid`, and to the status event reaching
//!    the EventBridge target; then the same for a refund made at Stripe.
//!    Twice: through the local runner's router with the embedded store and
//!    queue (events POSTed as `VISITPAY_LOCAL_EVENTS_URL` does), and with
//!    moto behind it (DynamoDB, SQS read by the local runner's poller, the
//!    table's stream read as Lambda's event source mapping reads it, four
//!    times a second, published to a moto EventBridge bus whose rule targets
//!    an SQS queue).
//! 2. Consumer throughput against moto: the same payments' events as SQS
//!    batches of 10 through process-payment-events' handler, with 1, 4 and 10
//!    batches at once; events applied per second and the write conflicts met
//!    (each retried by the use case, as in AWS).
//!
//!     VISITPAY_BENCH_AWS_ENDPOINT=http://127.0.0.1:PORT \
//!     event-path [--payments 200] [--moto-payments 50] [--throughput-payments 100] [--out FILE.json]
//!
//! Fewer payments on moto: its DynamoDB Streams emulation grows by tens of
//! MB a second while a stream is read four times a second (about 16 GB after
//! 200 payments on this machine), and its TransactWriteItems copies every
//! table first, so it slows as it grows. The consumer's throughput is
//! measured first, on a moto not yet grown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tracing_subscriber::layer::SubscriberExt;
use visitpay_app::ports::{EventQueue, Payments};
use visitpay_app::status_events::publish_in_order;
use visitpay_app::{actions, Role};
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::eventbridge::EventBridgeBus;
use visitpay_aws::sqs::SqsQueue;
use visitpay_aws::tables;
use visitpay_bench::{BenchDeps, BoxError, Percentiles, STRIPE_KEY, WEBHOOK_SECRET};
use visitpay_devkit::embedded::EmbeddedStore;
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_devkit::setup::{ensure_queue, poll, sqs_event, Delivery};
use visitpay_domain::{ActionId, ActionStatus, ACTION_CHANGED, EVENT_SOURCE};
use visitpay_edge::lambda::consumer;
use visitpay_local::events::LocalEvents;
use visitpay_local::stream_mapping::StreamMapping;
use visitpay_stripe::events::HANDLED_TYPES;
use visitpay_stripe::StripePayments;

const JWT_SECRET: &str = "bench-event-path";
/// Lambda's DynamoDB event source mapping polls each shard four times a second.
const STREAM_POLL: Duration = Duration::from_millis(250);
const REFUND: i64 = 500;
const WAIT: Duration = Duration::from_secs(30);

struct Args {
    payments: usize,
    moto_payments: usize,
    throughput_payments: usize,
    out: Option<std::path::PathBuf>,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args { payments: 200, moto_payments: 50, throughput_payments: 100, out: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--payments" => a.payments = value()?.parse()?,
            "--moto-payments" => a.moto_payments = value()?.parse()?,
            "--throughput-payments" => a.throughput_payments = value()?.parse()?,
            "--out" => a.out = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Status events as the EventBridge target received them: when, and the detail.
#[derive(Clone, Default)]
struct Target {
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
    arrived: Arc<Notify>,
}

impl Target {
    fn record(&self, detail: Value) {
        self.seen.lock().unwrap().push((Instant::now(), detail));
        self.arrived.notify_waiters();
    }

    /// When the first event about `action` satisfying `what` arrived.
    async fn first(&self, action: &str, what: impl Fn(&Value) -> bool) -> Result<Instant, BoxError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let waiting = self.arrived.notified();
            let found =
                self.seen.lock().unwrap().iter().find(|(_, d)| d["action_id"] == action && what(d)).map(|(t, _)| *t);
            if let Some(t) = found {
                return Ok(t);
            }
            if tokio::time::timeout_at(deadline.into(), waiting).await.is_err() {
                return Err(format!("no status event for {action} within {WAIT:?}").into());
            }
        }
    }
}

/// One way of running the system: its deps, its router's URL and the
/// background tasks (consumer, status events) that die with it.
struct World {
    name: &'static str,
    deps: BenchDeps,
    base: String,
    target: Target,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve_router(
    deps: &BenchDeps,
    events: LocalEvents,
) -> Result<(String, tokio::task::JoinHandle<()>), BoxError> {
    let router = visitpay_bench::local_router(deps, JWT_SECRET, events);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((base, task))
}

/// The local runner with its embedded store and queue: the store's changes
/// become status events POSTed to a URL, here the target's.
async fn embedded_world(payments: Arc<dyn Payments>) -> Result<World, BoxError> {
    let store = Arc::new(EmbeddedStore::new());
    let queue = Arc::new(EmbeddedQueue::new(5, Duration::from_secs(1)));
    let deps = visitpay_bench::deps(store.clone(), payments, queue.clone() as Arc<dyn EventQueue>);
    let events = LocalEvents::default();
    let target = Target::default();
    let mut tasks = Vec::new();

    let receiver = target.clone();
    let app = axum::Router::new().route(
        "/target",
        axum::routing::post(move |body: String| {
            let receiver = receiver.clone();
            async move {
                if let Ok(envelope) = serde_json::from_str::<Value>(&body) {
                    receiver.record(envelope["detail"].clone());
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target_url = format!("http://{}/target", listener.local_addr()?);
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }));
    let mut changes = store.changes();
    let bus = events.clone();
    tasks.push(tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            publish_in_order(&bus, &[((), change)]).await;
        }
    }));
    tasks.push(tokio::spawn(visitpay_local::events::forward(events.clone(), target_url, "bench".into())));
    let consumer_deps = deps.clone();
    tasks.push(tokio::spawn(async move { queue.run(|event| consumer::handle(&consumer_deps, event)).await }));
    let (base, server) = serve_router(&deps, events).await?;
    tasks.push(server);
    Ok(World { name: "embedded", deps, base, target, tasks })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, BoxError> {
    let attributes =
        sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    Ok(attributes.attributes.and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned()).ok_or("no queue ARN")?)
}

/// A fresh DynamoDB table on moto, as the store.
async fn moto_store(sdk: &aws_config::SdkConfig, name: &str) -> Result<DynamoStore, BoxError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), name.to_owned());
    visitpay_devkit::setup::ensure_table(&store, &tables::main_table()).await?;
    Ok(store)
}

/// The local runner against moto: SQS read by its poller; the table's
/// stream through publish-action-events' handler to an EventBridge bus
/// whose rule sends every status event to an SQS queue, the target.
async fn moto_world(endpoint: &str, payments: Arc<dyn Payments>) -> Result<World, BoxError> {
    let sdk = visitpay_bench::sdk(endpoint).await;
    let name = format!("bench-path-{}", visitpay_bench::run_stamp());
    let store = moto_store(&sdk, &name).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = ensure_queue(&sqs, &name, 5, 30).await?;
    let arn = queue_arn(&sqs, &queue_url).await?;
    let queue = SqsQueue::new(sqs.clone(), queue_url);
    let deps = visitpay_bench::deps(Arc::new(store.clone()), payments, Arc::new(queue.clone()));
    let mut tasks = Vec::new();

    let consumer_deps = deps.clone();
    tasks.push(tokio::spawn(async move { poll(&queue, &arn, |event| consumer::handle(&consumer_deps, event)).await }));

    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let bus_name = format!("{name}-status");
    events.create_event_bus().name(&bus_name).send().await?;
    let target_url = sqs.create_queue().queue_name(format!("{name}-target")).send().await?.queue_url.ok_or("no url")?;
    let target_arn = queue_arn(&sqs, &target_url).await?;
    let pattern = json!({ "source": [EVENT_SOURCE], "detail-type": [ACTION_CHANGED] }).to_string();
    events.put_rule().name("bench-target").event_bus_name(&bus_name).event_pattern(pattern).send().await?;
    events
        .put_targets()
        .rule("bench-target")
        .event_bus_name(&bus_name)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(target_arn).build()?)
        .send()
        .await?;
    let bus = EventBridgeBus::new(events, bus_name);
    let mut mapping = StreamMapping::connect(endpoint, "us-east-1", store.table()).await?;
    tasks.push(tokio::spawn(async move {
        loop {
            if let Err(e) = mapping.drain(&bus, 10).await {
                eprintln!("reading the table's stream failed: {e}");
            }
            tokio::time::sleep(STREAM_POLL).await;
        }
    }));
    let target = Target::default();
    let receiver = target.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let Ok(batch) = sqs
                .receive_message()
                .queue_url(&target_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            for m in batch.messages.unwrap_or_default() {
                if let Some(envelope) = m.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()) {
                    receiver.record(envelope["detail"].clone());
                }
                if let Some(handle) = m.receipt_handle {
                    let _ = sqs.delete_message().queue_url(&target_url).receipt_handle(handle).send().await;
                }
            }
        }
    }));
    let (base, server) = serve_router(&deps, LocalEvents::default()).await?;
    tasks.push(server);
    Ok(World { name: "moto", deps, base, target, tasks })
}

/// The account's events at the emulator not yet in `seen`, oldest first,
/// of the types the webhook endpoint subscribes to.
async fn new_events(stripe_base: &str, seen: &mut HashSet<String>) -> Result<Vec<String>, BoxError> {
    let mut fresh: Vec<Value> = visitpay_bench::stripe_events(stripe_base)
        .await?
        .into_iter()
        .filter(|e| e["id"].as_str().is_some_and(|id| seen.insert(id.to_owned())))
        .collect();
    fresh.reverse();
    Ok(fresh
        .into_iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| HANDLED_TYPES.contains(&t)))
        .map(|e| e.to_string())
        .collect())
}

struct Visible {
    staff_ms: f64,
    event_ms: f64,
    reads: usize,
}

/// POSTs `deliveries` as Stripe would, then reads the action as staff until
/// `shows` holds; and waits for the status event satisfying `announced`.
async fn time_until_visible(
    world: &World,
    http: &reqwest::Client,
    staff_token: &str,
    action: &ActionId,
    deliveries: &[String],
    shows: impl Fn(&Value) -> bool,
    announced: impl Fn(&Value) -> bool,
) -> Result<Visible, BoxError> {
    let url = format!("{}/actions/{}", world.base, action.as_str());
    let started = Instant::now();
    // Stripe's POSTs, and staff reading back to back from the first one on.
    let post = async {
        for body in deliveries {
            let signature = visitpay_bench::sign(WEBHOOK_SECRET, body, visitpay_bench::unix_now());
            let r = http
                .post(format!("{}/webhooks/stripe", world.base))
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body.clone())
                .send()
                .await?;
            if !r.status().is_success() {
                return Err::<(), BoxError>(format!("the webhook answered {}", r.status()).into());
            }
        }
        Ok(())
    };
    let read = async {
        let mut reads = 0;
        loop {
            reads += 1;
            let view: Value = http.get(&url).bearer_auth(staff_token).send().await?.error_for_status()?.json().await?;
            if shows(&view) {
                return Ok::<_, BoxError>((started.elapsed().as_secs_f64() * 1000.0, reads));
            }
            if started.elapsed() > WAIT {
                return Err(format!("{} never showed the change (last read: {view})", action.as_str()).into());
            }
        }
    };
    let (posted, read) = tokio::join!(post, read);
    posted?;
    let (staff_ms, reads) = read?;
    let announced_at = world.target.first(action.as_str(), announced).await?;
    let event_ms = announced_at.saturating_duration_since(started).as_secs_f64() * 1000.0;
    Ok(Visible { staff_ms, event_ms, reads })
}

struct Figures {
    paid: Vec<f64>,
    paid_event: Vec<f64>,
    refund: Vec<f64>,
    refund_event: Vec<f64>,
    reads: usize,
}

async fn visibility(world: &World, stripe_base: &str, payments: usize) -> Result<Figures, BoxError> {
    println!("==> {}: {payments} payments, then a refund of each, one after another", world.name);
    let http = reqwest::Client::new();
    let token = visitpay_local::token(JWT_SECRET, visitpay_bench::CLINIC, Role::Staff, "bench-staff");
    let mut seen = HashSet::new();
    new_events(stripe_base, &mut seen).await?; // what earlier parts left at the emulator
    let mut f = Figures { paid: vec![], paid_event: vec![], refund: vec![], refund_event: vec![], reads: 0 };
    for n in 0..payments {
        let (action, link) =
            visitpay_bench::seed_action(&world.deps, &[&format!("{}-{n}", world.name)], &format!("path-{n}")).await?;
        let session = visitpay_bench::open_and_pay(&world.deps, stripe_base, &link).await?;
        let deliveries = new_events(stripe_base, &mut seen).await?;
        let paid = time_until_visible(
            world,
            &http,
            &token,
            &action,
            &deliveries,
            |v| v["status"] == "paid",
            |d| d["status"] == "paid",
        )
        .await?;

        let s = visitpay_bench::stripe_call(http.get(format!("{stripe_base}/v1/checkout/sessions/{session}")), None)
            .await?;
        let intent = s["payment_intent"].as_str().ok_or("no payment intent")?;
        let body = format!("payment_intent={intent}&amount={REFUND}");
        visitpay_bench::stripe_call(http.post(format!("{stripe_base}/v1/refunds")), Some(body)).await?;
        let deliveries = new_events(stripe_base, &mut seen).await?;
        let refunded = time_until_visible(
            world,
            &http,
            &token,
            &action,
            &deliveries,
            |v| v["refunded_amount"] == REFUND,
            |d| d["refunded_amount"] == REFUND,
        )
        .await?;
        f.paid.push(paid.staff_ms);
        f.paid_event.push(paid.event_ms);
        f.refund.push(refunded.staff_ms);
        f.refund_event.push(refunded.event_ms);
        f.reads += paid.reads + refunded.reads;
    }
    Ok(f)
}

/// Counts the use cases' "write conflict, retrying" events.
#[derive(Clone, Default)]
struct Conflicts(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Conflicts {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == "write conflict, retrying" {
                    self.0 = true;
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Throughput {
    concurrency: usize,
    events: usize,
    batches: usize,
    seconds: f64,
    conflicts: usize,
    redelivered: usize,
}

/// Payments paid at the emulator (no webhook sent) on a fresh moto table;
/// their events as SQS batches of 10, with a payment's events in different
/// batches, so concurrent batches write the same actions.
async fn throughput_once(
    endpoint: &str,
    stripe_base: &str,
    payments: Arc<dyn Payments>,
    concurrency: usize,
    count: usize,
    conflicts: &Conflicts,
) -> Result<Throughput, BoxError> {
    let sdk = visitpay_bench::sdk(endpoint).await;
    let name = format!("bench-consumer-{concurrency}-{}", visitpay_bench::run_stamp());
    let store = moto_store(&sdk, &name).await?;
    let deps = visitpay_bench::deps(Arc::new(store), payments, visitpay_bench::unread_queue());
    visitpay_bench::seed_clinic(&deps).await?;
    let mut seen = HashSet::new();
    new_events(stripe_base, &mut seen).await?;
    let mut ids = Vec::new();
    let mut events = Vec::new();
    for n in 0..count {
        let (action, link) =
            visitpay_bench::seed_action(&deps, &[&format!("tp-{concurrency}-{n}")], &format!("tp-{n}")).await?;
        visitpay_bench::open_and_pay(&deps, stripe_base, &link).await?;
        events.extend(new_events(stripe_base, &mut seen).await?);
        ids.push(action);
    }
    // Every k-th event to batch k mod B: a payment's consecutive events part.
    let batches_n = events.len().div_ceil(10);
    let mut batches: Vec<Vec<(String, String)>> = vec![Vec::new(); batches_n];
    for (i, body) in events.iter().enumerate() {
        batches[i % batches_n].push((format!("msg-{concurrency}-{i}"), body.clone()));
    }
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let redelivered = Arc::new(AtomicUsize::new(0));
    let before = conflicts.0.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (deps, batches, next, redelivered) = (deps.clone(), batches.clone(), next.clone(), redelivered.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(batch) = batches.get(i) else { return Ok::<(), String>(()) };
                let mut pending: Vec<&(String, String)> = batch.iter().collect();
                // What Lambda does with reported failures: deliver them again.
                for receive in 1..=5u32 {
                    let deliveries: Vec<Delivery<'_>> = pending
                        .iter()
                        .map(|(id, body)| Delivery { message_id: id, receipt_handle: id, body, receive_count: receive })
                        .collect();
                    let response =
                        consumer::handle(&deps, sqs_event(&deliveries, "arn:aws:sqs:us-east-1:0:bench")).await;
                    let failed: HashSet<&str> =
                        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                    pending.retain(|(id, _)| failed.contains(id.as_str()));
                    if pending.is_empty() {
                        break;
                    }
                    redelivered.fetch_add(pending.len(), Ordering::Relaxed);
                }
                if !pending.is_empty() {
                    return Err(format!("{} messages failed five deliveries", pending.len()));
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    let seconds = started.elapsed().as_secs_f64();
    for id in &ids {
        let status = actions::get(&deps, &visitpay_bench::clinic(), id).await?.status();
        if status != ActionStatus::Paid {
            return Err(format!("the consumer left {} {status}, not paid", id.as_str()).into());
        }
    }
    Ok(Throughput {
        concurrency,
        events: events.len(),
        batches: batches_n,
        seconds,
        conflicts: conflicts.0.load(Ordering::Relaxed) - before,
        redelivered: redelivered.load(Ordering::Relaxed),
    })
}

fn ms(samples: &[f64]) -> Value {
    let p = Percentiles::of(samples);
    json!({"n": p.n, "p50": p.p50, "p90": p.p90, "p99": p.p99, "max": p.max,
           "samples": samples.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()})
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let conflicts = Conflicts::default();
    let filter = tracing_subscriber::filter::Targets::new().with_target("visitpay_app", tracing::Level::DEBUG);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(conflicts.clone(), filter)),
    )?;
    let endpoint = visitpay_bench::moto_endpoint()?;
    let stripe_base = visitpay_bench::stripe_emulator().await?;
    let payments: Arc<dyn Payments> = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{stripe_base}/")))?);

    println!(
        "\n==> consumer throughput against moto: {} payments' events, batches of 10, 1, 4 and 10 at once",
        args.throughput_payments
    );
    let mut runs = Vec::new();
    for concurrency in [1, 4, 10] {
        let t = throughput_once(
            &endpoint,
            &stripe_base,
            payments.clone(),
            concurrency,
            args.throughput_payments,
            &conflicts,
        )
        .await?;
        println!(
            "{:>2} at once: {} events in {} batches, {:.2} s, {:.0} events/s, {} write conflicts retried, {} redelivered",
            t.concurrency,
            t.events,
            t.batches,
            t.seconds,
            t.events as f64 / t.seconds,
            t.conflicts,
            t.redelivered
        );
        runs.push(t);
    }

    let mut visible = Vec::new();
    println!(
        "\n==> visible: Stripe's webhook POST to the first staff read showing the change, and to the status event \
         at the EventBridge target"
    );
    {
        let world = embedded_world(payments.clone()).await?;
        visitpay_bench::seed_clinic(&world.deps).await?;
        visible.push((world.name, args.payments, visibility(&world, &stripe_base, args.payments).await?));
    }
    {
        let world = moto_world(&endpoint, payments.clone()).await?;
        visitpay_bench::seed_clinic(&world.deps).await?;
        visible.push((world.name, args.moto_payments, visibility(&world, &stripe_base, args.moto_payments).await?));
    }
    println!("\nVisible after Stripe's webhook POST, ms");
    println!("{:<10} {:>8} {:<34} {:>8} {:>8} {:>8} {:>8}", "store", "payments", "figure", "p50", "p90", "p99", "max");
    let mut rows = Vec::new();
    for (name, n, f) in &visible {
        for (figure, samples) in [
            ("paid visible to staff", &f.paid),
            ("paid status event at the target", &f.paid_event),
            ("refund visible to staff", &f.refund),
            ("refund status event at the target", &f.refund_event),
        ] {
            let p = Percentiles::of(samples);
            println!("{name:<10} {n:>8} {figure:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", p.p50, p.p90, p.p99, p.max);
        }
        rows.push(json!({
            "store": name, "payments": n, "staff_reads": f.reads,
            "paid_visible_ms": ms(&f.paid), "paid_event_ms": ms(&f.paid_event),
            "refund_visible_ms": ms(&f.refund), "refund_event_ms": ms(&f.refund_event),
        }));
    }

    let report = json!({
        "benchmark": "event_path",
        "measured_at": visitpay_bench::now_rfc3339(),
        "visible": {
            "from": "the first POST /webhooks/stripe of the events Stripe sends for the change",
            "to_staff": "the first GET /actions/{id} (staff) showing it, read back to back",
            "to_event": "the status event's arrival at the EventBridge target (embedded: the POSTed URL; \
                         moto: the SQS queue a rule on the bus targets; the stream read 4 times a second)",
            "rows": rows,
        },
        "consumer_throughput_moto": runs.iter().map(|t| json!({
            "concurrent_batches": t.concurrency, "events": t.events, "batches": t.batches,
            "seconds": (t.seconds * 1000.0).round() / 1000.0,
            "events_per_s": (t.events as f64 / t.seconds).round(),
            "write_conflicts": t.conflicts, "redelivered": t.redelivered,
        })).collect::<Vec<_>>(),
    });
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {}", path.display());
    }
    Ok(())
}
