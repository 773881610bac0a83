//! Recovery from an outage longer than Stripe's retries: what Stripe gave up
//! delivering is read back from each account's event log (`GET /v1/events`,
//! `delivery_success=false`, Stripe keeps 30 days) and fed to the consumer's
//! queue by the catch-up that runs with reconcile. Stripe's behaviour relied
//! on: webhooks are retried "for up to three days with an exponential back
//! off" (webhooks guide), then given up; the event list goes "back up to 30
//! days" (API reference, List all events).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::*;
use serde_json::json;
use visitpay_app::ports::MoneySignal;
use visitpay_app::reconcile::{self, ReconcileConfig};
use visitpay_app::{actions, catch_up};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionStatus, InvoiceStatus, RefundState};

const CONFIG: ReconcileConfig = ReconcileConfig { min_age: time::Duration::minutes(5), batch: 50 };

/// Applies what is on the queue (the webhook's and the catch-up's), as the consumer does.
async fn drain(deps: &TestDeps, queue: &EmbeddedQueue) -> usize {
    let bodies = queue.take_all();
    for body in &bodies {
        visitpay_edge::lambda::consumer::apply_message(deps, Some(body)).await.unwrap();
    }
    bodies.len()
}

/// Moves Stripe's clock (and ours) `hours` forward an hour at a time,
/// Stripe attempting every delivery that comes due on its backoff.
async fn hours_pass(stripe: &StripeFixture, hours: i64) {
    for _ in 0..hours {
        minutes_pass(stripe, 60).await;
    }
}

async fn minutes_pass(stripe: &StripeFixture, minutes: i64) {
    // What is due now goes first: an attempt signed before the clock moves
    // would reach the endpoint an hour old, past its tolerance.
    stripe.emulator.flush_webhooks().await;
    stripe.emulator.advance_clock(minutes * 60);
    stripe.emulator.flush_webhooks().await;
}

/// A broken release (the webhook endpoint and the scheduled reconcile both
/// down) over a long weekend: four days in which the clinic refunds in its
/// Stripe dashboard, a patient opens a dispute that is lost, and a refund
/// fails at the bank. Stripe gives up on the first of those events after
/// three days. Within an hour of the fix, every action is right.
async fn an_outage_longer_than_stripes_retries_loses_nothing(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(5, std::time::Duration::from_millis(10)));
    let (mut deps, _clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let up = Arc::new(AtomicBool::new(true));
    stripe.emulator.set_webhook_url(Some(webhook_endpoint(deps.clone(), up.clone()).await));

    let dashboard = paid_action(&deps, &stripe, "c1", &[("1", 3000, "")]).await;
    let disputed = paid_action(&deps, &stripe, "c1", &[("2", 2000, "")]).await;
    let bounced = paid_action(&deps, &stripe, "c1", &[("3", 1500, "")]).await;
    stripe.control("/test/refunds/behaviour", json!({"start": "pending"})).await;
    let refunding = actions::refund(&deps, &staff("c1"), &clinic("c1"), bounced.action_id(), None).await.unwrap();
    stripe.control("/test/refunds/behaviour", json!({"start": "succeeded"})).await;
    let refund_id = refunding.refunds().records()[0].refund_id.clone();
    hours_pass(&stripe, 1).await;
    drain(&deps, &queue).await;
    let first = reconcile::run(&deps, CONFIG).await.unwrap();
    assert_eq!((first.catch_up.accounts_read, first.catch_up.events_fed), (1, 0), "all delivered: {first:?}");

    // The release breaks: nothing reaches the endpoint, reconcile does not run.
    stripe.emulator.set_delivery_mode(stripe_emulator::DeliveryMode { endpoint_down: true, ..Default::default() });
    stripe.dashboard_refund(dashboard.payment_intent_id().unwrap(), None).await;
    hours_pass(&stripe, 20).await;
    let dispute = stripe.dispute(disputed.payment_intent_id().unwrap()).await;
    let dispute_id = dispute["id"].as_str().unwrap().to_owned();
    stripe.control(&format!("/test/disputes/{dispute_id}/funds_withdrawn"), json!({})).await;
    hours_pass(&stripe, 30).await;
    stripe.control(&format!("/test/refunds/{refund_id}"), json!({"status": "failed"})).await;
    hours_pass(&stripe, 20).await;
    stripe.control(&format!("/test/disputes/{dispute_id}/close"), json!({"status": "lost"})).await;
    hours_pass(&stripe, 26).await; // four days and a bit since the first refund
    let given_up = stripe.emulator.undelivered();
    assert!(!given_up.is_empty(), "Stripe gave up on the first events after three days");
    assert_eq!(drain(&deps, &queue).await, 0, "nothing reached visitpay");
    assert_eq!(action_of(&deps, "c1", dashboard.action_id()).await.status(), ActionStatus::Paid, "not known yet");

    // Fixed: the endpoint is back and reconcile runs each minute; within the
    // hour (Stripe's own next retries included) every action is right.
    stripe.emulator.set_delivery_mode(stripe_emulator::DeliveryMode::default());
    let mut fed = 0;
    for _ in 0..6 {
        minutes_pass(&stripe, 10).await;
        let report = reconcile::run(&deps, CONFIG).await.unwrap();
        assert_eq!(report.catch_up.accounts_failed, 0, "{report:?}");
        fed += report.catch_up.events_fed;
        drain(&deps, &queue).await;
    }
    assert!(fed > 0, "what Stripe gave up on came from its event log");

    let refunded = action_of(&deps, "c1", dashboard.action_id()).await;
    assert_eq!((refunded.status(), refunded.refunded().amount), (ActionStatus::Refunded, 3000), "the dashboard refund");
    let lost = action_of(&deps, "c1", disputed.action_id()).await;
    let record = &lost.disputes().records()[0];
    assert_eq!((lost.disputed(), record.outcome(), lost.kept().amount), (false, Some("lost"), 0), "the dispute");
    let back = action_of(&deps, "c1", bounced.action_id()).await;
    assert_eq!((back.status(), back.refunded().amount), (ActionStatus::Paid, 0), "the refund the bank returned");
    assert_eq!(back.refunds().records()[0].status, RefundState::Failed);
    assert_eq!(invoice_states(&deps, "c1", "p1").await["3"], InvoiceStatus::Paid);
    let signals = metrics.signals();
    assert!(signals.contains(&(MoneySignal::RefundFailed, Some(bounced.action_id().to_string()))));
    assert!(signals.contains(&(MoneySignal::DisputeLost, Some(disputed.action_id().to_string()))));
    assert!(!signals.iter().any(|(s, _)| *s == MoneySignal::CatchUpBehind), "caught up in the first run: {signals:?}");

    // Everything applied: the next runs feed nothing new.
    minutes_pass(&stripe, 30).await;
    let quiet = reconcile::run(&deps, CONFIG).await.unwrap();
    assert_eq!(quiet.catch_up.events_fed, 0, "{quiet:?}");
}

