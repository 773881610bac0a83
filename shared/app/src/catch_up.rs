//! Catch-up from Stripe's event log: what Stripe could not deliver is read
//! back and fed to the consumer's queue, so an outage longer than Stripe's
//! retries (about three days) loses nothing.
//!
//! Stripe keeps each account's events for 30 days and lists them per
//! connected account (`GET /v1/events` with its `Stripe-Account`), filtered
//! by `delivery_success=false`: "events which are still pending or have
//! failed all delivery attempts to a webhook endpoint" (API reference, List
//! all events). Each followed account has a checkpoint: every event created
//! up to it either reached the endpoint (which answers only once the event is
//! on the queue) or was fed to the queue here. A window is read whole (every
//! page) before its checkpoint moves; a failure leaves it where it was, and
//! the same window is read again next time. What is fed twice (by the
//! catch-up and a late retry of Stripe's) is applied once: the consumer's
//! transitions only move forward.

use serde::Serialize;

use super::{AppError, HasClock, HasMetrics, HasPayments, HasQueue, HasStore};
use crate::ports::{
    CatchUpCheckpoint, MoneySignal, PaymentsError, QueueError, QueueMessage, StoreError, Stored, StripeDelivery, Write,
};
use visitpay_domain::{StripeAccountId, Timestamp};

/// Each account's log is read at most this often.
pub const EVERY: time::Duration = time::Duration::minutes(10);
/// Events younger than this are left to the webhook (Stripe's first
/// attempts); the catch-up takes what is still undelivered after it.
pub const SETTLE: time::Duration = time::Duration::minutes(10);
/// At most this much of an account's log per listing: a long outage is read
/// window by window.
pub const WINDOW: time::Duration = time::Duration::hours(12);
/// The smallest window halving goes down to.
const MIN_WINDOW: time::Duration = time::Duration::minutes(5);
/// A checkpoint further behind than this (plus `SETTLE`) raises
/// `CatchUpBehind`: far short of Stripe's 30 days.
pub const BEHIND: time::Duration = time::Duration::hours(1);

/// What one catch-up run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CatchUpReport {
    /// Accounts whose log was read.
    pub accounts_read: u32,
    /// Events fed to the queue.
    pub events_fed: u32,
    /// Accounts whose checkpoint could not move (Stripe or the queue failed,
    /// or the run's time ran out).
    pub accounts_failed: u32,
    /// Accounts behind by more than `BEHIND`.
    pub accounts_behind: u32,
    /// Accounts (or the rest of a window) left for the next run: the deadline was near.
    pub deferred: u32,
    /// Events larger than the queue takes, passed over (logged as errors).
    pub events_too_large: u32,
}

