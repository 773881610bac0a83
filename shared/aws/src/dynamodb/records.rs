//! The stored shape of each record: this crate's own types, written as
//! DynamoDB items (and sized by the embedded store as such). Each maps to the
//! domain's type (`From` one way, `TryFrom` the other); shapes written by
//! older releases are read here and nowhere else. The domain knows nothing of
//! items, attribute names or versions: the version is the store's counter of
//! an item's writes, kept beside the value (`Stored`).

use serde::{Deserialize, Serialize};

use visitpay_app::ports::Stored;
use visitpay_domain::action::{
    ActionParts, ActionStatus, Checkout, Checkouts, Checks, Disputes, History, HistoryEntry, LatePayment, LatePayments,
    MessageLink, Messages, OpenSession, Payment, RefundAttempt, Refunds, Terms,
};
use visitpay_domain::invoice::InvoiceParts;
use visitpay_domain::settings::DEFAULT_RECEIPT_DAYS;
use visitpay_domain::{
    Action, ActionId, ActionLine, CheckoutDomain, ClinicId, ClinicTimeZone, Contacts, Currency, DisputeRecord, Invoice,
    InvoiceId, InvoiceStatus, Label, LineItemText, Locale, Money, ParkedEvent, PatientId, PaymentIntentId,
    PaymentMethod, PaymentOwner, PaymentRef, PaymentSettings, QuietHours, ReceiptDetails, ReceiptIssuer, RefundRecord,
    ServiceDate, SessionId, StripeAccountId, Timestamp, UserId, VisitId,
};

/// A stored record the domain refuses: it contradicts itself, or an older
/// shape lacks what the domain needs. Never expected; the store reports it
/// as corrupt rather than let it drive a decision.
#[derive(Debug, thiserror::Error)]
#[error("unreadable record: {0}")]
pub struct Unreadable(pub String);

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One line of an action as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionLineRecord {
    pub invoice_id: InvoiceId,
    pub amount: i64,
    /// Absent on actions assigned before receipts were kept with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date: Option<ServiceDate>,
    #[serde(default, skip_serializing_if = "ReceiptDetails::is_empty")]
    pub receipt: ReceiptDetails,
}

/// An action item: one flat record, as every release has written it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionRecord {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub visit_id: VisitId,
    pub patient_id: PatientId,
    pub label: String,
    pub locale: Locale,
    pub lines: Vec<ActionLineRecord>,
    pub amount: i64,
    pub currency: Currency,
    pub status: ActionStatus,
    pub stripe_account_id: StripeAccountId,
    pub checkout_ttl_minutes: u32,
    pub line_item_text: LineItemText,
    /// Absent on actions older than receipts kept with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_issuer: Option<ReceiptIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<ClinicTimeZone>,
    /// Absent on actions older than reminders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminder_hours: Vec<u32>,
    /// Where the patient is reached, only while the action lives.
    #[serde(default, skip_serializing_if = "Contacts::is_empty")]
    pub contacts: Contacts,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_sends: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_links: Vec<MessageLink>,
    pub checkout_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_sessions: Vec<OpenSession>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent_id: Option<PaymentIntentId>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    /// Derived (the refunds that moved money); written for readers of the
    /// table, never read back.
    #[serde(default)]
    pub refunded_amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<PaymentMethod>,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_attempt: Option<RefundAttempt>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refund_attempts: u32,
    #[serde(default)]
    pub disputed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disputes: Vec<DisputeRecord>,
    #[serde(default)]
    pub late_payments: Vec<LatePayment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collected_elsewhere: Vec<InvoiceId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account_disconnected: bool,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_checks: u32,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Timestamp>,
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub version: u64,
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_omitted: u32,
}

