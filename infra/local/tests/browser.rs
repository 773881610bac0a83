//! The patient's side in a real browser: Debian's Chromium driven over
//! WebDriver (ChromeDriver) against the real `visitpay-local`, which serves
//! the page and the Stripe emulator's hosted page on one origin. Each state
//! the patient can see is checked by axe-core for WCAG 2.2 A/AA.
//!
//! `scripts/test` installs Chromium, ChromeDriver and axe-core; run alone,
//! set VISITPAY_CHROMEDRIVER, VISITPAY_CHROMIUM and VISITPAY_AXE_JS. A
//! missing tool fails these tests with its reason; they never skip.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 800);

/// ChromeDriver on a free port, and a headless Chromium session through it.
struct Driven {
    driver: Child,
    browser: Browser,
    _profile: TempDir,
}

/// ChromeDriver runs in a process group of its own, with the Chromium it
/// starts: ending the group ends every browser process of the test, whatever
/// state the session was left in (a failed assertion included).
impl Drop for Driven {
    fn drop(&mut self) {
        end_process_group(&mut self.driver);
    }
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tool(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} not found ({var}): scripts/test installs Chromium and ChromeDriver from Debian \
         (apt-get install chromium chromium-driver)"
    );
    path
}

async fn drive(size: (u32, u32)) -> Driven {
    let driver_bin = tool("VISITPAY_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = tool("VISITPAY_CHROMIUM", "/usr/bin/chromium");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new(driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let profile = std::env::temp_dir().join(format!("visitpay-chromium-{port}"));
    // Headless, and none of Chromium's own network traffic (this machine's
    // network is closed: its connections would be refused, many at a time).
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--user-data-dir={}", profile.display()),
        &format!("--window-size={},{}", size.0, size.1),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = String::new();
    for _ in 0..100 {
        match ClientBuilder::rustls().unwrap().capabilities(capabilities.clone()).connect(&url).await {
            Ok(browser) => {
                browser.set_window_size(size.0, size.1).await.unwrap();
                return Driven { driver, browser, _profile: TempDir(profile) };
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver on {url} gave no session: {last_error}");
}

/// axe-core's WCAG 2.2 A/AA violations on the page as it is now.
async fn accessibility_violations(browser: &Browser) -> Vec<String> {
    let path = std::env::var("VISITPAY_AXE_JS").expect("VISITPAY_AXE_JS: scripts/test installs axe-core from npm");
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    browser.execute(&axe, vec![]).await.unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})\
               .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

async fn assert_accessible(browser: &Browser, what: &str) {
    let violations = accessibility_violations(browser).await;
    assert!(violations.is_empty(), "{what}: WCAG 2.2 A/AA violations: {violations:#?}");
}

/// The `data-state` the page shows, once it shows `want` (the page refreshes
/// itself while it waits on Stripe).
async fn wait_for_state(browser: &Browser, want: &str) {
    let locator = format!("h2[data-state=\"{want}\"]");
    let found = browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(&locator)).await;
    if found.is_err() {
        let page = browser.source().await.unwrap_or_default();
        panic!("the page never showed {want}: {page}");
    }
}

/// The page's visible text, no-break spaces read as spaces (as WebDriver may give them).
async fn text(browser: &Browser) -> String {
    browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap().replace('\u{a0}', " ")
}

/// Clicks the first match. A list the page re-renders (a refresh's answer
/// landing) can replace the element between finding and clicking it: then
/// the new one is found and clicked.
async fn click(browser: &Browser, css: &str) {
    for _ in 0..5 {
        let element = browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match element.click().await {
            Err(e) if e.is_stale_element_reference() => tokio::time::sleep(Duration::from_millis(100)).await,
            other => return other.unwrap(),
        }
    }
    panic!("{css}: replaced each time it was clicked");
}

/// The clinic enabled, invoices imported and assigned; the patient's link.
async fn assigned(local: &Local, invoices: &[(&str, i64)], locale: &str) -> (String, String) {
    let c = Client::new();
    let u = &local.base;
    let (staff, support) = (Some(local.staff.as_str()), Some(local.support.as_str()));
    let settings = json!({"enabled": true, "label": {"en": "Clinique Santé Nord", "fr": "Clinique Santé Nord"},
        "stripe_account_id": "acct_1DemoClinic", "currency": "cad"});
    let (s, b) = call(&c, "PUT", format!("{u}/clinics/demo-clinic/payment-settings"), support, Some(settings)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (id, amount) in invoices {
        let invoice = json!({"amount": amount, "currency": "cad", "description": "", "service_date": "2026-11-25"});
        let (s, b) = call(&c, "PUT", format!("{u}/patients/demo-patient/invoices/{id}"), staff, Some(invoice)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let ids: Vec<&str> = invoices.iter().map(|(id, _)| *id).collect();
    let select = json!({"invoice_ids": ids});
    let (s, b) = call(&c, "POST", format!("{u}/patients/demo-patient/invoices/select"), staff, Some(select)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let body = json!({"patient_id": "demo-patient", "invoice_ids": ids, "locale": locale});
    let (s, action) = call(&c, "POST", format!("{u}/visits/demo-visit/actions"), staff, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{action}");
    (action["patient_url"].as_str().unwrap().to_owned(), action["action_id"].as_str().unwrap().to_owned())
}

async fn stripe_control(local: &Local, path: &str, body: Value) {
    let res = Client::new().post(format!("{}/stripe/test/{path}", local.base)).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.text().await.unwrap());
}

/// Whether the element's box lies inside the window, without scrolling.
async fn in_first_screen(browser: &Browser, css: &str) -> bool {
    let script = "const r = document.querySelector(arguments[0]).getBoundingClientRect();\
                  return r.top >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;";
    browser.execute(script, vec![json!(css)]).await.unwrap().as_bool().unwrap()
}

/// On a 390-pixel phone: the page in French, switched to English and back,
/// Pay, Stripe's page in the visit's language, the way back ("confirming"
/// while the webhook is held, then "paid" by itself), and a declined card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_pays_on_a_phone_in_two_taps() {
    pays_on_a_phone(&start()).await;
}

/// The same story served under `/prod`, as API Gateway serves a named
/// stage: the Pay form, Stripe's way back and the link cookie's path all
/// carry the stage, or the patient who paid would be asked to open their link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_pays_on_a_phone_under_the_stage_path() {
    let local = start_with(&[("VISITPAY_BASE_PATH", "/prod")]);
    assert!(local.base.ends_with("/prod"), "{}", local.base);
    pays_on_a_phone(&local).await;
}

async fn pays_on_a_phone(local: &Local) {
    let base_path = local.base_path();
    let (link, _action) = assigned(local, &[("5001", 4000), ("5002", 2000)], "fr-CA").await;
    let phone = drive(PHONE).await;
    let b = &phone.browser;

    b.goto(&link).await.unwrap();
    wait_for_state(b, "open").await;
    let page = text(b).await;
    assert!(page.contains("Clinique Santé Nord") && page.contains("60,00 $"), "{page}");
    assert!(page.contains("Services cliniques — facture 5001") && page.contains("À payer"), "{page}");
    assert!(in_first_screen(b, "form button").await, "Pay is on the first screen of a phone");
    assert_accessible(b, "open, fr").await;

    click(b, "nav a").await;
    wait_for_state(b, "open").await;
    let english = text(b).await;
    assert!(english.contains("$60.00") && english.contains("To pay") && english.contains("Pay $60.00"), "{english}");
    assert_accessible(b, "open, en").await;
    click(b, "nav a").await;
    wait_for_state(b, "open").await;
    assert!(text(b).await.contains("Payer 60,00 $"));

    // A declined card first: Stripe's page says so, in French, and stays payable.
    click(b, "form button").await; // tap 1
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("button[data-outcome=\"declined\"]"))
        .await
        .unwrap();
    let at_stripe = b.current_url().await.unwrap();
    assert!(at_stripe.path().starts_with(&format!("{base_path}/stripe/checkout/cs_")), "{at_stripe}");
    assert!(text(b).await.contains("Carte refusée"));
    click(b, "button[data-outcome=\"declined\"]").await;
    b.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("p.error")).await.unwrap();
    assert!(text(b).await.contains("Votre carte a été refusée"));

    // Stripe's webhook is held: back on the page, it confirms, never "paid" yet.
    stripe_control(local, "webhooks/mode", json!({"hold": true})).await;
    click(b, "button[data-outcome=\"succeeded\"]").await; // tap 2
    wait_for_state(b, "confirming").await;
    let url = b.current_url().await.unwrap();
    assert!(url.path().starts_with(&format!("{base_path}/patient/return/act_")), "{url}");
    let secret = link.rsplit_once('.').unwrap().1;
    assert!(!url.as_str().contains(secret), "the way back carries no secret: {url}");
    let confirming = text(b).await;
    assert!(
        confirming.contains("Paiement reçu, confirmation en cours") && !confirming.contains("Payé"),
        "{confirming}"
    );
    assert_accessible(b, "confirming").await;

    stripe_control(local, "webhooks/mode", json!({})).await;
    stripe_control(local, "webhooks/flush", json!({})).await;
    wait_for_state(b, "paid").await; // the page refreshed itself
    assert!(text(b).await.contains("Payé le"));
    assert_accessible(b, "paid").await;

    // The receipt, from the paid page: it prints cleanly and offers its PDF.
    click(b, "a[href*=\"/receipt\"]").await;
    b.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table")).await.unwrap();
    let receipt = text(b).await;
    assert!(receipt.contains("Reçu n° R-") && receipt.contains("60,00 $") && receipt.contains("Payé le"), "{receipt}");
    assert_accessible(b, "receipt").await;
    b.back().await.unwrap();

    // The link's secret is in no line the local run logged (its requests,
    // Stripe's calls and webhooks included).
    let logs = local.logs.lock().unwrap().clone();
    assert!(logs.contains("request handled"), "the run logged its requests: {logs}");
    assert!(!logs.contains(secret), "the link's secret reached a log line");

    // The same page on a desktop window.
    let desktop = drive(DESKTOP).await;
    desktop.browser.goto(&link).await.unwrap();
    wait_for_state(&desktop.browser, "paid").await;
    assert_accessible(&desktop.browser, "paid, desktop").await;
}

/// A bank debit that fails later, and an action staff cancelled: the page
/// says what happened and what to do, and offers no Pay button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bank_debit_and_a_cancelled_action_say_what_to_do() {
    let local = start();
    let (link, _) = assigned(&local, &[("6001", 3000)], "en-CA").await;
    let phone = drive(PHONE).await;
    let b = &phone.browser;
    b.goto(&link).await.unwrap();
    wait_for_state(b, "open").await;
    stripe_control(&local, "webhooks/mode", json!({"hold": true})).await;
    click(b, "form button").await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("button[data-outcome=\"delayed_failed\"]"))
        .await
        .unwrap();
    assert!(text(b).await.contains("Pay by bank debit"), "Stripe's page in English for an en-CA visit");
    click(b, "button[data-outcome=\"delayed_failed\"]").await;
    wait_for_state(b, "confirming").await;
    // Stripe's events one at a time: first the session completed, unpaid.
    stripe_control(&local, "webhooks/mode", json!({})).await;
    stripe_control(&local, "webhooks/flush", json!({})).await;
    wait_for_state(b, "failed").await;
    let failed = text(b).await;
    assert!(failed.contains("The payment failed") && failed.contains("ask the clinic for a new link"), "{failed}");
    assert!(b.find(Locator::Css("form")).await.is_err(), "nothing to pay any more");
    assert_accessible(b, "failed").await;

    let (link, action_id) = assigned(&local, &[("6002", 1500)], "fr-CA").await;
    let c = Client::new();
    let (s, _) = call(&c, "POST", format!("{}/actions/{action_id}/cancel", local.base), Some(&local.staff), None).await;
    assert_eq!(s, StatusCode::OK);
    b.goto(&link).await.unwrap();
    wait_for_state(b, "cancelled").await;
    assert!(text(b).await.contains("Communiquez avec la clinique"));
    assert_accessible(b, "cancelled").await;

    b.goto(&format!("{}/patient/actions/act_unknown.secret", local.base)).await.unwrap();
    assert!(text(b).await.contains("n’est pas valide"));
    assert_accessible(b, "link not found").await;
}

