//! What clients see: the JSON views of invoices and actions, beside the
//! pages (the stored shapes are the AWS crate's business, its `records`).

use serde::Serialize;

use visitpay_app::ports::Stored;
use visitpay_app::settings::ClinicSettings;
use visitpay_domain::{AccountHealth, ActionId, Payout, PayoutLine, PayoutLineKind, PayoutStatus};
use visitpay_domain::{
    Action, ActionStatus, CheckoutDomain, ClinicId, ClinicTimeZone, Currency, DisputeRecord, HistoryEntry, Invoice,
    InvoiceId, InvoiceStatus, Label, LatePayment, LineItemText, Locale, Money, QuietHours, ReceiptIssuer, RefundRecord,
    RefundState, StripeAccountId, Timestamp, UserId,
};

#[derive(Debug, Serialize)]
pub struct InvoiceView<'a> {
    pub invoice_id: &'a str,
    pub patient_id: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub description: &'a str,
    pub service_date: &'a visitpay_domain::ServiceDate,
    /// What the receipt says of it, as imported.
    #[serde(skip_serializing_if = "visitpay_domain::ReceiptDetails::is_empty")]
    pub receipt: &'a visitpay_domain::ReceiptDetails,
    pub status: InvoiceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl<'a> From<&'a Invoice> for InvoiceView<'a> {
    fn from(i: &'a Invoice) -> Self {
        InvoiceView {
            invoice_id: i.invoice_id.as_str(),
            patient_id: i.patient_id.as_str(),
            amount: i.amount,
            currency: i.currency,
            description: &i.description,
            service_date: &i.service_date,
            receipt: &i.receipt,
            status: i.status(),
            action_id: i.action_id().map(|a| a.as_str()),
            paid_at: i.paid_at,
            updated_at: i.updated_at,
        }
    }
}

impl<'a> From<&'a Stored<Invoice>> for InvoiceView<'a> {
    fn from(i: &'a Stored<Invoice>) -> Self {
        InvoiceView::from(&i.value)
    }
}

#[derive(Debug, Serialize)]
pub struct InvoiceList<'a> {
    pub invoices: Vec<InvoiceView<'a>>,
}

#[derive(Debug, Serialize)]
pub struct SelectionView<'a> {
    pub invoices: Vec<InvoiceView<'a>>,
    pub total: Money,
}

/// The staff view of an action. `patient_url` is present only in the answer
/// that created the action: the token is not stored, so it cannot be shown again.
#[derive(Debug, Serialize)]
pub struct ActionView<'a> {
    pub action_id: &'a str,
    pub visit_id: &'a str,
    pub patient_id: &'a str,
    pub label: &'a str,
    pub locale: Locale,
    pub invoice_ids: Vec<&'a str>,
    pub amount: i64,
    pub currency: Currency,
    pub status: ActionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_session_id: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub checkout_expires_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    /// Refunds that moved money, pending ones included.
    pub refunded_amount: i64,
    /// The part of `refunded_amount` still pending at Stripe.
    pub refund_pending_amount: i64,
    /// Every refund of the action's payment, with Stripe's status.
    pub refunds: &'a [RefundRecord],
    /// Some dispute of the payment is open.
    pub disputed: bool,
    pub disputes: Vec<DisputeView<'a>>,
    /// What the clinic keeps of the payment: paid, less refunds and lost disputes.
    pub kept_amount: i64,
    pub refund_needed: bool,
    /// Payments that arrived after the action could take them, or that were
    /// not its own (another amount, currency or account); to refund.
    pub late_payments: &'a [LatePayment],
    /// Invoices collected again while a refund of this payment, since failed, was under way.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub collected_elsewhere: Vec<&'a str>,
    /// The clinic's Stripe account no longer lets visitpay in.
    pub account_disconnected: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub history: &'a [HistoryEntry],
    /// Routine entries (sessions opened and expired) left out of the middle of `history`.
    pub history_omitted: u32,
    /// Grows with every write: the `version` of the action's status events,
    /// so a client merging reads and events keeps the newer.
    pub version: u64,
}

