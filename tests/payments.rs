//! The patient pays: Checkout through the real Stripe client against the
//! project's emulator, webhooks verified against Stripe's own library, and
//! Stripe's events applied exactly once whatever their order or repetition.

use std::sync::Arc;

use crate::support::*;
use serde_json::{json, Value};
use visitpay_app::{actions, checkout, invoices, AppError};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionStatus, DomainError, InvoiceStatus};
use visitpay_edge::lambda::consumer::Outcome;

/// Feeds every event Stripe recorded so far through the consumer.

async fn checkout_then_pay(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1042", 4500, ""), ("1043", 1500, "")]).await;

    let link = checkout::open(&deps, &token).await.unwrap();
    assert!(link.url.starts_with(&stripe.base), "{}", link.url);
    let opened = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(opened.status(), ActionStatus::CheckoutOpen);
    let session_id = opened.checkout_session_id().unwrap().to_owned();

    // A repeat click: the same session, no new request to Stripe.
    let posts_before = stripe.emulator.requests().len();
    assert_eq!(checkout::open(&deps, &token).await.unwrap(), link);
    assert_eq!(stripe.emulator.requests().len(), posts_before);

    let paid = stripe.pay(&session_id, "succeeded").await;
    assert_eq!(paid["session"]["payment_status"], "paid");
    deliver_all(&deps, &stripe).await;
    let done = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(done.status(), ActionStatus::Paid);
    assert!(done.payment_intent_id().is_some_and(|p| p.as_str().starts_with("pi_")));
    assert!(invoice_states(&deps, "c1", "p1").await.iter().all(|(_, s)| *s == InvoiceStatus::Paid));

    // Re-delivering every event changes nothing.
    deliver_all(&deps, &stripe).await;
    assert_eq!(actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap(), done);
    let e = checkout::open(&deps, &token).await.unwrap_err();
    assert!(matches!(e, AppError::Domain(DomainError::AlreadyPaid)), "{e:?}");
}

async fn concurrent_clicks_open_one_session(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let clicks: Vec<_> = (0..10)
        .map(|_| {
            let (deps, token) = (deps.clone(), token.clone());
            tokio::spawn(async move { checkout::open(&deps, &token).await })
        })
        .collect();
    let mut urls = std::collections::BTreeSet::new();
    for c in clicks {
        urls.insert(c.await.unwrap().unwrap().url);
    }
    assert_eq!(urls.len(), 1, "every click got the same session: {urls:?}");
    let sessions: std::collections::BTreeSet<String> = stripe
        .emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1/checkout/sessions")
        .map(|r| r["idempotency_key"].as_str().unwrap_or("<none>").to_owned())
        .collect();
    assert_eq!(sessions.len(), 1, "one idempotency key, so one session at Stripe: {sessions:?}");
    let stored = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(stored.checkout().current().as_ref().and_then(|c| c.url.clone()), urls.into_iter().next());
    assert_eq!(stored.checkout().attempts(), 1);
}

async fn an_expired_session_is_replaced(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let first = checkout::open(&deps, &token).await.unwrap();
    let first_id =
        actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap().checkout_session_id().unwrap().to_owned();
    let account = visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap();
    stripe.payments.expire_checkout(&account, &first_id).await.unwrap();
    deliver_all(&deps, &stripe).await;
    let back = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(back.status(), ActionStatus::Assigned, "the patient may try again");

    let second = checkout::open(&deps, &token).await.unwrap();
    assert_ne!(second.url, first.url);
    let now = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!((now.status(), now.checkout().attempts()), (ActionStatus::CheckoutOpen, 2));
    // The old session's expiry, delivered again, does not touch the new one.
    deliver_all(&deps, &stripe).await;
    assert_eq!(
        actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap().status(),
        ActionStatus::CheckoutOpen
    );
}

