//! A clinic's connected Stripe account: onboarding through Stripe's hosted
//! pages (the account made by Stripe's API, never typed), and what Stripe
//! says of it kept current (`account.updated`, `capability.updated`), which
//! decides whether the clinic can take payments.
//!
//! Stripe's guidance followed: new platforms onboard accounts with Account
//! Links to Stripe's hosted onboarding (OAuth for Standard accounts is "not
//! recommended for new Connect platforms",
//! https://docs.stripe.com/connect/oauth-standard-accounts); a return to the
//! platform does not mean onboarding is complete, `charges_enabled` does
//! (https://docs.stripe.com/connect/hosted-onboarding).

use tracing::instrument;

use super::{with_retries, AppError, Caller, HasClock, HasConfig, HasPayments, HasStore, NotFound};
use crate::ports::{expect_of, PaymentsError, Stored, Write};
use visitpay_domain::{AccountHealth, ClinicId, DomainError, PaymentSettings, StripeAccountId, Timestamp};

/// Where Stripe's hosted onboarding is, for one clinic's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onboarding {
    pub account_id: StripeAccountId,
    /// Single use, valid a few minutes: open it at once.
    pub url: String,
    pub expires_at: Timestamp,
}

/// Support starts (or continues) the clinic's onboarding: the clinic's
/// account is made by Stripe unless it has one, and a fresh link to
/// Stripe's hosted onboarding is made for it. Stripe sends the person back
/// to the onboarding page with `onboarding=return` (done, or left for later)
/// or `onboarding=refresh` (the link expired or was used: ask again).
#[instrument(skip_all, fields(clinic_id = %clinic))]
pub async fn start_onboarding(
    deps: &(impl HasStore + HasClock + HasConfig + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
) -> Result<Onboarding, AppError> {
    let page =
        deps.config().onboarding_page.clone().ok_or_else(|| {
            AppError::Inconsistent("no onboarding page is configured (VISITPAY_ONBOARDING_PAGE)".into())
        })?;
    let settings = deps.store().get_settings(clinic).await?.ok_or(AppError::NotFound(NotFound::Settings))?;
    let account = match &settings.stripe_account_id {
        Some(account) => account.clone(),
        None => create_account(deps, by, settings).await?,
    };
    let separator = if page.contains('?') { '&' } else { '?' };
    let back = |what: &str| format!("{page}{separator}clinic={clinic}&onboarding={what}");
    let link = deps.payments().create_account_link(&account, &back("refresh"), &back("return")).await?;
    tracing::info!(account = account.as_str(), by = %by.sub, "onboarding link made");
    Ok(Onboarding { account_id: account, url: link.url, expires_at: link.expires_at })
}

/// The clinic's account, made by Stripe (the same one for a retry: the
/// request is idempotent per clinic), recorded as the clinic's: its owner,
/// what Stripe says of it, and the settings pointing at it.
async fn create_account(
    deps: &(impl HasStore + HasClock + HasPayments),
    by: &Caller,
    settings: PaymentSettings,
) -> Result<StripeAccountId, AppError> {
    let clinic = settings.clinic_id.clone();
    let created = deps.payments().create_account(&clinic).await?;
    let health = created.health(deps.clock().now());
    record_account(deps, &clinic, &health).await?;
    let now = deps.clock().now();
    let settings = PaymentSettings {
        stripe_account_id: Some(created.id.clone()),
        updated_at: now,
        updated_by: by.sub.clone(),
        ..settings
    };
    deps.store().put_settings(&settings).await?;
    tracing::info!(account = created.id.as_str(), by = %by.sub, "the clinic's Stripe account was made by Stripe");
    Ok(created.id)
}

/// Records that the clinic's payments go to `account`, with what Stripe says of it.
pub(crate) async fn record_account(
    deps: &impl HasStore,
    clinic: &ClinicId,
    health: &AccountHealth,
) -> Result<(), AppError> {
    with_retries!({
        let known = deps.store().account_health(clinic).await?;
        let writes = vec![
            Write::AccountOwner { account: health.id.clone(), clinic_id: clinic.clone() },
            Write::AccountHealth {
                clinic_id: clinic.clone(),
                health: health.clone(),
                expect: expect_of(known.as_ref()),
            },
        ];
        deps.store().commit(writes).await?;
        Ok(())
    })?;
    // From now on, what Stripe fails to deliver about it is read back from its log.
    crate::catch_up::follow(deps, &health.id, health.as_of).await
}

/// What `apply_health` made of Stripe's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthApplied {
    /// Recorded (whether payments can be taken changed or not).
    Recorded { charges_enabled: bool },
    /// Older than what is known, or another account's than the clinic's now.
    Stale,
    /// An account no clinic's payments go to (not onboarded through visitpay, nor set).
    NotOurs,
}

