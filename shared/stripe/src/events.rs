//! Stripe's event JSON decoded into payment signals: the one place that reads
//! Stripe's event and object shapes (`data.object` of a Checkout Session, a
//! Charge, a Refund, a Dispute or an Application). The consumer matches on
//! the typed signal.

use serde::Deserialize;
use serde_json::Value;

use visitpay_app::ports::{META_ACTION, META_CLINIC, META_REFUND_ATTEMPT};
use visitpay_domain::connect::PayoutFacts;
use visitpay_domain::{
    AccountHealth, ActionEvent, ActionId, Actor, ChargeChange, Charged, ClinicId, Currency, DisputeId, DisputeRecord,
    DisputeStatus, DomainError, PaymentIntentId, PaymentSignal, PayoutStatus, RefundId, RefundRecord, RefundState,
    SessionId, SignalKind, StripeAccountId, Timestamp,
};

/// The event types visitpay acts on; anything else is acknowledged and dropped.
pub const HANDLED_TYPES: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
    "account.application.deauthorized",
    "account.updated",
    "capability.updated",
    "payout.paid",
    "payout.updated",
    "payout.failed",
    "payout.canceled",
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
    #[serde(default)]
    livemode: bool,
    /// When Stripe made the event: what orders the words on an account or a payout.
    #[serde(default)]
    created: i64,
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

fn text(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An id field that is an id, an expanded object, or null.
fn id_of(object: &Value, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// An id Stripe sent, checked to be one (`visitpay_domain::ids`).
fn parsed<T>(raw: &str, parse: impl Fn(&str) -> Result<T, DomainError>) -> Result<T, DecodeError> {
    parse(raw).map_err(|e| DecodeError::Invalid(e.to_string()))
}

/// The PaymentIntent an object names, if it names one.
fn payment_intent_of(object: &Value) -> Result<Option<PaymentIntentId>, DecodeError> {
    id_of(object, "payment_intent").map(|id| parsed(&id, PaymentIntentId::parse)).transpose()
}

fn ids(clinic: &str, action: &str) -> Result<(ClinicId, ActionId), DecodeError> {
    let clinic = ClinicId::parse(clinic).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    let action = ActionId::parse(action).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    Ok((clinic, action))
}

/// What a Checkout Session event means for the action.
fn session_event(event_type: &str, session: &Value, account: Option<&str>) -> Result<Option<ActionEvent>, DecodeError> {
    let session_id = text(session, "id").ok_or_else(|| DecodeError::Invalid("checkout session without id".into()))?;
    let session_id = parsed(&session_id, SessionId::parse)?;
    let payment_status = session.get("payment_status").and_then(Value::as_str).unwrap_or("");
    let payment_intent = payment_intent_of(session)?;
    let succeeded = || ActionEvent::PaymentSucceeded {
        session_id: session_id.clone(),
        payment_intent: payment_intent.clone(),
        charged: Some(Charged {
            amount: session.get("amount_total").and_then(Value::as_i64),
            currency: text(session, "currency"),
            mode: text(session, "mode"),
            account: account.map(str::to_owned),
        }),
    };
    Ok(match event_type {
        "checkout.session.completed" => match payment_status {
            "paid" | "no_payment_required" => Some(succeeded()),
            _ => Some(ActionEvent::PaymentProcessing { session_id }),
        },
        "checkout.session.async_payment_succeeded" => Some(succeeded()),
        "checkout.session.async_payment_failed" => Some(ActionEvent::PaymentFailed { session_id }),
        "checkout.session.expired" => Some(ActionEvent::CheckoutExpired { session_id }),
        _ => None,
    })
}

/// A Refund object, as `refund.*` and `charge.refund.updated` carry it.
fn refund(object: &Value) -> Result<RefundRecord, DecodeError> {
    let invalid = |what: &str| DecodeError::Invalid(format!("a refund without {what}"));
    let id = parsed(&text(object, "id").ok_or_else(|| invalid("id"))?, RefundId::parse)?;
    let amount = object.get("amount").and_then(Value::as_i64).ok_or_else(|| invalid("amount"))?;
    let status = object.get("status").and_then(Value::as_str).ok_or_else(|| invalid("status"))?;
    let status = RefundState::parse(status).ok_or_else(|| invalid("a known status"))?;
    Ok(RefundRecord::new(id, amount, status))
}

/// A Dispute object, as `charge.dispute.*` carry it; the event type says
/// what happened to the money.
fn dispute(event_type: &str, object: &Value) -> Result<DisputeRecord, DecodeError> {
    let invalid = |what: &str| DecodeError::Invalid(format!("a dispute without {what}"));
    let status = object.get("status").and_then(Value::as_str).ok_or_else(|| invalid("status"))?;
    Ok(DisputeRecord {
        dispute_id: parsed(&text(object, "id").ok_or_else(|| invalid("id"))?, DisputeId::parse)?,
        payment_intent: payment_intent_of(object)?,
        amount: object.get("amount").and_then(Value::as_i64).ok_or_else(|| invalid("amount"))?,
        status: DisputeStatus::parse(status).ok_or_else(|| invalid("a known status"))?,
        funds_withdrawn: event_type == "charge.dispute.funds_withdrawn",
        funds_reinstated: event_type == "charge.dispute.funds_reinstated",
    })
}

fn account_id(s: &str) -> Result<StripeAccountId, DecodeError> {
    StripeAccountId::parse(s).map_err(|_| DecodeError::Invalid(format!("an account id {s:?}")))
}

fn time_of(unix: i64) -> Result<Timestamp, DecodeError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| DecodeError::Invalid(format!("a time {unix}")))
}

