//! The patient's page, through the action-status and create-checkout
//! handlers as API Gateway calls them: the words and amounts in the visit's
//! language, the headers every page carries, the way back from Stripe
//! without the link's secret, and never "paid" before the action is.
//! (The same pages in a real browser: tests/browser.rs.)

use crate::support::*;
use visitpay_edge::http::functions::Function;

/// A browser's `GET` of `path` through the action-status function.
async fn browse(deps: &TestDeps, path: &str, cookie: Option<&str>) -> lambda_http::Response<lambda_http::Body> {
    let mut headers = vec![("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    let request = api_request("GET", path, None, &headers, None);
    visitpay_edge::http::handle(deps, Function::ActionStatus, request).await
}

/// The page's Pay form, as a browser submits it (a form post).
async fn press_pay(deps: &TestDeps, token: &str) -> lambda_http::Response<lambda_http::Body> {
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "text/html")];
    let request = api_request("POST", &format!("/patient/actions/{token}/checkout"), None, &headers, Some(""));
    visitpay_edge::http::handle(deps, Function::CreateCheckout, request).await
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
    assert!(page.contains(action.label()), "the clinic's label");

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
    let json = visitpay_edge::http::handle(
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
    let answer = press_pay(&deps, &token).await;
    assert_eq!(answer.status(), 303, "the Pay form goes straight to Stripe");
    let location = header(&answer, "location").to_owned();
    let session_id = location.rsplit('/').next().unwrap().to_owned();
    assert!(session_id.starts_with("cs_"), "{location}");
    let requests = serde_json::to_string(&stripe.emulator.requests()).unwrap();
    assert!(!requests.contains(&secret), "the link's secret never reaches Stripe: {requests}");
    assert!(requests.contains(&format!("/patient/return/{}", action.action_id())), "{requests}");

    stripe
        .control(&format!("/test/checkout_sessions/{session_id}/pay"), serde_json::json!({"send_webhooks": false}))
        .await;
    let back = format!("/patient/return/{}?checkout=success&session_id={session_id}", action.action_id());
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
    visitpay_app::actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    let page = text(&browse(&deps, &format!("/patient/actions/{token}?lang=en"), None).await);
    assert_eq!(state_of(&page), "cancelled");
    assert!(page.contains("Contact the clinic") && !page.contains("<form"), "{page}");

    let answer = press_pay(&deps, &token).await;
    assert_eq!((answer.status().as_u16(), header(&answer, "location")), (303, &*format!("../{token}")));

    let unknown = browse(&deps, &format!("/patient/actions/{}.wrong", action.action_id()), None).await;
    assert_eq!(unknown.status(), 404);
    assert!(text(&unknown).contains("n’est pas valide"), "a page, not JSON");
    assert_eq!(header(&unknown, "content-type"), "text/html; charset=utf-8");
}

/// A missed webhook: the patient paid, Stripe's events never arrived, and
/// the page keeps saying "confirming" (never "paid") until reconcile asks
/// Stripe and its repair is applied; then the page shows it too.
#[tokio::test]
async fn reconciles_repair_shows_on_the_page() {
    use visitpay_app::reconcile::{self, ReconcileConfig};
    let stripe = stripe_emulator(None).await;
    let queue = std::sync::Arc::new(visitpay_devkit::embedded_queue::EmbeddedQueue::new(
        3,
        std::time::Duration::from_millis(10),
    ));
    let (deps, clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, Some(queue.clone()));
    let (action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe
        .control(&format!("/test/checkout_sessions/{session_id}/pay"), serde_json::json!({"send_webhooks": false}))
        .await;
    let back = format!("/patient/return/{}?checkout=success", action.action_id());
    let cookie = format!("visitpay_link={token}");
    assert_eq!(state_of(&text(&browse(&deps, &back, Some(&cookie)).await)), "confirming");

    clock.advance(120);
    let config = ReconcileConfig { min_age: time::Duration::seconds(60), batch: 10 };
    let report = reconcile::run(&deps, config).await.unwrap();
    assert_eq!(report.found_paid, 1, "{report:?}");
    assert_eq!(state_of(&text(&browse(&deps, &back, Some(&cookie)).await)), "confirming", "queued, not applied");
    for body in queue.take_all() {
        visitpay_edge::lambda::consumer::apply_message(&deps, Some(&body)).await.unwrap();
    }
    assert_eq!(state_of(&text(&browse(&deps, &back, Some(&cookie)).await)), "paid");
    assert_eq!(state_of(&text(&browse(&deps, &format!("/patient/actions/{token}"), None).await)), "paid");
}

/// The receipt's PDF as `pdftotext` reads it (poppler-utils, installed by
/// scripts/test): what an insurer's software would extract.
fn pdf_text(pdf: &[u8]) -> String {
    let tool = std::env::var("VISITPAY_PDFTOTEXT").unwrap_or_else(|_| "/usr/bin/pdftotext".into());
    assert!(std::path::Path::new(&tool).exists(), "{tool} not found: scripts/test installs poppler-utils (apt-get)");
    let path = std::env::temp_dir().join(format!("visitpay-receipt-{}.pdf", std::process::id()));
    std::fs::write(&path, pdf).unwrap();
    // In the order the text was written (a cell's wrapped lines together), read as
    // words: a long cell wraps, and an insurer's software reads it whole.
    let out = std::process::Command::new(tool).arg("-raw").arg(&path).arg("-").output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap().replace('\u{a0}', " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A GET to the function the route table sends `path` to.
async fn get(
    deps: &TestDeps,
    path: &str,
    claims: Option<&serde_json::Value>,
) -> lambda_http::Response<lambda_http::Body> {
    let route = visitpay_edge::http::functions::match_path("GET", path.split('?').next().unwrap()).expect("a route").0;
    visitpay_edge::http::handle(deps, Function::serving(route), api_request("GET", path, claims, &[], None)).await
}

/// What an extended health insurer asks for, on the page and in the PDF,
/// equal to the action's numbers; refunds shown once made; what the clinic
/// did not provide is said, not invented; no receipt before the payment.
#[tokio::test]
async fn the_receipt_has_what_an_insurer_asks_for() {
    use visitpay_domain::{ReceiptDetails, ReceiptIssuer};
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, None);
    let mut settings = settings_input(true, "cad");
    settings.receipt_issuer = ReceiptIssuer {
        legal_name: Some("Clinique Santé Nord inc.".into()),
        address: Some("1200, rue Sherbrooke Ouest\nMontréal (Québec) H3A 1H6".into()),
        phone: None,
    };
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), settings).await.unwrap();
    let mut detailed = invoice_input(4500, "cad");
    detailed.receipt = ReceiptDetails {
        service: Some("Psychothérapie individuelle".into()),
        provider_name: Some("Dre Julie Tremblay".into()),
        profession: Some("psychologue".into()),
        registration_number: Some("12345-67".into()),
        patient_name: Some("Marc Gagnon".into()),
    };
    visitpay_app::invoices::import(&deps, &clinic("c1"), &patient("p1"), &ids(&["1"])[0], detailed).await.unwrap();
    let mut bare = invoice_input(1500, "cad");
    bare.receipt.patient_name = Some("Marc Gagnon".into());
    visitpay_app::invoices::import(&deps, &clinic("c1"), &patient("p1"), &ids(&["2"])[0], bare).await.unwrap();
    visitpay_app::invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["1", "2"])).await.unwrap();
    let request = visitpay_app::actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["1", "2"]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    let (action, token) = match visitpay_app::actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        request,
        None,
        first_answer,
    )
    .await
    .unwrap()
    {
        visitpay_app::actions::Assigned::Created { action, patient_url } => {
            (action, patient_url.rsplit('/').next().unwrap().to_owned())
        }
        other => panic!("{other:?}"),
    };

    let early = get(&deps, &format!("/patient/actions/{token}/receipt"), None).await;
    let (status, body) = status_and_json(&early);
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("receipt_not_available")), "{body}");
    let unpaid_page = text(&browse(&deps, &format!("/patient/actions/{token}/receipt"), None).await);
    assert!(unpaid_page.contains("Pas encore de reçu"), "{unpaid_page}");

    let session_id = open_checkout(&deps, "c1", action.action_id(), &token).await;
    let paid = stripe.pay(&session_id, "succeeded").await;
    let payment_intent = paid["session"]["payment_intent"].as_str().unwrap().to_owned();
    deliver_all(&deps, &stripe).await;
    let page = text(&browse(&deps, &format!("/patient/actions/{token}"), None).await);
    assert!(page.contains(&format!("href=\"{token}/receipt?lang=fr\"")), "the paid page offers the receipt");

    let number = format!("R-{}", action.action_id().as_str().trim_start_matches("act_").to_ascii_uppercase());
    let expected = [
        number.as_str(),
        "Clinique Santé Nord inc.",
        "1200, rue Sherbrooke Ouest, Montréal (Québec) H3A 1H6",
        "Marc Gagnon",
        "Psychothérapie individuelle",
        "2027-01-14",
        "Dre Julie Tremblay, psychologue, n° de permis 12345-67",
        "Services cliniques — facture 2",
        "45,00 $",
        "15,00 $",
        "60,00 $",
        "Payé le",
        payment_intent.as_str(),
        "Moyen de paiement",
        "Visa •••• 4242",
        "Non fourni par la clinique : téléphone, nom du professionnel, profession, numéro de permis.",
    ];
    let html = text(&get(&deps, &format!("/patient/actions/{token}/receipt"), None).await).replace('\u{a0}', " ");
    // A link from before the PDF had its own route is sent there.
    let old = get(&deps, &format!("/patient/actions/{token}/receipt?format=pdf"), None).await;
    assert_eq!((old.status().as_u16(), header(&old, "location")), (303, "receipt.pdf"));
    let pdf = get(&deps, &format!("/patient/actions/{token}/receipt.pdf"), None).await;
    assert_eq!(header(&pdf, "content-type"), "application/pdf");
    let lambda_http::Body::Binary(bytes) = pdf.body() else { panic!("a PDF body") };
    let pdf = pdf_text(bytes);
    for want in expected {
        assert!(html.contains(want), "the page lacks {want:?}: {html}");
        assert!(pdf.contains(want), "the PDF lacks {want:?}: {pdf}");
    }
    assert!(!html.contains("Remboursement"), "no refund yet");

    // A refund shows once made; staff get the same receipt, in English on request.
    visitpay_app::actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), Some(1000)).await.unwrap();
    deliver_all(&deps, &stripe).await;
    let staff_claims = claims("staff-1", "c1", "staff");
    let staff_path = format!("/actions/{}/receipt.pdf?lang=en", action.action_id());
    let staff_pdf = get(&deps, &staff_path, Some(&staff_claims)).await;
    let lambda_http::Body::Binary(bytes) = staff_pdf.body() else { panic!("a PDF body") };
    let english = pdf_text(bytes);
    for want in
        [number.as_str(), "Receipt", "Refund", "$10.00", "Net amount paid", "$50.00", "Clinic services — invoice 2"]
    {
        assert!(english.contains(want), "the staff PDF lacks {want:?}: {english}");
    }
    let other_clinic = claims("staff-2", "c2", "staff");
    let (status, _) = status_and_json(&get(&deps, &staff_path, Some(&other_clinic)).await);
    assert_eq!(status, 404, "another clinic's staff get nothing");
}

