//! Webhook delivery: signatures, order and types per outcome, retries, muted deliveries.

mod common;

use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(5);

fn kinds(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.event()["type"].as_str().unwrap().to_owned()).collect()
}

/// Verifies the signature independently of the crate's `sign`, dated on the emulated clock.
fn assert_signed(delivery: &Delivery, running: &Running) {
    assert!(verify_signature(delivery), "bad signature {}", delivery.signature);
    let (t, v1) = delivery.signature.split_once(",v1=").unwrap();
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", delivery.body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected);
    let now = running.emulator.clock().now();
    assert!((now - t).abs() < 60, "stale timestamp {t}");
    assert_eq!(delivery.content_type, "application/json; charset=utf-8");
    assert_eq!(delivery.user_agent, "Stripe/1.0 (+https://stripe.com/docs/webhooks)");
}

#[tokio::test]
async fn succeeded_payment_is_delivered_signed() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    let session = create_session(&running, Some(ACCOUNT)).await;
    let id = session["id"].as_str().unwrap();

    let (status, answer) = pay(&running, id, "succeeded", true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["session"]["status"], "complete");
    assert_eq!(answer["session"]["payment_status"], "paid");
    assert!(answer["session"]["payment_intent"].as_str().unwrap().starts_with("pi_"));

    // The charge's own event follows ("charge.succeeded": its payment_method_details).
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(kinds(&deliveries), ["checkout.session.completed", "charge.succeeded"]);
    assert_eq!(deliveries[1].event()["data"]["object"]["payment_method_details"]["card"]["last4"], "4242");
    assert_signed(&deliveries[0], &running);
    let event = deliveries[0].event();
    assert_eq!(event["id"], answer["events"][0]);
    assert_eq!(event["account"], ACCOUNT);
    assert_eq!(event["pending_webhooks"], 1);
    assert_eq!(event["data"]["object"]["id"], id);
    assert_eq!(event["data"]["object"]["payment_status"], "paid");
    assert_eq!(event["data"]["object"]["metadata"]["action_id"], "act_1");
    // The body is compact JSON, byte for byte what was signed.
    assert_eq!(deliveries[0].body, event.to_string());
}

#[tokio::test]
async fn delayed_outcomes_emit_completed_then_async_result() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;

    let good = create_session(&running, None).await;
    let (_, answer) = pay(&running, good["id"].as_str().unwrap(), "delayed_succeeded", true).await;
    assert_eq!(answer["events"].as_array().unwrap().len(), 3);
    assert_eq!(answer["session"]["payment_status"], "paid");
    // The debit clears: its charge succeeds, then the session says so.
    let deliveries = receiver.wait_for(3, WAIT).await;
    assert_eq!(
        kinds(&deliveries),
        ["checkout.session.completed", "charge.succeeded", "checkout.session.async_payment_succeeded"]
    );
    assert_eq!(deliveries[1].event()["data"]["object"]["payment_method_details"]["type"], "acss_debit");
    let (completed, succeeded) = (deliveries[0].event(), deliveries[2].event());
    assert!(completed.get("account").is_none(), "platform events carry no account");
    assert_eq!(completed["data"]["object"]["status"], "complete");
    assert_eq!(completed["data"]["object"]["payment_status"], "unpaid");
    assert_eq!(succeeded["data"]["object"]["payment_status"], "paid");
    deliveries.iter().for_each(|d| assert_signed(d, &running));

    let bad = create_session(&running, None).await;
    let bad_id = bad["id"].as_str().unwrap();
    let (_, answer) = pay(&running, bad_id, "delayed_failed", true).await;
    assert_eq!(answer["session"]["status"], "complete");
    assert_eq!(answer["session"]["payment_status"], "unpaid");
    let deliveries = receiver.wait_for(5, WAIT).await;
    assert_eq!(kinds(&deliveries[3..]), ["checkout.session.completed", "checkout.session.async_payment_failed"]);
    assert_eq!(deliveries[4].event()["data"]["object"]["payment_status"], "unpaid");
    // The failed debit left no successful charge: nothing to refund.
    let (_, expanded) = api_get(&running, &format!("checkout/sessions/{bad_id}?expand[0]=payment_intent"), None).await;
    assert_eq!(expanded["payment_intent"]["status"], "requires_payment_method");
    assert_eq!(expanded["payment_intent"]["latest_charge"], Value::Null);
    let (status, error) = api_post(
        &running,
        "refunds",
        &format!("payment_intent={}", expanded["payment_intent"]["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn expiry_by_api_and_by_time_emits_expired_once() {
    let (receiver, url) = receiver().await;
    let running = start(None).await;
    // The URL is learnt after the emulator is built (as in the local runner).
    running.emulator.set_webhook_url(Some(url));

    let first = create_session(&running, Some(ACCOUNT)).await;
    let first_id = first["id"].as_str().unwrap();
    let (status, expired) =
        api_post(&running, &format!("checkout/sessions/{first_id}/expire"), "", Some(ACCOUNT)).await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["status"], "expired");
    let deliveries = receiver.wait_for(1, WAIT).await;
    assert_eq!(kinds(&deliveries), ["checkout.session.expired"]);
    assert_eq!(deliveries[0].event()["request"]["id"].as_str().map(|r| r.starts_with("req_")), Some(true));

    // Past `expires_at` (24 h by default), the session expires by itself, once.
    let second = create_session(&running, Some(ACCOUNT)).await;
    let second_id = second["id"].as_str().unwrap();
    let response = http()
        .post(format!("{}/test/clock/advance", running.base))
        .body(json!({"seconds": 24 * 3600 + 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, fetched) = api_get(&running, &format!("checkout/sessions/{second_id}"), Some(ACCOUNT)).await;
    assert_eq!(fetched["status"], "expired");
    assert_eq!(fetched["url"], Value::Null);
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(deliveries[1].event()["type"], "checkout.session.expired");
    assert_eq!(deliveries[1].event()["data"]["object"]["id"], second_id);
    assert_eq!(deliveries[1].event()["request"]["id"], Value::Null);
    let (status, error) = pay(&running, second_id, "succeeded", true).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "session_not_open");

    let (_, events) = api_get(&running, "events?type=checkout.session.expired", Some(ACCOUNT)).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 2, "{events}");
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    receiver.fail_next(4); // each of the two events fails twice
    let session = create_session(&running, None).await;
    pay(&running, session["id"].as_str().unwrap(), "succeeded", true).await;
    // Retries come on Stripe's backoff, on the emulated clock: a minute, then five.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        running.emulator.advance_clock(600);
    }
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(receiver.attempts(), 6, "two events, each failed twice");
    assert_eq!(kinds(&deliveries), ["checkout.session.completed", "charge.succeeded"]);
    assert_signed(&deliveries[0], &running);
}

