//! Fairness between clinics on the payment-event queue: one clinic's burst
//! of payment events must not hold up another clinic's payment.
//!
//! A flooding clinic's N payments are made at the emulator first (their
//! events of the types visitpay subscribes to kept: one
//! `checkout.session.completed` each); then its N events go on the queue at
//! once, and right behind them the
//! one payment of a quiet clinic. The consumer (process-payment-events'
//! handler) takes ten batches of ten at a time, as the template's event
//! source mapping does (`MaximumConcurrency: 10`). Measured: from the quiet
//! clinic's events being queued to its action read back `paid`, and to the
//! flood drained; with messages grouped by clinic (what `SqsQueue` sends:
//! SQS fair queues) and without groups (first come, first served). The
//! embedded queue emulates SQS's documented noisy-neighbour rule (at least
//! 30 of a tenant's messages in flight and over 10% of all), not its second
//! measure (processing time), so SQS is at least as fair. The embedded
//! store answers in microseconds, so each event is given 10 ms more, the
//! two DynamoDB round trips it costs in AWS; without it, batches would never
//! overlap and no tenant would ever have 30 messages in flight.
//!
//!     fairness [--flood 500] [--out FILE.json]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use visitpay_app::actions::{self, AssignRequest, Assigned};
use visitpay_app::ports::{EventQueue, Payments, QueueMessage};
use visitpay_app::{invoices, Caller, Role};
use visitpay_bench::{BoxError, STRIPE_KEY};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionId, ActionStatus, ClinicId, InvoiceId, Locale, PatientId, UserId, VisitId};
use visitpay_edge::lambda::consumer;
use visitpay_stripe::StripePayments;

const FLOODING: (&str, &str) = ("flooding-clinic", "acct_1Flooding");
const QUIET: (&str, &str) = ("quiet-clinic", "acct_1Quiet");
/// DynamoDB's two round trips per event in Lambda, as modelled.
const EVENT_LATENCY: Duration = Duration::from_millis(10);

struct Args {
    flood: usize,
    out: Option<String>,
}

