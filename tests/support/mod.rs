//! Helpers for the cross-cutting tests: fixtures built through the domain,
//! and a macro that runs one test body against both stores.

use std::sync::Arc;

pub use kit::TestDeps;
use visitpay_app::ports::Store;
use visitpay_app::{invoices, settings, Caller, Role};
use visitpay_domain::invoice::InvoiceInput;
use visitpay_domain::{ClinicId, InvoiceId, Label, LineItemText, PatientId, SettingsInput, UserId, VisitId};

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
        receipt_issuer: Default::default(),
        embed_origins: Vec::new(),
        time_zone: None,
        receipt_days: visitpay_domain::settings::DEFAULT_RECEIPT_DAYS,
        checkout_domain: None,
        reminder_hours: Vec::new(),
        quiet_hours: Default::default(),
    }
}

pub async fn enable_clinic(deps: &TestDeps, clinic_id: &str) {
    settings::put(deps, &support(), clinic(clinic_id), settings_input(true, "cad")).await.unwrap();
}

pub fn invoice_input(amount: i64, currency: &str) -> InvoiceInput {
    InvoiceInput {
        amount,
        currency: currency.into(),
        description: "Consultation".into(),
        service_date: "2027-01-14".into(),
        receipt: Default::default(),
    }
}

pub async fn import(deps: &TestDeps, clinic_id: &str, patient_id: &str, invoice: &str, amount: i64, currency: &str) {
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
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(std::sync::Arc::new($crate::support::kit::embedded_store())).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = $crate::support::kit::dynamodb_store(stringify!($name)).await;
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
    };
}

pub type DynStore = Arc<dyn Store>;

use visitpay_app::ports::{
    CheckoutRequest, CheckoutSession, ConnectedAccount, Payments, PaymentsError, Refund, RefundRequest, Stored,
};
use visitpay_domain::{Action, PaymentIntentId, SessionId, StripeAccountId};

/// An action as the store holds it: the value and its version.
pub type StoredAction = Stored<Action>;

/// The first answer an assignment keeps under its `Idempotency-Key`, as the
/// edge renders it.
pub fn first_answer(action: &StoredAction) -> String {
    serde_json::to_string(&visitpay_edge::http::views::ActionView::new(action, None)).unwrap()
}

/// Stripe ids from a test's strings.
pub fn sid(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}
pub fn pi(s: &str) -> PaymentIntentId {
    PaymentIntentId::parse(s).unwrap()
}

/// The project's Stripe emulator on a free loopback port, and a real Stripe
/// client (async-stripe) pointed at it.
pub struct StripeFixture {
    pub emulator: stripe_emulator::Emulator,
    pub base: String,
    pub payments: std::sync::Arc<dyn visitpay_app::ports::Payments>,
}

pub const STRIPE_KEY: &str = "sk_test_visitpay_tests";
pub const ACCOUNT: &str = "acct_1Test";

pub async fn stripe_emulator(webhook_url: Option<String>) -> StripeFixture {
    stripe_emulator_at(webhook_url, time::OffsetDateTime::now_utc().unix_timestamp()).await
}

/// The emulator with its clock frozen at `unix` (tests that need a given
/// time of day: quiet hours).
pub async fn stripe_emulator_at(webhook_url: Option<String>, unix: i64) -> StripeFixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Frozen: tests move it, and every side reads it.
    let mut config =
        stripe_emulator::Config::new(base.clone(), webhook_url, crate::support::kit::TEST_WEBHOOK_SECRET, &[ACCOUNT]);
    config.clock = Arc::new(stripe_emulator::Clock::fixed(unix));
    let emulator = stripe_emulator::Emulator::new(config);
    let router = emulator.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let payments = visitpay_stripe::StripePayments::new(STRIPE_KEY, Some(&format!("{base}/"))).expect("stripe client");
    StripeFixture { emulator, base, payments: Arc::new(payments) }
}

