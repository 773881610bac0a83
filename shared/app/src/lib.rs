//! The ports (narrow traits, one concern each, `ports`) and the use cases,
//! pure over them and the domain. The edge crate (HTTP requests, Lambda
//! events) translates in and out; the AWS and Stripe crates implement the
//! ports; nothing here knows Lambda, an AWS SDK or Stripe's client.
//!
//! A use case names the ports it uses as bounds on its `deps`
//! (`impl HasStore + HasPayments + …`). `Deps` has the store, clock, ids and
//! metrics always, and payments, the queue, the PDF renderer and the
//! messenger only when a function is wired with them: a use case that needs
//! Stripe (or to send email) does not compile against a function built
//! without it.

pub mod accounts;
pub mod actions;
pub mod catch_up;
pub mod checkout;
pub mod invoices;
pub mod messages;
pub mod payment_events;
pub mod payouts;
pub mod ports;
pub mod receipt;
pub mod reconcile;
mod sessions;
pub mod settings;
pub mod status_events;
pub mod texts;
mod transitions;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::ports::{
    Clock, EventQueue, Ids, Messenger, Metrics, Payments, PaymentsError, QueueError, ReceiptPdf, Store, StoreError,
};
use visitpay_domain::{ClinicId, DomainError, InvoiceId, UserId, MAX_INVOICES_PER_REQUEST};

/// A port a function was not wired with: no use case can reach it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unwired;

/// Stripe, as a function wired with it holds it.
pub type Stripe = Arc<dyn Payments>;
/// The payment-event queue, as a function wired with it holds it.
pub type Queue = Arc<dyn EventQueue>;
/// The receipt's PDF renderer (its own crate and fonts), as a function wired with it holds it.
pub type Pdf = Arc<dyn ReceiptPdf>;
/// Email and text out, as a function wired with them holds them.
pub type Outbox = Arc<dyn Messenger>;

/// Everything a function's use cases need, built once per cold start by the
/// one builder (`Deps::new` and its `with_*` methods): the Lambda wiring
/// (`config::wiring`), the local runner and the tests use it alike.
#[derive(Clone)]
pub struct Deps<P = Unwired, Q = Unwired, R = Unwired, M = Unwired> {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Money signals for the alarms (embedded metrics in Lambda).
    pub metrics: Arc<dyn Metrics>,
    pub config: AppConfig,
    /// `Stripe` when the function talks to Stripe, else `Unwired`.
    pub payments: P,
    /// `Queue` when the function feeds the consumer, else `Unwired`.
    pub queue: Q,
    /// `Pdf` when the function renders receipts as PDFs, else `Unwired`.
    pub pdf: R,
    /// `Outbox` when the function sends email and texts, else `Unwired`.
    pub messenger: M,
}

impl Deps {
    /// A function's deps with neither Stripe nor the queue.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
        metrics: Arc<dyn Metrics>,
        config: AppConfig,
    ) -> Self {
        Deps { store, clock, ids, metrics, config, payments: Unwired, queue: Unwired, pdf: Unwired, messenger: Unwired }
    }
}

impl<P, Q, R, M> Deps<P, Q, R, M> {
    pub fn with_payments(self, payments: Stripe) -> Deps<Stripe, Q, R, M> {
        let Deps { store, clock, ids, metrics, config, queue, pdf, messenger, .. } = self;
        Deps { store, clock, ids, metrics, config, payments, queue, pdf, messenger }
    }

    pub fn with_queue(self, queue: Queue) -> Deps<P, Queue, R, M> {
        let Deps { store, clock, ids, metrics, config, payments, pdf, messenger, .. } = self;
        Deps { store, clock, ids, metrics, config, payments, queue, pdf, messenger }
    }

    pub fn with_pdf(self, pdf: Pdf) -> Deps<P, Q, Pdf, M> {
        let Deps { store, clock, ids, metrics, config, payments, queue, messenger, .. } = self;
        Deps { store, clock, ids, metrics, config, payments, queue, pdf, messenger }
    }

