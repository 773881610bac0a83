//! An emulator of the slice of Stripe's API visitpay uses: Checkout Sessions (create, retrieve,
//! expire, line items), refunds, events, signed webhooks and a hosted checkout page with test
//! outcomes. It speaks Stripe's wire formats so the real `async-stripe` client works against it.
//!
//! Everything lives in memory; objects created with a `Stripe-Account` header belong to that
//! connected account. Routes, relative to the emulator root:
//!
//! - Stripe API (`Authorization: Bearer sk_test_...`): `POST /v1/checkout/sessions`,
//!   `GET /v1/checkout/sessions[/{id}[/line_items]]`, `POST /v1/checkout/sessions/{id}/expire`,
//!   `POST /v1/refunds`, `GET /v1/refunds/{id}`, `GET /v1/payment_intents/{id}`,
//!   `GET /v1/charges/{id}`, `GET /v1/events[/{id}]`.
//! - Test controls (JSON, no auth): `POST /test/checkout_sessions/{id}/pay`, `GET /test/requests`,
//!   `POST /test/clock/advance`.
//! - Hosted checkout page: `GET /checkout/{id}`, `POST /checkout/{id}/pay` (form).

// Stripe objects are big `json!` literals.
#![recursion_limit = "256"]

mod api;
mod error;
mod form;
mod objects;
mod page;
mod routes;
mod store;
mod util;
mod webhooks;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::{self, UnboundedReceiver};

pub use webhooks::sign;

use store::State;
use util::lock;
use webhooks::WebhookTarget;

pub struct Config {
    /// Public base URL under which the emulator is reachable, without trailing slash,
    /// e.g. "http://127.0.0.1:3000/stripe" (local runner) or "http://127.0.0.1:12111" (standalone).
    /// Used to build the hosted checkout `url` of sessions.
    pub public_base: String,
    /// Where to POST webhook events; None = record events but deliver nothing.
    pub webhook_url: Option<String>,
    /// The webhook signing secret (whsec_...).
    pub webhook_secret: String,
}

/// A running emulator; clones share the same state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    public_base: String,
    state: Mutex<State>,
    webhooks: Arc<WebhookTarget>,
    /// The delivery queue's receiving end until the background tasks start (they need a tokio runtime).
    unstarted: Mutex<Option<UnboundedReceiver<String>>>,
}

impl Emulator {
    /// Builds the emulator. Background work (webhook delivery, the expiry sweep) starts here when
    /// called inside a tokio runtime, otherwise on first use inside one; events emitted
    /// before then are queued, not lost.
    pub fn new(config: Config) -> Self {
        let (outbox, queue) = mpsc::unbounded_channel();
        let webhooks = Arc::new(WebhookTarget::new(config.webhook_url, config.webhook_secret));
        let emulator = Self {
            inner: Arc::new(Inner {
                public_base: config.public_base.trim_end_matches('/').to_owned(),
                state: Mutex::new(State::new(webhooks.clone(), outbox)),
                webhooks,
                unstarted: Mutex::new(Some(queue)),
            }),
        };
        emulator.start_background_tasks();
        emulator
    }

    /// Routes relative to the emulator root (`/v1/...`, `/test/...`, `/checkout/...`), ready to be
    /// served or nested under a prefix.
    pub fn router(&self) -> axum::Router {
        self.start_background_tasks();
        routes::router(self.clone())
    }

    /// Changes where webhooks go (None: keep recording events, deliver nothing).
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.inner.webhooks.set_url(url);
    }

    /// Moves the emulated clock forward (what `POST /test/clock/advance` does);
    /// sessions that expire meanwhile do so at once. Returns the new time.
    pub fn advance_clock(&self, seconds: i64) -> i64 {
        self.with_state(|state| {
            let now = state.advance_clock(seconds.max(0));
            state.expire_due();
            now
        })
    }

    /// Every API request received, oldest first:
    /// `{"method","path","account","idempotency_key","params"}`.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.inner.state).requests.clone()
    }

    pub(crate) fn public_base(&self) -> &str {
        &self.inner.public_base
    }

    /// Runs `f` on the state after expiring overdue sessions, so expiry is seen on every access.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.start_background_tasks();
        let mut state = lock(&self.inner.state);
        state.expire_due();
        f(&mut state)
    }

    fn start_background_tasks(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let Some(queue) = lock(&self.inner.unstarted).take() else { return };
        runtime.spawn(webhooks::run(queue, self.inner.webhooks.clone()));
        runtime.spawn(sweep_expired(Arc::downgrade(&self.inner)));
    }
}

/// Expires overdue sessions every second even when nobody asks, so their webhooks go out on time.
async fn sweep_expired(inner: Weak<Inner>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        lock(&inner.state).expire_due();
    }
}
