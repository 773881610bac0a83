//! Status events against moto: the table's DynamoDB Stream (moto serves it)
//! read as Lambda's event source mapping would (`visitpay_local::stream_mapping`;
//! moto runs no Lambda, so the mapping is the one piece stood in for), through
//! publish-action-events' handler and the EventBridge adapter to a moto bus,
//! whose rule sends them to an SQS queue read back here: the EMR's side.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::support::kit::{dynamodb_store, moto_endpoint};
use crate::support::*;
use serde_json::{json, Value};
use visitpay_app::actions;
use visitpay_app::ports::Store;
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::eventbridge::EventBridgeBus;
use visitpay_domain::{ActionStatus, ACTION_CHANGED, EVENT_SOURCE};
use visitpay_local::stream_mapping::StreamMapping;

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// The EMR's side on moto: a bus, a rule for visitpay's status events, an SQS
/// queue as its target. Returns the bus name and the queue URL.
async fn emr_rule(sdk: &aws_config::SdkConfig, name: &str) -> (String, String) {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bus = format!("{name}-status");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs.create_queue().queue_name(format!("{name}-emr")).send().await.unwrap().queue_url.unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let pattern = json!({ "source": [EVENT_SOURCE], "detail-type": [ACTION_CHANGED] }).to_string();
    events.put_rule().name("emr-action-changes").event_bus_name(&bus).event_pattern(pattern).send().await.unwrap();
    events
        .put_targets()
        .rule("emr-action-changes")
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("emr-queue").arn(queue_arn).build().unwrap())
        .send()
        .await
        .unwrap();
    (bus, queue_url)
}

/// A fresh table and the EMR's side (`emr_rule`) on moto, and the
/// EventBridge adapter publishing to its bus.
async fn emr_on_moto(prefix: &str) -> (aws_config::SdkConfig, DynamoStore, EventBridgeBus, String) {
    let sdk = sdk().await;
    let store = dynamodb_store(prefix).await;
    let (bus_name, queue_url) = emr_rule(&sdk, &format!("{prefix}-{}", store.table())).await;
    let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&sdk), bus_name);
    (sdk, store, bus, queue_url)
}

/// The table's whole stream, from its oldest record, through
/// publish-action-events' handler; how many action records it handed over.
async fn publish_the_stream(store: &DynamoStore, bus: &EventBridgeBus) -> usize {
    let mut mapping = StreamMapping::connect(&moto_endpoint(), "us-east-1", store.table()).await.unwrap();
    mapping.drain(bus, 20).await.unwrap()
}

/// Everything the EMR's queue holds, as EventBridge delivered it.
async fn received(sdk: &aws_config::SdkConfig, queue_url: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut out = Vec::new();
    loop {
        let batch = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
        let messages = batch.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message().queue_url(queue_url).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
}

/// Each `(action_id, version)` once, in version order: what an EMR keeps.
fn deduplicated(events: &[Value]) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut details: Vec<Value> = events
        .iter()
        .map(|e| e["detail"].clone())
        .filter(|d| seen.insert((d["action_id"].as_str().unwrap().to_owned(), d["version"].as_u64().unwrap())))
        .collect();
    details.sort_by_key(|d| d["version"].as_u64());
    details
}

/// assign → checkout → paid → partial refund → refund; the action at the end.
async fn scripted_payment(deps: &TestDeps, stripe: &StripeFixture) -> StoredAction {
    let paid = paid_action(deps, stripe, "c1", &[("1", 3000, ""), ("2", 1500, "")]).await;
    actions::refund(deps, &staff("c1"), &clinic("c1"), paid.action_id(), Some(1000)).await.unwrap();
    deliver_all(deps, stripe).await;
    actions::refund(deps, &staff("c1"), &clinic("c1"), paid.action_id(), None).await.unwrap();
    deliver_all(deps, stripe).await;
    let done = action_of(deps, "c1", paid.action_id()).await;
    assert_eq!(done.status(), ActionStatus::Refunded);
    done
}

/// What the EMR sees of each event: status, previous status, refunded amount, version.
fn shown(d: &Value) -> (String, Option<String>, i64, u64) {
    (
        d["status"].as_str().unwrap().to_owned(),
        d["previous_status"].as_str().map(str::to_owned),
        d["refunded_amount"].as_i64().unwrap(),
        d["version"].as_u64().unwrap(),
    )
}

/// The embedded store (the laptop run) tells its subscribers the same
/// changes, in the same order, as the table's stream gives the EMR on moto.
#[tokio::test]
async fn the_embedded_store_tells_the_same_changes_as_the_tables_stream() {
    let (sdk, store, bus, queue_url) = emr_on_moto("same").await;
    let stripe = stripe_emulator(None).await;
    let (deps, _) = deps_for_payments(Arc::new(store.clone()) as Arc<dyn Store>, &stripe, None);
    scripted_payment(&deps, &stripe).await;
    publish_the_stream(&store, &bus).await;
    let from_moto: Vec<_> = deduplicated(&received(&sdk, &queue_url).await).iter().map(shown).collect();

    let embedded = Arc::new(visitpay_devkit::embedded::EmbeddedStore::new());
    let mut changes = embedded.changes();
    let stripe = stripe_emulator(None).await;
    let (deps, _) = deps_for_payments(embedded.clone() as Arc<dyn Store>, &stripe, None);
    scripted_payment(&deps, &stripe).await;
    let mut from_embedded = Vec::new();
    while let Ok(change) = changes.try_recv() {
        from_embedded.push(shown(&serde_json::to_value(change).unwrap()));
    }
    assert_eq!(from_moto.len(), 5, "{from_moto:?}");
    assert_eq!(from_embedded, from_moto);
}

