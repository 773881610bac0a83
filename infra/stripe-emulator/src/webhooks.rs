//! Signed webhook delivery, as Stripe delivers: at least once, in no promised
//! order, retrying failures with exponential backoff for up to three days.
//! "Stripe attempts to deliver events to your destination for up to three
//! days with an exponential back off in live mode"; "Stripe doesn't
//! guarantee the delivery of events in the order that they're generated";
//! "Webhook endpoints might occasionally receive the same event more than
//! once" (Stripe docs, "Receive Stripe events in your webhook endpoint").
//!
//! Retries are scheduled on the emulated clock, so advancing it (days, if
//! need be) brings them due. By default events go out in order, once, as
//! soon as emitted; a test (or a person) can ask for Stripe's disorder:
//! shuffled, duplicated, delayed, or held until flushed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::util::lock;

/// Seconds between attempts (emulated). Stripe publishes no schedule, only
/// "exponential back off … up to three days": this one sums to ~71.6 hours.
pub(crate) const BACKOFF_SECS: [i64; 10] = [60, 300, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 86_400, 72_000];
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Stripe-Signature` header value for `payload` signed at `timestamp`:
/// `t=<timestamp>,v1=<hex hmac-sha256(secret, "<timestamp>.<payload>")>`.
pub fn sign(payload: &str, secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// How events reach the endpoint (`POST /test/webhooks/mode`).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryMode {
    /// Deliver what is due in a random order.
    pub shuffle: bool,
    /// Deliver every n-th event twice (0: never).
    pub duplicate_every: u32,
    /// Hold each event this many (emulated) seconds before its first attempt.
    pub delay_secs: i64,
    /// Deliver nothing until flushed.
    pub hold: bool,
    /// Seed of the shuffle (the same seed, the same order).
    pub seed: u64,
    /// Every attempt fails as if the endpoint were down (a broken release, a
    /// rotated secret not deployed): retried on the backoff, given up after
    /// the last, as Stripe does for three days.
    pub endpoint_down: bool,
}

struct Pending {
    event_id: String,
    body: String,
    due_at: i64,
    attempts: u32,
}

#[derive(Default)]
struct Outbox {
    pending: Vec<Pending>,
    mode: DeliveryMode,
    rng: u64,
    emitted: u64,
    delivered: u64,
    given_up: Vec<String>,
    /// Events delivered at least once (what `delivery_success` tells).
    succeeded: std::collections::HashSet<String>,
}

/// What one pass delivered.
#[derive(Debug, Default, serde::Serialize)]
pub struct Pass {
    pub delivered: usize,
    pub failed: usize,
    pub pending: usize,
}

/// Where and how to deliver; the URL can change after start (the local runner learns its port late).
pub(crate) struct Deliveries {
    url: Mutex<Option<String>>,
    secret: String,
    clock: Arc<Clock>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    /// One delivery pass at a time (the background task, or a flush).
    passing: tokio::sync::Mutex<()>,
}

impl Deliveries {
    pub(crate) fn new(url: Option<String>, secret: String, clock: Arc<Clock>) -> Self {
        Deliveries {
            url: Mutex::new(url),
            secret,
            clock,
            outbox: Mutex::new(Outbox { rng: 0x9e37_79b9_7f4a_7c15, ..Outbox::default() }),
            wake: Notify::new(),
            passing: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn url(&self) -> Option<String> {
        lock(&self.url).clone()
    }

    pub(crate) fn set_url(&self, url: Option<String>) {
        *lock(&self.url) = url;
        self.wake.notify_one();
    }

    pub(crate) fn set_mode(&self, mode: DeliveryMode) {
        let mut outbox = lock(&self.outbox);
        outbox.rng = mode.seed.wrapping_mul(2).wrapping_add(0x9e37_79b9_7f4a_7c15);
        outbox.mode = mode;
        drop(outbox);
        self.wake.notify_one();
    }

    pub(crate) fn mode(&self) -> DeliveryMode {
        lock(&self.outbox).mode.clone()
    }

    /// Queues an event for delivery (and a duplicate, when asked for).
    pub(crate) fn schedule(&self, event_id: &str, body: String) {
        let now = self.clock.now();
        let mut outbox = lock(&self.outbox);
        outbox.emitted += 1;
        let due_at = now + outbox.mode.delay_secs.max(0);
        let twice =
            outbox.mode.duplicate_every > 0 && outbox.emitted.is_multiple_of(u64::from(outbox.mode.duplicate_every));
        if twice {
            outbox.pending.push(Pending { event_id: event_id.to_owned(), body: body.clone(), due_at, attempts: 0 });
        }
        outbox.pending.push(Pending { event_id: event_id.to_owned(), body, due_at, attempts: 0 });
        drop(outbox);
        self.wake.notify_one();
    }

    /// Event ids Stripe gave up on (failed past the last retry).
    pub(crate) fn given_up(&self) -> Vec<String> {
        lock(&self.outbox).given_up.clone()
    }

    /// Whether the event reached the endpoint (a 2xx) at least once.
    pub(crate) fn was_delivered(&self, event_id: &str) -> bool {
        lock(&self.outbox).succeeded.contains(event_id)
    }

    pub(crate) fn pending(&self) -> usize {
        lock(&self.outbox).pending.len()
    }

    /// Takes what is due, in the mode's order. `release` also takes what is
    /// held or delayed and not tried yet; a retry still waits for its turn on
    /// the backoff (forcing it early would spend Stripe's three days of
    /// retries in seconds).
    fn take_due(&self, release: bool) -> Vec<Pending> {
        let now = self.clock.now();
        let mut outbox = lock(&self.outbox);
        if outbox.mode.hold && !release {
            return Vec::new();
        }
        let (mut due, rest): (Vec<Pending>, Vec<Pending>) =
            outbox.pending.drain(..).partition(|p| p.due_at <= now || (release && p.attempts == 0));
        outbox.pending = rest;
        if outbox.mode.shuffle {
            for i in (1..due.len()).rev() {
                // xorshift64: reproducible from the mode's seed.
                let mut x = outbox.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                outbox.rng = x;
                due.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
        due
    }

    /// One delivery pass: every due event is attempted once; a failure is
    /// scheduled again on the backoff, or given up after the last.
    pub(crate) async fn pass(&self, client: &reqwest::Client, release: bool) -> Pass {
        let _one = self.passing.lock().await;
        let mut result = Pass::default();
        for mut p in self.take_due(release) {
            let delivered = self.deliver(client, &p.body).await;
            let mut outbox = lock(&self.outbox);
            if delivered {
                outbox.delivered += 1;
                outbox.succeeded.insert(p.event_id.clone());
                result.delivered += 1;
                continue;
            }
            result.failed += 1;
            match BACKOFF_SECS.get(p.attempts as usize) {
                Some(wait) => {
                    p.attempts += 1;
                    p.due_at = self.clock.now() + wait;
                    outbox.pending.push(p);
                }
                None => {
                    tracing::error!(event_id = %p.event_id, attempts = p.attempts + 1, "giving up on webhook delivery");
                    outbox.given_up.push(p.event_id);
                }
            }
        }
        result.pending = self.pending();
        result
    }

    async fn deliver(&self, client: &reqwest::Client, body: &str) -> bool {
        let Some(url) = self.url() else { return false };
        if self.mode().endpoint_down {
            tracing::warn!(%url, "webhook delivery failed: the endpoint is down (test mode)");
            return false;
        }
        // A fresh timestamp per attempt, on the emulated clock, as Stripe re-signs retries.
        let signature = sign(body, &self.secret, self.clock.now());
        let result = client
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Stripe-Signature", signature)
            .header("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .body(body.to_owned())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::warn!(%url, status = %response.status(), "webhook delivery refused");
                false
            }
            Err(error) => {
                tracing::warn!(%url, %error, "webhook delivery failed");
                false
            }
        }
    }
}

pub(crate) fn client() -> Option<reqwest::Client> {
    // Webhook receivers are local; a proxy from the environment must not intercept them.
    match reqwest::Client::builder().no_proxy().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks will not be delivered");
            None
        }
    }
}

/// Delivers what is due, as it comes due, until the emulator is dropped.
pub(crate) async fn run(deliveries: std::sync::Weak<Deliveries>) {
    let Some(client) = client() else { return };
    loop {
        let Some(d) = deliveries.upgrade() else { return };
        if d.url().is_some() {
            d.pass(&client, false).await;
        }
        // Emulated time can jump (an advance): look again soon even without news.
        let _ = tokio::time::timeout(Duration::from_millis(50), d.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{sign, BACKOFF_SECS};

    #[test]
    fn signature_matches_a_known_vector() {
        // hmac-sha256("whsec_test", "1700000000.{}") computed independently (python hmac).
        assert_eq!(
            sign("{}", "whsec_test", 1_700_000_000),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn retries_span_about_three_days() {
        let total: i64 = BACKOFF_SECS.iter().sum();
        assert!((70 * 3600..=72 * 3600).contains(&total), "{total} s");
        assert!(BACKOFF_SECS.windows(2).take(8).all(|w| w[0] < w[1]), "backing off");
    }
}
