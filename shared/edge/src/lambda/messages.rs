//! `send-messages`: what starts a delivery of messages to patients, each
//! decoded here into a use-case call.
//!
//! - The table's stream: a message item just created (`INSERT`, `sk` =
//!   `MESSAGE#…`, the template's filter) is delivered at once (a link staff
//!   just sent; the patient is with them). Failures are reported per record
//!   (`ReportBatchItemFailures`); a message never lost: the sweep finds it.
//! - The schedule (every minute): every message now due (reminders, those
//!   deferred past quiet hours, retries after an outage).
//! - The SMS service's two-way channel (an SNS notification): a patient's
//!   reply, STOP and the like.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;
use serde_dynamo::AttributeValue;

use visitpay_app::messages::{self, Deliverer};
use visitpay_app::ports::ErrorChain;
use visitpay_app::{AppError, HasClock, HasStore};
use visitpay_domain::{ActionId, PhoneNumber};

/// At most this many due messages per scheduled run.
pub const SWEEP_BATCH: usize = 100;

/// What started this invocation.
pub enum Trigger {
    Stream(StreamEvent),
    Schedule,
    Inbound(Vec<InboundSms>),
}

#[derive(Debug, thiserror::Error)]
#[error("not an event send-messages takes: {0}")]
pub struct UnknownEvent(String);

/// An inbound text as AWS End User Messaging SMS publishes it to SNS (its
/// two-way channel's message body).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundSms {
    pub origination_number: String,
    pub message_body: String,
}

/// Which of its triggers an event is.
pub fn trigger(event: serde_json::Value) -> Result<Trigger, UnknownEvent> {
    let source = |records: &serde_json::Value| {
        records.as_array().and_then(|r| r.first()).map(|r| {
            r.get("eventSource").or_else(|| r.get("EventSource")).and_then(|s| s.as_str()).unwrap_or("").to_owned()
        })
    };
    match (event.get("Records").and_then(source), event.get("source").and_then(|s| s.as_str())) {
        (Some(s), _) if s == "aws:dynamodb" => {
            serde_json::from_value(event).map(Trigger::Stream).map_err(|e| UnknownEvent(format!("a stream batch: {e}")))
        }
        (Some(s), _) if s == "aws:sns" => {
            let records = event["Records"].as_array().cloned().unwrap_or_default();
            let inbound = records
                .iter()
                .map(|r| {
                    let body = r["Sns"]["Message"].as_str().unwrap_or_default();
                    serde_json::from_str::<InboundSms>(body).map_err(|e| UnknownEvent(format!("an inbound SMS: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Trigger::Inbound(inbound))
        }
        (None, Some("aws.events" | "aws.scheduler")) => Ok(Trigger::Schedule),
        _ => Err(UnknownEvent("neither a stream batch, a schedule nor an SNS notification".into())),
    }
}

/// The message a stream record created, if it is one.
fn created_message(record: &EventRecord) -> Option<(ActionId, String)> {
    let text = |name: &str| match record.change.new_image.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    if record.event_name != "INSERT" || !text("sk")?.starts_with("MESSAGE#") {
        return None;
    }
    Some((ActionId::parse(&text("action_id")?).ok()?, text("key")?))
}

/// Delivers each message the batch created; the records whose delivery
/// failed for a reason that may pass are reported, to come again.
pub async fn stream(deps: &impl Deliverer, event: StreamEvent) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some((action_id, key)) = created_message(record) else { continue };
        if let Err(e) = messages::deliver(deps, &action_id, &key).await {
            tracing::warn!(action_id = %action_id, key = %key, error = %ErrorChain(&e), "a message could not be delivered now");
            if retryable(&e) {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

fn retryable(e: &AppError) -> bool {
    use visitpay_app::ports::StoreError;
    matches!(e, AppError::Store(StoreError::Throttled | StoreError::Unavailable(_)) | AppError::Contended)
}

/// Records each patient's reply; a number that is not one is logged, not kept.
pub async fn inbound(deps: &(impl HasStore + HasClock), texts: Vec<InboundSms>) -> Result<u32, AppError> {
    let mut words = 0;
    for text in texts {
        let Ok(from) = PhoneNumber::parse(&text.origination_number) else {
            tracing::warn!("an inbound SMS from a number that is not E.164; ignored");
            continue;
        };
        if messages::sms_received(deps, &from, &text.message_body).await?.is_some() {
            words += 1;
        }
    }
    Ok(words)
}