#[tokio::test]
async fn the_emr_receives_exactly_the_actions_transitions_in_order_once_each() {
    let (sdk, store, bus, queue_url) = emr_on_moto("status").await;
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(Arc::new(store.clone()) as Arc<dyn Store>, &stripe, None);
    let done = scripted_payment(&deps, &stripe).await;

    let delivered = publish_the_stream(&store, &bus).await;
    assert!(delivered >= 5, "{delivered} action records");
    let first = received(&sdk, &queue_url).await;

    // The stream delivers every record again (a retried batch, a replayed shard).
    publish_the_stream(&store, &bus).await;
    let again = received(&sdk, &queue_url).await;
    assert_eq!(deduplicated(&again), deduplicated(&first), "a duplicated delivery publishes nothing new");

    let schema: Value =
        serde_json::from_str(include_str!("../docs/events/payment-action-changed.schema.json")).unwrap();
    for event in first.iter().chain(&again) {
        assert_eq!(
            (event["source"].as_str(), event["detail-type"].as_str()),
            (Some(EVENT_SOURCE), Some(ACTION_CHANGED))
        );
        schema::conforms(&schema, &event["detail"]).unwrap_or_else(|e| panic!("{e}: {event}"));
    }
    let events = deduplicated(&first);
    let seen: Vec<(&str, Option<&str>, i64)> = events
        .iter()
        .map(|d| (d["status"].as_str().unwrap(), d["previous_status"].as_str(), d["refunded_amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("assigned", None, 0),
            ("checkout_open", Some("assigned"), 0),
            ("paid", Some("checkout_open"), 0),
            ("partially_refunded", Some("paid"), 1000),
            ("refunded", Some("partially_refunded"), 4500),
        ]
    );
    // The same as the action's own history of transitions.
    // (A charge's payment method is written to the paid action without a
    // change anyone watching sees: no event.)
    let history: Vec<String> =
        done.history().entries().iter().filter(|h| h.from != Some(h.to)).map(|h| format!("{:?}", h.to)).collect();
    let statuses: Vec<String> = events
        .iter()
        .map(|d| format!("{:?}", serde_json::from_value::<ActionStatus>(d["status"].clone()).unwrap()))
        .collect();
    assert_eq!(statuses, history);
    let versions: Vec<u64> = events.iter().map(|d| d["version"].as_u64().unwrap()).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(*versions.last().unwrap(), done.version);
    for d in &events {
        assert_eq!(
            (d["action_id"].as_str(), d["clinic_id"].as_str(), d["amount"].as_i64()),
            (Some(done.action_id().as_str()), Some("c1"), Some(4500))
        );
    }
}

/// Lambda's filter criteria use EventBridge's pattern syntax ("Lambda event
/// filtering uses the same syntax as EventBridge event patterns", Lambda
/// Developer Guide). moto's TestEventPattern is a stub (it answers nothing),
/// but its rules match patterns for real: a rule whose pattern is the
/// template's filter under `detail`, given each real stream record as an
/// event's detail, passes exactly the records Lambda would. Action records
/// pass; invoice and settings records do not; and the local mapping's
/// matcher agrees record by record.
#[tokio::test]
async fn the_event_source_filter_lets_only_action_records_through() {
    let sdk = sdk().await;
    let store = dynamodb_store("filter").await;
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(Arc::new(store.clone()) as Arc<dyn Store>, &stripe, None);
    assigned_action(&deps, "c1", &[("1", 3000, "")]).await;
    let mut mapping = StreamMapping::connect(&moto_endpoint(), "us-east-1", store.table()).await.unwrap();
    let records = mapping.raw_records().await.unwrap();

    let filter: Value = serde_json::from_str(visitpay_aws::dynamodb::stream::ACTION_RECORDS_FILTER).unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("flt-{}", store.table());
    events.create_event_bus().name(&name).send().await.unwrap();
    let queue_url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    let pattern = json!({ "source": ["stream-filter-test"], "detail": filter }).to_string();
    events.put_rule().name("filter").event_bus_name(&name).event_pattern(pattern).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(queue_arn).build().unwrap();
    events.put_targets().rule("filter").event_bus_name(&name).targets(target).send().await.unwrap();
    for record in &records {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&name)
            .source("stream-filter-test")
            .detail_type("stream record")
            .detail(record.to_string())
            .build();
        let out = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }
    let passed: BTreeSet<String> =
        received(&sdk, &queue_url).await.iter().map(|e| e["detail"]["eventID"].as_str().unwrap().to_owned()).collect();

    let kind = |r: &Value| r["dynamodb"]["Keys"]["sk"]["S"].as_str().unwrap().split('#').next().unwrap().to_owned();
    let kinds: BTreeSet<String> = records.iter().map(kind).collect();
    assert!(kinds.contains("INVOICE") && kinds.contains("ACTION") && kinds.contains("SETTINGS"), "{kinds:?}");
    for record in &records {
        let id = record["eventID"].as_str().unwrap();
        assert_eq!(passed.contains(id), kind(record) == "ACTION", "{record}");
        assert_eq!(visitpay_local::stream_mapping::matches(&filter, record), passed.contains(id), "{record}");
    }
}
