//! The consumer: applies Stripe events to actions through the state machine,
//! one conditional transaction per event. Duplicate, late and out-of-order
//! events are no-ops by construction (states only move forward).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::actions::{apply_event, Known};
use super::{with_retries, AppError, Deps, NotFound};
use crate::domain::{ActionEvent, ActionId, Actor, ClinicId, RefundRecord};
use crate::ports::{ParkedChange, ParkedEvent, PaymentOwner, PaymentRef, StoreError, Write};

/// Metadata keys visitpay puts on every Checkout Session and PaymentIntent.
pub const META_ACTION: &str = "visitpay_action_id";
pub const META_CLINIC: &str = "visitpay_clinic_id";

/// Events reconcile feeds to the queue carry ids with this prefix: their
/// transitions are recorded as caused by reconcile, not by a Stripe event.
pub const RECONCILE_EVENT_PREFIX: &str = "reconcile:";

/// An event of our own (reconcile): the action's lifetime is over.
pub const ACTION_EXPIRED_EVENT: &str = "visitpay.action.expired";

const IGNORED: &str = "not about a visitpay action";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
    /// A charge event for a payment not recorded yet: kept with its
    /// PaymentIntent, and applied when the payment is.
    Parked,
    /// Not ours or not a type we act on; acknowledged.
    Ignored(&'static str),
}