impl StripeFixture {
    /// `POST /test/checkout_sessions/{id}/pay` on the emulator (no webhook).
    async fn try_pay(&self, session_id: impl AsRef<str>, outcome: &str) -> reqwest::Response {
        let session_id = session_id.as_ref();
        reqwest::Client::new()
            .post(format!("{}/test/checkout_sessions/{session_id}/pay", self.base))
            .json(&serde_json::json!({"outcome": outcome, "send_webhooks": false}))
            .send()
            .await
            .unwrap()
    }

    /// The patient pays (or tries to); the session after it.
    pub async fn pay(&self, session_id: impl AsRef<str>, outcome: &str) -> serde_json::Value {
        let res = self.try_pay(session_id, outcome).await;
        assert!(res.status().is_success(), "pay {outcome}: {}", res.status());
        res.json().await.unwrap()
    }

    /// The status the emulator answers an attempt to pay with.
    pub async fn pay_status(&self, session_id: impl AsRef<str>, outcome: &str) -> u16 {
        self.try_pay(session_id, outcome).await.status().as_u16()
    }

    /// A refund made in Stripe's dashboard (not through visitpay).
    pub async fn dashboard_refund(&self, payment_intent: impl AsRef<str>, amount: Option<i64>) {
        let mut form = vec![("payment_intent".to_owned(), payment_intent.as_ref().to_owned())];
        if let Some(a) = amount {
            form.push(("amount".into(), a.to_string()));
        }
        let body: String = form.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let res = reqwest::Client::new()
            .post(format!("{}/v1/refunds", self.base))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", ACCOUNT)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "dashboard refund: {}", res.text().await.unwrap());
    }

    /// One of the emulator's test controls (`POST /test/...`, JSON), as a
    /// test drives Stripe's side: a dispute, a refund's bank answer, a fault.
    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let res = reqwest::Client::new().post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = res.status();
        let answer: serde_json::Value = res.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// The patient disputes the payment with their bank; Stripe's dispute.
    pub async fn dispute(&self, payment_intent: impl AsRef<str>) -> serde_json::Value {
        let payment_intent = payment_intent.as_ref();
        self.control(&format!("/test/payment_intents/{payment_intent}/dispute"), serde_json::json!({})).await
    }

    /// The newest event of `event_type`.
    pub async fn last_event(&self, event_type: &str) -> serde_json::Value {
        let events = self.events().await;
        events.into_iter().rev().find(|e| e["type"] == event_type).unwrap_or_else(|| panic!("no {event_type} event"))
    }

    /// The account's events, oldest first (Stripe lists newest first).
    pub async fn events(&self) -> Vec<serde_json::Value> {
        self.latest_events(100).await
    }

    /// The account's `n` newest events, oldest first.
    pub async fn latest_events(&self, n: usize) -> Vec<serde_json::Value> {
        self.events_of(ACCOUNT, n).await
    }

