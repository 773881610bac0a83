//! The emulator refuses and sends what Stripe does; each rule cites Stripe's
//! documentation (or, where Stripe documents no wording, what its API is
//! reported to answer).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn paid_intent(running: &Running, account: &str) -> (String, String) {
    let session = create_session(running, Some(account)).await;
    let (_, paid) = pay(running, session["id"].as_str().unwrap(), "succeeded", false).await;
    let pi = paid["session"]["payment_intent"].as_str().unwrap().to_owned();
    let (_, intent) = api_get(running, &format!("payment_intents/{pi}"), Some(account)).await;
    (pi, intent["latest_charge"].as_str().unwrap().to_owned())
}

async fn events_of(running: &Running, account: &str, kind: &str) -> Vec<Value> {
    let (_, list) = api_get(running, &format!("events?limit=100&type={kind}"), Some(account)).await;
    list["data"].as_array().unwrap().clone()
}

/// "The Charge object no longer auto-expands refunds" (changelog 2022-11-15),
/// and expandable fields are never expanded in webhook payloads.
#[tokio::test]
async fn a_charge_carries_its_refunds_only_when_asked() {
    let running = start(None).await;
    let (pi, charge) = paid_intent(&running, ACCOUNT).await;
    let (status, _) = api_post(&running, "refunds", &format!("payment_intent={pi}&amount=500"), Some(ACCOUNT)).await;
    assert_eq!(status, 200);
    let (_, plain) = api_get(&running, &format!("charges/{charge}"), Some(ACCOUNT)).await;
    assert!(plain.get("refunds").is_none(), "{plain}");
    assert_eq!(plain["amount_refunded"], 500);
    let (_, expanded) = api_get(&running, &format!("charges/{charge}?expand[]=refunds"), Some(ACCOUNT)).await;
    assert_eq!(expanded["refunds"]["data"][0]["amount"], 500);
    let refunded = &events_of(&running, ACCOUNT, "charge.refunded").await[0];
    assert!(refunded["data"]["object"].get("refunds").is_none(), "webhook payloads are not expanded");
}

/// A PaymentIntent's `latest_charge` is its id unless expanded
/// ("Expanding responses", API reference: "expand[]=…" replaces the id with
/// the object); the charge says how it was paid (`payment_method_details`).
/// A field that cannot be expanded is refused: "This property cannot be
/// expanded (x)." (Stripe's invalid_request_error for an unknown expansion).
#[tokio::test]
async fn an_intent_expands_its_latest_charge_and_nothing_unknown() {
    let running = start(None).await;
    let (pi, charge) = paid_intent(&running, ACCOUNT).await;
    let (status, expanded) =
        api_get(&running, &format!("payment_intents/{pi}?expand[]=latest_charge"), Some(ACCOUNT)).await;
    assert_eq!(status, 200);
    assert_eq!(expanded["latest_charge"]["id"], charge.as_str());
    assert_eq!(expanded["latest_charge"]["payment_method_details"]["type"], "card");
    assert_eq!(expanded["latest_charge"]["payment_method_details"]["card"]["last4"], "4242");
    let (status, refused) =
        api_get(&running, &format!("payment_intents/{pi}?expand[]=customer_x"), Some(ACCOUNT)).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["message"], "This property cannot be expanded (customer_x).");
    // On another account the intent does not exist.
    let (status, _) = api_get(&running, &format!("payment_intents/{pi}?expand[]=latest_charge"), None).await;
    assert_eq!(status, 404);
}

