//! Cancel, expiry, refunds, disputes and reconcile, with the real Stripe
//! client against the emulator, on both stores; and the faults they survive.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use visitpay_app::ports::SessionStatus;
use visitpay_app::reconcile::{self, ReconcileConfig};
use visitpay_app::{actions, checkout, invoices, AppError};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionStatus, DomainError, InvoiceStatus, StripeAccountId};
use visitpay_edge::lambda::consumer::{self, Outcome};

fn money(amount: i64) -> visitpay_domain::Money {
    visitpay_domain::Money { amount, currency: visitpay_domain::Currency::parse("cad").unwrap() }
}

fn account() -> StripeAccountId {
    StripeAccountId::parse(ACCOUNT).unwrap()
}

/// Runs the embedded queue's consumer until `done` holds (or fails the test).
async fn drain_until<F, Fut>(deps: &TestDeps, queue: Arc<EmbeddedQueue>, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let consumer = deps.clone();
    let worker = tokio::spawn(async move { queue.run(|e| consumer::handle(&consumer, e)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
}

async fn cancel_expires_the_open_session(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, ""), ("2", 500, "")]).await;
    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;

    let cancelled = actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(cancelled.status(), ActionStatus::Cancelled);
    assert_eq!(
        invoice_states(&deps, "c1", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Selected; 2]
    );
    let session = stripe.payments.retrieve_checkout(&account(), &session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Expired, "expired at Stripe before the invoices were released");
    assert_eq!(stripe.pay_status(&session_id, "succeeded").await, 400, "the emulator, as Stripe, refuses to take it");
    deliver_all(&deps, &stripe).await;
    let after = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!((after.status(), after.refund_needed()), (ActionStatus::Cancelled, false));
}

async fn a_payment_racing_a_cancel_is_kept_and_flagged(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    deps.payments = Arc::new(RacingExpire(stripe.payments.clone()));
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;
    actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(stripe.pay_status(&session_id, "succeeded").await, 200);
    deliver_all(&deps, &stripe).await;
    let after = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(after.status(), ActionStatus::Cancelled);
    assert!(after.refund_needed(), "the money is recorded and flagged");
    assert!(after.late().payments()[0].payment_intent.as_ref().is_some_and(|p| p.as_str().starts_with("pi_")));
    assert_eq!(
        invoice_states(&deps, "c1", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Selected],
        "invoices are not marked paid"
    );
    assert!(after.history().entries().last().unwrap().reason.contains("refund needed"));

    // Refunded from Stripe's dashboard: the flag clears.
    let pi = after.late().payments()[0].payment_intent.clone().unwrap();
    stripe.dashboard_refund(&pi, None).await;
    deliver_all(&deps, &stripe).await;
    assert!(!action_of(&deps, "c1", action.action_id()).await.refund_needed());
}

fn refund_posts(stripe: &StripeFixture) -> usize {
    stripe.emulator.requests().iter().filter(|r| r["method"] == "POST" && r["path"] == "/v1/refunds").count()
}