/// A checkpoint that cannot move (Stripe's event list failing) for more
/// than an hour raises `CatchUpBehind`; once the list answers again, the
/// window it missed is read and the alarm stops.
async fn a_catch_up_that_falls_behind_is_alarmed(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(5, std::time::Duration::from_millis(10)));
    let (mut deps, _clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let up = Arc::new(AtomicBool::new(false));
    stripe.emulator.set_webhook_url(Some(webhook_endpoint(deps.clone(), up.clone()).await));
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    // Five runs' listings fail, three attempts each (the client retries a 500).
    stripe.control("/test/faults", json!({"method": "GET", "path": "/v1/events", "times": 15})).await;
    // Paid, its webhooks sent, and refused (the endpoint answers 503).
    let paying = json!({"outcome": "succeeded", "send_webhooks": true});
    stripe.control(&format!("/test/checkout_sessions/{session}/pay"), paying).await;
    let behind = |m: &crate::support::kit::RecordedMetrics| {
        m.signals().iter().filter(|(s, _)| *s == MoneySignal::CatchUpBehind).count()
    };
    for _ in 0..4 {
        minutes_pass(&stripe, 15).await;
        let report =
            reconcile::run(&deps, ReconcileConfig { min_age: time::Duration::days(30), ..CONFIG }).await.unwrap();
        assert_eq!(report.catch_up.accounts_failed, 1, "{report:?}");
    }
    assert_eq!(behind(&metrics), 0, "an hour behind is not yet an alarm");
    minutes_pass(&stripe, 15).await;
    reconcile::run(&deps, ReconcileConfig { min_age: time::Duration::days(30), ..CONFIG }).await.unwrap();
    assert_eq!(behind(&metrics), 1, "more than an hour behind");
    up.store(true, Ordering::SeqCst);

    minutes_pass(&stripe, 15).await;
    let report = reconcile::run(&deps, ReconcileConfig { min_age: time::Duration::days(30), ..CONFIG }).await.unwrap();
    assert!(report.catch_up.events_fed >= 1, "the payment's events: {report:?}");
    drain(&deps, &queue).await;
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::Paid);
    assert_eq!(behind(&metrics), 1, "caught up: no more alarms");
    let checkpoints = deps.store.catch_up_checkpoints().await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    let lag = clock_now(&deps) - checkpoints[0].value.through;
    assert!(lag <= catch_up::SETTLE + time::Duration::minutes(1), "the checkpoint is current: {lag}");
}

