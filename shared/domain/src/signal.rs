//! A payment signal: what Stripe (through a webhook) or reconcile (by asking
//! Stripe) says happened, typed. Stripe's JSON is decoded into signals in one
//! adapter (`adapters::stripe::events`); reconcile makes them directly. The
//! consumer applies them, and the actor travels with them into the history.

use serde::{Deserialize, Serialize};

use super::{ActionEvent, ActionId, Actor, ChargeChange, ClinicId, PaymentIntentId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentSignal {
    /// Stripe (with its event id) or reconcile.
    pub actor: Actor,
    /// The connected account the event happened on, when Stripe said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Stripe's live mode (or test mode): an event of the other mode is not
    /// about this deployment's money.
    #[serde(default)]
    pub livemode: bool,
    pub kind: SignalKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "about", rename_all = "snake_case")]
pub enum SignalKind {
    /// About one action, named by visitpay's metadata (a Checkout Session's
    /// outcome) or by reconcile.
    Action { clinic_id: ClinicId, action_id: ActionId, event: ActionEvent },
    /// About a payment, named only by its PaymentIntent (a charge's refunds,
    /// a dispute): the payment's record says whose it is. `marked`: the
    /// object carries visitpay's metadata (a charge carries its
    /// PaymentIntent's, copied by Stripe when it is confirmed), so it is ours
    /// even before its payment is recorded; anything unmarked and unrecorded
    /// is some other software's activity on the clinic's account.
    Payment {
        payment_intent: PaymentIntentId,
        change: ChargeChange,
        #[serde(default)]
        marked: bool,
    },
    /// A clinic's Stripe account disconnected visitpay
    /// (`account.application.deauthorized`): its open actions can no longer
    /// be paid; reconcile expires them as it meets them.
    AccountDisconnected { account: String },
    /// Stripe's word on a clinic's connected account (`account.updated`):
    /// what it can do and what it still needs, as of the event.
    AccountUpdated { health: crate::AccountHealth },
    /// Something of the account changed that its object tells
    /// (`capability.updated`): ask Stripe for it.
    AccountCheck { account: crate::StripeAccountId },
    /// A payout of a clinic's account was made, changed or failed
    /// (`payout.paid`, `payout.updated`, `payout.failed`, `payout.canceled`).
    PayoutChanged { account: crate::StripeAccountId, payout: crate::connect::PayoutFacts },
}

impl SignalKind {
    /// A short name, for logs and queue attributes.
    pub fn name(&self) -> &'static str {
        match self {
            SignalKind::Action { event, .. } => event.name(),
            SignalKind::AccountDisconnected { .. } => "account_disconnected",
            SignalKind::AccountUpdated { .. } => "account_updated",
            SignalKind::AccountCheck { .. } => "account_check",
            SignalKind::PayoutChanged { .. } => "payout_changed",
            SignalKind::Payment { change: ChargeChange::Refunded { .. } | ChargeChange::RefundsChanged, .. } => {
                "charge_refunded"
            }
            SignalKind::Payment { change: ChargeChange::Dispute { .. } | ChargeChange::Disputed, .. } => {
                "charge_disputed"
            }
            SignalKind::Payment { change: ChargeChange::Succeeded { .. }, .. } => "charge_succeeded",
        }
    }
}
