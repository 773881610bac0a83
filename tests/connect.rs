//! A clinic onboarded with Stripe and its payouts, on both stores, through
//! the real Stripe client and the emulator: the account Stripe makes, its
//! onboarding link, what `account.updated` says of it deciding whether
//! payments can be taken, and a payout traced line by line to the invoices
//! it paid, reconciling to the cent in JSON and CSV.

use serde_json::{json, Value};

use visitpay_app::accounts::{self, HealthApplied};
use visitpay_app::ports::MoneySignal;
use visitpay_app::{payouts, settings, AppError};
use visitpay_domain::{ActionStatus, DomainError, PayoutLineKind, PayoutStatus, StripeAccountId};

use crate::support::kit;
use crate::support::*;

fn restricted(e: AppError) -> bool {
    matches!(e, AppError::Domain(DomainError::StripeAccountRestricted))
}

/// Settings for clinic `c` without an account (support fills them in first).
async fn settings_without_account(deps: &TestDeps, c: &str) {
    let mut input = settings_input(false, "cad");
    input.stripe_account_id = None;
    settings::put(deps, &support(), clinic(c), input).await.unwrap();
}

/// Applies every event of `account` the emulator recorded, as the consumer would.
async fn deliver_account_events(deps: &TestDeps, stripe: &StripeFixture, account: &str) {
    for e in stripe.events_of(account, 100).await {
        apply_stripe_event(deps, &e.to_string()).await.unwrap();
    }
}

/// Support onboards a clinic: Stripe makes its account (it can take nothing
/// yet), the link leads to Stripe's hosted onboarding and back to the
/// support page; payments cannot be switched on until `account.updated`
/// says the account can charge. A second start reuses the account.
async fn onboarding_makes_the_account_and_payments_wait_for_stripe(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    settings_without_account(&deps, "c1").await;
    let started = accounts::start_onboarding(&deps, &support(), &clinic("c1")).await.unwrap();
    assert!(started.url.starts_with(&format!("{}/connect/onboarding/", stripe.base)), "{}", started.url);
    let account = started.account_id.clone();
    let shown = settings::get(&deps, &clinic("c1")).await.unwrap();
    assert_eq!(shown.settings.stripe_account_id.as_ref(), Some(&account), "the account id comes from Stripe");
    let health = shown.account.expect("what Stripe said of it");
    assert!(!health.charges_enabled && health.requirements_due.contains(&"external_account".to_owned()));
    // Stripe's request: the Standard-like controller properties, one account per clinic.
    let created = stripe.emulator.requests().into_iter().find(|r| r["path"] == "/v1/accounts").unwrap();
    assert_eq!(created["params"]["controller"]["stripe_dashboard"]["type"], "full");
    assert_eq!(created["params"]["controller"]["requirement_collection"], "stripe");
    assert_eq!(created["idempotency_key"], "visitpay-account-c1");
    let link = stripe.emulator.requests().into_iter().find(|r| r["path"] == "/v1/account_links").unwrap();
    assert_eq!(link["params"]["return_url"], format!("{}?clinic=c1&onboarding=return", kit::ONBOARDING_PAGE));
    assert_eq!(link["params"]["refresh_url"], format!("{}?clinic=c1&onboarding=refresh", kit::ONBOARDING_PAGE));

    // Switching payments on is refused while the account cannot charge.
    let mut on = settings_input(true, "cad");
    on.stripe_account_id = Some(account.as_str().to_owned());
    let refused = settings::put(&deps, &support(), clinic("c1"), on.clone()).await.unwrap_err();
    assert!(restricted(refused));
    assert!(!settings::get(&deps, &clinic("c1")).await.unwrap().settings.enabled, "nothing changed");

    // The clinic completes Stripe's page; account.updated reaches the consumer.
    stripe
        .control(
            &format!("/test/accounts/{}/status", account.as_str()),
            json!({"charges_enabled": true, "payouts_enabled": true, "details_submitted": true, "requirements_due": [], "disabled_reason": null}),
        )
        .await;
    deliver_account_events(&deps, &stripe, account.as_str()).await;
    let now_ready = settings::get(&deps, &clinic("c1")).await.unwrap().account.unwrap();
    assert!(now_ready.charges_enabled && now_ready.requirements_due.is_empty());
    settings::put(&deps, &support(), clinic("c1"), on).await.unwrap();

    // Starting again continues the same account, with a new link.
    let again = accounts::start_onboarding(&deps, &support(), &clinic("c1")).await.unwrap();
    assert_eq!(again.account_id, account);
    assert_ne!(again.url, started.url, "a link is single use");
    let made = stripe.emulator.requests().into_iter().filter(|r| r["path"] == "/v1/accounts").count();
    assert_eq!(made, 1);
}

