//! End to end through the real `visitpay-local` binary: started as a user
//! would start it, driven over HTTP with the tokens it prints.

use std::process::Command;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

mod common;
use common::*;

#[tokio::test]
async fn the_staff_flow_through_the_local_run() {
    let local = start();
    let c = Client::new();
    let u = &local.base;
    let (staff, support) = (Some(local.staff.as_str()), Some(local.support.as_str()));

    // An account Stripe does not know (not connected to the platform) is
    // refused, and nothing changes.
    let unknown = json!({"enabled": true, "label": {"en": "Pay the clinic", "fr": "Payer la clinique"},
        "stripe_account_id": "acct_1E2e", "currency": "cad"});
    let (s, b) = call(&c, "PUT", format!("{u}/clinics/demo-clinic/payment-settings"), support, Some(unknown)).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "stripe_account_unknown"), "{b}");
    let (_, kept) = call(&c, "GET", format!("{u}/clinics/demo-clinic/payment-settings"), support, None).await;
    assert_eq!(kept["stripe_account_id"], "acct_1DemoClinic", "the seeded account stays");

    // Support switches the clinic on and sets its label, on the clinic's
    // account once it is connected to the platform.
    let res = c.post(format!("{u}/stripe/test/accounts")).json(&json!({"id": "acct_1E2e"})).send().await.unwrap();
    assert!(res.status().is_success());
    let settings = json!({"enabled": true, "label": {"en": "Pay the clinic", "fr": "Payer la clinique"},
        "stripe_account_id": "acct_1E2e", "currency": "cad", "action_ttl_hours": 48});
    let (s, b) =
        call(&c, "PUT", format!("{u}/clinics/demo-clinic/payment-settings"), support, Some(settings.clone())).await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(true)), "{b}");
    let (s, _) = call(&c, "PUT", format!("{u}/clinics/demo-clinic/payment-settings"), staff, Some(settings)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "staff on a support route");

    // Staff import invoices and list the unprocessed ones.
    let diagnosis = "Suivi dépression majeure — renouvellement";
    let inv = json!({"amount": 2500, "currency": "cad", "description": diagnosis, "service_date": "2026-11-25"});
    let (s, _) = call(&c, "PUT", format!("{u}/patients/demo-patient/invoices/2001"), staff, Some(inv)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices?status=unprocessed"), staff, None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<String> = statuses(&b).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec!["1042", "1043", "1044", "2001"]);

    // "Make a payment".
    let (s, b) = call(
        &c,
        "POST",
        format!("{u}/patients/demo-patient/invoices/select"),
        staff,
        Some(json!({"invoice_ids": ["1042", "2001"]})),
    )
    .await;
    assert_eq!((s, &b["total"]), (StatusCode::OK, &json!({"amount": 7000, "currency": "cad"})));

    // Assign in the visit.
    let (s, action) = call(
        &c,
        "POST",
        format!("{u}/visits/demo-visit/actions"),
        staff,
        Some(json!({"patient_id": "demo-patient", "invoice_ids": ["1042", "2001"], "locale": "en-CA"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{action}");
    assert_eq!(
        (action["label"].as_str(), action["amount"].as_i64(), action["status"].as_str()),
        (Some("Pay the clinic"), Some(7000), Some("assigned"))
    );
    let link = action["patient_url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("{u}/patient/actions/")));
    let token = link.rsplit('/').next().unwrap().to_owned();
    let action_id = action["action_id"].as_str().unwrap().to_owned();

    let (s, b) = call(&c, "GET", link.clone(), None, None).await;
    assert_eq!(
        (s, &b),
        (
            StatusCode::OK,
            &json!({"label": "Pay the clinic", "amount": 7000, "currency": "cad", "status": "assigned", "locale": "en-CA"})
        )
    );
    let (s, _) = call(&c, "GET", format!("{u}/patient/actions/{}", "A".repeat(43)), None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, b) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), staff, None).await;
    let st = statuses(&b);
    assert!(
        st.contains(&("1042".into(), "pending".into())) && st.contains(&("2001".into(), "pending".into())),
        "{st:?}"
    );

    let (s, b) = call(&c, "GET", format!("{u}/visits/demo-visit/actions"), staff, None).await;
    assert_eq!((s, b["actions"][0]["action_id"].as_str()), (StatusCode::OK, Some(action_id.as_str())));

    // Clinic B sees nothing of clinic A.
    let other = mint("other-clinic", "staff");
    for (m, path) in [
        ("GET", format!("/actions/{action_id}")),
        ("POST", format!("/actions/{action_id}/cancel")),
        ("GET", "/clinics/demo-clinic/payment-settings".into()),
    ] {
        let (s, b) = call(&c, m, format!("{u}{path}"), Some(&other), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}: {b}");
    }
    let (_, b) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&other), None).await;
    assert!(b["invoices"].as_array().unwrap().is_empty());

    // Cancel puts the invoices back to selected.
    let (s, b) = call(&c, "POST", format!("{u}/actions/{action_id}/cancel"), staff, None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (_, b) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices?status=selected"), staff, None).await;
    assert_eq!(statuses(&b).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["1042", "2001"]);
    let (_, b) = call(&c, "GET", format!("{u}/actions/{action_id}"), staff, None).await;
    let history: Vec<&str> = b["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap()).collect();
    assert_eq!(history, vec!["assigned", "cancelled"]);

    // Support switches the clinic off: assign is refused.
    let off = json!({"enabled": false, "label": {"en": "Pay", "fr": "Payer"}, "currency": "cad"});
    call(&c, "PUT", format!("{u}/clinics/demo-clinic/payment-settings"), support, Some(off)).await;
    let (s, b) = call(
        &c,
        "POST",
        format!("{u}/visits/demo-visit/actions"),
        staff,
        Some(json!({"patient_id": "demo-patient", "invoice_ids": ["1042"]})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "payments_disabled"));

    // No token, a bad token, a token signed with another secret: 401.
    let forged = local.staff.rsplit_once('.').unwrap().0.to_owned() + ".AAAA";
    for t in [None, Some("not-a-jwt"), Some(forged.as_str())] {
        let (s, b) = call(&c, "GET", format!("{u}/actions/{action_id}"), t, None).await;
        assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    }

    // Bad input: 400/413 with a code.
    let (s, b) = c
        .post(format!("{u}/patients/demo-patient/invoices/select"))
        .bearer_auth(&local.staff)
        .body("{not json")
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let b: Value = b.json().await.unwrap();
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let big = json!({"invoice_ids": ["x".repeat(70_000)]});
    let (s, b) = call(&c, "POST", format!("{u}/patients/demo-patient/invoices/select"), staff, Some(big)).await;
    assert_eq!((s, code(&b)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let (s, b) = call(&c, "GET", format!("{u}/actions/bad.id"), staff, None).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_id"));
    let (s, b) = call(
        &c,
        "PUT",
        format!("{u}/patients/demo-patient/invoices/2002"),
        staff,
        Some(json!({"amount": -1, "currency": "cad", "service_date": "2026-01-01"})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_amount"));
    let (s, b) = call(
        &c,
        "PUT",
        format!("{u}/patients/demo-patient/invoices/2002"),
        staff,
        Some(json!({"amount": 100, "currency": "doge", "service_date": "2026-01-01"})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_currency"));
    let (s, b) = call(&c, "GET", format!("{u}/no/such/route"), staff, None).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "route_not_found"));

    // The logs carry request ids and routes but no secrets or health data.
    let logs = local.logs.lock().unwrap().clone();
    assert!(logs.contains("\"route\":\"POST /visits/{visit_id}/actions\"") && logs.contains("request_id"), "{logs}");
    for secret in [local.staff.as_str(), local.support.as_str(), token.as_str(), diagnosis, "Follow-up consultation"] {
        assert!(!logs.contains(secret), "logs leak {secret:.12}…");
    }
}

#[tokio::test]
async fn twenty_concurrent_assigns_through_the_local_run() {
    let local = start();
    let c = Client::new();
    let u = &local.base;
    let staff = local.staff.clone();
    let names: Vec<String> = (0..8).map(|n| format!("c{n}")).collect();
    for n in &names {
        let (s, _) = call(
            &c,
            "PUT",
            format!("{u}/patients/demo-patient/invoices/{n}"),
            Some(&staff),
            Some(json!({"amount": 1000, "currency": "cad", "service_date": "2026-11-26"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, _) = call(
        &c,
        "POST",
        format!("{u}/patients/demo-patient/invoices/select"),
        Some(&staff),
        Some(json!({"invoice_ids": names})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (c, u, staff) = (c.clone(), u.clone(), staff.clone());
            let pick = vec![format!("c{}", i % 8), format!("c{}", (i + 1) % 8), format!("c{}", (i + 3) % 8)];
            tokio::spawn(async move {
                call(
                    &c,
                    "POST",
                    format!("{u}/visits/v-{i}/actions"),
                    Some(&staff),
                    Some(json!({"patient_id": "demo-patient", "invoice_ids": pick})),
                )
                .await
            })
        })
        .collect();
    let mut held: std::collections::HashMap<String, String> = Default::default();
    let mut created = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => {
                created += 1;
                for inv in b["invoice_ids"].as_array().unwrap() {
                    let prev =
                        held.insert(inv.as_str().unwrap().to_owned(), b["action_id"].as_str().unwrap().to_owned());
                    assert!(prev.is_none(), "{inv} assigned twice");
                }
            }
            StatusCode::CONFLICT => assert!(matches!(code(&b), "invoice_pending" | "concurrent_update"), "{b}"),
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert!(created >= 1);
    let (_, b) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    for i in b["invoices"].as_array().unwrap().iter().filter(|i| i["invoice_id"].as_str().unwrap().starts_with('c')) {
        let id = i["invoice_id"].as_str().unwrap();
        match held.get(id) {
            Some(a) => assert_eq!((i["status"].as_str(), i["action_id"].as_str()), (Some("pending"), Some(a.as_str()))),
            None => assert_eq!(i["status"], "selected"),
        }
    }
}

#[test]
fn the_token_command_validates_its_flags() {
    let bin = env!("CARGO_BIN_EXE_visitpay-local");
    for args in [
        vec!["token"],
        vec!["token", "--clinic", "c1"],
        vec!["token", "--clinic", "c#1", "--role", "staff"],
        vec!["token", "--clinic", "c1", "--role", "admin"],
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    let t = mint("c1", "support");
    assert_eq!(t.split('.').count(), 3, "a bare JWT on stdout");
}

async fn wait_for_status(c: &Client, u: &str, staff: &str, action_id: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, b) = call(c, "GET", format!("{u}/actions/{action_id}"), Some(staff), None).await;
        if b["status"] == want {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "action never became {want}: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Assigns an action for freshly imported invoices; returns (action id, patient link).
async fn assign_fresh(c: &Client, u: &str, staff: &str, prefix: &str) -> (String, String) {
    let ids: Vec<String> = (0..2).map(|n| format!("{prefix}{n}")).collect();
    for id in &ids {
        let body =
            json!({"amount": 1250, "currency": "cad", "description": "Consultation", "service_date": "2026-11-26"});
        let (s, _) = call(c, "PUT", format!("{u}/patients/demo-patient/invoices/{id}"), Some(staff), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    call(
        c,
        "POST",
        format!("{u}/patients/demo-patient/invoices/select"),
        Some(staff),
        Some(json!({"invoice_ids": ids})),
    )
    .await;
    let (s, a) = call(
        c,
        "POST",
        format!("{u}/visits/demo-visit/actions"),
        Some(staff),
        Some(json!({"patient_id": "demo-patient", "invoice_ids": ids})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    (a["action_id"].as_str().unwrap().to_owned(), a["patient_url"].as_str().unwrap().to_owned())
}

fn invoice_statuses(list: &Value, prefix: &str) -> Vec<String> {
    list["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["invoice_id"].as_str().unwrap().starts_with(prefix))
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_patient_pays_through_the_local_run() {
    let local = start();
    let c = Client::new();
    let u = local.base.clone();
    let staff = local.staff.clone();

    let mut links = Vec::new();
    for (prefix, outcome, final_status, invoice_status) in [
        ("pay", "succeeded", "paid", "paid"),
        ("late", "delayed_succeeded", "paid", "paid"),
        ("fail", "delayed_failed", "failed", "selected"),
    ] {
        let (action_id, link) = assign_fresh(&c, &u, &staff, prefix).await;
        let (s, page) = call(&c, "GET", link.clone(), None, None).await;
        assert_eq!((s, page["status"].as_str()), (StatusCode::OK, Some("assigned")));

        // Clicking pay twice, at once: one session.
        let (a, b) = tokio::join!(
            call(&c, "POST", format!("{link}/checkout"), None, None),
            call(&c, "POST", format!("{link}/checkout"), None, None)
        );
        assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{} {}", a.1, b.1);
        assert_eq!(a.1["checkout_url"], b.1["checkout_url"]);
        let checkout_url = a.1["checkout_url"].as_str().unwrap().to_owned();
        assert!(checkout_url.starts_with(&format!("{u}/stripe/checkout/cs_")), "{checkout_url}");
        let session_id = checkout_url.rsplit('/').next().unwrap().to_owned();

        // The hosted page shows the amount; the control call pays, and the
        // emulator sends signed webhooks to this very server.
        let html = c.get(&checkout_url).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("25,00") || html.contains("25.00"), "the page shows the total");
        let res = c
            .post(format!("{u}/stripe/test/checkout_sessions/{session_id}/pay"))
            .json(&json!({"outcome": outcome, "send_webhooks": true}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());

        let action = wait_for_status(&c, &u, &staff, &action_id, final_status).await;
        assert_eq!(action["checkout_session_id"], session_id.as_str());
        let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
        assert_eq!(invoice_statuses(&list, prefix), vec![invoice_status, invoice_status], "{outcome}");
        let (_, page) = call(&c, "GET", link.clone(), None, None).await;
        assert_eq!(page["status"], final_status);
        links.push(link);
    }
    // One clock for the whole run: after the clock moves two hours, the
    // emulator signs its webhooks with the time the webhook checks them
    // against (Stripe's tolerance is five minutes), so they still land.
    let res = c.post(format!("{u}/_local/clock/advance")).json(&json!({"seconds": 2 * 3600})).send().await.unwrap();
    assert!(res.status().is_success());
    let (action_id, link) = assign_fresh(&c, &u, &staff, "later").await;
    let session_id = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session_id, "succeeded", true).await.is_success());
    let action = wait_for_status(&c, &u, &staff, &action_id, "paid").await;
    let by = action["history"].as_array().unwrap().last().unwrap()["actor"].as_str().unwrap().to_owned();
    assert!(by.starts_with("stripe:evt_"), "applied from the webhook, not found later by reconcile: {by}");

    let logs = local.logs.lock().unwrap().clone();
    assert!(logs.contains("\"event_type\":\"checkout.session.completed\""), "the consumer logs events");
    for link in &links {
        let token = link.rsplit('/').next().unwrap();
        assert!(!logs.contains(token), "a patient token leaked into the logs");
    }
}

async fn open_checkout(c: &Client, link: &str) -> String {
    let (s, b) = call(c, "POST", format!("{link}/checkout"), None, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["checkout_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

async fn pay(c: &Client, u: &str, session_id: &str, outcome: &str, send_webhooks: bool) -> StatusCode {
    c.post(format!("{u}/stripe/test/checkout_sessions/{session_id}/pay"))
        .json(&json!({"outcome": outcome, "send_webhooks": send_webhooks}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_lifecycle_through_the_local_run() {
    // Reconcile every second, for actions untouched for a second.
    let local = start_with(&[("VISITPAY_RECONCILE_INTERVAL_SECS", "1"), ("VISITPAY_RECONCILE_MIN_AGE_SECS", "1")]);
    let c = Client::new();
    let u = local.base.clone();
    let staff = local.staff.clone();

    // A missed webhook: reconcile finds the payment within two intervals.
    let (missed, link) = assign_fresh(&c, &u, &staff, "miss").await;
    let session = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session, "succeeded", false).await.is_success());
    let started = std::time::Instant::now();
    let action = wait_for_status(&c, &u, &staff, &missed, "paid").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(action["history"].as_array().unwrap().last().unwrap()["actor"], "reconcile");
    let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    assert_eq!(invoice_statuses(&list, "miss"), vec!["paid", "paid"]);

    // Cancel with an open session: expired at the emulator, invoices selected, paying refused.
    let (cancelled, link) = assign_fresh(&c, &u, &staff, "cncl").await;
    let session = open_checkout(&c, &link).await;
    let (s, b) = call(&c, "POST", format!("{u}/actions/{cancelled}/cancel"), Some(&staff), None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    assert_eq!(invoice_statuses(&list, "cncl"), vec!["selected", "selected"]);
    let at_stripe: Value = c
        .get(format!("{u}/stripe/v1/checkout/sessions/{session}"))
        .bearer_auth("sk_test_e2e")
        .header("Stripe-Account", "acct_1DemoClinic")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(at_stripe["status"], "expired");
    assert_eq!(pay(&c, &u, &session, "succeeded", true).await, StatusCode::BAD_REQUEST);
    let (s, b) = call(&c, "POST", format!("{link}/checkout"), None, None).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "action_closed"));

    // Refunds: two partials summing to the total, then nothing more; over what remains: 409.
    let (paid, link) = assign_fresh(&c, &u, &staff, "rfnd").await;
    let session = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session, "succeeded", true).await.is_success());
    wait_for_status(&c, &u, &staff, &paid, "paid").await;
    let refund = |amount: Option<i64>| {
        let body = amount.map(|a| json!({"amount": a}));
        call(&c, "POST", format!("{u}/actions/{paid}/refund"), Some(&staff), body)
    };
    let (s, b) = refund(Some(2600)).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "refund_exceeds_remaining"));
    let (s, b) = refund(Some(1000)).await;
    assert_eq!(
        (s, b["status"].as_str(), b["refunded_amount"].as_i64()),
        (StatusCode::OK, Some("partially_refunded"), Some(1000))
    );
    let (s, b) = refund(Some(1600)).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "refund_exceeds_remaining"));
    let (s, b) = refund(Some(1500)).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("refunded")));
    let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    assert_eq!(invoice_statuses(&list, "rfnd"), vec!["unprocessed", "unprocessed"], "owed again");
    let (s, b) = refund(None).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "not_refundable"));

    // A full refund in one call.
    let (full, link) = assign_fresh(&c, &u, &staff, "full").await;
    let session = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session, "succeeded", true).await.is_success());
    wait_for_status(&c, &u, &staff, &full, "paid").await;
    let (s, b) = call(&c, "POST", format!("{u}/actions/{full}/refund"), Some(&staff), None).await;
    assert_eq!(
        (s, b["status"].as_str(), b["refunded_amount"].as_i64()),
        (StatusCode::OK, Some("refunded"), Some(2500))
    );

    // An action older than its lifetime: expired by reconcile, invoices selected.
    let (old, _) = assign_fresh(&c, &u, &staff, "old").await;
    let res = c.post(format!("{u}/_local/clock/advance")).json(&json!({"seconds": 73 * 3600})).send().await.unwrap();
    assert!(res.status().is_success());
    let action = wait_for_status(&c, &u, &staff, &old, "expired").await;
    assert_eq!(action["history"].as_array().unwrap().last().unwrap()["actor"], "reconcile");
    let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    assert_eq!(invoice_statuses(&list, "old"), vec!["selected", "selected"]);

    // The run logs its counts once its catch-up (the demo account's event
    // log, 73 hours of it) is done too, which may be after the expiry shows.
    let reported =
        |logs: &str| logs.contains("\"message\":\"reconcile finished\"") && logs.contains("\"actions_expired\":1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !reported(&local.logs.lock().unwrap()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reported(&local.logs.lock().unwrap()), "reconcile reports counts");
}

/// The same binary on DynamoDB and SQS (moto, started by `scripts/test`):
/// the table and queues are created, the demo seeded, and a payment travels
/// webhook → SQS → poller → consumer.
#[tokio::test]
async fn the_local_run_on_dynamodb_and_sqs() {
    let envs = moto_envs("visitpay-e2e");
    let (table, queue) = (envs[4].1.clone(), envs[5].1.clone());
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let local = start_with(&envs);
    let c = Client::new();
    let u = local.base.clone();
    let staff = local.staff.clone();
    let (action_id, link) = assign_fresh(&c, &u, &staff, "ddb").await;
    let session = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session, "succeeded", true).await.is_success());
    let action = wait_for_status(&c, &u, &staff, &action_id, "paid").await;
    assert!(action["history"].as_array().unwrap().last().unwrap()["actor"]
        .as_str()
        .unwrap()
        .starts_with("stripe:evt_"));
    let (_, list) = call(&c, "GET", format!("{u}/patients/demo-patient/invoices"), Some(&staff), None).await;
    assert_eq!(invoice_statuses(&list, "ddb"), vec!["paid", "paid"]);
    assert!(local.store.contains(&format!("dynamodb table {table} and sqs queue {queue}")), "{}", local.store);
}

/// The clinic web app on its own origin: a preflight from a configured
/// origin gets the methods and headers API Gateway's CorsConfiguration
/// allows (the same lists, `http::cors`), and the answers carry the origin
/// and the headers a client reads; another origin gets no CORS header at all.
#[tokio::test]
async fn browsers_on_a_configured_origin_may_call_the_api() {
    let emr = "https://emr.example.test";
    let local = start_with(&[("VISITPAY_CORS_ORIGINS", emr)]);
    let client = Client::new();
    let url = format!("{}/visits/demo-visit/actions", local.base);
    let preflight = |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
            .send()
    };
    let allowed = preflight(emr).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some(emr));
    assert_eq!(header(&allowed, "access-control-allow-methods").as_deref(), Some("GET,POST,PUT"));
    let headers = header(&allowed, "access-control-allow-headers").unwrap();
    for needed in ["authorization", "content-type", "idempotency-key", "if-none-match"] {
        assert!(headers.split(',').any(|h| h == needed), "{needed} in {headers}");
    }
    let other = preflight("https://elsewhere.example.test").await.unwrap();
    assert!(
        other.headers().keys().all(|k| !k.as_str().starts_with("access-control-")),
        "another origin gets no CORS header: {:?}",
        other.headers()
    );

    let answer = client.get(&url).bearer_auth(&local.staff).header("origin", emr).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin").as_deref(), Some(emr));
    assert!(header(&answer, "access-control-expose-headers").unwrap().contains("idempotent-replayed"));
    let elsewhere = client.get(&url).bearer_auth(&local.staff).header("origin", "https://x.test").send().await.unwrap();
    assert!(header(&elsewhere, "access-control-allow-origin").is_none());
}

/// A staff member's event stream (`GET /_local/events`), read frame by frame.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(c: &Client, u: &str, token: &str, clinic: &str) -> EventStream {
        let response = c.get(format!("{u}/_local/events?clinic={clinic}")).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut stream = EventStream { response, buffer: String::new() };
        assert_eq!(stream.frame().await, ": connected", "the stream says it is connected first");
        stream
    }

    /// The next frame, without its trailing blank line.
    async fn frame(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return frame;
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(15), self.response.chunk())
                .await
                .expect("an event within 15 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next action event's (SSE id, data).
    async fn action(&mut self) -> (String, Value) {
        loop {
            let frame = self.frame().await;
            if frame.starts_with(':') {
                continue;
            }
            let field = |name: &str| {
                frame.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default().to_owned()
            };
            assert_eq!(field("event:"), "action", "{frame}");
            return (field("id:"), serde_json::from_str(&field("data:")).unwrap());
        }
    }
}

/// An EMR prototype's endpoint for `VISITPAY_LOCAL_EVENTS_URL`: what it was
/// POSTed, with the signature header.
async fn event_sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let signature = headers.get("visitpay-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                sink.lock().unwrap().push((signature.to_owned(), body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

const EVENTS_SECRET: &str = "emr_prototype_secret";

/// Staff see an action's changes live, in order, and the EMR prototype's
/// endpoint gets the same as EventBridge would deliver them, signed.
async fn status_events_reach_staff_and_the_emr(local: &Local, sink: &std::sync::Mutex<Vec<(String, String)>>) {
    let c = Client::new();
    let u = local.base.clone();
    let staff = local.staff.clone();
    // Only this clinic's staff.
    let (s, b) = call(&c, "GET", format!("{u}/_local/events?clinic=demo-clinic"), None, None).await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let other = mint("another-clinic", "staff");
    let (s, b) = call(&c, "GET", format!("{u}/_local/events?clinic=demo-clinic"), Some(&other), None).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, b) = call(&c, "GET", format!("{u}/_local/events?clinic=a%23b"), Some(&staff), None).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_query"));

    // A stream lasts as long as its token.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let brief = visitpay_local::dev_jwt::mint(
        visitpay_local::dev_jwt::DEFAULT_DEV_SECRET,
        "e2e",
        "demo-clinic",
        "staff",
        now,
        2,
    );
    let mut ending = EventStream::open(&c, &u, &brief, "demo-clinic").await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(6), ending.response.chunk()).await;
    assert!(matches!(end, Ok(Ok(None))), "the stream ends when its token does: {end:?}");

    let mut stream = EventStream::open(&c, &u, &staff, "demo-clinic").await;
    let (action_id, link) = assign_fresh(&c, &u, &staff, "live").await;
    let session = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session, "succeeded", true).await.is_success());
    let mut seen = Vec::new();
    while seen.last().map(|(_, d): &(String, Value)| d["status"] != "paid").unwrap_or(true) {
        let (id, data) = stream.action().await;
        assert_eq!(data["action_id"], action_id.as_str());
        assert_eq!(id, format!("{action_id}:{}", data["version"]), "the SSE id is (action_id, version)");
        seen.push((id, data));
    }
    let statuses: Vec<&str> = seen.iter().map(|(_, d)| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["assigned", "checkout_open", "paid"]);
    assert!(seen.iter().all(|(_, d)| d.get("label").is_none() && d.get("patient_id").is_none()), "ids and money only");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sink.lock().unwrap().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the events URL got {:?}", sink.lock().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let posted = sink.lock().unwrap().clone();
    let details: Vec<Value> = posted
        .iter()
        .map(|(signature, body)| {
            let t: i64 = signature.split(',').find_map(|p| p.strip_prefix("t=")).unwrap().parse().unwrap();
            assert_eq!(signature, &visitpay_local::events::sign(body, EVENTS_SECRET, t), "signed with the secret");
            let event: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                (event["source"].as_str(), event["detail-type"].as_str()),
                (Some("visitpay"), Some("Payment action changed"))
            );
            event["detail"].clone()
        })
        .collect();
    let streamed: Vec<Value> = seen.into_iter().map(|(_, d)| d).collect();
    assert_eq!(details, streamed, "the EMR gets what staff saw, in the same order");
}

