//! Applying an event to a stored action: the state machine decides, one
//! conditional commit writes the action, the invoices that follow it and the
//! payment's record, and what the event caused (`Outcome`) is signalled.
//! Every caller (staff cancel and refund, the consumer) goes through here.

use super::{with_retries, AppError, HasClock, HasMetrics, HasStore, NotFound};
use crate::ports::{expect_of, Expect, MoneySignal, Stored, Write};
use visitpay_domain::{
    follow_action, Action, ActionEvent, ActionId, Actor, Applied, ClinicId, InvoiceEffect, InvoiceId, Outcome,
    PaymentRef,
};

/// An action as a caller just read it, with its payment record when the
/// event records a payment (the consumer reads both in one request).
pub(crate) struct Known {
    pub action: Stored<Action>,
    pub payment: Option<Stored<PaymentRef>>,
}

/// Applies an event to a stored action through the state machine, with the
/// invoice writes it implies, in one conditional commit. `known` is what the
/// caller just read (saving a read); a conflict re-reads as usual.
///
/// A payment is recorded by its PaymentIntent so that refunds and disputes,
/// which name nothing else, find the action; charge events that came before
/// it (`PaymentRef::parked`) are applied in the same commit.
pub(crate) async fn apply_event(
    deps: &(impl HasStore + HasClock + HasMetrics),
    clinic: &ClinicId,
    action_id: &ActionId,
    known: Option<Known>,
    event: &ActionEvent,
    actor: &Actor,
) -> Result<Stored<Action>, AppError> {
    apply_events(deps, clinic, action_id, known, event, &[], actor).await
}

