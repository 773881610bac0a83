//! Private invoices: import, list, and "make a payment" (select).

use lambda_http::http::StatusCode;
use serde::Deserialize;

use super::request::{Ctx, RequestError};
use super::views::{InvoiceList, InvoiceView, SelectionView};
use super::{json, Answer};
use visitpay_app::{invoices, HasClock, HasStore};
use visitpay_domain::invoice::InvoiceInput;
use visitpay_domain::{InvoiceId, InvoiceStatus, PatientId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectBody {
    invoice_ids: Vec<String>,
}

pub(super) fn invoice_ids(raw: &[String]) -> Result<Vec<InvoiceId>, RequestError> {
    raw.iter().map(|s| Ok(InvoiceId::parse(s)?)).collect()
}

pub(super) async fn put(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let patient = ctx.id("patient_id", PatientId::parse)?;
    let invoice_id = ctx.id("invoice_id", InvoiceId::parse)?;
    let input: InvoiceInput = ctx.body()?;
    let (invoice, created) = invoices::import(deps, clinic, &patient, &invoice_id, input).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &InvoiceView::from(&invoice)))
}

pub(super) async fn list(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let patient = ctx.id("patient_id", PatientId::parse)?;
    let status = match ctx.query("status") {
        None => None,
        Some(s) => Some(InvoiceStatus::parse(&s).ok_or(RequestError::InvalidStatus)?),
    };
    let list = invoices::list(deps, clinic, &patient, status).await?;
    Ok(json(StatusCode::OK, &InvoiceList { invoices: list.iter().map(InvoiceView::from).collect() }))
}

pub(super) async fn select(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let patient = ctx.id("patient_id", PatientId::parse)?;
    let SelectBody { invoice_ids: raw } = ctx.body()?;
    let (selected, total) = invoices::select(deps, clinic, &patient, &invoice_ids(&raw)?).await?;
    Ok(json(StatusCode::OK, &SelectionView { invoices: selected.iter().map(InvoiceView::from).collect(), total }))
}