#[tokio::test]
async fn status_events_through_the_local_run() {
    let (url, sink) = event_sink().await;
    let local =
        start_with(&[("VISITPAY_LOCAL_EVENTS_URL", url.as_str()), ("VISITPAY_LOCAL_EVENTS_SECRET", EVENTS_SECRET)]);
    status_events_reach_staff_and_the_emr(&local, &sink).await;
}

/// Against moto, the events come from the table's DynamoDB Stream, read as
/// Lambda's event source mapping reads it, through publish-action-events' handler.
#[tokio::test]
async fn status_events_through_the_local_run_on_dynamodb() {
    let (url, sink) = event_sink().await;
    let mut envs = moto_envs("visitpay-ev");
    envs.extend([("VISITPAY_LOCAL_EVENTS_URL", url), ("VISITPAY_LOCAL_EVENTS_SECRET", EVENTS_SECRET.to_owned())]);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let local = start_with(&envs);
    status_events_reach_staff_and_the_emr(&local, &sink).await;
}

/// Served under `/prod`, as API Gateway serves a named stage: every URL the
/// run hands out carries the stage (the link, Checkout's way back), the link
/// cookie is scoped to the stage's return route (a cookie for
/// `/patient/return/` is never sent to `/prod/patient/return/…`, RFC 6265
/// §5.1.4), and nothing answers outside the stage.
#[tokio::test]
async fn the_local_run_serves_under_a_stage_path_as_api_gateway_does() {
    let local = start_with(&[("VISITPAY_BASE_PATH", "/prod")]);
    let c = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let u = local.base.clone();
    assert!(u.ends_with("/prod"), "{u}");
    let root = u.trim_end_matches("/prod").to_owned();
    let (s, b) = call(&c, "GET", format!("{root}/actions/act_x"), Some(&local.staff), None).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "route_not_found"), "nothing outside the stage");

    let (action_id, link) = assign_fresh(&c, &u, &local.staff, "stage").await;
    assert!(link.starts_with(&format!("{u}/patient/actions/act_")), "{link}");
    let page = c.get(&link).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Path=/prod/patient/return/;"), "{cookie}");

    let session_id = open_checkout(&c, &link).await;
    assert!(pay(&c, &u, &session_id, "succeeded", false).await.is_success());
    // Stripe keeps the session's return URL: the stage's return route.
    let session = c
        .get(format!("{u}/stripe/v1/checkout/sessions/{session_id}"))
        .bearer_auth("sk_test_visitpay_local")
        .header("stripe-account", "acct_1DemoClinic")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let success = session["success_url"].as_str().unwrap();
    assert!(success.starts_with(&format!("{u}/patient/return/{action_id}?checkout=success")), "{success}");

    // The browser comes back with the cookie its path lets through: the page shows the action.
    let token_cookie = cookie.split(';').next().unwrap().to_owned();
    let back = c
        .get(format!("{u}/patient/return/{action_id}?checkout=success"))
        .header("accept", "text/html")
        .header("cookie", token_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(back.contains("data-state=\"confirming\""), "the patient is recognised on the way back: {back}");
}