async fn refunds_never_exceed_what_was_paid(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);

    // Full refund: refunded, invoices owed again.
    let full = paid_action(&deps, &stripe, "full", &[("1", 3000, ""), ("2", 1500, "")]).await;
    let refunded = actions::refund(&deps, &staff("full"), &clinic("full"), full.action_id(), None).await.unwrap();
    assert_eq!((refunded.status(), refunded.refunded().amount), (ActionStatus::Refunded, 4500));
    assert_eq!(
        invoice_states(&deps, "full", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Unprocessed; 2]
    );
    deliver_all(&deps, &stripe).await;
    assert_eq!(
        action_of(&deps, "full", full.action_id()).await.refunds().records().len(),
        1,
        "Stripe's event adds nothing new"
    );
    let e = actions::refund(&deps, &staff("full"), &clinic("full"), full.action_id(), Some(1)).await.unwrap_err();
    assert!(matches!(e, AppError::Domain(DomainError::NotRefundable(ActionStatus::Refunded))), "{e:?}");

    // Two partial refunds summing to the total; one too many is refused before Stripe.
    let part = paid_action(&deps, &stripe, "part", &[("1", 4000, "")]).await;
    let one = actions::refund(&deps, &staff("part"), &clinic("part"), part.action_id(), Some(1500)).await.unwrap();
    assert_eq!((one.status(), one.refundable()), (ActionStatus::PartiallyRefunded, money(2500)));
    let posts = refund_posts(&stripe);
    let e = actions::refund(&deps, &staff("part"), &clinic("part"), part.action_id(), Some(2501)).await.unwrap_err();
    assert!(matches!(e, AppError::Domain(DomainError::RefundExceedsRemaining(2500))), "{e:?}");
    assert_eq!(refund_posts(&stripe), posts, "nothing was sent to Stripe");
    let two = actions::refund(&deps, &staff("part"), &clinic("part"), part.action_id(), Some(2500)).await.unwrap();
    assert_eq!((two.status(), two.refunded().amount), (ActionStatus::Refunded, 4000));
    let amounts: Vec<Option<i64>> = two.history().entries().iter().map(|h| h.amount).collect();
    assert_eq!(amounts.last(), Some(&Some(4000)), "history carries amounts");

    // A refund made in Stripe's dashboard arrives as charge.refunded.
    let dash = paid_action(&deps, &stripe, "dash", &[("1", 2000, "")]).await;
    stripe.dashboard_refund(dash.payment_intent_id().unwrap(), Some(500)).await;
    deliver_all(&deps, &stripe).await;
    let after = action_of(&deps, "dash", dash.action_id()).await;
    assert_eq!(
        (after.status(), after.refunded().amount, after.refundable()),
        (ActionStatus::PartiallyRefunded, 500, money(1500))
    );
    let e = actions::refund(&deps, &staff("dash"), &clinic("dash"), dash.action_id(), Some(1501)).await.unwrap_err();
    assert!(matches!(e, AppError::Domain(DomainError::RefundExceedsRemaining(1500))));
}

async fn a_dispute_flags_the_action(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let paid = paid_action(&deps, &stripe, "c1", &[("1", 2000, "")]).await;
    let dispute = json!({
        "id": "evt_dispute_1", "object": "event", "type": "charge.dispute.created", "account": ACCOUNT,
        "data": {"object": {"id": "dp_1", "object": "dispute", "amount": 2000, "charge": "ch_x",
            "payment_intent": paid.payment_intent_id(), "reason": "fraudulent", "status": "needs_response"}}
    });
    apply_stripe_event(&deps, &dispute.to_string()).await.unwrap();
    let after = action_of(&deps, "c1", paid.action_id()).await;
    assert!(after.disputed());
    assert_eq!(after.status(), ActionStatus::Paid);
    assert_eq!(after.history().entries().last().unwrap().actor, "stripe:evt_dispute_1");
}

/// Refunds and disputes made in Stripe's dashboard whose events arrive before
/// the payment's own (Stripe promises no order) wait for it, then apply.
async fn charge_events_before_the_payment_wait_for_it(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1500, ""), ("2", 500, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    let completed = stripe.events().await.into_iter().find(|e| e["type"] == "checkout.session.completed").unwrap();
    let pi = completed["data"]["object"]["payment_intent"].as_str().unwrap().to_owned();
    stripe.dashboard_refund(&pi, Some(300)).await;
    stripe.dashboard_refund(&pi, Some(200)).await;
    let refunds: Vec<String> =
        stripe.events().await.iter().filter(|e| e["type"] == "charge.refunded").map(|e| e.to_string()).collect();
    assert_eq!(refunds.len(), 2);
    stripe.dispute(&pi).await;
    let dispute = stripe.last_event("charge.dispute.created").await;
    let dispute_event = format!("stripe:{}", dispute["id"].as_str().unwrap());
    let dispute = dispute.to_string();
    // Newest first, and one twice: each is kept, nothing is applied yet.
    for body in [&refunds[1], &dispute, &refunds[0], &refunds[1]] {
        assert_eq!(apply_stripe_event(&deps, body).await.unwrap(), Outcome::Parked);
    }
    assert_eq!(action_of(&deps, "c1", action.action_id()).await.status(), ActionStatus::CheckoutOpen);
    let parked = deps.store.find_payment(&self::pi(&pi)).await.unwrap().unwrap();
    assert_eq!((parked.owner.is_none(), parked.parked.len()), (true, 3), "three distinct events kept");

    // The payment arrives: paid, then the refunds and the dispute, in one commit.
    assert_eq!(apply_stripe_event(&deps, &completed.to_string()).await.unwrap(), Outcome::Applied);
    let after = action_of(&deps, "c1", action.action_id()).await;
    assert_eq!(
        (after.status(), after.refunded().amount, after.disputed()),
        (ActionStatus::PartiallyRefunded, 500, true)
    );
    let actors: Vec<&str> = after.history().entries().iter().map(|h| h.actor.as_str()).collect();
    assert!(actors.contains(&dispute_event.as_str()), "{actors:?}");
    let recorded = deps.store.find_payment(&self::pi(&pi)).await.unwrap().unwrap();
    assert_eq!(
        (recorded.owner.as_ref().map(|o| o.action_id.clone()), recorded.parked.len()),
        (Some(action.action_id().clone()), 0)
    );
    assert!(invoice_states(&deps, "c1", "p1")
        .await
        .into_values()
        .collect::<Vec<_>>()
        .iter()
        .all(|s| *s == InvoiceStatus::Paid));
    // Delivered again, in any order: nothing changes.
    for body in [&completed.to_string(), &refunds[0], &dispute, &refunds[1]] {
        assert_eq!(apply_stripe_event(&deps, body).await.unwrap(), Outcome::Unchanged, "{body}");
    }
    assert_eq!(action_of(&deps, "c1", action.action_id()).await, after);
}

