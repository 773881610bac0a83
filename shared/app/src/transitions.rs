//! Applying an event to a stored action: the state machine decides, one
//! conditional commit writes the action, the invoices that follow it and the
//! payment's record. Every caller (staff cancel and refund, the consumer)
//! goes through here.

use super::{with_retries, AppError, HasClock, HasMetrics, HasStore, NotFound};
use crate::ports::{Expect, MoneySignal, Write};
use visitpay_domain::{
    Action, ActionEvent, ActionId, Actor, ClinicId, Invoice, InvoiceEffect, InvoiceId, PaymentRef, Timestamp,
};

/// The invoice writes that one or more transitions imply (in order), each
/// conditional on the version read. Invoices no longer held by this action are
/// left alone.
fn invoice_writes(action: &Action, effects: &[InvoiceEffect], invoices: &[Invoice], at: Timestamp) -> Vec<Write> {
    let mine = invoices.iter().filter(|i| action.invoice_ids().any(|id| id == &i.invoice_id));
    mine.filter_map(|old| {
        let mut new = old.clone();
        for effect in effects {
            if let Some(next) = new.follow(&action.action_id, *effect, at) {
                new = next;
            }
        }
        (new != *old).then_some(Write::Invoice { invoice: new, expect: Expect::Version(old.version) })
    })
    .collect()
}

/// An action as a caller just read it, with its payment record when the
/// event records a payment (the consumer reads both in one request).
pub(crate) struct Known {
    pub action: Action,
    pub payment: Option<PaymentRef>,
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
    mut known: Option<Known>,
    event: &ActionEvent,
    actor: &Actor,
) -> Result<Action, AppError> {
    let payment_intent = match event {
        ActionEvent::PaymentSucceeded { payment_intent: Some(pi), .. } => Some(pi.as_str()),
        _ => None,
    };
    // First try: the invoices follow as conditional updates, unread. If one
    // is not where the action left it, the commit conflicts and the retry
    // reads them and moves only those still held (`invoice_writes`).
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
        let transition = current.apply(event, now, actor)?;
        let (mut action, mut changed, mut effects) = (transition.action, transition.changed, vec![transition.invoices]);
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
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(event_id = %parked.event_id, error = %e, "a parked charge event cannot apply")
                        }
                    }
                }
                writes.push(Write::Payment(PaymentRef::owned(pi, clinic.clone(), action_id.clone(), payment.as_ref())));
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
                    patient_id: current.patient_id.clone(),
                    invoice_id: invoice_id.clone(),
                    action_id: action_id.clone(),
                    effect: *effect,
                    at: now,
                }));
            }
            _ => {
                let invoices = deps.store().list_invoices(clinic, &current.patient_id).await?;
                invoice_moves = invoice_writes(&current, &effects, &invoices, now);
                if repay {
                    let moved: Vec<&InvoiceId> = invoice_moves
                        .iter()
                        .filter_map(|w| match w {
                            Write::Invoice { invoice, .. } => Some(&invoice.invoice_id),
                            _ => None,
                        })
                        .collect();
                    let elsewhere: Vec<InvoiceId> =
                        current.invoice_ids().filter(|id| !moved.contains(id)).cloned().collect();
                    if !elsewhere.is_empty() {
                        tracing::error!(
                            invoices = elsewhere.len(),
                            "a failed refund's invoices were collected again: the payment must be refunded"
                        );
                        action = action.collected_elsewhere(elsewhere);
                    }
                }
            }
        }
        if changed {
            writes.push(Write::Action { action: action.clone(), expect: Expect::Version(current.version) });
        }
        writes.extend(invoice_moves);
        deps.store().commit(writes).await?;
        signal_money(deps, &current, &action);
        Ok(action)
    })
}

/// What a committed transition means for the money alarms: a payment kept
/// for refund, a refund that failed, a dispute opened or lost.
fn signal_money(deps: &impl HasMetrics, before: &Action, after: &Action) {
    let about = Some((&after.clinic_id, &after.action_id));
    let newly_needed = after.refund_needed() && !before.refund_needed();
    if after.late_payments.len() > before.late_payments.len() || newly_needed {
        deps.metrics().signal(MoneySignal::RefundNeeded, about);
    }
    let failed = |a: &Action| {
        let late = a.late_payments.iter().flat_map(|p| &p.refunds);
        a.refunds.iter().chain(late).filter(|r| r.status.is_final_failure()).count()
    };
    if failed(after) > failed(before) {
        deps.metrics().signal(MoneySignal::RefundFailed, about);
    }
    if after.disputes.len() > before.disputes.len() || (after.disputed && !before.disputed) {
        deps.metrics().signal(MoneySignal::DisputeOpened, about);
    }
    let lost = |a: &Action| a.disputes.iter().filter(|d| d.outcome() == Some("lost")).count();
    if lost(after) > lost(before) {
        deps.metrics().signal(MoneySignal::DisputeLost, about);
    }
}