async fn delayed_methods_succeed_or_fail(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    for (clinic_id, outcome, final_status, invoice_status) in [
        ("ok", "delayed_succeeded", ActionStatus::Paid, InvoiceStatus::Paid),
        ("ko", "delayed_failed", ActionStatus::Failed, InvoiceStatus::Selected),
    ] {
        let (action, token) = assigned_action(&deps, clinic_id, &[("1", 1000, "")]).await;
        checkout::open(&deps, &token).await.unwrap();
        let session = actions::get(&deps, &clinic(clinic_id), action.action_id()).await.unwrap();
        let events = stripe.pay(session.checkout_session_id().unwrap(), outcome).await;
        // A debit that clears also has its charge.succeeded.
        let expected = if outcome == "delayed_succeeded" { 3 } else { 2 };
        assert_eq!(events["events"].as_array().map(Vec::len), Some(expected), "{outcome}");
        // The first session event alone: processing.
        let all = stripe.events().await;
        let mine: Vec<&Value> = all
            .iter()
            .filter(|e| e["data"]["object"]["metadata"]["visitpay_action_id"] == action.action_id().as_str())
            .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("checkout.session.")))
            .collect();
        apply_stripe_event(&deps, &mine[0].to_string()).await.unwrap();
        let mid = actions::get(&deps, &clinic(clinic_id), action.action_id()).await.unwrap();
        assert_eq!(mid.status(), ActionStatus::Processing, "{outcome}");
        apply_stripe_event(&deps, &mine[1].to_string()).await.unwrap();
        let end = actions::get(&deps, &clinic(clinic_id), action.action_id()).await.unwrap();
        assert_eq!(end.status(), final_status, "{outcome}");
        assert!(invoice_states(&deps, clinic_id, "p1").await.iter().all(|(_, s)| *s == invoice_status), "{outcome}");
    }
}

/// A tiny deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What must not depend on delivery order or repetition.
fn outcome_of(a: &visitpay_domain::Action) -> (ActionStatus, Option<visitpay_domain::SessionId>, usize) {
    (a.status(), a.payment().map(|p| p.session_id.clone()), a.late().payments().len())
}

