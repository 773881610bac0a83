//! What the benchmarks share: statistics, the AWS and Stripe set-up against
//! the emulators, Stripe's webhook signature, and a seeded clinic.

use std::sync::Arc;

use serde_json::{json, Value};
use visitpay_app::actions::{self, AssignRequest, Assigned};
use visitpay_app::ports::Store;
use visitpay_app::{invoices, settings, AppConfig, Caller, Deps, PatientLinks, Queue, Role, Stripe};
use visitpay_domain::{
    ActionId, ClinicId, InvoiceId, Label, LineItemText, Locale, PatientId, SettingsInput, UserId, VisitId,
};
use visitpay_edge::system::{RandomIds, SystemClock};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const WEBHOOK_SECRET: &str = "whsec_bench";
pub const STRIPE_KEY: &str = "sk_test_bench";
pub const ACCOUNT: &str = "acct_1Bench";
pub const CLINIC: &str = "bench-clinic";
pub const PATIENT: &str = "bench-patient";
pub const PATIENT_LINK_BASE: &str = "https://pay.example.test/patient/actions";

/// Median and spread of repeated measurements.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "no samples to summarise");
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between closest ranks.
            let pos = q * (s.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
        };
        Summary { n: s.len(), median: at(0.5), p25: at(0.25), p75: at(0.75), min: s[0], max: s[s.len() - 1] }
    }

    pub fn json(&self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({"n": self.n, "median": r(self.median), "p25": r(self.p25), "p75": r(self.p75),
               "min": r(self.min), "max": r(self.max)})
    }

    /// `12.3 (11.9–13.0)`: the median and the interquartile range.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.d$} ({:.d$}–{:.d$})", self.median, self.p25, self.p75, d = decimals)
    }
}

/// Tail percentiles of one set of latencies (nearest rank, as latency
/// percentiles are usually given).
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: &[f64]) -> Percentiles {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        Percentiles { n: s.len(), p50: r(rank(0.5)), p90: r(rank(0.9)), p99: r(rank(0.99)), max: r(s[s.len() - 1]) }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formattable")
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A `Stripe-Signature` header value, as Stripe computes it.
pub fn sign(secret: &str, body: &str, timestamp: i64) -> String {
    stripe_emulator::sign(body, secret, timestamp)
}

/// AWS SDK configuration for moto.
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "bench"))
        .load()
        .await
}

pub fn moto_endpoint() -> Result<String, BoxError> {
    std::env::var("VISITPAY_BENCH_AWS_ENDPOINT").map_err(|_| "set VISITPAY_BENCH_AWS_ENDPOINT (moto)".into())
}

/// A unique suffix for this run's table and queue names.
pub fn run_stamp() -> String {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000_000).to_string()
}

/// The project's Stripe emulator, served in process on a free port; returns its base URL.
pub async fn stripe_emulator() -> Result<String, BoxError> {
    Ok(stripe_emulator_handle().await?.0)
}

/// As `stripe_emulator`, with the emulator itself (its request log counts
/// the Stripe calls a step makes).
pub async fn stripe_emulator_handle() -> Result<(String, stripe_emulator::Emulator), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let emulator =
        stripe_emulator::Emulator::new(stripe_emulator::Config::new(base.clone(), None, WEBHOOK_SECRET, &[ACCOUNT]));
    let router = emulator.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((base, emulator))
}

/// Deps as the benchmarks use them: every port wired.
pub type BenchDeps = Deps<Stripe, Queue>;

pub fn deps(store: Arc<dyn Store>, payments: Stripe, queue: Queue) -> BenchDeps {
    let config = AppConfig {
        patient_links: PatientLinks::parse(PATIENT_LINK_BASE).expect("a valid base"),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        edge_secret: None,
        onboarding_page: None,
    };
    let metrics = Arc::new(visitpay_devkit::recorded_metrics::RecordedMetrics::default());
    Deps::new(store, Arc::new(SystemClock), Arc::new(RandomIds), metrics, config)
        .with_payments(payments)
        .with_queue(queue)
}

