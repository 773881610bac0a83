//! The money paths against a Stripe as strict as Stripe: each gap and race
//! the strict emulator exposed, on both stores. Each test names the Stripe
//! behaviour it relies on.

use std::sync::Arc;

use crate::support::*;
use serde_json::json;
use visitpay_app::ports::{CheckoutRequest, Expect, MoneySignal, SessionStatus, Write};
use visitpay_app::reconcile::{self, ReconcileConfig};
use visitpay_app::{actions, checkout, AppError};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionEvent, ActionStatus, Actor, DisputeStatus, DomainError, InvoiceStatus, RefundState};
use visitpay_edge::lambda::consumer::{MessageError, Outcome};
use visitpay_stripe::StripePayments;

fn money(amount: i64) -> visitpay_domain::Money {
    visitpay_domain::Money { amount, currency: visitpay_domain::Currency::parse("cad").unwrap() }
}

fn statuses(states: std::collections::BTreeMap<String, InvoiceStatus>) -> Vec<InvoiceStatus> {
    states.into_values().collect()
}

/// The race: staff cancel expires the open session; before the cancel is
/// written, Stripe's `checkout.session.expired` lands and the patient opens a
/// new session; the cancel's write conflicts. Ending the action then would
/// leave the new session payable: the cancel closes it too.
async fn a_cancel_closes_the_session_opened_while_it_cancels(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (plain, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&plain, "c1", &[("1", 1000, "")]).await;
    let first = open_checkout(&plain, "c1", action.action_id(), &token).await;
    let opened = Arc::new(std::sync::Mutex::new(None));
    let meanwhile = {
        let (deps, stripe_events, opened) = (plain.clone(), stripe.base.clone(), opened.clone());
        async move {
            // The expiry's webhook, then the patient's click: a second session.
            let expired = latest_of(&stripe_events, "checkout.session.expired").await;
            apply_stripe_event(&deps, &expired.to_string()).await.unwrap();
            let link = checkout::open(&deps, &token).await.unwrap();
            *opened.lock().unwrap() = Some(link.session_id);
        }
    };
    let mut deps = plain.clone();
    deps.payments = MeanwhileAfterExpire::new(stripe.payments.clone(), meanwhile);
    let cancelled = actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    let second = opened.lock().unwrap().clone().expect("a session opened during the cancel");
    assert_ne!(second, first);
    assert_eq!(cancelled.status(), ActionStatus::Cancelled);
    assert_eq!(stripe.session_status(&first).await, SessionStatus::Expired);
    assert_eq!(
        stripe.session_status(&second).await,
        SessionStatus::Expired,
        "no session of a cancelled action is payable"
    );
    assert_eq!(statuses(invoice_states(&plain, "c1", "p1").await), vec![InvoiceStatus::Selected]);
}

/// The newest event of a type, straight from the emulator's API.
async fn latest_of(base: &str, event_type: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/events?type={event_type}&limit=1"))
        .bearer_auth(STRIPE_KEY)
        .header("Stripe-Account", ACCOUNT)
        .send()
        .await
        .unwrap();
    res.json::<serde_json::Value>().await.unwrap()["data"][0].clone()
}

/// The same race at the end of an action's life: reconcile closes the
/// sessions it finds and queues the expiry; a click that began before the
/// lifetime ended records a new session before the expiry is applied. The
/// state machine refuses that expiry, and the next run closes the new one.
async fn an_expiry_waits_for_a_session_opened_after_reconcile_closed_them(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    let (deps, clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let mut short = settings_input(true, "cad");
    (short.action_ttl_hours, short.checkout_ttl_minutes) = (1, 30);
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), short).await.unwrap();
    let (action, token) = assigned_action_on(&deps, "c1", "1").await;
    let first = open_checkout(&deps, "c1", action.action_id(), &token).await;
    clock.advance(3600 + 60);
    let config = ReconcileConfig { min_age: time::Duration::seconds(60), batch: 10 };
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(report.actions_expired, 1, "{report:?}");
    assert_eq!(stripe.session_status(&first).await, SessionStatus::Expired);
    // The late click: reserved before the end, its session recorded now.
    let current = action_of(&deps, "c1", action.action_id()).await;
    let back = current
        .apply(&ActionEvent::CheckoutExpired { session_id: first.clone() }, clock_now(&deps), &Actor::Patient)
        .unwrap()
        .action;
    let reserved = back.reserve_checkout(clock_now(&deps)).unwrap();
    let second = session_at_stripe(&stripe, ACCOUNT, &reserved, 1000).await;
    let session = stripe.payments.retrieve_checkout(&account(), &second).await.unwrap();
    let event = ActionEvent::CheckoutOpened {
        session_id: second.clone(),
        url: session.url.unwrap(),
        expires_at: session.expires_at,
    };
    let recorded = reserved.apply(&event, clock_now(&deps), &Actor::Patient).unwrap().action;
    deps.store
        .commit(vec![Write::Action { action: recorded, expect: Expect::Version(current.version) }])
        .await
        .unwrap();

    // The queued expiry names only the first session: refused, nothing ends.
    // (Reconcile also found the first session expired: that changes nothing either.)
    let applied = drain(&deps, &queue).await;
    assert_eq!(applied, vec![Outcome::Unchanged, Outcome::Unchanged]);
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::CheckoutOpen);
    // The next run closes the second session, and the action ends.
    assert_eq!(reconcile::run(&deps, config).await.unwrap().actions_expired, 1);
    assert_eq!(drain(&deps, &queue).await, vec![Outcome::Applied]);
    assert_eq!(stripe.session_status(&second).await, SessionStatus::Expired);
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::Expired);
}