impl<'a> ActionView<'a> {
    pub fn new(stored: &'a Stored<Action>, patient_url: Option<String>) -> Self {
        let a = &stored.value;
        ActionView {
            action_id: a.action_id().as_str(),
            visit_id: a.visit_id().as_str(),
            patient_id: a.patient_id().as_str(),
            label: a.label(),
            locale: a.locale(),
            invoice_ids: a.invoice_ids().map(InvoiceId::as_str).collect(),
            amount: a.total().amount,
            currency: a.currency(),
            status: a.status(),
            patient_url,
            checkout_session_id: a.checkout_session_id().map(|s| s.as_str()),
            checkout_expires_at: a.checkout().current().filter(|c| c.session_id.is_some()).map(|c| c.expires_at),
            paid_at: a.paid_at(),
            refunded_amount: a.refunded().amount,
            refund_pending_amount: a
                .refunds()
                .records()
                .iter()
                .filter(|r| matches!(r.status, RefundState::Pending | RefundState::RequiresAction))
                .map(|r| r.amount)
                .sum(),
            refunds: a.refunds().records(),
            disputed: a.disputed(),
            disputes: a.disputes().records().iter().map(DisputeView::from).collect(),
            kept_amount: a.kept().amount,
            refund_needed: a.refund_needed(),
            late_payments: a.late().payments(),
            collected_elsewhere: a.late().collected_elsewhere().iter().map(InvoiceId::as_str).collect(),
            account_disconnected: a.account_disconnected(),
            created_at: a.created_at(),
            expires_at: a.expires_at(),
            history: a.history().entries(),
            history_omitted: a.history().omitted(),
            version: stored.version,
        }
    }
}

/// A dispute as staff see it: Stripe's status, the amount, and once closed
/// the outcome (`won`, `lost`) and what it took.
#[derive(Debug, Serialize)]
pub struct DisputeView<'a> {
    pub dispute_id: &'a str,
    pub payment_intent: &'a str,
    pub amount: i64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    pub funds_withdrawn: bool,
    /// What the dispute took from the clinic and kept.
    pub withdrawn_amount: i64,
}

impl<'a> From<&'a DisputeRecord> for DisputeView<'a> {
    fn from(d: &'a DisputeRecord) -> Self {
        DisputeView {
            dispute_id: d.dispute_id.as_str(),
            payment_intent: d.payment_intent.as_ref().map_or("", |p| p.as_str()),
            amount: d.amount,
            status: d.status.as_str(),
            outcome: d.outcome(),
            funds_withdrawn: d.funds_withdrawn,
            withdrawn_amount: d.withdrawn(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ActionList<'a> {
    pub actions: Vec<ActionView<'a>>,
}

/// All the patient page may know: no names, no invoice descriptions.
#[derive(Debug, Serialize)]
pub struct PatientActionView<'a> {
    pub label: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub status: ActionStatus,
    pub locale: Locale,
}

impl<'a> From<&'a Action> for PatientActionView<'a> {
    fn from(a: &'a Action) -> Self {
        PatientActionView {
            label: a.label(),
            amount: a.total().amount,
            currency: a.currency(),
            status: a.status(),
            locale: a.locale(),
        }
    }
}

/// A clinic's payment settings, as support wrote them.
#[derive(Debug, Serialize)]
pub struct SettingsView<'a> {
    pub clinic_id: &'a ClinicId,
    pub enabled: bool,
    pub label: &'a Label,
    pub stripe_account_id: Option<&'a StripeAccountId>,
    pub currency: Currency,
    pub checkout_ttl_minutes: u32,
    pub action_ttl_hours: u32,
    pub line_item_text: LineItemText,
    pub receipt_issuer: &'a ReceiptIssuer,
    pub embed_origins: &'a [String],
    pub time_zone: &'a ClinicTimeZone,
    pub receipt_days: u32,
    pub checkout_domain: &'a CheckoutDomain,
    pub reminder_hours: &'a [u32],
    pub quiet_hours: QuietHours,
    /// What Stripe last said of the account (absent before one is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_account: Option<AccountView<'a>>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    pub updated_by: &'a UserId,
}