/// Waits for `css` to be on the page (the console updates itself).
async fn wait_for(browser: &Browser, css: &str, within: Duration) -> Result<(), String> {
    match browser.wait().at_most(within).for_element(Locator::Css(css)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{css} never appeared: {e}")),
    }
}

/// Ticks the checkboxes `name` of these invoices, once the console shows them.
async fn tick(browser: &Browser, name: &str, invoices: &[&str]) {
    for id in invoices {
        let css = format!("input[name=\"{name}\"][value=\"{id}\"]");
        wait_for(browser, &css, Duration::from_secs(10)).await.unwrap();
        click(browser, &css).await;
    }
}

/// The whole story in the reference clinic console, as the seed walks it:
/// staff in one browser do the eight steps; the patient, in another,
/// opens the link and pays on Stripe's hosted page; the staff tile says
/// "paid" within 2 s without a reload, and Private billing shows the
/// invoices paid; a partial refund from the console shows on the patient's
/// page and receipt. axe-core checks the console's screens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_watch_the_patient_pay_live_in_the_console() {
    console_story(&start()).await;
}

/// The console under a stage path: its page, script and every API call
/// under `/prod`, as the API is on API Gateway's named stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_watch_the_patient_pay_live_in_the_console_under_the_stage_path() {
    console_story(&start_with(&[("VISITPAY_BASE_PATH", "/prod")])).await;
}