fn clock_now(deps: &TestDeps) -> visitpay_domain::Timestamp {
    deps.clock.now()
}

fn account() -> visitpay_domain::StripeAccountId {
    visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap()
}

/// Applies what is on the embedded queue now, in order; the outcomes.
async fn drain(deps: &TestDeps, queue: &EmbeddedQueue) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for body in queue.take_all() {
        outcomes.push(visitpay_edge::lambda::consumer::apply_message(deps, Some(&body)).await.unwrap());
    }
    outcomes
}

/// A session near its end is replaced by a new one; the old one is expired
/// at Stripe first, so two are never payable at once.
async fn a_session_is_expired_before_it_is_replaced(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let first = open_checkout(&deps, "c1", action.action_id(), &token).await;
    let opened = action_of(&deps, "c1", action.action_id()).await.checkout().current().cloned().unwrap();
    // 30 seconds left: not handed out again.
    clock.advance((opened.expires_at - clock_now(&deps)).whole_seconds() - 30);
    let link = checkout::open(&deps, &token).await.unwrap();
    assert_ne!(link.session_id, first);
    assert_eq!(stripe.session_status(&first).await, SessionStatus::Expired);
    assert_eq!(stripe.session_status(&link.session_id).await, SessionStatus::Open);
    let requests = stripe.emulator.requests();
    let at =
        |method: &str, path: &str| requests.iter().rposition(|r| r["method"] == method && r["path"] == path).unwrap();
    assert!(
        at("POST", &format!("/v1/checkout/sessions/{first}/expire")) < at("POST", "/v1/checkout/sessions"),
        "expired before the new one was created"
    );
}

/// Once paid, no other session of the action stays payable: one created for
/// a click whose answer never came back (Stripe made it, visitpay never
/// learnt its id) is found again by its attempt's idempotency key and
/// expired. Afterwards the action says its sessions are closed, and a repeat
/// of the completion asks Stripe nothing.
async fn a_paid_actions_other_sessions_are_expired(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    // Every answer to the first attempt is lost on the way back (three tries):
    // Stripe made the session, the click failed, nothing recorded its id.
    let proxy =
        fault_proxy(&stripe.base, Fault::LoseResponse, 3, |m, p, _| m == "POST" && p == "/v1/checkout/sessions").await;
    deps.payments = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{}/", proxy.base))).unwrap());
    assert!(checkout::open(&deps, &token).await.is_err());
    deps.payments = stripe.payments.clone();
    let lost = stripe.emulator.requests().iter().filter(|r| r["path"] == "/v1/checkout/sessions").count();
    assert_eq!(lost, 3, "sent three times under one key");
    let unrecorded = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(unrecorded.checkout().open().len(), 1);
    assert_eq!(unrecorded.checkout().open()[0].session_id, None, "recorded before Stripe answered, its id unknown");
    let orphan = sessions_at_stripe(&stripe).await.into_iter().next().expect("Stripe made one");
    // The patient comes back later: a new attempt, a new session.
    clock.advance(120);
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    assert_ne!(session.as_str(), orphan);
    stripe.pay(&session, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    let paid = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(paid.status(), ActionStatus::Paid);
    assert_eq!(stripe.session_status(&orphan).await, SessionStatus::Expired);
    assert_eq!(stripe.session_status(&session).await, SessionStatus::Complete);
    assert!(
        paid.checkout().open().is_empty(),
        "the action knows its sessions are closed: {:?}",
        paid.checkout().open()
    );
    // A repeat of the completion: nothing to close, no Stripe call.
    let completed = stripe.last_event("checkout.session.completed").await;
    let before = stripe.emulator.requests().len();
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Unchanged);
    assert_eq!(stripe.emulator.requests().len(), before, "a duplicate completion asked Stripe nothing");
}

