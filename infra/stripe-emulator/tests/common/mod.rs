//! Shared test harness: an emulator on an ephemeral port, a webhook receiver, HTTP helpers.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use stripe_emulator::{Config, Emulator};

pub const SECRET: &str = "whsec_test_secret";
pub const ACCOUNT: &str = "acct_1ClinicA";
pub const OTHER_ACCOUNT: &str = "acct_1ClinicB";

pub struct Running {
    pub emulator: Emulator,
    /// Base URL of the emulator root, without trailing slash.
    pub base: String,
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The emulator served at the root of its own port.
pub async fn start(webhook_url: Option<String>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let emulator = Emulator::new(Config::new(base.clone(), webhook_url, SECRET, &[ACCOUNT, OTHER_ACCOUNT]));
    let router = emulator.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Running { emulator, base }
}

/// The emulator nested under `/stripe`, as the local runner serves it (URL learnt after building).
pub async fn start_nested() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}/stripe");
    let emulator = Emulator::new(Config::new(base.clone(), None, SECRET, &[ACCOUNT, OTHER_ACCOUNT]));
    let router = Router::new().nest("/stripe", emulator.router());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Running { emulator, base }
}

pub fn stripe_client(running: &Running) -> stripe::Client {
    stripe::ClientBuilder::new("sk_test_emulator").url(format!("{}/", running.base)).build().unwrap()
}

/// Plain HTTP, no proxy, no redirect following (to inspect 303s).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `POST {base}/v1/{path}` with a form body, optional account / idempotency key; returns (status, JSON).
pub async fn api_post(running: &Running, path: &str, form: &str, account: Option<&str>) -> (u16, Value) {
    let mut request = http()
        .post(format!("{}/v1/{path}", running.base))
        .bearer_auth("sk_test_emulator")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(account) = account {
        request = request.header("stripe-account", account);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub async fn api_get(running: &Running, path_and_query: &str, account: Option<&str>) -> (u16, Value) {
    let mut request = http().get(format!("{}/v1/{path_and_query}", running.base)).bearer_auth("sk_test_emulator");
    if let Some(account) = account {
        request = request.header("stripe-account", account);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub const SESSION_FORM: &str = "mode=payment&line_items[0][price_data][currency]=cad\
    &line_items[0][price_data][unit_amount]=1500&line_items[0][price_data][product_data][name]=Clinic+services\
    &line_items[0][quantity]=3&success_url=https://clinic.test/ok?session={CHECKOUT_SESSION_ID}\
    &cancel_url=https://clinic.test/cancel&metadata[action_id]=act_1&locale=fr-CA";

/// Creates a 45.00 CAD session over plain HTTP and returns its JSON.
pub async fn create_session(running: &Running, account: Option<&str>) -> Value {
    let (status, session) = api_post(running, "checkout/sessions", SESSION_FORM, account).await;
    assert_eq!(status, 200, "{session}");
    session
}

/// `POST /test/checkout_sessions/{id}/pay`.
pub async fn pay(running: &Running, id: &str, outcome: &str, send_webhooks: bool) -> (u16, Value) {
    let response = http()
        .post(format!("{}/test/checkout_sessions/{id}/pay", running.base))
        .header("content-type", "application/json")
        .body(serde_json::json!({"outcome": outcome, "send_webhooks": send_webhooks}).to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub body: String,
    pub signature: String,
    pub content_type: String,
    pub user_agent: String,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Number of upcoming requests to answer with 500.
    failures: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

/// A webhook endpoint collecting what it receives; returns it with its URL.
pub async fn receiver() -> (Receiver, String) {
    async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
        receiver.attempts.fetch_add(1, Ordering::SeqCst);
        if receiver.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        receiver.deliveries.lock().unwrap().push(Delivery {
            body: String::from_utf8(body.to_vec()).unwrap(),
            signature: header("stripe-signature"),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
        });
        StatusCode::OK
    }
    let receiver = Receiver::default();
    let addr = serve(Router::new().route("/hook", post(hook)).with_state(receiver.clone())).await;
    (receiver, format!("http://{addr}/hook"))
}

impl Receiver {
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Waits (polling) until at least `n` deliveries arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= n {
                return deliveries;
            }
            assert!(Instant::now() < deadline, "expected {n} deliveries, got {}: {deliveries:#?}", deliveries.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `POST /test/{path}` with a JSON body.
pub async fn control(running: &Running, path: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(format!("{}/test/{path}", running.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Checks a `Stripe-Signature` header against the body the way a receiver would.
pub fn verify_signature(delivery: &Delivery) -> bool {
    let Some(t) = delivery.signature.split(',').find_map(|part| part.strip_prefix("t=")) else { return false };
    let Ok(timestamp) = t.parse::<i64>() else { return false };
    stripe_emulator::sign(&delivery.body, SECRET, timestamp) == delivery.signature
}
