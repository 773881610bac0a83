//! An emulator of the slice of Stripe's API visitpay uses: Checkout Sessions (create, retrieve,
//! expire, line items), refunds, events, signed webhooks and a hosted checkout page with test
//! outcomes. It speaks Stripe's wire formats so the real `async-stripe` client works against it.
//!
//! Everything lives in memory; objects created with a `Stripe-Account` header belong to that
//! connected account. Routes, relative to the emulator root:
//!
//! - Stripe API (`Authorization: Bearer sk_test_...`): `POST /v1/checkout/sessions`,
//!   `GET /v1/checkout/sessions[/{id}[/line_items]]`, `POST /v1/checkout/sessions/{id}/expire`,
//!   `POST /v1/refunds`, `GET /v1/refunds[/{id}]`, `GET /v1/payment_intents/{id}[?expand[]=latest_charge]`,
//!   `GET /v1/charges/{id}`, `GET /v1/disputes[/{id}]`, `GET /v1/events[/{id}]`.
//! - Test controls (JSON, no auth): `POST /test/checkout_sessions/{id}/pay`, `GET /test/requests`,
//!   `POST /test/clock/advance`, `POST /test/refunds/behaviour`, `POST /test/refunds/{id}`,
//!   `POST /test/payment_intents/{id}/dispute`, `POST /test/disputes/{id}/{step}`,
//!   `POST /test/accounts`, `POST /test/accounts/{id}/deauthorize`, `POST /test/livemode`,
//!   `POST /test/latency`, `POST /test/faults`, `POST /test/webhooks/mode`,
//!   `POST /test/webhooks/flush`, `GET /test/webhooks`.
//! - Hosted checkout page: `GET /checkout/{id}`, `POST /checkout/{id}/pay` (form).

// Stripe objects are big `json!` literals.
#![recursion_limit = "256"]

mod api;
mod balance;
mod clock;
mod error;
mod fees;
mod form;
mod objects;
mod page;
mod records;
mod routes;
mod store;
mod util;
mod webhooks;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use clock::Clock;
pub use webhooks::{sign, DeliveryMode, Pass};

use store::State;
use util::lock;
use webhooks::Deliveries;

pub struct Config {
    /// Public base URL under which the emulator is reachable, without trailing slash,
    /// e.g. "http://127.0.0.1:3000/stripe" (local runner) or "http://127.0.0.1:12111" (standalone).
    /// Used to build the hosted checkout `url` of sessions.
    pub public_base: String,
    /// Where to POST webhook events; None = record events but deliver nothing.
    pub webhook_url: Option<String>,
    /// The webhook signing secret (whsec_...).
    pub webhook_secret: String,
    /// The connected accounts that exist: a request naming another in `Stripe-Account` is
    /// refused, as Stripe refuses an account not connected to the platform.
    pub accounts: Vec<String>,
    /// The clock everything is dated and signed with; share it to agree on "now".
    pub clock: Arc<Clock>,
}

impl Config {
    /// A config with the wall clock and these connected accounts.
    pub fn new(
        public_base: impl Into<String>,
        webhook_url: Option<String>,
        webhook_secret: impl Into<String>,
        accounts: &[&str],
    ) -> Self {
        Config {
            public_base: public_base.into(),
            webhook_url,
            webhook_secret: webhook_secret.into(),
            accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            clock: Arc::new(Clock::system()),
        }
    }
}

/// A running emulator; clones share the same state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    public_base: String,
    state: Mutex<State>,
    deliveries: Arc<Deliveries>,
    clock: Arc<Clock>,
    started: Mutex<bool>,
}

impl Emulator {
    /// Builds the emulator. Background work (webhook delivery, the expiry sweep) starts here when
    /// called inside a tokio runtime, otherwise on first use inside one; events emitted
    /// before then are queued, not lost.
    pub fn new(config: Config) -> Self {
        let deliveries = Arc::new(Deliveries::new(config.webhook_url, config.webhook_secret, config.clock.clone()));
        let emulator = Self {
            inner: Arc::new(Inner {
                public_base: config.public_base.trim_end_matches('/').to_owned(),
                state: Mutex::new(State::new(config.clock.clone(), deliveries.clone(), &config.accounts)),
                deliveries,
                clock: config.clock,
                started: Mutex::new(false),
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

    /// The emulated clock (share it: the local runner and tests date things with it).
    pub fn clock(&self) -> Arc<Clock> {
        self.inner.clock.clone()
    }

    /// Changes where webhooks go (None: keep recording events, deliver nothing).
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.inner.deliveries.set_url(url);
    }

    /// How webhooks are delivered: in order once (the default), or shuffled, duplicated, delayed, held.
    pub fn set_delivery_mode(&self, mode: DeliveryMode) {
        self.inner.deliveries.set_mode(mode);
    }

    /// Delivers now every pending event not tried yet (held and delayed ones
    /// too), and the retries that are due on the backoff, once each.
    pub async fn flush_webhooks(&self) -> Pass {
        let Some(client) = webhooks::client() else { return Pass::default() };
        self.inner.deliveries.pass(&client, true).await
    }

    pub fn pending_webhooks(&self) -> usize {
        self.inner.deliveries.pending()
    }

    pub fn delivery_mode(&self) -> DeliveryMode {
        self.inner.deliveries.mode()
    }

    /// Events Stripe would have given up on (failed past its last retry).
    pub fn undelivered(&self) -> Vec<String> {
        self.inner.deliveries.given_up()
    }

    /// Moves the emulated clock forward (what `POST /test/clock/advance` does);
    /// sessions that expire meanwhile do so at once, retries that come due go out.
    /// Returns the new time.
    pub fn advance_clock(&self, seconds: i64) -> i64 {
        let now = self.inner.clock.advance(seconds);
        self.with_state(|state| state.expire_due());
        now
    }

    /// Adds a connected account (as a clinic connecting its Stripe account).
    pub fn connect_account(&self, account: &str) {
        self.with_state(|state| {
            let now = state.now();
            state.accounts.insert(account.to_owned(), records::Account::ready(now));
        });
    }

    /// Every API request received, oldest first:
    /// `{"method","path","account","idempotency_key","params"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
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
        let mut started = lock(&self.inner.started);
        if *started {
            return;
        }
        *started = true;
        runtime.spawn(webhooks::run(Arc::downgrade(&self.inner.deliveries)));
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
