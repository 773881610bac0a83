//! The patient's receipt, for their extended health insurer: who issued it,
//! each service with its date and provider, what was paid, when, under which
//! Stripe reference, and what was refunded since. Built from the clinic's
//! settings, the invoices the action paid and what Stripe reported; nothing
//! new goes to Stripe. Only a paid action has one.

use std::collections::HashMap;

use super::actions::{self, for_patient, Reach};
use super::{texts, AppError, HasClock, HasStore};
use crate::ports::ReceiptDocument;
use visitpay_domain::{
    Action, ActionStatus, ClinicId, Currency, DomainError, InvoiceId, Locale, ReceiptDetails, ReceiptIssuer,
    RefundState, Timestamp,
};

#[derive(Debug, Clone)]
pub struct Receipt {
    /// Stable per action: the same receipt every time it is asked for.
    pub number: String,
    pub locale: Locale,
    pub issuer: ReceiptIssuer,
    /// The clinic's label, as the patient saw it.
    pub clinic_label: String,
    pub lines: Vec<ReceiptLine>,
    pub currency: Currency,
    pub total: i64,
    pub paid_at: Timestamp,
    /// The zone the receipt's dates are days of.
    pub time_zone: visitpay_domain::ClinicTimeZone,
    /// Stripe's PaymentIntent id, the reference the clinic's Stripe account shows.
    pub payment_reference: String,
    /// How the patient paid, once Stripe's charge said.
    pub payment_method: Option<visitpay_domain::PaymentMethod>,
    /// Refunds that moved (or are moving) money back, in the order Stripe made them.
    pub refunds: Vec<(i64, RefundState)>,
    pub refunded_amount: i64,
}

#[derive(Debug, Clone)]
pub struct ReceiptLine {
    pub invoice_id: InvoiceId,
    /// The invoice's service when the billing system said it, else the generic line.
    pub service: String,
    pub service_date: Option<String>,
    pub details: ReceiptDetails,
    pub amount: i64,
}

impl Receipt {
    /// The patient's name, when every invoice that names one names the same.
    pub fn patient_name(&self) -> Option<&str> {
        let mut names = self.lines.iter().filter_map(|l| l.details.patient_name.as_deref());
        let first = names.next()?;
        names.all(|n| n == first).then_some(first)
    }
}

/// `R-` and the action id's random part: stable, and no secret (the action id
/// is not the link's secret).
pub fn receipt_number(action: &Action) -> String {
    let id = action.action_id().as_str();
    format!("R-{}", id.strip_prefix("act_").unwrap_or(id).to_ascii_uppercase())
}

/// The receipt behind the patient's link, in `locale` (the visit's by default).
pub async fn for_patient_link(
    deps: &(impl HasStore + HasClock),
    token: &str,
    locale: Option<Locale>,
) -> Result<Receipt, AppError> {
    let action = for_patient(deps, token, Reach::Look).await?;
    of_action(deps, &action, locale).await
}

/// The same receipt for the clinic's staff.
pub async fn for_staff(
    deps: &impl HasStore,
    clinic: &ClinicId,
    action_id: &visitpay_domain::ActionId,
    locale: Option<Locale>,
) -> Result<Receipt, AppError> {
    let action = actions::get(deps, clinic, action_id).await?;
    of_action(deps, &action, locale).await
}

