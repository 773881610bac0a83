//! AWS requests per completed payment: assign → checkout → webhook →
//! consumer → paid, each function with its own AWS clients carrying a
//! counting interceptor, against moto and the project's Stripe emulator.
//!
//!     VISITPAY_BENCH_AWS_ENDPOINT=http://127.0.0.1:PORT aws-requests [OUT.json]
//!
//! Every HTTP attempt is counted (SDK retries included). What Lambda's SQS
//! event source mapping does on the consumer's behalf (ReceiveMessage,
//! DeleteMessageBatch) is counted apart: AWS bills it, but no function sends it.
//! So is publish-action-events' PutEvents, beside the path once it committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::json;
use visitpay_app::actions::{self, AssignRequest, Assigned};
use visitpay_app::ports::Payments;
use visitpay_app::webhook;
use visitpay_aws::dynamodb::items::item_size;
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::eventbridge::EventBridgeBus;
use visitpay_aws::sqs::SqsQueue;
use visitpay_aws::tables;
use visitpay_bench::{STRIPE_KEY, WEBHOOK_SECRET};
use visitpay_devkit::setup::{deliveries, ensure_queue, sqs_event};
use visitpay_domain::{ActionStatus, Locale, VisitId};
use visitpay_edge::lambda::consumer;
use visitpay_local::stream_mapping::StreamMapping;
use visitpay_stripe::webhook::{verify, Verified};
use visitpay_stripe::StripePayments;

/// What one function sent: requests by `Service.Operation`, and DynamoDB
/// capacity, both as moto reports it (ReturnConsumedCapacity=TOTAL) and
/// estimated from the items by DynamoDB's published sizing rules.
#[derive(Debug, Clone, Default)]
struct Tally {
    requests: BTreeMap<String, u32>,
    reported_units: f64,
    estimated_read_units: f64,
    estimated_write_units: f64,
}

/// Counts every attempt (retries included) and asks DynamoDB for its capacity.
#[derive(Debug, Clone)]
struct Counter {
    tally: Arc<Mutex<Tally>>,
    /// Each GSI's partition key attribute: an item carrying it is written to that index too.
    gsi_keys: Arc<Vec<String>>,
    /// Item sizes seen (written or read) by any function, by key: an update
    /// is priced on the item it changes, which it does not carry.
    sizes: Sizes,
}

type Sizes = Arc<Mutex<HashMap<(String, String), usize>>>;

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    match (item.get("pk"), item.get("sk")) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some((pk.clone(), sk.clone())),
        _ => None,
    }
}

/// A Query's read consistency, kept from its input for pricing its output.
#[derive(Debug, Clone, Copy)]
struct EventuallyConsistent(bool);
impl Storable for EventuallyConsistent {
    type Storer = StoreReplace<Self>;
}

fn read_units(bytes: usize, eventually_consistent: bool) -> f64 {
    let units = bytes.max(1).div_ceil(4096) as f64;
    if eventually_consistent {
        units / 2.0
    } else {
        units
    }
}

impl Counter {
    fn new(gsi_keys: Arc<Vec<String>>, sizes: Sizes) -> Self {
        Counter { tally: Arc::default(), gsi_keys, sizes }
    }

    fn seen(&self, item: &HashMap<String, AttributeValue>) {
        if let Some(key) = key_of(item) {
            self.sizes.lock().unwrap().insert(key, item_size(item));
        }
    }

    /// A full-item put: 1 unit per KB on the table and on every index the item is in. A
    /// lower bound: moving an item's index key also deletes the old index entry.
    fn put_units(&self, item: &HashMap<String, AttributeValue>) -> f64 {
        self.seen(item);
        let per_copy = item_size(item).max(1).div_ceil(1024) as f64;
        let indexes = self.gsi_keys.iter().filter(|k| item.contains_key(k.as_str())).count() as f64;
        per_copy * (1.0 + indexes)
    }

    /// An update of an item without index keys (invoices): 1 unit per KB of
    /// the item as last seen; an unseen item counts as 1 KB.
    fn update_units(&self, key: &HashMap<String, AttributeValue>) -> f64 {
        let size = key_of(key).and_then(|k| self.sizes.lock().unwrap().get(&k).copied()).unwrap_or(1024);
        size.max(1).div_ceil(1024) as f64
    }

    fn snapshot(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }
}

