//! Helpers for the cross-cutting tests: fixtures built through the domain,
//! and a macro that runs one test body against both stores.

use std::sync::Arc;

use visitpay::app::{invoices, settings, Caller, Deps, Role};
use visitpay::domain::invoice::InvoiceInput;
use visitpay::domain::{ClinicId, InvoiceId, Label, LineItemText, PatientId, SettingsInput, UserId, VisitId};
use visitpay::ports::Store;

pub fn clinic(s: &str) -> ClinicId {
    ClinicId::parse(s).unwrap()
}
pub fn patient(s: &str) -> PatientId {
    PatientId::parse(s).unwrap()
}
pub fn visit(s: &str) -> VisitId {
    VisitId::parse(s).unwrap()
}
pub fn ids(list: &[&str]) -> Vec<InvoiceId> {
    list.iter().map(|s| InvoiceId::parse(s).unwrap()).collect()
}

pub fn staff(clinic_id: &str) -> Caller {
    Caller { sub: UserId::parse("staff-1").unwrap(), role: Role::Staff, clinic_id: Some(clinic(clinic_id)) }
}

pub fn support() -> Caller {
    Caller { sub: UserId::parse("support-1").unwrap(), role: Role::Support, clinic_id: None }
}

pub fn settings_input(enabled: bool, currency: &str) -> SettingsInput {
    SettingsInput {
        enabled,
        label: Label { en: "Private billing".into(), fr: "Facturation privée".into() },
        stripe_account_id: Some("acct_1Test".into()),
        currency: currency.into(),
        checkout_ttl_minutes: 60,
        action_ttl_hours: 72,
        line_item_text: LineItemText::Generic,
    }
}

pub async fn enable_clinic(deps: &Deps, clinic_id: &str) {
    settings::put(deps, &support(), clinic(clinic_id), settings_input(true, "cad")).await.unwrap();
}

pub fn invoice_input(amount: i64, currency: &str) -> InvoiceInput {
    InvoiceInput {
        amount,
        currency: currency.into(),
        description: "Consultation".into(),
        service_date: "2027-01-14".into(),
    }
}

pub async fn import(deps: &Deps, clinic_id: &str, patient_id: &str, invoice: &str, amount: i64, currency: &str) {
    invoices::import(
        deps,
        &clinic(clinic_id),
        &patient(patient_id),
        &ids(&[invoice])[0],
        invoice_input(amount, currency),
    )
    .await
    .unwrap();
}

/// Runs each listed `async fn(Arc<dyn Store>)` once on the embedded store and
/// once on DynamoDB (moto, a fresh table per test).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(visitpay::testkit::embedded_store())).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = visitpay::testkit::dynamodb_store(stringify!($name)).await;
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
    };
}

pub type DynStore = Arc<dyn Store>;

/// The project's Stripe emulator on a free loopback port, and a real Stripe
/// client (async-stripe) pointed at it.
pub struct StripeFixture {
    pub emulator: stripe_emulator::Emulator,
    pub base: String,
    pub payments: std::sync::Arc<dyn visitpay::ports::Payments>,
}

pub const STRIPE_KEY: &str = "sk_test_visitpay_tests";
pub const ACCOUNT: &str = "acct_1Test";

pub async fn stripe_emulator(webhook_url: Option<String>) -> StripeFixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emulator = stripe_emulator::Emulator::new(stripe_emulator::Config {
        public_base: base.clone(),
        webhook_url,
        webhook_secret: visitpay::testkit::TEST_WEBHOOK_SECRET.into(),
    });
    let router = emulator.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let payments =
        visitpay::adapters::stripe::StripePayments::new(STRIPE_KEY, Some(&format!("{base}/"))).expect("stripe client");
    StripeFixture { emulator, base, payments: Arc::new(payments) }
}

impl StripeFixture {
    /// `POST /test/checkout_sessions/{id}/pay` on the emulator.
    pub async fn pay(&self, session_id: &str, outcome: &str) -> serde_json::Value {
        let url = format!("{}/test/checkout_sessions/{session_id}/pay", self.base);
        let res = reqwest::Client::new()
            .post(url)
            .json(&serde_json::json!({"outcome": outcome, "send_webhooks": false}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "pay {outcome}: {}", res.status());
        res.json().await.unwrap()
    }

    /// The account's events, oldest first (Stripe lists newest first).
    pub async fn events(&self) -> Vec<serde_json::Value> {
        let res = reqwest::Client::new()
            .get(format!("{}/v1/events?limit=100", self.base))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", ACCOUNT)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let body: serde_json::Value = res.json().await.unwrap();
        let mut events = body["data"].as_array().unwrap().clone();
        events.reverse();
        events
    }
}

/// Deps whose clock is the real time (Stripe checks `expires_at` against its
/// own clock), with Stripe and the given queue.
pub fn deps_for_payments(
    store: DynStore,
    stripe: &StripeFixture,
    queue: Option<Arc<dyn visitpay::ports::EventQueue>>,
) -> (Deps, Arc<visitpay::testkit::FixedClock>) {
    let (mut deps, _) = visitpay::testkit::deps_with(store);
    let clock = Arc::new(visitpay::testkit::FixedClock::at_unix(time::OffsetDateTime::now_utc().unix_timestamp()));
    deps.clock = clock.clone();
    deps.payments = Some(stripe.payments.clone());
    deps.queue = queue;
    (deps, clock)
}

/// Imports, selects and assigns invoices; returns the action and its link token.
pub async fn assigned_action(
    deps: &Deps,
    clinic_id: &str,
    invoices_: &[(&str, i64, &str)],
) -> (visitpay::domain::Action, String) {
    use visitpay::app::actions::{assign, AssignRequest, Assigned};
    enable_clinic(deps, clinic_id).await;
    for (id, amount, description) in invoices_ {
        let mut input = invoice_input(*amount, "cad");
        input.description = (*description).into();
        invoices::import(deps, &clinic(clinic_id), &patient("p1"), &ids(&[id])[0], input).await.unwrap();
    }
    let list: Vec<&str> = invoices_.iter().map(|(id, _, _)| *id).collect();
    invoices::select(deps, &clinic(clinic_id), &patient("p1"), &ids(&list)).await.unwrap();
    let request =
        AssignRequest { patient_id: patient("p1"), invoice_ids: ids(&list), locale: visitpay::domain::Locale::FrCa };
    match assign(deps, &staff(clinic_id), &clinic(clinic_id), &visit("v1"), request, None).await.unwrap() {
        Assigned::Created { action, patient_url } => {
            let token = patient_url.rsplit('/').next().unwrap().to_owned();
            (action, token)
        }
        other => panic!("expected a new action, got {other:?}"),
    }
}
