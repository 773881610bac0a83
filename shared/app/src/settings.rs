//! Clinic payment settings: support writes, staff of the clinic read.
//!
//! Where a clinic's money goes is its Stripe account: pointing its payments
//! at another account is checked with Stripe (the platform must know the
//! account) and leaves a trace: a log line with the old and new accounts and
//! the support user, and a metric with an alarm.

use tracing::instrument;

use super::{AppError, Caller, HasClock, HasMetrics, HasPayments, HasStore, NotFound};
use crate::ports::{MoneySignal, PaymentsError};
use visitpay_domain::{ClinicId, DomainError, PaymentSettings, SettingsInput};

#[instrument(skip_all, fields(clinic_id = %clinic))]
pub async fn put(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    by: &Caller,
    clinic: ClinicId,
    input: SettingsInput,
) -> Result<PaymentSettings, AppError> {
    let settings = PaymentSettings::from_input(clinic, input, deps.clock().now(), by.sub.clone())?;
    let before = deps.store().get_settings(&settings.clinic_id).await?;
    let old = before.as_ref().and_then(|s| s.stripe_account_id.as_ref());
    let new = settings.stripe_account_id.as_ref();
    let changed = old != new;
    if let (true, Some(account)) = (changed, new) {
        match deps.payments().retrieve_account(account).await {
            Ok(_) => {}
            Err(PaymentsError::NotFound | PaymentsError::AccountDisconnected) => {
                tracing::warn!(account = %account.as_str(), by = %by.sub, "refused a Stripe account the platform does not know");
                return Err(DomainError::StripeAccountUnknown.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    deps.store().put_settings(&settings).await?;
    match (changed, old) {
        // An account replaced (or removed): where the clinic's money goes moved.
        (true, Some(old)) => {
            tracing::warn!(
                old_account = old.as_str(),
                new_account = new.map_or("-", |a| a.as_str()),
                by = %by.sub,
                "the clinic's payments now go to another Stripe account"
            );
            deps.metrics().signal(MoneySignal::AccountChanged, None);
        }
        // The clinic's first account: recorded, no alarm.
        (true, None) => {
            tracing::info!(new_account = new.map_or("-", |a| a.as_str()), by = %by.sub, "the clinic's Stripe account is set");
        }
        (false, _) => {}
    }
    tracing::info!(enabled = settings.enabled, "payment settings replaced");
    Ok(settings)
}

pub async fn get(deps: &impl HasStore, clinic: &ClinicId) -> Result<PaymentSettings, AppError> {
    deps.store().get_settings(clinic).await?.ok_or(AppError::NotFound(NotFound::Settings))
}