/// Every Checkout Session on the clinic's account, whoever made it.
async fn sessions_at_stripe(stripe: &StripeFixture) -> Vec<String> {
    let res = reqwest::Client::new()
        .get(format!("{}/v1/checkout/sessions?limit=100", stripe.base))
        .bearer_auth(STRIPE_KEY)
        .header("Stripe-Account", ACCOUNT)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    body["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

/// The clinic's account is busy with other software: 1,100 open Checkout
/// Sessions that are not visitpay's. visitpay never lists them: cancel,
/// expiry and the sweep after a payment close the action's own sessions by
/// id, and leave every other one open.
async fn other_softwares_open_sessions_change_nothing(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    let (deps, clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    // Actions live an hour, their sessions a day: an action ends while its
    // session is still open at Stripe, and must close it.
    let mut short = settings_input(true, "cad");
    (short.action_ttl_hours, short.checkout_ttl_minutes) = (1, 1440);
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), short).await.unwrap();
    let (cancelled, cancelled_token) = assigned_action_on(&deps, "c1", "1").await;
    let (paid, paid_token) = assigned_action_on(&deps, "c1", "2").await;
    let (expiring, expiring_token) = assigned_action_on(&deps, "c1", "3").await;
    let mut theirs = Vec::new();
    for n in 0..1100 {
        theirs.push(foreign_session(&stripe, n).await);
    }
    let first_cancelled = open_checkout(&deps, "c1", cancelled.action_id(), &cancelled_token).await;
    actions::cancel(&deps, &staff("c1"), &clinic("c1"), cancelled.action_id()).await.unwrap();
    assert_eq!(stripe.session_status(&first_cancelled).await, SessionStatus::Expired);
    let paying = open_checkout(&deps, "c1", paid.action_id(), &paid_token).await;
    stripe.pay(&paying, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    assert_eq!(action_of(&deps, "c1", paid.action_id()).await.status(), ActionStatus::Paid);
    let left = open_checkout(&deps, "c1", expiring.action_id(), &expiring_token).await;
    clock.advance(3600 + 120);
    assert_eq!(stripe.session_status(&left).await, SessionStatus::Open, "still open at Stripe when the action ends");
    let config = ReconcileConfig { min_age: time::Duration::seconds(60), batch: 10 };
    reconcile::run(&deps, config).await.unwrap();
    drain(&deps, &queue).await;
    assert_eq!(action_of(&deps, "c1", expiring.action_id()).await.status(), ActionStatus::Expired);
    assert_eq!(stripe.session_status(&left).await, SessionStatus::Expired);
    let listed = stripe
        .emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/v1/checkout/sessions")
        .count();
    assert_eq!(listed, 0, "visitpay never lists the account's sessions");
    for other in [&theirs[0], &theirs[550], &theirs[1099]] {
        assert_eq!(stripe.session_status(other).await, SessionStatus::Open, "another software's session is left alone");
    }
}

/// A session another integration made on the clinic's account, with its own metadata.
async fn foreign_session(stripe: &StripeFixture, n: usize) -> visitpay_domain::SessionId {
    use visitpay_app::ports::CheckoutLine;
    let now = stripe.emulator.clock().now();
    let request = CheckoutRequest {
        account: visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap(),
        idempotency_key: format!("other-software-{n}"),
        currency: visitpay_domain::Currency::parse("cad").unwrap(),
        lines: vec![CheckoutLine { name: "Membership".into(), amount: 2500 }],
        client_reference_id: format!("order-{n}"),
        metadata: vec![("order".to_owned(), n.to_string())],
        locale: visitpay_domain::Locale::EnCa,
        expires_at: time::OffsetDateTime::from_unix_timestamp(now + 23 * 3600).unwrap(),
        success_url: "https://shop.example.test/done".into(),
        cancel_url: "https://shop.example.test/back".into(),
    };
    stripe.payments.create_checkout(&request).await.unwrap().id
}

/// "Nothing is trusted that Stripe did not say": a session carrying the
/// action's metadata for another amount, or on another account, pays nothing;
/// its money is kept, flagged for refund.
async fn a_session_that_is_not_the_actions_pays_nothing(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let (action, _token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    // 0.50: the least Stripe takes in CAD.
    let cheap = session_at_stripe(&stripe, ACCOUNT, &action, 50).await;
    stripe.pay(&cheap, "succeeded").await;
    stripe.emulator.connect_account("acct_1Elsewhere");
    let elsewhere = session_at_stripe(&stripe, "acct_1Elsewhere", &action, 4500).await;
    stripe.pay(&elsewhere, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    let completed = elsewhere_event(&stripe, "acct_1Elsewhere").await;
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Stray);

    let after = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(after.status(), ActionStatus::Assigned, "neither is the action's payment");
    assert_eq!(statuses(invoice_states(&deps, "c1", "p1").await), vec![InvoiceStatus::Pending]);
    // The cent on the clinic's own account is kept on the action, flagged.
    let late: Vec<(Option<i64>, bool)> =
        after.late().payments().iter().map(|p| (p.amount, p.reason.contains("not this action's payment"))).collect();
    assert_eq!(late, vec![(Some(50), true)]);
    assert!(after.refund_needed());
    // The payment on another account is not the clinic's money: never on the
    // action, recorded apart with its account, amount and session.
    let stray = deps.store.find_stray_payment(&elsewhere).await.unwrap().expect("recorded apart");
    assert_eq!(
        (stray.account.as_deref(), stray.amount, &stray.action_id),
        (Some("acct_1Elsewhere"), Some(4500), action.action_id())
    );
    let signals = metrics.signals();
    assert_eq!(signals.iter().filter(|(s, _)| *s == MoneySignal::RefundNeeded).count(), 1);
    assert_eq!(signals.iter().filter(|(s, _)| *s == MoneySignal::StrayPayment).count(), 1);
}

/// However many payments name an action, its item stays bounded: past
/// `MAX_LATE_PAYMENTS` they are recorded apart, each with an alarm, and the
/// action's own payment still lands.
async fn late_payments_on_an_action_are_bounded(store: DynStore) {
    use visitpay_domain::action::MAX_LATE_PAYMENTS;
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let mut cheap = Vec::new();
    for _ in 0..MAX_LATE_PAYMENTS + 3 {
        let session = session_at_stripe(&stripe, ACCOUNT, &action, 50).await;
        stripe.pay(&session, "succeeded").await;
        cheap.push(session);
    }
    deliver_all(&deps, &stripe).await;
    let after = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(after.late().payments().len(), MAX_LATE_PAYMENTS);
    let apart = [&cheap[MAX_LATE_PAYMENTS], &cheap[MAX_LATE_PAYMENTS + 1], &cheap[MAX_LATE_PAYMENTS + 2]];
    let mut recorded_apart = 0;
    for session in cheap.iter() {
        if deps.store.find_stray_payment(session).await.unwrap().is_some() {
            recorded_apart += 1;
        }
    }
    assert_eq!(recorded_apart, 3, "{apart:?}");
    assert_eq!(metrics.signals().iter().filter(|(s, _)| *s == MoneySignal::StrayPayment).count(), 3);
    // The real payment still lands.
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::Paid);
}

async fn elsewhere_event(stripe: &StripeFixture, account: &str) -> serde_json::Value {
    elsewhere_event_of(stripe, account, "checkout.session.completed").await
}

/// The newest event of a type on another connected account.
async fn elsewhere_event_of(stripe: &StripeFixture, account: &str, event_type: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{}/v1/events?type={event_type}&limit=1", stripe.base))
        .bearer_auth(STRIPE_KEY)
        .header("Stripe-Account", account)
        .send()
        .await
        .unwrap();
    res.json::<serde_json::Value>().await.unwrap()["data"][0].clone()
}

/// A late payment stays flagged until Stripe has refunded all of it, not
/// after the first refund (1.00 of 45.00).
async fn a_late_payment_is_flagged_until_all_of_it_is_refunded(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, _token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    let stray = session_at_stripe(&stripe, ACCOUNT, &action, 4500).await;
    let paid = stripe.pay(&stray, "succeeded").await;
    let pi = paid["session"]["payment_intent"].as_str().unwrap().to_owned();
    deliver_all(&deps, &stripe).await;
    assert!(action_of(&deps, "c1", action.action_id()).await.refund_needed());
    stripe.dashboard_refund(&pi, Some(100)).await;
    deliver_all(&deps, &stripe).await;
    assert!(action_of(&deps, "c1", action.action_id()).await.refund_needed(), "1.00 of 45.00 is not a refund");
    stripe.dashboard_refund(&pi, None).await;
    deliver_all(&deps, &stripe).await;
    let after = action_of(&deps, "c1", action.action_id()).await;
    assert!(!after.refund_needed());
    assert_eq!(after.late().payments()[0].refunds.len(), 2);
}

/// Stripe: refunds may be `pending` and later `failed` (refund.failed) or
/// `canceled`. A staff refund answers with its real status; when it fails,
/// the action and its invoices are put back, the history says so, and the
/// refund-failed signal is raised. If its invoices were collected again
/// meanwhile, the action's payment is flagged for refund instead.
async fn a_refund_that_fails_puts_the_action_and_its_invoices_back(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    stripe.control("/test/refunds/behaviour", json!({"start": "pending"})).await;
    let paid = paid_action(&deps, &stripe, "c1", &[("1", 3000, ""), ("2", 1500, "")]).await;
    let refunded = actions::refund(&deps, &staff("c1"), &clinic("c1"), paid.action_id(), None).await.unwrap();
    assert_eq!((refunded.status(), refunded.refunded().amount), (ActionStatus::Refunded, 4500));
    assert_eq!(refunded.refunds().records()[0].status, RefundState::Pending, "the answer is Stripe's status");
    let view = serde_json::to_value(visitpay_edge::http::views::ActionView::new(&refunded, None)).unwrap();
    assert_eq!(
        (view["refund_pending_amount"].as_i64(), view["refunds"][0]["status"].as_str()),
        (Some(4500), Some("pending"))
    );
    assert_eq!(statuses(invoice_states(&deps, "c1", "p1").await), vec![InvoiceStatus::Unprocessed; 2]);

    let refund_id = refunded.refunds().records()[0].refund_id.clone();
    stripe
        .control(
            &format!("/test/refunds/{refund_id}"),
            json!({"status": "failed", "failure_reason": "expired_or_canceled_card"}),
        )
        .await;
    deliver_all(&deps, &stripe).await;
    let back = action_of(&deps, "c1", paid.action_id()).await;
    assert_eq!((back.status(), back.refunded().amount, back.refundable()), (ActionStatus::Paid, 0, money(4500)));
    assert_eq!(statuses(invoice_states(&deps, "c1", "p1").await), vec![InvoiceStatus::Paid; 2]);
    assert!(back.history().entries().last().unwrap().reason.contains(&format!("refund {refund_id} of 4500 failed")));
    assert!(metrics.signals().contains(&(MoneySignal::RefundFailed, Some(paid.action_id().to_string()))));

    // Again, but one invoice is collected by another action before it fails.
    let again = actions::refund(&deps, &staff("c1"), &clinic("c1"), paid.action_id(), None).await.unwrap();
    assert_eq!(again.status(), ActionStatus::Refunded);
    visitpay_app::invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["2"])).await.unwrap();
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["2"]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v2"), request, None, first_answer).await.unwrap();
    let second = again.refunds().records().iter().find(|r| r.refund_id != refund_id).unwrap().refund_id.clone();
    stripe.control(&format!("/test/refunds/{second}"), json!({"status": "canceled"})).await;
    deliver_all(&deps, &stripe).await;
    let flagged = action_of(&deps, "c1", paid.action_id()).await;
    assert_eq!(flagged.status(), ActionStatus::Paid);
    assert_eq!(flagged.late().collected_elsewhere().iter().map(|i| i.as_str()).collect::<Vec<_>>(), vec!["2"]);
    assert!(flagged.refund_needed(), "the patient paid invoice 2 twice");
    let states = invoice_states(&deps, "c1", "p1").await;
    assert_eq!((states["1"], states["2"]), (InvoiceStatus::Paid, InvoiceStatus::Pending));
}

