//! The SQS path against moto: webhook → SqsQueue → poll (as Lambda's event
//! source mapping) → consumer; and a poison message ending in the DLQ.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use visitpay_app::actions;
use visitpay_app::ports::EventQueue;
use visitpay_aws::sqs::SqsQueue;
use visitpay_devkit::setup::{ensure_queue, poll};
use visitpay_domain::ActionStatus;
use visitpay_edge::lambda::consumer;

async fn sqs_client() -> aws_sdk_sqs::Client {
    let endpoint = std::env::var(crate::support::kit::DYNAMODB_ENDPOINT_ENV)
        .expect("VISITPAY_TEST_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test, which starts moto");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000_000)
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_travels_through_sqs_to_the_consumer() {
    let client = sqs_client().await;
    let url = ensure_queue(&client, &unique("events"), 3, 1).await.unwrap();
    let queue = SqsQueue::new(client, url);
    let store = Arc::new(crate::support::kit::dynamodb_store("sqs-flow").await);
    let (mut deps, _) = crate::support::kit::deps_with(store);
    deps.clock = Arc::new(crate::support::kit::FixedClock::at_unix(time::OffsetDateTime::now_utc().unix_timestamp()));
    deps.queue = Arc::new(queue.clone());
    let (action, _token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;

    let body = serde_json::json!({
        "id": "evt_sqs_1", "object": "event", "type": "checkout.session.completed", "account": ACCOUNT,
        "data": {"object": {"id": "cs_test_sqs", "object": "checkout.session", "payment_status": "paid",
            "mode": "payment", "amount_total": 1000, "currency": "cad",
            "payment_intent": "pi_sqs", "metadata": {"visitpay_action_id": action.action_id().as_str(), "visitpay_clinic_id": "c1"}}}
    })
    .to_string();
    let now = deps.clock.now().unix_timestamp();
    let (status, answer) = deliver_webhook(&deps, &body, Some(&signed(&body, now))).await;
    assert_eq!((status, answer), (200, serde_json::json!({"received": true})), "queued");
    // The same event delivered twice by Stripe: both queued, applied once.
    assert_eq!(deliver_webhook(&deps, &body, Some(&signed(&body, now))).await.0, 200);

    let consumer = deps.clone();
    let q = queue.clone();
    let worker = tokio::spawn(async move {
        poll(&q, "arn:aws:sqs:us-east-1:123456789012:events", |e| consumer::handle(&consumer, e)).await
    });
    wait_for("the action to be paid", || async {
        actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap().status() == ActionStatus::Paid
    })
    .await;
    wait_for("the queue to drain", || async {
        let attrs = queue
            .client()
            .get_queue_attributes()
            .queue_url(queue.queue_url())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        attrs.attributes().unwrap().values().all(|v| v == "0")
    })
    .await;
    worker.abort();
    let paid = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(
        paid.history().entries().iter().filter(|h| h.to == ActionStatus::Paid).count(),
        1,
        "applied exactly once"
    );
}

/// Each message names its clinic as its message group, which makes the
/// standard queue a fair queue: "Fair queues identify tenants by the
/// MessageGroupId property on each message" (SQS Developer Guide, "How
/// Amazon SQS fair queues work"). A Stripe event's group is its connected
/// account; reconcile's signal names its action's account.
#[tokio::test]
async fn each_message_carries_its_clinic_as_message_group() {
    use visitpay_app::ports::{QueueMessage, StripeDelivery};
    let client = sqs_client().await;
    let url = ensure_queue(&client, &unique("groups"), 3, 1).await.unwrap();
    let queue = SqsQueue::new(client.clone(), url.clone());
    let event = |id: &str, account: Option<&str>| {
        let mut body = serde_json::json!({"id": id, "object": "event", "type": "charge.refunded"});
        if let Some(a) = account {
            body["account"] = a.into();
        }
        QueueMessage::from_body(&body.to_string()).unwrap()
    };
    queue.enqueue(&event("evt_a", Some("acct_1Flooding"))).await.unwrap();
    queue.enqueue(&event("evt_platform", None)).await.unwrap();
    let odd = StripeDelivery {
        event_id: "evt_odd".into(),
        event_type: "charge.refunded".into(),
        account: Some("acct with spaces".into()),
        body: "{}".into(),
    };
    queue.enqueue(&QueueMessage::Stripe(odd)).await.unwrap();
    let received = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .unwrap();
    let groups: std::collections::BTreeMap<String, Option<String>> = received
        .messages()
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let group = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
                .cloned();
            (body["id"].as_str().unwrap_or("odd").to_owned(), group)
        })
        .collect();
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_eq!(groups["evt_a"].as_deref(), Some("acct_1Flooding"));
    assert_eq!(groups["evt_platform"], None, "no clinic's: a tenant of its own");
    assert_eq!(groups["odd"], None, "not a valid MessageGroupId: sent without one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_ends_in_the_dead_letter_queue() {
    let client = sqs_client().await;
    let name = unique("poison");
    let url = ensure_queue(&client, &name, 2, 1).await.unwrap();
    let queue = SqsQueue::new(client.clone(), url);
    let (deps, _) = crate::support::kit::deps_with(Arc::new(crate::support::kit::embedded_store()));
    queue.enqueue(&queued_stripe_event("evt_poison", "checkout.session.completed", "{not json".into())).await.unwrap();
    let consumer = deps.clone();
    let q = queue.clone();
    let worker = tokio::spawn(async move {
        poll(&q, "arn:aws:sqs:us-east-1:123456789012:poison", |e| consumer::handle(&consumer, e)).await
    });
    let dlq =
        client.get_queue_url().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url().unwrap().to_owned();
    wait_for("the poison message to reach the DLQ", || async {
        let got = client.receive_message().queue_url(&dlq).wait_time_seconds(1).send().await.unwrap();
        got.messages().iter().any(|m| m.body() == Some("{not json"))
    })
    .await;
    worker.abort();
}

