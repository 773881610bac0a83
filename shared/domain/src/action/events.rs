//! What happens to an action (from staff, the patient, Stripe or the
//! schedule), and what an event it took caused that someone must hear of.

use serde::{Deserialize, Serialize};

use crate::{
    Channel, Charged, DisputeRecord, MessageKind, PaymentIntentId, PaymentMethod, RefundRecord, SessionId, Timestamp,
};

/// What happened to an action, from staff, Stripe or the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ActionEvent {
    /// A Checkout Session was created for the reserved attempt.
    CheckoutOpened {
        session_id: SessionId,
        url: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: Timestamp,
    },
    CheckoutExpired {
        session_id: SessionId,
    },
    /// Checkout completed and the money is taken. It is the action's payment
    /// only if what Stripe says it charged (`charged`) is the action's.
    PaymentSucceeded {
        session_id: SessionId,
        payment_intent: Option<PaymentIntentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charged: Option<Charged>,
    },
    /// Checkout completed with a delayed method; the outcome comes later.
    PaymentProcessing {
        session_id: SessionId,
    },
    PaymentFailed {
        session_id: SessionId,
    },
    /// Staff cancel, after closing the action's sessions at Stripe.
    Cancel {
        #[serde(default)]
        closed: SessionsClosed,
    },
    /// The action's lifetime ended (or its clinic's account is gone), after
    /// closing its sessions at Stripe.
    Expire {
        #[serde(default)]
        closed: SessionsClosed,
    },
    /// Refunds of a payment as Stripe reported them (ours or made in
    /// Stripe's dashboard), each with its status. `attempt`: the staff
    /// refund attempt this answers, whose reservation it settles.
    Refunded {
        payment_intent: PaymentIntentId,
        refunds: Vec<RefundRecord>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A dispute of a payment, as Stripe last reported it.
    Dispute {
        payment_intent: PaymentIntentId,
        dispute: DisputeRecord,
    },
    /// A dispute opened, from signals queued before disputes were followed.
    Disputed,
    /// How the patient paid, as Stripe's charge reported it.
    PaymentMethod {
        payment_intent: PaymentIntentId,
        method: PaymentMethod,
    },
    /// A message to the patient (its intent's `key`) went out on `channel`.
    MessageSent {
        key: String,
        kind: MessageKind,
        channel: Channel,
    },
}

impl ActionEvent {
    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ActionEvent::CheckoutOpened { .. } => "checkout_opened",
            ActionEvent::CheckoutExpired { .. } => "checkout_expired",
            ActionEvent::PaymentSucceeded { .. } => "payment_succeeded",
            ActionEvent::PaymentProcessing { .. } => "payment_processing",
            ActionEvent::PaymentFailed { .. } => "payment_failed",
            ActionEvent::Cancel { .. } => "cancel",
            ActionEvent::Expire { .. } => "expire",
            ActionEvent::Refunded { .. } => "refunded",
            ActionEvent::Dispute { .. } | ActionEvent::Disputed => "disputed",
            ActionEvent::PaymentMethod { .. } => "payment_method",
            ActionEvent::MessageSent { .. } => "message_sent",
        }
    }

    /// A Checkout Session opened or expired: the patient coming back to pay.
    pub(crate) fn is_routine(&self) -> bool {
        matches!(self, ActionEvent::CheckoutOpened { .. } | ActionEvent::CheckoutExpired { .. })
    }
}

/// What was done at Stripe before an action ended: the Checkout Sessions
/// expired (its current one among them), so none can still be paid. The state
/// machine refuses to end an action while a session it recorded is not
/// among them: one opened meanwhile must be closed first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsClosed {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<SessionId>,
    /// The attempts whose sessions are known closed: expired, or never
    /// created (Stripe's answer under the attempt's key was a refusal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<u32>,
    /// The clinic's Stripe account no longer lets us in: nothing could be expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account_disconnected: bool,
}

impl SessionsClosed {
    pub fn expired(sessions: Vec<SessionId>) -> Self {
        SessionsClosed { expired: sessions, attempts: Vec::new(), account_disconnected: false }
    }
    pub fn disconnected() -> Self {
        SessionsClosed { expired: Vec::new(), attempts: Vec::new(), account_disconnected: true }
    }
}

/// What a change of an action means beyond itself: the money someone must
/// hear of. Each is caused by the event that was applied, never found by
/// comparing the action before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Money Stripe holds must go back: a payment the action cannot keep
    /// (late, or not its own), a refund of one that failed, or the action's
    /// own once its invoices were collected again elsewhere.
    RefundNeeded,
    /// A refund ended without moving money (`failed`, `canceled`).
    RefundFailed,
    /// A payment of the action was disputed.
    DisputeOpened,
    /// A dispute closed lost: Stripe took the money back.
    DisputeLost,
}