/// A clinic whose EMR shows the page in its visit window names its origins:
/// only they may frame the page. Pay leaves the frame for Stripe (a top-level
/// navigation) and sets the link cookie there, first-party, so the way back
/// finds the patient even though the framed page's cookie was third-party.
#[tokio::test]
async fn only_the_clinics_emr_may_frame_the_page() {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(std::sync::Arc::new(kit::embedded_store()), &stripe, None);
    let (_action, token) = assigned_action(&deps, "c1", &[("1", 4500, "")]).await;
    let closed =
        header(&browse(&deps, &format!("/patient/actions/{token}"), None).await, "content-security-policy").to_owned();
    assert!(closed.contains("frame-ancestors 'none'"), "{closed}");

    let mut settings = settings_input(true, "cad");
    settings.embed_origins = vec!["https://emr.example.com".into()];
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), settings.clone()).await.unwrap();
    let page = browse(&deps, &format!("/patient/actions/{token}"), None).await;
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("frame-ancestors https://emr.example.com;"), "{csp}");
    assert!(text(&page).contains("target=\"_top\""), "Pay leaves the frame: Stripe's page cannot be framed");

    settings.embed_origins = vec!["https://*.example.com".into()];
    let refused = visitpay_app::settings::put(&deps, &support(), clinic("c1"), settings).await;
    let error = visitpay_edge::http::error::ApiError::from(refused.unwrap_err());
    assert_eq!((error.status.as_u16(), error.code), (400, "invalid_settings"));

    let answer = press_pay(&deps, &token).await;
    assert_eq!(answer.status(), 303);
    let cookie = header(&answer, "set-cookie");
    assert!(cookie.starts_with(&format!("visitpay_link={token};")) && cookie.contains("SameSite=Lax"), "{cookie}");
}