/// An Account object (https://docs.stripe.com/api/accounts/object): what it
/// can do, and `requirements.currently_due`, `past_due` and `disabled_reason`.
fn account_health(object: &Value, created: i64) -> Result<AccountHealth, DecodeError> {
    let flag = |k: &str| {
        object.get(k).and_then(Value::as_bool).ok_or_else(|| DecodeError::Invalid(format!("an account without {k}")))
    };
    let id =
        object.get("id").and_then(Value::as_str).ok_or_else(|| DecodeError::Invalid("an account without id".into()))?;
    let requirements = object.get("requirements");
    let list = |k: &str| -> Vec<String> {
        requirements
            .and_then(|r| r.get(k))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut due = list("currently_due");
    due.extend(list("past_due"));
    let disabled_reason =
        requirements.and_then(|r| r.get("disabled_reason")).and_then(Value::as_str).map(str::to_owned);
    Ok(AccountHealth::new(
        account_id(id)?,
        flag("charges_enabled")?,
        flag("payouts_enabled")?,
        object.get("details_submitted").and_then(Value::as_bool).unwrap_or(false),
        due,
        disabled_reason,
        time_of(created)?,
    ))
}

/// A Payout object (https://docs.stripe.com/api/payouts/object).
fn payout(object: &Value, created: i64) -> Result<PayoutFacts, DecodeError> {
    let invalid = |what: &str| DecodeError::Invalid(format!("a payout without {what}"));
    let text = |k: &str| object.get(k).and_then(Value::as_str).ok_or_else(|| invalid(k));
    let number = |k: &str| object.get(k).and_then(Value::as_i64).ok_or_else(|| invalid(k));
    let status = PayoutStatus::parse(text("status")?).ok_or_else(|| invalid("a known status"))?;
    Ok(PayoutFacts {
        id: text("id")?.to_owned(),
        amount: number("amount")?,
        currency: Currency::parse(text("currency")?).map_err(|_| invalid("a known currency"))?,
        status,
        created: time_of(number("created")?)?,
        arrival_date: time_of(number("arrival_date")?)?,
        failure_code: object.get("failure_code").and_then(Value::as_str).map(str::to_owned),
        as_of: time_of(created)?,
    })
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
    let t = event.event_type.as_str();
    let kind = match t {
        _ if t.starts_with("checkout.session.") => {
            let Some(action_event) = session_event(t, object, event.account.as_deref())? else {
                return Ok(Decoded::Ignored(NOT_OURS));
            };
            let (Some(clinic), Some(action)) = (metadata(object, META_CLINIC), metadata(object, META_ACTION)) else {
                return Ok(Decoded::Ignored(NOT_OURS));
            };
            let (clinic_id, action_id) = ids(clinic, action)?;
            SignalKind::Action { clinic_id, action_id, event: action_event }
        }
        "charge.refunded"
        | "charge.refund.updated"
        | "refund.created"
        | "refund.updated"
        | "refund.failed"
        | "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.closed" => {
            let Some(payment_intent) = payment_intent_of(object)? else {
                return Ok(Decoded::Ignored(NOT_OURS));
            };
            let change = match t {
                // The charge no longer lists its refunds (API 2022-11-15).
                "charge.refunded" => ChargeChange::RefundsChanged,
                _ if t.starts_with("charge.dispute.") => ChargeChange::Dispute { dispute: dispute(t, object)? },
                _ => ChargeChange::Refunded { refunds: vec![refund(object)?] },
            };
            // Ours before its payment is recorded only if it says so: a charge
            // carries its PaymentIntent's metadata (Stripe copies it when the
            // intent is confirmed), a refund visitpay made carries its own.
            let marked =
                [META_ACTION, META_CLINIC, META_REFUND_ATTEMPT].iter().any(|key| metadata(object, key).is_some());
            SignalKind::Payment { payment_intent, change, marked }
        }
        "account.application.deauthorized" => match event.account.clone() {
            Some(account) => SignalKind::AccountDisconnected { account },
            None => return Ok(Decoded::Ignored("a deauthorization without an account")),
        },
        // A connected account's own description, as of the event
        // (https://docs.stripe.com/api/events/types#event_types-account.updated).
        "account.updated" => SignalKind::AccountUpdated { health: account_health(object, event.created)? },
        // A capability's status changed; the account's object says what it means.
        "capability.updated" => match event.account.as_deref().or(object.get("account").and_then(Value::as_str)) {
            Some(account) => SignalKind::AccountCheck { account: account_id(account)? },
            None => return Ok(Decoded::Ignored("a capability without an account")),
        },
        "payout.paid" | "payout.updated" | "payout.failed" | "payout.canceled" => match event.account.as_deref() {
            Some(account) => {
                SignalKind::PayoutChanged { account: account_id(account)?, payout: payout(object, event.created)? }
            }
            // The platform's own payouts are not a clinic's.
            None => return Ok(Decoded::Ignored("a payout of the platform's own")),
        },
        LEGACY_EXPIRED_TYPE if actor == Actor::Reconcile => {
            let field = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let (clinic_id, action_id) = ids(&field("clinic_id"), &field("action_id"))?;
            SignalKind::Action { clinic_id, action_id, event: ActionEvent::Expire { closed: Default::default() } }
        }
        _ => return Ok(Decoded::Ignored("not a type visitpay acts on")),
    };
    Ok(Decoded::Signal(PaymentSignal { actor, account: event.account, livemode: event.livemode, kind }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use visitpay_domain::fixtures::{pi, re, sid};

    fn session(event_type: &str, payment_status: &str) -> String {
        json!({"id": "evt_1", "object": "event", "type": event_type, "account": "acct_1", "livemode": false,
            "data": {"object": {"id": "cs_1", "object": "checkout.session", "payment_status": payment_status,
                "mode": "payment", "amount_total": 4500, "currency": "cad",
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

    fn charge_event(event_type: &str, object: Value) -> String {
        json!({"id": "evt_2", "object": "event", "type": event_type, "account": "acct_1", "data": {"object": object}})
            .to_string()
    }

    #[test]
    fn checkout_sessions_become_action_events_with_what_they_charged() {
        let paid = signal(&session("checkout.session.completed", "paid"));
        assert_eq!(paid.actor, Actor::Stripe { event_id: "evt_1".into() });
        assert_eq!((paid.account.as_deref(), paid.livemode), (Some("acct_1"), false));
        let SignalKind::Action { clinic_id, action_id, event } = paid.kind else { panic!() };
        assert_eq!((clinic_id.as_str(), action_id.as_str()), ("c1", "act_1"));
        assert_eq!(
            event,
            ActionEvent::PaymentSucceeded {
                session_id: sid("cs_1"),
                payment_intent: Some(pi("pi_1")),
                charged: Some(Charged {
                    amount: Some(4500),
                    currency: Some("cad".into()),
                    mode: Some("payment".into()),
                    account: Some("acct_1".into()),
                }),
            }
        );
        let unpaid = signal(&session("checkout.session.completed", "unpaid"));
        assert!(matches!(unpaid.kind, SignalKind::Action { event: ActionEvent::PaymentProcessing { .. }, .. }));
        let failed = signal(&session("checkout.session.async_payment_failed", "unpaid"));
        assert!(matches!(failed.kind, SignalKind::Action { event: ActionEvent::PaymentFailed { .. }, .. }));
        let live =
            signal(&session("checkout.session.completed", "paid").replace("\"livemode\":false", "\"livemode\":true"));
        assert!(live.livemode);
    }

    /// Since API version 2022-11-15 a Charge does not list its refunds (Stripe
    /// changelog, "Remove the `refunds` property from Charge"): `charge.refunded`
    /// only says they changed; `refund.*` carry each refund with its status.
    #[test]
    fn refund_events_carry_the_refund_and_its_status() {
        let charge = json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 500});
        let SignalKind::Payment { payment_intent, change, marked } =
            signal(&charge_event("charge.refunded", charge)).kind
        else {
            panic!()
        };
        assert_eq!((payment_intent.as_str(), change, marked), ("pi_1", ChargeChange::RefundsChanged, false));
        for (t, status, state) in [
            ("refund.created", "pending", RefundState::Pending),
            ("refund.updated", "succeeded", RefundState::Succeeded),
            ("refund.failed", "failed", RefundState::Failed),
            ("charge.refund.updated", "canceled", RefundState::Canceled),
        ] {
            let object = json!({"id": "re_1", "object": "refund", "amount": 500, "status": status,
                "charge": "ch_1", "payment_intent": "pi_1"});
            let SignalKind::Payment { change, .. } = signal(&charge_event(t, object)).kind else { panic!() };
            assert_eq!(
                change,
                ChargeChange::Refunded { refunds: vec![RefundRecord::new(re("re_1"), 500, state)] },
                "{t}"
            );
        }
        let strange =
            json!({"id": "re_1", "object": "refund", "amount": 500, "status": "teleported", "payment_intent": "pi_1"});
        assert!(matches!(decode(&charge_event("refund.updated", strange)), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn dispute_events_carry_the_dispute_and_what_happened_to_the_money() {
        let object = |status: &str| {
            json!({"id": "dp_1", "object": "dispute", "amount": 4500, "charge": "ch_1", "payment_intent": "pi_1",
                "status": status, "reason": "fraudulent"})
        };
        let withdrawn = signal(&charge_event("charge.dispute.funds_withdrawn", object("needs_response")));
        let SignalKind::Payment { change: ChargeChange::Dispute { dispute }, .. } = withdrawn.kind else { panic!() };
        assert_eq!(
            (dispute.status, dispute.funds_withdrawn, dispute.amount),
            (DisputeStatus::NeedsResponse, true, 4500)
        );
        let lost = signal(&charge_event("charge.dispute.closed", object("lost")));
        let SignalKind::Payment { change: ChargeChange::Dispute { dispute }, .. } = lost.kind else { panic!() };
        assert_eq!((dispute.status, dispute.payment_intent), (DisputeStatus::Lost, Some(pi("pi_1"))));
    }

    #[test]
    fn a_deauthorization_names_the_account() {
        let body = json!({"id": "evt_5", "object": "event", "type": "account.application.deauthorized",
            "account": "acct_1", "data": {"object": {"id": "ca_1", "object": "application", "name": "visitpay"}}});
        assert_eq!(signal(&body.to_string()).kind, SignalKind::AccountDisconnected { account: "acct_1".into() });
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

    /// Stripe copies a PaymentIntent's metadata onto the charge it makes
    /// ("when a PaymentIntent is confirmed, Stripe copies its metadata …
    /// into the charge", Stripe support, "How metadata works with related
    /// objects"): a charge of visitpay's says so before its payment is
    /// recorded; a refund says so only if visitpay made it; a dispute never.
    #[test]
    fn charge_events_say_whether_they_carry_visitpays_metadata() {
        let marked = |event_type: &str, object: Value| match signal(&charge_event(event_type, object)).kind {
            SignalKind::Payment { marked, .. } => marked,
            other => panic!("{other:?}"),
        };
        let card = json!({"type": "card", "card": {"brand": "visa", "last4": "4242"}});
        let ours = json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "payment_method_details": card,
            "metadata": {META_ACTION: "act_1", META_CLINIC: "c1"}});
        let theirs = json!({"id": "ch_2", "object": "charge", "payment_intent": "pi_2", "payment_method_details": card,
            "metadata": {"order": "42"}});
        assert!(marked("charge.refunded", ours));
        assert!(!marked("charge.refunded", theirs));
        let refund = |metadata: Value| {
            json!({"id": "re_1", "object": "refund", "amount": 500, "status": "succeeded", "payment_intent": "pi_1",
                "metadata": metadata})
        };
        assert!(marked("refund.created", refund(json!({META_REFUND_ATTEMPT: "1", META_ACTION: "act_1"}))));
        assert!(!marked("refund.created", refund(json!({}))), "a dashboard refund carries nothing of ours");
        let dispute = json!({"id": "dp_1", "object": "dispute", "amount": 4500, "payment_intent": "pi_1",
            "status": "needs_response", "metadata": {}});
        assert!(!marked("charge.dispute.created", dispute));
    }
}
