//! Least privilege, proven: each function is built exactly as
//! its `main.rs` builds it (`visitpay_edge::config::wiring`), with an SDK whose
//! HTTP client records every request, and does its real work against moto
//! and the Stripe emulator: every one of its routes or events, successes,
//! refusals and conflict retries. Each recorded request is translated into
//! the IAM actions and resources AWS checks for it (`aws_calls::required`),
//! and the function's policy in `template.yaml` must grant exactly those:
//! a missing grant would be denied in AWS, an extra one is privilege no code
//! uses. Whoever adds an SDK call adds its grant, or this test fails.
//!
//! The policies are also checked with the template's `SecretsUseCustomerKey`
//! condition on: then every function that decrypts a SecureString also needs
//! `kms:Decrypt` on that key, and nothing else changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_ssm::types::ParameterType;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use visitpay_app::reconcile::{self, ReconcileConfig};
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::tables;
use visitpay_devkit::setup::{deliveries, ensure_queue, sqs_event};
use visitpay_edge::lambda::{consumer, messages};

use crate::support::aws_calls::{required_by, Grant, Names, Recorder, Template};
use crate::support::*;
use crate::support::{kit, moto_mail};
use lambda_http::{Body, Response};
use visitpay_app::ports::{ActionStore, Commit, Expect, InvoiceStore, Store, Stored, Write};
use visitpay_app::{checkout, HasClock, HasMetrics, HasStore};
use visitpay_domain::{Invoice, InvoiceEffect};
use visitpay_edge::config::{wiring, LambdaSettings, SecretSource};
use visitpay_edge::http::functions;
use visitpay_edge::http::functions::{Function, ROUTES};

const STRIPE_KEY_VALUE: &str = "sk_test_least_privilege";
const WEBHOOK_SECRET_VALUE: &str = "whsec_least_privilege";
const EMAIL_FROM: &str = "paiements@visitpay.example";
const SES_CONFIGURATION_SET: &str = "visitpay-least-privilege";
const PATIENT_EMAIL: &str = "patient.lp@example.com";
const PATIENT_PHONE: &str = "+15145550142";

fn browser_accept() -> [(&'static str, &'static str); 1] {
    [("accept", "text/html")]
}

/// The SDK as a function builds it, pointed at moto, through `http`.
async fn sdk(http: aws_smithy_runtime_api::client::http::SharedHttpClient) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(crate::support::kit::moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// An HTTP function's entry point over its own deps (`http::functions`).
type Serve<D> = for<'a> fn(&'a D, lambda_http::Request) -> Pin<Box<dyn Future<Output = Response<Body>> + 'a>>;

/// One function under test: its template resource, its deps, what it sent.
struct Under<D> {
    logical_id: &'static str,
    function: Option<(Function, Serve<D>)>,
    recorder: Recorder,
    deps: D,
    routes_hit: BTreeSet<String>,
}

/// What a function under test did, whatever its deps.
struct Summary {
    logical_id: &'static str,
    function: Option<Function>,
    calls: Vec<crate::support::aws_calls::AwsCall>,
    routes_hit: BTreeSet<String>,
}

impl<D> Under<D> {
    fn summary(&self) -> Summary {
        Summary {
            logical_id: self.logical_id,
            function: self.function.map(|(f, _)| f),
            calls: self.recorder.calls(),
            routes_hit: self.routes_hit.clone(),
        }
    }

    /// Sends one API request through the function's handler and checks the status.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        claims: Option<&Value>,
        headers: &[(&str, &str)],
        body: Option<&str>,
        expected: u16,
    ) -> Value {
        let request = api_request(method, path, claims, headers, body);
        let route = visitpay_edge::http::functions::match_path(method, path.split('?').next().unwrap()).unwrap().0;
        self.routes_hit.insert(route.key());
        let (_, serve) = self.function.expect("an HTTP function");
        let response = serve(&self.deps, request).await;
        let (status, json) = status_and_json(&response);
        assert_eq!(status, expected, "{} {method} {path}: {json}", self.logical_id);
        json
    }
}

