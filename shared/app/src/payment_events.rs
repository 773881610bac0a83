//! The consumer: applies payment signals (Stripe's events, decoded at the
//! edge, and reconcile's findings) to actions through the state machine, one
//! conditional transaction per signal. Duplicate, late and out-of-order
//! signals are no-ops by construction (states only move forward).
//!
//! It also asks Stripe what an event leaves out: how a payment was paid
//! (for the receipt; a completed session does not say), a charge's refunds
//! (the charge no longer lists them), and, once an action is paid or has
//! ended, which of its sessions are still open, to expire them.

use tracing::Instrument;

use super::sessions::close_open_sessions;
use super::transitions::{apply_events, replace_action, Known};
use super::{with_retries, AppError, HasClock, HasConfig, HasMetrics, HasPayments, HasStore, NotFound};
use crate::ports::{expect_of, MoneySignal, PaymentsError, StoreError, Stored, Write};
use visitpay_domain::{
    Action, ActionEvent, ActionId, Actor, ChargeChange, ClinicId, DomainError, ParkedEvent, PaymentIntentId,
    PaymentOwner, PaymentRef, PaymentSignal, RefundRecord, SessionsClosed, SignalKind, StrayPayment, StripeAccountId,
};

/// What applying a signal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
    /// A charge event for a payment not recorded yet: kept with its
    /// PaymentIntent, and applied when the payment is.
    Parked,
    /// Not this deployment's (an event of Stripe's other mode), or not
    /// visitpay's (another software's activity on the clinic's account).
    Ignored(&'static str),
    /// A payment naming an action that cannot be kept on it, recorded apart.
    Stray,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Try again later (throttling, an unavailable store or Stripe, contention).
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
            | AppError::Payments(PaymentsError::Unavailable(_))
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
    payment_intent: &PaymentIntentId,
    change: &ChargeChange,
    known: Option<Stored<PaymentRef>>,
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
        if let Some(next) = PaymentRef::park(payment_intent, current.as_ref().map(|c| &c.value), parked.clone()) {
            deps.store().commit(vec![Write::Payment { payment: next, expect: expect_of(current.as_ref()) }]).await?;
        }
        Ok(None)
    })?)
}

/// Stripe's list of a payment's refunds, for `charge.refunded` (which no
/// longer carries it); other changes are as the event said.
async fn looked_up(
    deps: &impl HasPayments,
    account: Option<&StripeAccountId>,
    payment_intent: &PaymentIntentId,
    change: &ChargeChange,
) -> Result<ChargeChange, AppError> {
    match (change, account) {
        (ChargeChange::RefundsChanged, Some(account)) => {
            let refunds = deps.payments().list_refunds(account, payment_intent).await?;
            let refunds = refunds.into_iter().map(|r| RefundRecord::new(r.id, r.amount, r.status)).collect();
            Ok(ChargeChange::Refunded { refunds })
        }
        _ => Ok(change.clone()),
    }
}

/// Keeps a payment that names an action apart from it, once per session,
/// and raises the alarm: a person refunds it on the account it was taken on.
async fn record_stray(
    deps: &(impl HasStore + HasClock + HasMetrics),
    signal: &PaymentSignal,
    action: &Action,
    event: &ActionEvent,
    reason: String,
) -> Result<Applied, ConsumeError> {
    let ActionEvent::PaymentSucceeded { session_id, payment_intent, charged } = event else {
        return Ok(Applied::Unchanged);
    };
    let charged = charged.clone().unwrap_or_default();
    let stray = StrayPayment {
        session_id: session_id.clone(),
        payment_intent: payment_intent.clone(),
        account: signal.account.clone(),
        amount: charged.amount,
        currency: charged.currency,
        clinic_id: action.clinic_id().clone(),
        action_id: action.action_id().clone(),
        reason,
        reported_by: signal.actor.to_string(),
        at: deps.clock().now(),
    };
    match deps.store().commit(vec![Write::StrayPayment(stray.clone())]).await {
        Ok(()) => {}
        // Recorded already (a repeated event): the alarm was raised then.
        Err(StoreError::Conflict) => return Ok(Applied::Unchanged),
        Err(e) => return Err(e.into()),
    }
    tracing::error!(
        action_id = %action.action_id(),
        session_id = %stray.session_id,
        account = stray.account.as_deref().unwrap_or("-"),
        amount = stray.amount.unwrap_or_default(),
        reason = %stray.reason,
        "a payment naming this action was kept apart from it: refund it"
    );
    deps.metrics().signal(MoneySignal::StrayPayment, Some((action.clinic_id(), action.action_id())));
    Ok(Applied::Stray)
}