async fn reconcile_learns_what_webhooks_missed(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, Duration::from_millis(20)));
    let (deps, clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let config = ReconcileConfig { min_age: time::Duration::seconds(60), batch: 50 };

    let (paid, paid_token) = assigned_action(&deps, "paid", &[("1", 1000, "")]).await;
    let (failed, failed_token) = assigned_action(&deps, "failed", &[("1", 1000, "")]).await;
    let (open, open_token) = assigned_action(&deps, "open", &[("1", 1000, "")]).await;
    for token in [&paid_token, &failed_token, &open_token] {
        checkout::open(&deps, token).await.unwrap();
    }
    let session = |a: &visitpay_domain::Action, c: &'static str| {
        let deps = deps.clone();
        let id = a.action_id().clone();
        async move { action_of(&deps, c, &id).await.checkout_session_id().unwrap().to_owned() }
    };
    stripe.pay(&session(&paid, "paid").await, "succeeded").await;
    stripe.pay(&session(&failed, "failed").await, "delayed_failed").await;
    // No webhook was delivered. Too recent to check yet:
    let early = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(early.checked, 0);

    clock.advance(61);
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(
        (report.checked, report.found_paid, report.found_processing, report.still_open),
        (3, 1, 1, 1),
        "{report:?}"
    );
    drain_until(&deps, queue.clone(), "paid and processing", || async {
        action_of(&deps, "paid", paid.action_id()).await.status() == ActionStatus::Paid
            && action_of(&deps, "failed", failed.action_id()).await.status() == ActionStatus::Processing
    })
    .await;
    let read = action_of(&deps, "paid", paid.action_id()).await;
    assert_eq!(read.history().entries().last().unwrap().actor, "reconcile", "the cause is recorded");

    // Checked ones are left alone for min_age; then the failure is found too.
    assert_eq!(reconcile::run(&deps, config).await.unwrap().checked, 0);
    clock.advance(61);
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!((report.found_failed, report.still_open), (1, 1), "{report:?}");
    drain_until(&deps, queue.clone(), "failed", || async {
        action_of(&deps, "failed", failed.action_id()).await.status() == ActionStatus::Failed
    })
    .await;
    assert_eq!(
        invoice_states(&deps, "failed", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Selected]
    );
    assert_eq!(invoice_states(&deps, "paid", "p1").await.into_values().collect::<Vec<_>>(), vec![InvoiceStatus::Paid]);
    assert_eq!(action_of(&deps, "open", open.action_id()).await.status(), ActionStatus::CheckoutOpen);
}

async fn reconcile_expires_actions_past_their_lifetime(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, Duration::from_millis(20)));
    let (deps, clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let config = ReconcileConfig { min_age: time::Duration::seconds(300), batch: 50 };
    let (idle, _) = assigned_action(&deps, "idle", &[("1", 1000, ""), ("2", 1000, "")]).await;
    let (open, open_token) = assigned_action(&deps, "open", &[("1", 1000, "")]).await;
    let session_id = open_checkout(&deps, "open", open.action_id(), &open_token).await;

    clock.advance(71 * 3600);
    assert_eq!(reconcile::run(&deps, config).await.unwrap().actions_expired, 0, "not yet");
    clock.advance(2 * 3600);
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(report.actions_expired, 2, "{report:?}");
    drain_until(&deps, queue.clone(), "both expired", || async {
        action_of(&deps, "idle", idle.action_id()).await.status() == ActionStatus::Expired
            && action_of(&deps, "open", open.action_id()).await.status() == ActionStatus::Expired
    })
    .await;
    assert_eq!(
        invoice_states(&deps, "idle", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Selected; 2]
    );
    assert_eq!(
        invoice_states(&deps, "open", "p1").await.into_values().collect::<Vec<_>>(),
        vec![InvoiceStatus::Selected]
    );
    let session = stripe.payments.retrieve_checkout(&account(), &session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Expired, "its open session was expired at Stripe");
    assert_eq!(reconcile::run(&deps, config).await.unwrap().actions_expired, 0, "nothing left to expire");
    let last = action_of(&deps, "idle", idle.action_id()).await.history().entries().last().cloned().unwrap();
    assert_eq!((last.actor.as_str(), last.to), ("reconcile", ActionStatus::Expired));
}

