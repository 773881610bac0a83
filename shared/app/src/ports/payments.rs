//! Payments: what visitpay asks of Stripe, in its own types. The adapter
//! (`adapters::stripe`) speaks Stripe's API; use cases never see it.

use async_trait::async_trait;

use super::BoxError;
use visitpay_domain::{
    ClinicId, Currency, Locale, PaymentIntentId, PaymentMethod, RefundId, RefundState, SessionId, StripeAccountId,
    Timestamp,
};

/// Metadata keys visitpay puts on every Checkout Session and PaymentIntent:
/// opaque ids, never names or descriptions.
pub const META_ACTION: &str = "visitpay_action_id";
pub const META_CLINIC: &str = "visitpay_clinic_id";
/// On a staff refund: the attempt it was sent as, so Stripe's list of a
/// payment's refunds says which attempts happened.
pub const META_REFUND_ATTEMPT: &str = "visitpay_refund_attempt";

/// One line of a Checkout Session: a name Stripe shows and an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLine {
    pub name: String,
    pub amount: i64,
}

/// Everything Stripe needs to open a Checkout Session on a clinic's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub account: StripeAccountId,
    /// Deterministic: the same attempt always sends the same key and body.
    pub idempotency_key: String,
    pub currency: Currency,
    pub lines: Vec<CheckoutLine>,
    pub client_reference_id: String,
    /// Opaque ids only: no names, no descriptions.
    pub metadata: Vec<(String, String)>,
    pub locale: Locale,
    pub expires_at: Timestamp,
    pub success_url: String,
    pub cancel_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPaymentStatus {
    Paid,
    Unpaid,
    NoPaymentRequired,
}

/// What visitpay needs to know of a Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: SessionId,
    pub url: Option<String>,
    pub status: SessionStatus,
    pub payment_status: SessionPaymentStatus,
    pub expires_at: Timestamp,
    pub payment_intent: Option<PaymentIntentId>,
    /// The PaymentIntent's status when Stripe returned it expanded
    /// (`requires_payment_method` after a failed delayed payment).
    pub payment_intent_status: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// What the session charges: `amount_total`, `currency`, `mode`.
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub mode: Option<String>,
}

impl CheckoutSession {
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub account: StripeAccountId,
    pub idempotency_key: String,
    pub payment_intent: PaymentIntentId,
    /// `None` refunds what remains.
    pub amount: Option<i64>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub amount: i64,
    pub status: RefundState,
    /// The staff attempt it was made as (`META_REFUND_ATTEMPT`), if ours.
    pub attempt: Option<u32>,
}

/// A clinic's connected Stripe account, as the platform reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedAccount {
    pub id: StripeAccountId,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    /// `requirements.currently_due` and `past_due`.
    pub requirements_due: Vec<String>,
    pub disabled_reason: Option<String>,
}

impl ConnectedAccount {
    /// What it says, as of `at` (when it was asked).
    pub fn health(&self, at: Timestamp) -> visitpay_domain::AccountHealth {
        visitpay_domain::AccountHealth::new(
            self.id.clone(),
            self.charges_enabled,
            self.payouts_enabled,
            self.details_submitted,
            self.requirements_due.clone(),
            self.disabled_reason.clone(),
            at,
        )
    }
}

/// A single-use link to Stripe's hosted onboarding for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLink {
    pub url: String,
    pub expires_at: Timestamp,
}

/// One balance transaction of a payout, as Stripe lists it (its source
/// expanded: the PaymentIntent of the charge, refund or dispute it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceTransaction {
    pub id: String,
    /// Stripe's `type` and `reporting_category`.
    pub kind: String,
    pub reporting_category: String,
    pub created: Timestamp,
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub payment_intent: Option<PaymentIntentId>,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// Network trouble, timeouts, 429 and 5xx after our own retries: the
    /// same request (same idempotency key) may be sent again later.
    #[error("payment provider unavailable: {}", super::ErrorChain(&**.0))]
    Unavailable(#[source] BoxError),
    #[error("payment provider has no such object")]
    NotFound,
    /// The clinic's connected account no longer lets visitpay in (Stripe's
    /// 403 `account_invalid`): nothing on it can be done until it reconnects.
    #[error("the clinic's Stripe account is disconnected")]
    AccountDisconnected,
    /// Stripe refused the request (4xx); retrying the same request will not help.
    #[error("payment provider refused the request ({status}): {message}")]
    Rejected { status: u16, code: Option<String>, message: String },
    /// Stripe answered, but not what its API promises (a session without a URL).
    #[error("payment provider answered unexpectedly: {0}")]
    Unexpected(String),
}

