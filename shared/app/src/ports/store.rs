//! The store, split by what it holds. One adapter (DynamoDB, or the embedded
//! store on a laptop) implements every part; `Store` is all of them.
//! Every write is conditional and `Commit::commit` is all or nothing.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use visitpay_domain::{
    AccountHealth, Action, ActionId, Channel, ClinicId, Invoice, InvoiceEffect, InvoiceId, MessageIntent, OptOut,
    PatientId, PaymentIntentId, PaymentRef, PaymentSettings, Payout, PayoutLine, SessionId, StrayPayment,
    StripeAccountId, Timestamp, UnsubscribeLink, VisitId,
};

/// What a conditional write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The item must not exist yet.
    Absent,
    /// The item must still be at this version (optimistic concurrency).
    Version(u64),
    /// Whatever is there is replaced (a patient's latest word on opting
    /// out, the clinic that last texted a number): no version is kept.
    Any,
}

impl Expect {
    /// The version the write leaves the item at: the store counts its
    /// writes of an item, from 1 when it creates it.
    pub fn next_version(self) -> u64 {
        match self {
            Expect::Absent | Expect::Any => 1,
            Expect::Version(v) => v + 1,
        }
    }
}

/// An item as the store read it, with the version it was last written at:
/// the store's counter, which the next write of it expects. The domain knows
/// nothing of versions; use cases pass them back untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub value: T,
    pub version: u64,
}

impl<T> Stored<T> {
    /// A write of `next` in place of this item, conditional on its version.
    pub fn expect(&self) -> Expect {
        Expect::Version(self.version)
    }

    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// The first answer to an `Idempotency-Key`, replayed for a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub clinic_id: ClinicId,
    pub key: String,
    /// SHA-256 of the route and body the key was first used with.
    pub request_hash: String,
    pub action_id: ActionId,
    /// The first answer's body, as the edge rendered it (JSON text, without
    /// the patient link token); its status is the edge's to know.
    pub response: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
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
    /// Written when a payment is recorded or a charge event parked.
    Payment {
        payment: PaymentRef,
        expect: Expect,
    },
    /// Always created, never replaced: one record per session.
    StrayPayment(StrayPayment),
    /// A message decided for an action (created once per key), or what
    /// became of it.
    Message {
        intent: MessageIntent,
        expect: Expect,
    },
    /// A patient's latest word on being messaged (`Expect::Any`).
    OptOut(OptOut),
    /// An email's unsubscribe link; always created, never replaced.
    Unsubscribe(UnsubscribeLink),
    /// Stripe's latest word on the clinic's account (only a newer one
    /// replaces it: `expect` the version read).
    AccountHealth {
        clinic_id: ClinicId,
        health: AccountHealth,
        expect: Expect,
    },
    /// No write: the commit happens only while Stripe's latest word on the
    /// clinic's account, as stored, lets it take payments
    /// (`AccountHealth::can_take_payments`), or there is none yet, or it is
    /// about another account than `account`. Otherwise the whole commit is a
    /// `Conflict`, and the caller reads the health to say why.
    AccountTakesPayments {
        clinic_id: ClinicId,
        account: StripeAccountId,
    },
    /// That a clinic's payments go to a Stripe account, so Stripe's events
    /// about the account find the clinic (several clinics of one business
    /// may share one account; each is told). Written again the same way.
    AccountOwner {
        account: StripeAccountId,
        clinic_id: ClinicId,
    },
    /// A payout's summary: how much, its status, what its lines add up to.
    Payout {
        clinic_id: ClinicId,
        payout: Payout,
        expect: Expect,
    },
    /// One line of a payout (`index` from 0): what Stripe lists never
    /// changes, so the same line is written the same way again (`Expect::Any`).
    PayoutLine {
        clinic_id: ClinicId,
        payout_id: String,
        index: u32,
        line: PayoutLine,
    },
    /// How far the catch-up has read an account's event log. `Expect::Absent`
    /// starts following an account (a `Conflict` then means it is followed
    /// already: a checkpoint never moves back).
    CatchUp {
        checkpoint: CatchUpCheckpoint,
        expect: Expect,
    },
}

/// How far the catch-up has read a connected account's event log at Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUpCheckpoint {
    pub account: StripeAccountId,
    /// Every event of the account created at or before this (Stripe counts
    /// whole seconds) reached the webhook endpoint or was fed to the queue.
    #[serde(with = "time::serde::rfc3339")]
    pub through: Timestamp,
    /// When the catch-up last read the account's log.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: Timestamp,
}

/// What a write replacing `previous` (or creating the item) expects.
pub fn expect_of<T>(previous: Option<&Stored<T>>) -> Expect {
    previous.map_or(Expect::Absent, Stored::expect)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold (someone else wrote first). Re-read and retry.
    #[error("a conditional write found a newer state")]
    Conflict,
    /// The store is throttling us even after the SDK's own retries.
    #[error("the store is throttling requests")]
    Throttled,
    /// Anything else the store said; for logs, never for clients.
    #[error("store unavailable: {}", super::ErrorChain(&**.0))]
    Unavailable(#[source] BoxError),
    /// An item that cannot be read back into the domain.
    #[error("stored item is corrupt: {}", super::ErrorChain(&**.0))]
    Corrupt(#[source] BoxError),
    /// A write over DynamoDB's limits (an item over 400 KB, a transaction
    /// over 100 items or 4 MB): refused whole; retrying cannot help.
    #[error("a write exceeds the store's limits: {0}")]
    TooLarge(String),
}

/// Everything assign decides on, read at once (on DynamoDB, one BatchGetItem).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssignInputs {
    pub settings: Option<PaymentSettings>,
    /// Stripe's latest word on the clinic's account.
    pub account: Option<Stored<AccountHealth>>,
    pub idempotency: Option<IdempotencyRecord>,
    /// The requested invoices that exist for this patient, in any order.
    pub invoices: Vec<Stored<Invoice>>,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, clinic: &ClinicId) -> Result<Option<PaymentSettings>, StoreError>;
    /// Settings have one writer (support) and are replaced whole.
    async fn put_settings(&self, settings: &PaymentSettings) -> Result<(), StoreError>;
}