/// `/_local/*` answers only requests to this server's own address and from
/// its own pages: not a name that resolves to it (DNS rebinding), not a page
/// of another site in the same browser (which could mint tokens or move the
/// clock).
#[tokio::test]
async fn local_controls_refuse_other_hosts_and_other_sites() {
    let local = start();
    let c = Client::new();
    let u = &local.base;
    let own_host = u.trim_start_matches("http://").to_owned();
    let port = own_host.rsplit(':').next().unwrap().to_owned();
    let mint = |host: String, extra: Option<(&'static str, String)>| {
        let mut req = c
            .post(format!("{u}/_local/tokens"))
            .header("host", host)
            .json(&json!({"clinic_id": "demo-clinic", "role": "support"}));
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        }
        req.send()
    };
    for (host, extra, want) in [
        (own_host.clone(), None, StatusCode::OK),
        (format!("localhost:{port}"), None, StatusCode::OK),
        (own_host.clone(), Some(("origin", format!("http://{own_host}"))), StatusCode::OK),
        (own_host.clone(), Some(("sec-fetch-site", "same-origin".to_owned())), StatusCode::OK),
        (format!("rebound.example:{port}"), None, StatusCode::FORBIDDEN),
        (own_host.clone(), Some(("origin", "https://evil.example".to_owned())), StatusCode::FORBIDDEN),
        (own_host.clone(), Some(("sec-fetch-site", "cross-site".to_owned())), StatusCode::FORBIDDEN),
        (own_host.clone(), Some(("sec-fetch-site", "same-site".to_owned())), StatusCode::FORBIDDEN),
    ] {
        let res = mint(host.clone(), extra.clone()).await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, want, "{host} {extra:?}: {body}");
        if want == StatusCode::FORBIDDEN {
            assert_eq!(code(&body), "local_only");
        }
    }
    let moved = c
        .post(format!("{u}/_local/clock/advance"))
        .header("origin", "https://evil.example")
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::FORBIDDEN, "another site cannot move the clock");
}