/// How the patient paid, asked of Stripe when `event` makes (or made) the
/// payment the action's own and its method is not known yet: applied in
/// the same commit as the payment, so a completion costs one read and one
/// write. A repeated completion, once the method is known, asks nothing.
///
/// The payment never waits for it: when Stripe cannot answer now, the
/// payment is applied without it and the error is returned with it, so the
/// message comes back (the queue's retries) and asks again; any other
/// refusal leaves the receipt saying the method was not reported.
async fn payment_method_of(
    deps: &(impl HasClock + HasPayments),
    action: &Action,
    event: &ActionEvent,
    actor: &Actor,
) -> (Option<ActionEvent>, Option<PaymentsError>) {
    let ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. } = event else { return (None, None) };
    let own_without_method = match action.apply(event, deps.clock().now(), actor) {
        Ok(t) => t.action.payment_intent_id() == Some(pi) && t.action.payment_method().is_none(),
        Err(_) => false,
    };
    if !own_without_method {
        return (None, None);
    }
    match deps.payments().payment_method(action.stripe_account_id(), pi).await {
        Ok(Some(method)) => (Some(ActionEvent::PaymentMethod { payment_intent: pi.clone(), method }), None),
        Ok(None) => {
            tracing::warn!(action_id = %action.action_id(), "Stripe tells no payment method for the payment");
            (None, None)
        }
        Err(e @ PaymentsError::Unavailable(_)) => {
            tracing::warn!(action_id = %action.action_id(), error = %e, "could not ask Stripe how the patient paid; the payment is applied and the message retried");
            (None, Some(e))
        }
        Err(e) => {
            tracing::warn!(action_id = %action.action_id(), error = %e, "Stripe refused to say how the patient paid; the receipt says it was not reported");
            (None, None)
        }
    }
}

/// Writes that the action's other sessions are closed (bookkeeping; a
/// conflict means someone wrote first, and a later completion closes again).
async fn note_sessions_closed(deps: &impl HasStore, action: &Stored<Action>, closed: &SessionsClosed) {
    let Some(next) = action.sessions_closed(closed) else { return };
    if let Err(e) = replace_action(deps, action, next).await {
        tracing::info!(action_id = %action.action_id(), error = %e, "could not note the action's sessions closed; a later event does");
    }
}

