//! The consumer's SQS batch: each record is decoded (Stripe's event through
//! `adapters::stripe::events`, or reconcile's signal) and applied on its own;
//! only failures are reported back (`batchItemFailures`), so successes are
//! not delivered again.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::Instrument;

use visitpay_app::payment_events::{apply, Applied, ConsumeError};
use visitpay_app::ports::QueueMessage;
use visitpay_app::{HasClock, HasConfig, HasMetrics, HasPayments, HasStore};
use visitpay_stripe::events::{decode, Decoded};

/// Why a message cannot be applied, or the use case's own refusal.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("permanent: an empty message")]
    Empty,
    #[error("permanent: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("permanent: {0}")]
    Undecodable(#[source] visitpay_stripe::events::DecodeError),
    #[error(transparent)]
    Apply(#[from] ConsumeError),
}

/// What one message came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A duplicate or late event: states only move forward.
    Unchanged,
    /// A charge event kept until its payment is recorded.
    Parked,
    /// Not about a visitpay action, or not a type visitpay acts on; acknowledged.
    Ignored(&'static str),
    /// A payment naming an action, recorded apart from it with an alarm.
    Stray,
}

/// Applies one message body as the queue delivered it.
pub async fn apply_message(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    body: Option<&str>,
) -> Result<Outcome, MessageError> {
    let body = body.ok_or(MessageError::Empty)?;
    let signal = match QueueMessage::from_body(body).map_err(MessageError::Malformed)? {
        QueueMessage::Signal(signal) => signal,
        QueueMessage::Stripe(delivery) => match decode(&delivery.body).map_err(MessageError::Undecodable)? {
            Decoded::Signal(signal) => signal,
            Decoded::Ignored(why) => return Ok(Outcome::Ignored(why)),
        },
    };
    Ok(match apply(deps, &signal).await? {
        Applied::Changed => Outcome::Applied,
        Applied::Unchanged => Outcome::Unchanged,
        Applied::Parked => Outcome::Parked,
        Applied::Ignored(why) => Outcome::Ignored(why),
        Applied::Stray => Outcome::Stray,
    })
}

/// The SQS entry point, as Lambda's event source mapping calls it with
/// `ReportBatchItemFailures`.
pub async fn handle(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let receive_count = record.attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
        // Every line about this message, the signal's own included, names it.
        let span = tracing::info_span!("message", message_id = %message_id, receive_count = %receive_count);
        let failed = async {
            match apply_message(deps, record.body.as_deref()).await {
                Ok(outcome) => {
                    tracing::debug!(?outcome, "message done");
                    false
                }
                Err(MessageError::Apply(e)) if e.is_retryable() => {
                    tracing::warn!(error = %visitpay_app::ports::ErrorChain(&e), "message will be retried");
                    true
                }
                Err(e) => {
                    tracing::error!(error = %visitpay_app::ports::ErrorChain(&e), "message cannot be applied; it will reach the dead-letter queue");
                    true
                }
            }
        }
        .instrument(span)
        .await;
        if failed {
            response.batch_item_failures.push(failure(message_id));
        }
    }
    response
}

fn failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}