/// Where an event goes.
enum Routed {
    Action(ClinicId, ActionId, ActionEvent),
    /// A charge event whose payment is not recorded (yet), with the
    /// PaymentIntent's record as just read (if any).
    Park(String, ParkedChange, Option<PaymentRef>),
    Ignore,
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

/// Finds which action an event is about and what it means for it.
async fn route(deps: &Deps, event: &StripeEvent) -> Result<Routed, ConsumeError> {
    let object = &event.data.object;
    let ids = |clinic: &str, action: &str| -> Result<(ClinicId, ActionId), ConsumeError> {
        Ok((
            ClinicId::parse(clinic).map_err(|e| ConsumeError::Permanent(e.to_string()))?,
            ActionId::parse(action).map_err(|e| ConsumeError::Permanent(e.to_string()))?,
        ))
    };
    // Charges and disputes carry no metadata of ours: find the payment, or
    // park the change until the payment is recorded.
    let by_payment = |change: ParkedChange| async move {
        let Some(pi) = object.get("payment_intent").and_then(Value::as_str) else { return Ok(Routed::Ignore) };
        let found = deps.store.find_payment(pi).await.map_err(|e| classify(e.into()))?;
        Ok::<_, ConsumeError>(match found.as_ref().and_then(|p| p.owner.clone()) {
            Some(owner) => Routed::Action(owner.clinic_id, owner.action_id, change.event(pi)),
            None => Routed::Park(pi.to_owned(), change, found),
        })
    };
    match event.event_type.as_str() {
        t if t.starts_with("checkout.session.") => {
            let Some(action_event) = session_event(t, object)? else { return Ok(Routed::Ignore) };
            let (Some(clinic), Some(action)) = (metadata(object, META_CLINIC), metadata(object, META_ACTION)) else {
                return Ok(Routed::Ignore);
            };
            let (clinic, action) = ids(clinic, action)?;
            Ok(Routed::Action(clinic, action, action_event))
        }
        "charge.refunded" => {
            let refunds = object
                .pointer("/refunds/data")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter(|r| !matches!(r.get("status").and_then(Value::as_str), Some("failed" | "canceled")))
                        .filter_map(|r| {
                            Some(RefundRecord {
                                refund_id: r.get("id")?.as_str()?.to_owned(),
                                amount: r.get("amount")?.as_i64()?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let total_refunded = object.get("amount_refunded").and_then(Value::as_i64);
            by_payment(ParkedChange::Refunded { refunds, total_refunded }).await
        }
        "charge.dispute.created" => by_payment(ParkedChange::Disputed).await,
        ACTION_EXPIRED_EVENT if event.id.starts_with(RECONCILE_EVENT_PREFIX) => {
            let field = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let (clinic, action) = ids(&field("clinic_id"), &field("action_id"))?;
            Ok(Routed::Action(clinic, action, ActionEvent::Expire))
        }
        _ => Ok(Routed::Ignore),
    }
}

/// Keeps a charge event with its PaymentIntent until the payment is recorded
/// (then `apply_event` applies it). Returns the payment's owner instead if it
/// was recorded meanwhile. `known` is the record as `route` just read it; a
/// conflict reads it again.
async fn park(
    deps: &Deps,
    event_id: &str,
    payment_intent: &str,
    change: &ParkedChange,
    known: Option<PaymentRef>,
) -> Result<Option<PaymentOwner>, ConsumeError> {
    let parked = ParkedEvent { event_id: event_id.to_owned(), change: change.clone(), at: deps.clock.now() };
    let known = std::sync::Mutex::new(Some(known));
    with_retries(|| async {
        let first = known.lock().unwrap_or_else(|p| p.into_inner()).take();
        let current = match first {
            Some(record) => record,
            None => deps.store.find_payment(payment_intent).await?,
        };
        if let Some(owner) = current.as_ref().and_then(|p| p.owner.clone()) {
            return Ok(Some(owner));
        }
        if let Some(next) = PaymentRef::park(payment_intent, current.as_ref(), parked.clone()) {
            deps.store.commit(vec![Write::Payment(next)]).await?;
        }
        Ok(None)
    })
    .await
    .map_err(classify)
}

/// Applies one event: Stripe's (the JSON Stripe sent) or reconcile's.
pub async fn apply_stripe_event(deps: &Deps, body: &str) -> Result<Outcome, ConsumeError> {
    let event: StripeEvent =
        serde_json::from_str(body).map_err(|e| ConsumeError::Permanent(format!("not a Stripe event: {e}")))?;
    let span = tracing::info_span!("event", event_id = %event.id, event_type = %event.event_type);
    async move {
        let (clinic, action_id, action_event) = match route(deps, &event).await? {
            Routed::Ignore => return Ok(Outcome::Ignored(IGNORED)),
            Routed::Action(clinic, action, action_event) => (clinic, action, action_event),
            Routed::Park(pi, change, known) => match park(deps, &event.id, &pi, &change, known).await? {
                None => {
                    tracing::info!("charge event parked until its payment is recorded");
                    return Ok(Outcome::Parked);
                }
                Some(owner) => (owner.clinic_id, owner.action_id, change.event(&pi)),
            },
        };
        let not_found = |e: AppError| match e {
            AppError::NotFound(NotFound::Action) => ConsumeError::Permanent(format!("unknown action {action_id}")),
            other => classify(other),
        };
        // A payment is read with its PaymentIntent's record (one request).
        let known = match &action_event {
            ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. } => {
                match deps.store.action_and_payment(&clinic, &action_id, pi).await.map_err(|e| classify(e.into()))? {
                    (Some(action), payment) => Known { action, payment },
                    (None, _) => return Err(not_found(AppError::NotFound(NotFound::Action))),
                }
            }
            _ => Known { action: super::actions::get(deps, &clinic, &action_id).await.map_err(not_found)?, payment: None },
        };
        let current = &known.action;
        // Connect events name the account they happened on: it must be the
        // clinic's own, or the event is not about this action.
        if let Some(account) = &event.account {
            if account != current.stripe_account_id.as_str() {
                return Err(ConsumeError::Permanent(format!("event account does not match action {action_id}")));
            }
        }
        let actor = if event.id.starts_with(RECONCILE_EVENT_PREFIX) {
            Actor::Reconcile
        } else {
            Actor::Stripe { event_id: event.id.clone() }
        };
        let before = current.version;
        let after =
            apply_event(deps, &clinic, &action_id, Some(known), &action_event, &actor).await.map_err(classify)?;
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
        // Every line about this message, the event's own included, names it.
        let span = tracing::info_span!("message", message_id = %message_id, receive_count = %receive_count);
        let failed = async {
            let result = match record.body.as_deref() {
                Some(body) => apply_stripe_event(deps, body).await,
                None => Err(ConsumeError::Permanent("empty message".into())),
            };
            match result {
                Ok(outcome) => {
                    tracing::debug!(?outcome, "message done");
                    false
                }
                Err(ConsumeError::Retryable(why)) => {
                    tracing::warn!(error = %why, "message will be retried");
                    true
                }
                Err(ConsumeError::Permanent(why)) => {
                    tracing::error!(error = %why, "message cannot be applied; it will reach the dead-letter queue");
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