impl ActionRecord {
    /// The record of `action` as written at `version`.
    pub fn of(action: &Action, version: u64) -> Self {
        let payment = action.payment();
        let terms = action.terms();
        let (checkout, refunds, checks) = (action.checkout(), action.refunds(), action.checks());
        ActionRecord {
            clinic_id: action.clinic_id().clone(),
            action_id: action.action_id().clone(),
            visit_id: action.visit_id().clone(),
            patient_id: action.patient_id().clone(),
            label: action.label().to_owned(),
            locale: action.locale(),
            lines: action
                .lines()
                .iter()
                .map(|l| ActionLineRecord {
                    invoice_id: l.invoice_id.clone(),
                    amount: l.amount.amount,
                    service_date: l.service_date.clone(),
                    receipt: l.receipt.clone(),
                })
                .collect(),
            amount: action.total().amount,
            currency: action.currency(),
            status: action.status(),
            stripe_account_id: terms.stripe_account_id.clone(),
            checkout_ttl_minutes: terms.checkout_ttl_minutes,
            line_item_text: terms.line_item_text,
            receipt_issuer: terms.receipt_issuer.clone(),
            time_zone: terms.time_zone.clone(),
            reminder_hours: terms.reminder_hours.clone(),
            contacts: action.contacts().clone(),
            link_sends: action.messages().link_sends(),
            message_links: action.messages().links().to_vec(),
            checkout_attempts: checkout.attempts(),
            checkout: checkout.current().cloned(),
            open_sessions: checkout.open().to_vec(),
            paid_session_id: payment.map(|p| p.session_id.clone()),
            payment_intent_id: payment.and_then(|p| p.payment_intent.clone()),
            paid_at: payment.map(|p| p.at),
            refunded_amount: action.refunded().amount,
            payment_method: payment.and_then(|p| p.method.clone()),
            refunds: refunds.records().to_vec(),
            refund_attempt: refunds.attempt().cloned(),
            refund_attempts: refunds.attempts(),
            disputed: action.disputes().disputed(),
            disputes: action.disputes().records().to_vec(),
            late_payments: action.late().payments().to_vec(),
            collected_elsewhere: action.late().collected_elsewhere().to_vec(),
            account_disconnected: action.account_disconnected(),
            checked_at: checks.checked_at,
            failed_checks: checks.failed,
            retry_after: checks.retry_after,
            token_hash: action.token_hash().to_owned(),
            created_at: action.created_at(),
            expires_at: action.expires_at(),
            version,
            history: action.history().entries().to_vec(),
            history_omitted: action.history().omitted(),
        }
    }
}

fn money(amount: i64, currency: Currency) -> Money {
    Money { amount, currency }
}

impl TryFrom<ActionRecord> for Stored<Action> {
    type Error = Unreadable;

    fn try_from(r: ActionRecord) -> Result<Self, Unreadable> {
        let payment = match (r.paid_session_id, r.paid_at) {
            (Some(session_id), Some(at)) if r.status.was_paid() => {
                Some(Payment { session_id, payment_intent: r.payment_intent_id, at, method: r.payment_method })
            }
            // A session recorded on an action that was never paid names nothing.
            (_, _) if !r.status.was_paid() => None,
            _ => return Err(Unreadable(format!("action {} is {} without its payment", r.action_id, r.status))),
        };
        let action = Action::restore(ActionParts {
            lines: r
                .lines
                .into_iter()
                .map(|l| ActionLine {
                    invoice_id: l.invoice_id,
                    amount: money(l.amount, r.currency),
                    service_date: l.service_date,
                    receipt: l.receipt,
                })
                .collect(),
            total: money(r.amount, r.currency),
            terms: Terms {
                stripe_account_id: r.stripe_account_id,
                checkout_ttl_minutes: r.checkout_ttl_minutes,
                line_item_text: r.line_item_text,
                receipt_issuer: r.receipt_issuer,
                time_zone: r.time_zone,
                reminder_hours: r.reminder_hours,
            },
            contacts: r.contacts,
            messages: Messages::new(r.link_sends, r.message_links),
            checkout: Checkouts::new(r.checkout_attempts, r.checkout, r.open_sessions),
            refunds: Refunds::new(r.refunds, r.refund_attempt, r.refund_attempts),
            disputes: Disputes::new(r.disputes, r.disputed),
            late: LatePayments::new(r.late_payments, r.collected_elsewhere),
            checks: Checks { checked_at: r.checked_at, failed: r.failed_checks, retry_after: r.retry_after },
            history: History::new(r.history, r.history_omitted),
            clinic_id: r.clinic_id,
            action_id: r.action_id,
            visit_id: r.visit_id,
            patient_id: r.patient_id,
            label: r.label,
            locale: r.locale,
            token_hash: r.token_hash,
            created_at: r.created_at,
            expires_at: r.expires_at,
            status: r.status,
            payment,
            account_disconnected: r.account_disconnected,
        })
        .map_err(Unreadable)?;
        Ok(Stored { value: action, version: r.version })
    }
}