/// A run whose time always goes to other work reads no account, and still
/// says when one is behind: the alarm cannot be starved quiet.
async fn a_catch_up_starved_of_time_still_alarms(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    enable_clinic(&deps, "c1").await;
    minutes_pass(&stripe, 60).await;
    let first = catch_up::run(&deps, || true).await.unwrap();
    assert_eq!((first.accounts_read, first.deferred, first.accounts_behind), (0, 1, 0), "{first:?}");
    minutes_pass(&stripe, 30).await;
    let second = catch_up::run(&deps, || true).await.unwrap();
    assert_eq!((second.accounts_read, second.accounts_behind), (0, 1), "{second:?}");
    assert!(metrics.signals().contains(&(MoneySignal::CatchUpBehind, None)));
}

/// A run that nears its deadline inside a window keeps what it fed: the
/// checkpoint stops before the second of the first event it did not feed,
/// and the next run feeds the rest.
async fn a_window_cut_short_by_the_deadline_is_taken_up_again(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(5, std::time::Duration::from_millis(10)));
    let (deps, _clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let up = Arc::new(AtomicBool::new(false));
    stripe.emulator.set_webhook_url(Some(webhook_endpoint(deps.clone(), up.clone()).await));
    let mut paying = Vec::new();
    for n in 0..3 {
        let (action, token) = assigned_action(&deps, "c1", &[(&format!("{n}"), 1000, "")]).await;
        let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
        let paid = json!({"outcome": "succeeded", "send_webhooks": true});
        stripe.control(&format!("/test/checkout_sessions/{session}/pay"), paid).await;
        paying.push(action);
        minutes_pass(&stripe, 1).await; // each payment its own minute; every delivery refused
    }
    minutes_pass(&stripe, 20).await;
    // Time for the run, the window and two events.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let cut = catch_up::run(&deps, || calls.fetch_add(1, Ordering::SeqCst) >= 4).await.unwrap();
    assert_eq!((cut.events_fed, cut.deferred), (2, 1), "{cut:?}");
    let checkpoint = deps.store.catch_up_checkpoints().await.unwrap().remove(0).value;
    assert!(clock_now(&deps) - checkpoint.through > catch_up::SETTLE, "not past the window: {checkpoint:?}");
    drain(&deps, &queue).await;
    minutes_pass(&stripe, 10).await;
    let rest = catch_up::run(&deps, || false).await.unwrap();
    assert!(rest.events_fed >= 1, "{rest:?}");
    drain(&deps, &queue).await;
    for action in &paying {
        assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::Paid);
    }
}

/// An account visitpay knew before the catch-up existed has no checkpoint;
/// saving its clinic's settings again (unchanged) follows it.
async fn saving_settings_again_follows_an_account_known_before(store: DynStore) {
    use visitpay_app::ports::{Expect, Write};
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let account = visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap();
    let health = visitpay_domain::AccountHealth::new(account.clone(), true, true, true, vec![], None, clock_now(&deps));
    deps.store
        .commit(vec![
            Write::AccountOwner { account: account.clone(), clinic_id: clinic("c1") },
            Write::AccountHealth { clinic_id: clinic("c1"), health, expect: Expect::Absent },
        ])
        .await
        .unwrap();
    assert!(deps.store.catch_up_checkpoints().await.unwrap().is_empty(), "as before the catch-up");
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), settings_input(true, "cad")).await.unwrap();
    let followed = deps.store.catch_up_checkpoints().await.unwrap();
    assert_eq!(followed.iter().map(|c| c.value.account.as_str()).collect::<Vec<_>>(), vec![ACCOUNT]);
}

fn clock_now(deps: &TestDeps) -> visitpay_domain::Timestamp {
    deps.clock.now()
}

on_both_stores!(
    an_outage_longer_than_stripes_retries_loses_nothing,
    a_catch_up_that_falls_behind_is_alarmed,
    a_catch_up_starved_of_time_still_alarms,
    a_window_cut_short_by_the_deadline_is_taken_up_again,
    saving_settings_again_follows_an_account_known_before,
);
