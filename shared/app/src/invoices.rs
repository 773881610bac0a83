//! Private invoices: import, list, and "make a payment" (select).

use std::collections::HashMap;

use tracing::instrument;

use super::{check_invoice_ids, with_retries, AppError, HasClock, HasStore, NotFound};
use crate::ports::{expect_of, Stored, Write};
use visitpay_domain::invoice::InvoiceInput;
use visitpay_domain::{ClinicId, Invoice, InvoiceId, InvoiceStatus, Money, PatientId};

/// Creates or replaces an invoice. Returns it and whether it was created.
#[instrument(skip_all, fields(clinic_id = %clinic, invoice_id = %invoice_id))]
pub async fn import(
    deps: &(impl HasStore + HasClock),
    clinic: &ClinicId,
    patient: &PatientId,
    invoice_id: &InvoiceId,
    input: InvoiceInput,
) -> Result<(Stored<Invoice>, bool), AppError> {
    with_retries!({
        let existing = deps.store().get_invoice(clinic, patient, invoice_id).await?;
        let invoice = Invoice::import(
            existing.as_ref().map(|e| &e.value),
            clinic.clone(),
            patient.clone(),
            invoice_id.clone(),
            input.clone(),
            deps.clock().now(),
        )?;
        let expect = expect_of(existing.as_ref());
        deps.store().commit(vec![Write::Invoice { invoice: invoice.clone(), expect }]).await?;
        Ok((Stored { value: invoice, version: expect.next_version() }, existing.is_none()))
    })
}

pub async fn list(
    deps: &impl HasStore,
    clinic: &ClinicId,
    patient: &PatientId,
    status: Option<InvoiceStatus>,
) -> Result<Vec<Stored<Invoice>>, AppError> {
    let mut invoices = deps.store().list_invoices(clinic, patient).await?;
    if let Some(status) = status {
        invoices.retain(|i| i.status() == status);
    }
    Ok(invoices)
}

/// Looks up each requested invoice in the patient's invoices, in request order.
pub(crate) fn pick<'a>(all: &'a [Stored<Invoice>], ids: &[InvoiceId]) -> Result<Vec<&'a Stored<Invoice>>, AppError> {
    let by_id: HashMap<&InvoiceId, &Stored<Invoice>> = all.iter().map(|i| (&i.invoice_id, i)).collect();
    ids.iter()
        .map(|id| by_id.get(id).copied().ok_or_else(|| AppError::NotFound(NotFound::Invoice(id.clone()))))
        .collect()
}

/// "Make a payment": marks invoices ready to collect, all or none, and
/// returns them with their total.
#[instrument(skip_all, fields(clinic_id = %clinic, invoices = ids.len()))]
pub async fn select(
    deps: &(impl HasStore + HasClock),
    clinic: &ClinicId,
    patient: &PatientId,
    ids: &[InvoiceId],
) -> Result<(Vec<Stored<Invoice>>, Money), AppError> {
    check_invoice_ids(ids)?;
    with_retries!({
        let all = deps.store().list_invoices(clinic, patient).await?;
        let chosen = pick(&all, ids)?;
        let now = deps.clock().now();
        let mut writes = Vec::new();
        let mut result = Vec::with_capacity(chosen.len());
        for old in &chosen {
            match old.select(now)? {
                Some(new) => {
                    writes.push(Write::Invoice { invoice: new.clone(), expect: old.expect() });
                    result.push(Stored { value: new, version: old.expect().next_version() });
                }
                None => result.push((*old).clone()),
            }
        }
        let total = Money::sum(result.iter().map(|i| i.money()).collect::<Vec<_>>().iter())?;
        if !writes.is_empty() {
            deps.store().commit(writes).await?;
        }
        Ok((result, total))
    })
}