/// Starts following an account's log from `from` (when visitpay first knew
/// it: nothing earlier was visitpay's). Already followed: left as it is.
pub async fn follow(deps: &impl HasStore, account: &StripeAccountId, from: Timestamp) -> Result<(), AppError> {
    // Stripe dates events to the second and the listing asks for
    // `created[gt]`: the whole second of `from` is read too.
    let through = from.replace_nanosecond(0).unwrap_or(from) - time::Duration::seconds(1);
    let checkpoint = CatchUpCheckpoint { account: account.clone(), through, checked_at: from };
    match deps.store().commit(vec![Write::CatchUp { checkpoint, expect: crate::ports::Expect::Absent }]).await {
        Ok(()) => {
            tracing::info!(account = account.as_str(), "following the account's Stripe event log");
            Ok(())
        }
        Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads the log of every account due (oldest read first) and feeds what
/// Stripe did not deliver to the queue. `out_of_time` says when to stop
/// taking accounts.
pub async fn run(
    deps: &(impl HasStore + HasClock + HasPayments + HasQueue + HasMetrics),
    out_of_time: impl Fn() -> bool,
) -> Result<CatchUpReport, AppError> {
    let now = deps.clock().now();
    let mut report = CatchUpReport::default();
    let mut checkpoints = deps.store().catch_up_checkpoints().await?;
    checkpoints.sort_by_key(|c| c.value.checked_at);
    for stored in checkpoints {
        let due = stored.value.checked_at + EVERY <= now;
        let read = due && !out_of_time();
        if due && !read {
            report.deferred += 1;
        }
        let through = match read {
            true => read_account(deps, &stored.value, now, &out_of_time, &mut report).await,
            false => stored.value.through,
        };
        // Every account, read this time or not: a run whose time always goes
        // elsewhere must not keep the catch-up quiet.
        if now - through > SETTLE + BEHIND {
            report.accounts_behind += 1;
            tracing::error!(
                account = stored.value.account.as_str(),
                behind_secs = (now - through).whole_seconds(),
                "the catch-up is behind on an account's Stripe events"
            );
            deps.metrics().signal(MoneySignal::CatchUpBehind, None);
        }
        if read {
            save(deps, stored, through, now).await?;
        }
    }
    tracing::info!(
        accounts_read = report.accounts_read,
        events_fed = report.events_fed,
        accounts_failed = report.accounts_failed,
        accounts_behind = report.accounts_behind,
        deferred = report.deferred,
        "catch-up finished"
    );
    Ok(report)
}

/// Reads the account's log window by window up to `now - SETTLE`, feeds what
/// was not delivered, and answers where the checkpoint may now stand: past
/// every window read whole and fed.
async fn read_account(
    deps: &(impl HasPayments + HasQueue),
    checkpoint: &CatchUpCheckpoint,
    now: Timestamp,
    out_of_time: &impl Fn() -> bool,
    report: &mut CatchUpReport,
) -> Timestamp {
    let account = checkpoint.account.as_str();
    let mut through = checkpoint.through;
    let end = now - SETTLE;
    if end > through {
        report.accounts_read += 1;
    }
    while end > through {
        if out_of_time() {
            report.deferred += 1;
            return through;
        }
        // A window too full to list in one go is halved until it fits.
        let mut until = end.min(through + WINDOW);
        let log = loop {
            match deps.payments().list_undelivered_events(&checkpoint.account, through, until).await {
                Ok(log) if log.complete => break log,
                Ok(_) if until - through > MIN_WINDOW => until = through + (until - through) / 2,
                Ok(_) => {
                    tracing::error!(account, "more undelivered events in a few minutes than a run can list");
                    report.accounts_failed += 1;
                    return through;
                }
                // The account disconnected visitpay (its own alarm was
                // raised): its log can no longer be read, nothing is waiting.
                Err(PaymentsError::AccountDisconnected) => {
                    tracing::warn!(account, "the account disconnected visitpay; its events cannot be read");
                    return end;
                }
                Err(e) => {
                    tracing::warn!(account, error = %e, "could not list the account's events; the same window next time");
                    report.accounts_failed += 1;
                    return through;
                }
            }
        };
        for event in log.events {
            // Out of time inside a window: what is fed stays fed, and the
            // checkpoint stops before the second of the first event not fed
            // (its second may hold others; they come again, applied once).
            if out_of_time() {
                report.deferred += 1;
                return through.max(event.created - time::Duration::seconds(1));
            }
            let (event_id, event_type) = (event.id.clone(), event.event_type.clone());
            let delivery = StripeDelivery {
                event_id: event.id,
                event_type: event.event_type,
                account: Some(checkpoint.account.as_str().to_owned()),
                body: event.body,
            };
            match deps.queue().enqueue(&QueueMessage::Stripe(delivery)).await {
                Ok(()) => {
                    tracing::info!(account, event_id, event_type, "an event Stripe did not deliver, fed to the queue");
                    report.events_fed += 1;
                }
                // Larger than the queue takes: it never could be queued, by the
                // webhook (413) or here. It must not hold the account's log back.
                Err(e @ QueueError::TooLarge { .. }) => {
                    tracing::error!(account, event_id, event_type, error = %e, "an undelivered event too large to queue; passed over");
                    report.events_too_large += 1;
                }
                Err(e) => {
                    tracing::error!(account, event_id, error = %e, "could not queue an undelivered event; the same window next time");
                    report.accounts_failed += 1;
                    return through.max(event.created - time::Duration::seconds(1));
                }
            }
        }
        through = until;
    }
    through
}

/// Moves the checkpoint (never back) and notes the read; another run that
/// got there first wins.
async fn save(
    deps: &impl HasStore,
    stored: Stored<CatchUpCheckpoint>,
    through: Timestamp,
    now: Timestamp,
) -> Result<(), AppError> {
    let expect = stored.expect();
    let checkpoint = CatchUpCheckpoint { through: through.max(stored.value.through), checked_at: now, ..stored.value };
    match deps.store().commit(vec![Write::CatchUp { checkpoint, expect }]).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