/// Disputes have a life (created, funds withdrawn, closed won or lost): the
/// action shows the dispute's status, amount and outcome; a lost one is money
/// withdrawn.
async fn a_dispute_is_followed_to_its_outcome(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let lost = paid_action(&deps, &stripe, "c1", &[("1", 2000, "")]).await;
    let dispute = stripe.dispute(lost.payment_intent_id().unwrap()).await;
    let id = dispute["id"].as_str().unwrap().to_owned();
    deliver_all(&deps, &stripe).await;
    let open = action_of(&deps, "c1", lost.action_id()).await;
    assert!(open.disputed());
    assert_eq!(
        (open.disputes().records()[0].status, open.disputes().records()[0].amount),
        (DisputeStatus::NeedsResponse, 2000)
    );
    // Stripe refuses refunds of a disputed charge (`charge_disputed`): staff are
    // told why before anything is sent, and nothing changes.
    let refunds_sent = || stripe.emulator.requests().iter().filter(|r| r["path"] == "/v1/refunds").count();
    let sent_before = refunds_sent();
    let refused = actions::refund(&deps, &staff("c1"), &clinic("c1"), lost.action_id(), Some(500)).await;
    assert!(matches!(refused, Err(AppError::Domain(DomainError::PaymentDisputed))), "{refused:?}");
    let answer = visitpay_edge::http::error::ApiError::from(refused.unwrap_err());
    assert_eq!((answer.status.as_u16(), answer.code), (409, "payment_disputed"));
    assert_eq!(refunds_sent(), sent_before, "nothing sent to Stripe");
    assert_eq!(action_of(&deps, "c1", lost.action_id()).await.version, open.version, "nothing changed");
    stripe.control(&format!("/test/disputes/{id}/funds_withdrawn"), json!({})).await;
    stripe.control(&format!("/test/disputes/{id}/close"), json!({"status": "lost"})).await;
    deliver_all(&deps, &stripe).await;
    let closed = action_of(&deps, "c1", lost.action_id()).await;
    let view = serde_json::to_value(visitpay_edge::http::views::ActionView::new(&closed, None)).unwrap();
    assert_eq!(view["disputed"], false, "closed");
    assert_eq!(
        (view["disputes"][0]["outcome"].as_str(), view["disputes"][0]["withdrawn_amount"].as_i64()),
        (Some("lost"), Some(2000))
    );
    assert_eq!(view["kept_amount"], 0, "the money went back to the patient's bank");
    assert!(closed.history().entries().iter().any(|h| h.reason.contains("lost: 2000 withdrawn")));
    assert!(metrics.signals().contains(&(MoneySignal::DisputeLost, Some(lost.action_id().to_string()))));

    let won = paid_action(&deps, &stripe, "c2", &[("9", 1500, "")]).await;
    let dispute = stripe.dispute(won.payment_intent_id().unwrap()).await;
    let id = dispute["id"].as_str().unwrap().to_owned();
    stripe.control(&format!("/test/disputes/{id}/funds_withdrawn"), json!({})).await;
    stripe.control(&format!("/test/disputes/{id}/close"), json!({"status": "won"})).await;
    deliver_all(&deps, &stripe).await;
    let kept = action_of(&deps, "c2", won.action_id()).await;
    assert_eq!(
        (kept.disputed(), kept.disputes().records()[0].outcome(), kept.kept().amount),
        (false, Some("won"), 1500)
    );
    // A won dispute gives the charge back to the clinic: it can be refunded again.
    let refunded = actions::refund(&deps, &staff("c2"), &clinic("c2"), won.action_id(), Some(500)).await.unwrap();
    assert_eq!(refunded.refunded().amount, 500);
}

