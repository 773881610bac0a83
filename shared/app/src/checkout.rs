//! The patient pays: open (or reuse) a Stripe Checkout Session for an action.
//!
//! At most one open session per action, even under concurrent clicks: an
//! attempt is first *reserved* on the action (conditional write), which fixes
//! its idempotency key and every parameter; whoever then calls Stripe, once or
//! many times, sends the very same request and gets the very same session.
//! A session near its end is expired at Stripe before another replaces it.

use tracing::instrument;

use super::actions::{for_patient, Reach};
use super::sessions::{checkout_lines, expire_session, request_for};
use super::transitions::replace_action;
use super::{with_retries, AppError, HasClock, HasConfig, HasPayments, HasStore};
use crate::ports::{CheckoutLine, PaymentsError, SessionStatus, Stored, Write};
use visitpay_domain::{
    Action, ActionEvent, Actor, Checkout, CheckoutDomain, ClinicTimeZone, DomainError, Locale, SessionId,
    StripeAccountId, Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLink {
    pub session_id: SessionId,
    pub url: String,
    pub expires_at: Timestamp,
}

/// A session this close to its end is not handed out again.
const MIN_REMAINING: time::Duration = time::Duration::seconds(60);

/// The patient's page: the action and its lines in the page's language.
#[derive(Debug)]
pub struct PatientPage {
    pub action: Stored<Action>,
    pub lines: Vec<CheckoutLine>,
    pub locale: Locale,
    /// The clinic's origins that may frame the page (its `frame-ancestors`).
    pub embed_origins: Vec<String>,
    /// Where the clinic's Checkout pages are (the Pay form goes there).
    pub checkout_domain: CheckoutDomain,
    /// The zone the page's dates are days of.
    pub time_zone: ClinicTimeZone,
}

/// What the patient's page shows, in `locale` (the visit's unless the
/// patient switched): the action, and its lines as Stripe's page shows them.
pub async fn patient_page(
    deps: &(impl HasStore + HasClock),
    token: &str,
    locale: Option<Locale>,
) -> Result<PatientPage, AppError> {
    let action = for_patient(deps, token, Reach::Look).await?;
    let locale = locale.unwrap_or(action.locale());
    let lines = checkout_lines(deps, &action, locale).await?;
    let settings = deps.store().get_settings(action.clinic_id()).await?;
    let (embed_origins, checkout_domain, clinic_zone) = match settings {
        Some(s) => (s.embed_origins, s.checkout_domain, s.time_zone),
        None => Default::default(),
    };
    // The zone the action was assigned in, as its receipt says; else the clinic's.
    let time_zone = action.terms().time_zone.clone().unwrap_or(clinic_zone);
    Ok(PatientPage { action, lines, locale, embed_origins, checkout_domain, time_zone })
}

/// Whether the clinic's account, as Stripe last described it, can take
/// the patient's payment (read).
async fn account_takes_payments(deps: &impl HasStore, action: &Action) -> Result<(), AppError> {
    if let Some(health) = deps.store().account_health(action.clinic_id()).await? {
        if &health.id == action.stripe_account_id() {
            health.can_take_payments()?;
        }
    }
    Ok(())
}

/// Writes a reserved attempt, only while the clinic's account can take
/// payments (the same rule, as the write's condition): one request. A
/// `Conflict` (a concurrent writer, or the account) sends the caller round
/// again, to read why.
async fn reserve(deps: &impl HasStore, current: &Stored<Action>, next: Action) -> Result<Stored<Action>, AppError> {
    let expect = current.expect();
    let condition =
        Write::AccountTakesPayments { clinic_id: next.clinic_id().clone(), account: next.stripe_account_id().clone() };
    deps.store().commit(vec![Write::Action { action: next.clone(), expect }, condition]).await?;
    Ok(Stored { value: next, version: expect.next_version() })
}

/// `POST /patient/actions/{token}/checkout`.
#[instrument(skip_all)]
pub async fn open(
    deps: &(impl HasStore + HasClock + HasConfig + HasPayments),
    token: &str,
) -> Result<CheckoutLink, AppError> {
    let payments = deps.payments();
    // Sessions created on the way, in case the action ends before one is recorded.
    let mut created: Vec<(StripeAccountId, SessionId)> = Vec::new();
    // Stripe's latest word on the clinic's account decides whether the
    // patient may pay: while it cannot charge, the patient is told here
    // rather than failing at Stripe's page. A new attempt's reservation
    // carries it as a condition (no read); an attempt that met a conflict,
    // a reservation joined and a session handed out again read it.
    //
    // The price of the condition: two reservations of one clinic in the same
    // instant include the same health item, and DynamoDB cancels one of them
    // (a transaction conflict); it is retried like any conflict.
    let mut first_attempt = true;
    let result = with_retries!({
        let action = for_patient(deps, token, Reach::Pay).await?;
        let now = deps.clock().now();
        action.payable(now)?;
        if !std::mem::replace(&mut first_attempt, false) {
            account_takes_payments(deps, &action).await?;
        }

        // A repeat click: the same open session.
        if let Some(Checkout { session_id: Some(session_id), url: Some(url), expires_at, .. }) =
            action.checkout().current()
        {
            if *expires_at - now > MIN_REMAINING {
                account_takes_payments(deps, &action).await?;
                return Ok(CheckoutLink { session_id: session_id.clone(), url: url.clone(), expires_at: *expires_at });
            }
            // Its time is up; Stripe may yet know an outcome we have not heard of.
            let session = payments.retrieve_checkout(action.stripe_account_id(), session_id).await?;
            match session.status {
                SessionStatus::Complete => return Err(DomainError::PaymentProcessing.into()),
                SessionStatus::Open if session.expires_at - now > MIN_REMAINING => {
                    if let Some(url) = session.url {
                        account_takes_payments(deps, &action).await?;
                        return Ok(CheckoutLink { session_id: session.id, url, expires_at: session.expires_at });
                    }
                }
                // Closed before it is replaced: never two payable at once.
                SessionStatus::Open => expire_session(deps, &action, session_id).await?,
                SessionStatus::Expired => {}
            }
        }

        // Reserve an attempt, or join one reserved within the minute (a
        // concurrent click, or one whose Stripe call failed): the account
        // may have been restricted since, so that is read.
        let action = match action.usable_reservation(now) {
            Some(_) => {
                account_takes_payments(deps, &action).await?;
                action
            }
            None => reserve(deps, &action, action.reserve_checkout(now)?).await?,
        };
        let attempt = action.checkout().current().cloned().expect("reserved above");
        let request = request_for(deps, &action, &attempt).await?;
        let session = match payments.create_checkout(&request).await {
            Ok(session) => session,
            // Stripe keeps a refusal under the attempt's key: the next click
            // must reserve a new attempt, not replay this answer.
            Err(e @ PaymentsError::Rejected { .. }) => {
                if let Some(dropped) = action.drop_reservation(attempt.attempt) {
                    if let Err(store) = replace_action(deps, &action, dropped).await {
                        tracing::warn!(error = %store, "could not drop a refused checkout attempt; it lapses in a minute");
                    }
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        if !created.iter().any(|(_, id)| *id == session.id) {
            created.push((action.stripe_account_id().clone(), session.id.clone()));
        }
        let url = session.url.clone().ok_or_else(|| PaymentsError::Unexpected("a session without url".into()))?;
        tracing::info!(action_id = %action.action_id(), attempt = attempt.attempt, session_id = %session.id, "checkout session ready");

        let event = ActionEvent::CheckoutOpened {
            session_id: session.id.clone(),
            url: url.clone(),
            expires_at: session.expires_at,
        };
        let opened = action.apply(&event, now, &Actor::Patient)?;
        if opened.changed {
            replace_action(deps, &action, opened.action).await?;
        }
        Ok(CheckoutLink { session_id: session.id, url, expires_at: session.expires_at })
    });
    // A session the action can no longer take (it ended meanwhile) must not
    // stay payable. One left unrecorded by another failure is the live
    // action's own: whatever ends or pays the action lists and expires it.
    if let Err(AppError::Domain(_)) = &result {
        for (account, session_id) in created {
            match payments.expire_checkout(&account, &session_id).await {
                Ok(_) => tracing::info!(session_id = %session_id, "expired a session its action could no longer take"),
                Err(e) => {
                    tracing::warn!(session_id = %session_id, error = %e, "could not expire an orphan session; a payment on it is flagged")
                }
            }
        }
    }
    result
}
