//! Every DynamoDB key shape, in one place. Ids cannot contain `#`
//! (`[A-Za-z0-9_-]`), so these keys cannot collide or be forged.

use visitpay_domain::{
    ActionId, ClinicId, InvoiceId, PatientId, PaymentIntentId, SessionId, StripeAccountId, Timestamp, VisitId,
};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI1: &str = "gsi1";
pub const GSI2PK: &str = "gsi2pk";
pub const GSI2SK: &str = "gsi2sk";
pub const GSI2: &str = "gsi2";
pub const GSI3PK: &str = "gsi3pk";
pub const GSI3SK: &str = "gsi3sk";
pub const GSI3: &str = "gsi3";
pub const GSI4PK: &str = "gsi4pk";
pub const GSI4SK: &str = "gsi4sk";
pub const GSI4: &str = "gsi4";
pub const TTL: &str = "ttl";

/// The reconcile indexes are spread over this many partition keys so that
/// no single key takes every live action's writes; reconcile queries each.
pub const RECONCILE_SHARDS: u32 = 4;
pub const VERSION: &str = "version";

/// The sort keys of single-item partitions, which also tell apart the items a
/// BatchGetItem returns.
pub const SETTINGS_SK: &str = "SETTINGS";
pub const ACTION_SK: &str = "ACTION";
pub const PAYMENT_SK: &str = "PAYMENT";
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
pub const STRAY_SK: &str = "STRAY";
pub const UNSUBSCRIBE_SK: &str = "UNSUB";
pub const STRIPE_ACCOUNT_SK: &str = "STRIPE_ACCOUNT";
pub const OWNER_PREFIX: &str = "CLINIC#";
pub const PAYOUT_SK: &str = "PAYOUT";
/// A payout's lines sort under it: `LINE#000000`…
pub const PAYOUT_LINE_PREFIX: &str = "LINE#";
/// Message items sort under their action: `MESSAGE#<key>`.
pub const MESSAGE_PREFIX: &str = "MESSAGE#";

pub fn settings(clinic: &ClinicId) -> (String, String) {
    (format!("CLINIC#{clinic}"), SETTINGS_SK.into())
}

pub fn patient_partition(clinic: &ClinicId, patient: &PatientId) -> String {
    format!("CLINIC#{clinic}#PATIENT#{patient}")
}

pub const INVOICE_PREFIX: &str = "INVOICE#";

pub fn invoice(clinic: &ClinicId, patient: &PatientId, invoice: &InvoiceId) -> (String, String) {
    (patient_partition(clinic, patient), format!("{INVOICE_PREFIX}{invoice}"))
}

/// By id alone (ids are random and unique across clinics), so a patient link
/// naming the action reaches it in one read; reads by staff check the clinic.
pub fn action(action: &ActionId) -> (String, String) {
    (format!("ACTION#{action}"), ACTION_SK.into())
}

pub fn visit_partition(clinic: &ClinicId, visit: &VisitId) -> String {
    format!("CLINIC#{clinic}#VISIT#{visit}")
}

/// Fixed-width milliseconds since the epoch: sorts as text exactly as in time.
pub fn sortable_time(at: Timestamp) -> String {
    format!("{:015}", at.unix_timestamp_nanos() / 1_000_000)
}

/// Sorts a visit's actions by creation time.
pub fn visit_sort(created_at: Timestamp, action: &ActionId) -> String {
    format!("{}#{action}", sortable_time(created_at))
}

fn shard(action: &ActionId) -> u32 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let hash = action.as_str().bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % RECONCILE_SHARDS
}

pub fn awaiting_stripe_partition(shard: u32) -> String {
    format!("AWAITING_STRIPE#{shard}")
}

pub fn open_to_payment_partition(shard: u32) -> String {
    format!("OPEN_TO_PAYMENT#{shard}")
}

/// gsi2: an action waiting on Stripe, sorted by when it was last touched.
pub fn awaiting_stripe(action: &ActionId, last_touched: Timestamp, clinic: &ClinicId) -> (String, String) {
    (awaiting_stripe_partition(shard(action)), format!("{}#{clinic}#{action}", sortable_time(last_touched)))
}

/// gsi3: an action open to payment, sorted by the end of its lifetime.
pub fn open_to_payment(action: &ActionId, expires_at: Timestamp, clinic: &ClinicId) -> (String, String) {
    (open_to_payment_partition(shard(action)), format!("{}#{clinic}#{action}", sortable_time(expires_at)))
}