/// As `apply_event`, with what the same source said alongside (`then`,
/// e.g. how the payment was paid) applied after it in the same commit.
pub(crate) async fn apply_events(
    deps: &(impl HasStore + HasClock + HasMetrics),
    clinic: &ClinicId,
    action_id: &ActionId,
    mut known: Option<Known>,
    event: &ActionEvent,
    then: &[ActionEvent],
    actor: &Actor,
) -> Result<Stored<Action>, AppError> {
    let payment_intent = match event {
        ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. } => Some(pi),
        _ => None,
    };
    // First try: the invoices follow as conditional updates, unread. If one
    // is not where the action left it, the commit conflicts and the retry
    // reads them and moves only those still held (`follow_action`).
    let mut unread = true;
    with_retries!({
        let Known { action: current, payment } = match (known.take(), payment_intent) {
            (Some(known), _) => known,
            (None, Some(pi)) => match deps.store().action_and_payment(clinic, action_id, pi).await? {
                (Some(action), payment) => Known { action, payment },
                (None, _) => return Err(AppError::NotFound(NotFound::Action)),
            },
            (None, None) => Known {
                action: deps
                    .store()
                    .get_action(clinic, action_id)
                    .await?
                    .ok_or(AppError::NotFound(NotFound::Action))?,
                payment: None,
            },
        };
        let now = deps.clock().now();
        let Applied { action, invoices, mut changed, mut outcomes } = current.apply(event, now, actor)?;
        let (mut action, mut effects) = (action, vec![invoices]);
        for next in then {
            let t = action.apply(next, now, actor)?;
            if t.changed {
                (action, changed) = (t.action, true);
                effects.push(t.invoices);
                outcomes.extend(t.outcomes);
            }
        }
        let mut writes = Vec::new();
        if let Some(pi) = payment_intent {
            if payment.as_ref().and_then(|p| p.owner.as_ref()).is_none() {
                for parked in payment.iter().flat_map(|p| &p.parked) {
                    let by = Actor::Stripe { event_id: parked.event_id.clone() };
                    let Some(event) = parked.change.event(pi) else {
                        tracing::warn!(event_id = %parked.event_id, "a parked refund change was never looked up; reconcile of refunds is manual");
                        continue;
                    };
                    match action.apply(&event, now, &by) {
                        Ok(t) if t.changed => {
                            (action, changed) = (t.action, true);
                            effects.push(t.invoices);
                            outcomes.extend(t.outcomes);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(event_id = %parked.event_id, error = %e, "a parked charge event cannot apply")
                        }
                    }
                }
                let owned = PaymentRef::owned(pi, clinic.clone(), action_id.clone());
                writes.push(Write::Payment { payment: owned, expect: expect_of(payment.as_ref()) });
            }
        }
        if !changed && writes.is_empty() {
            return Ok(current);
        }
        effects.retain(|e| *e != InvoiceEffect::Unchanged);
        // Repaying reads the invoices: only those still free follow, and the
        // others were collected again, which the action must record.
        let repay = effects.contains(&InvoiceEffect::Repay);
        let mut invoice_moves = Vec::new();
        match effects.as_slice() {
            [] => {}
            [effect] if unread && !repay => {
                unread = false;
                invoice_moves.extend(current.invoice_ids().map(|invoice_id| Write::HeldInvoice {
                    clinic_id: clinic.clone(),
                    patient_id: current.patient_id().clone(),
                    invoice_id: invoice_id.clone(),
                    action_id: action_id.clone(),
                    effect: *effect,
                    at: now,
                }));
            }
            _ => {
                let stored = deps.store().list_invoices(clinic, current.patient_id()).await?;
                let (versions, invoices): (Vec<u64>, Vec<_>) = stored.into_iter().map(|s| (s.version, s.value)).unzip();
                let held: Vec<InvoiceId> = current.invoice_ids().cloned().collect();
                let followed = follow_action(action_id, &held, &effects, &invoices, now);
                invoice_moves.extend(
                    followed
                        .moved
                        .into_iter()
                        .map(|(index, invoice)| Write::Invoice { invoice, expect: Expect::Version(versions[index]) }),
                );
                if !followed.collected_elsewhere.is_empty() {
                    tracing::error!(
                        invoices = followed.collected_elsewhere.len(),
                        "a failed refund's invoices were collected again: the payment must be refunded"
                    );
                    let elsewhere = action.collected_elsewhere(followed.collected_elsewhere);
                    action = elsewhere.action;
                    outcomes.extend(elsewhere.outcomes);
                }
            }
        }
        let expect = current.expect();
        if changed {
            writes.push(Write::Action { action: action.clone(), expect });
        }
        // Paid just now: its receipt goes to the patient's address, if given.
        if !current.status().was_paid() && action.status().was_paid() {
            if let Some(intent) = action.receipt_message(now) {
                writes.push(Write::Message { intent, expect: Expect::Absent });
            }
        }
        writes.extend(invoice_moves);
        deps.store().commit(writes).await?;
        signal_money(deps, &action, outcomes);
        let version = if changed { expect.next_version() } else { current.version };
        Ok(Stored { value: action, version })
    })
}

/// What a committed change caused, as the money alarms hear it: once each
/// per commit, whatever number of events caused it.
fn signal_money(deps: &impl HasMetrics, action: &Action, mut outcomes: Vec<Outcome>) {
    outcomes.sort_unstable();
    outcomes.dedup();
    let about = Some((action.clinic_id(), action.action_id()));
    for outcome in outcomes {
        let signal = match outcome {
            Outcome::RefundNeeded => MoneySignal::RefundNeeded,
            Outcome::RefundFailed => MoneySignal::RefundFailed,
            Outcome::DisputeOpened => MoneySignal::DisputeOpened,
            Outcome::DisputeLost => MoneySignal::DisputeLost,
        };
        deps.metrics().signal(signal, about);
    }
}

/// Writes `next` in place of `current`, conditional on its version: a
/// change that moves no invoice and signals nothing (a reservation, a
/// session opened, a check, a dropped attempt). Returns `next` as the
/// store now holds it.
pub(crate) async fn replace_action(
    deps: &impl HasStore,
    current: &Stored<Action>,
    next: Action,
) -> Result<Stored<Action>, AppError> {
    let expect = current.expect();
    deps.store().commit(vec![Write::Action { action: next.clone(), expect }]).await?;
    Ok(Stored { value: next, version: expect.next_version() })
}