/// An action assigned in visit v1 for these invoices (imported as given),
/// once support set `settings`; the action and its link token.
async fn assigned_with(
    deps: &TestDeps,
    settings: visitpay_domain::SettingsInput,
    invoices: Vec<(&str, visitpay_domain::invoice::InvoiceInput)>,
) -> (StoredAction, String) {
    visitpay_app::settings::put(deps, &support(), clinic("c1"), settings).await.unwrap();
    let names: Vec<&str> = invoices.iter().map(|(id, _)| *id).collect();
    for (id, input) in invoices {
        visitpay_app::invoices::import(deps, &clinic("c1"), &patient("p1"), &ids(&[id])[0], input).await.unwrap();
    }
    visitpay_app::invoices::select(deps, &clinic("c1"), &patient("p1"), &ids(&names)).await.unwrap();
    let request = visitpay_app::actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&names),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    match visitpay_app::actions::assign(deps, &staff("c1"), &clinic("c1"), &visit("v1"), request, None, first_answer)
        .await
        .unwrap()
    {
        visitpay_app::actions::Assigned::Created { action, patient_url } => {
            (action, patient_url.rsplit('/').next().unwrap().to_owned())
        }
        other => panic!("{other:?}"),
    }
}

async fn pay_through_stripe(deps: &TestDeps, stripe: &StripeFixture, action: &visitpay_domain::Action, token: &str) {
    let session = open_checkout(deps, "c1", action.action_id(), token).await;
    stripe.pay(&session, "succeeded").await;
    deliver_all(deps, stripe).await;
}