/// Stripe refuses a payment-mode session under the currency's minimum
/// ("Minimum and maximum charge amounts"): assign refuses the action first.
async fn assign_refuses_a_total_stripe_would_not_take(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    enable_clinic(&deps, "c1").await;
    import(&deps, "c1", "p1", "small", 49, "cad").await;
    visitpay_app::invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["small"])).await.unwrap();
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["small"]),
        locale: visitpay_domain::Locale::EnCa,
        notify: Default::default(),
    };
    let refused =
        actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v1"), request.clone(), None, first_answer).await;
    assert!(
        matches!(refused, Err(AppError::Domain(DomainError::AmountBelowMinimum { minimum: 50, .. }))),
        "{refused:?}"
    );
    assert_eq!(statuses(invoice_states(&deps, "c1", "p1").await), vec![InvoiceStatus::Selected], "nothing changed");
    let answer = visitpay_edge::http::error::ApiError::from(refused.unwrap_err());
    assert_eq!((answer.status.as_u16(), answer.code), (400, "amount_below_minimum"));
    // The emulator refuses the same total, as Stripe does.
    import(&deps, "c1", "p1", "fifty", 50, "cad").await;
    visitpay_app::invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["fifty"])).await.unwrap();
    let ok = actions::AssignRequest { invoice_ids: ids(&["fifty"]), ..request };
    assert!(actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v1"), ok, None, first_answer).await.is_ok());
}