fn args() -> Result<Args, BoxError> {
    let mut args = Args { flood: 500, out: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flood" => args.flood = it.next().ok_or("--flood N")?.parse()?,
            "--out" => args.out = Some(it.next().ok_or("--out FILE")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

fn clinic(c: &str) -> Result<ClinicId, BoxError> {
    Ok(ClinicId::parse(c)?)
}

async fn seed_clinic(deps: &visitpay_bench::BenchDeps, (c, account): (&str, &str)) -> Result<(), BoxError> {
    visitpay_bench::seed_clinic_as(deps, clinic(c)?, account).await
}

/// An action of one 25.00 invoice, opened and paid at the emulator (no
/// webhook); its id.
async fn paid_at_stripe(
    deps: &visitpay_bench::BenchDeps,
    stripe_base: &str,
    c: &str,
    n: usize,
) -> Result<ActionId, BoxError> {
    let (clinic, patient) = (clinic(c)?, PatientId::parse(&format!("p{n}"))?);
    let invoice = InvoiceId::parse(&format!("inv-{n}"))?;
    invoices::import(deps, &clinic, &patient, &invoice, visitpay_bench::invoice_input()).await?;
    invoices::select(deps, &clinic, &patient, std::slice::from_ref(&invoice)).await?;
    let staff = Caller { sub: UserId::parse("bench-staff")?, role: Role::Staff, clinic_id: Some(clinic.clone()) };
    let request = AssignRequest {
        patient_id: patient,
        invoice_ids: vec![invoice],
        locale: Locale::FrCa,
        notify: Default::default(),
    };
    let visit = VisitId::parse(&format!("v{n}"))?;
    let Assigned::Created { action, patient_url } =
        actions::assign(deps, &staff, &clinic, &visit, request, None, |_| String::new()).await?
    else {
        return Err("expected a new action".into());
    };
    let token = patient_url.rsplit('/').next().ok_or("no token")?;
    visitpay_bench::open_and_pay(deps, stripe_base, token).await?;
    Ok(action.action_id().clone())
}

struct Run {
    quiet_paid_ms: f64,
    flood_drained_ms: f64,
    flood_events: usize,
}

async fn run_once(
    grouped: bool,
    flood: usize,
    payments: Arc<dyn Payments>,
    stripe_base: &str,
) -> Result<Run, BoxError> {
    let queue = EmbeddedQueue::new(5, Duration::from_millis(100));
    let queue = Arc::new(if grouped { queue } else { queue.without_groups() });
    let store = Arc::new(visitpay_devkit::embedded::EmbeddedStore::new());
    let deps = visitpay_bench::deps(store, payments, visitpay_bench::unread_queue());
    seed_clinic(&deps, FLOODING).await?;
    seed_clinic(&deps, QUIET).await?;
    let mut flooding = Vec::new();
    for n in 0..flood {
        flooding.push(paid_at_stripe(&deps, stripe_base, FLOODING.0, n).await?);
    }
    let quiet = paid_at_stripe(&deps, stripe_base, QUIET.0, flood).await?;
    // This run's events only: each run's actions are new, older events name actions this store does not have.
    let mine = |e: &Value| {
        let subscribed = e["type"].as_str().is_some_and(visitpay_stripe::events::handles);
        e["data"]["object"]["metadata"]["visitpay_action_id"].as_str().filter(|_| subscribed).map(str::to_owned)
    };
    let flood_ids: std::collections::HashSet<String> = flooding.iter().map(|a| a.as_str().to_owned()).collect();
    let flood_events: Vec<Value> = visitpay_bench::all_stripe_events(stripe_base, FLOODING.1)
        .await?
        .into_iter()
        .filter(|e| mine(e).is_some_and(|a| flood_ids.contains(&a)))
        .collect();
    let quiet_events: Vec<Value> = visitpay_bench::all_stripe_events(stripe_base, QUIET.1)
        .await?
        .into_iter()
        .filter(|e| mine(e).as_deref() == Some(quiet.as_str()))
        .collect();

    let consumer_deps = deps.clone();
    let worker = queue.clone();
    // The embedded store answers at once, so batches would never overlap;
    // in AWS each event costs two DynamoDB round trips (a BatchGetItem and a
    // TransactWriteItems, single-digit milliseconds each): modelled as
    // EVENT_LATENCY per event, after the real work.
    let consumer = tokio::spawn(async move {
        worker
            .run_concurrently(10, |event| {
                let deps = consumer_deps.clone();
                async move {
                    let records = event.records.len() as u32;
                    let answer = consumer::handle(&deps, event).await;
                    tokio::time::sleep(EVENT_LATENCY * records).await;
                    answer
                }
            })
            .await
    });
    for e in &flood_events {
        queue.enqueue(&QueueMessage::from_body(&e.to_string())?).await?;
    }
    let started = Instant::now();
    for e in &quiet_events {
        queue.enqueue(&QueueMessage::from_body(&e.to_string())?).await?;
    }
    let quiet_clinic = clinic(QUIET.0)?;
    let flooding_clinic = clinic(FLOODING.0)?;
    let mut quiet_paid = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if quiet_paid.is_none() && actions::get(&deps, &quiet_clinic, &quiet).await?.status() == ActionStatus::Paid {
            quiet_paid = Some(started.elapsed());
        }
        if quiet_paid.is_some() && queue.depth() == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("the queue did not drain in ten minutes".into());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let drained = started.elapsed();
    consumer.abort();
    for a in &flooding {
        if actions::get(&deps, &flooding_clinic, a).await?.status() != ActionStatus::Paid {
            return Err(format!("{a} of the flooding clinic was not applied").into());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Run {
        quiet_paid_ms: ms(quiet_paid.unwrap_or(drained)),
        flood_drained_ms: ms(drained),
        flood_events: flood_events.len(),
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let (stripe_base, emulator) = visitpay_bench::stripe_emulator_handle().await?;
    emulator.connect_account(FLOODING.1);
    emulator.connect_account(QUIET.1);
    let payments: Arc<dyn Payments> = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{stripe_base}/")))?);
    println!(
        "\n==> fairness: {} payments' events of one clinic queued at once, then one payment of another; \
         ten batches of ten in flight",
        args.flood
    );
    let grouped = run_once(true, args.flood, payments.clone(), &stripe_base).await?;
    let plain = run_once(false, args.flood, payments.clone(), &stripe_base).await?;
    println!("{:<34} {:>18} {:>18}", "queue", "quiet clinic paid", "flood drained");
    for (name, r) in [("grouped by clinic (fair queue)", &grouped), ("no groups (first come)", &plain)] {
        println!("{name:<34} {:>15.1} ms {:>15.1} ms", r.quiet_paid_ms, r.flood_drained_ms);
    }
    println!(
        "the quiet clinic waits {:.1}% of the flood's time with groups, {:.1}% without",
        100.0 * grouped.quiet_paid_ms / grouped.flood_drained_ms,
        100.0 * plain.quiet_paid_ms / plain.flood_drained_ms
    );
    let report = json!({
        "benchmark": "fairness",
        "measured_at": visitpay_bench::now_rfc3339(),
        "flood_payments": args.flood,
        "flood_events": grouped.flood_events,
        "modelled_event_latency_ms": EVENT_LATENCY.as_millis(),
        "grouped": {"quiet_paid_ms": grouped.quiet_paid_ms, "flood_drained_ms": grouped.flood_drained_ms},
        "no_groups": {"quiet_paid_ms": plain.quiet_paid_ms, "flood_drained_ms": plain.flood_drained_ms},
    });
    if let Some(path) = args.out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {path}");
    }
    Ok(())
}
