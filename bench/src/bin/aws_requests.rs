//! AWS requests per completed payment: assign → checkout → webhook →
//! consumer → paid, each function with its own AWS clients carrying a
//! counting interceptor, against moto and the project's Stripe emulator.
//!
//!     VISITPAY_BENCH_AWS_ENDPOINT=http://127.0.0.1:PORT aws-requests [OUT.json]
//!
//! Every HTTP attempt is counted (SDK retries included). What Lambda's SQS
//! event source mapping does on the consumer's behalf (ReceiveMessage,
//! DeleteMessageBatch) is counted apart: AWS bills it, but no function sends it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use visitpay::adapters::dynamodb::DynamoStore;
use visitpay::adapters::sqs::{deliveries, ensure_queue, sqs_event, SqsQueue};
use visitpay::adapters::stripe::StripePayments;
use visitpay::adapters::tables;
use visitpay::app::actions::{self, AssignRequest, Assigned};
use visitpay::app::payment_events::handle_sqs;
use visitpay::app::{checkout, invoices, settings, webhook, AppConfig, Caller, Deps, Role};
use visitpay::domain::{
    ActionStatus, ClinicId, InvoiceId, Label, LineItemText, Locale, PatientId, SettingsInput, UserId, VisitId,
};
use visitpay::ports::{EventQueue, RandomIds, SystemClock};

/// Counts requests by `Service.Operation`.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<BTreeMap<String, u32>>>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "visitpay-request-counter"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or("unknown".to_owned(), |m| format!("{}.{}", m.service(), m.name()));
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

impl Counter {
    fn snapshot(&self) -> BTreeMap<String, u32> {
        self.0.lock().unwrap().clone()
    }
}

const WEBHOOK_SECRET: &str = "whsec_bench";
const ACCOUNT: &str = "acct_1Bench";

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "bench"))
        .load()
        .await
}

fn dynamodb(sdk: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(counter.clone()).build(),
    )
}

fn sqs(sdk: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(sdk).interceptor(counter.clone()).build())
}