/// The Pay link ends with the action, but a paid action's receipt does not:
/// patients claim from their insurer months later. Through the link, the
/// page (the payment and the receipt, no Pay button) and the receipt stay
/// for the clinic's `receipt_days`; staff reach the receipt always. An
/// action never paid is gone with its lifetime.
async fn a_paid_receipt_outlasts_the_link(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, clock) = deps_for_payments(store, &stripe, None);
    let mut settings = settings_input(true, "cad");
    (settings.action_ttl_hours, settings.receipt_days) = (1, 30);
    let (action, token) = assigned_with(&deps, settings, vec![("1", invoice_input(4500, "cad"))]).await;
    pay_through_stripe(&deps, &stripe, &action, &token).await;
    let (unpaid, unpaid_token) = assigned_action_like(&deps, "2").await;

    clock.advance(2 * 3600);
    let page = browse(&deps, &format!("/patient/actions/{token}"), None).await;
    assert_eq!(page.status(), 200, "the link of a paid action still opens, past the action's lifetime");
    let page = text(&page);
    assert_eq!(state_of(&page), "paid");
    assert!(page.contains(&format!("href=\"{token}/receipt?lang=fr\"")) && !page.contains("<form"), "{page}");
    assert_eq!(get(&deps, &format!("/patient/actions/{token}/receipt"), None).await.status(), 200);
    let (status, body) = status_and_json(&get(&deps, &format!("/patient/actions/{token}"), None).await);
    assert_eq!((status, body["status"].as_str()), (200, Some("paid")));
    let pay = visitpay_app::checkout::open(&deps, &token).await;
    assert!(matches!(pay, Err(visitpay_app::AppError::NotFound(_))), "the Pay link ended: {pay:?}");
    let (status, _) = status_and_json(&get(&deps, &format!("/patient/actions/{unpaid_token}"), None).await);
    assert_eq!(status, 404, "an action never paid is gone with its lifetime ({})", unpaid.action_id());

    // Past the clinic's receipt period the link reaches nothing; staff still do.
    clock.advance(30 * 24 * 3600);
    let (status, body) = status_and_json(&get(&deps, &format!("/patient/actions/{token}/receipt"), None).await);
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("link_not_found")));
    assert_eq!(browse(&deps, &format!("/patient/actions/{token}"), None).await.status(), 404);
    let staff = claims("staff-1", "c1", "staff");
    assert_eq!(get(&deps, &format!("/actions/{}/receipt", action.action_id()), Some(&staff)).await.status(), 200);
}

