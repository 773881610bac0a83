//! Signed webhook delivery: one background task posts events in emission order, retrying
//! with backoff, so API responses never wait on the receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::util::{lock, system_now};

/// Pauses between attempts; its length + 1 is the number of attempts before giving up.
const BACKOFF_MS: [u64; 7] = [200, 500, 1_000, 2_000, 4_000, 8_000, 8_000];
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

/// Where and how to deliver; the URL can change after start (the local runner learns its port late).
pub(crate) struct WebhookTarget {
    url: Mutex<Option<String>>,
    secret: String,
}

impl WebhookTarget {
    pub(crate) fn new(url: Option<String>, secret: String) -> Self {
        Self { url: Mutex::new(url), secret }
    }

    pub(crate) fn url(&self) -> Option<String> {
        lock(&self.url).clone()
    }

    pub(crate) fn set_url(&self, url: Option<String>) {
        *lock(&self.url) = url;
    }
}

/// Delivers queued event bodies one at a time until the emulator (the sender) is dropped.
pub(crate) async fn run(mut queue: UnboundedReceiver<String>, target: Arc<WebhookTarget>) {
    // Webhook receivers are local; a proxy from the environment must not intercept them.
    let client = match reqwest::Client::builder().no_proxy().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks will not be delivered");
            return;
        }
    };
    while let Some(body) = queue.recv().await {
        deliver(&client, &target, &body).await;
    }
}

async fn deliver(client: &reqwest::Client, target: &WebhookTarget, body: &str) {
    for attempt in 0..=BACKOFF_MS.len() {
        // Re-read the URL each attempt: it may have been set or cleared meanwhile.
        let Some(url) = target.url() else { return };
        // A fresh timestamp per attempt, as Stripe re-signs retries.
        let signature = sign(body, &target.secret, system_now());
        let result = client
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Stripe-Signature", signature)
            .header("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .body(body.to_owned())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => tracing::warn!(%url, status = %response.status(), attempt, "webhook delivery refused"),
            Err(error) => tracing::warn!(%url, %error, attempt, "webhook delivery failed"),
        }
        if let Some(pause) = BACKOFF_MS.get(attempt) {
            tokio::time::sleep(Duration::from_millis(*pause)).await;
        }
    }
    tracing::error!(attempts = BACKOFF_MS.len() + 1, "giving up on webhook delivery");
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signature_matches_a_known_vector() {
        // hmac-sha256("whsec_test", "1700000000.{}") computed independently (python hmac).
        assert_eq!(
            sign("{}", "whsec_test", 1_700_000_000),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
