//! Reconcile (scheduled): finds actions whose outcome Stripe may know but we
//! do not (a missed webhook), and actions past their lifetime. What it learns
//! it feeds to the same queue as the webhook, so the consumer stays the one
//! code path for every transition. Reads are index queries, never scans.

use serde::Serialize;
use tracing::instrument;

use super::sessions::close_open_sessions;
use super::transitions::replace_action;
use super::{AppError, HasClock, HasConfig, HasMetrics, HasPayments, HasQueue, HasStore};
use crate::ports::{
    CheckoutSession, MoneySignal, PaymentsError, QueueMessage, SessionPaymentStatus, SessionStatus, StoreError, Stored,
};
use visitpay_domain::{
    Action, ActionEvent, ActionStatus, Actor, Charged, DomainError, PaymentSignal, SessionsClosed, SignalKind,
    Timestamp,
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
    /// Actions whose clinic's Stripe account no longer lets us in: expired, flagged.
    pub accounts_disconnected: u32,
    /// Actions whose check failed: backed off, behind the healthy ones.
    pub backed_off: u32,
    pub errors: u32,
    /// Actions left for the next run because this one's deadline was near.
    pub deferred: u32,
    /// What Stripe did not deliver, read back from each account's event log.
    pub catch_up: crate::catch_up::CatchUpReport,
}

/// What a run keeps of its deadline for what it has started: it takes no
/// new action closer to its end than this (the rest wait a run, in order).
const DEADLINE_RESERVE: std::time::Duration = std::time::Duration::from_secs(10);

fn out_of_time() -> bool {
    crate::ports::deadline::remaining().is_some_and(|left| left < DEADLINE_RESERVE)
}

/// What reconcile learnt about an action, as the consumer applies it, in the
/// mode of the Stripe key it asked with.
fn signal(deps: &impl HasPayments, action: &Action, event: ActionEvent) -> QueueMessage {
    QueueMessage::Signal(PaymentSignal {
        actor: Actor::Reconcile,
        account: Some(action.stripe_account_id().as_str().to_owned()),
        livemode: deps.payments().livemode(),
        kind: SignalKind::Action {
            clinic_id: action.clinic_id().clone(),
            action_id: action.action_id().clone(),
            event,
        },
    })
}

/// What a session's state means for an action that has not heard of it.
fn learnt(action: &Action, session: &CheckoutSession) -> Option<ActionEvent> {
    let failed_intent =
        matches!(session.payment_intent_status.as_deref(), Some("requires_payment_method" | "canceled"));
    let session_id = session.id.clone();
    // What the session charged, on the account it was read from.
    let succeeded = || ActionEvent::PaymentSucceeded {
        session_id: session.id.clone(),
        payment_intent: session.payment_intent.clone(),
        charged: Some(Charged {
            amount: session.amount_total,
            currency: session.currency.clone(),
            mode: session.mode.clone(),
            account: Some(action.stripe_account_id().as_str().to_owned()),
        }),
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

/// Writes what reconcile did with an action that is still its own (a
/// conflict means the consumer moved it meanwhile, which is fine).
async fn note(deps: &impl HasStore, before: &Stored<Action>, after: Action, report: &mut Report) {
    match replace_action(deps, before, after).await {
        Ok(_) | Err(AppError::Store(StoreError::Conflict)) => {}
        Err(e) => {
            tracing::warn!(action_id = %before.action_id(), error = %e, "could not note a reconcile check");
            report.errors += 1;
        }
    }
}

/// A check that failed: the action waits behind the healthy ones, longer
/// after each failure in a row.
async fn back_off(
    deps: &impl HasStore,
    action: &Stored<Action>,
    now: Timestamp,
    base: time::Duration,
    report: &mut Report,
) {
    let next = action.check_failed(now, base);
    tracing::warn!(
        action_id = %action.action_id(),
        failed_checks = next.checks().failed,
        retry_after = ?next.checks().retry_after,
        "reconcile could not check this action; backed off"
    );
    report.backed_off += 1;
    report.errors += 1;
    note(deps, action, next, report).await;
}

/// Queues an expiry (the sessions it closed, or a disconnected account).
async fn queue_expiry(
    deps: &(impl HasQueue + HasPayments),
    action: &Action,
    closed: SessionsClosed,
    report: &mut Report,
) -> bool {
    let disconnected = closed.account_disconnected;
    match deps.queue().enqueue(&signal(deps, action, ActionEvent::Expire { closed })).await {
        Ok(()) => {
            report.actions_expired += 1;
            report.accounts_disconnected += u32::from(disconnected);
            true
        }
        Err(e) => {
            tracing::error!(action_id = %action.action_id(), error = %e, "could not queue an expiry");
            report.errors += 1;
            false
        }
    }
}

#[instrument(skip_all)]
pub async fn run(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments + HasQueue),
    config: ReconcileConfig,
) -> Result<Report, AppError> {
    let now = deps.clock().now();
    let mut report = Report::default();
    let base = config.min_age.max(time::Duration::minutes(1));

    for action in deps.store().actions_awaiting_stripe(now - config.min_age, config.batch).await? {
        if out_of_time() {
            report.deferred += 1;
            continue;
        }
        report.checked += 1;
        let Some(session_id) = action.checkout_session_id() else { continue };
        let session = match deps.payments().retrieve_checkout(action.stripe_account_id(), session_id).await {
            Ok(s) => s,
            // Nothing can be learnt or paid there any more: an open action ends, flagged.
            Err(PaymentsError::AccountDisconnected) if action.status() == ActionStatus::CheckoutOpen => {
                tracing::error!(action_id = %action.action_id(), "the clinic's Stripe account is disconnected");
                if queue_expiry(deps, &action, SessionsClosed::disconnected(), &mut report).await {
                    // Until the expiry lands, not ahead of the healthy ones.
                    note(deps, &action, action.check_failed(now, base), &mut report).await;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(action_id = %action.action_id(), error = %e, "could not retrieve a session");
                back_off(deps, &action, now, base, &mut report).await;
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
                if let Err(e) = deps.queue().enqueue(&signal(deps, &action, event)).await {
                    tracing::error!(action_id = %action.action_id(), error = %e, "could not queue what reconcile learnt");
                    report.errors += 1;
                    continue;
                }
            }
            None => report.still_open += 1,
        }
        // Not again before `min_age`.
        note(deps, &action, action.mark_checked(now), &mut report).await;
    }

    for action in deps.store().actions_past_lifetime(now, config.batch).await? {
        if out_of_time() {
            report.deferred += 1;
            continue;
        }
        let closed = match close_open_sessions(deps, &action, None).await {
            Ok(closed) => closed,
            Err(AppError::Payments(PaymentsError::AccountDisconnected)) => SessionsClosed::disconnected(),
            // Paid at the last moment: the payment wins; the check above
            // (now or next run) feeds it to the consumer.
            Err(AppError::Domain(DomainError::PaymentProcessing)) => {
                report.payment_landing_at_expiry += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(action_id = %action.action_id(), error = %e, "could not expire a session");
                back_off(deps, &action, now, base, &mut report).await;
                continue;
            }
        };
        queue_expiry(deps, &action, closed, &mut report).await;
    }

    match crate::catch_up::run(deps, out_of_time).await {
        Ok(caught_up) => report.catch_up = caught_up,
        Err(e) => {
            tracing::error!(error = %e, "the catch-up could not run");
            report.errors += 1;
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
        accounts_disconnected = report.accounts_disconnected,
        backed_off = report.backed_off,
        errors = report.errors,
        deferred = report.deferred,
        "reconcile finished"
    );
    Ok(report)
}