/// A queue nobody reads, for benchmarks that do not follow events.
pub fn unread_queue() -> Queue {
    Arc::new(visitpay_devkit::embedded_queue::EmbeddedQueue::new(5, std::time::Duration::from_secs(1)))
}

pub fn clinic() -> ClinicId {
    ClinicId::parse(CLINIC).expect("valid")
}

pub fn patient() -> PatientId {
    PatientId::parse(PATIENT).expect("valid")
}

pub fn staff() -> Caller {
    Caller { sub: UserId::parse("bench-staff").expect("valid"), role: Role::Staff, clinic_id: Some(clinic()) }
}

/// Switches the bench clinic on, with the bench Stripe account.
pub async fn seed_clinic(deps: &BenchDeps) -> Result<(), BoxError> {
    seed_clinic_as(deps, clinic(), ACCOUNT).await
}

/// Switches `clinic` on, its payments going to `account`.
pub async fn seed_clinic_as(deps: &BenchDeps, clinic: ClinicId, account: &str) -> Result<(), BoxError> {
    let support = Caller { sub: UserId::parse("bench-support")?, role: Role::Support, clinic_id: None };
    let input = SettingsInput {
        enabled: true,
        label: Label { en: "Pay".into(), fr: "Payer".into() },
        stripe_account_id: Some(account.into()),
        currency: "cad".into(),
        checkout_ttl_minutes: 60,
        action_ttl_hours: 72,
        line_item_text: LineItemText::Generic,
        receipt_issuer: Default::default(),
        embed_origins: Vec::new(),
        time_zone: None,
        receipt_days: visitpay_domain::settings::DEFAULT_RECEIPT_DAYS,
        checkout_domain: None,
        reminder_hours: Vec::new(),
        quiet_hours: Default::default(),
    };
    settings::put(deps, &support, clinic, input).await?;
    Ok(())
}

/// The benchmarks' invoice: 25.00 CAD, of 20 November, nothing else said.
pub fn invoice_input() -> visitpay_domain::invoice::InvoiceInput {
    visitpay_domain::invoice::InvoiceInput {
        amount: 2500,
        currency: "cad".into(),
        description: String::new(),
        service_date: "2026-11-20".into(),
        receipt: Default::default(),
    }
}

/// Imports and selects invoices of 25.00 CAD for the bench patient.
pub async fn seed_selected_invoices(deps: &BenchDeps, ids: &[&str]) -> Result<Vec<InvoiceId>, BoxError> {
    let ids: Vec<InvoiceId> = ids.iter().map(|i| InvoiceId::parse(i)).collect::<Result<_, _>>()?;
    for id in &ids {
        invoices::import(deps, &clinic(), &patient(), id, invoice_input()).await?;
    }
    invoices::select(deps, &clinic(), &patient(), &ids).await?;
    Ok(ids)
}

/// Opens Checkout for the action behind `token` (what create-checkout does,
/// and nothing more) and pays it at the emulator (no webhook sent); returns
/// the session id, the last segment of the emulator's checkout URL.
pub async fn open_and_pay(deps: &BenchDeps, stripe_base: &str, token: &str) -> Result<String, BoxError> {
    let link = visitpay_app::checkout::open(deps, token).await?;
    let session =
        link.url.rsplit('/').next().filter(|s| s.starts_with("cs_")).ok_or("no session in the url")?.to_owned();
    reqwest::Client::new()
        .post(format!("{stripe_base}/test/checkout_sessions/{session}/pay"))
        .json(&json!({"outcome": "succeeded", "send_webhooks": false}))
        .send()
        .await?
        .error_for_status()?;
    Ok(session)
}

