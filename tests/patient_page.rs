//! The patient's page, through the action-status and create-checkout
//! handlers as API Gateway calls them: the words and amounts in the visit's
//! language, the headers every page carries, the way back from Stripe
//! without the link's secret, and never "paid" before the action is.
//! (The same pages in a real browser: tests/browser.rs.)

use visitpay::http::routes::Function;
use visitpay_tests::*;

/// A browser's `GET` of `path` through the action-status function.
async fn browse(deps: &TestDeps, path: &str, cookie: Option<&str>) -> lambda_http::Response<lambda_http::Body> {
    let mut headers = vec![("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    let request = api_request("GET", path, None, &headers, None);
    visitpay::http::handle(deps, Function::ActionStatus, request).await
}

fn text(response: &lambda_http::Response<lambda_http::Body>) -> String {
    match response.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("a text body, got {other:?}"),
    }
}

fn header<'a>(response: &'a lambda_http::Response<lambda_http::Body>, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

fn state_of(page: &str) -> &str {
    let start = page.find("data-state=\"").expect("a state") + "data-state=\"".len();
    &page[start..start + page[start..].find('"').unwrap()]
}

const NBSP: char = '\u{a0}';

#[tokio::test]
async fn the_link_opens_a_page_in_the_visits_language_and_switches() {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1042", 4000, ""), ("1043", 2000, "")]).await;
    let response = browse(&deps, &format!("/patient/actions/{token}"), None).await;
    assert_eq!(response.status(), 200);
    let page = text(&response);
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(page.contains(&format!("60,00{NBSP}$")), "the total as fr-CA writes it");
    assert!(page.contains(&format!("40,00{NBSP}$")) && page.contains("Services cliniques — facture 1042"));
    assert_eq!(state_of(&page), "open");
    assert!(page.contains(&format!("action=\"{token}/checkout\"")), "a Pay form, no script needed");
    assert!(page.contains(&action.label), "the clinic's label");

    // Headers every page carries.
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "cache-control"), "no-store");
    let csp = header(&response, "content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors") && !csp.contains("unsafe"), "{csp}");
    let cookie = header(&response, "set-cookie");
    assert!(cookie.starts_with(&format!("visitpay_link={token};")) && cookie.contains("HttpOnly"), "{cookie}");

    let english = text(&browse(&deps, &format!("/patient/actions/{token}?lang=en"), None).await);
    assert!(english.contains("<html lang=\"en\">") && english.contains("$60.00") && english.contains("To pay"));
    assert!(english.contains("Clinic services — invoice 1042"));
    assert!(english.contains("href=\"?lang=fr\""), "and back to French");

    // API clients still get JSON.
    let json = visitpay::http::handle(
        &deps,
        Function::ActionStatus,
        api_request("GET", &format!("/patient/actions/{token}"), None, &[], None),
    )
    .await;
    let (status, body) = status_and_json(&json);
    assert_eq!((status, body["amount"].as_i64(), body["status"].as_str()), (200, Some(6000), Some("assigned")));
}

/// Stripe keeps each session's return URLs in its records, so they carry the
/// action id only; back from paying, the page says "confirming" until the
/// payment is applied, then "paid", finding the patient by the cookie alone.
#[tokio::test]
async fn back_from_stripe_the_page_confirms_then_shows_paid() {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let secret = token.split_once('.').unwrap().1.to_owned();
    let form = api_request(
        "POST",
        &format!("/patient/actions/{token}/checkout"),
        None,
        &[("content-type", "application/x-www-form-urlencoded"), ("accept", "text/html")],
        Some(""),
    );
    let answer = visitpay::http::handle(&deps, Function::CreateCheckout, form).await;
    assert_eq!(answer.status(), 303, "the Pay form goes straight to Stripe");
    let location = header(&answer, "location").to_owned();
    let session_id = location.rsplit('/').next().unwrap().to_owned();
    assert!(session_id.starts_with("cs_"), "{location}");
    let requests = serde_json::to_string(&stripe.emulator.requests()).unwrap();
    assert!(!requests.contains(&secret), "the link's secret never reaches Stripe: {requests}");
    assert!(requests.contains(&format!("/patient/return/{}", action.action_id)), "{requests}");

    stripe
        .control(&format!("/test/checkout_sessions/{session_id}/pay"), serde_json::json!({"send_webhooks": false}))
        .await;
    let back = format!("/patient/return/{}?checkout=success&session_id={session_id}", action.action_id);
    let cookie = format!("visitpay_link={token}");
    let confirming = text(&browse(&deps, &back, Some(&cookie)).await);
    assert_eq!(state_of(&confirming), "confirming", "not paid before the webhook is applied");
    assert!(confirming.contains("Paiement reçu, confirmation en cours") && !confirming.contains("<form"));

    // Stripe's retry of the webhook arrives.
    let event = stripe.last_event("checkout.session.completed").await;
    apply_stripe_event(&deps, &event.to_string()).await.unwrap();
    let paid = text(&browse(&deps, &back, Some(&cookie)).await);
    assert_eq!(state_of(&paid), "paid");
    assert!(paid.contains("Payé le"), "{paid}");

    // Another browser, or another action's cookie: nothing of the action shows.
    for cookie in [None, Some("visitpay_link=act_other.secret".to_owned())] {
        let page = text(&browse(&deps, &back, cookie.as_deref()).await);
        assert!(page.contains("Ouvrez votre lien de paiement") && !page.contains("45,00"), "{page}");
    }
}

#[tokio::test]
async fn every_ending_is_said_in_words() {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    visitpay::app::actions::cancel(&deps, &staff("c1"), &clinic("c1"), &action.action_id).await.unwrap();
    let page = text(&browse(&deps, &format!("/patient/actions/{token}?lang=en"), None).await);
    assert_eq!(state_of(&page), "cancelled");
    assert!(page.contains("Contact the clinic") && !page.contains("<form"), "{page}");

    let form = api_request(
        "POST",
        &format!("/patient/actions/{token}/checkout"),
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(""),
    );
    let answer = visitpay::http::handle(&deps, Function::CreateCheckout, form).await;
    assert_eq!((answer.status().as_u16(), header(&answer, "location")), (303, &*format!("../{token}")));

    let unknown = browse(&deps, &format!("/patient/actions/{}.wrong", action.action_id), None).await;
    assert_eq!(unknown.status(), 404);
    assert!(text(&unknown).contains("n’est pas valide"), "a page, not JSON");
    assert_eq!(header(&unknown, "content-type"), "text/html; charset=utf-8");
}
