//! The raw HTTP surface: authentication, validation, idempotency headers, the request log,
//! and the hosted checkout page (served under `/stripe`, as in the local runner).

mod common;

use common::*;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn api_key_is_required() {
    let running = start(None).await;
    let url = format!("{}/v1/checkout/sessions", running.base);

    let response = http().post(&url).body(SESSION_FORM).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("You did not provide an API key."));

    let response = http().get(&url).bearer_auth("sk_live_123456789").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Invalid API Key provided"));
    assert!(!body["error"]["message"].as_str().unwrap().contains("123456789"), "the key is redacted");

    // Basic auth with the key as user name, as in Stripe's curl examples.
    let response = http().get(&url).basic_auth("sk_test_x", None::<&str>).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Unknown API paths answer in Stripe's shape.
    let (status, body) = api_get(&running, "customers", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn session_parameters_are_validated() {
    let running = start(None).await;
    let item = "line_items[0][price_data][currency]=cad&line_items[0][price_data][unit_amount]=100\
        &line_items[0][price_data][product_data][name]=Visit&line_items[0][quantity]=1";
    let cases = [
        (item.to_owned(), "mode"),
        (format!("mode=subscription&{item}"), "mode"),
        ("mode=payment".to_owned(), "line_items"),
        (format!("mode=payment&{}", item.replace("quantity]=1", "quantity]=0")), "line_items[0][quantity]"),
        (format!("mode=payment&{}", item.replace("=100", "=-1")), "line_items[0][price_data][unit_amount]"),
        (format!("mode=payment&{item}&{}", item.replace("[0]", "[1]").replace("=cad", "=usd")), "line_items"),
        (format!("mode=payment&{item}&expires_at={}", now() + 29 * 60), "expires_at"),
        (format!("mode=payment&{item}&expires_at={}", now() + 25 * 3600), "expires_at"),
        (format!("mode=payment&{item}&expires_at=soon"), "expires_at"),
    ];
    for (form, param) in cases {
        let (status, body) = api_post(&running, "checkout/sessions", &form, None).await;
        assert_eq!(status, 400, "{form}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{form}");
        assert_eq!(body["error"]["param"], param, "{form}: {body}");
    }

    let expires_at = now() + 31 * 60;
    let form = format!(
        "mode=payment&{item}&line_items[1][price_data][currency]=cad&line_items[1][price_data][unit_amount]=250\
        &line_items[1][price_data][product_data][name]=Lab&line_items[1][quantity]=2&expires_at={expires_at}"
    );
    let (status, session) = api_post(&running, "checkout/sessions", &form, None).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["expires_at"], expires_at);
    assert_eq!(session["amount_total"], 600);
    assert_eq!(session["amount_subtotal"], 600);
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(session["payment_method_types"], json!(["card"]));
    let (_, items) =
        api_get(&running, &format!("checkout/sessions/{}/line_items", session["id"].as_str().unwrap()), None).await;
    assert_eq!(items["data"][1]["amount_total"], 500);
    assert_eq!(items["data"][1]["description"], "Lab");
    assert_eq!(items["has_more"], false);

    // Default expiry: 24 hours.
    let (_, session) = api_post(&running, "checkout/sessions", &format!("mode=payment&{item}"), None).await;
    let default_expiry = session["expires_at"].as_i64().unwrap() - session["created"].as_i64().unwrap();
    assert_eq!(default_expiry, 24 * 3600);
}