    /// Another connected account's `n` newest events, oldest first.
    pub async fn events_of(&self, account: &str, n: usize) -> Vec<serde_json::Value> {
        let res = reqwest::Client::new()
            .get(format!("{}/v1/events?limit={n}", self.base))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", account)
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

/// Deps on the emulator's clock (one clock: Stripe checks `expires_at` and
/// signs webhooks with it), with Stripe and the given queue (else one nobody
/// consumes). Advancing the returned clock moves Stripe's too.
pub fn deps_for_payments(
    store: DynStore,
    stripe: &StripeFixture,
    queue: Option<Arc<dyn visitpay_app::ports::EventQueue>>,
) -> (TestDeps, Arc<crate::support::kit::FixedClock>) {
    let (mut deps, _) = crate::support::kit::deps_with(store);
    let clock = Arc::new(crate::support::kit::FixedClock::sharing(stripe.emulator.clock()));
    deps.clock = clock.clone();
    deps.payments = stripe.payments.clone();
    if let Some(queue) = queue {
        deps.queue = queue;
    }
    (deps, clock)
}

/// Imports, selects and assigns invoices; returns the action and its link token.
pub async fn assigned_action(
    deps: &TestDeps,
    clinic_id: &str,
    invoices_: &[(&str, i64, &str)],
) -> (StoredAction, String) {
    use visitpay_app::actions::{assign, AssignRequest, Assigned};
    enable_clinic(deps, clinic_id).await;
    for (id, amount, description) in invoices_ {
        let mut input = invoice_input(*amount, "cad");
        input.description = (*description).into();
        invoices::import(deps, &clinic(clinic_id), &patient("p1"), &ids(&[id])[0], input).await.unwrap();
    }
    let list: Vec<&str> = invoices_.iter().map(|(id, _, _)| *id).collect();
    invoices::select(deps, &clinic(clinic_id), &patient("p1"), &ids(&list)).await.unwrap();
    let request = AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&list),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    match assign(deps, &staff(clinic_id), &clinic(clinic_id), &visit("v1"), request, None, first_answer).await.unwrap()
    {
        Assigned::Created { action, patient_url } => {
            let token = patient_url.rsplit('/').next().unwrap().to_owned();
            (action, token)
        }
        other => panic!("expected a new action, got {other:?}"),
    }
}

/// What the fault proxy does to a request that matches its rule.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer `status` with `body` without forwarding (the upstream never sees it).
    Refuse { status: u16, body: &'static str },
    /// As `Refuse`, with Stripe's `Stripe-Should-Retry: false`: Stripe's word
    /// that the same request will fail again
    /// (https://docs.stripe.com/error-low-level#idempotency).
    RefuseFinal { status: u16, body: &'static str },
    /// Forward, let the upstream act, then answer 500 anyway (a lost response).
    LoseResponse,
    /// Forward after this delay (the client may time out meanwhile).
    Delay(std::time::Duration),
}

/// A loopback HTTP proxy that injects `fault` into the first `times`
/// requests satisfying `matches`, and forwards everything else untouched.
pub struct FaultProxy {
    pub base: String,
    pub injected: Arc<std::sync::atomic::AtomicUsize>,
    limit: Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultProxy {
    /// Injects the fault into `more` matching requests beyond those already allowed.
    pub fn allow_more(&self, more: usize) {
        self.limit.fetch_add(more, std::sync::atomic::Ordering::SeqCst);
    }

    /// Injects nothing more: what was allowed and not met yet is dropped.
    pub fn stop(&self) {
        let met = self.injected.load(std::sync::atomic::Ordering::SeqCst);
        self.limit.store(met, std::sync::atomic::Ordering::SeqCst);
    }
}

/// DynamoDB's answer when a table's throughput is exceeded: the request is
/// refused and nothing is done ("ThrottlingException … Rate of requests
/// exceeds the allowed throughput", DynamoDB API Reference, Common Errors).
pub const DYNAMODB_THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    matches: Arc<dyn Fn(&str, &str, &axum::http::HeaderMap) -> bool + Send + Sync>,
    fault: Fault,
    times: Arc<std::sync::atomic::AtomicUsize>,
    injected: Arc<std::sync::atomic::AtomicUsize>,
    client: reqwest::Client,
}

pub async fn fault_proxy(
    upstream: &str,
    fault: Fault,
    times: usize,
    matches: impl Fn(&str, &str, &axum::http::HeaderMap) -> bool + Send + Sync + 'static,
) -> FaultProxy {
    let injected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limit = Arc::new(std::sync::atomic::AtomicUsize::new(times));
    let state = ProxyState {
        upstream: upstream.trim_end_matches('/').to_owned(),
        matches: Arc::new(matches),
        fault,
        times: limit.clone(),
        injected: injected.clone(),
        client: reqwest::Client::new(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(proxy).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    FaultProxy { base, injected, limit }
}

async fn proxy(
    axum::extract::State(s): axum::extract::State<ProxyState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use std::sync::atomic::Ordering;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let hit = (s.matches)(parts.method.as_str(), &path, &parts.headers)
        && s.injected
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < s.times.load(Ordering::SeqCst)).then_some(n + 1))
            .is_ok();
    let respond = |status: u16, body: Vec<u8>, headers: Vec<(String, String)>| {
        let mut builder = axum::response::Response::builder().status(status);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        builder.body(axum::body::Body::from(body)).unwrap()
    };
    if hit {
        match s.fault {
            Fault::Refuse { status, body } => {
                return respond(
                    status,
                    body.as_bytes().to_vec(),
                    vec![("content-type".into(), "application/json".into())],
                )
            }
            Fault::RefuseFinal { status, body } => {
                return respond(
                    status,
                    body.as_bytes().to_vec(),
                    vec![
                        ("content-type".into(), "application/json".into()),
                        ("stripe-should-retry".into(), "false".into()),
                    ],
                )
            }
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::LoseResponse => {}
        }
    }
    let mut forward = s.client.request(parts.method.clone(), format!("{}{}", s.upstream, path)).body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let upstream = forward.send().await.unwrap();
    let status = upstream.status().as_u16();
    let headers: Vec<(String, String)> = upstream
        .headers()
        .iter()
        .filter(|(k, _)| *k != "content-length" && *k != "transfer-encoding")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = upstream.bytes().await.unwrap().to_vec();
    if hit && matches!(s.fault, Fault::LoseResponse) {
        return respond(500, br#"{"error":{"type":"api_error","message":"injected"}}"#.to_vec(), vec![]);
    }
    respond(status, bytes, headers)
}

/// A loopback TCP relay to `upstream` (host:port) that counts the
/// connections clients open through it: connection reuse, seen from the wire.
pub async fn counting_relay(upstream: &str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (upstream, count) = (upstream.to_owned(), opened.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (base, opened)
}

/// A Stripe whose expire call "succeeds" although the payment is racing in.
pub struct RacingExpire(pub Arc<dyn Payments>);

#[async_trait::async_trait]
impl Payments for RacingExpire {
    async fn create_checkout(&self, r: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError> {
        self.0.create_checkout(r).await
    }
    async fn retrieve_checkout(&self, a: &StripeAccountId, s: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        self.0.retrieve_checkout(a, s).await
    }
    async fn expire_checkout(&self, a: &StripeAccountId, s: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        self.0.retrieve_checkout(a, s).await
    }
    async fn refund(&self, r: &RefundRequest) -> Result<Refund, PaymentsError> {
        self.0.refund(r).await
    }
    async fn recover_checkout(&self, r: &CheckoutRequest) -> Result<Option<CheckoutSession>, PaymentsError> {
        self.0.recover_checkout(r).await
    }
    async fn retrieve_account(&self, a: &StripeAccountId) -> Result<ConnectedAccount, PaymentsError> {
        self.0.retrieve_account(a).await
    }
    async fn list_refunds(&self, a: &StripeAccountId, pi: &PaymentIntentId) -> Result<Vec<Refund>, PaymentsError> {
        self.0.list_refunds(a, pi).await
    }
    async fn payment_method(
        &self,
        a: &StripeAccountId,
        pi: &PaymentIntentId,
    ) -> Result<Option<visitpay_domain::PaymentMethod>, PaymentsError> {
        self.0.payment_method(a, pi).await
    }
    async fn create_account(&self, c: &visitpay_domain::ClinicId) -> Result<ConnectedAccount, PaymentsError> {
        self.0.create_account(c).await
    }
    async fn create_account_link(
        &self,
        a: &StripeAccountId,
        refresh: &str,
        back: &str,
    ) -> Result<visitpay_app::ports::AccountLink, PaymentsError> {
        self.0.create_account_link(a, refresh, back).await
    }
    async fn list_payout_transactions(
        &self,
        a: &StripeAccountId,
        payout: &str,
    ) -> Result<Vec<visitpay_app::ports::BalanceTransaction>, PaymentsError> {
        self.0.list_payout_transactions(a, payout).await
    }
    async fn list_undelivered_events(
        &self,
        a: &StripeAccountId,
        after: visitpay_domain::Timestamp,
        until: visitpay_domain::Timestamp,
    ) -> Result<visitpay_app::ports::EventLog, PaymentsError> {
        self.0.list_undelivered_events(a, after, until).await
    }
    fn livemode(&self) -> bool {
        self.0.livemode()
    }
}

/// An action assigned, opened and paid, its events applied.
pub async fn paid_action(
    deps: &TestDeps,
    stripe: &StripeFixture,
    c: &str,
    lines: &[(&str, i64, &str)],
) -> StoredAction {
    let (action, token) = assigned_action(deps, c, lines).await;
    let session = open_checkout(deps, c, action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    deliver_all(deps, stripe).await;
    let paid = action_of(deps, c, action.action_id()).await;
    assert_eq!(paid.status(), visitpay_domain::ActionStatus::Paid);
    paid
}

/// A Checkout Session made at Stripe for `action` but not through visitpay's
/// checkout (a click that crashed before recording it, or someone else's,
/// on `account`), for `amount`; its id.
pub async fn session_at_stripe(stripe: &StripeFixture, account: &str, action: &Action, amount: i64) -> SessionId {
    try_session_at_stripe(stripe, account, action, amount).await.unwrap()
}

/// As `session_at_stripe`, with Stripe's refusal (an incident) as it came.
pub async fn try_session_at_stripe(
    stripe: &StripeFixture,
    account: &str,
    action: &Action,
    amount: i64,
) -> Result<SessionId, visitpay_app::ports::PaymentsError> {
    use visitpay_app::ports::{CheckoutLine, META_ACTION, META_CLINIC};
    let now = stripe.emulator.clock().now();
    let request = CheckoutRequest {
        account: StripeAccountId::parse(account).unwrap(),
        idempotency_key: format!("stray-{}-{amount}-{now}-{}", action.action_id(), stripe.emulator.requests().len()),
        currency: action.currency(),
        lines: vec![CheckoutLine { name: "Services".into(), amount }],
        client_reference_id: action.action_id().to_string(),
        metadata: vec![
            (META_ACTION.to_owned(), action.action_id().to_string()),
            (META_CLINIC.to_owned(), action.clinic_id().to_string()),
        ],
        locale: action.locale(),
        expires_at: time::OffsetDateTime::from_unix_timestamp(now + 3600).unwrap(),
        success_url: "https://pay.example.test/done".into(),
        cancel_url: "https://pay.example.test/back".into(),
    };
    Ok(stripe.payments.create_checkout(&request).await?.id)
}

impl StripeFixture {
    /// A session's status at Stripe, on the tests' account.
    pub async fn session_status(&self, session_id: impl AsRef<str>) -> visitpay_app::ports::SessionStatus {
        let account = StripeAccountId::parse(ACCOUNT).unwrap();
        self.payments.retrieve_checkout(&account, &sid(session_id.as_ref())).await.unwrap().status
    }
}

/// A Stripe that, right after its first expire call, lets something else
/// happen (`meanwhile`: a webhook, a patient's click) before answering: the
/// window in which a cancel or an expiry races a new session.
pub struct MeanwhileAfterExpire {
    inner: Arc<dyn Payments>,
    meanwhile: std::sync::Mutex<Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>>,
}

impl MeanwhileAfterExpire {
    pub fn new(
        inner: Arc<dyn Payments>,
        meanwhile: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Arc<Self> {
        Arc::new(MeanwhileAfterExpire { inner, meanwhile: std::sync::Mutex::new(Some(Box::pin(meanwhile))) })
    }
}

#[async_trait::async_trait]
impl Payments for MeanwhileAfterExpire {
    async fn create_checkout(&self, r: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError> {
        self.inner.create_checkout(r).await
    }
    async fn retrieve_checkout(&self, a: &StripeAccountId, s: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        self.inner.retrieve_checkout(a, s).await
    }
    async fn expire_checkout(&self, a: &StripeAccountId, s: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        let answer = self.inner.expire_checkout(a, s).await;
        let meanwhile = self.meanwhile.lock().unwrap().take();
        if let Some(meanwhile) = meanwhile {
            meanwhile.await;
        }
        answer
    }
    async fn refund(&self, r: &RefundRequest) -> Result<Refund, PaymentsError> {
        self.inner.refund(r).await
    }
    async fn recover_checkout(&self, r: &CheckoutRequest) -> Result<Option<CheckoutSession>, PaymentsError> {
        self.inner.recover_checkout(r).await
    }
    async fn retrieve_account(&self, a: &StripeAccountId) -> Result<ConnectedAccount, PaymentsError> {
        self.inner.retrieve_account(a).await
    }
    async fn list_refunds(&self, a: &StripeAccountId, pi: &PaymentIntentId) -> Result<Vec<Refund>, PaymentsError> {
        self.inner.list_refunds(a, pi).await
    }
    async fn payment_method(
        &self,
        a: &StripeAccountId,
        pi: &PaymentIntentId,
    ) -> Result<Option<visitpay_domain::PaymentMethod>, PaymentsError> {
        self.inner.payment_method(a, pi).await
    }
    async fn create_account(&self, c: &visitpay_domain::ClinicId) -> Result<ConnectedAccount, PaymentsError> {
        self.inner.create_account(c).await
    }
    async fn create_account_link(
        &self,
        a: &StripeAccountId,
        refresh: &str,
        back: &str,
    ) -> Result<visitpay_app::ports::AccountLink, PaymentsError> {
        self.inner.create_account_link(a, refresh, back).await
    }
    async fn list_payout_transactions(
        &self,
        a: &StripeAccountId,
        payout: &str,
    ) -> Result<Vec<visitpay_app::ports::BalanceTransaction>, PaymentsError> {
        self.inner.list_payout_transactions(a, payout).await
    }
    async fn list_undelivered_events(
        &self,
        a: &StripeAccountId,
        after: visitpay_domain::Timestamp,
        until: visitpay_domain::Timestamp,
    ) -> Result<visitpay_app::ports::EventLog, PaymentsError> {
        self.inner.list_undelivered_events(a, after, until).await
    }
    fn livemode(&self) -> bool {
        self.inner.livemode()
    }
}

/// The patient opens Checkout for an action; returns the session's id.
pub async fn open_checkout(
    deps: &TestDeps,
    clinic_id: &str,
    action: &visitpay_domain::ActionId,
    token: &str,
) -> SessionId {
    visitpay_app::checkout::open(deps, token).await.unwrap();
    let opened = visitpay_app::actions::get(deps, &clinic(clinic_id), action).await.unwrap();
    opened.checkout_session_id().expect("an open session").clone()
}

pub mod aws_calls;
pub mod kit;
pub mod moto_mail;
pub mod schema;

/// An API Gateway HTTP API (v2) request for `method path`, routed by the
/// route table as API Gateway would (route key and path parameters), with the
/// JWT authorizer's `claims` when given: what a function receives.
pub fn api_request(
    method: &str,
    path: &str,
    claims: Option<&serde_json::Value>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    use serde_json::{json, Value};
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let (route, params) = visitpay_edge::http::functions::match_path(method, path_only)
        .unwrap_or_else(|| panic!("{method} {path} matches no route"));
    // Payload 2.0 carries cookies in `cookies`, not in the headers.
    let cookies: Vec<Value> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';').map(|c| Value::String(c.trim().to_owned())))
        .collect();
    let mut header_map: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("cookie"))
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String((*v).to_owned())))
        .collect();
    header_map.entry("content-type").or_insert_with(|| json!("application/json"));
    let mut context = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.test", "stage": "$default",
        "requestId": "req-test", "routeKey": route.key(), "time": "01/Jan/2027:00:00:00 +0000", "timeEpoch": 0,
        "http": {"method": method, "path": path_only, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "tests"}
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0", "routeKey": route.key(), "rawPath": path_only, "rawQueryString": query,
        "headers": header_map, "requestContext": context, "isBase64Encoded": false,
    });
    if !params.is_empty() {
        event["pathParameters"] = params.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
    }
    if !query.is_empty() {
        let q: serde_json::Map<String, Value> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        event["queryStringParameters"] = Value::Object(q);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if let Some(body) = body {
        event["body"] = Value::String(body.to_owned());
    }
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// The claims API Gateway's JWT authorizer hands a function for a user.
pub fn claims(sub: &str, clinic_id: &str, role: &str) -> serde_json::Value {
    serde_json::json!({"sub": sub, "clinic_id": clinic_id, "role": role})
}

/// A response's status and JSON body (`Null` when there is none).
pub fn status_and_json(response: &lambda_http::Response<lambda_http::Body>) -> (u16, serde_json::Value) {
    let body = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::String(t.clone())),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    };
    (response.status().as_u16(), body)
}

/// One Stripe event (its JSON as Stripe sent it) as the consumer gets it
/// from the queue: decoded at the edge, then applied.
pub async fn apply_stripe_event(
    deps: &TestDeps,
    body: &str,
) -> Result<visitpay_edge::lambda::consumer::Outcome, visitpay_edge::lambda::consumer::MessageError> {
    visitpay_edge::lambda::consumer::apply_message(deps, Some(body)).await
}

/// A Stripe event as the webhook queues it, for a test to put on a queue itself.
pub fn queued_stripe_event(event_id: &str, event_type: &str, body: String) -> visitpay_app::ports::QueueMessage {
    visitpay_app::ports::QueueMessage::Stripe(visitpay_app::ports::StripeDelivery {
        event_id: event_id.into(),
        event_type: event_type.into(),
        account: Some(ACCOUNT.into()),
        body,
    })
}

/// `Stripe-Signature` for `body` signed with the tests' webhook secret at `t`.
pub fn signed(body: &str, t: i64) -> String {
    stripe_emulator::sign(body, crate::support::kit::TEST_WEBHOOK_SECRET, t)
}

/// Delivers a webhook to the stripe-webhook function, as API Gateway would.
pub async fn deliver_webhook(deps: &TestDeps, body: &str, signature: Option<&str>) -> (u16, serde_json::Value) {
    let headers: Vec<(&str, &str)> = signature.map(|s| ("stripe-signature", s)).into_iter().collect();
    let request = api_request("POST", "/webhooks/stripe", None, &headers, Some(body));
    status_and_json(&visitpay_edge::http::functions::stripe_webhook(deps, request).await)
}

/// A patient's invoices and their states, by invoice id.
pub async fn invoice_states(
    deps: &TestDeps,
    clinic_id: &str,
    patient_id: &str,
) -> std::collections::BTreeMap<String, visitpay_domain::InvoiceStatus> {
    invoices::list(deps, &clinic(clinic_id), &patient(patient_id), None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.invoice_id.to_string(), i.status()))
        .collect()
}

/// An action as staff of its clinic read it.
pub async fn action_of(deps: &TestDeps, clinic_id: &str, action: &visitpay_domain::ActionId) -> StoredAction {
    visitpay_app::actions::get(deps, &clinic(clinic_id), action).await.unwrap()
}

/// Applies every event the emulator has recorded (the newest 100), oldest
/// first, as the consumer would; repeats are no-ops.
pub async fn deliver_all(deps: &TestDeps, stripe: &StripeFixture) {
    for e in stripe.events().await {
        apply_stripe_event(deps, &e.to_string()).await.unwrap();
    }
}

/// The Stripe webhook endpoint: visitpay's webhook handler, which verifies
/// and queues; down (503) when the test says, so Stripe retries.
pub async fn webhook_endpoint(deps: TestDeps, up: Arc<std::sync::atomic::AtomicBool>) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    let handler = move |headers: HeaderMap, body: String| {
        let (deps, up) = (deps.clone(), up.clone());
        async move {
            if !up.load(std::sync::atomic::Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let (status, _) = deliver_webhook(&deps, &body, signature.as_deref()).await;
            StatusCode::from_u16(status).unwrap()
        }
    };
    let app = axum::Router::new().route("/webhooks/stripe", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