/// Each scenario's events, delivered 1 to 3 times each in random order,
/// always end where one clean in-order delivery ends.
async fn any_order_any_repetition_same_final_state(store: DynStore, seeds: u64) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let scenarios = [
        "succeeded",
        "delayed_succeeded",
        "delayed_failed",
        "expired_then_paid",
        "cancel_then_paid",
        "refunded_in_dashboard",
    ];
    for scenario in scenarios {
        for seed in 1..=seeds {
            let reference_clinic = format!("ref-{scenario}-{seed}");
            let shuffled_clinic = format!("mix-{scenario}-{seed}");
            let mut finals = Vec::new();
            for (clinic_id, shuffle) in [(&reference_clinic, false), (&shuffled_clinic, true)] {
                let (action, token) = assigned_action(&deps, clinic_id, &[("1", 700, ""), ("2", 300, "")]).await;
                let session = |deps: TestDeps, id: visitpay_domain::ActionId, c: String| async move {
                    actions::get(&deps, &clinic(&c), &id).await.unwrap().checkout_session_id().unwrap().to_owned()
                };
                checkout::open(&deps, &token).await.unwrap();
                let first = session(deps.clone(), action.action_id().clone(), clinic_id.clone()).await;
                match scenario {
                    "expired_then_paid" => {
                        let account = visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap();
                        stripe.payments.expire_checkout(&account, &first).await.unwrap();
                        // The expiry is learnt before the next click (in both runs).
                        for e in events_of(&stripe, action.action_id()).await {
                            apply_stripe_event(&deps, &e).await.unwrap();
                        }
                        checkout::open(&deps, &token).await.unwrap();
                        let second = session(deps.clone(), action.action_id().clone(), clinic_id.clone()).await;
                        stripe.pay(&second, "succeeded").await;
                    }
                    "cancel_then_paid" => {
                        // The patient pays while staff cancel (Stripe accepted the expire
                        // as the payment went through): the payment must be kept and flagged.
                        let mut racing = deps.clone();
                        racing.payments = Arc::new(RacingExpire(stripe.payments.clone()));
                        actions::cancel(&racing, &staff(clinic_id), &clinic(clinic_id), action.action_id())
                            .await
                            .unwrap();
                        stripe.pay(&first, "succeeded").await;
                    }
                    "refunded_in_dashboard" => {
                        // Two refunds made in Stripe's dashboard: their events may come first.
                        stripe.pay(&first, "succeeded").await;
                        let pi = payment_intent_of(&stripe, action.action_id()).await;
                        stripe.dashboard_refund(&pi, Some(100)).await;
                        stripe.dashboard_refund(&pi, Some(200)).await;
                    }
                    outcome => {
                        stripe.pay(&first, outcome).await;
                    }
                }
                let mut events = events_of(&stripe, action.action_id()).await;
                if scenario == "refunded_in_dashboard" {
                    let pi = payment_intent_of(&stripe, action.action_id()).await;
                    let charges = stripe.events().await.into_iter().filter(|e| {
                        e["type"] == "charge.refunded" && e["data"]["object"]["payment_intent"] == pi.as_str()
                    });
                    for charge in charges.map(|e| e.to_string()) {
                        if !events.contains(&charge) {
                            events.push(charge);
                        }
                    }
                    let kinds: Vec<Value> =
                        events.iter().map(|e| serde_json::from_str::<Value>(e).unwrap()["type"].clone()).collect();
                    assert_eq!(kinds, ["checkout.session.completed", "charge.refunded", "charge.refunded"]);
                }
                let mut deliveries: Vec<&String> = Vec::new();
                if shuffle {
                    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    for e in &events {
                        for _ in 0..=rng.below(3) {
                            deliveries.push(e);
                        }
                    }
                    for i in (1..deliveries.len()).rev() {
                        deliveries.swap(i, rng.below(i + 1));
                    }
                } else {
                    deliveries.extend(events.iter());
                }
                for body in deliveries {
                    let outcome = apply_stripe_event(&deps, body).await.unwrap();
                    assert!(!matches!(outcome, Outcome::Ignored(_)), "{outcome:?}");
                }
                let end = actions::get(&deps, &clinic(clinic_id), action.action_id()).await.unwrap();
                finals.push((
                    outcome_of(&end).0,
                    end.payment().is_some(),
                    end.late().payments().len(),
                    end.refunded().amount,
                    invoice_states(&deps, clinic_id, "p1").await,
                ));
            }
            assert_eq!(finals[0], finals[1], "{scenario}, seed {seed}");
        }
    }
}

async fn payment_intent_of(stripe: &StripeFixture, action: &visitpay_domain::ActionId) -> String {
    let events = stripe.events().await;
    let completed = events
        .iter()
        .find(|e| {
            e["type"] == "checkout.session.completed"
                && e["data"]["object"]["metadata"]["visitpay_action_id"] == action.as_str()
        })
        .expect("the session completed");
    completed["data"]["object"]["payment_intent"].as_str().unwrap().to_owned()
}

async fn events_of(stripe: &StripeFixture, action: &visitpay_domain::ActionId) -> Vec<String> {
    stripe
        .events()
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["metadata"]["visitpay_action_id"] == action.as_str())
        // What an endpoint subscribed to the types visitpay handles receives.
        .filter(|e| e["type"].as_str().is_some_and(visitpay_stripe::events::handles))
        .map(|e| e.to_string())
        .collect()
}

