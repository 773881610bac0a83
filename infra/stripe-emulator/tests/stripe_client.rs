//! The emulator through the real `async-stripe` client: shapes, connected accounts, idempotency.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ListLineItemsCheckoutSession, ProductData,
    RetrieveCheckoutSession,
};
use stripe_core::refund::CreateRefund;
use stripe_shared::{CheckoutSession, CheckoutSessionLocale, CheckoutSessionMode, CheckoutSessionStatus};
use stripe_types::{Currency, Expandable, List};

fn in_an_hour() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3600
}

fn new_session(amount: i64, action: &str, expires_at: i64) -> CreateCheckoutSession {
    let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::CAD);
    price.unit_amount = Some(amount);
    price.product_data = Some(ProductData::new("Clinic services"));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);
    let mut intent = CreateCheckoutSessionPaymentIntentData::new();
    intent.metadata = Some(HashMap::from([("action_id".to_owned(), action.to_owned())]));
    intent.application_fee_amount = Some(100);
    CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(vec![item])
        .success_url("https://clinic.test/ok?session={CHECKOUT_SESSION_ID}")
        .cancel_url("https://clinic.test/cancel")
        .client_reference_id(action)
        .customer_email("patient@example.com")
        .locale(CheckoutSessionLocale::FrMinusCa)
        .metadata(HashMap::from([("action_id".to_owned(), action.to_owned())]))
        .payment_intent_data(intent)
        .expires_at(expires_at)
}

fn idempotent(key: &str) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).unwrap())
}

fn api_error(error: StripeError) -> (u16, String, Option<String>, String) {
    match error {
        StripeError::Stripe(error, status) => (
            status,
            error.type_.as_str().to_owned(),
            error.code.map(|c| c.as_str().to_owned()),
            error.message.unwrap_or_default(),
        ),
        other => panic!("expected a Stripe API error, got {other:?}"),
    }
}