/// The longest life an action can have stays inside DynamoDB's 400 KB item
/// limit: assigned for the longest lifetime a clinic may set (720 h), the
/// patient opening a new Checkout Session each time the last one expired
/// (sessions last at least 30 minutes), then paying and being refunded in
/// 250 steps through visitpay and 50 more from Stripe's dashboard. History
/// keeps every money movement and the first and last sessions; the item is
/// read and written again at the end.
async fn an_action_lives_its_longest_life_within_the_item_limit(store: DynStore) {
    use visitpay_app::ports::Clock as _;
    use visitpay_aws::dynamodb::items::{action_item, item_size, MAX_ITEM_BYTES};
    use visitpay_domain::action::{MAX_REFUNDS, ROUTINE_HISTORY_HEAD, ROUTINE_HISTORY_TAIL};
    let stripe = stripe_emulator(None).await;
    let (deps, clock) = deps_for_payments(store.clone(), &stripe, None);
    let mut long = settings_input(true, "cad");
    (long.checkout_ttl_minutes, long.action_ttl_hours) = (30, 720);
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), long).await.unwrap();
    import(&deps, "c1", "p1", "1", 1_000_000, "cad").await;
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["1"])).await.unwrap();
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["1"]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    let actions::Assigned::Created { action, patient_url } =
        actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v1"), request, None, first_answer).await.unwrap()
    else {
        panic!("a new action")
    };
    let token = patient_url.rsplit('/').next().unwrap().to_owned();
    let mut seen = std::collections::HashSet::new();
    let deliver_new = |seen: &mut std::collections::HashSet<String>, events: Vec<serde_json::Value>| {
        events.into_iter().filter(|e| seen.insert(e["id"].as_str().unwrap().to_owned())).collect::<Vec<_>>()
    };

    // A session lasts 32 minutes (30 and Stripe's margin); the patient opens
    // a new one each time, until the action's lifetime is nearly over.
    let step = 32 * 60;
    let mut sessions = 0;
    while clock.now() + time::Duration::seconds(step + 120) < action.expires_at() {
        checkout::open(&deps, &token).await.unwrap();
        sessions += 1;
        // One clock for both sides, as the emulator's moves with real time too.
        stripe.emulator.advance_clock(step);
        for e in deliver_new(&mut seen, stripe.latest_events(3).await) {
            apply_stripe_event(&deps, &e.to_string()).await.unwrap();
        }
    }
    assert!(sessions > 1300, "{sessions} sessions in 720 h");
    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session_id, "succeeded").await;
    for e in deliver_new(&mut seen, stripe.events().await) {
        apply_stripe_event(&deps, &e.to_string()).await.unwrap();
    }

    // Refunds: the most visitpay allows, one at a time, and Stripe's own.
    for _ in 1..MAX_REFUNDS {
        actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), Some(100)).await.unwrap();
    }
    let over = actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), Some(100)).await;
    assert!(matches!(over, Err(AppError::Domain(DomainError::TooManyRefunds(_)))), "{over:?}");
    let pi = action_of(&deps, "c1", action.action_id()).await.payment_intent_id().unwrap().clone();
    for _ in 0..50 {
        stripe.dashboard_refund(&pi, Some(100)).await;
    }
    let refunded_events: Vec<_> = deliver_new(&mut seen, stripe.events().await);
    for e in refunded_events {
        apply_stripe_event(&deps, &e.to_string()).await.unwrap();
    }
    let last = actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), None).await.unwrap();
    assert_eq!((last.status(), last.refunded().amount), (ActionStatus::Refunded, 1_000_000));

    let lived = action_of(&deps, "c1", action.action_id()).await;
    let size = item_size(&action_item(&lived, lived.version));
    println!(
        "{sessions} sessions, {} refunds, {} history entries ({} omitted): {size} bytes",
        lived.refunds().records().len(),
        lived.history().entries().len(),
        lived.history().omitted()
    );
    assert!(size < MAX_ITEM_BYTES / 4, "{size} bytes: far below DynamoDB's 400 KB");
    assert_eq!(lived.refunds().records().len(), MAX_REFUNDS + 50);
    let routine = lived.history().entries().iter().filter(|h| h.routine).count();
    assert_eq!(routine, ROUTINE_HISTORY_HEAD + ROUTINE_HISTORY_TAIL);
    assert_eq!(
        routine + lived.history().omitted() as usize,
        2 * sessions + 1,
        "each session opened and expired, the last paid"
    );
    // Stripe's list of refunds may bring several at once (`charge.refunded`):
    // each is named in the history, whichever entry brought it.
    let money: Vec<&str> = lived
        .history()
        .entries()
        .iter()
        .filter(|h| matches!(h.to, ActionStatus::PartiallyRefunded | ActionStatus::Refunded))
        .map(|h| h.reason.as_str())
        .collect();
    let named = lived
        .refunds()
        .records()
        .iter()
        .filter(|r| money.iter().any(|m| m.contains(&format!("refund {} ", r.refund_id))));
    assert_eq!(named.count(), lived.refunds().records().len(), "every refund is in the history");
    assert_eq!(lived.history().entries()[0].from, None, "the assignment stays first");
    assert!(lived.history().entries().iter().any(|h| h.to == ActionStatus::Paid));
    // Still written and read: a dispute lands on it.
    stripe.dispute(&pi).await;
    let dispute = stripe.last_event("charge.dispute.created").await;
    apply_stripe_event(&deps, &dispute.to_string()).await.unwrap();
    assert!(action_of(&deps, "c1", action.action_id()).await.disputed());
}