/// A second action of the same clinic and patient, on invoice `id`.
async fn assigned_action_like(deps: &TestDeps, id: &str) -> (StoredAction, String) {
    visitpay_app::invoices::import(deps, &clinic("c1"), &patient("p1"), &ids(&[id])[0], invoice_input(1000, "cad"))
        .await
        .unwrap();
    visitpay_app::invoices::select(deps, &clinic("c1"), &patient("p1"), &ids(&[id])).await.unwrap();
    let request = visitpay_app::actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&[id]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    match visitpay_app::actions::assign(deps, &staff("c1"), &clinic("c1"), &visit("v2"), request, None, first_answer)
        .await
        .unwrap()
    {
        visitpay_app::actions::Assigned::Created { action, patient_url } => {
            (action, patient_url.rsplit('/').next().unwrap().to_owned())
        }
        other => panic!("{other:?}"),
    }
}

/// What a receipt shows of each invoice is what was paid for: after a full
/// refund reopens the invoice and the clinic imports it again (another
/// service, provider and date), the issued receipt still says what it said;
/// and the clinic's later settings (its issuer block) do not rewrite it.
async fn an_issued_receipt_never_changes(store: DynStore) {
    use visitpay_domain::{ReceiptDetails, ReceiptIssuer};
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let mut settings = settings_input(true, "cad");
    settings.receipt_issuer =
        ReceiptIssuer { legal_name: Some("Clinique Santé Nord inc.".into()), ..Default::default() };
    let mut invoice = invoice_input(4500, "cad");
    invoice.service_date = "2027-01-10".into();
    invoice.receipt = ReceiptDetails {
        service: Some("Psychothérapie individuelle".into()),
        provider_name: Some("Dre Julie Tremblay".into()),
        profession: Some("psychologue".into()),
        registration_number: Some("12345-67".into()),
        patient_name: Some("Marc Gagnon".into()),
    };
    let (action, token) = assigned_with(&deps, settings.clone(), vec![("1", invoice)]).await;
    pay_through_stripe(&deps, &stripe, &action, &token).await;
    let receipt_path = format!("/patient/actions/{token}/receipt");
    let issued = text(&get(&deps, &receipt_path, None).await);

    visitpay_app::actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), None).await.unwrap();
    deliver_all(&deps, &stripe).await;
    let mut again = invoice_input(4500, "cad");
    again.service_date = "2027-02-02".into();
    again.receipt = ReceiptDetails {
        service: Some("Évaluation neuropsychologique".into()),
        provider_name: Some("Dr Paul Roy".into()),
        profession: Some("neuropsychologue".into()),
        registration_number: Some("99999-00".into()),
        patient_name: Some("Marc Gagnon".into()),
    };
    visitpay_app::invoices::import(&deps, &clinic("c1"), &patient("p1"), &ids(&["1"])[0], again).await.unwrap();
    settings.receipt_issuer.legal_name = Some("Autre clinique inc.".into());
    visitpay_app::settings::put(&deps, &support(), clinic("c1"), settings).await.unwrap();

    let now = text(&get(&deps, &receipt_path, None).await);
    for kept in
        ["Psychothérapie individuelle", "Dre Julie Tremblay", "12345-67", "2027-01-10", "Clinique Santé Nord inc."]
    {
        assert!(now.contains(kept), "the receipt lost {kept:?}: {now}");
    }
    for never in ["Évaluation neuropsychologique", "Dr Paul Roy", "2027-02-02", "Autre clinique inc."] {
        assert!(!now.contains(never), "the receipt changed to {never:?}");
    }
    // Only what happened to the money since is added: the refund.
    assert!(!issued.contains("Remboursement") && now.contains("Remboursement"));
}