#[tokio::test]
async fn checkout_sessions_through_async_stripe() {
    let running = start(None).await;
    let client = stripe_client(&running);
    let account = stripe::AccountId::from(ACCOUNT);
    let expires_at = in_an_hour();

    let session = new_session(4500, "act_1", expires_at)
        .customize()
        .account_id(account.clone())
        .request_strategy(idempotent("create-act_1"))
        .send(&client)
        .await
        .unwrap();
    assert!(session.id.as_str().starts_with("cs_test_"));
    assert_eq!(session.id.len(), "cs_test_".len() + 24);
    assert_eq!(session.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(session.amount_total, Some(4500));
    assert_eq!(session.currency, Some(Currency::CAD));
    assert_eq!(session.url.as_deref(), Some(format!("{}/checkout/{}", running.base, session.id).as_str()));
    assert_eq!(session.metadata.as_ref().unwrap()["action_id"], "act_1");
    assert_eq!(session.locale, Some(CheckoutSessionLocale::FrMinusCa));

    // The same key with the same parameters replays the first answer.
    let replay = new_session(4500, "act_1", expires_at)
        .customize()
        .account_id(account.clone())
        .request_strategy(idempotent("create-act_1"))
        .send(&client)
        .await
        .unwrap();
    assert_eq!(replay.id, session.id);

    // The same key with other parameters is refused.
    let error = new_session(9900, "act_1", expires_at)
        .customize()
        .account_id(account.clone())
        .request_strategy(idempotent("create-act_1"))
        .send(&client)
        .await
        .unwrap_err();
    let (status, kind, _, message) = api_error(error);
    assert_eq!((status, kind.as_str()), (400, "idempotency_error"));
    assert!(message.contains("create-act_1"), "{message}");

    // The same key on another account is another key.
    let other = new_session(4500, "act_1", expires_at)
        .customize()
        .account_id(stripe::AccountId::from(OTHER_ACCOUNT))
        .request_strategy(idempotent("create-act_1"))
        .send(&client)
        .await
        .unwrap();
    assert_ne!(other.id, session.id);

    // Retrieve on the right account; not found elsewhere.
    let fetched: CheckoutSession = RetrieveCheckoutSession::new(session.id.clone())
        .customize()
        .account_id(account.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(fetched.id, session.id);
    for wrong in [Some(OTHER_ACCOUNT), None] {
        let mut request = RetrieveCheckoutSession::new(session.id.clone()).customize();
        if let Some(wrong) = wrong {
            request = request.account_id(stripe::AccountId::from(wrong));
        }
        let (status, _, code, message) = api_error(request.send(&client).await.unwrap_err());
        assert_eq!((status, code.as_deref()), (404, Some("resource_missing")));
        assert_eq!(message, format!("No such checkout.session: '{}'", session.id));
    }

    let items = ListLineItemsCheckoutSession::new(session.id.clone())
        .customize()
        .account_id(account.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(items.data.len(), 1);
    assert_eq!(items.data[0].description.as_deref(), Some("Clinic services"));
    assert_eq!(items.data[0].amount_total, 4500);
    assert_eq!(items.data[0].price.as_ref().unwrap().unit_amount, Some(4500));

    let expired = ExpireCheckoutSession::new(session.id.clone())
        .customize()
        .account_id(account.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
    assert_eq!(expired.url, None);
    let (status, _, _, message) = api_error(
        ExpireCheckoutSession::new(session.id.clone())
            .customize()
            .account_id(account.clone())
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \
         `expired`."
    );
}

#[tokio::test]
async fn refunds_payment_intents_charges_and_events_deserialize() {
    let running = start(None).await;
    let client = stripe_client(&running);
    let account = stripe::AccountId::from(ACCOUNT);

    let session =
        new_session(4500, "act_2", in_an_hour()).customize().account_id(account.clone()).send(&client).await.unwrap();
    let (status, paid) = pay(&running, session.id.as_str(), "succeeded", true).await;
    assert_eq!(status, 200, "{paid}");

    // expand[]=payment_intent inlines a full PaymentIntent.
    let fetched = RetrieveCheckoutSession::new(session.id.clone())
        .expand(vec!["payment_intent".to_owned()])
        .customize()
        .account_id(account.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(fetched.payment_status, stripe_shared::CheckoutSessionPaymentStatus::Paid);
    let Some(Expandable::Object(intent)) = fetched.payment_intent else { panic!("payment_intent not expanded") };
    assert_eq!(intent.status, stripe_shared::PaymentIntentStatus::Succeeded);
    assert_eq!(intent.amount, 4500);
    assert_eq!(intent.metadata["action_id"], "act_2");
    assert_eq!(intent.application_fee_amount, Some(100));
    let charge_id = intent.latest_charge.as_ref().map(|c| c.id().to_string()).unwrap();

    let refund = CreateRefund::new()
        .payment_intent(intent.id.as_str())
        .amount(1000)
        .customize()
        .account_id(account.clone())
        .request_strategy(idempotent("refund-1"))
        .send(&client)
        .await
        .unwrap();
    assert!(refund.id.as_str().starts_with("re_"));
    assert_eq!(refund.amount, 1000);
    assert_eq!(refund.status.as_deref(), Some("succeeded"));
    assert_eq!(refund.charge.as_ref().map(|c| c.id().to_string()), Some(charge_id.clone()));

    // Over the remaining 3500: refused.
    let (status, _, code, _) = api_error(
        CreateRefund::new()
            .payment_intent(intent.id.as_str())
            .amount(3501)
            .customize()
            .account_id(account.clone())
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_deref()), (400, Some("amount_too_large")));
    // Not reachable from another account.
    let (status, _, code, _) =
        api_error(CreateRefund::new().payment_intent(intent.id.as_str()).send(&client).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (404, Some("resource_missing")));

    // Without an amount: what remains; then nothing is left.
    let rest = CreateRefund::new()
        .payment_intent(intent.id.as_str())
        .customize()
        .account_id(account.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(rest.amount, 3500);
    let (status, _, code, _) = api_error(
        CreateRefund::new()
            .payment_intent(intent.id.as_str())
            .customize()
            .account_id(account.clone())
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_deref()), (400, Some("charge_already_refunded")));

    // Charge and events through the client's own deserializers (no typed request exists in the
    // enabled features, so reuse a request builder with another path).
    let mut request = RetrieveCheckoutSession::new(session.id.clone()).build();
    request.path = format!("/charges/{charge_id}");
    let charge: stripe_shared::Charge = request.customize().account_id(account.clone()).send(&client).await.unwrap();
    assert_eq!((charge.amount, charge.amount_refunded, charge.refunded), (4500, 4500, true));
    assert!(charge.refunds.is_none(), "not expanded unless asked (since API version 2022-11-15)");
    let mut request = RetrieveCheckoutSession::new(session.id.clone()).build();
    request.path = format!("/charges/{charge_id}");
    request.query = Some("expand[]=refunds".into());
    let charge: stripe_shared::Charge = request.customize().account_id(account.clone()).send(&client).await.unwrap();
    assert_eq!(charge.refunds.as_ref().unwrap().data.len(), 2);

    let mut request = RetrieveCheckoutSession::new(session.id.clone()).build();
    request.path = "/events".into();
    request.query = Some("limit=100".into());
    let events: List<stripe_shared::Event> =
        request.customize().account_id(account.clone()).send(&client).await.unwrap();
    let types: Vec<&str> = events.data.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "refund.created",
            "charge.refunded",
            "refund.created",
            "charge.refunded",
            "charge.succeeded",
            "checkout.session.completed"
        ]
    );
    for event in &events.data {
        assert_eq!(event.account.as_deref(), Some(ACCOUNT));
        assert_eq!(event.api_version.as_deref(), Some("2026-09-30.endive"));
        assert!(event.id.as_str().starts_with("evt_"));
    }
    // The idempotency key of the request that caused the event is recorded.
    let first_refund_event = &events.data[2];
    assert_eq!(first_refund_event.request.as_ref().unwrap().idempotency_key.as_deref(), Some("refund-1"));
    assert!(first_refund_event.request.as_ref().unwrap().id.as_deref().unwrap().starts_with("req_"));
    // The platform has no events.
    let mut request = RetrieveCheckoutSession::new(session.id.clone()).build();
    request.path = "/events".into();
    let platform: List<stripe_shared::Event> = request.customize().send(&client).await.unwrap();
    assert!(platform.data.is_empty());
}

#[tokio::test]
async fn bank_debit_objects_deserialize() {
    let running = start(None).await;
    let client = stripe_client(&running);
    let retrieve = |id: &str| {
        RetrieveCheckoutSession::new(stripe_shared::CheckoutSessionId::from(id))
            .expand(vec!["payment_intent".to_owned()])
    };

    let failed = new_session(4500, "act_3", in_an_hour()).send(&client).await.unwrap();
    pay(&running, failed.id.as_str(), "delayed_failed", false).await;
    let failed = retrieve(failed.id.as_str()).send(&client).await.unwrap();
    assert_eq!(failed.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(failed.payment_status, stripe_shared::CheckoutSessionPaymentStatus::Unpaid);
    let Some(Expandable::Object(intent)) = failed.payment_intent else { panic!("payment_intent not expanded") };
    assert_eq!(intent.status, stripe_shared::PaymentIntentStatus::RequiresPaymentMethod);
    assert!(intent.last_payment_error.is_some());
    assert!(intent.latest_charge.is_none());

    let later = new_session(4500, "act_4", in_an_hour()).send(&client).await.unwrap();
    pay(&running, later.id.as_str(), "delayed_succeeded", false).await;
    let later = retrieve(later.id.as_str()).send(&client).await.unwrap();
    assert_eq!(later.payment_status, stripe_shared::CheckoutSessionPaymentStatus::Paid);
    let Some(Expandable::Object(intent)) = later.payment_intent else { panic!("payment_intent not expanded") };
    assert_eq!(intent.payment_method_types, ["acss_debit"]);
    let mut request = retrieve(later.id.as_str()).build();
    request.path = format!("/charges/{}", intent.latest_charge.unwrap().id());
    request.query = None;
    let charge: stripe_shared::Charge = request.customize().send(&client).await.unwrap();
    assert_eq!(charge.payment_method_details.unwrap().type_, "acss_debit");
    let refund = CreateRefund::new().charge(charge.id.as_str()).send(&client).await.unwrap();
    assert_eq!(refund.amount, 4500);
}

/// Top-level keys of each emulated object cover those of Stripe's own fixtures.
#[tokio::test]
async fn objects_have_the_keys_of_stripe_fixtures() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/stripe-fixtures/fixtures3.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: Stripe's fixtures are not at {}", path.display());
        return;
    };
    let fixtures: Value = serde_json::from_str(&text).unwrap();
    let resources = &fixtures["resources"];

    let running = start(None).await;
    let session = create_session(&running, Some(ACCOUNT)).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let (_, paid) = pay(&running, &id, "succeeded", false).await;
    let (_, expanded) =
        api_get(&running, &format!("checkout/sessions/{id}?expand[]=payment_intent"), Some(ACCOUNT)).await;
    let intent = expanded["payment_intent"].clone();
    let (_, refund) = api_post(
        &running,
        "refunds",
        &format!("payment_intent={}&amount=500", intent["id"].as_str().unwrap()),
        Some(ACCOUNT),
    )
    .await;
    // The fixture's Charge lists its refunds: the API does so only when asked (since 2022-11-15).
    let (_, charge) = api_get(
        &running,
        &format!("charges/{}?expand[]=refunds", intent["latest_charge"].as_str().unwrap()),
        Some(ACCOUNT),
    )
    .await;
    let (_, items) = api_get(&running, &format!("checkout/sessions/{id}/line_items"), Some(ACCOUNT)).await;
    let (_, dispute) = control(
        &running,
        &format!("payment_intents/{}/dispute", intent["id"].as_str().unwrap()),
        serde_json::json!({"reason": "fraudulent"}),
    )
    .await;
    let (_, events) = api_get(&running, "events", Some(ACCOUNT)).await;

    let cases = [
        ("checkout.session", &paid["session"]),
        ("payment_intent", &intent),
        ("charge", &charge),
        ("refund", &refund),
        ("dispute", &dispute),
        ("item", &items["data"][0]),
        ("price", &items["data"][0]["price"]),
        ("event", &events["data"][0]),
    ];
    // A JSON value's type, as the fixtures show it (null: a field that may be absent of value).
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    for (name, object) in cases {
        let expected = resources[name].as_object().unwrap_or_else(|| panic!("no fixture {name}"));
        let actual = object.as_object().unwrap_or_else(|| panic!("{name} is not an object: {object}"));
        let missing: Vec<&String> = expected.keys().filter(|k| !actual.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{name} lacks {missing:?}");
        assert_eq!(actual["object"], expected["object"], "{name}");
        // Same type wherever both have a value (a string id for an expandable object is the
        // unexpanded form of the same field).
        for (key, theirs) in expected {
            let ours = &actual[key.as_str()];
            let expandable =
                matches!((ours, theirs), (Value::String(_), Value::Object(_)) | (Value::Object(_), Value::String(_)));
            if !ours.is_null() && !theirs.is_null() && !expandable {
                assert_eq!(kind(ours), kind(theirs), "{name}.{key}: ours {ours}, Stripe's {theirs}");
            }
        }
    }
}
