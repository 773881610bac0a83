//! Narrow ports the use cases depend on. Adapters: `adapters::dynamodb` and
//! `adapters::embedded` for the store; `SystemClock` and `RandomIds` below.

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::action::{ActionEvent, InvoiceEffect, RefundRecord};
use crate::domain::{Action, ActionId, ClinicId, Invoice, InvoiceId, PatientId, PaymentSettings, Timestamp, VisitId};

/// What a conditional write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The item must not exist yet.
    Absent,
    /// The item must still be at this version (optimistic concurrency).
    Version(u64),
}

/// The first answer to an `Idempotency-Key`, replayed for a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub clinic_id: ClinicId,
    pub key: String,
    /// SHA-256 of the route and body the key was first used with.
    pub request_hash: String,
    pub action_id: ActionId,
    pub status: u16,
    /// The first response body (JSON text), without the patient link token.
    pub response: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// What is known of a Stripe PaymentIntent, by its id: the action it paid (or
/// tried to), so `charge.refunded` and disputes, which carry no metadata of
/// ours, find it. Charge events that arrive before the payment is recorded
/// (Stripe does not promise an order) wait here, `parked`, and are applied
/// with the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef {
    pub payment_intent: String,
    /// `None` until the payment is recorded on its action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PaymentOwner>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<ParkedEvent>,
    pub version: u64,
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
    pub change: ParkedChange,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParkedChange {
    Refunded { refunds: Vec<RefundRecord>, total_refunded: Option<i64> },
    Disputed,
}

impl ParkedChange {
    pub fn event(&self, payment_intent: &str) -> ActionEvent {
        match self {
            ParkedChange::Refunded { refunds, total_refunded } => ActionEvent::Refunded {
                payment_intent: payment_intent.to_owned(),
                refunds: refunds.clone(),
                total_refunded: *total_refunded,
            },
            ParkedChange::Disputed => ActionEvent::Disputed,
        }
    }
}

impl PaymentRef {
    /// The record once the payment is known: owned, nothing left parked.
    pub fn owned(
        payment_intent: &str,
        clinic_id: ClinicId,
        action_id: ActionId,
        previous: Option<&PaymentRef>,
    ) -> Self {
        PaymentRef {
            payment_intent: payment_intent.to_owned(),
            owner: Some(PaymentOwner { clinic_id, action_id }),
            parked: Vec::new(),
            version: previous.map_or(1, |p| p.version + 1),
        }
    }

    /// `previous` with one more parked event (`None`: already parked).
    pub fn park(payment_intent: &str, previous: Option<&PaymentRef>, event: ParkedEvent) -> Option<Self> {
        let mut next = previous.cloned().unwrap_or(PaymentRef {
            payment_intent: payment_intent.to_owned(),
            owner: None,
            parked: Vec::new(),
            version: 0,
        });
        if next.parked.iter().any(|p| p.event_id == event.event_id) {
            return None;
        }
        next.parked.push(event);
        next.version += 1;
        Some(next)
    }

    /// What the write of this record expects to find: its previous version.
    pub fn expect(&self) -> Expect {
        if self.version <= 1 {
            Expect::Absent
        } else {
            Expect::Version(self.version - 1)
        }
    }
}

/// One write of an all-or-nothing commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Invoice {
        invoice: Invoice,
        expect: Expect,
    },
    Action {
        action: Action,
        expect: Expect,
    },
    /// An invoice follows its action's transition without being read first:
    /// applied only if it is still held by `action_id` in the move's starting
    /// state (`Invoice::follow`); otherwise the whole commit is a `Conflict`.
    HeldInvoice {
        clinic_id: ClinicId,
        patient_id: PatientId,
        invoice_id: InvoiceId,
        action_id: ActionId,
        effect: InvoiceEffect,
        at: Timestamp,
    },
    /// Always created, never replaced: a second writer of the same key loses.
    Idempotency(IdempotencyRecord),
    /// Written when a payment is recorded or a charge event parked;
    /// conditional on `PaymentRef::expect` (the version it replaces).
    Payment(PaymentRef),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold (someone else wrote first). Re-read and retry.
    #[error("a conditional write found a newer state")]
    Conflict,
    /// The store is throttling us even after the SDK's own retries.
    #[error("the store is throttling requests")]
    Throttled,
    /// Anything else the store said; the text is for logs, never for clients.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item that cannot be read back into the domain.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// A write over DynamoDB's limits (an item over 400 KB, a transaction
    /// over 100 items or 4 MB): refused whole; retrying cannot help.
    #[error("a write exceeds the store's limits: {0}")]
    TooLarge(String),
}