#[tokio::test]
async fn idempotent_replays_and_the_request_log() {
    let running = start(None).await;
    let post = |key: &'static str, form: String| {
        http()
            .post(format!("{}/v1/checkout/sessions", running.base))
            .bearer_auth("sk_test_x")
            .header("stripe-account", ACCOUNT)
            .header("idempotency-key", key)
            .body(form)
            .send()
    };
    let first = post("k1", SESSION_FORM.to_owned()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();

    let again = post("k1", SESSION_FORM.to_owned()).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);

    let other = post("k1", SESSION_FORM.replace("=3", "=4")).await.unwrap();
    assert_eq!(other.status(), 400);
    let error: Value = other.json().await.unwrap();
    assert_eq!(error["error"]["type"], "idempotency_error");
    assert_eq!(
        error["error"]["message"],
        "Keys for idempotent requests can only be used with the same parameters they were first used with. \
         Try using a key other than 'k1' if you meant to execute a different request."
    );

    let requests = running.emulator.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/v1/checkout/sessions");
    assert_eq!(requests[0]["account"], ACCOUNT);
    assert_eq!(requests[0]["idempotency_key"], "k1");
    assert_eq!(requests[0]["params"]["line_items"][0]["price_data"]["product_data"]["name"], "Clinic services");
    assert_eq!(requests[0]["params"]["metadata"]["action_id"], "act_1");
    // The same log over HTTP.
    let logged: Value =
        http().get(format!("{}/test/requests", running.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(logged.as_array().unwrap().len(), 3);
    assert_eq!(logged[2]["params"]["line_items"][0]["quantity"], "4");
}

#[tokio::test]
async fn refunds_are_bounded_by_what_remains() {
    let running = start(None).await;
    let session = create_session(&running, None).await;
    let id = session["id"].as_str().unwrap();
    let (_, answer) = pay(&running, id, "succeeded", false).await;
    let intent = answer["session"]["payment_intent"].as_str().unwrap().to_owned();

    for amount in ["0", "-5", "4501"] {
        let (status, error) =
            api_post(&running, "refunds", &format!("payment_intent={intent}&amount={amount}"), None).await;
        assert_eq!(status, 400, "{amount}: {error}");
        assert_eq!(error["error"]["param"], "amount");
    }
    let (status, refund) =
        api_post(&running, "refunds", &format!("payment_intent={intent}&amount=4000&metadata[reason_id]=r1"), None)
            .await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(refund["metadata"]["reason_id"], "r1");
    let charge = refund["charge"].as_str().unwrap().to_owned();
    let (status, error) = api_post(&running, "refunds", &format!("charge={charge}&amount=501"), None).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "amount_too_large");
    assert_eq!(error["error"]["message"], "Refund amount ($5.01) is greater than unrefunded amount on charge ($5.00)");
    let (status, _) = api_post(&running, "refunds", &format!("charge={charge}"), None).await;
    assert_eq!(status, 200);
    let (status, error) = api_post(&running, "refunds", &format!("charge={charge}&amount=1"), None).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "charge_already_refunded");

    let (_, charge) = api_get(&running, &format!("charges/{charge}"), None).await;
    assert_eq!(charge["amount_refunded"], 4500);
    assert_eq!(charge["refunded"], true);
    let (_, events) = api_get(&running, "events?type=charge.refunded&limit=1", None).await;
    assert_eq!(events["data"][0]["data"]["object"]["amount_refunded"], 4500);
    assert_eq!(events["has_more"], true);
}

fn action_of(html: &str, outcome: &str) -> String {
    let marker = format!("value=\"{outcome}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {outcome} button in {html}"));
    let form = html[..at].rfind("<form").unwrap();
    let start = html[form..].find("action=\"").unwrap() + form + "action=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn hosted_page_pays_and_redirects() {
    let running = start_nested().await;
    let (receiver, url) = receiver().await;
    running.emulator.set_webhook_url(Some(url));
    let session = create_session(&running, Some(ACCOUNT)).await;
    let id = session["id"].as_str().unwrap();
    let page_url = session["url"].as_str().unwrap().to_owned();
    assert_eq!(page_url, format!("{}/checkout/{id}", running.base));

    let page = http().get(&page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    // A fr-CA session's page is in French, as Stripe's follows `locale`.
    for expected in ["lang=\"fr\"", "45,00 $", "CAD", "Clinic services", ">Payer<", ">Carte refusée<", ">Annuler<"] {
        assert!(html.contains(expected), "missing {expected} in {html}");
    }
    assert!(html.contains("prélèvement bancaire (réussit plus tard)") && html.contains("(échoue plus tard)"));
    assert!(!html.contains("http-equiv") && !html.contains("<script src") && !html.contains("<link"), "self-contained");

    // Declined: back to the page with a message, still payable.
    let action = action_of(&html, "declined");
    assert_eq!(action, format!("{page_url}/pay"));
    let declined = http().post(&action).body("outcome=declined").send().await.unwrap();
    assert_eq!(declined.status(), 303);
    let back = declined.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&page_url));
    let html = http().get(&back).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Votre carte a été refusée"), "the decline is said, in French");
    assert!(html.contains(">Payer<"), "and the patient may try again");

    // Cancel goes to cancel_url without touching the session.
    let cancel = http().post(action_of(&html, "cancel")).body("outcome=cancel").send().await.unwrap();
    assert_eq!(cancel.status(), 303);
    assert_eq!(cancel.headers()["location"], "https://clinic.test/cancel");

    // Pay: redirect to success_url with the id substituted; webhook sent.
    let paid = http()
        .post(action_of(&html, "succeeded"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=succeeded")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()["location"].to_str().unwrap(), format!("https://clinic.test/ok?session={id}"));
    let deliveries = receiver.wait_for(1, std::time::Duration::from_secs(5)).await;
    assert_eq!(deliveries[0].event()["type"], "checkout.session.completed");
    assert_eq!(deliveries[0].event()["account"], ACCOUNT);

    // A completed session shows a message instead of buttons.
    let html = http().get(&page_url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("session de paiement est terminée (payée)"), "{html}");
    assert!(!html.contains("<form"));

    // English locale formatting, and an expired session's page.
    let (_, english) = api_post(&running, "checkout/sessions", &SESSION_FORM.replace("fr-CA", "en-CA"), None).await;
    let english_id = english["id"].as_str().unwrap();
    let html = http().get(english["url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("$45.00"), "{html}");
    api_post(&running, &format!("checkout/sessions/{english_id}/expire"), "", None).await;
    let html =
        http().get(format!("{}/checkout/{english_id}", running.base)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("expired") && !html.contains("<form"));

    let missing = http().get(format!("{}/checkout/cs_test_nope", running.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