fn reported(c: Option<&ConsumedCapacity>) -> f64 {
    c.and_then(|c| c.capacity_units).unwrap_or(0.0)
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "visitpay-request-counter"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let total = Some(ReturnConsumedCapacity::Total);
        let input = ctx.input_mut();
        let mut writes = 0.0;
        if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = total;
            cfg.interceptor_state().store_put(EventuallyConsistent(i.consistent_read != Some(true)));
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = total;
            writes = i.item.as_ref().map_or(0.0, |item| self.put_units(item));
        } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = total;
            // Transactions cost twice: prepare and commit.
            for t in i.transact_items.iter().flatten() {
                if let Some(put) = t.put() {
                    writes += 2.0 * self.put_units(put.item());
                } else if let Some(update) = t.update() {
                    writes += 2.0 * self.update_units(update.key());
                } else if let Some(check) = t.condition_check() {
                    // A ConditionCheck is priced as a write of the item it
                    // reads, transactional ("Capacity unit consumption for
                    // transactions", DynamoDB Developer Guide).
                    writes += 2.0 * self.update_units(check.key());
                } else {
                    return Err(
                        "unpriced transaction member (only Put, Update and ConditionCheck are estimated)".into()
                    );
                }
            }
        }
        self.tally.lock().unwrap().estimated_write_units += writes;
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or("unknown".to_owned(), |m| format!("{}.{}", m.service(), m.name()));
        *self.tally.lock().unwrap().requests.entry(op).or_default() += 1;
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = ctx.output_or_error() else { return Ok(()) };
        let mut t = self.tally.lock().unwrap();
        if let Some(o) = output.downcast_ref::<GetItemOutput>() {
            t.reported_units += reported(o.consumed_capacity.as_ref());
            o.item.iter().for_each(|i| self.seen(i));
            t.estimated_read_units += read_units(o.item.as_ref().map_or(0, item_size), false);
        } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
            t.reported_units += o.consumed_capacity.iter().flatten().map(|c| reported(Some(c))).sum::<f64>();
            let items = o.responses.iter().flat_map(|r| r.values()).flatten();
            t.estimated_read_units +=
                items.inspect(|i| self.seen(i)).map(|i| read_units(item_size(i), false)).sum::<f64>();
        } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
            t.reported_units += reported(o.consumed_capacity.as_ref());
            let eventual = cfg.load::<EventuallyConsistent>().is_none_or(|e| e.0);
            // A query is priced on the sum of the items it read.
            o.items.iter().flatten().for_each(|i| self.seen(i));
            t.estimated_read_units += read_units(o.items.iter().flatten().map(item_size).sum(), eventual);
        } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
            t.reported_units += reported(o.consumed_capacity.as_ref());
        } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
            t.reported_units += o.consumed_capacity.iter().flatten().map(|c| reported(Some(c))).sum::<f64>();
        }
        Ok(())
    }
}

fn dynamodb(sdk: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(counter.clone()).build(),
    )
}

fn eventbridge(sdk: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk).interceptor(counter.clone()).build(),
    )
}

fn sqs(sdk: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(sdk).interceptor(counter.clone()).build())
}