/// Stripe's word on an account (`account.updated`, or asked again): the
/// record of every clinic whose payments go to it follows, if it is newer
/// than what that clinic knows.
#[instrument(skip_all, fields(account = health.id.as_str()))]
pub async fn apply_health(deps: &impl HasStore, health: AccountHealth) -> Result<HealthApplied, AppError> {
    let clinics = deps.store().clinics_of_account(&health.id).await?;
    if clinics.is_empty() {
        tracing::info!("an account no clinic is: ignored");
        return Ok(HealthApplied::NotOurs);
    }
    let mut applied = HealthApplied::Stale;
    for clinic in clinics {
        if let recorded @ HealthApplied::Recorded { .. } = apply_to_clinic(deps, &clinic, &health).await? {
            applied = recorded;
        }
    }
    if matches!(applied, HealthApplied::Recorded { .. }) {
        // An account recorded before the catch-up existed is followed from
        // its first word since (a conditional write; already followed, nothing).
        crate::catch_up::follow(deps, &health.id, health.as_of).await?;
    }
    Ok(applied)
}

async fn apply_to_clinic(
    deps: &impl HasStore,
    clinic: &ClinicId,
    health: &AccountHealth,
) -> Result<HealthApplied, AppError> {
    with_retries!({
        let known: Option<Stored<AccountHealth>> = deps.store().account_health(clinic).await?;
        if let Some(k) = &known {
            if !k.superseded_by(health) {
                return Ok(HealthApplied::Stale);
            }
            if k.value == *health {
                return Ok(HealthApplied::Recorded { charges_enabled: health.charges_enabled });
            }
            if k.charges_enabled && !health.charges_enabled {
                tracing::warn!(
                    clinic_id = %clinic,
                    disabled_reason = health.disabled_reason.as_deref().unwrap_or("-"),
                    "the clinic's Stripe account can no longer take payments"
                );
            } else if !k.charges_enabled && health.charges_enabled {
                tracing::info!(clinic_id = %clinic, "the clinic's Stripe account can take payments");
            }
        }
        let write = Write::AccountHealth {
            clinic_id: clinic.clone(),
            health: health.clone(),
            expect: expect_of(known.as_ref()),
        };
        deps.store().commit(vec![write]).await?;
        Ok(HealthApplied::Recorded { charges_enabled: health.charges_enabled })
    })
}

/// Something of an account changed that its object tells
/// (`capability.updated`): Stripe is asked, and its answer applied.
pub async fn check_account(
    deps: &(impl HasStore + HasClock + HasPayments),
    account: &StripeAccountId,
) -> Result<HealthApplied, AppError> {
    if deps.store().clinics_of_account(account).await?.is_empty() {
        return Ok(HealthApplied::NotOurs);
    }
    match deps.payments().retrieve_account(account).await {
        Ok(found) => apply_health(deps, found.health(deps.clock().now())).await,
        // Disconnected: `account.application.deauthorized` says so on its own.
        Err(PaymentsError::AccountDisconnected | PaymentsError::NotFound) => Ok(HealthApplied::Stale),
        Err(e) => Err(e.into()),
    }
}

/// Whether the clinic's account can take payments now, by what Stripe last
/// said; an account never described (set before visitpay followed accounts)
/// is asked once, and its answer kept.
pub(crate) async fn ensure_can_take_payments(
    deps: &(impl HasStore + HasClock + HasPayments),
    settings: &PaymentSettings,
    known: Option<&Stored<AccountHealth>>,
) -> Result<(), AppError> {
    let Some(account) = &settings.stripe_account_id else { return Err(DomainError::PaymentsDisabled.into()) };
    match known.filter(|k| &k.id == account) {
        Some(health) => Ok(health.can_take_payments()?),
        None => {
            let found = match deps.payments().retrieve_account(account).await {
                Ok(found) => found,
                Err(PaymentsError::AccountDisconnected | PaymentsError::NotFound) => {
                    return Err(DomainError::StripeAccountRestricted.into())
                }
                Err(e) => return Err(e.into()),
            };
            let health = found.health(deps.clock().now());
            record_account(deps, &settings.clinic_id, &health).await?;
            Ok(health.can_take_payments()?)
        }
    }
}