/// Refunds are "pending, requires_action, succeeded, failed, or canceled"
/// (API reference, Refund); `refund.updated` "Occurs whenever a refund is
/// updated", `refund.failed` "whenever a refund has failed"; a failed refund's
/// money goes back ("the bank returns the refunded amount … a Refund object's
/// status transitions to failed and includes … failure_reason", Refunds docs).
#[tokio::test]
async fn refunds_go_pending_then_succeed_fail_or_cancel() {
    let running = start(None).await;
    let (pi, charge) = paid_intent(&running, ACCOUNT).await;
    let (_, _) = control(&running, "refunds/behaviour", json!({"start": "pending"})).await;
    let (_, first) = api_post(&running, "refunds", &format!("payment_intent={pi}&amount=1000"), Some(ACCOUNT)).await;
    assert_eq!(first["status"], "pending");
    let (_, second) = api_post(&running, "refunds", &format!("payment_intent={pi}&amount=700"), Some(ACCOUNT)).await;
    let charge_path = format!("charges/{charge}");
    let amount_refunded =
        || async { api_get(&running, &charge_path, Some(ACCOUNT)).await.1["amount_refunded"].clone() };
    assert_eq!(amount_refunded().await, 1700, "pending refunds count");

    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let (status, succeeded) =
        control(&running, &format!("refunds/{}", id(&first)), json!({"status": "succeeded"})).await;
    assert_eq!((status, succeeded["status"].as_str()), (200, Some("succeeded")));
    let (_, failed) = control(
        &running,
        &format!("refunds/{}", id(&second)),
        json!({"status": "failed", "failure_reason": "expired_or_canceled_card"}),
    )
    .await;
    assert_eq!(
        (failed["status"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("expired_or_canceled_card"))
    );
    assert_eq!(amount_refunded().await, 1000, "a failed refund gives its amount back");
    let (status, _) = control(&running, &format!("refunds/{}", id(&second)), json!({"status": "succeeded"})).await;
    assert_eq!(status, 400, "a failed refund stays failed");

    control(&running, "refunds/behaviour", json!({"start": "requires_action"})).await;
    let (_, third) = api_post(&running, "refunds", &format!("payment_intent={pi}&amount=100"), Some(ACCOUNT)).await;
    assert_eq!(third["status"], "requires_action");
    let (_, canceled) = control(&running, &format!("refunds/{}", id(&third)), json!({"status": "canceled"})).await;
    assert_eq!(canceled["status"], "canceled");

    assert_eq!(events_of(&running, ACCOUNT, "refund.created").await.len(), 3);
    assert_eq!(events_of(&running, ACCOUNT, "refund.updated").await.len(), 3);
    assert_eq!(events_of(&running, ACCOUNT, "refund.failed").await.len(), 1);
}

/// A dispute's life: "charge.dispute.created … updated … funds_withdrawn …
/// funds_reinstated … closed" (Stripe event types); its status is one of
/// "needs_response, under_review, won, lost, …" (API reference, Dispute).
#[tokio::test]
async fn disputes_open_withdraw_and_close() {
    let running = start(None).await;
    let (pi, charge) = paid_intent(&running, ACCOUNT).await;
    let (status, dispute) =
        control(&running, &format!("payment_intents/{pi}/dispute"), json!({"reason": "fraudulent"})).await;
    assert_eq!(
        (status, dispute["status"].as_str(), dispute["amount"].as_i64()),
        (200, Some("needs_response"), Some(4500))
    );
    assert_eq!(dispute["payment_intent"], json!(pi));
    let (_, disputed) = api_get(&running, &format!("charges/{charge}"), Some(ACCOUNT)).await;
    assert_eq!(disputed["disputed"], true);
    let id = dispute["id"].as_str().unwrap();
    control(&running, &format!("disputes/{id}/funds_withdrawn"), json!({})).await;
    // Funds come back only with a won dispute ("after a dispute is closed"), and
    // a charged-back payment cannot be refunded meanwhile ("is_charge_refundable").
    let (status, _) = control(&running, &format!("disputes/{id}/funds_reinstated"), json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = control(&running, &format!("disputes/{id}/funds_withdrawn"), json!({})).await;
    assert_eq!(status, 400, "withdrawn once");
    let (status, refused) = api_post(&running, "refunds", &format!("payment_intent={pi}"), Some(ACCOUNT)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("charge_disputed")));
    control(&running, &format!("disputes/{id}/update"), json!({"status": "under_review"})).await;
    let (_, won) = control(&running, &format!("disputes/{id}/close"), json!({"outcome": "won"})).await;
    assert_eq!(won["status"], "won");
    assert_eq!(won["balance_transactions"].as_array().unwrap().len(), 2, "withdrawn, then reinstated");
    let (status, _) = control(&running, &format!("disputes/{id}/update"), json!({"status": "under_review"})).await;
    assert_eq!(status, 400, "a closed dispute stays closed");
    for kind in ["created", "funds_withdrawn", "updated", "closed", "funds_reinstated"] {
        assert_eq!(events_of(&running, ACCOUNT, &format!("charge.dispute.{kind}")).await.len(), 1, "{kind}");
    }
    let (_, read) = api_get(&running, &format!("disputes/{id}"), Some(ACCOUNT)).await;
    assert_eq!(read["status"], "won");
}

/// "Minimum and maximum charge amounts": USD, CAD, EUR 0.50, GBP 0.30
/// (Stripe docs, Supported currencies); a session under it is refused with
/// "The Checkout Session's total amount due must add up to at least …".
#[tokio::test]
async fn a_session_under_the_currencys_minimum_is_refused() {
    let running = start(None).await;
    let form = |currency: &str, amount: i64| {
        format!(
            "mode=payment&line_items[0][price_data][currency]={currency}&line_items[0][price_data][unit_amount]={amount}\
             &line_items[0][price_data][product_data][name]=x&line_items[0][quantity]=1&success_url=https://x.test/"
        )
    };
    for (currency, minimum) in [("cad", 50), ("usd", 50), ("eur", 50), ("gbp", 30)] {
        let (status, error) = api_post(&running, "checkout/sessions", &form(currency, minimum - 1), None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("amount_too_small")), "{currency}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains("must add up to at least"));
        let (status, _) = api_post(&running, "checkout/sessions", &form(currency, minimum), None).await;
        assert_eq!(status, 200, "{currency}");
    }
}

/// "Stripe saves the status code and body of the first request made with a
/// given idempotency key after endpoint execution begins … including 500
/// errors"; "If incoming parameters fail validation, or the request conflicts
/// with another that's executing concurrently, no idempotent result is
/// saved"; the same key with other parameters is an `idempotency_error`;
/// a concurrent one `idempotency_key_in_use` (409); keys may be removed after
/// 24 hours (Stripe docs, Idempotent requests; error codes).
#[tokio::test]
async fn idempotency_keys_behave_as_stripes() {
    let running = start(None).await;
    let post = |key: &'static str, form: String| {
        let base = running.base.clone();
        async move {
            let response = http()
                .post(format!("{base}/v1/refunds"))
                .bearer_auth("sk_test_emulator")
                .header("stripe-account", ACCOUNT)
                .header("idempotency-key", key)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (response.status().as_u16(), replayed, response.json::<Value>().await.unwrap())
        }
    };
    let (pi, _) = paid_intent(&running, ACCOUNT).await;
    // Validation fails: nothing saved, the fixed request executes.
    let (status, _, _) = post("k-validation", format!("payment_intent={pi}&amount=-5")).await;
    assert_eq!(status, 400);
    let (status, replayed, _) = post("k-validation", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!((status, replayed), (200, false));
    // An executed error is saved and replayed, even once the state would allow the request.
    let (status, _, error) = post("k-executed", format!("payment_intent={pi}&amount=999999")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("amount_too_large")));
    let (status, replayed, _) = post("k-executed", format!("payment_intent={pi}&amount=999999")).await;
    assert_eq!((status, replayed), (400, true));
    // Another request under the same key.
    let (status, _, error) = post("k-executed", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!((status, error["error"]["type"].as_str()), (400, Some("idempotency_error")));
    // "Subsequent requests with the same key return the same result, including
    // 500 errors": a 500 that did nothing, and one whose refund happened.
    control(&running, "faults", json!({"method": "POST", "path": "/v1/refunds", "times": 2})).await;
    let (status, _, error) = post("k-500", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!((status, error["error"]["type"].as_str()), (500, Some("api_error")));
    let (status, replayed, _) = post("k-500", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!((status, replayed), (500, true), "the 500 is replayed, not retried");
    let (_, before) = api_get(&running, &format!("refunds?payment_intent={pi}"), Some(ACCOUNT)).await;
    let (status, _, _) = post("k-500-other", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!(status, 500, "the second fault");
    control(&running, "faults", json!({"method": "POST", "path": "/v1/refunds", "effect": true})).await;
    let (status, _, _) = post("k-500-effect", format!("payment_intent={pi}&amount=100")).await;
    assert_eq!(status, 500);
    let (_, after) = api_get(&running, &format!("refunds?payment_intent={pi}"), Some(ACCOUNT)).await;
    assert_eq!(
        after["data"].as_array().unwrap().len(),
        before["data"].as_array().unwrap().len() + 1,
        "only the fault with effect made a refund"
    );
    // Two at once.
    control(&running, "latency", json!({"ms": 300})).await;
    let form = format!("payment_intent={pi}&amount=100");
    let (first, second) = tokio::join!(post("k-concurrent", form.clone()), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        post("k-concurrent", form.clone()).await
    });
    assert_eq!(first.0, 200);
    assert_eq!((second.0, second.2["error"]["code"].as_str()), (409, Some("idempotency_key_in_use")));
    control(&running, "latency", json!({"ms": 0})).await;
    // A day later the key is gone: the same request executes again.
    running.emulator.advance_clock(24 * 3600 + 1);
    let (status, replayed, refund) = post("k-concurrent", form).await;
    assert_eq!((status, replayed), (200, false));
    assert_ne!(refund["id"], first.2["id"], "a new refund");
}

/// "Received unknown parameter: X" (`parameter_unknown`); metadata "up to 50
/// keys, with key names up to 40 characters long and values up to 500
/// characters long" (API reference, Metadata); `client_reference_id` at most
/// 200 characters (OpenAPI: maxLength 200).
#[tokio::test]
async fn unknown_parameters_and_overlong_values_are_refused() {
    let running = start(None).await;
    let cases: Vec<(String, &str)> = vec![
        (format!("{SESSION_FORM}&colour=blue"), "colour"),
        (format!("{SESSION_FORM}&line_items[0][price_data][tax]=1"), "line_items[0][price_data][tax]"),
        (format!("{SESSION_FORM}&payment_intent_data[capture]=manual"), "payment_intent_data[capture]"),
    ];
    for (form, param) in cases {
        let (status, error) = api_post(&running, "checkout/sessions", &form, None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("parameter_unknown")), "{param}");
        assert_eq!(error["error"]["message"], format!("Received unknown parameter: {param}"));
    }
    let many: String = (0..51).map(|i| format!("&metadata[k{i}]=v")).collect();
    let long_key = format!("&metadata[{}]=v", "k".repeat(41));
    let long_value = format!("&metadata[k]={}", "v".repeat(501));
    let long_reference = format!("&client_reference_id={}", "r".repeat(201));
    for extra in [many, long_key, long_value, long_reference] {
        let (status, error) = api_post(&running, "checkout/sessions", &format!("{SESSION_FORM}{extra}"), None).await;
        assert_eq!((status, error["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{error}");
    }
    let fifty: String = (0..49).map(|i| format!("&metadata[k{i}]={}", "v".repeat(500))).collect();
    let (status, _) = api_post(&running, "checkout/sessions", &format!("{SESSION_FORM}{fifty}"), None).await;
    assert_eq!(status, 200, "50 keys of 500 characters are fine");
}

/// A `Stripe-Account` the platform has no access to: 403 `account_invalid`,
/// "does not have access to account … (or that account does not exist).
/// Application access may have been revoked." A clinic disconnecting sends
/// `account.application.deauthorized` with the account on the event
/// (Stripe Connect docs, webhooks).
#[tokio::test]
async fn unknown_and_disconnected_accounts_are_refused() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    let (status, error) = api_post(&running, "checkout/sessions", SESSION_FORM, Some("acct_1Nobody")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("account_invalid")));
    assert!(error["error"]["message"].as_str().unwrap().contains("does not have access to account 'acct_1Nobody'"));
    create_session(&running, Some(ACCOUNT)).await;
    let (status, _) = control(&running, &format!("accounts/{ACCOUNT}/deauthorize"), json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = api_post(&running, "checkout/sessions", SESSION_FORM, Some(ACCOUNT)).await;
    assert_eq!(status, 403, "a disconnected account is refused too");
    let delivered = receiver.wait_for(1, WAIT).await;
    let event = delivered[0].event();
    assert_eq!(
        (event["type"].as_str(), event["account"].as_str()),
        (Some("account.application.deauthorized"), Some(ACCOUNT))
    );
    assert_eq!(event["data"]["object"]["object"], "application");
    control(&running, "accounts", json!({"id": "acct_1Nobody"})).await;
    let (status, _) = api_post(&running, "checkout/sessions", SESSION_FORM, Some("acct_1Nobody")).await;
    assert_eq!(status, 200, "once connected");
}

/// Events "has the value true if the object exists in live mode" (Event
/// object, `livemode`): on demand, the emulator says live.
#[tokio::test]
async fn live_mode_events_on_demand() {
    let running = start(None).await;
    control(&running, "livemode", json!({"livemode": true})).await;
    let session = create_session(&running, Some(ACCOUNT)).await;
    assert_eq!(session["livemode"], true);
    pay(&running, session["id"].as_str().unwrap(), "succeeded", false).await;
    let completed = &events_of(&running, ACCOUNT, "checkout.session.completed").await[0];
    assert_eq!(
        (completed["livemode"].as_bool(), completed["data"]["object"]["livemode"].as_bool()),
        (Some(true), Some(true))
    );
}

/// "Only Checkout Sessions with a status in ["open"] can be expired. This
/// Checkout Session has a status of `complete`." — and that answer is saved
/// under its key, as any executed one.
#[tokio::test]
async fn expiring_a_completed_session_is_refused() {
    let running = start(None).await;
    let session = create_session(&running, Some(ACCOUNT)).await;
    let id = session["id"].as_str().unwrap();
    pay(&running, id, "succeeded", false).await;
    let (status, error) = api_post(&running, &format!("checkout/sessions/{id}/expire"), "", Some(ACCOUNT)).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("has a status of `complete`"), "{error}");
}

/// Stripe delivers at least once, in no promised order, retrying "for up to
/// three days with an exponential back off" (Stripe docs, webhooks): on the
/// emulated clock, a failing endpoint is retried as the days pass, then
/// given up on; the modes shuffle, duplicate and delay.
#[tokio::test]
async fn deliveries_retry_across_days_shuffle_duplicate_and_delay() {
    // One event per session: an expiry (a payment also sends charge.succeeded).
    async fn one_event(running: &Running, session: &str) {
        let (status, body) = api_post(running, &format!("checkout/sessions/{session}/expire"), "", None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    receiver.fail_next(3);
    let session = create_session(&running, None).await;
    one_event(&running, session["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((receiver.attempts(), receiver.deliveries().len()), (1, 0), "the first retry waits a minute");
    for _ in 0..2 {
        running.emulator.advance_clock(4 * 3600);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    running.emulator.advance_clock(4 * 3600);
    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(receiver.attempts(), 4);
    assert!(verify_signature(&delivered[0]));
    let signed_at: i64 = delivered[0].signature.split(',').next().unwrap()[2..].parse().unwrap();
    assert!((signed_at - running.emulator.clock().now()).abs() <= 2, "signed on the emulated clock, hours ahead");

    // Given up after the last retry, about three days on (never before).
    receiver.fail_next(100);
    let another = create_session(&running, None).await;
    let (started, before) = (running.emulator.clock().now(), receiver.attempts());
    one_event(&running, another["id"].as_str().unwrap()).await;
    let mut hours = 0;
    while running.emulator.undelivered().is_empty() && hours < 200 {
        running.emulator.advance_clock(4 * 3600);
        hours += 4;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let elapsed_hours = (running.emulator.clock().now() - started) / 3600;
    assert_eq!(running.emulator.undelivered().len(), 1, "given up");
    assert!((71..=100).contains(&elapsed_hours), "after about three days of retries: {elapsed_hours} h");
    assert_eq!(receiver.attempts() - before, 11, "the first attempt and ten retries");
    receiver.fail_next(0);

    // Shuffled, duplicated and delayed; then all of it, once flushed.
    let before = receiver.deliveries().len();
    running.emulator.set_delivery_mode(stripe_emulator::DeliveryMode {
        shuffle: true,
        duplicate_every: 2,
        delay_secs: 3600,
        seed: 7,
        ..Default::default()
    });
    let mut ids = Vec::new();
    for _ in 0..6 {
        let s = create_session(&running, None).await;
        ids.push(s["id"].as_str().unwrap().to_owned());
        one_event(&running, &ids[ids.len() - 1]).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.deliveries().len(), before, "delayed an hour");
    running.emulator.advance_clock(3600);
    let delivered = receiver.wait_for(before + 9, WAIT).await;
    let sessions: Vec<String> =
        delivered[before..].iter().map(|d| d.event()["data"]["object"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sessions.len(), 9, "six events, every second one twice");
    assert_ne!(sessions.iter().collect::<std::collections::BTreeSet<_>>().len(), sessions.len(), "duplicates");
    let mut first_seen = Vec::new();
    for s in &sessions {
        if !first_seen.contains(s) {
            first_seen.push(s.clone());
        }
    }
    assert_ne!(first_seen, ids, "shuffled");
}

/// Accounts the platform makes (https://docs.stripe.com/api/accounts/create),
/// with controller properties only as Stripe takes them at creation
/// (https://docs.stripe.com/connect/migrate-to-controller-properties): a new
/// account can do nothing until onboarded (fixtures3.json's account:
/// `charges_enabled: false`, `requirements.disabled_reason:
/// "requirements.past_due"`), and a Stripe Dashboard account needs Stripe to
/// collect its requirements.
#[tokio::test]
async fn accounts_are_made_by_the_platform_and_start_restricted() {
    let running = start(None).await;
    let form = "controller[fees][payer]=account&controller[losses][payments]=stripe\
                &controller[requirement_collection]=stripe&controller[stripe_dashboard][type]=full\
                &metadata[visitpay_clinic_id]=c1";
    let (status, account) = api_post(&running, "accounts", form, None).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(
        (account["charges_enabled"].as_bool(), account["details_submitted"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(account["requirements"]["disabled_reason"], "requirements.past_due");
    assert!(account["requirements"]["currently_due"].as_array().unwrap().iter().any(|r| r == "external_account"));
    assert_eq!(account["metadata"]["visitpay_clinic_id"], "c1");
    let id = account["id"].as_str().unwrap();
    let (_, read) = api_get(&running, &format!("accounts/{id}"), None).await;
    assert_eq!(read["id"], id);

    for (bad, param) in [
        ("controller[fees][payer]=application_express", "controller[fees][payer]"),
        (
            "controller[stripe_dashboard][type]=full&controller[requirement_collection]=application",
            "controller[requirement_collection]",
        ),
        ("controller[fees][payee]=account", "controller[fees][payee]"),
    ] {
        let (status, error) = api_post(&running, "accounts", bad, None).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{bad}: {error}");
    }
    let (status, _) = api_post(&running, "accounts", "", Some(ACCOUNT)).await;
    assert_eq!(status, 400, "accounts are made by the platform, not on an account");
}

/// Account Links (https://docs.stripe.com/api/account_links/create): its
/// four parameters required; `account_update` "cannot be created for
/// accounts with a Stripe-hosted Dashboard"; the link is "temporary and
/// single-use" (expires_at 300 s after created in the API's example), and a
/// used or expired one sends the person to `refresh_url`. Completing the
/// hosted page sends `account.updated` and the person to `return_url`.
#[tokio::test]
async fn account_links_are_single_use_and_lead_back() {
    let running = start(None).await;
    let (_, account) = api_post(&running, "accounts", "controller[stripe_dashboard][type]=full", None).await;
    let id = account["id"].as_str().unwrap().to_owned();
    let link_form = |kind: &str| {
        format!("account={id}&refresh_url=https://emr.test/s?onboarding=refresh&return_url=https://emr.test/s?onboarding=return&type={kind}")
    };
    let (status, error) =
        api_post(&running, "account_links", &format!("account={id}&type=account_onboarding"), None).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("refresh_url")));
    let (status, error) = api_post(&running, "account_links", &link_form("account_update"), None).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("type")));
    let (status, link) = api_post(&running, "account_links", &link_form("account_onboarding"), None).await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["object"], "account_link");
    assert_eq!(link["expires_at"].as_i64().unwrap() - link["created"].as_i64().unwrap(), 300);

    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = link["url"].as_str().unwrap().to_owned();
    let page = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let again = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(
        (again.status().as_u16(), again.headers()["location"].to_str().unwrap()),
        (303, "https://emr.test/s?onboarding=refresh")
    );
    let done = no_redirects.post(&url).form(&[("outcome", "complete")]).send().await.unwrap();
    assert_eq!(
        (done.status().as_u16(), done.headers()["location"].to_str().unwrap()),
        (303, "https://emr.test/s?onboarding=return")
    );
    let updated = &events_of(&running, &id, "account.updated").await[0];
    assert_eq!(
        (updated["account"].as_str(), updated["data"]["object"]["charges_enabled"].as_bool()),
        (Some(id.as_str()), Some(true))
    );

    // An expired link: to refresh_url too.
    let (_, late) = api_post(&running, "account_links", &link_form("account_onboarding"), None).await;
    control(&running, "clock/advance", json!({"seconds": 301})).await;
    let expired = no_redirects.get(late["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(expired.headers()["location"].to_str().unwrap(), "https://emr.test/s?onboarding=refresh");
}

/// An account's balance and its payouts
/// (https://docs.stripe.com/payouts/reconciliation): each charge (with
/// Stripe's fee), refund and dispute is a balance transaction; a payout pays
/// out what is available, its own transaction among those it lists
/// (`GET /v1/balance_transactions?payout=…`, "for automatic Stripe payouts
/// only"), whose nets other than its own add up to its amount; the source
/// expands (`expand[]=data.source`); `payout.paid` or `payout.failed`.
#[tokio::test]
async fn a_payout_lists_what_it_paid_out() {
    let running = start(None).await;
    let (pi, _) = paid_intent(&running, ACCOUNT).await;
    api_post(&running, "refunds", &format!("payment_intent={pi}&amount=700"), Some(ACCOUNT)).await;
    let (status, made) = control(&running, "payouts", json!({"account": ACCOUNT})).await;
    assert_eq!(status, 200, "{made}");
    let payout = &made["payouts"][0];
    let id = payout["id"].as_str().unwrap();
    let (_, listed) =
        api_get(&running, &format!("balance_transactions?payout={id}&limit=2&expand[]=data.source"), Some(ACCOUNT))
            .await;
    assert_eq!(listed["has_more"], true, "paged");
    let last = listed["data"][1]["id"].as_str().unwrap();
    let (_, rest) = api_get(
        &running,
        &format!("balance_transactions?payout={id}&starting_after={last}&expand[]=data.source"),
        Some(ACCOUNT),
    )
    .await;
    let all: Vec<Value> =
        listed["data"].as_array().unwrap().iter().chain(rest["data"].as_array().unwrap()).cloned().collect();
    let kinds: Vec<&str> = all.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "payout").count(), 1, "{kinds:?}");
    assert!(kinds.contains(&"charge") && kinds.contains(&"refund"), "{kinds:?}");
    let nets: i64 = all.iter().filter(|t| t["type"] != "payout").map(|t| t["net"].as_i64().unwrap()).sum();
    assert_eq!(nets, payout["amount"].as_i64().unwrap(), "the lines add up to the payout");
    let charge = all.iter().find(|t| t["type"] == "charge").unwrap();
    assert_eq!(charge["source"]["payment_intent"], pi.as_str(), "expanded: the charge and its payment");
    assert_eq!(charge["fee"].as_i64().unwrap() + charge["net"].as_i64().unwrap(), charge["amount"].as_i64().unwrap());
    assert!(!events_of(&running, ACCOUNT, "payout.paid").await.is_empty());

    let (status, _) = control(&running, "payouts", json!({"account": ACCOUNT})).await;
    assert_eq!(status, 400, "nothing left to pay out");
    let (status, _) = api_get(&running, &format!("balance_transactions?payout={id}"), Some(OTHER_ACCOUNT)).await;
    assert_eq!(status, 404, "another account's payout");
    paid_intent(&running, ACCOUNT).await;
    let (_, failed) = control(&running, "payouts", json!({"account": ACCOUNT, "fail": true})).await;
    assert_eq!(
        (failed["payouts"][0]["status"].as_str(), failed["payouts"][0]["failure_code"].as_str()),
        (Some("failed"), Some("account_closed"))
    );
    assert!(!events_of(&running, ACCOUNT, "payout.failed").await.is_empty());
}

/// The event log a catch-up reads (API reference, "List all events"): "going
/// back up to 30 days"; `types` "an array of up to 20 strings", "either
/// `type` or `types`, but not both"; `delivery_success=false` lists "events
/// which are still pending or have failed all delivery attempts"; `created`
/// bounds. And an endpoint that is down fails every attempt, retried on the
/// backoff until Stripe gives up ("up to three days", webhooks guide).
#[tokio::test]
async fn the_event_log_keeps_thirty_days_and_tells_what_was_not_delivered() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    let ids = |list: &Value| -> Vec<String> {
        list["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
    };

    // Delivered: listed with delivery_success=true, not with false.
    let session = create_session(&running, Some(ACCOUNT)).await;
    api_post(&running, &format!("checkout/sessions/{}/expire", session["id"].as_str().unwrap()), "", Some(ACCOUNT))
        .await;
    let delivered = receiver.wait_for(1, WAIT).await;
    let first = delivered[0].event()["id"].as_str().unwrap().to_owned();
    let (status, ok) = api_get(&running, "events?delivery_success=true", Some(ACCOUNT)).await;
    assert_eq!(status, 200, "{ok}");
    assert!(ids(&ok).contains(&first), "{ok}");

    // An event sent to no endpoint (a test payment without webhooks) had
    // nothing to deliver: it is not listed as undelivered.
    let quiet = create_session(&running, Some(ACCOUNT)).await;
    let (status, _) = pay(&running, quiet["id"].as_str().unwrap(), "succeeded", false).await;
    assert_eq!(status, 200);
    let (_, none) = api_get(&running, "events?delivery_success=false", Some(ACCOUNT)).await;
    assert_eq!(ids(&none), Vec::<String>::new(), "{none}");

    // The endpoint down: every attempt fails, the event is listed as not delivered.
    running.emulator.set_delivery_mode(stripe_emulator::DeliveryMode { endpoint_down: true, ..Default::default() });
    let before = receiver.attempts();
    let other = create_session(&running, Some(ACCOUNT)).await;
    api_post(&running, &format!("checkout/sessions/{}/expire", other["id"].as_str().unwrap()), "", Some(ACCOUNT)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.attempts(), before, "nothing reaches a down endpoint");
    let (_, missed) = api_get(&running, "events?delivery_success=false", Some(ACCOUNT)).await;
    assert_eq!(missed["data"].as_array().unwrap().len(), 1, "{missed}");
    assert_eq!(missed["data"][0]["type"], "checkout.session.expired");
    let missed_id = missed["data"][0]["id"].as_str().unwrap().to_owned();
    let created = missed["data"][0]["created"].as_i64().unwrap();
    let (_, window) = api_get(&running, &format!("events?created[gt]={}", created - 1), Some(ACCOUNT)).await;
    assert!(ids(&window).contains(&missed_id));
    let (_, later) = api_get(&running, &format!("events?created[gt]={created}"), Some(ACCOUNT)).await;
    assert!(!ids(&later).contains(&missed_id));
    let mut hours = 0;
    while running.emulator.undelivered().is_empty() && hours < 100 {
        running.emulator.advance_clock(4 * 3600);
        hours += 4;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(running.emulator.undelivered(), vec![missed_id.clone()], "given up after about three days");
    assert!((71..=100).contains(&hours), "{hours} h");
    assert_eq!(receiver.attempts(), before, "never reached");
    let (_, still) = api_get(&running, "events?delivery_success=false", Some(ACCOUNT)).await;
    assert_eq!(ids(&still), vec![missed_id.clone()], "a given-up event stays listed as not delivered");

    // types: at most 20, and not with type.
    let many: String = (0..21).map(|i| format!("types[]=x.{i}&")).collect();
    let (status, body) = api_get(&running, &format!("events?{many}limit=1"), Some(ACCOUNT)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "types");
    let (status, _) =
        api_get(&running, "events?types[]=checkout.session.expired&type=charge.succeeded", Some(ACCOUNT)).await;
    assert_eq!(status, 400);
    let (_, typed) =
        api_get(&running, "events?types[]=checkout.session.expired&types[]=payout.paid", Some(ACCOUNT)).await;
    assert_eq!(ids(&typed).len(), 2, "{typed}");

    // Thirty days on, both are gone from the list and from retrieval.
    running.emulator.advance_clock(30 * 86_400);
    let (_, gone) = api_get(&running, "events", Some(ACCOUNT)).await;
    assert!(!ids(&gone).contains(&missed_id) && !ids(&gone).contains(&first), "{gone}");
    let (status, _) = api_get(&running, &format!("events/{missed_id}"), Some(ACCOUNT)).await;
    assert_eq!(status, 404);
}

/// Stripe's rate limiter refuses before the endpoint runs (429, "Rate
/// limits"), and "results are only saved if an API endpoint started
/// executing" (Idempotent requests): the same key sent again runs the request.
#[tokio::test]
async fn a_rate_limited_request_is_not_kept_under_its_key() {
    let running = start(None).await;
    let (status, _) =
        control(&running, "faults", json!({"method": "POST", "path": "/v1/refunds", "status": 418})).await;
    assert_eq!(status, 400, "only Stripe's 500 and 429");
    let (status, _) =
        control(&running, "faults", json!({"method": "POST", "path": "/v1/checkout/sessions", "status": 429})).await;
    assert_eq!(status, 200);
    let send = || async {
        http()
            .post(format!("{}/v1/checkout/sessions", running.base))
            .bearer_auth("sk_test_emulator")
            .header("Idempotency-Key", "same-key")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(SESSION_FORM)
            .send()
            .await
            .unwrap()
    };
    let refused = send().await;
    assert_eq!(refused.status().as_u16(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit", "{body}");
    let ran = send().await;
    assert_eq!(ran.status().as_u16(), 200);
    assert!(ran.headers().get("idempotent-replayed").is_none(), "run, not replayed");
    let session: Value = ran.json().await.unwrap();
    assert!(session["id"].as_str().unwrap().starts_with("cs_"));
}