/// An invoice item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceRecord {
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub invoice_id: InvoiceId,
    pub amount: i64,
    pub currency: Currency,
    pub description: String,
    pub service_date: ServiceDate,
    #[serde(default, skip_serializing_if = "ReceiptDetails::is_empty")]
    pub receipt: ReceiptDetails,
    pub status: InvoiceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<ActionId>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_from: Option<ActionId>,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

/// The invoice attributes the held-invoice update sets: `InvoiceRecord`'s
/// field names (checked by a test below).
pub mod invoice_fields {
    pub const STATUS: &str = "status";
    pub const ACTION_ID: &str = "action_id";
    pub const PAID_AT: &str = "paid_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const REFUNDED_FROM: &str = "refunded_from";
}

impl InvoiceRecord {
    pub fn of(invoice: &Invoice, version: u64) -> Self {
        InvoiceRecord {
            clinic_id: invoice.clinic_id.clone(),
            patient_id: invoice.patient_id.clone(),
            invoice_id: invoice.invoice_id.clone(),
            amount: invoice.amount,
            currency: invoice.currency,
            description: invoice.description.clone(),
            service_date: invoice.service_date.clone(),
            receipt: invoice.receipt.clone(),
            status: invoice.status(),
            action_id: invoice.action_id().cloned(),
            paid_at: invoice.paid_at,
            refunded_from: invoice.refunded_from().cloned(),
            version,
            updated_at: invoice.updated_at,
        }
    }
}

impl TryFrom<InvoiceRecord> for Stored<Invoice> {
    type Error = Unreadable;

    fn try_from(r: InvoiceRecord) -> Result<Self, Unreadable> {
        let invoice = Invoice::restore(InvoiceParts {
            clinic_id: r.clinic_id,
            patient_id: r.patient_id,
            invoice_id: r.invoice_id,
            money: money(r.amount, r.currency),
            description: r.description,
            service_date: r.service_date,
            receipt: r.receipt,
            status: r.status,
            action_id: r.action_id,
            paid_at: r.paid_at,
            refunded_from: r.refunded_from,
            updated_at: r.updated_at,
        })
        .map_err(Unreadable)?;
        Ok(Stored { value: invoice, version: r.version })
    }
}

fn default_receipt_days() -> u32 {
    DEFAULT_RECEIPT_DAYS
}

/// A clinic's settings item. Fields added since the first release read
/// back with their defaults from items written before them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub clinic_id: ClinicId,
    pub enabled: bool,
    pub label: Label,
    pub stripe_account_id: Option<StripeAccountId>,
    pub currency: Currency,
    pub checkout_ttl_minutes: u32,
    pub action_ttl_hours: u32,
    pub line_item_text: LineItemText,
    #[serde(default)]
    pub receipt_issuer: ReceiptIssuer,
    #[serde(default)]
    pub embed_origins: Vec<String>,
    #[serde(default)]
    pub time_zone: ClinicTimeZone,
    #[serde(default = "default_receipt_days")]
    pub receipt_days: u32,
    #[serde(default)]
    pub checkout_domain: CheckoutDomain,
    #[serde(default)]
    pub reminder_hours: Vec<u32>,
    #[serde(default)]
    pub quiet_hours: QuietHours,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    pub updated_by: UserId,
}

impl From<&PaymentSettings> for SettingsRecord {
    fn from(s: &PaymentSettings) -> Self {
        SettingsRecord {
            clinic_id: s.clinic_id.clone(),
            enabled: s.enabled,
            label: s.label.clone(),
            stripe_account_id: s.stripe_account_id.clone(),
            currency: s.currency,
            checkout_ttl_minutes: s.checkout_ttl_minutes,
            action_ttl_hours: s.action_ttl_hours,
            line_item_text: s.line_item_text,
            receipt_issuer: s.receipt_issuer.clone(),
            embed_origins: s.embed_origins.clone(),
            time_zone: s.time_zone.clone(),
            receipt_days: s.receipt_days,
            checkout_domain: s.checkout_domain.clone(),
            reminder_hours: s.reminder_hours.clone(),
            quiet_hours: s.quiet_hours,
            updated_at: s.updated_at,
            updated_by: s.updated_by.clone(),
        }
    }
}

