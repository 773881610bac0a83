//! Setting up on moto or a fresh account what the SAM template owns in AWS
//! (the table, the queues), and a stand-in for Lambda's SQS event source
//! (`poll`): the local runner's and the tests'.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use serde_json::json;
use visitpay_app::ports::{QueueError, StoreError, MAX_MESSAGE_BYTES};
use visitpay_aws::dynamodb::{classify, DynamoStore};
use visitpay_aws::sqs::SqsQueue;
use visitpay_aws::tables::TableDef;

/// Creates the table from its definition if it does not exist (local
/// setup and tests; in AWS the SAM template owns it).
pub async fn ensure_table(store: &DynamoStore, def: &TableDef) -> Result<(), StoreError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type set")
    };
    let mut create = store
        .client()
        .create_table()
        .table_name(store.table())
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(&def.partition_key, KeyType::Hash))
        .key_schema(key(&def.sort_key, KeyType::Range))
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(def.stream_view_type.as_str()))
                .build()
                .expect("stream fields set"),
        );
    for name in def.attributes.keys() {
        create = create.attribute_definitions(attribute(name));
    }
    for index in &def.global_secondary_indexes {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .key_schema(key(&index.partition_key, KeyType::Hash))
                .key_schema(key(&index.sort_key, KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("index fields set"),
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(classify(e)),
    }
    store
        .client()
        .update_time_to_live()
        .table_name(store.table())
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(&def.ttl_attribute)
                .enabled(true)
                .build()
                .expect("ttl fields set"),
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// Creates a queue and its dead-letter queue with a redrive policy, as the
/// SAM template does (local setup and tests). Returns the queue URL.
pub async fn ensure_queue(
    client: &Client,
    name: &str,
    max_receives: u32,
    visibility_secs: u32,
) -> Result<String, QueueError> {
    let unavailable = |e: String| QueueError::Unavailable(e.into());
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| unavailable(DisplayErrorContext(&e).to_string()))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| unavailable(DisplayErrorContext(&e).to_string()))?;
    let dlq_arn = attrs.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().unwrap_or_default();
    let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string() }).to_string();
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
        .attributes(QueueAttributeName::MaximumMessageSize, MAX_MESSAGE_BYTES.to_string())
        .send()
        .await
        .map_err(|e| unavailable(format!("{}: {}", e.code().unwrap_or("error"), DisplayErrorContext(&e))))?;
    Ok(queue.queue_url().unwrap_or_default().to_owned())
}

/// Polls the queue and invokes `handler` with batches of up to 10, deleting
/// what it did not report as failed: what Lambda's event source mapping does
/// with `ReportBatchItemFailures`. Used by the local runner against an SQS
/// emulator; in AWS, Lambda does this. Returns when `handler` has no more
/// work and `stop` resolves.
pub async fn poll<F, Fut>(queue: &SqsQueue, queue_arn: &str, handler: F) -> !
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        let received = queue
            .client()
            .receive_message()
            .queue_url(queue.queue_url())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %DisplayErrorContext(&e), "receiving from SQS failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let deliveries = deliveries(&messages);
        let response = handler(sqs_event(&deliveries, queue_arn)).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = deliveries
            .iter()
            .enumerate()
            .filter(|(_, d)| !failed.contains(&d.message_id))
            .map(|(i, d)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(d.receipt_handle)
                    .build()
                    .expect("id and handle set")
            })
            .collect();
        if !done.is_empty() {
            if let Err(e) =
                queue.client().delete_message_batch().queue_url(queue.queue_url()).set_entries(Some(done)).send().await
            {
                // Redelivery is harmless: the consumer is idempotent.
                tracing::warn!(error = %DisplayErrorContext(&e), "deleting processed messages failed");
            }
        }
    }
}

/// One message as Lambda's SQS event source hands it to a function.
pub struct Delivery<'a> {
    pub message_id: &'a str,
    pub receipt_handle: &'a str,
    pub body: &'a str,
    pub receive_count: u32,
}

/// The received messages as deliveries (the receive count when SQS sent it).
pub fn deliveries(messages: &[aws_sdk_sqs::types::Message]) -> Vec<Delivery<'_>> {
    messages
        .iter()
        .map(|m| Delivery {
            message_id: m.message_id().unwrap_or_default(),
            receipt_handle: m.receipt_handle().unwrap_or_default(),
            body: m.body().unwrap_or_default(),
            receive_count: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// Builds the `SqsEvent` Lambda would deliver (its structs are non-exhaustive,
/// so through JSON, exactly as Lambda does).
pub fn sqs_event(deliveries: &[Delivery<'_>], queue_arn: &str) -> SqsEvent {
    let records: Vec<_> = deliveries
        .iter()
        .map(|d| {
            json!({
                "messageId": d.message_id,
                "receiptHandle": d.receipt_handle,
                "body": d.body,
                "attributes": {
                    "ApproximateReceiveCount": d.receive_count.to_string(),
                    "SentTimestamp": "0",
                    "SenderId": "visitpay",
                    "ApproximateFirstReceiveTimestamp": "0"
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a valid SQS event")
}

/// SES's side of sending, as the template and the operations guide set it
/// up in AWS: the sender's domain as a verified identity (moto verifies it at
/// once; in AWS its DNS records do) and the configuration set. Either may
/// exist already.
pub async fn ensure_email_sender(
    client: &aws_sdk_sesv2::Client,
    from_address: &str,
    configuration_set: Option<&str>,
) -> Result<(), String> {
    let domain = from_address.rsplit_once('@').map_or(from_address, |(_, d)| d);
    let exists = |e: &dyn std::fmt::Display| e.to_string().contains("AlreadyExists");
    if let Err(e) = client.create_email_identity().email_identity(domain).send().await {
        let e = DisplayErrorContext(&e);
        if !exists(&e) {
            return Err(format!("creating the SES identity {domain}: {e}"));
        }
    }
    if let Some(set) = configuration_set {
        if let Err(e) = client.create_configuration_set().configuration_set_name(set).send().await {
            let e = DisplayErrorContext(&e);
            if !exists(&e) {
                return Err(format!("creating the SES configuration set {set}: {e}"));
            }
        }
    }
    Ok(())
}
