//! `publish-action-events`: a batch of the table's stream records, as
//! Lambda's event source mapping delivers one shard's records in order,
//! published as status events. The answer names the first record to deliver
//! again (`ReportBatchItemFailures`: Lambda retries from the lowest
//! sequence number reported); the rest of the batch waits with it.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use visitpay_app::ports::{ErrorChain, StatusEvents};
use visitpay_app::status_events::publish_in_order;
use visitpay_aws::dynamodb::stream::action_change;

pub async fn handle(bus: &dyn StatusEvents, event: Event) -> DynamoDbEventResponse {
    let mut changes = Vec::new();
    let mut unreadable = None;
    for record in &event.records {
        // Lambda always sends one; an empty identifier would fail the whole
        // batch, which is the safe way for a record without one to fail.
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        match action_change(record) {
            Ok(Some(change)) => changes.push((sequence, change)),
            Ok(None) => {}
            Err(e) => {
                // Retried, then (bisected down to it) sent to the on-failure
                // destination: never skipped without a trace.
                tracing::error!(event_id = %record.event_id, error = %ErrorChain(&e), "a stream record cannot be read");
                unreadable = Some(sequence);
                break;
            }
        }
    }
    let published = publish_in_order(bus, &changes).await;
    tracing::info!(records = event.records.len(), published = published.published, "stream batch done");
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = published.failed_from.or(unreadable) {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    response
}