impl From<SettingsRecord> for PaymentSettings {
    fn from(r: SettingsRecord) -> Self {
        PaymentSettings {
            clinic_id: r.clinic_id,
            enabled: r.enabled,
            label: r.label,
            stripe_account_id: r.stripe_account_id,
            currency: r.currency,
            checkout_ttl_minutes: r.checkout_ttl_minutes,
            action_ttl_hours: r.action_ttl_hours,
            line_item_text: r.line_item_text,
            receipt_issuer: r.receipt_issuer,
            embed_origins: r.embed_origins,
            time_zone: r.time_zone,
            receipt_days: r.receipt_days,
            checkout_domain: r.checkout_domain,
            reminder_hours: r.reminder_hours,
            quiet_hours: r.quiet_hours,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        }
    }
}

/// A PaymentIntent's item: its owner once recorded, and the charge events
/// parked until then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_intent: PaymentIntentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PaymentOwner>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<ParkedEvent>,
    pub version: u64,
}

impl PaymentRecord {
    pub fn of(payment: &PaymentRef, version: u64) -> Self {
        PaymentRecord {
            payment_intent: payment.payment_intent.clone(),
            owner: payment.owner.clone(),
            parked: payment.parked.clone(),
            version,
        }
    }
}

impl From<PaymentRecord> for Stored<PaymentRef> {
    fn from(r: PaymentRecord) -> Self {
        Stored {
            value: PaymentRef { payment_intent: r.payment_intent, owner: r.owner, parked: r.parked },
            version: r.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visitpay_domain::fixtures::{paid_action, refunded, step};
    use visitpay_domain::RefundState;

    fn round_trip(action: &Action, version: u64) -> Stored<Action> {
        let json = serde_json::to_value(ActionRecord::of(action, version)).unwrap();
        Stored::try_from(serde_json::from_value::<ActionRecord>(json).unwrap()).unwrap()
    }

    #[test]
    fn an_action_reads_back_as_written_with_its_version() {
        let refunded = step(&paid_action(), refunded("pi_cs", &[("re_1", 1000, RefundState::Pending)])).action;
        let back = round_trip(&refunded, 7);
        assert_eq!((back.value, back.version), (refunded.clone(), 7));
        let record = ActionRecord::of(&refunded, 7);
        assert_eq!(record.refunded_amount, 1000, "the derived total is written for the table's readers");
    }

    /// A paid action whose item lost its payment is refused, not guessed at.
    #[test]
    fn a_paid_record_without_its_payment_is_unreadable() {
        let mut record = ActionRecord::of(&paid_action(), 3);
        record.paid_session_id = None;
        assert!(Stored::<Action>::try_from(record).is_err());
    }

    /// Items written before receipts were fixed at assignment, before
    /// sessions were recorded and before reconcile's checks: still actions.
    #[test]
    fn an_action_written_by_an_older_release_reads() {
        let mut json = serde_json::to_value(ActionRecord::of(&paid_action(), 4)).unwrap();
        for newer in ["receipt_issuer", "time_zone", "open_sessions", "disputes", "checked_at", "refund_attempts"] {
            json.as_object_mut().unwrap().remove(newer);
        }
        for line in json["lines"].as_array_mut().unwrap() {
            line.as_object_mut().unwrap().remove("service_date");
        }
        let old: ActionRecord = serde_json::from_value(json).unwrap();
        let back = Stored::<Action>::try_from(old).unwrap();
        assert_eq!((back.terms().receipt_issuer.as_ref(), back.lines()[0].service_date.as_ref()), (None, None));
        assert_eq!(back.paid_at(), paid_action().paid_at());
    }

    #[test]
    fn settings_written_before_newer_fields_read_with_their_defaults() {
        let stored = serde_json::json!({
            "clinic_id": "c1", "enabled": true, "label": {"en": "Pay", "fr": "Payer"},
            "stripe_account_id": "acct_1", "currency": "cad", "checkout_ttl_minutes": 60,
            "action_ttl_hours": 72, "line_item_text": "generic",
            "updated_at": "2026-01-01T00:00:00Z", "updated_by": "support-1"
        });
        let old = PaymentSettings::from(serde_json::from_value::<SettingsRecord>(stored).unwrap());
        assert_eq!(
            (old.time_zone.as_str(), old.receipt_days, old.checkout_domain.as_str(), old.embed_origins.len()),
            ("America/Toronto", 548, "checkout.stripe.com", 0)
        );
    }
}