/// Reconcile is fair: an action whose Stripe lookup keeps failing is backed
/// off, and the healthy one behind it is reached; a clinic whose account is
/// disconnected has its open actions expired and flagged, not retried forever.
async fn reconcile_backs_off_what_fails_and_expires_a_disconnected_clinics_actions(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    let (mut deps, clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let (failing, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let failing_session = open_checkout(&deps, "c1", failing.action_id(), &token).await;
    clock.advance(10);
    let (healthy, token) = assigned_action(&deps, "c2", &[("2", 1000, "")]).await;
    let healthy_session = open_checkout(&deps, "c2", healthy.action_id(), &token).await;
    stripe.pay(&healthy_session, "succeeded").await; // its webhook is lost
    clock.advance(600);
    stripe
        .control(
            "/test/faults",
            json!({"method": "GET", "path": format!("/v1/checkout/sessions/{failing_session}"), "times": 100}),
        )
        .await;
    let config = ReconcileConfig { min_age: time::Duration::seconds(300), batch: 1 };
    let first = reconcile::run(&deps, config).await.unwrap();
    assert_eq!((first.checked, first.backed_off, first.found_paid), (1, 1, 0), "{first:?}");
    let second = reconcile::run(&deps, config).await.unwrap();
    assert_eq!((second.checked, second.found_paid), (1, 1), "the healthy action is reached: {second:?}");
    drain(&deps, &queue).await;
    assert_eq!(action_of(&deps, "c2", healthy.action_id()).await.status(), ActionStatus::Paid);
    let backed = action_of(&deps, "c1", failing.action_id()).await;
    assert_eq!(backed.checks().failed, 1);

    // c3's account disconnects visitpay (account.application.deauthorized).
    stripe.emulator.connect_account("acct_1Gone");
    let mut gone = settings_input(true, "cad");
    gone.stripe_account_id = Some("acct_1Gone".into());
    visitpay_app::settings::put(&deps, &support(), clinic("c3"), gone).await.unwrap();
    let (left, token) = assigned_action_on(&deps, "c3", "3").await;
    open_checkout(&deps, "c3", left.action_id(), &token).await;
    // The platform can no longer read a disconnected account's events (Stripe
    // answers `account_invalid`), so the event is the one Stripe sent.
    let disconnect = stripe.control("/test/accounts/acct_1Gone/deauthorize", json!({})).await;
    let deauthorized = disconnect["event"].clone();
    assert_eq!(deauthorized["type"], "account.application.deauthorized");
    assert_eq!(apply_stripe_event(&deps, &deauthorized.to_string()).await.unwrap(), Outcome::Unchanged);
    assert!(metrics.signals().contains(&(MoneySignal::AccountDisconnected, None)), "the on-call person is told");
    clock.advance(600);
    let config = ReconcileConfig { min_age: time::Duration::seconds(300), batch: 10 };
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(report.accounts_disconnected, 1, "{report:?}");
    // Its event log can no longer be read: the catch-up leaves it, no failure, no alarm.
    assert_eq!((report.catch_up.accounts_read, report.catch_up.accounts_failed), (2, 0), "{report:?}");
    drain(&deps, &queue).await;
    let expired = action_of(&deps, "c3", left.action_id()).await;
    assert_eq!((expired.status(), expired.account_disconnected()), (ActionStatus::Expired, true));
    assert_eq!(statuses(invoice_states_of(&deps, "c3").await), vec![InvoiceStatus::Selected]);
    let later = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(later.accounts_disconnected, 0, "not retried: {later:?}");
}

/// Assign for a clinic whose settings were already put (another account).
async fn assigned_action_on(deps: &TestDeps, c: &str, invoice: &str) -> (StoredAction, String) {
    import(deps, c, "p1", invoice, 1000, "cad").await;
    visitpay_app::invoices::select(deps, &clinic(c), &patient("p1"), &ids(&[invoice])).await.unwrap();
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&[invoice]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    match actions::assign(deps, &staff(c), &clinic(c), &visit("v1"), request, None, first_answer).await.unwrap() {
        actions::Assigned::Created { action, patient_url } => {
            (action, patient_url.rsplit('/').next().unwrap().to_owned())
        }
        other => panic!("{other:?}"),
    }
}

async fn invoice_states_of(deps: &TestDeps, c: &str) -> std::collections::BTreeMap<String, InvoiceStatus> {
    invoice_states(deps, c, "p1").await
}

/// Stripe keeps a key's first answer, a 500 included ("Subsequent requests
/// with the same key return the same result, including 500 errors"), and
/// refuses a key reused with other parameters (`idempotency_error`). A staff
/// refund after a 500 gets a new key once the first can no longer be in
/// flight; one retried with another amount learns from Stripe's list whether
/// the first happened.
async fn refund_keys_stay_valid_after_stripes_errors(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, clock) = deps_for_payments(store, &stripe, None);
    let paid = paid_action(&deps, &stripe, "c1", &[("1", 5000, "")]).await;
    let (by, c1) = (staff("c1"), clinic("c1"));
    let refund = |amount: i64| actions::refund(&deps, &by, &c1, paid.action_id(), Some(amount));

    // A 500 that did nothing, replayed to every retry with its key.
    stripe.control("/test/faults", json!({"method": "POST", "path": "/v1/refunds", "times": 1})).await;
    let failed = refund(1000).await;
    assert!(
        matches!(failed, Err(AppError::Payments(visitpay_app::ports::PaymentsError::Unavailable(_)))),
        "{failed:?}"
    );
    let quick = refund(1000).await;
    assert!(quick.is_err(), "within the minute, the same key: Stripe replays its 500");
    clock.advance(61);
    let done = refund(1000).await.unwrap();
    assert_eq!((done.refunded().amount, done.refunds().records().len()), (1000, 1));

    // A 500 whose refund did happen; staff then ask for another amount.
    stripe.control("/test/faults", json!({"method": "POST", "path": "/v1/refunds", "times": 1, "effect": true})).await;
    assert!(refund(500).await.is_err());
    // Stripe's list shows the 500's refund happened: it is recorded, then the
    // new one is made under a new key (the old key would be an idempotency_error).
    let both = refund(700).await.unwrap();
    assert_eq!(both.refunds().records().len(), 3, "the 500's refund is recorded, then the new one made");
    assert_eq!(both.refunded().amount, 1000 + 500 + 700);

    // An unanswered attempt Stripe has no trace of may still be in flight:
    // another refund waits until it cannot be.
    stripe.control("/test/faults", json!({"method": "POST", "path": "/v1/refunds", "times": 1})).await;
    assert!(refund(100).await.is_err());
    let too_soon = refund(200).await;
    assert!(matches!(too_soon, Err(AppError::Domain(DomainError::RefundInProgress))), "{too_soon:?}");
    clock.advance(61);
    assert_eq!(refund(200).await.unwrap().refunded().amount, 2400);
    let keys: Vec<String> = stripe
        .emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1/refunds")
        .filter_map(|r| r["idempotency_key"].as_str().map(str::to_owned))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 6, "attempts 1 (500), 2, 3 (500 with effect), 4, 5 (500), 6: {keys:?}");
}