#[async_trait]
pub trait Payments: Send + Sync {
    async fn create_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError>;
    async fn retrieve_checkout(
        &self,
        account: &StripeAccountId,
        session_id: &SessionId,
    ) -> Result<CheckoutSession, PaymentsError>;
    async fn expire_checkout(
        &self,
        account: &StripeAccountId,
        session_id: &SessionId,
    ) -> Result<CheckoutSession, PaymentsError>;
    async fn refund(&self, req: &RefundRequest) -> Result<Refund, PaymentsError>;
    /// The session an earlier `create_checkout` made under the same key (the
    /// same request sent again: Stripe answers with the session it made), or
    /// `None` when Stripe refuses it: a refusal made no session.
    async fn recover_checkout(&self, req: &CheckoutRequest) -> Result<Option<CheckoutSession>, PaymentsError>;
    /// How a payment was paid (its latest charge's payment method: type,
    /// brand, last 4), for the receipt; `None` when Stripe tells none (no
    /// charge yet).
    async fn payment_method(
        &self,
        account: &StripeAccountId,
        payment_intent: &PaymentIntentId,
    ) -> Result<Option<PaymentMethod>, PaymentsError>;
    /// Every refund of a payment, with its current status.
    async fn list_refunds(
        &self,
        account: &StripeAccountId,
        payment_intent: &PaymentIntentId,
    ) -> Result<Vec<Refund>, PaymentsError>;
    /// A connected account, read by the platform: `NotFound` or
    /// `AccountDisconnected` when the platform does not know it (Stripe
    /// answers both as `account_invalid`: "or that account does not exist").
    async fn retrieve_account(&self, account: &StripeAccountId) -> Result<ConnectedAccount, PaymentsError>;
    /// A connected account for the clinic, Stripe collecting its requirements
    /// and the clinic using Stripe's own dashboard (Stripe's recommended
    /// properties for direct charges). Idempotent per clinic: a retry, or a
    /// second request racing the first, gets the same account.
    async fn create_account(&self, clinic: &ClinicId) -> Result<ConnectedAccount, PaymentsError>;
    /// A link to Stripe's hosted onboarding of `account`; Stripe sends the
    /// person back to `return_url`, or to `refresh_url` when the link has
    /// expired or was already used (a new link is then made).
    async fn create_account_link(
        &self,
        account: &StripeAccountId,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<AccountLink, PaymentsError>;
    /// Every balance transaction an automatic payout paid out, the payout's
    /// own included, all pages.
    async fn list_payout_transactions(
        &self,
        account: &StripeAccountId,
        payout_id: &str,
    ) -> Result<Vec<BalanceTransaction>, PaymentsError>;
    /// The events of `account` of the types visitpay handles, created after
    /// `after` and at or before `until`, that Stripe has not delivered to a
    /// webhook endpoint (still pending, or given up on), oldest first, every
    /// page; `complete` false when there were more pages than one listing
    /// reads (the caller lists a shorter window).
    async fn list_undelivered_events(
        &self,
        account: &StripeAccountId,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<EventLog, PaymentsError>;
    /// Whether the key is a live one (`sk_live_`/`rk_live_`): events of the
    /// other mode are not this deployment's.
    fn livemode(&self) -> bool;
}

/// One event of an account's log, as Stripe lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub id: String,
    pub event_type: String,
    pub created: Timestamp,
    /// The event's JSON, as the webhook would have carried it (its
    /// `account` set, which Stripe's events of connected accounts carry).
    pub body: String,
}

/// What a listing of an account's events found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    /// Oldest first.
    pub events: Vec<LoggedEvent>,
    /// Every page was read: nothing in the window is missing.
    pub complete: bool,
}
