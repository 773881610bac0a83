//! The consumer: applies payment signals (Stripe's events, decoded at the
//! edge, and reconcile's findings) to actions through the state machine, one
//! conditional transaction per signal. Duplicate, late and out-of-order
//! signals are no-ops by construction (states only move forward).

use tracing::Instrument;

use super::transitions::{apply_event, Known};
use super::{with_retries, AppError, HasClock, HasMetrics, HasStore, NotFound};
use crate::domain::{
    ActionEvent, ActionId, Actor, ChargeChange, ClinicId, ParkedEvent, PaymentOwner, PaymentRef, PaymentSignal,
    SignalKind,
};
use crate::ports::{StoreError, Write};

/// What applying a signal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
    /// A charge event for a payment not recorded yet: kept with its
    /// PaymentIntent, and applied when the payment is.
    Parked,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Try again later (throttling, an unavailable store, contention).
    #[error("retryable: {0}")]
    Retryable(#[source] AppError),
    /// Will never succeed as is. Left to fail until the queue moves it to the
    /// dead-letter queue, where a person looks at it: payments are never
    /// dropped silently.
    #[error("permanent: {0}")]
    Permanent(#[source] AppError),
    #[error("permanent: no action {0} in clinic {1}")]
    UnknownAction(ActionId, ClinicId),
    #[error("permanent: the event's account is not action {0}'s")]
    WrongAccount(ActionId),
}

impl ConsumeError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConsumeError::Retryable(_))
    }
}

impl From<AppError> for ConsumeError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(StoreError::Throttled | StoreError::Unavailable(_) | StoreError::Conflict)
            | AppError::Contended => ConsumeError::Retryable(e),
            other => ConsumeError::Permanent(other),
        }
    }
}

impl From<StoreError> for ConsumeError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e).into()
    }
}

/// The event id a charge signal is parked under (reconcile makes none).
fn event_id(actor: &Actor) -> String {
    match actor {
        Actor::Stripe { event_id } => event_id.clone(),
        other => other.to_string(),
    }
}

/// Keeps a charge event with its PaymentIntent until the payment is recorded
/// (then `apply_event` applies it). Returns the payment's owner instead if it
/// was recorded meanwhile. `known` is the record as just read; a conflict
/// reads it again.
async fn park(
    deps: &(impl HasStore + HasClock),
    event_id: &str,
    payment_intent: &str,
    change: &ChargeChange,
    known: Option<PaymentRef>,
) -> Result<Option<PaymentOwner>, ConsumeError> {
    let parked = ParkedEvent { event_id: event_id.to_owned(), change: change.clone(), at: deps.clock().now() };
    let mut first = Some(known);
    Ok(with_retries!({
        let current = match first.take() {
            Some(record) => record,
            None => deps.store().find_payment(payment_intent).await?,
        };
        if let Some(owner) = current.as_ref().and_then(|p| p.owner.clone()) {
            return Ok(Some(owner));
        }
        if let Some(next) = PaymentRef::park(payment_intent, current.as_ref(), parked.clone()) {
            deps.store().commit(vec![Write::Payment(next)]).await?;
        }
        Ok(None)
    })?)
}

/// Applies one signal.
pub async fn apply(
    deps: &(impl HasStore + HasClock + HasMetrics),
    signal: &PaymentSignal,
) -> Result<Applied, ConsumeError> {
    let span = tracing::info_span!("signal", by = %signal.actor, kind = signal.kind.name());
    async move {
        let (clinic, action_id, event) = match &signal.kind {
            SignalKind::Action { clinic_id, action_id, event } => (clinic_id.clone(), action_id.clone(), event.clone()),
            // Charges and disputes carry no metadata of ours: find the payment,
            // or park the change until the payment is recorded.
            SignalKind::Payment { payment_intent, change } => {
                let found = deps.store().find_payment(payment_intent).await?;
                let owner = match found.as_ref().and_then(|p| p.owner.clone()) {
                    Some(owner) => owner,
                    None => match park(deps, &event_id(&signal.actor), payment_intent, change, found).await? {
                        None => {
                            tracing::info!("charge event parked until its payment is recorded");
                            return Ok(Applied::Parked);
                        }
                        Some(owner) => owner,
                    },
                };
                (owner.clinic_id, owner.action_id, change.event(payment_intent))
            }
        };
        let unknown = || ConsumeError::UnknownAction(action_id.clone(), clinic.clone());
        // A payment is read with its PaymentIntent's record (one request).
        let known = match &event {
            ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. } => {
                match deps.store().action_and_payment(&clinic, &action_id, pi).await? {
                    (Some(action), payment) => Known { action, payment },
                    (None, _) => return Err(unknown()),
                }
            }
            _ => Known { action: deps.store().get_action(&clinic, &action_id).await?.ok_or_else(unknown)?, payment: None },
        };
        // Connect events name the account they happened on: it must be the
        // clinic's own, or the event is not about this action.
        if let Some(account) = &signal.account {
            if account != known.action.stripe_account_id.as_str() {
                return Err(ConsumeError::WrongAccount(action_id));
            }
        }
        let before = known.action.version;
        let after = apply_event(deps, &clinic, &action_id, Some(known), &event, &signal.actor).await.map_err(|e| {
            match e {
                AppError::NotFound(NotFound::Action) => unknown(),
                other => other.into(),
            }
        })?;
        if after.version == before {
            tracing::info!(action_id = %action_id, status = %after.status(), "event changed nothing (duplicate or late)");
            Ok(Applied::Unchanged)
        } else {
            tracing::info!(action_id = %action_id, status = %after.status(), refund_needed = after.refund_needed(), "event applied");
            Ok(Applied::Changed)
        }
    }
    .instrument(span)
    .await
}
