//! In-process handler tests driven by the API Gateway v2 events in `events/`:
//! the exact JSON Lambda receives, through the same `handle` the functions run.

use std::path::PathBuf;
use std::sync::Arc;

use crate::support::kit::deps_with;
use crate::support::*;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use visitpay_edge::http::functions::{self, Function};
use visitpay_edge::http::handle;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn event(name: &str) -> Value {
    let path = events_dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Sends an event to the function API Gateway would route it to.
async fn send(deps: &TestDeps, event: &Value) -> (StatusCode, Value, Response<Body>) {
    let route_key = event["routeKey"].as_str().unwrap();
    let function = functions::by_key(route_key).map_or(Function::ActionStatus, Function::serving);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let response = handle(deps, function, request).await;
    let body: Value = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Empty => Value::Null,
        // A PDF is no JSON: its bytes stay in the response.
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status(), body, response)
}

async fn seeded() -> TestDeps {
    let (deps, _clock) = deps_with(Arc::new(crate::support::kit::embedded_store()));
    import(&deps, "clinic-a", "patient-42", "1042", 4500, "cad").await;
    deps
}

fn with_claims(mut e: Value, claims: Value) -> Value {
    e["requestContext"]["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
    e
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test]
async fn the_staff_flow_through_every_event() {
    let deps = seeded().await;

    let (s, b, _) = send(&deps, &event("put-payment-settings")).await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(true)), "{b}");
    let (s, b, _) = send(&deps, &event("get-payment-settings")).await;
    assert_eq!((s, b["label"]["fr"].as_str()), (StatusCode::OK, Some("Facturation privée (Stripe)")));

    let (s, b, _) = send(&deps, &event("put-invoice")).await;
    assert_eq!((s, b["amount"].as_i64(), b["status"].as_str()), (StatusCode::CREATED, Some(3000), Some("unprocessed")));
    let (s, _, _) = send(&deps, &event("put-invoice")).await;
    assert_eq!(s, StatusCode::OK, "a re-import replaces");

    let (s, b, _) = send(&deps, &event("list-invoices")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["invoices"].as_array().unwrap().len(), 2);

    let (s, b, _) = send(&deps, &event("select-invoices")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], json!({"amount": 7500, "currency": "cad"}));

    let (s, b, _) = send(&deps, &event("assign-action")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["action_id"], "act_0001");
    assert_eq!(b["label"], "Facturation privée (Stripe)");
    assert_eq!(
        (b["amount"].as_i64(), b["status"].as_str(), b["locale"].as_str()),
        (Some(7500), Some("assigned"), Some("fr-CA"))
    );
    let url = b["patient_url"].as_str().unwrap();
    assert!(url.ends_with(event("get-patient-action")["pathParameters"]["token"].as_str().unwrap()));

    let (s, replay, response) = send(&deps, &event("assign-action")).await;
    assert_eq!((s, replay["action_id"].as_str()), (StatusCode::CREATED, Some("act_0001")));
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    let mut other_body = event("assign-action");
    other_body["body"] = json!(r#"{"patient_id":"patient-42","invoice_ids":["1042"]}"#).as_str().unwrap().into();
    let (s, b, _) = send(&deps, &other_body).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "idempotency_key_reused"));

    let (s, b, _) = send(&deps, &event("list-invoices")).await;
    assert_eq!((s, b["invoices"].as_array().unwrap().len()), (StatusCode::OK, 0), "no invoice is unprocessed now");

    let (s, b, _) = send(&deps, &event("list-visit-actions")).await;
    assert_eq!((s, b["actions"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    assert!(b["actions"][0].get("patient_url").is_none(), "the link is shown once");

    let (s, b, _) = send(&deps, &event("get-action")).await;
    assert_eq!(
        (s, b["status"].as_str(), b["history"].as_array().map(Vec::len)),
        (StatusCode::OK, Some("assigned"), Some(1))
    );

    let (s, b, _) = send(&deps, &event("get-patient-action")).await;
    assert_eq!(s, StatusCode::OK);
    let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["amount", "currency", "label", "locale", "status"], "the patient sees nothing else");

    let (s, b, _) = send(&deps, &event("cancel-action")).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let mut selected = event("list-invoices");
    selected["queryStringParameters"] = json!({"status": "selected"});
    selected["rawQueryString"] = json!("status=selected");
    let (_, b, _) = send(&deps, &selected).await;
    let ids: Vec<&str> = b["invoices"].as_array().unwrap().iter().map(|i| i["invoice_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["1042", "1045"]);
}

#[tokio::test]
async fn auth_is_enforced_per_route() {
    let deps = seeded().await;
    send(&deps, &event("put-payment-settings")).await;

    let mut no_auth = event("get-action");
    no_auth["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let (s, b, _) = send(&deps, &no_auth).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));

    let staff_on_support =
        with_claims(event("put-payment-settings"), json!({"sub": "u", "clinic_id": "clinic-a", "role": "staff"}));
    let (s, b, _) = send(&deps, &staff_on_support).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "forbidden"));

    let support_on_staff =
        with_claims(event("list-invoices"), json!({"sub": "u", "clinic_id": "clinic-a", "role": "support"}));
    assert_eq!(send(&deps, &support_on_staff).await.0, StatusCode::FORBIDDEN);

    let unknown_role =
        with_claims(event("list-invoices"), json!({"sub": "u", "clinic_id": "clinic-a", "role": "admin"}));
    assert_eq!(send(&deps, &unknown_role).await.0, StatusCode::UNAUTHORIZED);

    // Staff of clinic B: 404 for everything of clinic A.
    assert_eq!(send(&deps, &event("put-invoice")).await.0, StatusCode::CREATED);
    assert_eq!(send(&deps, &event("select-invoices")).await.0, StatusCode::OK);
    assert_eq!(send(&deps, &event("assign-action")).await.0, StatusCode::CREATED);
    let b_staff = json!({"sub": "u", "clinic_id": "clinic-b", "role": "staff"});
    for name in ["get-payment-settings", "get-action", "cancel-action", "select-invoices"] {
        let (s, b, _) = send(&deps, &with_claims(event(name), b_staff.clone())).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{name}: {b}");
    }
    let (s, b, _) = send(&deps, &with_claims(event("list-visit-actions"), b_staff.clone())).await;
    assert_eq!((s, b["actions"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (_, b, _) = send(&deps, &event("get-action")).await;
    assert_eq!(b["status"], "assigned", "clinic B changed nothing");
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_changes_nothing() {
    let deps = seeded().await;
    send(&deps, &event("put-payment-settings")).await;
    let invoice_body = |v: Value| {
        let mut e = event("put-invoice");
        e["body"] = Value::String(v.to_string());
        e
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            invoice_body(json!({"amount": -5, "currency": "cad", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            invoice_body(json!({"amount": 0, "currency": "cad", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            invoice_body(json!({"amount": 1_000_000_000_000i64, "currency": "cad", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            invoice_body(json!({"amount": 1e30, "currency": "cad", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            invoice_body(json!({"amount": 12.5, "currency": "cad", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            invoice_body(json!({"amount": 100, "currency": "xyz", "service_date": "2027-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_currency",
        ),
        (
            invoice_body(json!({"amount": 100, "currency": "cad", "service_date": "yesterday"})),
            StatusCode::BAD_REQUEST,
            "invalid_date",
        ),
        (
            invoice_body(json!({"amount": 100, "currency": "cad", "service_date": "2027-01-01", "status": "paid"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (e, status, code) in cases {
        let (s, b, _) = send(&deps, &e).await;
        assert_eq!((s, error_code(&b)), (status, code), "{}", e["body"]);
        assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let mut malformed = event("select-invoices");
    malformed["body"] = json!("{\"invoice_ids\": [");
    let (s, b, _) = send(&deps, &malformed).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_json"));

    let mut client_amount = event("assign-action");
    client_amount["headers"].as_object_mut().unwrap().remove("idempotency-key");
    client_amount["body"] = json!(r#"{"patient_id":"patient-42","invoice_ids":["1042"],"amount":1}"#);
    let (s, b, _) = send(&deps, &client_amount).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_body"), "the client never sends an amount");

    for bad_id in ["a#b", "x".repeat(65).as_str(), "é"] {
        let mut e = event("put-invoice");
        e["pathParameters"]["invoice_id"] = json!(bad_id);
        let (s, b, _) = send(&deps, &e).await;
        assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_id"), "{bad_id}");
        let mut e = event("select-invoices");
        e["body"] = Value::String(json!({"invoice_ids": [bad_id]}).to_string());
        assert_eq!(error_code(&send(&deps, &e).await.1), "invalid_id");
    }

    let mut huge = event("select-invoices");
    huge["body"] = Value::String(format!("{{\"invoice_ids\":[\"{}\"]}}", "a".repeat(70 * 1024)));
    let (s, b, _) = send(&deps, &huge).await;
    assert_eq!((s, error_code(&b)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    let mut bad_key = event("assign-action");
    bad_key["headers"]["idempotency-key"] = json!("has spaces in it");
    assert_eq!(error_code(&send(&deps, &bad_key).await.1), "invalid_idempotency_key");

    let mut bad_filter = event("list-invoices");
    bad_filter["queryStringParameters"] = json!({"status": "lost"});
    bad_filter["rawQueryString"] = json!("status=lost");
    assert_eq!(error_code(&send(&deps, &bad_filter).await.1), "invalid_status");

    // Nothing above changed any invoice.
    let mut all = event("list-invoices");
    all.as_object_mut().unwrap().remove("queryStringParameters");
    all["rawQueryString"] = json!("");
    let (_, b, _) = send(&deps, &all).await;
    assert_eq!(b["invoices"].as_array().unwrap().len(), 1);
    assert_eq!(b["invoices"][0]["status"], "unprocessed");
}

#[tokio::test]
async fn a_switched_off_clinic_refuses_assign() {
    let deps = seeded().await;
    let mut off = event("put-payment-settings");
    let mut body: Value = serde_json::from_str(off["body"].as_str().unwrap()).unwrap();
    body["enabled"] = json!(false);
    off["body"] = Value::String(body.to_string());
    assert_eq!(send(&deps, &off).await.0, StatusCode::OK);
    send(&deps, &event("put-invoice")).await;
    send(&deps, &event("select-invoices")).await;
    let (s, b, _) = send(&deps, &event("assign-action")).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "payments_disabled"));
}

#[tokio::test]
async fn base64_bodies_are_decoded_and_misrouted_events_refused() {
    use base64::Engine as _;
    let deps = seeded().await;
    let mut e = event("put-payment-settings");
    let raw = e["body"].as_str().unwrap().to_owned();
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    e["isBase64Encoded"] = json!(true);
    assert_eq!(send(&deps, &e).await.0, StatusCode::OK);

    // An event for a route this function does not serve.
    let request = lambda_http::request::from_str(&event("get-action").to_string()).unwrap();
    let response = handle(&deps, Function::ClinicSettings, request).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Stripe's webhook (base64 body, as API Gateway sends it) is verified and
/// queued; the SQS batch is applied by the consumer, whose partial-failure
/// answer names only the record that cannot be applied.
#[tokio::test]
async fn webhook_and_consumer_events_pay_the_action() {
    use visitpay_devkit::embedded_queue::EmbeddedQueue;
    let mut deps = seeded().await;
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    deps.queue = queue.clone();
    for name in ["put-payment-settings", "put-invoice", "select-invoices", "assign-action"] {
        assert!(send(&deps, &event(name)).await.0.is_success(), "{name}");
    }

    let (s, b, _) = send(&deps, &event("stripe-webhook")).await;
    assert_eq!((s, &b), (StatusCode::OK, &json!({"received": true})));
    assert_eq!(queue.depth(), 1);
    let mut tampered = event("stripe-webhook");
    tampered["body"] = json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, br#"{"id":"evt_x"}"#));
    let (s, b, _) = send(&deps, &tampered).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_signature"));
    assert_eq!(queue.depth(), 1, "a refused delivery queues nothing");

    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(event("sqs-payment-events")).expect("a valid SQS event");
    let response = visitpay_edge::lambda::consumer::handle(&deps, sqs.clone()).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    // The completion's payment is applied; this test has no Stripe to ask
    // how it was paid, so that record goes back to the queue to ask again.
    // The poison record fails for good.
    assert_eq!(failed, vec!["0d6c2a6e-1f0e-4a47-9f3e-7c1d2b9f1a01", "0d6c2a6e-1f0e-4a47-9f3e-7c1d2b9f1a02"]);
    let (_, paid, _) = send(&deps, &event("get-action")).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["history"].as_array().unwrap().last().unwrap()["actor"], "stripe:evt_1QvisitpayExample000001");
    let (_, listed, _) = send(&deps, &event("list-invoices")).await;
    assert!(listed["invoices"].as_array().unwrap().is_empty(), "no invoice is unprocessed");
    // Delivered again: nothing changes.
    let again = visitpay_edge::lambda::consumer::handle(&deps, sqs).await;
    assert_eq!(again.batch_item_failures.len(), 2);
    let (_, after, _) = send(&deps, &event("get-action")).await;
    assert_eq!(after, paid, "a duplicate delivery changes nothing");

    // The receipt's PDF, from its own function.
    let (s, _, pdf) = send(&deps, &event("get-patient-receipt-pdf")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(matches!(pdf.body(), Body::Binary(b) if b.starts_with(b"%PDF-")));
}

/// The send route's event, then send-messages' three triggers as Lambda
/// delivers them: the table's stream record of the new message (twice),
/// the schedule, and the patient's STOP through the SMS topic.
#[tokio::test]
async fn send_messages_events_deliver_the_link_and_take_the_reply() {
    use visitpay_domain::Channel;
    use visitpay_edge::lambda::messages::{self, Trigger};
    let mut deps = seeded().await;
    let outbox = crate::support::kit::record_messages(&mut deps);
    for name in ["put-payment-settings", "put-invoice", "select-invoices", "assign-action"] {
        assert!(send(&deps, &event(name)).await.0.is_success(), "{name}");
    }
    let mut bad = event("send-action-link");
    bad["body"] = json!(r#"{"sms":"514-555-0142"}"#);
    let (s, b, _) = send(&deps, &bad).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_phone"), "no country code");
    let (s, b, _) = send(&deps, &event("send-action-link")).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::ACCEPTED, Some("assigned")), "{b}");
    // With an Idempotency-Key, a retried request decides nothing more.
    let mut keyed = event("send-action-link");
    keyed["headers"]["idempotency-key"] = json!("send-again-1");
    let (s, first, _) = send(&deps, &keyed).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, again, replayed) = send(&deps, &keyed).await;
    assert_eq!((s, &again), (StatusCode::ACCEPTED, &first));
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    let mut other = keyed.clone();
    other["body"] = json!(r#"{"email":"someone.else@example.com"}"#);
    let (s, b, _) = send(&deps, &other).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "idempotency_key_reused"));
    let (_, action, _) = send(&deps, &event("get-action")).await;
    let sends = action["history"].as_array().unwrap().len();
    assert_eq!(sends, 1, "deciding a send writes no history until it goes: {action}");

    let stream = || match messages::trigger(event("dynamodb-stream-new-messages")).unwrap() {
        Trigger::Stream(batch) => batch,
        _ => panic!("a stream batch"),
    };
    assert!(messages::stream(&deps, stream()).await.batch_item_failures.is_empty());
    let sent = outbox.all();
    let to: Vec<(Channel, &str)> = sent.iter().map(|m| (m.channel, m.to.as_str())).collect();
    assert_eq!(to, [(Channel::Email, "patient42@example.com"), (Channel::Sms, "+15145550142")]);
    // The same record again (Lambda delivers at least once): nothing more goes out.
    assert!(messages::stream(&deps, stream()).await.batch_item_failures.is_empty());
    assert_eq!(outbox.all().len(), 2);

    // The schedule's sweep: the keyed send's message (link-2), once.
    assert!(matches!(messages::trigger(event("send-messages-schedule")).unwrap(), Trigger::Schedule));
    assert_eq!(visitpay_app::messages::deliver_due(&deps, messages::SWEEP_BATCH).await.unwrap().sent, 1);
    assert_eq!(visitpay_app::messages::deliver_due(&deps, messages::SWEEP_BATCH).await.unwrap().due, 0);
    assert_eq!(outbox.all().len(), 4);

    let Trigger::Inbound(texts) = messages::trigger(event("sns-inbound-sms")).unwrap() else {
        panic!("an inbound text")
    };
    assert_eq!(messages::inbound(&deps, texts).await.unwrap(), 1, "STOP recorded");
    // The link again: by email only, the number having said STOP.
    assert_eq!(send(&deps, &event("send-action-link")).await.0, StatusCode::ACCEPTED);
    visitpay_app::messages::deliver_due(&deps, messages::SWEEP_BATCH).await.unwrap();
    let channels: Vec<Channel> = outbox.all().iter().map(|m| m.channel).collect();
    assert_eq!(channels, [Channel::Email, Channel::Sms, Channel::Email, Channel::Sms, Channel::Email]);
    assert!(messages::trigger(json!({"detail-type": "something else"})).is_err(), "not an event it takes");
}

/// The patient's checkout event, against the Stripe emulator through the real client.
#[tokio::test]
async fn create_checkout_event_opens_a_session() {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    import(&deps, "clinic-a", "patient-42", "1042", 4500, "cad").await;
    let mut settings = event("put-payment-settings");
    settings["body"] = json!(settings["body"].as_str().unwrap().replace("acct_1ClinicA", ACCOUNT));
    for e in [settings, event("put-invoice"), event("select-invoices"), event("assign-action")] {
        assert!(send(&deps, &e).await.0.is_success());
    }
    let (s, b, _) = send(&deps, &event("create-checkout")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["checkout_url"].as_str().unwrap().starts_with(&stripe.base));
    assert!(b["expires_at"].as_str().is_some());
    let (s2, b2, _) = send(&deps, &event("create-checkout")).await;
    assert_eq!((s2, &b2), (StatusCode::OK, &b), "a repeat click gives the same session");
    let (_, patient, _) = send(&deps, &event("get-patient-action")).await;
    assert_eq!(patient["status"], "checkout_open");
}

/// Staff refund through its event, after the patient paid through the
/// checkout and Stripe events; then the schedule's event runs reconcile.
#[tokio::test]
async fn refund_and_schedule_events() {
    use visitpay_devkit::embedded_queue::EmbeddedQueue;
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10)));
    let (deps, clock) =
        deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, Some(queue.clone()));
    import(&deps, "clinic-a", "patient-42", "1042", 4500, "cad").await;
    let mut settings = event("put-payment-settings");
    settings["body"] = json!(settings["body"].as_str().unwrap().replace("acct_1ClinicA", ACCOUNT));
    for e in
        [settings, event("put-invoice"), event("select-invoices"), event("assign-action"), event("create-checkout")]
    {
        assert!(send(&deps, &e).await.0.is_success());
    }
    let (_, action, _) = send(&deps, &event("get-action")).await;
    stripe.pay(action["checkout_session_id"].as_str().unwrap(), "succeeded").await;
    for e in stripe.events().await {
        apply_stripe_event(&deps, &e.to_string()).await.unwrap();
    }
    let (s, b, _) = send(&deps, &event("refund-action")).await;
    assert_eq!(
        (s, b["status"].as_str(), b["refunded_amount"].as_i64()),
        (StatusCode::OK, Some("partially_refunded"), Some(2500))
    );
    let (s, b, _) = send(&deps, &event("refund-action")).await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("partially_refunded")),
        "a second 25.00 still fits: {b}"
    );
    let (s, b, _) = send(&deps, &event("refund-action")).await;
    assert_eq!(
        (s, b["status"].as_str(), b["refunded_amount"].as_i64()),
        (StatusCode::OK, Some("refunded"), Some(7500))
    );
    let (s, b, _) = send(&deps, &event("refund-action")).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "not_refundable"));

    // The schedule's event is what the reconcile function receives; an
    // action left unpaid past its lifetime is expired by that run.
    let _: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(event("reconcile-schedule")).expect("an EventBridge scheduled event");
    import(&deps, "clinic-a", "patient-42", "2000", 100, "cad").await;
    let mut select = event("select-invoices");
    select["body"] = json!(r#"{"invoice_ids":["2000"]}"#);
    let mut assign = event("assign-action");
    assign["headers"].as_object_mut().unwrap().remove("idempotency-key");
    assign["body"] = json!(r#"{"patient_id":"patient-42","invoice_ids":["2000"]}"#);
    assert!(send(&deps, &select).await.0.is_success());
    assert_eq!(send(&deps, &assign).await.0, StatusCode::CREATED);
    clock.advance(73 * 3600);
    let config = visitpay_app::reconcile::ReconcileConfig { min_age: time::Duration::seconds(300), batch: 10 };
    let report = visitpay_app::reconcile::run(&deps, config).await.unwrap();
    assert_eq!((report.actions_expired, report.errors), (1, 0), "{report:?}");
}

#[test]
fn every_event_file_is_used_by_a_test() {
    let source = include_str!("handlers.rs");
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        let stem = name.trim_end_matches(".json");
        assert!(source.contains(&format!("event(\"{stem}\")")), "events/{name} is not used by any test");
    }
}

/// A polling client pays almost nothing: each read carries an ETag; the same
/// read with `If-None-Match` is `304 Not Modified`, no body, nothing written;
/// once the action changes, 200 with a new ETag. The same for a visit's list.
#[tokio::test]
async fn reads_are_conditional_on_their_etag() {
    let (deps, _clock) = deps_with(Arc::new(crate::support::kit::embedded_store()));
    let (action, _token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let staff_claims = claims("staff-1", "c1", "staff");
    let read = |path: String, etag: Option<String>| {
        let deps = deps.clone();
        let staff_claims = staff_claims.clone();
        async move {
            let headers: Vec<(&str, &str)> = etag.as_deref().map(|e| vec![("if-none-match", e)]).unwrap_or_default();
            let request = api_request("GET", &path, Some(&staff_claims), &headers, None);
            handle(&deps, Function::ActionStatus, request).await
        }
    };
    for path in [format!("/actions/{}", action.action_id()), "/visits/v1/actions".to_owned()] {
        let first = read(path.clone(), None).await;
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let again = read(path.clone(), Some(etag.clone())).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(matches!(again.body(), Body::Empty), "no body");
        assert_eq!(again.headers()["etag"], etag.as_str());
        for list in [format!("\"other\", W/{etag}"), "*".to_owned()] {
            assert_eq!(read(path.clone(), Some(list.clone())).await.status(), StatusCode::NOT_MODIFIED, "{list}");
        }
        assert_eq!(read(path.clone(), Some("\"other\"".into())).await.status(), StatusCode::OK);
        let stored = visitpay_app::actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
        assert_eq!(stored.version, action.version, "a read writes nothing");
    }

    let before = read(format!("/actions/{}", action.action_id()), None).await.headers()["etag"].clone();
    visitpay_app::actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    let changed = read(format!("/actions/{}", action.action_id()), Some(before.to_str().unwrap().to_owned())).await;
    assert_eq!(changed.status(), StatusCode::OK, "a changed action is read again");
    assert_ne!(changed.headers()["etag"], before);
}

/// publish-action-events, fed the DynamoDB stream event Lambda sends
/// (records as moto's stream gives them, with the mapping's
/// `eventSourceARN`): the assignment and the opened checkout are events;
/// the write that only reserved a checkout attempt is none.
#[tokio::test]
async fn the_stream_handler_publishes_each_visible_change_of_the_fixture() {
    use crate::support::kit::RecordingBus;
    use aws_lambda_events::event::dynamodb::Event;
    use visitpay_edge::lambda::status_stream;
    let stream: Event = serde_json::from_value(event("dynamodb-stream-action-changes")).unwrap();
    let bus = RecordingBus::accepting();
    let response = status_stream::handle(&bus, stream.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    let accepted = bus.accepted.lock().unwrap().clone();
    let seen: Vec<(&str, Option<&str>, u64)> =
        accepted.iter().map(|e| (e.status.as_str(), e.previous_status.map(|s| s.as_str()), e.version)).collect();
    assert_eq!(seen, [("assigned", None, 1), ("checkout_open", Some("assigned"), 3)]);
    assert_eq!((accepted[0].amount, accepted[0].clinic_id.as_str()), (4500, "c1"));

    // EventBridge keeps refusing the second: Lambda is told to deliver again
    // from its record (the third), and the first is not held back.
    let bus = RecordingBus::refusing(|e| e.version == 3);
    let response = status_stream::handle(&bus, stream.clone()).await;
    let failed: Vec<Option<String>> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, [stream.records[2].change.sequence_number.clone()]);
    assert_eq!(bus.accepted.lock().unwrap().len(), 1);

    // An action image the domain cannot read is reported, never skipped.
    let mut broken = event("dynamodb-stream-action-changes");
    broken["Records"][0]["dynamodb"]["NewImage"]["status"] = json!({"S": "settled"});
    let broken: Event = serde_json::from_value(broken).unwrap();
    let bus = RecordingBus::accepting();
    let response = status_stream::handle(&bus, broken).await;
    let failed: Vec<Option<String>> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, [stream.records[0].change.sequence_number.clone()]);
    assert!(bus.accepted.lock().unwrap().is_empty(), "nothing after an unreadable record goes out before it");
}

/// Deployed, the patient routes sit behind the edge (CloudFront and its WAF
/// web ACL), which adds `x-visitpay-edge` with the deployment's secret. A
/// request without it came to API Gateway's own address, around the
/// per-client limits: refused, 403 `edge_required`, before anything is read.
/// Staff routes (JWT) are not behind the edge and are not affected.
#[tokio::test]
async fn patient_routes_answer_only_what_came_through_the_edge() {
    let mut deps = seeded().await;
    let (s, _, _) = send(&deps, &event("put-payment-settings")).await;
    assert_eq!(s, StatusCode::OK);
    send(&deps, &event("put-invoice")).await;
    send(&deps, &event("select-invoices")).await;
    let (s, b, _) = send(&deps, &event("assign-action")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    deps.config.edge_secret = Some("edge-secret-of-this-deployment".into());

    let (s, b, _) = send(&deps, &event("get-patient-action")).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "edge_required"), "{b}");
    let mut forged = event("get-patient-action");
    forged["headers"]["x-visitpay-edge"] = json!("a-guess");
    let (s, b, _) = send(&deps, &forged).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "edge_required"), "{b}");
    let mut through = event("get-patient-action");
    through["headers"]["x-visitpay-edge"] = json!("edge-secret-of-this-deployment");
    let (s, b, _) = send(&deps, &through).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("assigned")), "{b}");
    let (s, _, _) = send(&deps, &event("list-visit-actions")).await;
    assert_eq!(s, StatusCode::OK, "staff routes are not behind the edge");
}
