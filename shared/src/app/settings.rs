//! Clinic payment settings: support writes, staff of the clinic read.

use tracing::instrument;

use super::{AppError, Caller, HasClock, HasStore, NotFound};
use crate::domain::{ClinicId, PaymentSettings, SettingsInput};

#[instrument(skip_all, fields(clinic_id = %clinic))]
pub async fn put(
    deps: &(impl HasStore + HasClock),
    by: &Caller,
    clinic: ClinicId,
    input: SettingsInput,
) -> Result<PaymentSettings, AppError> {
    let settings = PaymentSettings::from_input(clinic, input, deps.clock().now(), by.sub.clone())?;
    deps.store().put_settings(&settings).await?;
    tracing::info!(enabled = settings.enabled, "payment settings replaced");
    Ok(settings)
}

pub async fn get(deps: &impl HasStore, clinic: &ClinicId) -> Result<PaymentSettings, AppError> {
    deps.store().get_settings(clinic).await?.ok_or(AppError::NotFound(NotFound::Settings))
}