/// A call to the emulator's Stripe API as the bench platform on the bench
/// account; `form` is an `application/x-www-form-urlencoded` body.
pub async fn stripe_call(request: reqwest::RequestBuilder, form: Option<String>) -> Result<Value, BoxError> {
    let mut r = request.bearer_auth(STRIPE_KEY).header("Stripe-Account", ACCOUNT);
    if let Some(body) = form {
        r = r.header("content-type", "application/x-www-form-urlencoded").body(body);
    }
    Ok(r.send().await?.error_for_status()?.json().await?)
}

/// The bench account's latest events at the emulator (one page, newest first).
pub async fn stripe_events(stripe_base: &str) -> Result<Vec<Value>, BoxError> {
    let page = stripe_call(reqwest::Client::new().get(format!("{stripe_base}/v1/events?limit=100")), None).await?;
    Ok(page["data"].as_array().ok_or("no events")?.clone())
}

/// Every event of `account` at the emulator, oldest first (all pages).
pub async fn all_stripe_events(stripe_base: &str, account: &str) -> Result<Vec<Value>, BoxError> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{stripe_base}/v1/events?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let request = client.get(url).bearer_auth(STRIPE_KEY).header("Stripe-Account", account);
        let page: Value = request.send().await?.error_for_status()?.json().await?;
        let data = page["data"].as_array().ok_or("no events")?;
        all.extend(data.iter().cloned());
        after = data.last().and_then(|e| e["id"].as_str()).map(str::to_owned);
        if page["has_more"] != true || after.is_none() {
            break;
        }
    }
    all.reverse();
    Ok(all)
}

/// An action assigned to the bench patient over fresh invoices; returns its id and link token.
pub async fn seed_action(deps: &BenchDeps, invoice_ids: &[&str], visit: &str) -> Result<(ActionId, String), BoxError> {
    let ids = seed_selected_invoices(deps, invoice_ids).await?;
    let request =
        AssignRequest { patient_id: patient(), invoice_ids: ids, locale: Locale::FrCa, notify: Default::default() };
    let visit = VisitId::parse(visit)?;
    // No key, so nothing is kept for a repeat.
    match actions::assign(deps, &staff(), &clinic(), &visit, request, None, |_| String::new()).await? {
        Assigned::Created { action, patient_url } => {
            let token = patient_url.rsplit('/').next().ok_or("no token in the patient url")?.to_owned();
            Ok((action.action_id().clone(), token))
        }
        Assigned::Replayed { .. } => Err("expected a new action".into()),
    }
}

/// A renderer the benchmarks never call: it answers that it renders nothing.
struct NoPdf;

impl visitpay_app::ports::ReceiptPdf for NoPdf {
    fn render(&self, _: &visitpay_app::ports::ReceiptDocument) -> Result<Vec<u8>, visitpay_app::ports::PdfError> {
        Err(visitpay_app::ports::PdfError("no receipt is rendered in a benchmark".into()))
    }
}

/// The local runner's routes over `deps` (no base path, no CORS), with the
/// ports no benchmark uses wired to a renderer that renders nothing and an
/// outbox that keeps what would be sent; `events` gets the status events.
pub fn local_router(deps: &BenchDeps, jwt_secret: &str, events: visitpay_local::events::LocalEvents) -> axum::Router {
    let outbox = Arc::new(visitpay_devkit::outbox::Outbox::new(deps.clock.clone(), None));
    let gateway = visitpay_local::Gateway {
        deps: deps.clone().with_pdf(Arc::new(NoPdf)).with_messenger(outbox.clone()),
        jwt_secret: jwt_secret.into(),
        cors: Default::default(),
        base_path: Default::default(),
    };
    let controls = visitpay_local::Controls {
        clock: Arc::new(visitpay_local::LocalClock::default()),
        emulator: None,
        events,
        own_hosts: visitpay_local::OwnHosts::of(([127, 0, 0, 1], 0).into()),
        outbox,
    };
    visitpay_local::router(gateway, controls)
}