#[tokio::test]
async fn muted_payments_are_recorded_not_delivered() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;

    let muted = create_session(&running, Some(ACCOUNT)).await;
    let (_, answer) = pay(&running, muted["id"].as_str().unwrap(), "delayed_succeeded", false).await;
    let muted_events: Vec<&str> = answer["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(muted_events.len(), 3, "completed, the charge, async succeeded");

    // Deliveries are in emission order: once this later event arrives, the muted ones would have.
    let loud = create_session(&running, Some(ACCOUNT)).await;
    let (_, answer) = pay(&running, loud["id"].as_str().unwrap(), "succeeded", true).await;
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].event()["id"], answer["events"][0]);

    let (status, events) = api_get(&running, "events", Some(ACCOUNT)).await;
    assert_eq!(status, 200);
    assert_eq!(events["object"], "list");
    assert_eq!(events["url"], "/v1/events");
    let listed: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let loud_events: Vec<&str> = answer["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(listed, [loud_events[1], loud_events[0], muted_events[2], muted_events[1], muted_events[0]]);
    assert_eq!(events["data"][4]["pending_webhooks"], 0);
    assert_eq!(events["data"][2]["type"], "checkout.session.async_payment_succeeded");

    // Pagination and filters.
    let (_, page) = api_get(&running, &format!("events?limit=1&starting_after={}", listed[0]), Some(ACCOUNT)).await;
    assert_eq!(page["data"][0]["id"], listed[1]);
    assert_eq!(page["has_more"], true);
    let (_, filtered) = api_get(&running, "events?type=checkout.session.completed", Some(ACCOUNT)).await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 2);
    let (_, other) = api_get(&running, "events", Some(OTHER_ACCOUNT)).await;
    assert_eq!(other["data"], json!([]));
}

#[tokio::test]
async fn declined_card_keeps_the_session_open() {
    let (receiver, url) = receiver().await;
    let running = start(Some(url)).await;
    let session = create_session(&running, None).await;
    let id = session["id"].as_str().unwrap();
    let (status, answer) = pay(&running, id, "declined", true).await;
    assert_eq!(status, 200);
    assert_eq!(answer["declined"], true);
    assert_eq!(answer["events"], json!([]));
    assert_eq!(answer["session"]["status"], "open");
    // The patient retries with another card.
    let (_, answer) = pay(&running, id, "succeeded", true).await;
    assert_eq!(answer["session"]["status"], "complete");
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(kinds(&deliveries), ["checkout.session.completed", "charge.succeeded"]);
    // Paying a completed session is refused.
    let (status, error) = pay(&running, id, "succeeded", true).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "session_not_open");
}
