//! Money signals for the alarms.

use visitpay_domain::{ActionId, ClinicId};

/// Events about money that a person must act on, counted as metrics
/// (CloudWatch alarms watch them; the runbook says what to do for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneySignal {
    /// A payment arrived that its action could no longer take: refund it.
    RefundNeeded,
    /// Stripe refused or failed a refund: the patient was not refunded.
    RefundFailed,
    /// A patient disputed a payment.
    DisputeOpened,
    /// A dispute was lost: Stripe took the money back from the clinic.
    DisputeLost,
    /// A clinic's Stripe account disconnected visitpay.
    AccountDisconnected,
    /// A reconcile run met this many errors (0 included, so the metric exists).
    ReconcileErrors(u32),
    /// Support pointed a clinic's payments at another Stripe account.
    AccountChanged,
    /// A payment naming an action was recorded apart from it (another
    /// account's, or one more than the action may hold): refund it.
    StrayPayment,
    /// A message to a patient was refused by SES or SNS, or given up after
    /// failing again and again: the patient may not have their link.
    MessageFailed,
    /// A payout to the clinic's bank failed (or was canceled): the money is
    /// back in its Stripe balance, and its bank details need a look.
    PayoutFailed,
    /// A payout's lines do not add up to it: the clinic's books would not
    /// balance from visitpay's report.
    PayoutMismatch,
    /// The catch-up has not read a clinic's Stripe event log for over an
    /// hour past due: events Stripe failed to deliver may be waiting.
    CatchUpBehind,
    /// Stripe answered 429: requests are being slowed (each retried with
    /// backoff under its idempotency key). At visitpay's rates, a loop or a
    /// flood.
    StripeRateLimited,
}

impl MoneySignal {
    /// Every signal (each must have its alarm in the template).
    pub const ALL: [MoneySignal; 13] = [
        MoneySignal::RefundNeeded,
        MoneySignal::RefundFailed,
        MoneySignal::DisputeOpened,
        MoneySignal::DisputeLost,
        MoneySignal::AccountDisconnected,
        MoneySignal::ReconcileErrors(0),
        MoneySignal::AccountChanged,
        MoneySignal::StrayPayment,
        MoneySignal::MessageFailed,
        MoneySignal::PayoutFailed,
        MoneySignal::PayoutMismatch,
        MoneySignal::CatchUpBehind,
        MoneySignal::StripeRateLimited,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MoneySignal::RefundNeeded => "RefundNeeded",
            MoneySignal::RefundFailed => "RefundFailed",
            MoneySignal::DisputeOpened => "DisputeOpened",
            MoneySignal::DisputeLost => "DisputeLost",
            MoneySignal::AccountDisconnected => "AccountDisconnected",
            MoneySignal::ReconcileErrors(_) => "ReconcileErrors",
            MoneySignal::AccountChanged => "AccountChanged",
            MoneySignal::StrayPayment => "StrayPayment",
            MoneySignal::MessageFailed => "MessageFailed",
            MoneySignal::PayoutFailed => "PayoutFailed",
            MoneySignal::PayoutMismatch => "PayoutMismatch",
            MoneySignal::CatchUpBehind => "CatchUpBehind",
            MoneySignal::StripeRateLimited => "StripeRateLimited",
        }
    }
    pub fn value(self) -> u32 {
        match self {
            MoneySignal::ReconcileErrors(n) => n,
            _ => 1,
        }
    }
}

/// Where money signals go: in Lambda, embedded-metric log lines.
pub trait Metrics: Send + Sync {
    /// `about` names the clinic and action concerned, when there is one.
    fn signal(&self, signal: MoneySignal, about: Option<(&ClinicId, &ActionId)>);
}
