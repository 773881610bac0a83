//! What is known of a Stripe PaymentIntent, by its id: the action it paid (or
//! tried to), so `charge.refunded` and disputes, which carry no metadata of
//! ours, find it. Charge events that arrive before the payment is recorded
//! (Stripe does not promise an order) wait here, `parked`, and are applied
//! with the payment.

use serde::{Deserialize, Serialize};

use super::action::ActionEvent;
use super::charge::{DisputeRecord, RefundRecord};
use super::{ActionId, ClinicId, PaymentIntentId, SessionId, Timestamp};

/// A payment Stripe took that names an action (its metadata) but is not
/// kept on it: taken on another Stripe account than the action's clinic's
/// (another clinic's, or anyone's, carrying copied metadata), or one more
/// than the action may hold (`action::MAX_LATE_PAYMENTS`). Recorded apart,
/// once per session, with an alarm: a person refunds it on its account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrayPayment {
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<PaymentIntentId>,
    /// The account Stripe took it on (`None`: the platform's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The action its metadata names.
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub reason: String,
    /// Who told us (`stripe:evt_…`, `reconcile`).
    pub reported_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef {
    pub payment_intent: PaymentIntentId,
    /// `None` until the payment is recorded on its action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PaymentOwner>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<ParkedEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOwner {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
}

/// A charge event seen before its payment was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    pub event_id: String,
    pub change: ChargeChange,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

/// What a charge event says of a payment: refunds, or a dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChargeChange {
    /// Refunds as Stripe reported them (ours or the dashboard's), each with
    /// its status. (Records parked by earlier releases also carry Stripe's
    /// cumulative total, which is ignored: it cannot tell a failed refund.)
    Refunded { refunds: Vec<RefundRecord> },
    /// `charge.refunded`: the charge's refunds changed, but since API version
    /// 2022-11-15 the charge no longer lists them; the consumer asks Stripe
    /// for the list before applying.
    RefundsChanged,
    /// A dispute, as Stripe last reported it.
    Dispute { dispute: DisputeRecord },
    /// A dispute opened, parked by an earlier release.
    Disputed,
    /// How the patient paid, from a `charge.succeeded` parked by an earlier
    /// release (the consumer now asks Stripe when it applies the payment).
    Succeeded { method: super::PaymentMethod },
}

impl ChargeChange {
    /// The action event this change is; `None` for a change still to be
    /// looked up at Stripe.
    pub fn event(&self, payment_intent: &PaymentIntentId) -> Option<ActionEvent> {
        let payment_intent = payment_intent.clone();
        Some(match self {
            ChargeChange::Refunded { refunds } => {
                ActionEvent::Refunded { payment_intent, refunds: refunds.clone(), attempt: None }
            }
            ChargeChange::RefundsChanged => return None,
            ChargeChange::Dispute { dispute } => ActionEvent::Dispute { payment_intent, dispute: dispute.clone() },
            ChargeChange::Disputed => ActionEvent::Disputed,
            ChargeChange::Succeeded { method } => ActionEvent::PaymentMethod { payment_intent, method: method.clone() },
        })
    }
}

impl PaymentRef {
    /// The record once the payment is known: owned, nothing left parked.
    pub fn owned(payment_intent: &PaymentIntentId, clinic_id: ClinicId, action_id: ActionId) -> Self {
        PaymentRef {
            payment_intent: payment_intent.clone(),
            owner: Some(PaymentOwner { clinic_id, action_id }),
            parked: Vec::new(),
        }
    }

    /// `previous` with one more parked event (`None`: already parked).
    pub fn park(payment_intent: &PaymentIntentId, previous: Option<&PaymentRef>, event: ParkedEvent) -> Option<Self> {
        let mut next = previous.cloned().unwrap_or(PaymentRef {
            payment_intent: payment_intent.clone(),
            owner: None,
            parked: Vec::new(),
        });
        if next.parked.iter().any(|p| p.event_id == event.event_id) {
            return None;
        }
        next.parked.push(event);
        Some(next)
    }
}