pub fn payment(payment_intent: &PaymentIntentId) -> (String, String) {
    (format!("PAYMENT#{payment_intent}"), PAYMENT_SK.into())
}

/// A payment naming an action but kept apart from it, by its Checkout
/// Session (Stripe's ids hold no `#`).
pub fn stray_payment(session_id: &SessionId) -> (String, String) {
    (format!("STRAY#{session_id}"), STRAY_SK.into())
}

pub fn idempotency(clinic: &ClinicId, key: &str) -> (String, String) {
    // The key is validated to [A-Za-z0-9_.:-], so no '#'.
    (format!("CLINIC#{clinic}#IDEMPOTENCY#{key}"), IDEMPOTENCY_SK.into())
}

/// A message of an action, in the action's partition (its key, `link-1`,
/// `reminder-24`, `receipt`, holds no `#`).
pub fn message(action: &ActionId, key: &str) -> (String, String) {
    (format!("ACTION#{action}"), format!("{MESSAGE_PREFIX}{key}"))
}

pub fn messages_due_partition(shard: u32) -> String {
    format!("MESSAGES_DUE#{shard}")
}

/// gsi4: a message still to deliver, sorted by when it is due.
pub fn message_due(action: &ActionId, key: &str, due_at: Timestamp) -> (String, String) {
    (messages_due_partition(shard(action)), format!("{}#{action}#{key}", sortable_time(due_at)))
}

/// A patient's word on being messaged, by the clinic (or every clinic) and
/// the digest of the address or number.
pub fn opt_out(clinic: Option<&ClinicId>, channel: &str, digest: &str) -> (String, String) {
    let pk = match clinic {
        Some(c) => format!("CLINIC#{c}#OPTOUT"),
        None => "OPTOUT#ANY".to_owned(),
    };
    (pk, format!("{channel}#{digest}"))
}

/// An unsubscribe link, by its token's hash.
pub fn unsubscribe(token_hash: &str) -> (String, String) {
    (format!("UNSUB#{token_hash}"), UNSUBSCRIBE_SK.into())
}

/// Stripe's word on a clinic's account, beside its settings.
pub fn account_health(clinic: &ClinicId) -> (String, String) {
    (format!("CLINIC#{clinic}"), STRIPE_ACCOUNT_SK.into())
}

/// That a clinic's payments go to a Stripe account: the account's partition
/// lists its clinics.
pub fn account_owner(account: &StripeAccountId, clinic: &ClinicId) -> (String, String) {
    (account_partition(account), format!("{OWNER_PREFIX}{clinic}"))
}

pub fn account_partition(account: &StripeAccountId) -> String {
    format!("STRIPE_ACCOUNT#{}", account.as_str())
}

/// Every followed account's catch-up checkpoint, in one partition: the
/// catch-up reads them all in one query (a clinic is a few hundred bytes).
pub const CATCH_UP_PARTITION: &str = "CATCHUP";

pub fn catch_up(account: &StripeAccountId) -> (String, String) {
    (CATCH_UP_PARTITION.into(), format!("STRIPE_ACCOUNT#{}", account.as_str()))
}

/// A payout's partition holds its summary and its lines. Stripe's payout ids
/// are `po_` and letters and digits: no `#`.
pub fn payout(clinic: &ClinicId, payout_id: &str) -> (String, String) {
    (format!("CLINIC#{clinic}#PAYOUT#{payout_id}"), PAYOUT_SK.into())
}

pub fn payout_line(clinic: &ClinicId, payout_id: &str, index: u32) -> (String, String) {
    (format!("CLINIC#{clinic}#PAYOUT#{payout_id}"), format!("{PAYOUT_LINE_PREFIX}{index:06}"))
}

pub fn payouts_partition(clinic: &ClinicId) -> String {
    format!("CLINIC#{clinic}#PAYOUTS")
}

/// gsi1: a clinic's payouts, by when Stripe made them. The sort key is also
/// the listing's cursor (`<time>#<payout id>`).
pub fn payout_listing(clinic: &ClinicId, created: Timestamp, payout_id: &str) -> (String, String) {
    (payouts_partition(clinic), format!("{}#{payout_id}", sortable_time(created)))
}