/// No health information reaches Stripe unless the clinic opted in.
async fn nothing_phi_like_reaches_stripe(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let clinical = "Suivi trouble anxieux — renouvellement ordonnance";
    let (_, token) = assigned_action(&deps, "c1", &[("1042", 4500, clinical)]).await;
    checkout::open(&deps, &token).await.unwrap();
    let sent = json!(stripe.emulator.requests()).to_string();
    assert!(!sent.contains("anxieux") && !sent.contains(clinical), "clinical text reached Stripe: {sent}");
    let create = stripe.emulator.requests().into_iter().find(|r| r["path"] == "/v1/checkout/sessions").unwrap();
    let params = &create["params"];
    assert_eq!(params["line_items"][0]["price_data"]["product_data"]["name"], "Services cliniques — facture 1042");
    let mut keys: Vec<&str> = params["metadata"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["visitpay_action_id", "visitpay_clinic_id"]);
    assert!(params["client_reference_id"].as_str().unwrap().starts_with("act_"));
    assert_eq!(create["account"], ACCOUNT, "a direct charge on the clinic's account");
    assert!(create["idempotency_key"].as_str().unwrap().starts_with("visitpay-checkout-"));

    // A clinic that opted in sends its descriptions: proof the check above can see them.
    let mut opted = settings_input(true, "cad");
    opted.line_item_text = visitpay_domain::LineItemText::InvoiceDescription;
    visitpay_app::settings::put(&deps, &support(), clinic("c2"), opted).await.unwrap();
    invoices::import(&deps, &clinic("c2"), &patient("p1"), &ids(&["9"])[0], {
        let mut i = invoice_input(100, "cad");
        i.description = clinical.into();
        i
    })
    .await
    .unwrap();
    invoices::select(&deps, &clinic("c2"), &patient("p1"), &ids(&["9"])).await.unwrap();
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["9"]),
        locale: visitpay_domain::Locale::EnCa,
        notify: Default::default(),
    };
    let actions::Assigned::Created { patient_url, .. } =
        actions::assign(&deps, &staff("c2"), &clinic("c2"), &visit("v1"), request, None, first_answer).await.unwrap()
    else {
        panic!()
    };
    checkout::open(&deps, patient_url.rsplit('/').next().unwrap()).await.unwrap();
    assert!(json!(stripe.emulator.requests()).to_string().contains(clinical));
}