/// The local run's stand-ins for SES, SNS and the two-way SMS channel: an
/// action given an email and a number shows both messages in the clinic's
/// outbox (its staff only, newest last) within a second; STOP posted as the
/// patient's reply leaves the next send by email only; a reply that is not
/// a number is refused with its code.
#[tokio::test]
async fn the_outbox_and_replies_through_the_local_run() {
    let local = start();
    let (c, u) = (Client::new(), local.base.as_str());
    let staff = local.staff.as_str();
    let (action_id, _) = assign_fresh(&c, u, staff, "out").await;
    let notify = json!({"email": "patient@example.com", "sms": "+15145550123"});
    let (s, b) = call(&c, "POST", format!("{u}/actions/{action_id}/send"), Some(staff), Some(notify.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");

    let outbox = |token: String| {
        let c = c.clone();
        let url = format!("{u}/_local/outbox?clinic=demo-clinic");
        async move { call(&c, "GET", url, Some(&token), None).await }
    };
    let mut messages = Vec::new();
    for _ in 0..50 {
        let (s, b) = outbox(staff.to_owned()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        messages = b["messages"].as_array().unwrap().clone();
        if messages.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let channels: Vec<(&str, &str)> =
        messages.iter().map(|m| (m["channel"].as_str().unwrap(), m["to"].as_str().unwrap())).collect();
    assert_eq!(channels, [("email", "patient@example.com"), ("sms", "+15145550123")], "{messages:?}");
    for m in &messages {
        assert_eq!(m["action_id"], action_id.as_str());
        assert!(m["body"].as_str().unwrap().contains(&format!("{u}/patient/actions/{action_id}.")), "{m}");
    }
    assert!(messages[0]["subject"].is_string() && messages[1].get("subject").is_none());

    // Another clinic's staff, and support, see nothing of it.
    let (s, _) = outbox(mint("other-clinic", "staff")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = outbox(local.support.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The patient answers STOP; the next send goes by email only.
    let (s, b) =
        call(&c, "POST", format!("{u}/_local/sms/inbound"), None, Some(json!({"from": "5145550123", "body": "STOP"})))
            .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_body"), "not an E.164 number");
    let reply = json!({"from": "+1 514 555 0123", "body": "stop"});
    let (s, b) = call(&c, "POST", format!("{u}/_local/sms/inbound"), None, Some(reply)).await;
    assert_eq!((s, &b), (StatusCode::OK, &json!({"opted_out": true})));
    let (s, _) = call(&c, "POST", format!("{u}/actions/{action_id}/send"), Some(staff), Some(notify)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, b) = outbox(staff.to_owned()).await;
    let channels: Vec<&str> =
        b["messages"].as_array().unwrap().iter().map(|m| m["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["email", "sms", "email"]);
    let (_, action) = call(&c, "GET", format!("{u}/actions/{action_id}"), Some(staff), None).await;
    let reasons: Vec<&str> =
        action["history"].as_array().unwrap().iter().map(|h| h["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"link sent by email") && reasons.contains(&"link sent by sms"), "{reasons:?}");
}