async fn build<D>(
    logical_id: &'static str,
    function: Option<(Function, Serve<D>)>,
    settings: &LambdaSettings,
    wire: impl AsyncFn(&aws_config::SdkConfig, &LambdaSettings) -> Result<D, visitpay_edge::config::ConfigError>,
) -> Under<D> {
    let recorder = Recorder::default();
    let sdk = sdk(recorder.client(visitpay_edge::config::https_client().unwrap())).await;
    let deps = wire(&sdk, settings).await.unwrap_or_else(|e| panic!("{logical_id}: {e}"));
    Under { logical_id, function, recorder, deps, routes_hit: BTreeSet::new() }
}

/// Receives what is queued (as Lambda's event source mapping would, outside
/// the function's code) and hands it to the consumer; returns the batch failures.
async fn consume<D: HasStore + HasClock + visitpay_app::HasConfig + HasMetrics + visitpay_app::HasPayments>(
    consumer: &Under<D>,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> usize {
    let mut failures = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return failures;
        }
        let batch = deliveries(&messages);
        let response =
            consumer::handle(&consumer.deps, sqs_event(&batch, "arn:aws:sqs:us-east-1:123456789012:q")).await;
        let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        failures += failed.len();
        for d in &batch {
            // Failed ones too: this test drives each event once.
            sqs.delete_message().queue_url(queue_url).receipt_handle(d.receipt_handle).send().await.unwrap();
        }
    }
}

/// Signs and delivers every event the emulator recorded since `seen`.
async fn deliver_webhooks<D>(webhook: &mut Under<D>, stripe: &StripeFixture, seen: &mut BTreeSet<String>) {
    for event in stripe.events().await {
        let id = event["id"].as_str().unwrap().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let body = event.to_string();
        let signature =
            stripe_emulator::sign(&body, WEBHOOK_SECRET_VALUE, time::OffsetDateTime::now_utc().unix_timestamp());
        webhook.call("POST", "/webhooks/stripe", None, &[("stripe-signature", &signature)], Some(&body), 200).await;
    }
}

/// The Checkout Session an action (as its JSON answer) has open.
async fn session_of(store: &DynamoStore, clinic_id: &str, action: &Value) -> visitpay_domain::SessionId {
    let action_id = visitpay_domain::ActionId::parse(action["action_id"].as_str().unwrap()).unwrap();
    let stored = store.get_action(&clinic(clinic_id), &action_id).await.unwrap().expect("the action");
    stored.checkout_session_id().expect("an open session").clone()
}

