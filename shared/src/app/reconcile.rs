//! Reconcile (scheduled): finds actions whose outcome Stripe may know but we
//! do not (a missed webhook), and actions past their lifetime. What it learns
//! it feeds to the same queue as the webhook, so the consumer stays the one
//! code path for every transition. Reads are index queries, never scans.

use serde::Serialize;
use serde_json::json;
use tracing::instrument;

use super::actions::expire_session;
use super::payment_events::{ACTION_EXPIRED_EVENT, META_ACTION, META_CLINIC, RECONCILE_EVENT_PREFIX};
use super::{AppError, Deps};
use crate::domain::{Action, ActionStatus, DomainError};
use crate::ports::{CheckoutSession, Expect, MoneySignal, QueuedEvent, SessionPaymentStatus, SessionStatus, Write};

#[derive(Debug, Clone, Copy)]
pub struct ReconcileConfig {
    /// Actions waiting on Stripe are checked once untouched for this long.
    pub min_age: time::Duration,
    /// At most this many actions of each kind per run; the rest wait a run.
    pub batch: usize,
}

/// What one run found and fixed; logged as one structured line.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checked: u32,
    pub still_open: u32,
    pub found_paid: u32,
    pub found_processing: u32,
    pub found_failed: u32,
    pub found_expired_sessions: u32,
    pub actions_expired: u32,
    pub payment_landing_at_expiry: u32,
    pub errors: u32,
}

/// A Stripe-shaped event describing what Stripe told us about a session.
fn session_event(kind: &str, action: &Action, session: &CheckoutSession, now: i64) -> QueuedEvent {
    let payment_status = match session.payment_status {
        SessionPaymentStatus::Paid => "paid",
        SessionPaymentStatus::Unpaid => "unpaid",
        SessionPaymentStatus::NoPaymentRequired => "no_payment_required",
    };
    let event_id = format!("{RECONCILE_EVENT_PREFIX}{}:{kind}:{payment_status}", session.id);
    let body = json!({
        "id": event_id,
        "object": "event",
        "type": kind,
        "account": action.stripe_account_id.as_str(),
        "created": now,
        "data": {"object": {
            "id": session.id,
            "object": "checkout.session",
            "payment_status": payment_status,
            "payment_intent": session.payment_intent,
            "metadata": {META_ACTION: action.action_id.as_str(), META_CLINIC: action.clinic_id.as_str()}
        }}
    });
    QueuedEvent { event_id, event_type: kind.to_owned(), body: body.to_string() }
}

fn expiry_event(action: &Action, now: i64) -> QueuedEvent {
    let event_id = format!("{RECONCILE_EVENT_PREFIX}expire:{}", action.action_id);
    let body = json!({
        "id": event_id,
        "object": "event",
        "type": ACTION_EXPIRED_EVENT,
        "created": now,
        "data": {"object": {"clinic_id": action.clinic_id.as_str(), "action_id": action.action_id.as_str()}}
    });
    QueuedEvent { event_id, event_type: ACTION_EXPIRED_EVENT.to_owned(), body: body.to_string() }
}

/// What a session's state means for an action that has not heard of it.
fn learnt(action: &Action, session: &CheckoutSession) -> Option<&'static str> {
    let failed_intent =
        matches!(session.payment_intent_status.as_deref(), Some("requires_payment_method" | "canceled"));
    match (action.status(), session.status, session.payment_status) {
        (ActionStatus::Processing, SessionStatus::Complete, SessionPaymentStatus::Paid) => {
            Some("checkout.session.async_payment_succeeded")
        }
        (_, SessionStatus::Complete, SessionPaymentStatus::Paid | SessionPaymentStatus::NoPaymentRequired) => {
            Some("checkout.session.completed")
        }
        (ActionStatus::Processing, SessionStatus::Complete, SessionPaymentStatus::Unpaid) if failed_intent => {
            Some("checkout.session.async_payment_failed")
        }
        (ActionStatus::CheckoutOpen, SessionStatus::Complete, SessionPaymentStatus::Unpaid) => {
            Some("checkout.session.completed")
        }
        (ActionStatus::CheckoutOpen, SessionStatus::Expired, _) => Some("checkout.session.expired"),
        _ => None,
    }
}

#[instrument(skip_all)]
pub async fn run(deps: &Deps, config: ReconcileConfig) -> Result<Report, AppError> {
    let payments = deps.payments.as_ref().ok_or(AppError::Misconfigured("payments"))?;
    let queue = deps.queue.as_ref().ok_or(AppError::Misconfigured("event queue"))?;
    let now = deps.clock.now();
    let mut report = Report::default();

    for action in deps.store.actions_awaiting_stripe(now - config.min_age, config.batch).await? {
        report.checked += 1;
        let Some(session_id) = action.checkout_session_id() else { continue };
        let session = match payments.retrieve_checkout(&action.stripe_account_id, session_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(action_id = %action.action_id, error = %e, "could not retrieve a session");
                report.errors += 1;
                continue;
            }
        };
        match learnt(&action, &session) {
            Some(kind) => {
                match kind {
                    "checkout.session.expired" => report.found_expired_sessions += 1,
                    "checkout.session.async_payment_failed" => report.found_failed += 1,
                    _ if session.payment_status == SessionPaymentStatus::Unpaid => report.found_processing += 1,
                    _ => report.found_paid += 1,
                }
                if let Err(e) = queue.enqueue(&session_event(kind, &action, &session, now.unix_timestamp())).await {
                    tracing::error!(action_id = %action.action_id, error = %e, "could not queue what reconcile learnt");
                    report.errors += 1;
                    continue;
                }
            }
            None => report.still_open += 1,
        }
        // Not again before `min_age`; losing this race to the consumer is fine.
        let checked = action.mark_checked(now);
        match deps.store.commit(vec![Write::Action { action: checked, expect: Expect::Version(action.version) }]).await
        {
            Ok(()) | Err(crate::ports::StoreError::Conflict) => {}
            Err(e) => {
                tracing::warn!(action_id = %action.action_id, error = %e, "could not mark an action checked");
                report.errors += 1;
            }
        }
    }

    for action in deps.store.actions_past_lifetime(now, config.batch).await? {
        if let Some(session_id) = action.checkout_session_id() {
            match expire_session(deps, &action, session_id).await {
                Ok(()) => {}
                // Paid at the last moment: the payment wins; the check above
                // (now or next run) feeds it to the consumer.
                Err(AppError::Domain(DomainError::PaymentProcessing)) => {
                    report.payment_landing_at_expiry += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(action_id = %action.action_id, error = %e, "could not expire a session");
                    report.errors += 1;
                    continue;
                }
            }
        }
        match queue.enqueue(&expiry_event(&action, now.unix_timestamp())).await {
            Ok(()) => report.actions_expired += 1,
            Err(e) => {
                tracing::error!(action_id = %action.action_id, error = %e, "could not queue an expiry");
                report.errors += 1;
            }
        }
    }

    deps.metrics.signal(MoneySignal::ReconcileErrors(report.errors), None);
    tracing::info!(
        checked = report.checked,
        still_open = report.still_open,
        found_paid = report.found_paid,
        found_processing = report.found_processing,
        found_failed = report.found_failed,
        found_expired_sessions = report.found_expired_sessions,
        actions_expired = report.actions_expired,
        payment_landing_at_expiry = report.payment_landing_at_expiry,
        errors = report.errors,
        "reconcile finished"
    );
    Ok(report)
}