/// A clinic's Stripe account as Stripe last described it.
#[derive(Debug, Serialize)]
pub struct AccountView<'a> {
    pub id: &'a StripeAccountId,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    pub requirements_due: &'a [String],
    pub disabled_reason: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: Timestamp,
}

impl<'a> From<&'a AccountHealth> for AccountView<'a> {
    fn from(h: &'a AccountHealth) -> Self {
        AccountView {
            id: &h.id,
            charges_enabled: h.charges_enabled,
            payouts_enabled: h.payouts_enabled,
            details_submitted: h.details_submitted,
            requirements_due: &h.requirements_due,
            disabled_reason: h.disabled_reason.as_deref(),
            as_of: h.as_of,
        }
    }
}

impl<'a> From<&'a ClinicSettings> for SettingsView<'a> {
    fn from(c: &'a ClinicSettings) -> Self {
        let s = &c.settings;
        SettingsView {
            clinic_id: &s.clinic_id,
            enabled: s.enabled,
            label: &s.label,
            stripe_account_id: s.stripe_account_id.as_ref(),
            currency: s.currency,
            checkout_ttl_minutes: s.checkout_ttl_minutes,
            action_ttl_hours: s.action_ttl_hours,
            line_item_text: s.line_item_text,
            receipt_issuer: &s.receipt_issuer,
            embed_origins: &s.embed_origins,
            time_zone: &s.time_zone,
            receipt_days: s.receipt_days,
            checkout_domain: &s.checkout_domain,
            reminder_hours: &s.reminder_hours,
            quiet_hours: s.quiet_hours,
            stripe_account: c.account.as_ref().map(AccountView::from),
            updated_at: s.updated_at,
            updated_by: &s.updated_by,
        }
    }
}

/// A payout, as the clinic's bookkeeper reads it.
#[derive(Debug, Serialize)]
pub struct PayoutView<'a> {
    pub payout_id: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub arrival_date: Timestamp,
    pub failure_code: Option<&'a str>,
    /// What the lines other than the payout's own add up to.
    pub lines_net: i64,
    pub line_count: u32,
    /// Whether they add up to the payout, to the cent.
    pub reconciles: bool,
}

impl<'a> From<&'a Payout> for PayoutView<'a> {
    fn from(p: &'a Payout) -> Self {
        PayoutView {
            payout_id: &p.payout_id,
            amount: p.amount,
            currency: p.currency,
            status: p.status,
            created: p.created,
            arrival_date: p.arrival_date,
            failure_code: p.failure_code.as_deref(),
            lines_net: p.lines_net,
            line_count: p.line_count,
            reconciles: p.reconciles(),
        }
    }
}

/// One balance transaction of a payout, traced to its action and invoices.
#[derive(Debug, Serialize)]
pub struct PayoutLineView<'a> {
    pub transaction_id: &'a str,
    #[serde(rename = "type")]
    pub kind: PayoutLineKind,
    pub stripe_type: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub created: Timestamp,
    pub gross: i64,
    pub fee: i64,
    pub net: i64,
    pub action_id: Option<&'a ActionId>,
    pub invoice_ids: &'a [InvoiceId],
}

impl<'a> From<&'a PayoutLine> for PayoutLineView<'a> {
    fn from(l: &'a PayoutLine) -> Self {
        PayoutLineView {
            transaction_id: &l.transaction_id,
            kind: l.kind,
            stripe_type: &l.stripe_type,
            created: l.created,
            gross: l.gross,
            fee: l.fee,
            net: l.net,
            action_id: l.action_id.as_ref(),
            invoice_ids: &l.invoice_ids,
        }
    }
}
