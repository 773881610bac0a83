//! The HTTP client under async-stripe's request builders: async-stripe's
//! own `StripeClient` trait, implemented over hyper and rustls, the stack the
//! AWS SDK already links (one TLS stack in each artifact, not two).
//!
//! Unlike async-stripe's client it keeps connections open between calls
//! (async-stripe sets `pool_max_idle_per_host(0)`, a TLS handshake per call),
//! and it reads an error answer into the three fields visitpay decides on:
//! async-stripe's own error type decodes an error's PaymentIntent,
//! PaymentMethod, SetupIntent and Source too, and linking those decoders was
//! most of the Stripe callers' size (README, "Levers").
//!
//! One attempt per call; `client::with_retries` decides retries, so that a
//! retry always carries the same Idempotency-Key.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use stripe_client_core::{CustomizedStripeRequest, StripeClient, StripeClientErr, StripeMethod};

use super::answers::ErrorAnswer;

const API_BASE: &str = "https://api.stripe.com/";
/// The largest answer read. Stripe's biggest answers visitpay asks for are
/// lists of 100 objects of a few KB each; anything far past that is not a
/// Stripe answer, and is refused before it is held in memory.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// Stripe's load balancers close a connection idle for about a minute; a
/// pooled one is dropped before that rather than found closed on reuse.
const POOL_IDLE: Duration = Duration::from_secs(50);

/// What went wrong with one call to Stripe. Only `Api` carries Stripe's
/// words, and only its type, code and message.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    #[error("stripe answered {status} ({})", .error.code().unwrap_or("no code"))]
    Api {
        status: u16,
        /// Stripe's `Stripe-Should-Retry` header, when it sent one.
        should_retry: Option<bool>,
        /// Stripe's `Idempotent-Replayed: true`: the answer is the one kept
        /// under the request's Idempotency-Key, not a new attempt's.
        replayed: bool,
        error: ErrorAnswer,
    },
    #[error("stripe's answer is over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("stripe could not be reached")]
    Transport(#[source] hyper_util::client::legacy::Error),
    #[error("stripe's answer broke off")]
    Body(#[source] hyper::Error),
    #[error("stripe did not answer within {0:?}")]
    Timeout(Duration),
    #[error("request not sent: {0}")]
    Request(String),
    #[error("stripe's answer was not understood: {0}")]
    Decode(String),
}

impl StripeClientErr for StripeCallError {
    fn deserialize_err(msg: impl Display) -> Self {
        StripeCallError::Decode(msg.to_string())
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct StripeHttp {
    client: Client<Https, Full<Bytes>>,
    api_base: Arc<str>,
    authorization: HeaderValue,
    user_agent: HeaderValue,
    timeout: Duration,
}

impl std::fmt::Debug for StripeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeHttp").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

impl StripeHttp {
    /// `api_base` (with its trailing slash) points at an emulator; `None`
    /// means api.stripe.com. `timeout` bounds each attempt, answer included.
    /// Only a test key may be sent over plain http: a live key (or a key of
    /// no known kind) goes over https or not at all.
    pub fn new(secret_key: &str, api_base: Option<&str>, timeout: Duration) -> Result<Self, StripeCallError> {
        let base = api_base.unwrap_or(API_BASE);
        let test_key = secret_key.starts_with("sk_test_") || secret_key.starts_with("rk_test_");
        if !base.starts_with("https://") && !(test_key && base.starts_with("http://")) {
            return Err(StripeCallError::Request(
                "the Stripe API base must be https:// (plain http only with a test key, for an emulator)".into(),
            ));
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {secret_key}"))
            .map_err(|_| StripeCallError::Request("the secret key is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        // Ours, not async-stripe's: a pinned version written here would drift.
        let user_agent = HeaderValue::from_static(concat!("visitpay/", env!("CARGO_PKG_VERSION")));
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            // The scheme was checked above: http only for a test key.
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(StripeHttp { client, api_base: api_base.unwrap_or(API_BASE).into(), authorization, user_agent, timeout })
    }

    async fn attempt(&self, request: hyper::Request<Full<Bytes>>) -> Result<Bytes, StripeCallError> {
        let response = self.client.request(request).await.map_err(StripeCallError::Transport)?;
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let should_retry = header("stripe-should-retry").and_then(|v| v.parse().ok());
        let replayed = header("idempotent-replayed") == Some("true");
        let announced = header("content-length").and_then(|v| v.parse::<usize>().ok());
        if announced.is_some_and(|length| length > MAX_ANSWER_BYTES) {
            return Err(StripeCallError::TooLarge);
        }
        let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
        let body = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(broken) => return Err(StripeCallError::Body(*broken)),
                Err(_) => return Err(StripeCallError::TooLarge),
            },
        };
        if status.is_success() {
            return Ok(body);
        }
        let error = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| miniserde::json::from_str::<ErrorAnswer>(text).ok())
            .unwrap_or_default();
        Err(StripeCallError::Api { status: status.as_u16(), should_retry, replayed, error })
    }
}

/// Mozilla's roots, compiled in (as async-stripe's `rustls-tls-webpki-roots`
/// did): api.stripe.com's chain is public, and reading the OS store costs
/// init time (`config::https_client`).
fn tls_config() -> Result<rustls::ClientConfig, StripeCallError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StripeCallError::Request(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl StripeClient for StripeHttp {
    type Err = StripeCallError;

    async fn execute(&self, req: CustomizedStripeRequest) -> Result<Bytes, StripeCallError> {
        let (req, overrides) = req.into_pieces();
        let mut uri = format!("{}v1{}", self.api_base, req.path);
        if let Some(query) = &req.query {
            uri.push('?');
            uri.push_str(query);
        }
        let method = match req.method {
            StripeMethod::Get => hyper::Method::GET,
            StripeMethod::Post => hyper::Method::POST,
            StripeMethod::Delete => hyper::Method::DELETE,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(HeaderName::from_static("stripe-version"), stripe_client_core::VERSION.as_str());
        if let Some(account) = &overrides.account_id {
            builder = builder.header(HeaderName::from_static("stripe-account"), account.as_str());
        }
        if let Some(key) = overrides.request_strategy.as_ref().and_then(|s| s.get_key()) {
            builder = builder.header(HeaderName::from_static("idempotency-key"), key.as_str());
        }
        let body = match req.body {
            Some(form) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Bytes::from(form)
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(body)).map_err(|e| StripeCallError::Request(e.to_string()))?;
        // Each attempt within its own bound and what is left of the work's deadline.
        let mut timeout = overrides.timeout.unwrap_or(self.timeout);
        if let Some(left) = visitpay_app::ports::deadline::remaining() {
            timeout = timeout.min(left);
        }
        tokio::time::timeout(timeout, self.attempt(request)).await.unwrap_or(Err(StripeCallError::Timeout(timeout)))
    }
}