fn template() -> serde_yaml::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn describe(grants: &BTreeSet<Grant>) -> String {
    grants.iter().map(|(a, r)| format!("{a} on {r}")).collect::<Vec<_>>().join("\n    ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_function_is_granted_exactly_the_aws_calls_its_code_makes() {
    let stamp = format!("{:x}", time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 0xffff_ffff);
    let table = format!("lp-{stamp}");
    let queue_name = format!("lp-events-{stamp}");
    let (key_param, secret_param) =
        (format!("/lp-{stamp}/stripe/secret-key"), format!("/lp-{stamp}/stripe/webhook-secret"));

    // Set up, outside any function: the table, the queue, the SecureStrings.
    let setup_sdk = sdk(visitpay_edge::config::https_client().unwrap()).await;
    let setup_store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&setup_sdk), table.clone());
    visitpay_devkit::setup::ensure_table(&setup_store, &tables::main_table()).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&setup_sdk);
    let queue_url = ensure_queue(&sqs, &queue_name, 5, 30).await.unwrap();
    let bus_name = format!("lp-status-{stamp}");
    aws_sdk_eventbridge::Client::new(&setup_sdk).create_event_bus().name(&bus_name).send().await.unwrap();
    // The sender's identity and configuration set, as the template creates them.
    let ses = aws_sdk_sesv2::Client::new(&setup_sdk);
    visitpay_devkit::setup::ensure_email_sender(&ses, EMAIL_FROM, Some(SES_CONFIGURATION_SET)).await.unwrap();
    let ssm = aws_sdk_ssm::Client::new(&setup_sdk);
    for (name, value) in [(&key_param, STRIPE_KEY_VALUE), (&secret_param, WEBHOOK_SECRET_VALUE)] {
        ssm.put_parameter().name(name).value(value).r#type(ParameterType::SecureString).send().await.unwrap();
    }
    let stripe = stripe_emulator(None).await;
    let settings = LambdaSettings {
        table: table.clone(),
        patient_link_base: Some("https://pay.example.test/patient/actions".into()),
        events_queue_url: Some(queue_url.clone()),
        stripe_secret_key: SecretSource::Ssm { parameter: key_param.clone() },
        stripe_api_base: Some(format!("{}/", stripe.base)),
        webhook_secret: SecretSource::Ssm { parameter: secret_param.clone() },
        metrics_namespace: "visitpay/test".into(),
        event_bus: Some(bus_name.clone()),
        edge_secret: None,
        email_from: Some(EMAIL_FROM.into()),
        ses_configuration_set: Some(SES_CONFIGURATION_SET.into()),
        sms_origination: None,
        onboarding_page: Some(crate::support::kit::ONBOARDING_PAGE.into()),
    };

    let mut settings_fn = build(
        "ClinicSettingsFunction",
        Some((Function::ClinicSettings, |d, r| Box::pin(functions::clinic_settings(d, r)))),
        &settings,
        wiring::clinic_settings,
    )
    .await;
    let mut invoices_fn = build(
        "SelectInvoicesFunction",
        Some((Function::SelectInvoices, |d, r| Box::pin(functions::select_invoices(d, r)))),
        &settings,
        wiring::select_invoices,
    )
    .await;
    let mut assign_fn = build(
        "AssignActionFunction",
        Some((Function::AssignAction, |d, r| Box::pin(functions::assign_action(d, r)))),
        &settings,
        wiring::assign_action,
    )
    .await;
    let mut status_fn = build(
        "ActionStatusFunction",
        Some((Function::ActionStatus, |d, r| Box::pin(functions::action_status(d, r)))),
        &settings,
        wiring::action_status,
    )
    .await;
    let mut checkout_fn = build(
        "CreateCheckoutFunction",
        Some((Function::CreateCheckout, |d, r| Box::pin(functions::create_checkout(d, r)))),
        &settings,
        wiring::create_checkout,
    )
    .await;
    let mut webhook_fn = build(
        "StripeWebhookFunction",
        Some((Function::StripeWebhook, |d, r| Box::pin(functions::stripe_webhook(d, r)))),
        &settings,
        wiring::stripe_webhook,
    )
    .await;
    let mut pdf_fn = build(
        "ReceiptPdfFunction",
        Some((Function::ReceiptPdf, |d, r| Box::pin(functions::receipt_pdf(d, r)))),
        &settings,
        async |sdk: &aws_config::SdkConfig, s: &LambdaSettings| wiring::receipt_pdf(sdk, s, kit::pdf()).await,
    )
    .await;
    let mut unsubscribe_fn = build(
        "UnsubscribeFunction",
        Some((Function::Unsubscribe, |d, r| Box::pin(functions::unsubscribe(d, r)))),
        &settings,
        wiring::unsubscribe,
    )
    .await;
    let messenger =
        build("SendMessagesFunction", None, &settings, async |sdk: &aws_config::SdkConfig, s: &LambdaSettings| {
            wiring::send_messages(sdk, s, kit::pdf()).await
        })
        .await;
    // New message items reach send-messages through the table's stream, as
    // its event source mapping delivers them (filter included).
    let mut message_stream = visitpay_local::stream_mapping::StreamMapping::connect_filtered(
        &kit::moto_endpoint(),
        "us-east-1",
        &table,
        visitpay_aws::dynamodb::stream::MESSAGE_RECORDS_FILTER,
    )
    .await
    .unwrap();
    let mut payouts_fn = build(
        "PayoutsFunction",
        Some((Function::Payouts, |d, r| Box::pin(functions::payouts(d, r)))),
        &settings,
        wiring::payouts,
    )
    .await;
    let consumer = build("ProcessPaymentEventsFunction", None, &settings, wiring::process_payment_events).await;
    let reconcile_fn = build("ReconcileFunction", None, &settings, wiring::reconcile).await;
    let publisher = build("PublishActionEventsFunction", None, &settings, wiring::publish_action_events).await;

    let support_claims = claims("support-1", "lp", "support");
    let staff_claims = claims("staff-1", "lp", "staff");
    let optin_staff = claims("staff-2", "lp-optin", "staff");
    let settings_body = |line_item_text: &str| {
        json!({"enabled": true, "label": {"en": "Pay", "fr": "Payer"}, "stripe_account_id": ACCOUNT,
               "currency": "cad", "checkout_ttl_minutes": 60, "action_ttl_hours": 72, "line_item_text": line_item_text})
        .to_string()
    };

    // clinic-settings: absent, refused, set, read.
    settings_fn.call("GET", "/clinics/lp/payment-settings", Some(&support_claims), &[], None, 404).await;
    settings_fn.call("PUT", "/clinics/lp/payment-settings", Some(&support_claims), &[], Some("{}"), 400).await;
    settings_fn
        .call("PUT", "/clinics/lp/payment-settings", Some(&support_claims), &[], Some(&settings_body("generic")), 200)
        .await;
    let body = settings_body("invoice_description");
    settings_fn.call("PUT", "/clinics/lp-optin/payment-settings", Some(&support_claims), &[], Some(&body), 200).await;
    settings_fn.call("GET", "/clinics/lp/payment-settings", Some(&staff_claims), &[], None, 200).await;
    settings_fn.call("GET", "/clinics/lp-optin/payment-settings", Some(&staff_claims), &[], None, 404).await;

    // select-invoices: import (create, replace, refuse), list, select (one and many, refused).
    let invoice = |amount: i64| {
        json!({"amount": amount, "currency": "cad", "service_date": "2027-01-14", "description": "Consultation"})
            .to_string()
    };
    for id in ["1", "2", "3", "4", "5", "6", "7", "8"] {
        invoices_fn
            .call("PUT", &format!("/patients/p1/invoices/{id}"), Some(&staff_claims), &[], Some(&invoice(2500)), 201)
            .await;
    }
    invoices_fn.call("PUT", "/patients/p1/invoices/1", Some(&staff_claims), &[], Some(&invoice(3000)), 200).await;
    invoices_fn.call("PUT", "/patients/p1/invoices/9", Some(&staff_claims), &[], Some(r#"{"amount":-1}"#), 400).await;
    invoices_fn.call("PUT", "/patients/p2/invoices/1", Some(&optin_staff), &[], Some(&invoice(4500)), 201).await;
    invoices_fn.call("GET", "/patients/p1/invoices", Some(&staff_claims), &[], None, 200).await;
    invoices_fn.call("GET", "/patients/p1/invoices?status=unprocessed", Some(&staff_claims), &[], None, 200).await;
    let select = |ids: &[&str]| json!({"invoice_ids": ids}).to_string();
    invoices_fn
        .call("POST", "/patients/p1/invoices/select", Some(&staff_claims), &[], Some(&select(&["1", "2"])), 200)
        .await;
    for pair in [["3", "4"], ["5", "6"], ["7", "8"]] {
        invoices_fn
            .call("POST", "/patients/p1/invoices/select", Some(&staff_claims), &[], Some(&select(&pair)), 200)
            .await;
    }
    invoices_fn.call("POST", "/patients/p2/invoices/select", Some(&optin_staff), &[], Some(&select(&["1"])), 200).await;
    invoices_fn
        .call("POST", "/patients/p1/invoices/select", Some(&staff_claims), &[], Some(&select(&["404"])), 404)
        .await;

    // assign-action: assign (with a key, its replay, refused), per visit; the
    // first one's link sent by email and text.
    let notify = json!({"email": PATIENT_EMAIL, "sms": PATIENT_PHONE});
    let assign =
        |ids: &[&str]| json!({"patient_id": "p1", "invoice_ids": ids, "locale": "en-CA", "notify": notify}).to_string();
    let key = [("idempotency-key", "lp-assign-1")];
    let paid_action =
        assign_fn.call("POST", "/visits/v1/actions", Some(&staff_claims), &key, Some(&assign(&["1", "2"])), 201).await;
    assign_fn.call("POST", "/visits/v1/actions", Some(&staff_claims), &key, Some(&assign(&["1", "2"])), 201).await;
    assign_fn.call("POST", "/visits/v1/actions", Some(&staff_claims), &[], Some(&assign(&["1"])), 409).await;
    let cancelled =
        assign_fn.call("POST", "/visits/v1/actions", Some(&staff_claims), &[], Some(&assign(&["3", "4"])), 201).await;
    let missed =
        assign_fn.call("POST", "/visits/v1/actions", Some(&staff_claims), &[], Some(&assign(&["5", "6"])), 201).await;
    let optin_body = json!({"patient_id": "p2", "invoice_ids": ["1"]}).to_string();
    let optin = assign_fn.call("POST", "/visits/v2/actions", Some(&optin_staff), &[], Some(&optin_body), 201).await;
    let token = |a: &Value| a["patient_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let id = |a: &Value| a["action_id"].as_str().unwrap().to_owned();
    // The link again (202: sent off the request path), and refused input.
    let send_path = format!("/actions/{}/send", id(&paid_action));
    assign_fn.call("POST", &send_path, Some(&staff_claims), &[], Some(&notify.to_string()), 202).await;
    assign_fn.call("POST", &send_path, Some(&staff_claims), &[], Some(r#"{"email":"not an address"}"#), 400).await;

    // send-messages: the links just decided come through the stream; the
    // patient answers STOP to the texts (the SMS topic's notification).
    let delivered = message_stream.poll(|batch| messages::stream(&messenger.deps, batch)).await.unwrap();
    assert!(delivered >= 2, "the assignment's and the resend's messages: {delivered}");
    assert!(!moto_mail::emails_to(PATIENT_EMAIL).await.is_empty(), "SES took the link");
    assert!(!moto_mail::texts_to(PATIENT_PHONE).await.is_empty(), "SNS took the link");
    let stop = messages::InboundSms { origination_number: PATIENT_PHONE.into(), message_body: "STOP".into() };
    assert_eq!(messages::inbound(&messenger.deps, vec![stop]).await.unwrap(), 1);

    // action-status: staff reads, a visit's actions, the patient's view.
    status_fn.call("GET", &format!("/actions/{}", id(&paid_action)), Some(&staff_claims), &[], None, 200).await;
    status_fn.call("GET", "/actions/act_nope", Some(&staff_claims), &[], None, 404).await;
    status_fn.call("GET", "/visits/v1/actions", Some(&staff_claims), &[], None, 200).await;
    status_fn.call("GET", &format!("/patient/actions/{}", token(&paid_action)), None, &[], None, 200).await;
    status_fn.call("GET", &format!("/patient/actions/{}.wrong", id(&paid_action)), None, &[], None, 404).await;
    // The page (it reads the invoices of an opt-in clinic), and the way back from Stripe.
    let browser = [("accept", "text/html")];
    for a in [&paid_action, &optin] {
        status_fn.call("GET", &format!("/patient/actions/{}", token(a)), None, &browser, None, 200).await;
    }
    let cookie = format!("visitpay_link={}", token(&optin));
    let back = format!("/patient/return/{}?checkout=success", id(&optin));
    status_fn.call("GET", &back, None, &[("accept", "text/html"), ("cookie", &cookie)], None, 200).await;
    status_fn.call("GET", &back, None, &browser, None, 200).await;
    // No receipt before the payment.
    status_fn.call("GET", &format!("/patient/actions/{}/receipt", token(&optin)), None, &[], None, 409).await;

    // create-checkout: open, open again (the same session), the opt-in clinic's descriptions.
    for a in [&paid_action, &paid_action, &cancelled, &missed, &optin] {
        checkout_fn.call("POST", &format!("/patient/actions/{}/checkout", token(a)), None, &[], None, 200).await;
    }
    checkout_fn.call("POST", "/patient/actions/act_nope.secret/checkout", None, &[], None, 404).await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    checkout_fn.call("POST", &format!("/patient/actions/{}/checkout", token(&optin)), None, &form, Some(""), 303).await;

    // The patient pays; a dashboard refund lands before the payment is
    // recorded (the consumer parks it, then applies both: paid, then owed again
    // through the re-read of the invoices).
    let paid = stripe.pay(&session_of(&setup_store, "lp", &paid_action).await, "succeeded").await;
    let payment_intent = paid["session"]["payment_intent"].as_str().unwrap().to_owned();
    let mut seen = BTreeSet::new();
    stripe.dashboard_refund(&payment_intent, None).await;
    let events = stripe.events().await;
    let (refunded, completed): (Vec<Value>, Vec<Value>) =
        events.into_iter().partition(|e| e["type"] != "checkout.session.completed");
    for event in refunded.iter().chain(&completed) {
        seen.insert(event["id"].as_str().unwrap().to_owned());
        let body = event.to_string();
        let signature =
            stripe_emulator::sign(&body, WEBHOOK_SECRET_VALUE, time::OffsetDateTime::now_utc().unix_timestamp());
        webhook_fn.call("POST", "/webhooks/stripe", None, &[("stripe-signature", &signature)], Some(&body), 200).await;
        assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);
    }
    webhook_fn.call("POST", "/webhooks/stripe", None, &[("stripe-signature", "t=1,v1=00")], Some("{}"), 400).await;

    // Staff refund another payment in two steps; the last one owes the invoices again.
    stripe.pay(&session_of(&setup_store, "lp-optin", &optin).await, "succeeded").await;
    deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);
    // Its receipt: the patient's (page and PDF) and the staff's.
    let receipt = format!("/patient/actions/{}/receipt", token(&optin));
    status_fn.call("GET", &receipt, None, &browser, None, 200).await;
    status_fn.call("GET", &format!("{receipt}?format=pdf"), None, &[], None, 303).await;
    status_fn.call("GET", &format!("/actions/{}/receipt", id(&optin)), Some(&optin_staff), &[], None, 200).await;
    // receipt-pdf: the patient's and the staff's, and none before payment.
    pdf_fn.call("GET", &format!("{receipt}.pdf"), None, &[], None, 200).await;
    pdf_fn.call("GET", &format!("/actions/{}/receipt.pdf", id(&optin)), Some(&optin_staff), &[], None, 200).await;
    pdf_fn.call("GET", &format!("/patient/actions/{}/receipt.pdf", token(&cancelled)), None, &[], None, 409).await;
    // The receipt by email of the first payment (it had an address), with the
    // minute's sweep (everything due), which the stream may have left.
    message_stream.poll(|batch| messages::stream(&messenger.deps, batch)).await.unwrap();
    visitpay_app::messages::deliver_due(&messenger.deps, messages::SWEEP_BATCH).await.unwrap();
    let emails = moto_mail::emails_to(PATIENT_EMAIL).await;
    assert!(emails.iter().any(|e| e.contains("application/pdf")), "the receipt's email carries its PDF");
    // unsubscribe: the email's link (its page, the confirmation), and an unknown one.
    let raw = moto_mail::emails_to(PATIENT_EMAIL).await.pop().unwrap();
    let unsubscribe_url = moto_mail::unsubscribe_url(&raw).expect("a List-Unsubscribe header");
    let unsubscribe_path = format!("/unsubscribe/{}", unsubscribe_url.rsplit('/').next().unwrap());
    unsubscribe_fn.call("GET", &unsubscribe_path, None, &browser_accept(), None, 200).await;
    unsubscribe_fn.call("POST", &unsubscribe_path, None, &browser_accept(), None, 200).await;
    let unknown = format!("/unsubscribe/{}", "x".repeat(43));
    unsubscribe_fn.call("GET", &unknown, None, &browser_accept(), None, 404).await;
    // A payout of what the clinics were paid: the consumer lists and traces
    // its lines; the payouts function reads them (JSON, CSV), and refuses
    // what is not there.
    let made = stripe.control("/test/payouts", json!({"account": ACCOUNT})).await;
    let payout_id = made["payouts"][0]["id"].as_str().unwrap().to_owned();
    deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);
    payouts_fn.call("GET", "/clinics/lp/payouts", Some(&staff_claims), &[], None, 200).await;
    let one = format!("/clinics/lp/payouts/{payout_id}");
    let detail = payouts_fn.call("GET", &one, Some(&staff_claims), &[], None, 200).await;
    assert_eq!(detail["reconciles"], true, "{detail}");
    payouts_fn.call("GET", &one, Some(&staff_claims), &[("accept", "text/csv")], None, 200).await;
    payouts_fn.call("GET", "/clinics/lp/payouts/po_nope", Some(&staff_claims), &[], None, 404).await;
    let refund_path = format!("/actions/{}/refund", id(&optin));
    assign_fn.call("POST", &refund_path, Some(&optin_staff), &[], Some(r#"{"amount":1000}"#), 200).await;
    assign_fn.call("POST", &refund_path, Some(&optin_staff), &[], None, 200).await;
    assign_fn.call("POST", &refund_path, Some(&optin_staff), &[], None, 409).await;
    deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);

    // A dispute opened at Stripe reaches the consumer through the webhook.
    stripe.dispute(&payment_intent).await;
    deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);

    // Onboarding: a clinic without an account gets one from Stripe and a
    // link; a clinic with one, a link; a clinic without settings, 404.
    let no_account = json!({"enabled": false, "label": {"en": "Pay", "fr": "Payer"}, "currency": "cad"}).to_string();
    settings_fn
        .call("PUT", "/clinics/lp-new/payment-settings", Some(&support_claims), &[], Some(&no_account), 200)
        .await;
    for clinic_id in ["lp-new", "lp"] {
        let path = format!("/clinics/{clinic_id}/stripe-onboarding");
        settings_fn.call("POST", &path, Some(&support_claims), &[], None, 200).await;
    }
    settings_fn.call("POST", "/clinics/lp-none/stripe-onboarding", Some(&support_claims), &[], None, 404).await;
    // Stripe restricts the account, then lifts it: account.updated through the
    // webhook; capability.updated makes the consumer ask Stripe.
    for charges in [false, true] {
        let status = json!({"charges_enabled": charges, "disabled_reason": if charges { Value::Null } else { json!("under_review") }});
        stripe.control(&format!("/test/accounts/{ACCOUNT}/status"), status).await;
        deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
        assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);
    }
    let capability =
        json!({"id": "evt_lp_capability", "object": "event", "type": "capability.updated", "account": ACCOUNT,
        "created": time::OffsetDateTime::now_utc().unix_timestamp(), "livemode": false,
        "data": {"object": {"id": "card_payments", "object": "capability", "account": ACCOUNT, "status": "active"}}})
        .to_string();
    let signature =
        stripe_emulator::sign(&capability, WEBHOOK_SECRET_VALUE, time::OffsetDateTime::now_utc().unix_timestamp());
    webhook_fn
        .call("POST", "/webhooks/stripe", None, &[("stripe-signature", &signature)], Some(&capability), 200)
        .await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);

    // Cancel, while someone else released one of its invoices meanwhile: the
    // held-invoice update conflicts and the retry re-reads the invoices.
    let cancelled_id = visitpay_domain::ActionId::parse(&id(&cancelled)).unwrap();
    let other: Stored<Invoice> =
        setup_store.get_invoice(&clinic("lp"), &patient("p1"), &ids(&["4"])[0]).await.unwrap().unwrap();
    let released = other.follow(&cancelled_id, InvoiceEffect::Release, other.updated_at).unwrap();
    setup_store
        .commit(vec![Write::Invoice { invoice: released, expect: Expect::Version(other.version) }])
        .await
        .unwrap();
    assign_fn.call("POST", &format!("/actions/{}/cancel", id(&cancelled)), Some(&staff_claims), &[], None, 200).await;
    assign_fn.call("POST", &format!("/actions/{}/cancel", id(&cancelled)), Some(&staff_claims), &[], None, 409).await;

    // A missed webhook: reconcile finds the payment; and an action past its
    // lifetime (assigned an hour and five minutes ago) is expired.
    stripe.pay(&session_of(&setup_store, "lp", &missed).await, "succeeded").await;
    seen.extend(stripe.events().await.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    let (mut past, _) = crate::support::kit::deps_with(Arc::new(setup_store.clone()) as Arc<dyn Store>);
    past.payments = stripe.payments.clone();
    past.clock = Arc::new(crate::support::kit::FixedClock::at_unix(stripe.emulator.clock().now() - 65 * 60));
    let mut old_settings = settings_input(true, "cad");
    old_settings.action_ttl_hours = 1;
    old_settings.checkout_ttl_minutes = 1440;
    visitpay_app::settings::put(&past, &support(), clinic("lp"), old_settings).await.unwrap();
    let (_, old_token) = {
        // Invoices 7 and 8 were selected above.
        use visitpay_app::actions::{assign, AssignRequest, Assigned};
        let request = AssignRequest {
            patient_id: patient("p1"),
            invoice_ids: ids(&["7", "8"]),
            locale: visitpay_domain::Locale::FrCa,
            notify: Default::default(),
        };
        match assign(&past, &staff("lp"), &clinic("lp"), &visit("v3"), request, None, first_answer).await.unwrap() {
            Assigned::Created { action, patient_url } => (action, patient_url.rsplit('/').next().unwrap().to_owned()),
            other => panic!("{other:?}"),
        }
    };
    checkout::open(&past, &old_token).await.unwrap();
    let report =
        reconcile::run(&reconcile_fn.deps, ReconcileConfig { min_age: time::Duration::ZERO, batch: 50 }).await.unwrap();
    assert_eq!((report.found_paid, report.actions_expired, report.errors), (1, 1, 0), "{report:?}");
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);
    deliver_webhooks(&mut webhook_fn, &stripe, &mut seen).await;
    assert_eq!(consume(&consumer, &sqs, &queue_url).await, 0);

    // Every change above reaches the publisher through the table's stream
    // (read as Lambda's event source mapping does, outside its code).
    let mut mapping = visitpay_local::stream_mapping::StreamMapping::connect(
        &crate::support::kit::moto_endpoint(),
        "us-east-1",
        &table,
    )
    .await
    .unwrap();
    assert!(mapping.drain(&publisher.deps, 50).await.unwrap() > 0);

    // Every route of every HTTP function was driven.
    let http = [
        settings_fn.summary(),
        payouts_fn.summary(),
        invoices_fn.summary(),
        assign_fn.summary(),
        status_fn.summary(),
        pdf_fn.summary(),
        unsubscribe_fn.summary(),
        checkout_fn.summary(),
        webhook_fn.summary(),
    ];
    for under in &http {
        let function = under.function.unwrap();
        let all: BTreeSet<String> = ROUTES.iter().filter(|r| r.function == function.name()).map(|r| r.key()).collect();
        assert_eq!(under.routes_hit, all, "{} must be driven through each of its routes", under.logical_id);
    }

    // What each function sent, against what the template grants it.
    let template = template();
    let mut names = Names {
        tables: BTreeMap::from([(table.clone(), "VisitpayTable".to_owned())]),
        queues: BTreeMap::from([(queue_name.clone(), "EventsQueue".to_owned())]),
        buses: BTreeMap::from([(bus_name.clone(), "StatusEventBus".to_owned())]),
        parameters: BTreeMap::from([
            (key_param.clone(), "StripeSecretKeyParameter".to_owned()),
            (secret_param.clone(), "StripeWebhookSecretParameter".to_owned()),
        ]),
        sender_domains: BTreeMap::from([(
            EMAIL_FROM.rsplit_once('@').unwrap().1.to_owned(),
            "EmailFromAddress".to_owned(),
        )]),
        configuration_sets: BTreeMap::from([(
            SES_CONFIGURATION_SET.to_owned(),
            "MessagingConfigurationSet".to_owned(),
        )]),
        secrets_key: None,
    };
    let functions = http
        .into_iter()
        .chain([consumer.summary(), reconcile_fn.summary(), publisher.summary(), messenger.summary()])
        .collect::<Vec<_>>();
    let mut problems = Vec::new();
    for customer_key in [false, true] {
        names.secrets_key = customer_key.then(|| "SecretsKmsKeyArn".to_owned());
        let reader = Template {
            resources: &template["Resources"],
            true_conditions: if customer_key {
                BTreeSet::from(["SecretsUseCustomerKey".to_owned()])
            } else {
                BTreeSet::new()
            },
        };
        for under in &functions {
            let calls = &under.calls;
            assert!(!calls.is_empty(), "{} made no AWS call at all", under.logical_id);
            let needed = required_by(calls, &names).unwrap_or_else(|e| panic!("{}: {e:?}", under.logical_id));
            let granted = reader.granted(under.logical_id).unwrap_or_else(|e| panic!("{e}"));
            let missing: BTreeSet<Grant> = needed.difference(&granted).cloned().collect();
            let extra: BTreeSet<Grant> = granted.difference(&needed).cloned().collect();
            let condition = if customer_key { " (SecretsUseCustomerKey)" } else { "" };
            if !missing.is_empty() {
                problems.push(format!("{}{condition} is denied:\n    {}", under.logical_id, describe(&missing)));
            }
            if !extra.is_empty() {
                problems.push(format!(
                    "{}{condition} is granted, but never uses:\n    {}",
                    under.logical_id,
                    describe(&extra)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "template.yaml does not grant exactly what the code calls:\n{}", problems.join("\n"));
}
