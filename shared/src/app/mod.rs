//! Use cases, pure over the ports. HTTP and SQS wrappers translate in and out.

pub mod actions;
pub mod checkout;
pub mod invoices;
pub mod payment_events;
pub mod reconcile;
pub mod settings;
pub mod views;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{ClinicId, DomainError, InvoiceId, UserId, MAX_INVOICES_PER_REQUEST};
use crate::ports::{Clock, EventQueue, Ids, Metrics, Payments, Store, StoreError};

/// Everything a use case needs, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Stripe; only the functions that talk to Stripe have it.
    pub payments: Option<Arc<dyn Payments>>,
    /// The payment-event queue; only the webhook (and reconcile) have it.
    pub queue: Option<Arc<dyn EventQueue>>,
    /// Money signals for the alarms (embedded metrics in Lambda).
    pub metrics: Arc<dyn Metrics>,
    pub config: AppConfig,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Prefix of the patient link; the token is appended. No trailing slash.
    pub patient_link_base: String,
    /// Stripe webhook signing secrets; two during a rotation.
    pub webhook_secrets: Vec<String>,
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

/// What a use case can refuse, beyond the domain's own rules.
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
    #[error("payment provider unavailable: {0}")]
    PaymentsUnavailable(String),
    #[error("payment provider refused: {0}")]
    PaymentsRejected(String),
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
    /// A deployment mistake: this function was built without a port it needs.
    #[error("{0} is not configured for this function")]
    Misconfigured(&'static str),
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
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFound::Settings => f.write_str("payment settings"),
            NotFound::Invoice(id) => write!(f, "invoice {id}"),
            NotFound::Action => f.write_str("action"),
            NotFound::Link => f.write_str("payment link"),
        }
    }
}

const MAX_ATTEMPTS: u32 = 6;

/// Optimistic concurrency: every attempt re-reads, decides and commits with
/// conditions; a `Conflict` means someone else wrote first, so we decide again
/// on fresh state (which usually turns into a proper domain error).
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    for n in 0..MAX_ATTEMPTS {
        match attempt().await {
            Err(AppError::Store(StoreError::Conflict)) => {
                tracing::debug!(attempt = n + 1, "write conflict, retrying");
                tokio::time::sleep(backoff(n)).await;
            }
            other => return other,
        }
    }
    Err(AppError::Contended)
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