/// Stripe restricts the account: a new assignment and a patient's checkout
/// answer `stripe_account_restricted` and change nothing; an older
/// `account.updated` arriving late changes nothing either; once Stripe lifts
/// it, payments go on.
async fn a_restricted_account_takes_no_new_payment(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let (open, token) = assigned_action(&deps, "c1", &[("1", 4500, "Consultation")]).await;
    let restrict = json!({"charges_enabled": false, "payouts_enabled": false,
        "requirements_due": ["individual.verification.document"], "disabled_reason": "requirements.past_due"});
    stripe.control(&format!("/test/accounts/{ACCOUNT}/status"), restrict).await;
    deliver_all(&deps, &stripe).await;
    let shown = settings::get(&deps, &clinic("c1")).await.unwrap().account.unwrap();
    assert_eq!(shown.disabled_reason.as_deref(), Some("requirements.past_due"));
    // A new assignment: refused, its invoice still selected.
    import(&deps, "c1", "p1", "2", 3000, "cad").await;
    visitpay_app::invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["2"])).await.unwrap();
    let request = visitpay_app::actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["2"]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    let refused = visitpay_app::actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v2"),
        request.clone(),
        None,
        first_answer,
    )
    .await
    .unwrap_err();
    assert!(restricted(refused));
    assert_eq!(invoice_states(&deps, "c1", "p1").await["2"], visitpay_domain::InvoiceStatus::Selected);
    // The patient's checkout: refused before Stripe is asked.
    let sessions_before = stripe.emulator.requests().iter().filter(|r| r["path"] == "/v1/checkout/sessions").count();
    assert!(restricted(visitpay_app::checkout::open(&deps, &token).await.unwrap_err()));
    let sessions_after = stripe.emulator.requests().iter().filter(|r| r["path"] == "/v1/checkout/sessions").count();
    assert_eq!(sessions_before, sessions_after);
    assert_eq!(action_of(&deps, "c1", open.action_id()).await.status(), ActionStatus::Assigned);

    // An older word (events come in any order) changes nothing.
    let older = visitpay_domain::AccountHealth::new(
        StripeAccountId::parse(ACCOUNT).unwrap(),
        true,
        true,
        true,
        Vec::new(),
        None,
        shown.as_of - time::Duration::minutes(5),
    );
    assert_eq!(accounts::apply_health(&deps, older).await.unwrap(), HealthApplied::Stale);
    // Stripe lifts the restriction: payments go on.
    let lift =
        json!({"charges_enabled": true, "payouts_enabled": true, "requirements_due": [], "disabled_reason": null});
    stripe.control(&format!("/test/accounts/{ACCOUNT}/status"), lift).await;
    deliver_all(&deps, &stripe).await;
    visitpay_app::actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v2"), request, None, first_answer)
        .await
        .unwrap();
    visitpay_app::checkout::open(&deps, &token).await.unwrap();
}

/// Two clinics of one business share an account: Stripe's word on it
/// reaches both (each refuses payments while it cannot charge).
async fn a_shared_accounts_word_reaches_every_clinic(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    enable_clinic(&deps, "c1").await;
    enable_clinic(&deps, "c2").await;
    let restrict = json!({"charges_enabled": false, "disabled_reason": "under_review"});
    stripe.control(&format!("/test/accounts/{ACCOUNT}/status"), restrict).await;
    deliver_all(&deps, &stripe).await;
    for c in ["c1", "c2"] {
        let health = settings::get(&deps, &clinic(c)).await.unwrap().account.unwrap();
        assert_eq!((health.charges_enabled, health.disabled_reason.as_deref()), (false, Some("under_review")), "{c}");
    }
}