/// The same against moto: DynamoDB and SQS, the events from the table's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_watch_the_patient_pay_live_in_the_console_on_dynamodb() {
    let envs = moto_envs("console");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let local = start_with(&envs);
    assert!(local.store.starts_with("dynamodb table"), "{}", local.store);
    console_story(&local).await;
}

async fn console_story(local: &Local) {
    let staff = drive(DESKTOP).await;
    let s = &staff.browser;
    s.goto(&format!("{}/console", local.base)).await.unwrap();
    wait_for(s, "#live-status[data-state=\"connected\"]", Duration::from_secs(10)).await.unwrap();

    // Support: the clinic's settings, read and saved (the seed switched it on).
    click(s, "#nav-support").await;
    wait_for(s, "#settings-enabled:checked", Duration::from_secs(10)).await.unwrap();
    click(s, "#settings-save").await;
    wait_for(s, "#settings-updated:not(:empty)", Duration::from_secs(10)).await.unwrap();
    assert_accessible(s, "console: support").await;

    // 1-3. Patient chart → Private billing → tick the unprocessed invoices → Make a payment.
    click(s, "#nav-chart").await;
    click(s, "#open-private-billing").await;
    tick(s, "invoice", &["1042", "1043"]).await;
    click(s, "#make-payment").await;
    wait_for(s, "[data-invoice-id=\"1043\"] .invoice-status[data-status=\"selected\"]", Duration::from_secs(10))
        .await
        .unwrap();
    let total = s.find(Locator::Css("#selection-total")).await.unwrap().text().await.unwrap();
    assert!(total.replace('\u{a0}', " ").contains("$60.00"), "{total}");
    assert_accessible(s, "console: private billing").await;

    // 4-8. The visit → Actions and Notes+ → Patient-assigned actions → + Assign
    // actions → the clinic's label → tick the invoices → Assign.
    click(s, "#nav-visit").await;
    click(s, "#open-visit").await;
    click(s, "#open-actions-notes").await;
    click(s, "#open-patient-actions").await;
    click(s, "#assign-actions").await;
    let label = s.find(Locator::Css("#choose-payment-label")).await.unwrap().text().await.unwrap();
    assert!(label.contains("Private billing (Stripe)"), "{label}");
    click(s, "#choose-payment-label").await;
    tick(s, "assign-invoice", &["1042", "1043"]).await;
    click(s, "#assign-submit").await;
    wait_for(s, ".action-tile .action-status[data-status=\"assigned\"]", Duration::from_secs(10)).await.unwrap();
    let link = s.find(Locator::Css(".action-tile .patient-link")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert!(link.starts_with(&format!("{}/patient/actions/", local.base)), "{link}");
    assert_accessible(s, "console: the assigned action").await;
    // Anything that reloads the console would lose this.
    s.execute("window.visitpayNoReload = true;", vec![]).await.unwrap();

    // The patient, in another browser, pays on Stripe's hosted page.
    let patient = drive(PHONE).await;
    let p = &patient.browser;
    p.goto(&link).await.unwrap();
    wait_for_state(p, "open").await;
    click(p, "form button").await;
    wait_for(p, "button[data-outcome=\"succeeded\"]", Duration::from_secs(10)).await.unwrap();
    click(p, "button[data-outcome=\"succeeded\"]").await;
    let paid_at = std::time::Instant::now();
    wait_for(s, ".action-tile .action-status[data-status=\"paid\"]", Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("the staff tile did not say paid within 2 s of the payment: {e}"));
    let seen_after = paid_at.elapsed();
    let kept = s.execute("return window.visitpayNoReload === true;", vec![]).await.unwrap();
    assert_eq!(kept, json!(true), "the console reloaded");
    println!("staff saw paid {} ms after the patient paid", seen_after.as_millis());
    wait_for(s, ".action-tile .receipt-link", Duration::from_secs(5)).await.unwrap();
    wait_for_state(p, "paid").await;

    // Private billing shows the invoices paid.
    click(s, "#nav-chart").await;
    click(s, "#open-private-billing").await;
    for id in ["1042", "1043"] {
        let css = format!("[data-invoice-id=\"{id}\"] .invoice-status[data-status=\"paid\"]");
        wait_for(s, &css, Duration::from_secs(5)).await.unwrap();
    }

    // A partial refund from the console: the tile follows, then the patient's page and receipt.
    click(s, "#nav-visit").await;
    let amount = s.find(Locator::Css(".action-tile .refund-amount")).await.unwrap();
    amount.send_keys("10.50").await.unwrap();
    click(s, ".action-tile .action-refund").await;
    wait_for(s, ".action-tile .action-status[data-status=\"partially_refunded\"]", Duration::from_secs(5))
        .await
        .unwrap();
    let refunded = s.find(Locator::Css(".action-tile .action-refunded")).await.unwrap().text().await.unwrap();
    assert!(refunded.replace('\u{a0}', " ").contains("$10.50"), "{refunded}");
    assert_accessible(s, "console: refunded in part").await;

    p.refresh().await.unwrap();
    wait_for_state(p, "partially_refunded").await;
    let page = text(p).await;
    // Assigned from the console in English: the visit's language is en-CA.
    assert!(page.contains("Refunded: $10.50"), "the patient's page shows the refund: {page}");
    click(p, "a[href*=\"/receipt\"]").await;
    p.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table")).await.unwrap();
    let receipt = text(p).await;
    assert!(receipt.contains("$10.50") && receipt.contains("$60.00"), "the receipt shows the refund: {receipt}");

    // The rest, refunded from the console (no amount: all that remains).
    click(s, ".action-tile .action-refund").await;
    wait_for(s, ".action-tile .action-status[data-status=\"refunded\"]", Duration::from_secs(5)).await.unwrap();
    let error = s.find(Locator::Css("#error")).await.unwrap().text().await.unwrap();
    assert!(error.is_empty(), "a full refund shows no error: {error}");
    assert!(s.find(Locator::Css(".action-tile .refund-amount")).await.is_err(), "nothing left to refund");
    p.back().await.unwrap();
    p.refresh().await.unwrap();
    wait_for_state(p, "refunded").await;
    assert_accessible(s, "console: refunded").await;
}

/// What a patient's receipt says of them and their providers, in scripts an
/// insurer must read back exactly.
const PATIENT_NAME: &str = "Nguyễn Thị Minh Khai";
const PROVIDERS: [&str; 2] = ["محمد عبد الله", "王小明"];
/// The invoices' clinical text: in no message, ever.
const CLINICAL: [&str; 3] = ["Psychothérapie", "anxiété", "Physiothérapie"];

/// Reached by text and email: staff assign in the console with the patient's
/// email and mobile number; the console's outbox shows the two messages
/// (the amount and the link, nothing clinical); the patient opens the link
/// from the text on a 390-pixel phone and pays; the receipt arrives by email
/// with its PDF, in which pdftotext reads the patient's and providers' names
/// exactly and pdffonts lists every font embedded; the email's unsubscribe
/// page, opened then confirmed, passes axe-core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_reached_by_text_and_email_pays_and_gets_the_receipt() {
    let local = start();
    reached_by_messages(&local).await;
}