/// A signed Stripe event whose body is exactly `bytes` long.
fn event_of_size(bytes: usize) -> String {
    let head = r#"{"id":"evt_big","object":"event","type":"checkout.session.completed","data":{"object":{"padding":""#;
    let tail = r#""}}}"#;
    format!("{head}{}{tail}", "x".repeat(bytes - head.len() - tail.len()))
}

async fn deliver(deps: &TestDeps, body: &str) -> (u16, serde_json::Value) {
    deliver_webhook(deps, body, Some(&signed(body, deps.clock.now().unix_timestamp()))).await
}

/// SQS takes at most 1 MiB, "all parts of the message attribute, including
/// Name, Type, and Value" counted with the body (SQS API reference,
/// MessageAttributeValue); the webhook accepts what the queue can take and
/// answers 413 for the rest, on the embedded queue and on SQS alike, never
/// a 5xx that Stripe would retry for three days.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_larger_than_the_queue_takes_is_413_on_every_queue() {
    use visitpay_app::ports::MAX_MESSAGE_BYTES;
    let client = sqs_client().await;
    let url = ensure_queue(&client, &unique("big"), 3, 1).await.unwrap();
    let queues: Vec<(&str, Arc<dyn EventQueue>)> = vec![
        ("embedded", Arc::new(visitpay_devkit::embedded_queue::EmbeddedQueue::new(3, Duration::from_millis(10)))),
        ("sqs", Arc::new(SqsQueue::new(client.clone(), url.clone()))),
    ];
    for (name, queue) in queues {
        let (mut deps, _) = crate::support::kit::deps_with(Arc::new(crate::support::kit::embedded_store()));
        deps.queue = queue;
        let (status, _) = deliver(&deps, &event_of_size(MAX_MESSAGE_BYTES - 200)).await;
        assert_eq!(status, 200, "{name}: an event that fits with its attributes is queued");
        for (bytes, why) in [
            (MAX_MESSAGE_BYTES - 20, "fits the route, not with its attributes"),
            (MAX_MESSAGE_BYTES + 1, "over the route"),
        ] {
            let (status, body) = deliver(&deps, &event_of_size(bytes)).await;
            assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{name}: {why}");
        }
    }
    let received = client.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(received.messages().len(), 1, "only the event that fits reached SQS");
}

/// What SQS itself answers for a message over the queue's MaximumMessageSize
/// ("InvalidParameterValue: … Message must be shorter than N bytes") is the
/// adapter's `TooLarge` too, should the queue be smaller than it believes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_refusing_a_long_message_is_too_large() {
    let client = sqs_client().await;
    let small = client
        .create_queue()
        .queue_name(unique("small"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();
    let queue = SqsQueue::new(client, small.queue_url().unwrap());
    let event = queued_stripe_event("evt_1", "charge.refunded", "x".repeat(2000));
    let r = queue.enqueue(&event).await;
    assert!(matches!(r, Err(visitpay_app::ports::QueueError::TooLarge { .. })), "{r:?}");
}