/// Applies one signal.
pub async fn apply(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    signal: &PaymentSignal,
) -> Result<Applied, ConsumeError> {
    let span = tracing::info_span!("signal", by = %signal.actor, kind = signal.kind.name());
    async move {
        if signal.livemode != deps.payments().livemode() {
            tracing::warn!(livemode = signal.livemode, "an event of Stripe's other mode; not this deployment's");
            return Ok(Applied::Ignored("an event of Stripe's other mode"));
        }
        // The action, when finding the payment's owner read it already.
        let (clinic, action_id, event, read) = match &signal.kind {
            SignalKind::Action { clinic_id, action_id, event } => {
                (clinic_id.clone(), action_id.clone(), event.clone(), None)
            }
            SignalKind::AccountDisconnected { account } => {
                tracing::error!(account = %account, "a clinic's Stripe account disconnected visitpay; reconcile expires its open actions");
                deps.metrics().signal(MoneySignal::AccountDisconnected, None);
                return Ok(Applied::Unchanged);
            }
            // The account's health: what decides whether the clinic takes payments.
            SignalKind::AccountUpdated { health } => {
                return Ok(match crate::accounts::apply_health(deps, health.clone()).await? {
                    crate::accounts::HealthApplied::Recorded { .. } => Applied::Changed,
                    crate::accounts::HealthApplied::Stale => Applied::Unchanged,
                    crate::accounts::HealthApplied::NotOurs => Applied::Ignored("an account no clinic is"),
                });
            }
            SignalKind::AccountCheck { account } => {
                return Ok(match crate::accounts::check_account(deps, account).await? {
                    crate::accounts::HealthApplied::Recorded { .. } => Applied::Changed,
                    crate::accounts::HealthApplied::Stale => Applied::Unchanged,
                    crate::accounts::HealthApplied::NotOurs => Applied::Ignored("an account no clinic is"),
                });
            }
            SignalKind::PayoutChanged { account, payout } => {
                return Ok(match crate::payouts::apply(deps, account, payout).await? {
                    crate::payouts::PayoutApplied::Recorded { .. } => Applied::Changed,
                    crate::payouts::PayoutApplied::Stale => Applied::Unchanged,
                    crate::payouts::PayoutApplied::NotOurs => Applied::Ignored("a payout of an account no clinic is"),
                });
            }
            // Charges and disputes carry no metadata of ours: find the payment,
            // or park the change until the payment is recorded.
            SignalKind::Payment { payment_intent, change, marked } => {
                let found = deps.store().find_payment(payment_intent).await?;
                let owner = match found.as_ref().and_then(|p| p.owner.clone()) {
                    Some(owner) => owner,
                    // Neither recorded nor carrying our metadata: the clinic's
                    // other software at work on its account. No Stripe call,
                    // nothing kept, no alarm. (A dispute carries no metadata of
                    // anyone's, so one of a payment not recorded yet is kept
                    // in case the payment is ours: one write, for 30 days.)
                    None if !marked && !matches!(change, ChargeChange::Dispute { .. } | ChargeChange::Disputed) => {
                        tracing::info!("a charge event that is not visitpay's; ignored");
                        return Ok(Applied::Ignored("not visitpay's payment"));
                    }
                    None => {
                        let account = signal.account.as_deref().and_then(|a| StripeAccountId::parse(a).ok());
                        let change = looked_up(deps, account.as_ref(), payment_intent, change).await?;
                        match park(deps, &event_id(&signal.actor), payment_intent, &change, found).await? {
                            None => {
                                tracing::info!("charge event parked until its payment is recorded");
                                return Ok(Applied::Parked);
                            }
                            Some(owner) => owner,
                        }
                    }
                };
                let action = deps
                    .store()
                    .get_action(&owner.clinic_id, &owner.action_id)
                    .await?
                    .ok_or_else(|| ConsumeError::UnknownAction(owner.action_id.clone(), owner.clinic_id.clone()))?;
                let expected = action.account_of_payment(payment_intent).to_owned();
                if signal.account.as_deref().is_some_and(|account| account != expected) {
                    return Err(ConsumeError::WrongAccount(owner.action_id));
                }
                let account = StripeAccountId::parse(&expected).ok();
                let change = looked_up(deps, account.as_ref(), payment_intent, change).await?;
                let Some(event) = change.event(payment_intent) else { return Ok(Applied::Unchanged) };
                (owner.clinic_id, owner.action_id, event, Some(action))
            }
        };
        let unknown = || ConsumeError::UnknownAction(action_id.clone(), clinic.clone());
        // A payment is read with its PaymentIntent's record (one request).
        let known = match (&event, read) {
            (_, Some(action)) => Known { action, payment: None },
            (ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. }, None) => {
                match deps.store().action_and_payment(&clinic, &action_id, pi).await? {
                    (Some(action), payment) => Known { action, payment },
                    (None, _) => return Err(unknown()),
                }
            }
            _ => Known { action: deps.store().get_action(&clinic, &action_id).await?.ok_or_else(unknown)?, payment: None },
        };
        // Connect events name the account they happened on. A session's
        // outcome on any account but the action's is not about this action:
        // a payment there is recorded apart (it is not the clinic's money to
        // keep on its action), anything else is ignored.
        let foreign = matches!(signal.kind, SignalKind::Action { .. })
            && signal.account.as_deref() != Some(known.action.stripe_account_id().as_str());
        if foreign {
            return match &event {
                ActionEvent::PaymentSucceeded { .. } => {
                    let why = format!(
                        "taken on {}, not on the action's clinic's account",
                        signal.account.as_deref().unwrap_or("the platform's own account")
                    );
                    record_stray(deps, signal, &known.action, &event, why).await
                }
                _ => {
                    tracing::warn!(action_id = %action_id, "a session event of another Stripe account names this action; ignored");
                    Ok(Applied::Ignored("another account's session"))
                }
            };
        }
        let before = known.action.version;
        let (method, method_missed) = payment_method_of(deps, &known.action, &event, &signal.actor).await;
        let then: Vec<ActionEvent> = method.into_iter().collect();
        let applied = apply_events(deps, &clinic, &action_id, Some(known), &event, &then, &signal.actor).await;
        let after = match applied {
            Ok(after) => after,
            // Full of payments that are not its own: this one is kept apart.
            Err(AppError::Domain(DomainError::LatePaymentsFull(held))) => {
                let action = deps.store().get_action(&clinic, &action_id).await?.ok_or_else(unknown)?;
                let why = format!("the action already holds {held} payments that are not its own");
                return record_stray(deps, signal, &action, &event, why).await;
            }
            // Reconcile expired the sessions it knew of, and one opened since:
            // its next run closes that one too.
            Err(AppError::Domain(DomainError::CheckoutChanged)) => {
                tracing::info!(action_id = %action_id, "a session opened since reconcile closed them; expiry waits a run");
                return Ok(Applied::Unchanged);
            }
            Err(AppError::NotFound(NotFound::Action)) => return Err(unknown()),
            Err(other) => return Err(other.into()),
        };
        // Paid, or ended: no other session of the action may stay payable.
        // Once they are known closed the action says so, and a repeated
        // completion finds nothing left to close (no Stripe call).
        if let ActionEvent::PaymentSucceeded { session_id, .. } = &event {
            if !after.status().is_live() {
                match close_open_sessions(deps, &after, Some(session_id)).await {
                    Ok(closed) => {
                        if !closed.expired.is_empty() {
                            tracing::info!(action_id = %action_id, sessions = closed.expired.len(), "expired the action's other open sessions");
                        }
                        note_sessions_closed(deps, &after, &closed).await;
                    }
                    // Another session was paid too: its own event records it, flagged.
                    Err(AppError::Domain(DomainError::PaymentProcessing)) => {
                        tracing::warn!(action_id = %action_id, "another session of the action was completed as well");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if let Some(missed) = method_missed {
            return Err(ConsumeError::Retryable(missed.into()));
        }
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
