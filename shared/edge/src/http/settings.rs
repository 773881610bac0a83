//! Clinic payment settings: support writes, staff of the clinic read.

use lambda_http::http::StatusCode;

use super::request::Ctx;
use super::views::SettingsView;
use super::{json, Answer};
use visitpay_app::{settings, AppError, HasClock, HasMetrics, HasPayments, HasStore, NotFound, Role};
use visitpay_domain::{ClinicId, SettingsInput};

/// The clinic in the path, which a staff caller must work for: staff of
/// another clinic learn nothing, not even that it exists.
fn clinic(ctx: &Ctx<'_>) -> Result<ClinicId, super::ApiError> {
    let clinic = ctx.id("clinic_id", ClinicId::parse)?;
    let caller = ctx.caller()?;
    if caller.role == Role::Staff && caller.clinic_id.as_ref() != Some(&clinic) {
        return Err(AppError::NotFound(NotFound::Settings).into());
    }
    Ok(clinic)
}

pub(super) async fn put(deps: &(impl HasStore + HasClock + HasMetrics + HasPayments), ctx: Ctx<'_>) -> Answer {
    let clinic = clinic(&ctx)?;
    let input: SettingsInput = ctx.body()?;
    let written = settings::put(deps, ctx.caller()?, clinic, input).await?;
    Ok(json(StatusCode::OK, &SettingsView::from(&written)))
}

pub(super) async fn get(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let clinic = clinic(&ctx)?;
    let stored = settings::get(deps, &clinic).await?;
    Ok(json(StatusCode::OK, &SettingsView::from(&stored)))
}
