//! Clinic payment settings: support writes, staff of the clinic read.
//!
//! Where a clinic's money goes is its Stripe account: pointing its payments
//! at another account is checked with Stripe (the platform must know the
//! account, and it must be no other clinic's) and leaves a trace: a log line
//! with the old and new accounts and the support user, and a metric with an
//! alarm. Payments switch on only while Stripe lets the account charge.

use tracing::instrument;

use super::{accounts, AppError, Caller, HasClock, HasMetrics, HasPayments, HasStore, NotFound};
use crate::ports::{MoneySignal, PaymentsError, Stored};
use visitpay_domain::{AccountHealth, ClinicId, DomainError, PaymentSettings, SettingsInput};

/// A clinic's settings, and Stripe's latest word on its account.
#[derive(Debug, Clone, PartialEq)]
pub struct ClinicSettings {
    pub settings: PaymentSettings,
    /// What Stripe says of the account the settings name (`None` before
    /// any account, or while the one named was never described).
    pub account: Option<AccountHealth>,
}

impl ClinicSettings {
    fn of(settings: PaymentSettings, known: Option<Stored<AccountHealth>>) -> Self {
        let account = known.map(|k| k.value).filter(|h| Some(&h.id) == settings.stripe_account_id.as_ref());
        ClinicSettings { settings, account }
    }
}

/// Support replaces a clinic's settings. An account new to the clinic is
/// asked of Stripe (the platform must know it, and it must be no other
/// clinic's); payments switch on only while Stripe lets the account charge.
#[instrument(skip_all, fields(clinic_id = %clinic))]
pub async fn put(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    by: &Caller,
    clinic: ClinicId,
    input: SettingsInput,
) -> Result<ClinicSettings, AppError> {
    let settings = PaymentSettings::from_input(clinic, input, deps.clock().now(), by.sub.clone())?;
    let before = deps.store().get_settings(&settings.clinic_id).await?;
    let known = deps.store().account_health(&settings.clinic_id).await?;
    let old = before.as_ref().and_then(|s| s.stripe_account_id.as_ref());
    let new = settings.stripe_account_id.as_ref();
    let changed = old != new;
    let health = match new {
        Some(account) => match known.as_ref().filter(|k| &k.id == account) {
            Some(k) => Some(k.value.clone()),
            None => {
                let found = match deps.payments().retrieve_account(account).await {
                    Ok(found) => found,
                    Err(PaymentsError::NotFound | PaymentsError::AccountDisconnected) => {
                        tracing::warn!(account = %account.as_str(), by = %by.sub, "refused a Stripe account the platform does not know");
                        return Err(DomainError::StripeAccountUnknown.into());
                    }
                    Err(e) => return Err(e.into()),
                };
                Some(found.health(deps.clock().now()))
            }
        },
        None => None,
    };
    if let (true, Some(h)) = (settings.enabled, &health) {
        h.can_take_payments()?;
    }
    if let Some(h) = health.as_ref().filter(|h| known.as_ref().is_none_or(|k| k.value != **h)) {
        accounts::record_account(deps, &settings.clinic_id, h).await?;
    }
    // Its event log followed (a conditional write; already followed, nothing):
    // saving a clinic's settings again is how an account known before the
    // catch-up existed comes to be followed.
    if let Some(h) = &health {
        crate::catch_up::follow(deps, &h.id, deps.clock().now()).await?;
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
    Ok(ClinicSettings { settings, account: health })
}

pub async fn get(deps: &impl HasStore, clinic: &ClinicId) -> Result<ClinicSettings, AppError> {
    let settings = deps.store().get_settings(clinic).await?.ok_or(AppError::NotFound(NotFound::Settings))?;
    let known = deps.store().account_health(clinic).await?;
    Ok(ClinicSettings::of(settings, known))
}