/// Every date a patient or an insurer reads is a day in the clinic's zone:
/// a payment at 21:00 in Vancouver is dated that day, not the next (UTC).
async fn dates_are_days_in_the_clinics_time_zone(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, clock) = deps_for_payments(store, &stripe, None);
    // 2027-01-16 05:00 UTC: 21:00 on the 15th in Vancouver, midnight on the 16th in Toronto.
    let evening = time::macros::datetime!(2027-01-16 05:00 UTC).unix_timestamp();
    clock.advance(evening - stripe.emulator.clock().now());
    let mut settings = settings_input(true, "cad");
    settings.time_zone = Some("America/Vancouver".into());
    let (action, token) = assigned_with(&deps, settings, vec![("1", invoice_input(4500, "cad"))]).await;
    pay_through_stripe(&deps, &stripe, &action, &token).await;
    let page = text(&browse(&deps, &format!("/patient/actions/{token}"), None).await).replace(NBSP, " ");
    assert!(page.contains("Payé le 15 janvier 2027"), "{page}");
    let receipt = text(&get(&deps, &format!("/patient/actions/{token}/receipt?lang=en"), None).await);
    assert!(receipt.replace(NBSP, " ").contains("January 15, 2027"), "{receipt}");
    let pdf = get(&deps, &format!("/patient/actions/{token}/receipt.pdf"), None).await;
    let lambda_http::Body::Binary(bytes) = pdf.body() else { panic!("a PDF body") };
    assert!(pdf_text(bytes).contains("15 janvier 2027"));
    // The clinic's default zone (Toronto) would say the 16th.
    let toronto = visitpay_domain::ClinicTimeZone::default();
    assert_eq!(toronto.date_of(action.created_at()).day(), 16);
}

/// A clinic that serves Stripe Checkout on its own domain: the Pay form's
/// answer redirects there, and the page's CSP lets the form go there.
async fn the_pay_form_may_go_to_the_clinics_checkout_domain(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (deps, _clock) = deps_for_payments(store, &stripe, None);
    let mut settings = settings_input(true, "cad");
    settings.checkout_domain = Some("pay.clinique-nord.example".into());
    let (_action, token) = assigned_with(&deps, settings, vec![("1", invoice_input(4500, "cad"))]).await;
    let page = browse(&deps, &format!("/patient/actions/{token}"), None).await;
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("form-action 'self' https://pay.clinique-nord.example;"), "{csp}");
    assert!(!csp.contains("checkout.stripe.com"), "{csp}");
}

on_both_stores!(
    a_paid_receipt_outlasts_the_link,
    an_issued_receipt_never_changes,
    dates_are_days_in_the_clinics_time_zone,
    the_pay_form_may_go_to_the_clinics_checkout_domain,
);