/// A Stripe that refuses every refund and every session lookup.
struct Refusing(Arc<dyn visitpay_app::ports::Payments>);

fn refused() -> visitpay_app::ports::PaymentsError {
    visitpay_app::ports::PaymentsError::Rejected {
        status: 400,
        code: Some("charge_disputed".into()),
        message: "no".into(),
    }
}

#[async_trait::async_trait]
impl visitpay_app::ports::Payments for Refusing {
    async fn create_checkout(
        &self,
        r: &visitpay_app::ports::CheckoutRequest,
    ) -> Result<visitpay_app::ports::CheckoutSession, visitpay_app::ports::PaymentsError> {
        self.0.create_checkout(r).await
    }
    async fn retrieve_checkout(
        &self,
        _: &StripeAccountId,
        _: &visitpay_domain::SessionId,
    ) -> Result<visitpay_app::ports::CheckoutSession, visitpay_app::ports::PaymentsError> {
        Err(visitpay_app::ports::PaymentsError::Unavailable("injected".into()))
    }
    async fn expire_checkout(
        &self,
        a: &StripeAccountId,
        s: &visitpay_domain::SessionId,
    ) -> Result<visitpay_app::ports::CheckoutSession, visitpay_app::ports::PaymentsError> {
        self.0.expire_checkout(a, s).await
    }
    async fn refund(
        &self,
        _: &visitpay_app::ports::RefundRequest,
    ) -> Result<visitpay_app::ports::Refund, visitpay_app::ports::PaymentsError> {
        Err(refused())
    }
    async fn recover_checkout(
        &self,
        r: &visitpay_app::ports::CheckoutRequest,
    ) -> Result<Option<visitpay_app::ports::CheckoutSession>, visitpay_app::ports::PaymentsError> {
        self.0.recover_checkout(r).await
    }
    async fn retrieve_account(
        &self,
        a: &StripeAccountId,
    ) -> Result<visitpay_app::ports::ConnectedAccount, visitpay_app::ports::PaymentsError> {
        self.0.retrieve_account(a).await
    }
    async fn create_account(
        &self,
        c: &visitpay_domain::ClinicId,
    ) -> Result<visitpay_app::ports::ConnectedAccount, visitpay_app::ports::PaymentsError> {
        self.0.create_account(c).await
    }
    async fn create_account_link(
        &self,
        a: &StripeAccountId,
        refresh: &str,
        back: &str,
    ) -> Result<visitpay_app::ports::AccountLink, visitpay_app::ports::PaymentsError> {
        self.0.create_account_link(a, refresh, back).await
    }
    async fn list_payout_transactions(
        &self,
        a: &StripeAccountId,
        payout: &str,
    ) -> Result<Vec<visitpay_app::ports::BalanceTransaction>, visitpay_app::ports::PaymentsError> {
        self.0.list_payout_transactions(a, payout).await
    }
    async fn list_undelivered_events(
        &self,
        a: &StripeAccountId,
        after: visitpay_domain::Timestamp,
        until: visitpay_domain::Timestamp,
    ) -> Result<visitpay_app::ports::EventLog, visitpay_app::ports::PaymentsError> {
        self.0.list_undelivered_events(a, after, until).await
    }
    async fn list_refunds(
        &self,
        a: &StripeAccountId,
        pi: &visitpay_domain::PaymentIntentId,
    ) -> Result<Vec<visitpay_app::ports::Refund>, visitpay_app::ports::PaymentsError> {
        self.0.list_refunds(a, pi).await
    }
    async fn payment_method(
        &self,
        a: &StripeAccountId,
        pi: &visitpay_domain::PaymentIntentId,
    ) -> Result<Option<visitpay_domain::PaymentMethod>, visitpay_app::ports::PaymentsError> {
        self.0.payment_method(a, pi).await
    }
    fn livemode(&self) -> bool {
        false
    }
}