#[tokio::main]
async fn main() -> Result<(), visitpay_bench::BoxError> {
    // The functions' own JSON logs, on stderr, with RUST_LOG (default: warnings and errors).
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    visitpay_edge::telemetry::init_stderr();
    let endpoint = visitpay_bench::moto_endpoint()?;
    let out = std::env::args().nth(1);
    let sdk = visitpay_bench::sdk(&endpoint).await;
    let table = format!("bench-{}", visitpay_bench::run_stamp());
    let definition = tables::main_table();
    let gsi_keys = Arc::new(definition.global_secondary_indexes.iter().map(|i| i.partition_key.clone()).collect());

    let (stripe_base, emulator) = visitpay_bench::stripe_emulator_handle().await?;
    // Stripe's API calls visitpay makes (the emulator logs each; the
    // benchmark's own reads of events are taken out around each step).
    let stripe_calls = || emulator.requests().len();
    let payments: Arc<dyn Payments> = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{stripe_base}/")))?);

    // One set of counted clients per function, as each Lambda has its own.
    // The patient's page view and the event source mapping are counted apart:
    // neither is in the assign → paid path the target is about.
    let functions = [
        "setup",
        "assign-action",
        "create-checkout",
        "stripe-webhook",
        "process-payment-events",
        "sqs-event-source",
        "patient-page (action-status)",
        "publish-action-events",
    ];
    // The status events are published beside the path, once it has committed.
    let in_path = |f: &str| !matches!(f, "sqs-event-source" | "patient-page (action-status)" | "publish-action-events");
    let sizes = Sizes::default();
    let counters: BTreeMap<&str, Counter> =
        functions.iter().map(|f| (*f, Counter::new(Arc::clone(&gsi_keys), Arc::clone(&sizes)))).collect();
    let queue_url = ensure_queue(&sqs(&sdk, &counters["setup"]), &format!("{table}-events"), 5, 30).await?;
    let deps_for = |function: &str| {
        visitpay_bench::deps(
            Arc::new(DynamoStore::new(dynamodb(&sdk, &counters[function]), table.clone())),
            payments.clone(),
            Arc::new(SqsQueue::new(sqs(&sdk, &counters[function]), queue_url.clone())),
        )
    };

    // Setup, not counted: the table, a clinic switched on, two selected invoices.
    let setup = deps_for("setup");
    let creator = DynamoStore::new(dynamodb(&sdk, &counters["setup"]), table.clone());
    visitpay_devkit::setup::ensure_table(&creator, &definition).await?;
    visitpay_bench::seed_clinic(&setup).await?;
    let ids = visitpay_bench::seed_selected_invoices(&setup, &["1", "2"]).await?;
    let clinic = visitpay_bench::clinic();

    // 1. assign-action (with an Idempotency-Key, as the clinic web app sends).
    let request = AssignRequest {
        patient_id: visitpay_bench::patient(),
        invoice_ids: ids,
        locale: Locale::FrCa,
        notify: Default::default(),
    };
    let visit = VisitId::parse("bench-visit")?;
    let staff = visitpay_bench::staff();
    let Assigned::Created { action, patient_url } =
        actions::assign(&deps_for("assign-action"), &staff, &clinic, &visit, request, Some("bench-key-1"), |a| {
            serde_json::to_string(&visitpay_edge::http::views::ActionView::new(a, None)).expect("serializable")
        })
        .await?
    else {
        return Err("expected a new action".into());
    };
    let token = patient_url.rsplit('/').next().unwrap().to_owned();

    // The patient opens the link (GET /patient/actions/{token}).
    actions::for_patient(&deps_for("patient-page (action-status)"), &token, actions::Reach::Look).await?;

    // 2. create-checkout, then the patient pays at "Stripe" (no webhook sent).
    let before = stripe_calls();
    visitpay_bench::open_and_pay(&deps_for("create-checkout"), &stripe_base, &token).await?;
    let stripe_at_checkout = stripe_calls() - before;
    let events = visitpay_bench::stripe_events(&stripe_base).await?;
    let before_webhook = stripe_calls();

    // 3. stripe-webhook: each event Stripe sends, signed as Stripe signs.
    let webhook_deps = deps_for("stripe-webhook");
    let mut webhook_events = 0;
    for e in events.iter().rev() {
        let body = e.to_string();
        let signature = visitpay_bench::sign(WEBHOOK_SECRET, &body, visitpay_bench::unix_now());
        let secrets = &webhook_deps.config.webhook_secrets;
        if let Verified::Queue(delivery) =
            verify(body.as_bytes(), Some(&signature), secrets, visitpay_bench::unix_now())?
        {
            webhook::accept(&webhook_deps, delivery).await?;
            webhook_events += 1;
        }
    }

    // 4. process-payment-events, fed as the event source mapping feeds it.
    let consumer = deps_for("process-payment-events");
    let source = sqs(&sdk, &counters["sqs-event-source"]);
    let received = source.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await?;
    let messages = received.messages.unwrap_or_default();
    let deliveries = deliveries(&messages);
    let failures =
        consumer::handle(&consumer, sqs_event(&deliveries, "arn:aws:sqs:us-east-1:000000000000:bench")).await;
    if !failures.batch_item_failures.is_empty() {
        return Err("the consumer reported failures".into());
    }
    let mut delete = source.delete_message_batch().queue_url(&queue_url);
    for (i, d) in deliveries.iter().enumerate() {
        delete = delete.entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(d.receipt_handle)
                .build()?,
        );
    }
    delete.send().await?;

    let paid = actions::get(&setup, &clinic, action.action_id()).await?;
    if paid.status() != ActionStatus::Paid {
        return Err(format!("expected paid, got {}", paid.status()).into());
    }
    let stripe_at_consumer = stripe_calls() - before_webhook;

    // Stripe calls beside the path (not counted as AWS requests): the same
    // events again, as Stripe redelivers them, and a staff refund with its events.
    let before = stripe_calls();
    for e in events.iter().rev() {
        consumer::apply_message(&setup, Some(&e.to_string())).await?;
    }
    let stripe_per_duplicate = stripe_calls() - before;
    let before = stripe_calls();
    actions::refund(&setup, &staff, &clinic, action.action_id(), None).await?;
    let stripe_at_refund = stripe_calls() - before;
    let refund_events = visitpay_bench::stripe_events(&stripe_base).await?;
    let before = stripe_calls();
    for e in refund_events.iter().rev().filter(|e| e["type"].as_str().is_some_and(|t| t.contains("refund"))) {
        consumer::apply_message(&setup, Some(&e.to_string())).await?;
    }
    let stripe_at_refund_events = stripe_calls() - before;

    // 5. publish-action-events, fed the table's stream as Lambda's event
    // source mapping feeds it (its stream reads are Lambda's, not counted).
    let bus_name = format!("{table}-status");
    aws_sdk_eventbridge::Client::new(&sdk).create_event_bus().name(&bus_name).send().await?;
    let bus = EventBridgeBus::new(eventbridge(&sdk, &counters["publish-action-events"]), bus_name);
    let mut mapping = StreamMapping::connect(&endpoint, "us-east-1", &table).await?;
    mapping.drain(&bus, 10).await?;

    // Report.
    let mut rows = Vec::new();
    let (mut total, mut reads, mut writes, mut reported_total) = (0, 0.0, 0.0, 0.0);
    println!("AWS requests per completed payment (card, {webhook_events} webhook event(s), 2 invoices), against moto");
    println!("{:<30} {:>8} {:>7} {:>7} {:>7}  operations", "function", "requests", "RCU", "WCU", "moto CU");
    for f in &functions[1..] {
        let t = counters[f].snapshot();
        let n: u32 = t.requests.values().sum();
        if in_path(f) {
            total += n;
            reads += t.estimated_read_units;
            writes += t.estimated_write_units;
            reported_total += t.reported_units;
        }
        let list: Vec<String> = t.requests.iter().map(|(op, c)| format!("{op}×{c}")).collect();
        println!(
            "{f:<30} {n:>8} {:>7.1} {:>7.1} {:>7.1}  {}",
            t.estimated_read_units,
            t.estimated_write_units,
            t.reported_units,
            list.join(", ")
        );
        rows.push(json!({"function": f, "in_target_path": in_path(f), "requests": n, "operations": t.requests,
                         "estimated_read_units": t.estimated_read_units,
                         "estimated_write_units": t.estimated_write_units,
                         "moto_reported_capacity_units": t.reported_units}));
    }
    println!(
        "{:<30} {:>8} {reads:>7.1} {writes:>7.1} {reported_total:>7.1}  (target ≤ 8 requests; plus the event source \
         mapping's own)",
        "assign → paid", total
    );
    println!(
        "RCU/WCU: estimated from the items each request carried, by DynamoDB's sizing rules (reads 4 KB, \
         writes 1 KB, transactions ×2, every index written). moto's own ReturnConsumedCapacity is a constant per \
         operation, shown for comparison."
    );
    let stripe_per_payment = stripe_at_checkout + stripe_at_consumer;
    println!(
        "Stripe calls per payment: {stripe_per_payment} (create-checkout {stripe_at_checkout}, webhook and consumer \
         {stripe_at_consumer}); the same events delivered again: {stripe_per_duplicate}; a staff refund: \
         {stripe_at_refund} and its events {stripe_at_refund_events} (Stripe's live limit: 100 a second per account)"
    );
    let report = json!({
        "benchmark": "aws_requests_per_payment",
        "stripe_calls": {"per_payment": stripe_per_payment, "create_checkout": stripe_at_checkout,
                         "webhook_and_consumer": stripe_at_consumer, "duplicate_delivery": stripe_per_duplicate,
                         "refund": stripe_at_refund, "refund_events": stripe_at_refund_events},
        "measured_at": visitpay_bench::now_rfc3339(),
        "webhook_events": webhook_events,
        "functions_total": total,
        "estimated_read_units": reads,
        "estimated_write_units": writes,
        "moto_reported_capacity_units": reported_total,
        "by_function": rows,
    });
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {path}");
    }
    Ok(())
}
