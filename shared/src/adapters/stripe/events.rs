//! Stripe's event JSON decoded into payment signals: the one place that reads
//! Stripe's event and object shapes (`data.object` of a Checkout Session or
//! a Charge). The consumer matches on the typed signal.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{ActionEvent, ActionId, Actor, ChargeChange, ClinicId, PaymentSignal, RefundRecord, SignalKind};
use crate::ports::{META_ACTION, META_CLINIC};

/// The event types visitpay acts on; anything else is acknowledged and dropped.
pub const HANDLED_TYPES: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
];

pub fn handles(event_type: &str) -> bool {
    HANDLED_TYPES.contains(&event_type)
}

#[derive(Debug, PartialEq)]
pub enum Decoded {
    Signal(PaymentSignal),
    /// Not about a visitpay action, or not a type visitpay acts on; acknowledged.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a Stripe event: {0}")]
    NotAnEvent(#[source] serde_json::Error),
    #[error("a Stripe event visitpay cannot read: {0}")]
    Invalid(String),
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

/// Messages queued by an earlier release stood for reconcile's findings as
/// Stripe-shaped events with ids under this prefix; they may still be queued.
const LEGACY_RECONCILE_PREFIX: &str = "reconcile:";
const LEGACY_EXPIRED_TYPE: &str = "visitpay.action.expired";

fn metadata<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata").and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// `payment_intent` is an id, an expanded object, or null.
fn payment_intent_id(object: &Value) -> Option<String> {
    match object.get("payment_intent") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Object(pi)) => pi.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn ids(clinic: &str, action: &str) -> Result<(ClinicId, ActionId), DecodeError> {
    let clinic = ClinicId::parse(clinic).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    let action = ActionId::parse(action).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    Ok((clinic, action))
}

/// What a Checkout Session event means for the action.
fn session_event(event_type: &str, session: &Value) -> Result<Option<ActionEvent>, DecodeError> {
    let session_id = session
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::Invalid("checkout session without id".into()))?
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

/// A Charge's refunds that moved money (not `failed` or `canceled`), and
/// Stripe's cumulative total.
fn refunds(charge: &Value) -> ChargeChange {
    let refunds = charge
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
    ChargeChange::Refunded { refunds, total_refunded: charge.get("amount_refunded").and_then(Value::as_i64) }
}

/// Decodes one event as Stripe sent it.
pub fn decode(body: &str) -> Result<Decoded, DecodeError> {
    const NOT_OURS: &str = "not about a visitpay action";
    let event: StripeEvent = serde_json::from_str(body).map_err(DecodeError::NotAnEvent)?;
    let object = &event.data.object;
    let actor = if event.id.starts_with(LEGACY_RECONCILE_PREFIX) {
        Actor::Reconcile
    } else {
        Actor::Stripe { event_id: event.id.clone() }
    };
    let kind = match event.event_type.as_str() {
        t if t.starts_with("checkout.session.") => {
            let Some(action_event) = session_event(t, object)? else { return Ok(Decoded::Ignored(NOT_OURS)) };
            let (Some(clinic), Some(action)) = (metadata(object, META_CLINIC), metadata(object, META_ACTION)) else {
                return Ok(Decoded::Ignored(NOT_OURS));
            };
            let (clinic_id, action_id) = ids(clinic, action)?;
            SignalKind::Action { clinic_id, action_id, event: action_event }
        }
        "charge.refunded" | "charge.dispute.created" => {
            let Some(payment_intent) = object.get("payment_intent").and_then(Value::as_str) else {
                return Ok(Decoded::Ignored(NOT_OURS));
            };
            let change = if event.event_type == "charge.refunded" { refunds(object) } else { ChargeChange::Disputed };
            SignalKind::Payment { payment_intent: payment_intent.to_owned(), change }
        }
        LEGACY_EXPIRED_TYPE if actor == Actor::Reconcile => {
            let field = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let (clinic_id, action_id) = ids(&field("clinic_id"), &field("action_id"))?;
            SignalKind::Action { clinic_id, action_id, event: ActionEvent::Expire }
        }
        _ => return Ok(Decoded::Ignored("not a type visitpay acts on")),
    };
    Ok(Decoded::Signal(PaymentSignal { actor, account: event.account, kind }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(event_type: &str, payment_status: &str) -> String {
        json!({"id": "evt_1", "object": "event", "type": event_type, "account": "acct_1",
            "data": {"object": {"id": "cs_1", "object": "checkout.session", "payment_status": payment_status,
                "payment_intent": {"id": "pi_1", "object": "payment_intent"},
                "metadata": {META_ACTION: "act_1", META_CLINIC: "c1"}}}})
        .to_string()
    }

    fn signal(body: &str) -> PaymentSignal {
        match decode(body).unwrap() {
            Decoded::Signal(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkout_sessions_become_action_events() {
        let paid = signal(&session("checkout.session.completed", "paid"));
        assert_eq!(paid.actor, Actor::Stripe { event_id: "evt_1".into() });
        assert_eq!(paid.account.as_deref(), Some("acct_1"));
        let SignalKind::Action { clinic_id, action_id, event } = paid.kind else { panic!() };
        assert_eq!((clinic_id.as_str(), action_id.as_str()), ("c1", "act_1"));
        assert_eq!(
            event,
            ActionEvent::PaymentSucceeded { session_id: "cs_1".into(), payment_intent: Some("pi_1".into()) }
        );
        let unpaid = signal(&session("checkout.session.completed", "unpaid"));
        assert!(matches!(unpaid.kind, SignalKind::Action { event: ActionEvent::PaymentProcessing { .. }, .. }));
        let failed = signal(&session("checkout.session.async_payment_failed", "unpaid"));
        assert!(matches!(failed.kind, SignalKind::Action { event: ActionEvent::PaymentFailed { .. }, .. }));
    }

    #[test]
    fn refunds_that_moved_no_money_are_left_out() {
        let body = json!({"id": "evt_2", "object": "event", "type": "charge.refunded",
            "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 500,
                "refunds": {"data": [{"id": "re_1", "amount": 500, "status": "succeeded"},
                                     {"id": "re_2", "amount": 700, "status": "failed"}]}}}});
        let SignalKind::Payment { payment_intent, change } = signal(&body.to_string()).kind else { panic!() };
        assert_eq!(payment_intent, "pi_1");
        assert_eq!(
            change,
            ChargeChange::Refunded {
                refunds: vec![RefundRecord { refund_id: "re_1".into(), amount: 500 }],
                total_refunded: Some(500)
            }
        );
    }

    #[test]
    fn what_is_not_ours_is_ignored_and_what_is_broken_is_an_error() {
        let foreign = json!({"id": "evt_3", "object": "event", "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_9", "payment_status": "paid", "metadata": {}}}});
        assert!(matches!(decode(&foreign.to_string()).unwrap(), Decoded::Ignored(_)));
        let other = json!({"id": "evt_4", "object": "event", "type": "customer.created", "data": {"object": {}}});
        assert!(matches!(decode(&other.to_string()).unwrap(), Decoded::Ignored(_)));
        assert!(matches!(decode("not json"), Err(DecodeError::NotAnEvent(_))));
        let bad_ids = session("checkout.session.completed", "paid").replace("act_1", "act#1");
        assert!(matches!(decode(&bad_ids), Err(DecodeError::Invalid(_))));
    }
}
