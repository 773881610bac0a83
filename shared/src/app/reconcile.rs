//! Reconcile (scheduled): finds actions whose outcome Stripe may know but we
//! do not (a missed webhook), and actions past their lifetime. What it learns
//! it feeds to the same queue as the webhook, so the consumer stays the one
//! code path for every transition. Reads are index queries, never scans.

use serde::Serialize;
use tracing::instrument;

use super::actions::expire_session;
use super::{AppError, HasClock, HasMetrics, HasPayments, HasQueue, HasStore};
use crate::domain::{Action, ActionEvent, ActionStatus, Actor, DomainError, PaymentSignal, SignalKind};
use crate::ports::{
    CheckoutSession, Expect, MoneySignal, QueueMessage, SessionPaymentStatus, SessionStatus, StoreError, Write,
};

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

/// What reconcile learnt about an action, as the consumer applies it.
fn signal(action: &Action, event: ActionEvent) -> QueueMessage {
    QueueMessage::Signal(PaymentSignal {
        actor: Actor::Reconcile,
        account: Some(action.stripe_account_id.as_str().to_owned()),
        kind: SignalKind::Action { clinic_id: action.clinic_id.clone(), action_id: action.action_id.clone(), event },
    })
}

/// What a session's state means for an action that has not heard of it.
fn learnt(action: &Action, session: &CheckoutSession) -> Option<ActionEvent> {
    let failed_intent =
        matches!(session.payment_intent_status.as_deref(), Some("requires_payment_method" | "canceled"));
    let session_id = session.id.clone();
    let succeeded = || ActionEvent::PaymentSucceeded {
        session_id: session.id.clone(),
        payment_intent: session.payment_intent.clone(),
    };
    match (action.status(), session.status, session.payment_status) {
        (_, SessionStatus::Complete, SessionPaymentStatus::Paid | SessionPaymentStatus::NoPaymentRequired) => {
            Some(succeeded())
        }
        (ActionStatus::Processing, SessionStatus::Complete, SessionPaymentStatus::Unpaid) if failed_intent => {
            Some(ActionEvent::PaymentFailed { session_id })
        }
        (ActionStatus::CheckoutOpen, SessionStatus::Complete, SessionPaymentStatus::Unpaid) => {
            Some(ActionEvent::PaymentProcessing { session_id })
        }
        (ActionStatus::CheckoutOpen, SessionStatus::Expired, _) => Some(ActionEvent::CheckoutExpired { session_id }),
        _ => None,
    }
}

#[instrument(skip_all)]
pub async fn run(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments + HasQueue),
    config: ReconcileConfig,
) -> Result<Report, AppError> {
    let now = deps.clock().now();
    let mut report = Report::default();

    for action in deps.store().actions_awaiting_stripe(now - config.min_age, config.batch).await? {
        report.checked += 1;
        let Some(session_id) = action.checkout_session_id() else { continue };
        let session = match deps.payments().retrieve_checkout(&action.stripe_account_id, session_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(action_id = %action.action_id, error = %e, "could not retrieve a session");
                report.errors += 1;
                continue;
            }
        };
        match learnt(&action, &session) {
            Some(event) => {
                match &event {
                    ActionEvent::CheckoutExpired { .. } => report.found_expired_sessions += 1,
                    ActionEvent::PaymentFailed { .. } => report.found_failed += 1,
                    ActionEvent::PaymentProcessing { .. } => report.found_processing += 1,
                    _ => report.found_paid += 1,
                }
                if let Err(e) = deps.queue().enqueue(&signal(&action, event)).await {
                    tracing::error!(action_id = %action.action_id, error = %e, "could not queue what reconcile learnt");
                    report.errors += 1;
                    continue;
                }
            }
            None => report.still_open += 1,
        }
        // Not again before `min_age`; losing this race to the consumer is fine.
        let checked = action.mark_checked(now);
        match deps
            .store()
            .commit(vec![Write::Action { action: checked, expect: Expect::Version(action.version) }])
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => {
                tracing::warn!(action_id = %action.action_id, error = %e, "could not mark an action checked");
                report.errors += 1;
            }
        }
    }

    for action in deps.store().actions_past_lifetime(now, config.batch).await? {
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
        let expiry = QueueMessage::Signal(PaymentSignal {
            actor: Actor::Reconcile,
            account: None,
            kind: SignalKind::Action {
                clinic_id: action.clinic_id.clone(),
                action_id: action.action_id.clone(),
                event: ActionEvent::Expire,
            },
        });
        match deps.queue().enqueue(&expiry).await {
            Ok(()) => report.actions_expired += 1,
            Err(e) => {
                tracing::error!(action_id = %action.action_id, error = %e, "could not queue an expiry");
                report.errors += 1;
            }
        }
    }

    deps.metrics().signal(MoneySignal::ReconcileErrors(report.errors), None);
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