fn sign(body: &str, now: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{now}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={now},v1={hex}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("VISITPAY_BENCH_AWS_ENDPOINT").map_err(|_| "set VISITPAY_BENCH_AWS_ENDPOINT (moto)")?;
    let out = std::env::args().nth(1);
    let sdk = sdk(&endpoint).await;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
    let table = format!("bench-{stamp}");

    // The Stripe emulator, in process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stripe_base = format!("http://{}", listener.local_addr()?);
    let emulator = stripe_emulator::Emulator::new(stripe_emulator::Config {
        public_base: stripe_base.clone(),
        webhook_url: None,
        webhook_secret: WEBHOOK_SECRET.into(),
    });
    let router = emulator.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let payments = Arc::new(StripePayments::new("sk_test_bench", Some(&format!("{stripe_base}/")))?);

    // One set of counted clients per function, as each Lambda has its own.
    let functions =
        ["setup", "assign-action", "create-checkout", "stripe-webhook", "process-payment-events", "sqs-event-source"];
    let counters: BTreeMap<&str, Counter> = functions.iter().map(|f| (*f, Counter::default())).collect();
    let queue_url = ensure_queue(&sqs(&sdk, &counters["setup"]), &format!("bench-events-{stamp}"), 5, 30).await?;
    let deps_for = |function: &str| Deps {
        store: Arc::new(DynamoStore::new(dynamodb(&sdk, &counters[function]), table.clone())),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        payments: Some(payments.clone()),
        queue: Some(Arc::new(SqsQueue::new(sqs(&sdk, &counters[function]), queue_url.clone())) as Arc<dyn EventQueue>),
        config: AppConfig {
            patient_link_base: "https://pay.example.test/patient/actions".into(),
            webhook_secrets: vec![WEBHOOK_SECRET.into()],
        },
    };

    // Setup, not counted: the table, a clinic switched on, two selected invoices.
    let setup = deps_for("setup");
    DynamoStore::new(dynamodb(&sdk, &counters["setup"]), table.clone()).ensure_table(&tables::main_table()).await?;
    let clinic = ClinicId::parse("bench-clinic")?;
    let patient = PatientId::parse("bench-patient")?;
    let support = Caller { sub: UserId::parse("support")?, role: Role::Support, clinic_id: None };
    let staff = Caller { sub: UserId::parse("staff")?, role: Role::Staff, clinic_id: Some(clinic.clone()) };
    let input = SettingsInput {
        enabled: true,
        label: Label { en: "Pay".into(), fr: "Payer".into() },
        stripe_account_id: Some(ACCOUNT.into()),
        currency: "cad".into(),
        checkout_ttl_minutes: 60,
        action_ttl_hours: 72,
        line_item_text: LineItemText::Generic,
    };
    settings::put(&setup, &support, clinic.clone(), input).await?;
    let ids: Vec<InvoiceId> = vec![InvoiceId::parse("1")?, InvoiceId::parse("2")?];
    for id in &ids {
        let i = visitpay::domain::invoice::InvoiceInput {
            amount: 2500,
            currency: "cad".into(),
            description: String::new(),
            service_date: "2026-11-20".into(),
        };
        invoices::import(&setup, &clinic, &patient, id, i).await?;
    }
    invoices::select(&setup, &clinic, &patient, &ids).await?;

    // 1. assign-action (with an Idempotency-Key, as the clinic web app sends).
    let request = AssignRequest { patient_id: patient.clone(), invoice_ids: ids.clone(), locale: Locale::FrCa };
    let visit = VisitId::parse("bench-visit")?;
    let Assigned::Created { action, patient_url } =
        actions::assign(&deps_for("assign-action"), &staff, &clinic, &visit, request, Some("bench-key-1")).await?
    else {
        return Err("expected a new action".into());
    };
    let token = patient_url.rsplit('/').next().unwrap().to_owned();

    // 2. create-checkout, then the patient pays at "Stripe" (no webhook sent).
    checkout::open(&deps_for("create-checkout"), &token).await?;
    let session_id = actions::get(&setup, &clinic, &action.action_id).await?.checkout_session_id().unwrap().to_owned();
    let http = reqwest::Client::new();
    http.post(format!("{stripe_base}/test/checkout_sessions/{session_id}/pay"))
        .json(&json!({"outcome": "succeeded", "send_webhooks": false}))
        .send()
        .await?
        .error_for_status()?;
    let events: Value = http
        .get(format!("{stripe_base}/v1/events?limit=100"))
        .bearer_auth("sk_test_bench")
        .header("Stripe-Account", ACCOUNT)
        .send()
        .await?
        .json()
        .await?;

    // 3. stripe-webhook: each event Stripe sends, signed as Stripe signs.
    let webhook_deps = deps_for("stripe-webhook");
    let mut webhook_events = 0;
    for e in events["data"].as_array().ok_or("no events")?.iter().rev() {
        let body = e.to_string();
        let signature = sign(&body, time::OffsetDateTime::now_utc().unix_timestamp());
        if let webhook::Accepted::Queued { .. } =
            webhook::accept(&webhook_deps, body.as_bytes(), Some(&signature)).await?
        {
            webhook_events += 1;
        }
    }

    // 4. process-payment-events, fed as the event source mapping feeds it.
    let consumer = deps_for("process-payment-events");
    let source = sqs(&sdk, &counters["sqs-event-source"]);
    let received = source.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await?;
    let messages = received.messages.unwrap_or_default();
    let deliveries = deliveries(&messages);
    let failures = handle_sqs(&consumer, sqs_event(&deliveries, "arn:aws:sqs:us-east-1:000000000000:bench")).await;
    if !failures.batch_item_failures.is_empty() {
        return Err("the consumer reported failures".into());
    }
    let mut delete = source.delete_message_batch().queue_url(&queue_url);
    for (i, d) in deliveries.iter().enumerate() {
        delete = delete.entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(d.receipt_handle)
                .build()?,
        );
    }
    delete.send().await?;

    let paid = actions::get(&setup, &clinic, &action.action_id).await?;
    if paid.status() != ActionStatus::Paid {
        return Err(format!("expected paid, got {}", paid.status()).into());
    }

    // Report.
    let mut rows = Vec::new();
    let mut total = 0;
    println!("AWS requests per completed payment (card, {webhook_events} webhook event(s), 2 invoices), against moto");
    println!("{:<24} {:>8}  operations", "function", "requests");
    for f in &functions[1..] {
        let ops = counters[f].snapshot();
        let n: u32 = ops.values().sum();
        if *f != "sqs-event-source" {
            total += n;
        }
        let list: Vec<String> = ops.iter().map(|(op, c)| format!("{op}×{c}")).collect();
        println!("{f:<24} {n:>8}  {}", list.join(", "));
        rows.push(json!({"function": f, "requests": n, "operations": ops}));
    }
    println!("{:<24} {:>8}  (target ≤ 8; plus the event source mapping's own requests)", "all functions", total);
    let report = json!({
        "benchmark": "aws_requests_per_payment",
        "measured_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?,
        "webhook_events": webhook_events,
        "functions_total": total,
        "by_function": rows,
        "consumed_capacity": "not measured (moto does not report it for every operation)",
    });
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("written to {path}");
    }
    Ok(())
}