/// Events carry `livemode`: a live event reaching a test deployment (or the
/// reverse) is not about this deployment's money.
async fn an_event_of_the_other_mode_changes_nothing(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.control("/test/livemode", json!({"livemode": true})).await;
    stripe.pay(&session, "succeeded").await;
    let completed = stripe.last_event("checkout.session.completed").await;
    assert_eq!(completed["livemode"], true);
    assert!(matches!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Ignored(_)));
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::CheckoutOpen);
}

/// `charge.refunded` alone (the charge no longer lists its refunds) is
/// enough: the consumer asks Stripe for the payment's refunds.
async fn a_charge_refunded_event_alone_is_enough(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let paid = paid_action(&deps, &stripe, "c1", &[("1", 1000, "")]).await;
    stripe.dashboard_refund(paid.payment_intent_id().unwrap(), Some(400)).await;
    let charge_refunded = stripe.last_event("charge.refunded").await;
    assert!(charge_refunded["data"]["object"].get("refunds").is_none(), "as Stripe sends it since 2022-11-15");
    assert_eq!(apply_stripe_event(&deps, &charge_refunded.to_string()).await.unwrap(), Outcome::Applied);
    let after = action_of(&deps, "c1", paid.action_id()).await;
    assert_eq!((after.status(), after.refunded().amount), (ActionStatus::PartiallyRefunded, 400));
}

