//! Clinic payment settings: support writes, staff of the clinic read.

use lambda_http::http::StatusCode;

use super::actions::NoBody;
use super::request::Ctx;
use super::views::SettingsView;
use super::{json, Answer};
use visitpay_app::{
    accounts, settings, AppError, HasClock, HasConfig, HasMetrics, HasPayments, HasStore, NotFound, Role,
};
use visitpay_domain::{ClinicId, SettingsInput};

/// The clinic in the path, which a staff caller must work for: staff of
/// another clinic learn nothing, not even that it exists.
pub(super) fn clinic(ctx: &Ctx<'_>) -> Result<ClinicId, super::ApiError> {
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

/// What support opens to onboard the clinic with Stripe.
#[derive(serde::Serialize)]
struct OnboardingView<'a> {
    account_id: &'a visitpay_domain::StripeAccountId,
    url: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: visitpay_domain::Timestamp,
}

/// `POST /clinics/{clinic_id}/stripe-onboarding` (support): the clinic's
/// account (made by Stripe if it has none) and a fresh link to Stripe's
/// hosted onboarding for it.
pub(super) async fn onboarding(deps: &(impl HasStore + HasClock + HasConfig + HasPayments), ctx: Ctx<'_>) -> Answer {
    let clinic = clinic(&ctx)?;
    let NoBody {} = ctx.optional_body()?;
    let started = accounts::start_onboarding(deps, ctx.caller()?, &clinic).await?;
    let view = OnboardingView { account_id: &started.account_id, url: &started.url, expires_at: started.expires_at };
    Ok(json(StatusCode::OK, &view))
}