/// Everything assign decides on, read at once (on DynamoDB, one BatchGetItem).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssignInputs {
    pub settings: Option<PaymentSettings>,
    pub idempotency: Option<IdempotencyRecord>,
    /// The requested invoices that exist for this patient, in any order.
    pub invoices: Vec<Invoice>,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn get_settings(&self, clinic: &ClinicId) -> Result<Option<PaymentSettings>, StoreError>;
    /// Settings have one writer (support) and are replaced whole.
    async fn put_settings(&self, settings: &PaymentSettings) -> Result<(), StoreError>;
    async fn get_invoice(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoice: &InvoiceId,
    ) -> Result<Option<Invoice>, StoreError>;
    /// A patient's invoices, ordered by invoice id, strongly consistent.
    async fn list_invoices(&self, clinic: &ClinicId, patient: &PatientId) -> Result<Vec<Invoice>, StoreError>;
    async fn get_action(&self, clinic: &ClinicId, action: &ActionId) -> Result<Option<Action>, StoreError>;
    /// A visit's actions, oldest first.
    async fn list_visit_actions(&self, clinic: &ClinicId, visit: &VisitId) -> Result<Vec<Action>, StoreError>;
    /// An action by its id alone, whatever its clinic: only for the patient
    /// link, whose token names the action and proves itself by its hash.
    async fn find_action(&self, action: &ActionId) -> Result<Option<Action>, StoreError>;
    async fn get_idempotency(&self, clinic: &ClinicId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// The clinic's settings, the idempotency record (when a key is given) and
    /// the named invoices, strongly consistent, in one read.
    async fn assign_inputs(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoices: &[InvoiceId],
        idempotency_key: Option<&str>,
    ) -> Result<AssignInputs, StoreError>;
    async fn find_payment(&self, payment_intent: &str) -> Result<Option<PaymentRef>, StoreError>;
    /// An action and a payment record, strongly consistent, in one read.
    async fn action_and_payment(
        &self,
        clinic: &ClinicId,
        action: &ActionId,
        payment_intent: &str,
    ) -> Result<(Option<Action>, Option<PaymentRef>), StoreError>;
    /// Live actions waiting on Stripe (`checkout_open`, `processing`) that
    /// nothing has touched since `untouched_since`: an index query, never a scan.
    async fn actions_awaiting_stripe(
        &self,
        untouched_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError>;
    /// Actions still open to payment (`assigned`, `checkout_open`) whose
    /// lifetime ended before `now`: an index query, never a scan.
    async fn actions_past_lifetime(&self, now: Timestamp, limit: usize) -> Result<Vec<Action>, StoreError>;
    /// Applies every write or none; `Conflict` when any expectation fails.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // Whole milliseconds: what RFC 3339 round-trips through storage unchanged.
        let now = time::OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
    }
}

pub trait Ids: Send + Sync {
    fn action_id(&self) -> ActionId;
    /// An opaque patient link token of at least 128 random bits.
    fn link_token(&self) -> String;
}

/// Ids from the operating system's CSPRNG.
pub struct RandomIds;

impl RandomIds {
    fn bytes<const N: usize>() -> [u8; N] {
        let mut buf = [0u8; N];
        getrandom::fill(&mut buf).expect("the OS random number generator is unavailable");
        buf
    }
}

impl Ids for RandomIds {
    fn action_id(&self) -> ActionId {
        let hex: String = Self::bytes::<12>().iter().map(|b| format!("{b:02x}")).collect();
        ActionId::parse(&format!("act_{hex}")).expect("hex ids are valid")
    }
    fn link_token(&self) -> String {
        // 256 bits, URL-safe.
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Self::bytes::<32>())
    }
}