/// The same with moto: the messages also go through moto's SES and SNS
/// (`AWS_ENDPOINT_URL`), and are read back from moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_reached_by_text_and_email_on_moto() {
    let envs = moto_envs("messages");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let local = start_with(&envs);
    let (email, sms) = reached_by_messages(&local).await;
    let endpoint = std::env::var("VISITPAY_TEST_DYNAMODB_ENDPOINT").unwrap();
    let moto: Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let raw: Vec<&str> = moto["ses"]["RawMessage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destinations"].as_array().unwrap().iter().any(|d| d == email))
        .map(|m| m["raw_data"].as_str().unwrap())
        .collect();
    assert_eq!(raw.len(), 2, "SES took the link's email and the receipt's");
    assert!(raw[1].contains("application/pdf") && raw[1].contains("List-Unsubscribe-Post"), "{}", raw[1]);
    let texts: Vec<&Value> =
        moto["sns"]["SMS"].as_array().unwrap().iter().filter(|t| t["phone_number"] == sms).collect();
    assert_eq!(texts.len(), 1, "SNS took the link's text");
}

/// The outbox's messages for demo-clinic, as the console's API call reads them.
async fn outbox(local: &Local) -> Vec<Value> {
    let url = format!("{}/_local/outbox?clinic=demo-clinic", local.base);
    let (status, body) = call(&Client::new(), "GET", url, Some(&local.staff), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// Runs a poppler tool over a PDF's bytes; its output.
fn poppler(var: &str, default: &str, pdf: &[u8]) -> String {
    let tool = tool(var, default);
    let path = std::env::temp_dir().join(format!("visitpay-receipt-{}-{}.pdf", std::process::id(), pdf.len()));
    std::fs::write(&path, pdf).unwrap();
    let mut command = Command::new(&tool);
    command.arg(&path);
    if tool.ends_with("pdftotext") {
        command.arg("-");
    }
    let out = command.output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The story; the patient's email address and number.
async fn reached_by_messages(local: &Local) -> (&'static str, &'static str) {
    const EMAIL: &str = "minh.khai@example.com";
    const SMS: &str = "+15145550177";
    let c = Client::new();
    let u = &local.base;
    let staff_token = Some(local.staff.as_str());
    for (id, amount, service, description, provider) in [
        ("7001", 4500, "Psychothérapie", "Psychothérapie — anxiété", PROVIDERS[0]),
        ("7002", 3000, "Physiothérapie", "Physiothérapie — suivi", PROVIDERS[1]),
    ] {
        let invoice = json!({"amount": amount, "currency": "cad", "service_date": "2026-11-25", "description": description,
            "receipt": {"service": service, "provider_name": provider, "profession": "Thérapeute", "patient_name": PATIENT_NAME}});
        let (s, b) =
            call(&c, "PUT", format!("{u}/patients/demo-patient/invoices/{id}"), staff_token, Some(invoice)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let select = json!({"invoice_ids": ["7001", "7002"]});
    let (s, b) =
        call(&c, "POST", format!("{u}/patients/demo-patient/invoices/select"), staff_token, Some(select)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Staff assign in the visit, with the patient's email and number.
    let staff = drive(DESKTOP).await;
    let s = &staff.browser;
    s.goto(&format!("{u}/console")).await.unwrap();
    wait_for(s, "#live-status[data-state=\"connected\"]", Duration::from_secs(10)).await.unwrap();
    click(s, "#nav-visit").await;
    click(s, "#open-visit").await;
    click(s, "#open-actions-notes").await;
    click(s, "#open-patient-actions").await;
    click(s, "#assign-actions").await;
    click(s, "#choose-payment-label").await;
    tick(s, "assign-invoice", &["7001", "7002"]).await;
    s.find(Locator::Css("#assign-email")).await.unwrap().send_keys(EMAIL).await.unwrap();
    s.find(Locator::Css("#assign-sms")).await.unwrap().send_keys("+1 514 555 0177").await.unwrap();
    assert_accessible(s, "console: assign with contacts").await;
    click(s, "#assign-submit").await;
    wait_for(s, ".action-tile .action-status[data-status=\"assigned\"]", Duration::from_secs(10)).await.unwrap();

    // The outbox: the text and the email, with the amount and the link, nothing clinical.
    click(s, "#nav-outbox").await;
    wait_for(s, ".outbox-message[data-channel=\"sms\"] a.outbox-link", Duration::from_secs(10)).await.unwrap();
    wait_for(s, ".outbox-message[data-channel=\"email\"] a.outbox-link", Duration::from_secs(10)).await.unwrap();
    let shown = s.find(Locator::Css("#outbox")).await.unwrap().text().await.unwrap().replace('\u{a0}', " ");
    assert!(shown.contains("$75.00") && shown.contains(EMAIL) && shown.contains(SMS), "{shown}");
    for clinical in CLINICAL.iter().chain(&PROVIDERS) {
        assert!(!shown.contains(clinical), "a message says {clinical:?}: {shown}");
    }
    assert_accessible(s, "console: outbox").await;
    let link = s
        .find(Locator::Css(".outbox-message[data-channel=\"sms\"] a.outbox-link"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();

    // The patient taps the text's link on a phone and pays.
    let phone = drive(PHONE).await;
    let p = &phone.browser;
    p.goto(&link).await.unwrap();
    wait_for_state(p, "open").await;
    assert!(text(p).await.contains("$75.00"));
    click(p, "form button").await;
    wait_for(p, "button[data-outcome=\"succeeded\"]", Duration::from_secs(10)).await.unwrap();
    click(p, "button[data-outcome=\"succeeded\"]").await;
    wait_for_state(p, "paid").await;

    // The receipt by email, its PDF attached.
    let mut receipt = None;
    for _ in 0..100 {
        receipt = outbox(local).await.into_iter().find(|m| !m["attachments"].as_array().unwrap().is_empty());
        if receipt.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let receipt = receipt.expect("the receipt's email within 10 s of the payment");
    assert_eq!(receipt["to"], EMAIL);
    let body = receipt["body"].as_str().unwrap();
    assert!(body.contains("/receipt"), "the lasting receipt link: {body}");
    for clinical in CLINICAL.iter().chain(&PROVIDERS) {
        assert!(!body.contains(clinical) && !receipt["subject"].as_str().unwrap().contains(clinical), "{body}");
    }
    let attachment = &receipt["attachments"][0];
    assert_eq!(attachment["content_type"], "application/pdf");
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD.decode(attachment["content_base64"].as_str().unwrap()).unwrap();
    let words =
        poppler("VISITPAY_PDFTOTEXT", "/usr/bin/pdftotext", &pdf).split_whitespace().collect::<Vec<_>>().join(" ");
    for name in std::iter::once(PATIENT_NAME).chain(PROVIDERS) {
        assert!(words.contains(name), "pdftotext does not read {name:?} in:\n{words}");
    }
    let fonts = poppler("VISITPAY_PDFFONTS", "/usr/bin/pdffonts", &pdf);
    let rows: Vec<&str> = fonts.lines().skip(2).filter(|l| !l.trim().is_empty()).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        // …, emb, sub, uni, then the object's number and generation: "emb" is fifth from the end.
        let columns: Vec<&str> = row.split_whitespace().collect();
        let emb = columns[columns.len() - 5];
        assert_eq!(emb, "yes", "a font is not embedded: {row}\n{fonts}");
    }

    // The email's unsubscribe link: the page asks, confirming says done.
    let unsubscribe = body.split_whitespace().find(|w| w.contains("/unsubscribe/")).expect("an unsubscribe link");
    p.goto(unsubscribe).await.unwrap();
    wait_for_state(p, "confirm").await;
    assert_accessible(p, "unsubscribe: confirm").await;
    click(p, "form button").await;
    wait_for_state(p, "done").await;
    assert_accessible(p, "unsubscribe: done").await;
    (EMAIL, SMS)
}

/// A clinic onboards itself with Stripe from the console: support saves its
/// settings (payments off), starts Stripe's (emulated) hosted onboarding and
/// completes it; back in the console the settings show the account able to
/// charge, and payments switch on; a patient pays. Then Stripe restricts the
/// account: a new assignment is refused with `stripe_account_restricted`,
/// and staff see why in the visit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_onboards_with_stripe_and_a_restriction_stops_new_payments() {
    const CLINIC: &str = "north-clinic";
    let local = start();
    let u = local.base.clone();
    let c = Client::new();
    let support = drive(DESKTOP).await;
    let s = &support.browser;
    s.goto(&format!("{u}/console")).await.unwrap();
    wait_for(s, "#live-status[data-state=\"connected\"]", Duration::from_secs(10)).await.unwrap();
    let clinic_field = s.find(Locator::Css("#ctx-clinic")).await.unwrap();
    clinic_field.clear().await.unwrap();
    clinic_field.send_keys(CLINIC).await.unwrap();
    click(s, "#ctx-apply").await;
    wait_for(s, "#live-status[data-state=\"connected\"]", Duration::from_secs(10)).await.unwrap();

    // Support: the settings with payments off and no account, then Stripe.
    click(s, "#nav-support").await;
    wait_for(s, "#stripe-account-state[data-state=\"none\"]", Duration::from_secs(10)).await.unwrap();
    s.execute("document.querySelector('#settings-enabled').checked = false; document.querySelector('#settings-account').value = '';", vec![]).await.unwrap();
    click(s, "#settings-save").await;
    wait_for(s, "#settings-updated:not(:empty)", Duration::from_secs(10)).await.unwrap();
    assert_accessible(s, "console: support, no Stripe account").await;
    click(s, "#stripe-onboarding").await;
    wait_for(s, "button[data-outcome=\"complete\"]", Duration::from_secs(10)).await.unwrap();
    assert!(s.current_url().await.unwrap().path().contains("/stripe/connect/onboarding/"));
    click(s, "button[data-outcome=\"complete\"]").await;

    // Back in the console: account.updated reaches visitpay within seconds.
    wait_for(s, "#screen-support:not([hidden])", Duration::from_secs(10)).await.unwrap();
    let back = s.current_url().await.unwrap();
    assert!(back.query().is_none(), "the round trip leaves no trace in the address: {back}");
    let mut ready = false;
    for _ in 0..50 {
        click(s, "#nav-support").await;
        if wait_for(s, "#stripe-account-state[data-state=\"ready\"]", Duration::from_millis(300)).await.is_ok() {
            ready = true;
            break;
        }
    }
    assert!(ready, "the settings never showed the account able to charge");
    assert_accessible(s, "console: support, account ready").await;
    let account = s.find(Locator::Css("#settings-account")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert!(account.starts_with("acct_"), "the account id came from Stripe: {account}");
    click(s, "#settings-enabled").await;
    click(s, "#settings-save").await;
    let staff = mint(CLINIC, "staff");
    let support_token = mint(CLINIC, "support");
    let mut enabled = false;
    for _ in 0..50 {
        let (_, settings) =
            call(&c, "GET", format!("{u}/clinics/{CLINIC}/payment-settings"), Some(&support_token), None).await;
        if settings["enabled"] == true {
            enabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(enabled, "payments switched on");

    // A patient pays.
    let pay_invoice = |id: &'static str| {
        let (c, u, staff) = (c.clone(), u.clone(), staff.clone());
        async move {
            let invoice = json!({"amount": 4000, "currency": "cad", "service_date": "2026-11-25"});
            let (s1, b) = call(&c, "PUT", format!("{u}/patients/p1/invoices/{id}"), Some(&staff), Some(invoice)).await;
            assert_eq!(s1, StatusCode::CREATED, "{b}");
            let select = json!({"invoice_ids": [id]});
            call(&c, "POST", format!("{u}/patients/p1/invoices/select"), Some(&staff), Some(select)).await;
            let body = json!({"patient_id": "p1", "invoice_ids": [id]});
            call(&c, "POST", format!("{u}/visits/v1/actions"), Some(&staff), Some(body)).await
        }
    };
    let (status, action) = pay_invoice("9001").await;
    assert_eq!(status, StatusCode::CREATED, "{action}");
    let phone = drive(PHONE).await;
    let p = &phone.browser;
    p.goto(action["patient_url"].as_str().unwrap()).await.unwrap();
    wait_for_state(p, "open").await;
    click(p, "form button").await;
    wait_for(p, "button[data-outcome=\"succeeded\"]", Duration::from_secs(10)).await.unwrap();
    click(p, "button[data-outcome=\"succeeded\"]").await;
    wait_for_state(p, "paid").await;

    // Stripe pays the clinic out: the Payouts screen traces the payout to the invoice.
    stripe_control(&local, "payouts", json!({"account": account})).await;
    click(s, "#nav-payouts").await;
    let mut listed = false;
    for _ in 0..50 {
        click(s, "#payouts-refresh").await;
        if wait_for(s, ".payout-row[data-status=\"paid\"] .payout-open", Duration::from_millis(300)).await.is_ok() {
            listed = true;
            break;
        }
    }
    assert!(listed, "the payout reached the Payouts screen");
    click(s, ".payout-row .payout-open").await;
    wait_for(s, "#payout-lines tbody tr[data-type=\"charge\"]", Duration::from_secs(10)).await.unwrap();
    let lines = s.find(Locator::Css("#payout-lines")).await.unwrap().text().await.unwrap();
    assert!(lines.contains("9001"), "the payout names the invoice it paid: {lines}");
    let summary = s.find(Locator::Css("#payout-detail-summary")).await.unwrap().text().await.unwrap();
    assert!(summary.contains("add up to"), "{summary}");
    assert_accessible(s, "console: a payout's lines").await;

    // Stripe restricts the account: a new assignment is refused, and staff see why.
    let restrict = json!({"charges_enabled": false, "payouts_enabled": false,
        "requirements_due": ["individual.verification.document"], "disabled_reason": "requirements.past_due"});
    stripe_control(&local, &format!("accounts/{account}/status"), restrict).await;
    let mut restricted = false;
    for _ in 0..50 {
        let (_, settings) = call(&c, "GET", format!("{u}/clinics/{CLINIC}/payment-settings"), Some(&staff), None).await;
        if settings["stripe_account"]["charges_enabled"] == false {
            restricted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restricted, "account.updated reached the clinic's settings");
    let (status, refused) = pay_invoice("9002").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), "stripe_account_restricted");
    click(s, "#nav-visit").await;
    click(s, "#open-visit").await;
    click(s, "#open-actions-notes").await;
    click(s, "#open-patient-actions").await;
    click(s, "#assign-actions").await;
    wait_for(s, "#assign-label-note:not(:empty)", Duration::from_secs(10)).await.unwrap();
    let note = s.find(Locator::Css("#assign-label-note")).await.unwrap().text().await.unwrap();
    assert!(note.contains("requirements.past_due"), "staff see why: {note}");
    assert_accessible(s, "console: payments restricted").await;
}