/// The receipt of a paid action, in `locale` (the visit's by default).
pub async fn of_action(deps: &impl HasStore, action: &Action, locale: Option<Locale>) -> Result<Receipt, AppError> {
    let status = action.status();
    let paid = matches!(status, ActionStatus::Paid | ActionStatus::PartiallyRefunded | ActionStatus::Refunded);
    let (Some(paid_at), Some(reference), true) = (action.paid_at(), action.payment_intent_id(), paid) else {
        return Err(DomainError::ReceiptNotAvailable(status).into());
    };
    let locale = locale.unwrap_or(action.locale());
    let terms = action.terms();
    // What the receipt says was fixed when the action was assigned (its
    // invoices could not change until paid): an issued receipt never
    // changes. Actions older than that read the settings and invoices.
    let frozen = action.lines().iter().all(|l| l.service_date.is_some())
        && terms.receipt_issuer.is_some()
        && terms.time_zone.is_some();
    let (issuer, time_zone, invoices) = if frozen {
        (terms.receipt_issuer.clone().unwrap_or_default(), terms.time_zone.clone().unwrap_or_default(), HashMap::new())
    } else {
        let settings = deps.store().get_settings(action.clinic_id()).await?;
        let (issuer, zone) = settings.map(|s| (s.receipt_issuer, s.time_zone)).unwrap_or_default();
        let invoices: HashMap<InvoiceId, visitpay_domain::Invoice> = deps
            .store()
            .list_invoices(action.clinic_id(), action.patient_id())
            .await?
            .into_iter()
            .map(|i| (i.invoice_id.clone(), i.into_value()))
            .collect();
        (terms.receipt_issuer.clone().unwrap_or(issuer), terms.time_zone.clone().unwrap_or(zone), invoices)
    };
    let lines = action
        .lines()
        .iter()
        .map(|line| {
            let invoice = invoices.get(&line.invoice_id);
            let (service_date, details) = match (&line.service_date, invoice) {
                (Some(date), _) => (Some(date.as_str().to_owned()), line.receipt.clone()),
                (None, Some(i)) => (Some(i.service_date.as_str().to_owned()), i.receipt.clone()),
                (None, None) => (None, ReceiptDetails::default()),
            };
            ReceiptLine {
                invoice_id: line.invoice_id.clone(),
                service: details
                    .service
                    .clone()
                    .unwrap_or_else(|| super::sessions::generic_name(&line.invoice_id, locale)),
                service_date,
                details,
                amount: line.amount.amount,
            }
        })
        .collect();
    let own: Vec<(i64, RefundState)> =
        action.refunds().records().iter().filter(|r| r.status.moves_money()).map(|r| (r.amount, r.status)).collect();
    Ok(Receipt {
        number: receipt_number(action),
        locale,
        issuer,
        clinic_label: action.label().to_owned(),
        lines,
        currency: action.currency(),
        total: action.total().amount,
        paid_at,
        time_zone,
        payment_reference: reference.to_string(),
        payment_method: action.payment_method().cloned(),
        refunds: own,
        refunded_amount: action.refunded().amount,
    })
}

/// What the receipt says, in order, whatever its form (the edge's page, the
/// PDF renderer's document).
pub fn document(r: &Receipt) -> ReceiptDocument {
    let words = texts::words(r.locale);
    let w = &words.receipt;
    let money = |amount: i64| texts::money(amount, r.currency, r.locale);
    let mut missing: Vec<&str> = Vec::new();
    let mut given = |value: &Option<String>, what: &'static str| match value {
        Some(v) => v.clone(),
        None => {
            if !missing.contains(&what) {
                missing.push(what);
            }
            w.not_provided.to_owned()
        }
    };
    let mut header = vec![
        (w.receipt_no.to_owned(), r.number.clone()),
        (w.issued_by.to_owned(), given(&r.issuer.legal_name, w.missing_legal_name)),
        // An address may be given on several lines; the receipt writes it on one.
        (
            w.address.to_owned(),
            given(
                &r.issuer.address.as_ref().map(|a| a.lines().map(str::trim).collect::<Vec<_>>().join(", ")),
                w.missing_address,
            ),
        ),
        (w.phone.to_owned(), given(&r.issuer.phone, w.missing_phone)),
    ];
    let patient = r.patient_name().map(str::to_owned);
    header.push((w.patient.to_owned(), given(&patient, w.missing_patient_name)));
    let rows = r
        .lines
        .iter()
        .map(|line| {
            let d = &line.details;
            let provider = [
                given(&d.provider_name, w.missing_provider_name),
                given(&d.profession, w.missing_profession),
                format!("{} {}", w.registration_no, given(&d.registration_number, w.missing_registration_number)),
            ]
            .join(", ");
            let date = given(&line.service_date, w.missing_service_date);
            [line.service.clone(), date, provider, money(line.amount)]
        })
        .collect();
    let mut footer = vec![
        (w.total_paid.to_owned(), money(r.total)),
        (w.paid_on.to_owned(), texts::date(r.paid_at, r.locale, &r.time_zone)),
        (w.payment_reference.to_owned(), r.payment_reference.clone()),
        (
            w.payment_method.to_owned(),
            r.payment_method
                .as_ref()
                .map_or_else(|| w.not_yet_reported.to_owned(), |m| m.describe(&words.payment_method)),
        ),
    ];
    for (amount, status) in &r.refunds {
        let state = match status {
            RefundState::Succeeded => w.refund_completed,
            _ => w.refund_in_progress,
        };
        footer.push((w.refund.to_owned(), format!("{} ({state})", money(*amount))));
    }
    if r.refunded_amount > 0 {
        footer.push((w.net_paid.to_owned(), money(r.total - r.refunded_amount)));
    }
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!("{} {}.", w.not_provided_by_clinic, missing.join(", "))
    };
    ReceiptDocument {
        lang: words.lang,
        title: format!("{} — {}", w.receipt, r.clinic_label),
        header,
        services_caption: w.services,
        columns: [w.column_service, w.column_date, w.column_provider, w.column_amount],
        rows,
        footer,
        missing,
        number: r.number.clone(),
    }
}