#[async_trait]
pub trait InvoiceStore: Send + Sync {
    async fn get_invoice(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoice: &InvoiceId,
    ) -> Result<Option<Stored<Invoice>>, StoreError>;
    /// A patient's invoices, ordered by invoice id, strongly consistent.
    async fn list_invoices(&self, clinic: &ClinicId, patient: &PatientId) -> Result<Vec<Stored<Invoice>>, StoreError>;
}

#[async_trait]
pub trait ActionStore: Send + Sync {
    async fn get_action(&self, clinic: &ClinicId, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError>;
    /// A visit's actions, oldest first.
    async fn list_visit_actions(&self, clinic: &ClinicId, visit: &VisitId) -> Result<Vec<Stored<Action>>, StoreError>;
    /// An action by its id alone, whatever its clinic: only for the patient
    /// link, whose token names the action and proves itself by its hash.
    async fn find_action(&self, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError>;
}

#[async_trait]
pub trait AssignStore: Send + Sync {
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
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    async fn find_payment(&self, payment_intent: &PaymentIntentId) -> Result<Option<Stored<PaymentRef>>, StoreError>;
    /// A payment recorded apart from the action it names, by its session.
    async fn find_stray_payment(&self, session_id: &SessionId) -> Result<Option<StrayPayment>, StoreError>;
    /// An action and a payment record, strongly consistent, in one read.
    async fn action_and_payment(
        &self,
        clinic: &ClinicId,
        action: &ActionId,
        payment_intent: &PaymentIntentId,
    ) -> Result<(Option<Stored<Action>>, Option<Stored<PaymentRef>>), StoreError>;
}

#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// Live actions waiting on Stripe (`checkout_open`, `processing`) that
    /// nothing has touched since `untouched_since`: an index query, never a scan.
    async fn actions_awaiting_stripe(
        &self,
        untouched_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Stored<Action>>, StoreError>;
    /// Actions still open to payment (`assigned`, `checkout_open`) whose
    /// lifetime ended before `now`: an index query, never a scan.
    async fn actions_past_lifetime(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<Action>>, StoreError>;
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// A message of an action, by its key.
    async fn get_message(&self, action: &ActionId, key: &str) -> Result<Option<Stored<MessageIntent>>, StoreError>;
    /// Messages still to deliver whose time came before `now`, oldest
    /// first: an index query, never a scan.
    async fn due_messages(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<MessageIntent>>, StoreError>;
    /// Whether the patient at `digest` opted out of `channel` from this
    /// clinic, or from every clinic.
    async fn opted_out(&self, clinic: &ClinicId, channel: Channel, digest: &str) -> Result<bool, StoreError>;
    /// An unsubscribe link, by its token's hash.
    async fn get_unsubscribe(&self, token_hash: &str) -> Result<Option<UnsubscribeLink>, StoreError>;
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stripe's latest word on the clinic's connected account.
    async fn account_health(&self, clinic: &ClinicId) -> Result<Option<Stored<AccountHealth>>, StoreError>;
    /// The clinics whose payments went to a Stripe account (one, usually).
    async fn clinics_of_account(&self, account: &StripeAccountId) -> Result<Vec<ClinicId>, StoreError>;
    /// Every followed account's catch-up checkpoint (one partition: one
    /// query, a page per 1 MB).
    async fn catch_up_checkpoints(&self) -> Result<Vec<Stored<CatchUpCheckpoint>>, StoreError>;
}

/// A page of a clinic's payouts, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayoutPage {
    pub payouts: Vec<Stored<Payout>>,
    /// Where the next page starts, if there is one (opaque).
    pub next: Option<String>,
}

#[async_trait]
pub trait PayoutStore: Send + Sync {
    /// A payout and its lines, in Stripe's order.
    async fn get_payout(
        &self,
        clinic: &ClinicId,
        payout_id: &str,
    ) -> Result<Option<(Stored<Payout>, Vec<PayoutLine>)>, StoreError>;
    /// A clinic's payouts, newest first (by when Stripe made them), `limit`
    /// at a time, from `after` (a page's `next`).
    async fn list_payouts(
        &self,
        clinic: &ClinicId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<PayoutPage, StoreError>;
}

#[async_trait]
pub trait Commit: Send + Sync {
    /// Applies every write or none; `Conflict` when any expectation fails.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// The whole store, as one adapter implements it.
pub trait Store:
    SettingsStore
    + InvoiceStore
    + ActionStore
    + AssignStore
    + PaymentStore
    + ReconcileStore
    + MessageStore
    + AccountStore
    + PayoutStore
    + Commit
{
}

impl<T> Store for T where
    T: SettingsStore
        + InvoiceStore
        + ActionStore
        + AssignStore
        + PaymentStore
        + ReconcileStore
        + MessageStore
        + AccountStore
        + PayoutStore
        + Commit
{
}