/// Each money event a person must act on reaches the metrics the alarms
/// watch, once: a payment kept for refund, a dispute, a refund Stripe
/// refused, reconcile's errors (0 too, so the metric always exists).
async fn money_signals_reach_the_metrics(store: DynStore) {
    use visitpay_app::ports::MoneySignal;
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, Duration::from_millis(10)));
    let (mut deps, _clock) = deps_for_payments(store, &stripe, Some(queue));
    let metrics = crate::support::kit::record_metrics(&mut deps);
    deps.payments = Arc::new(RacingExpire(stripe.payments.clone()));
    let (late, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session_id = open_checkout(&deps, "c1", late.action_id(), &token).await;
    actions::cancel(&deps, &staff("c1"), &clinic("c1"), late.action_id()).await.unwrap();
    stripe.pay(&session_id, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    deliver_all(&deps, &stripe).await;

    deps.payments = stripe.payments.clone();
    let paid = paid_action(&deps, &stripe, "c1", &[("2", 2000, "")]).await;
    stripe.dispute(paid.payment_intent_id().unwrap()).await;
    let dispute = stripe.last_event("charge.dispute.created").await;
    for _ in 0..2 {
        apply_stripe_event(&deps, &dispute.to_string()).await.unwrap();
    }
    // A disputed payment is not refunded at all (Stripe refuses: `charge_disputed`),
    // so the refused refund is of another, undisputed payment.
    let refused = paid_action(&deps, &stripe, "c1", &[("4", 3000, "")]).await;
    deps.payments = Arc::new(Refusing(stripe.payments.clone()));
    let refund = actions::refund(&deps, &staff("c1"), &clinic("c1"), refused.action_id(), None).await;
    assert!(
        matches!(refund, Err(AppError::Payments(visitpay_app::ports::PaymentsError::Rejected { .. }))),
        "{refund:?}"
    );
    let (_, open_token) = assigned_action(&deps, "c2", &[("3", 500, "")]).await;
    checkout::open(&deps, &open_token).await.unwrap();
    let config = ReconcileConfig { min_age: time::Duration::seconds(-60), batch: 10 };
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(report.errors, 1, "{report:?}");

    let signals: Vec<(MoneySignal, Option<String>)> = metrics.signals();
    let (late_id, paid_id) = (Some(late.action_id().to_string()), Some(paid.action_id().to_string()));
    assert_eq!(
        signals,
        vec![
            (MoneySignal::RefundNeeded, late_id),
            (MoneySignal::DisputeOpened, paid_id),
            (MoneySignal::RefundFailed, Some(refused.action_id().to_string())),
            (MoneySignal::ReconcileErrors(1), None),
        ]
    );
}

on_both_stores!(
    money_signals_reach_the_metrics,
    an_action_lives_its_longest_life_within_the_item_limit,
    cancel_expires_the_open_session,
    a_payment_racing_a_cancel_is_kept_and_flagged,
    refunds_never_exceed_what_was_paid,
    a_dispute_flags_the_action,
    charge_events_before_the_payment_wait_for_it,
    reconcile_learns_what_webhooks_missed,
    reconcile_expires_actions_past_their_lifetime,
);