/// Three payments, a partial refund of the first and a lost dispute of the
/// third, then a payout: every line traced to its action and invoices, the
/// Stripe fees kept, the lines adding up to the payout to the cent, in
/// JSON and in CSV; a failed payout raises its alarm.
async fn a_payout_reconciles_to_the_cent(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, clock) = deps_for_payments(store, &stripe, None);
    let metrics = kit::record_metrics(&mut deps);
    let a = paid_action(&deps, &stripe, "c1", &[("a1", 4500, "Consultation"), ("a2", 2000, "Suivi")]).await;
    let (b_action, b_token) = assigned_second(&deps, "b1", 3000).await;
    let b_session = open_checkout(&deps, "c1", b_action.action_id(), &b_token).await;
    stripe.pay(&b_session, "succeeded").await;
    let (c_action, c_token) = assigned_second(&deps, "c1", 10000).await;
    let c_session = open_checkout(&deps, "c1", c_action.action_id(), &c_token).await;
    stripe.pay(&c_session, "succeeded").await;
    deliver_all(&deps, &stripe).await;
    visitpay_app::actions::refund(&deps, &staff("c1"), &clinic("c1"), a.action_id(), Some(1000)).await.unwrap();
    let c_paid = action_of(&deps, "c1", c_action.action_id()).await;
    let dispute = stripe.dispute(c_paid.payment_intent_id().unwrap()).await;
    let dispute_id = dispute["id"].as_str().unwrap().to_owned();
    stripe.control(&format!("/test/disputes/{dispute_id}/close"), json!({"status": "lost"})).await;
    deliver_all(&deps, &stripe).await;

    let made = stripe.control("/test/payouts", json!({"account": ACCOUNT})).await;
    let payout_id = made["payouts"][0]["id"].as_str().unwrap().to_owned();
    deliver_all(&deps, &stripe).await;
    let (payout, lines) = payouts::get(&deps, &clinic("c1"), &payout_id).await.unwrap();
    // Stripe's fee: 2.9% + 30¢ of each payment; the lost dispute withdraws the
    // amount and Stripe's C$15 fee.
    let fee = |amount: i64| (amount * 29 + 500) / 1000 + 30;
    let expected = (6500 - fee(6500)) + (3000 - fee(3000)) + (10000 - fee(10000)) - 1000 - 10000 - 1500;
    assert_eq!((payout.amount, payout.lines_net, payout.status), (expected, expected, PayoutStatus::Paid));
    assert!(payout.reconciles());
    let kinds: Vec<PayoutLineKind> = lines.iter().map(|l| l.kind).collect();
    for kind in
        [PayoutLineKind::Charge, PayoutLineKind::Refund, PayoutLineKind::DisputeWithdrawal, PayoutLineKind::Payout]
    {
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == PayoutLineKind::Charge).count(), 3);
    let line_of = |kind: PayoutLineKind, action: &visitpay_domain::ActionId| {
        lines
            .iter()
            .find(|l| l.kind == kind && l.action_id.as_ref() == Some(action))
            .unwrap_or_else(|| panic!("{kind:?} of {action}"))
    };
    let a_charge = line_of(PayoutLineKind::Charge, a.action_id());
    assert_eq!((a_charge.gross, a_charge.fee, a_charge.net), (6500, fee(6500), 6500 - fee(6500)));
    assert_eq!(a_charge.invoice_ids, ids(&["a1", "a2"]), "the invoices the payment settled");
    assert_eq!(line_of(PayoutLineKind::Refund, a.action_id()).net, -1000);
    let withdrawal = line_of(PayoutLineKind::DisputeWithdrawal, c_action.action_id());
    assert_eq!((withdrawal.gross, withdrawal.fee, withdrawal.net), (-10000, 1500, -11500));
    assert_eq!(line_of(PayoutLineKind::Charge, b_action.action_id()).invoice_ids, ids(&["b1"]));
    let own = lines.iter().find(|l| l.kind == PayoutLineKind::Payout).unwrap();
    assert_eq!((own.net, own.action_id.as_ref()), (-expected, None));

    // Through the API: JSON and CSV, both adding up.
    let staff_claims = claims("staff-1", "c1", "staff");
    let path = format!("/clinics/c1/payouts/{payout_id}");
    let json_answer = payouts_call(&deps, &path, &staff_claims, "application/json").await;
    let net: i64 = json_answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] != "payout")
        .map(|l| l["net"].as_i64().unwrap())
        .sum();
    assert_eq!(
        (net, json_answer["amount"].as_i64(), json_answer["reconciles"].as_bool()),
        (expected, Some(expected), Some(true))
    );
    let csv = payouts_csv(&deps, &path, &staff_claims).await;
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("date,type,action_id,invoice_ids,gross,fee,net,currency,transaction_id"));
    let cents = |s: &str| -> i64 {
        let (units, fraction) = s.trim_start_matches('-').split_once('.').unwrap();
        let value = units.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap();
        if s.starts_with('-') {
            -value
        } else {
            value
        }
    };
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), lines.len());
    let csv_net: i64 = rows.iter().filter(|r| r[1] != "payout").map(|r| cents(r[6])).sum();
    assert_eq!(csv_net, expected, "the CSV adds up too");
    assert!(rows.iter().any(|r| r[1] == "charge" && r[2] == a.action_id().as_str() && r[3] == "a1;a2"), "{csv}");
    // Another clinic's staff learn nothing of it.
    let other = payouts_status(&deps, &path, &claims("staff-9", "c9", "staff")).await;
    assert_eq!(other, 404);

    // A payout that fails raises its alarm; listing shows both, newest first.
    clock.advance(3600);
    let d = paid_action_named(&deps, &stripe, "d1", 5000).await;
    assert_eq!(d.status(), ActionStatus::Paid);
    stripe.control("/test/payouts", json!({"account": ACCOUNT, "fail": true})).await;
    deliver_all(&deps, &stripe).await;
    let failed = metrics.signals().iter().filter(|(s, _)| *s == MoneySignal::PayoutFailed).count();
    assert_eq!(failed, 1);
    let page = payouts::list(&deps, &clinic("c1"), 1, None).await.unwrap();
    assert_eq!(page.payouts[0].status, PayoutStatus::Failed);
    let next = payouts::list(&deps, &clinic("c1"), 1, page.next.as_deref()).await.unwrap();
    assert_eq!((next.payouts[0].payout_id.as_str(), next.next.is_none()), (payout_id.as_str(), true));
    // A payout event delivered again changes nothing.
    deliver_all(&deps, &stripe).await;
    assert_eq!(metrics.signals().iter().filter(|(s, _)| *s == MoneySignal::PayoutFailed).count(), 1);
    assert!(metrics.signals().iter().all(|(s, _)| *s != MoneySignal::PayoutMismatch), "every payout reconciled");
}