    pub fn with_messenger(self, messenger: Outbox) -> Deps<P, Q, R, Outbox> {
        let Deps { store, clock, ids, metrics, config, payments, queue, pdf, .. } = self;
        Deps { store, clock, ids, metrics, config, payments, queue, pdf, messenger }
    }
}

/// The ports, each as a capability a use case may ask for.
pub trait HasStore: Send + Sync {
    fn store(&self) -> &dyn Store;
}
pub trait HasClock: Send + Sync {
    fn clock(&self) -> &dyn Clock;
}
pub trait HasIds: Send + Sync {
    fn ids(&self) -> &dyn Ids;
}
pub trait HasMetrics: Send + Sync {
    fn metrics(&self) -> &dyn Metrics;
}
pub trait HasConfig: Send + Sync {
    fn config(&self) -> &AppConfig;
}
pub trait HasPayments: Send + Sync {
    fn payments(&self) -> &dyn Payments;
}
pub trait HasQueue: Send + Sync {
    fn queue(&self) -> &dyn EventQueue;
}
pub trait HasPdf: Send + Sync {
    fn pdf(&self) -> &dyn ReceiptPdf;
}
pub trait HasMessenger: Send + Sync {
    fn messenger(&self) -> &dyn Messenger;
}

impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasStore for Deps<P, Q, R, M> {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasClock for Deps<P, Q, R, M> {
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasIds for Deps<P, Q, R, M> {
    fn ids(&self) -> &dyn Ids {
        self.ids.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasMetrics for Deps<P, Q, R, M> {
    fn metrics(&self) -> &dyn Metrics {
        self.metrics.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasConfig for Deps<P, Q, R, M> {
    fn config(&self) -> &AppConfig {
        &self.config
    }
}
impl<Q: Send + Sync, R: Send + Sync, M: Send + Sync> HasPayments for Deps<Stripe, Q, R, M> {
    fn payments(&self) -> &dyn Payments {
        self.payments.as_ref()
    }
}
impl<P: Send + Sync, R: Send + Sync, M: Send + Sync> HasQueue for Deps<P, Queue, R, M> {
    fn queue(&self) -> &dyn EventQueue {
        self.queue.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, M: Send + Sync> HasPdf for Deps<P, Q, Pdf, M> {
    fn pdf(&self) -> &dyn ReceiptPdf {
        self.pdf.as_ref()
    }
}
impl<P: Send + Sync, Q: Send + Sync, R: Send + Sync> HasMessenger for Deps<P, Q, R, Outbox> {
    fn messenger(&self) -> &dyn Messenger {
        self.messenger.as_ref()
    }
}

/// The ports every function has.
pub trait Core: HasStore + HasClock + HasIds + HasMetrics + HasConfig {}
impl<T: HasStore + HasClock + HasIds + HasMetrics + HasConfig> Core for T {}

#[derive(Clone)]
pub struct AppConfig {
    /// Where patients reach visitpay (the configured patient link base).
    pub patient_links: PatientLinks,
    /// Stripe webhook signing secrets; two during a rotation. Never printed.
    pub webhook_secrets: Vec<SecretString>,
    /// The secret the edge (CloudFront) sends with every request it forwards
    /// (`VISITPAY_EDGE_SECRET`): with one, patient routes answer nothing else.
    /// Unset on a laptop, where there is no edge.
    pub edge_secret: Option<SecretString>,
    /// The page Stripe's hosted onboarding sends a clinic's person back to
    /// (`VISITPAY_ONBOARDING_PAGE`: the support page of the clinic web app;
    /// locally, the console); `?clinic=<id>&onboarding=return|refresh` is added.
    pub onboarding_page: Option<String>,
}

impl AppConfig {
    /// No webhook secrets, no edge: each function's wiring adds what it uses.
    pub fn new(patient_links: PatientLinks) -> Self {
        AppConfig { patient_links, webhook_secrets: Vec::new(), edge_secret: None, onboarding_page: None }
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("patient_links", &self.patient_links)
            .field("webhook_secrets", &format_args!("[{} redacted]", self.webhook_secrets.len()))
            .field("edge_secret", &self.edge_secret.as_ref().map(|_| "redacted"))
            .field("onboarding_page", &self.onboarding_page)
            .finish()
    }
}

/// Where patients reach visitpay, from the configured link base
/// (`VISITPAY_PATIENT_LINK_BASE`): `https://pay.example.com/patient/actions`
/// behind the edge, `https://…execute-api…/prod/patient/actions` on API
/// Gateway's named stage, `http://127.0.0.1:3000/patient/actions` locally.
/// Every URL and cookie path visitpay hands a patient's browser is made
/// here, so all of them carry the same base path (a stage, or a custom
/// domain's mapping) as the link the patient was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLinks {
    /// `scheme://host[:port]`.
    origin: String,
    /// The path before `/patient/…`: empty, or `/prod`, `/billing/v1`.
    base_path: String,
}

/// The routes every patient URL sits under, after the base path.
const PATIENT_LINKS_PATH: &str = "/patient/actions";

impl PatientLinks {
    /// Refuses a base that is not `http(s)://host[/base path]/patient/actions`.
    pub fn parse(link_base: &str) -> Result<Self, String> {
        let refused = || {
            format!(
                "the patient link base must be http(s)://host[/base path]{PATIENT_LINKS_PATH} \
                 (the base path's segments [A-Za-z0-9._~-]); got {link_base:?}"
            )
        };
        let trimmed = link_base.trim().trim_end_matches('/');
        let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).ok_or_else(refused)?;
        let scheme = &trimmed[..trimmed.len() - rest.len()];
        let (host, path) = rest.split_at(rest.find('/').ok_or_else(refused)?);
        let base_path = path.strip_suffix(PATIENT_LINKS_PATH).ok_or_else(refused)?;
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        let path_ok = base_path.is_empty()
            || (base_path.starts_with('/')
                && base_path[1..].split('/').all(|segment| {
                    !segment.is_empty()
                        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
                }));
        if !host_ok || !path_ok {
            return Err(refused());
        }
        Ok(PatientLinks { origin: format!("{scheme}{host}"), base_path: base_path.to_owned() })
    }

    /// The base path every patient URL starts with (`""` or `/prod`).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The link base as configured, normalised: `…/patient/actions`.
    pub fn link_base(&self) -> String {
        format!("{}{}{PATIENT_LINKS_PATH}", self.origin, self.base_path)
    }

    /// The patient's link: the base and the token.
    pub fn link(&self, token: &str) -> String {
        format!("{}/{token}", self.link_base())
    }

    /// An email's unsubscribe page: `…/unsubscribe/{token}`, under the same
    /// base path as the link.
    pub fn unsubscribe_url(&self, token: &str) -> String {
        format!("{}{}/unsubscribe/{token}", self.origin, self.base_path)
    }

    /// Where Stripe sends the patient back (`…/patient/return/{action_id}`,
    /// beside the link's `…/patient/actions/`): the action id only, never the
    /// link's secret, which Stripe would keep in the session's record.
    pub fn return_url(&self, action: &visitpay_domain::ActionId) -> String {
        format!("{}{}/patient/return/{action}", self.origin, self.base_path)
    }

    /// The path the link cookie is sent back to: the return route under the
    /// same base path as the URL the browser was given. A cookie set for
    /// `/patient/return/` is never sent to `/prod/patient/return/…`.
    pub fn return_cookie_path(&self) -> String {
        format!("{}/patient/return/", self.base_path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Staff,
    Support,
}

/// The authenticated caller, from the JWT claims the authorizer validated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: UserId,
    pub role: Role,
    pub clinic_id: Option<ClinicId>,
}

/// What a use case can refuse, beyond the domain's own rules. Sources are
/// kept; `http::error` turns each into a status and a code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0} not found")]
    NotFound(NotFound),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("too many concurrent changes to the same records; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Stored data contradicts itself; never expected, always logged.
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    Settings,
    Invoice(InvoiceId),
    Action,
    Link,
    Unsubscribe,
    Payout,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFound::Settings => f.write_str("payment settings"),
            NotFound::Invoice(id) => write!(f, "invoice {id}"),
            NotFound::Action => f.write_str("action"),
            NotFound::Link => f.write_str("payment link"),
            NotFound::Payout => f.write_str("payout"),
            NotFound::Unsubscribe => f.write_str("unsubscribe link"),
        }
    }
}

const MAX_ATTEMPTS: u32 = 6;

/// Optimistic concurrency: every attempt re-reads, decides and commits with
/// conditions; a `Conflict` means someone else wrote first, so we decide again
/// on fresh state (which usually turns into a proper domain error).
///
/// `with_retries!({ … })` runs the block until it settles. The block is an
/// `async` block in a loop, not a closure: state that crosses attempts is the
/// caller's own locals, mutated in place, with no lock (and the future stays
/// `Send`, which async closures do not yet prove).
macro_rules! with_retries {
    ($body:block) => {{
        let mut attempts = $crate::Attempts::default();
        loop {
            let outcome: Result<_, $crate::AppError> = async $body.await;
            if let Some(settled) = attempts.settle(outcome).await {
                break settled;
            }
        }
    }};
}
pub(crate) use with_retries;

/// How many times an attempt met a conflict.
#[derive(Default)]
pub(crate) struct Attempts(u32);

impl Attempts {
    /// The attempt's outcome, or `None` after a conflict to try again (after
    /// a short, jittered backoff); `Contended` once the attempts run out.
    pub(crate) async fn settle<T>(&mut self, outcome: Result<T, AppError>) -> Option<Result<T, AppError>> {
        match outcome {
            Err(AppError::Store(StoreError::Conflict)) if self.0 + 1 < MAX_ATTEMPTS => {
                tracing::debug!(attempt = self.0 + 1, "write conflict, retrying");
                tokio::time::sleep(backoff(self.0)).await;
                self.0 += 1;
                None
            }
            Err(AppError::Store(StoreError::Conflict)) => Some(Err(AppError::Contended)),
            other => Some(other),
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = u64::from(u16::from_le_bytes(r)) % 10;
    Duration::from_millis((5u64 << attempt.min(5)) + jitter)
}

/// Checks a client's list of invoice ids: present, not too many, no repeats.
pub(crate) fn check_invoice_ids(ids: &[InvoiceId]) -> Result<(), DomainError> {
    if ids.is_empty() {
        return Err(DomainError::EmptySelection);
    }
    if ids.len() > MAX_INVOICES_PER_REQUEST {
        return Err(DomainError::TooManyInvoices { max: MAX_INVOICES_PER_REQUEST });
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(DomainError::DuplicateInvoice(id.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PatientLinks;
    use visitpay_domain::ActionId;

    #[test]
    fn patient_urls_and_the_cookie_path_follow_the_link_base() {
        let action = ActionId::parse("act_1").unwrap();
        for (base, origin, path) in [
            ("https://pay.example.com/patient/actions", "https://pay.example.com", ""),
            (
                "https://abc.execute-api.ca-central-1.amazonaws.com/prod/patient/actions/",
                "https://abc.execute-api.ca-central-1.amazonaws.com",
                "/prod",
            ),
            ("https://emr.example.com/billing/v1/patient/actions", "https://emr.example.com", "/billing/v1"),
            ("http://127.0.0.1:3000/patient/actions", "http://127.0.0.1:3000", ""),
        ] {
            let links = PatientLinks::parse(base).unwrap();
            assert_eq!(links.base_path(), path, "{base}");
            assert_eq!(links.link("act_1.s"), format!("{origin}{path}/patient/actions/act_1.s"));
            assert_eq!(links.return_url(&action), format!("{origin}{path}/patient/return/act_1"));
            assert_eq!(links.return_cookie_path(), format!("{path}/patient/return/"));
        }
        for bad in [
            "pay.example.com/patient/actions",
            "https://pay.example.com",
            "https://pay.example.com/patient",
            "https://pay.example.com/prod//patient/actions",
            "https://pay.example.com/pr od/patient/actions",
            "ftp://pay.example.com/patient/actions",
            "https:///patient/actions",
        ] {
            assert!(PatientLinks::parse(bad).is_err(), "{bad}");
        }
    }
}
