//! The consumer: applies Stripe events to actions through the state machine,
//! one conditional transaction per event. Duplicate, late and out-of-order
//! events are no-ops by construction (states only move forward).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::actions::apply_event;
use super::{AppError, Deps, NotFound};
use crate::domain::{ActionEvent, ActionId, Actor, ClinicId};
use crate::ports::StoreError;

/// Metadata keys visitpay puts on every Checkout Session and PaymentIntent.
pub const META_ACTION: &str = "visitpay_action_id";
pub const META_CLINIC: &str = "visitpay_clinic_id";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
    /// Not ours or not a type we act on; acknowledged.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Try again later (throttling, an unavailable store, contention).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will never succeed as is (malformed, unknown action, wrong account).
    /// Left to fail until the queue moves it to the dead-letter queue, where
    /// a person looks at it: payments are never dropped silently.
    #[error("permanent: {0}")]
    Permanent(String),
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    account: Option<String>,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

fn metadata<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata").and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// `payment_intent` is an id, an expanded object, or null.
fn payment_intent_id(session: &Value) -> Option<String> {
    match session.get("payment_intent") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Object(pi)) => pi.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Translates a Checkout Session event into what it means for the action.
fn session_event(event_type: &str, session: &Value) -> Result<Option<ActionEvent>, ConsumeError> {
    let session_id = session
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ConsumeError::Permanent("checkout session without id".into()))?
        .to_owned();
    let payment_status = session.get("payment_status").and_then(Value::as_str).unwrap_or("");
    Ok(match event_type {
        "checkout.session.completed" => match payment_status {
            "paid" | "no_payment_required" => {
                Some(ActionEvent::PaymentSucceeded { session_id, payment_intent: payment_intent_id(session) })
            }
            _ => Some(ActionEvent::PaymentProcessing { session_id }),
        },
        "checkout.session.async_payment_succeeded" => {
            Some(ActionEvent::PaymentSucceeded { session_id, payment_intent: payment_intent_id(session) })
        }
        "checkout.session.async_payment_failed" => Some(ActionEvent::PaymentFailed { session_id }),
        "checkout.session.expired" => Some(ActionEvent::CheckoutExpired { session_id }),
        _ => None,
    })
}

fn classify(e: AppError) -> ConsumeError {
    match e {
        AppError::Store(StoreError::Throttled | StoreError::Unavailable(_)) | AppError::Contended => {
            ConsumeError::Retryable(e.to_string())
        }
        AppError::Store(StoreError::Conflict) => ConsumeError::Retryable(e.to_string()),
        other => ConsumeError::Permanent(other.to_string()),
    }
}

/// Applies one Stripe event (the JSON Stripe sent).
pub async fn apply_stripe_event(deps: &Deps, body: &str) -> Result<Outcome, ConsumeError> {
    let event: StripeEvent =
        serde_json::from_str(body).map_err(|e| ConsumeError::Permanent(format!("not a Stripe event: {e}")))?;
    let span = tracing::info_span!("event", event_id = %event.id, event_type = %event.event_type);
    async move {
        let object = &event.data.object;
        let Some(action_event) = session_event(&event.event_type, object)? else {
            return Ok(Outcome::Ignored("event type not handled"));
        };
        let (Some(clinic), Some(action)) = (metadata(object, META_CLINIC), metadata(object, META_ACTION)) else {
            return Ok(Outcome::Ignored("not a visitpay checkout session"));
        };
        let clinic = ClinicId::parse(clinic).map_err(|e| ConsumeError::Permanent(e.to_string()))?;
        let action_id = ActionId::parse(action).map_err(|e| ConsumeError::Permanent(e.to_string()))?;
        let current = super::actions::get(deps, &clinic, &action_id).await.map_err(|e| match e {
            AppError::NotFound(NotFound::Action) => ConsumeError::Permanent(format!("unknown action {action_id}")),
            other => classify(other),
        })?;
        // Connect events name the account they happened on: it must be the
        // clinic's own, or the event is not about this action.
        if let Some(account) = &event.account {
            if account != current.stripe_account_id.as_str() {
                return Err(ConsumeError::Permanent(format!("event account does not match action {action_id}")));
            }
        }
        let before = current.version;
        let actor = Actor::Stripe { event_id: event.id.clone() };
        let after = apply_event(deps, &clinic, &action_id, &action_event, &actor).await.map_err(classify)?;
        if after.version == before {
            tracing::info!(action_id = %action_id, status = %after.status(), "event changed nothing (duplicate or late)");
            Ok(Outcome::Unchanged)
        } else {
            tracing::info!(action_id = %action_id, status = %after.status(), refund_needed = after.refund_needed(), "event applied");
            Ok(Outcome::Applied)
        }
    }
    .instrument(span)
    .await
}

/// The SQS entry point: every record is applied on its own; only failures
/// are reported back (`batchItemFailures`) so successes are not redelivered.
pub async fn handle_sqs(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let receive_count = record.attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
        let result = match record.body.as_deref() {
            Some(body) => apply_stripe_event(deps, body).await,
            None => Err(ConsumeError::Permanent("empty message".into())),
        };
        match result {
            Ok(outcome) => tracing::debug!(message_id = %message_id, ?outcome, "message done"),
            Err(ConsumeError::Retryable(why)) => {
                tracing::warn!(message_id = %message_id, receive_count = %receive_count, error = %why, "message will be retried");
                response.batch_item_failures.push(failure(message_id));
            }
            Err(ConsumeError::Permanent(why)) => {
                tracing::error!(message_id = %message_id, receive_count = %receive_count, error = %why, "message cannot be applied; it will reach the dead-letter queue");
                response.batch_item_failures.push(failure(message_id));
            }
        }
    }
    response
}

fn failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}
