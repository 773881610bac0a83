//! What clients see: the JSON views of invoices and actions (the stored
//! shapes are the store adapters' business, `adapters::dynamodb::items`).

use serde::Serialize;

use crate::domain::{
    Action, ActionStatus, Currency, HistoryEntry, Invoice, InvoiceId, InvoiceStatus, LatePayment, Locale, Money,
    Timestamp,
};

#[derive(Debug, Serialize)]
pub struct InvoiceView<'a> {
    pub invoice_id: &'a str,
    pub patient_id: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub description: &'a str,
    pub service_date: &'a crate::domain::ServiceDate,
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
            status: i.status(),
            action_id: i.action_id().map(|a| a.as_str()),
            paid_at: i.paid_at,
            updated_at: i.updated_at,
        }
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
    pub refunded_amount: i64,
    pub disputed: bool,
    pub refund_needed: bool,
    /// Payments that arrived after the action could take them; to refund.
    pub late_payments: &'a [LatePayment],
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub history: &'a [HistoryEntry],
    /// Routine entries (sessions opened and expired) left out of the middle of `history`.
    pub history_omitted: u32,
}

impl<'a> ActionView<'a> {
    pub fn new(a: &'a Action, patient_url: Option<String>) -> Self {
        ActionView {
            action_id: a.action_id.as_str(),
            visit_id: a.visit_id.as_str(),
            patient_id: a.patient_id.as_str(),
            label: &a.label,
            locale: a.locale,
            invoice_ids: a.invoice_ids().map(InvoiceId::as_str).collect(),
            amount: a.amount,
            currency: a.currency,
            status: a.status(),
            patient_url,
            checkout_session_id: a.checkout_session_id(),
            checkout_expires_at: a.checkout.as_ref().filter(|c| c.session_id.is_some()).map(|c| c.expires_at),
            paid_at: a.paid_at,
            refunded_amount: a.refunded_amount,
            disputed: a.disputed,
            refund_needed: a.refund_needed(),
            late_payments: &a.late_payments,
            created_at: a.created_at,
            expires_at: a.expires_at,
            history: &a.history,
            history_omitted: a.history_omitted,
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
            label: &a.label,
            amount: a.amount,
            currency: a.currency,
            status: a.status(),
            locale: a.locale,
        }
    }
}