/// A second action of clinic c1 (its settings already in place).
async fn assigned_second(deps: &TestDeps, invoice: &str, amount: i64) -> (StoredAction, String) {
    import(deps, "c1", "p1", invoice, amount, "cad").await;
    visitpay_app::invoices::select(deps, &clinic("c1"), &patient("p1"), &ids(&[invoice])).await.unwrap();
    let request = visitpay_app::actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&[invoice]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    match visitpay_app::actions::assign(deps, &staff("c1"), &clinic("c1"), &visit(invoice), request, None, first_answer)
        .await
        .unwrap()
    {
        visitpay_app::actions::Assigned::Created { action, patient_url } => {
            (action, patient_url.rsplit('/').next().unwrap().to_owned())
        }
        other => panic!("{other:?}"),
    }
}

async fn paid_action_named(deps: &TestDeps, stripe: &StripeFixture, invoice: &str, amount: i64) -> StoredAction {
    let (action, token) = assigned_second(deps, invoice, amount).await;
    let session = open_checkout(deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    deliver_all(deps, stripe).await;
    action_of(deps, "c1", action.action_id()).await
}

fn payouts_request(path: &str, claims: &Value, accept: &str) -> lambda_http::Request {
    api_request("GET", path, Some(claims), &[("accept", accept)], None)
}

async fn payouts_call(deps: &TestDeps, path: &str, claims: &Value, accept: &str) -> Value {
    let response = visitpay_edge::http::functions::payouts(deps, payouts_request(path, claims, accept)).await;
    let (status, body) = status_and_json(&response);
    assert_eq!(status, 200, "{body}");
    body
}

async fn payouts_status(deps: &TestDeps, path: &str, claims: &Value) -> u16 {
    let response =
        visitpay_edge::http::functions::payouts(deps, payouts_request(path, claims, "application/json")).await;
    response.status().as_u16()
}

async fn payouts_csv(deps: &TestDeps, path: &str, claims: &Value) -> String {
    let response = visitpay_edge::http::functions::payouts(deps, payouts_request(path, claims, "text/csv")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    match response.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("a CSV body: {other:?}"),
    }
}

on_both_stores!(
    onboarding_makes_the_account_and_payments_wait_for_stripe,
    a_restricted_account_takes_no_new_payment,
    a_shared_accounts_word_reaches_every_clinic,
    a_payout_reconciles_to_the_cent,
);