/// The only form in which a link token is stored or compared.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A patient link token: the action's id, a dot, then the random secret.
/// Like Stripe's client secrets it names what it unlocks (one read, no lookup
/// item) and is proved by its random part; only its hash is stored. Action
/// ids are random and say nothing about the clinic or the patient.
pub fn link_token(action: &ActionId, secret: &str) -> String {
    format!("{action}.{secret}")
}

/// The action a link token names, if it is shaped like one.
pub fn link_token_action(token: &str) -> Option<ActionId> {
    let (action, secret) = token.split_once('.')?;
    (!secret.is_empty()).then(|| ActionId::parse(action).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let (a, b) = (RandomIds.link_token(), RandomIds.link_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes of base64url");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn a_link_token_names_its_action() {
        let action = RandomIds.action_id();
        let token = link_token(&action, &RandomIds.link_token());
        assert_eq!(link_token_action(&token), Some(action.clone()));
        for bad in ["", ".", "no-dot", &format!("{action}."), ".secret", "bad id.secret"] {
            assert_eq!(link_token_action(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn action_ids_are_valid_ids() {
        let id = RandomIds.action_id();
        assert!(id.as_str().starts_with("act_") && id.as_str().len() == 28);
    }
}

// ---------------------------------------------------------------------------
// Payments (Stripe) and the event queue (SQS).

use crate::domain::{Currency, Locale, StripeAccountId};

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
    pub id: String,
    pub url: Option<String>,
    pub status: SessionStatus,
    pub payment_status: SessionPaymentStatus,
    pub expires_at: Timestamp,
    pub payment_intent: Option<String>,
    /// The PaymentIntent's status when Stripe returned it expanded
    /// (`requires_payment_method` after a failed delayed payment).
    pub payment_intent_status: Option<String>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub account: StripeAccountId,
    pub idempotency_key: String,
    pub payment_intent: String,
    /// `None` refunds what remains.
    pub amount: Option<i64>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// Network trouble, timeouts, 429 and 5xx after our own retries: the
    /// same request (same idempotency key) may be sent again later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    #[error("payment provider has no such object")]
    NotFound,
    /// Stripe refused the request (4xx); retrying the same request will not help.
    #[error("payment provider refused the request ({status}): {message}")]
    Rejected { status: u16, code: Option<String>, message: String },
}

#[async_trait]
pub trait Payments: Send + Sync {
    async fn create_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError>;
    async fn retrieve_checkout(
        &self,
        account: &StripeAccountId,
        session_id: &str,
    ) -> Result<CheckoutSession, PaymentsError>;
    async fn expire_checkout(
        &self,
        account: &StripeAccountId,
        session_id: &str,
    ) -> Result<CheckoutSession, PaymentsError>;
    async fn refund(&self, req: &RefundRequest) -> Result<Refund, PaymentsError>;
}

/// A verified Stripe event on its way to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub event_id: String,
    pub event_type: String,
    /// The event JSON exactly as Stripe sent it.
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// Over the queue's maximum message size (body and attributes): it can
    /// never be queued as is.
    #[error("a message of {bytes} bytes is over the queue's maximum of {max}")]
    TooLarge { bytes: usize, max: usize },
}

/// SQS's largest message, and what the template's queue allows: "The maximum
/// is 1 MiB or 1,048,576 bytes" (Amazon SQS Developer Guide, quotas; raised
/// from 256 KiB in August 2025).
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

/// The size SQS counts for a message: "All parts of the message attribute,
/// including Name, Type, and Value, are part of the message size
/// restriction" (SQS API reference, MessageAttributeValue), plus the body.
pub fn message_size(event: &QueuedEvent) -> usize {
    const STRING: usize = "String".len();
    event.body.len()
        + "event_id".len()
        + STRING
        + event.event_id.len()
        + "event_type".len()
        + STRING
        + event.event_type.len()
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError>;
}

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
    /// A reconcile run met this many errors (0 included, so the metric exists).
    ReconcileErrors(u32),
}

impl MoneySignal {
    pub fn name(self) -> &'static str {
        match self {
            MoneySignal::RefundNeeded => "RefundNeeded",
            MoneySignal::RefundFailed => "RefundFailed",
            MoneySignal::DisputeOpened => "DisputeOpened",
            MoneySignal::ReconcileErrors(_) => "ReconcileErrors",
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