/// How the patient paid is on the charge, not the session: the consumer
/// asks Stripe for the PaymentIntent with its latest charge expanded
/// ("Expanding responses", API reference) when it applies the payment, in
/// the same commit. `charge.succeeded` is not needed (acknowledged, not
/// queued). A repeated completion asks nothing. When Stripe cannot answer,
/// the payment is applied all the same and the message comes back; the
/// redelivery learns the method.
async fn the_payment_method_is_asked_of_stripe_with_the_payment(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let method_asks = || {
        stripe
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/v1/payment_intents/")))
            .collect::<Vec<_>>()
    };
    let (action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session_id, "succeeded").await;
    let charge = stripe.last_event("charge.succeeded").await;
    assert!(matches!(apply_stripe_event(&deps, &charge.to_string()).await.unwrap(), Outcome::Ignored(_)));
    let completed = stripe.last_event("checkout.session.completed").await;
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Applied);
    let paid = action_of(&deps, "c1", action.action_id()).await;
    let method = paid.payment_method().expect("asked of Stripe with the payment");
    assert_eq!(
        (method.kind.as_str(), method.brand.as_deref(), method.last4.as_deref()),
        ("card", Some("visa"), Some("4242"))
    );
    let asks = method_asks();
    assert_eq!(asks.len(), 1, "{asks:?}");
    assert_eq!(asks[0]["params"]["expand"], json!(["latest_charge"]));
    assert_eq!(asks[0]["account"], ACCOUNT, "asked on the clinic's account");
    // Again: nothing asked, nothing changed.
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Unchanged);
    assert_eq!((method_asks().len(), action_of(&deps, "c1", action.action_id()).await.version), (1, paid.version));

    // Stripe cannot answer (500s past the client's own retries): the payment
    // is applied, and the message is handed back to the queue to try again.
    let (second, token) = assigned_action(&deps, "c1", &[("2", 3000, "")]).await;
    let session_id = open_checkout(&deps, "c1", second.action_id(), &token).await;
    stripe.pay(&session_id, "succeeded").await;
    let completed = stripe.last_event("checkout.session.completed").await;
    stripe.control("/test/faults", json!({"method": "GET", "path": "/v1/payment_intents/", "times": 10})).await;
    let failed = apply_stripe_event(&deps, &completed.to_string()).await.unwrap_err();
    assert!(matches!(&failed, MessageError::Apply(e) if e.is_retryable()), "{failed:?}");
    let without = action_of(&deps, "c1", second.action_id()).await;
    assert_eq!((without.status(), without.payment_method()), (ActionStatus::Paid, None), "the money did not wait");
    reqwest::Client::new().delete(format!("{}/test/faults", stripe.base)).send().await.unwrap();
    // The queue's retry: the method is learned, and the payment is as it was.
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Applied);
    let learned = action_of(&deps, "c1", second.action_id()).await;
    assert_eq!(learned.payment_method().map(|m| m.last4.as_deref()), Some(Some("4242")));
    assert_eq!((learned.status(), learned.paid_at()), (ActionStatus::Paid, without.paid_at()));
}

/// The clinic's other software charges and refunds on the same Stripe
/// account; Stripe sends visitpay those events too (a Connect endpoint gets
/// every event of the account). A charge of visitpay's carries its
/// PaymentIntent's metadata (Stripe copies it onto the charge); these carry
/// none: each is acknowledged and ignored: no Stripe call, nothing kept, no alarm.
async fn other_softwares_charges_and_refunds_are_ignored(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    enable_clinic(&deps, "c1").await;
    let pi = "pi_3OtherSoftware0001";
    let charge = json!({"id": "ch_3OtherSoftware0001", "object": "charge", "payment_intent": pi, "amount": 2500,
        "metadata": {"order": "42"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}}});
    let refund = json!({"id": "re_3OtherSoftware0001", "object": "refund", "amount": 2500, "status": "succeeded",
        "charge": "ch_3OtherSoftware0001", "payment_intent": pi, "metadata": {}});
    let before = stripe.emulator.requests().len();
    for (n, (event_type, object)) in [
        ("charge.succeeded", &charge),
        ("charge.refunded", &charge),
        ("refund.created", &refund),
        ("charge.refund.updated", &refund),
    ]
    .into_iter()
    .enumerate()
    {
        let event = json!({"id": format!("evt_other_{n}"), "object": "event", "type": event_type, "account": ACCOUNT,
            "livemode": false, "data": {"object": object}});
        let outcome = apply_stripe_event(&deps, &event.to_string()).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored(_)), "{event_type}: {outcome:?}");
    }
    assert_eq!(stripe.emulator.requests().len(), before, "no Stripe call (charge.refunded was once looked up)");
    assert!(deps.store.find_payment(&self::pi(pi)).await.unwrap().is_none(), "nothing parked");
    assert!(metrics.signals().is_empty(), "no alarm");
}

on_both_stores!(
    other_softwares_charges_and_refunds_are_ignored,
    a_cancel_closes_the_session_opened_while_it_cancels,
    an_expiry_waits_for_a_session_opened_after_reconcile_closed_them,
    a_session_is_expired_before_it_is_replaced,
    a_paid_actions_other_sessions_are_expired,
    a_session_that_is_not_the_actions_pays_nothing,
    late_payments_on_an_action_are_bounded,
    other_softwares_open_sessions_change_nothing,
    a_late_payment_is_flagged_until_all_of_it_is_refunded,
    a_refund_that_fails_puts_the_action_and_its_invoices_back,
    a_dispute_is_followed_to_its_outcome,
    assign_refuses_a_total_stripe_would_not_take,
    reconcile_backs_off_what_fails_and_expires_a_disconnected_clinics_actions,
    refund_keys_stay_valid_after_stripes_errors,
    an_event_of_the_other_mode_changes_nothing,
    a_charge_refunded_event_alone_is_enough,
    the_payment_method_is_asked_of_stripe_with_the_payment,
);