on_both_stores!(
    checkout_then_pay,
    concurrent_clicks_open_one_session,
    an_expired_session_is_replaced,
    delayed_methods_succeed_or_fail,
    nothing_phi_like_reaches_stripe,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn property_on_the_embedded_store() {
    any_order_any_repetition_same_final_state(Arc::new(crate::support::kit::embedded_store()), 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn property_on_dynamodb() {
    let store = crate::support::kit::dynamodb_store("property").await;
    any_order_any_repetition_same_final_state(Arc::new(store), 2).await;
}

/// Stripe's own example `checkout.session` (fixtures3.json), carrying our ids,
/// wrapped in Stripe's own example event: the consumer applies it.
#[tokio::test]
async fn stripes_fixture_session_is_applied() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/stripe-fixtures/fixtures3.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: {} is absent (reference material outside the repo)", path.display());
        return;
    };
    let fixtures: Value = serde_json::from_str(&text).unwrap();
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    checkout::open(&deps, &token).await.unwrap();

    let mut session = fixtures["resources"]["checkout.session"].clone();
    session["metadata"] = json!({"visitpay_action_id": action.action_id().as_str(), "visitpay_clinic_id": "c1"});
    session["client_reference_id"] = json!(action.action_id().as_str());
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    // What Stripe would say it charged for this action.
    (session["amount_total"], session["currency"], session["mode"]) = (json!(1000), json!("cad"), json!("payment"));
    let mut event = fixtures["resources"]["event"].clone();
    event["type"] = json!("checkout.session.completed");
    event["account"] = json!(ACCOUNT);
    event["data"] = json!({ "object": session });
    assert_eq!(apply_stripe_event(&deps, &event.to_string()).await.unwrap(), Outcome::Applied);
    let paid = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(paid.status(), ActionStatus::Paid);
    assert_eq!(paid.history().entries().last().unwrap().actor, format!("stripe:{}", event["id"].as_str().unwrap()));

    // The same session completed on another connected account is not this
    // action's payment, nor this clinic's money: recorded apart (with its
    // account, amount and session) and alarmed on; the action is untouched.
    event["account"] = json!("acct_1SomeoneElse");
    event["id"] = json!("evt_other_account");
    session["id"] = json!("cs_test_other_account");
    event["data"] = json!({ "object": session });
    assert_eq!(apply_stripe_event(&deps, &event.to_string()).await.unwrap(), Outcome::Stray);
    assert_eq!(actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap(), paid);
    let stray = deps.store.find_stray_payment(&sid("cs_test_other_account")).await.unwrap().unwrap();
    assert_eq!(
        (stray.account.as_deref(), stray.amount, &stray.action_id, stray.reason.contains("acct_1SomeoneElse")),
        (Some("acct_1SomeoneElse"), Some(1000), action.action_id(), true)
    );
    assert_eq!(apply_stripe_event(&deps, &event.to_string()).await.unwrap(), Outcome::Unchanged, "recorded once");
    // An expiry from that account is not about this action at all.
    event["type"] = json!("checkout.session.expired");
    event["id"] = json!("evt_other_account_expired");
    assert!(matches!(apply_stripe_event(&deps, &event.to_string()).await.unwrap(), Outcome::Ignored(_)));
    assert_eq!(actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap(), paid);
}

/// The verifier agrees with Stripe's official library (signatures made by
/// `scripts/stripe_signatures.py`), through the webhook handler, and only
/// accepted deliveries reach the queue.
#[tokio::test]
async fn webhook_signatures_match_stripes_library() {
    let path = std::env::var("VISITPAY_STRIPE_SIGNATURES")
        .expect("VISITPAY_STRIPE_SIGNATURES is not set: run the tests with scripts/test");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut deps, _) = crate::support::kit::deps_with(Arc::new(crate::support::kit::embedded_store()));
    deps.clock = Arc::new(crate::support::kit::FixedClock::at_unix(cases["now"].as_i64().unwrap()));
    deps.config.webhook_secrets = vec![cases["secret"].as_str().unwrap().to_owned().into()];
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    deps.queue = queue.clone();

    let expected = [
        ("valid", 200),
        ("wrong_secret", 400),
        ("tampered_body", 400),
        ("stale_10_minutes", 400),
        ("several_v1", 200),
        ("v0_only", 400),
        ("no_header", 400),
    ];
    let mut accepted = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let want = expected.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(case["library_accepts"].as_bool().unwrap(), want == 200, "{name}: the reference disagrees with us");
        let mut event: Value = serde_json::from_str(include_str!("../events/stripe-webhook.json")).unwrap();
        event["body"] = json!(case["payload"]);
        event["isBase64Encoded"] = json!(false);
        let headers = event["headers"].as_object_mut().unwrap();
        headers.remove("stripe-signature");
        if let Some(h) = case["header"].as_str() {
            headers.insert("stripe-signature".into(), json!(h));
        }
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response =
            visitpay_edge::http::handle(&deps, visitpay_edge::http::functions::Function::StripeWebhook, request).await;
        assert_eq!(response.status().as_u16(), want, "{name}");
        if want == 200 {
            accepted += 1;
        }
        assert_eq!(queue.depth(), accepted, "{name}: only verified events are queued");
    }
}

/// A signature timestamp at the very end of i64 is stale (400), never an
/// overflow: a debug build (as these tests are) would panic on `now - t`.
#[tokio::test]
async fn extreme_signature_timestamps_are_stale_not_a_crash() {
    let (deps, _) = crate::support::kit::deps_with(Arc::new(crate::support::kit::embedded_store()));
    for t in ["-9223372036854775808", "9223372036854775807"] {
        let mut event: Value = serde_json::from_str(include_str!("../events/stripe-webhook.json")).unwrap();
        event["headers"]["stripe-signature"] =
            json!(format!("t={t},v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"));
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response =
            visitpay_edge::http::handle(&deps, visitpay_edge::http::functions::Function::StripeWebhook, request).await;
        let (status, body) = crate::support::status_and_json(&response);
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("stale_signature")), "t={t}");
    }
}
