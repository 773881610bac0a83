//! A clinic's payouts, each traced to what it paid: Stripe lists a payout's
//! balance transactions (the payout's own among them, https://docs.stripe.com/payouts/reconciliation),
//! and each is tied, through the payment it is about, to its action and
//! invoices. The lines other than the payout's own add up to the payout, to
//! the cent; one that does not is flagged (`PayoutMismatch`), and a failed
//! payout raises `PayoutFailed`.

use std::collections::HashMap;

use tracing::instrument;

use super::{AppError, HasMetrics, HasPayments, HasStore, NotFound};
use crate::ports::{expect_of, BalanceTransaction, MoneySignal, PayoutPage, Stored, Write};
use visitpay_domain::connect::PayoutFacts;
use visitpay_domain::{
    ActionId, ClinicId, InvoiceId, Payout, PayoutLine, PayoutLineKind, PayoutStatus, StripeAccountId,
};

/// Lines written per commit: DynamoDB takes 100 items a transaction.
const LINES_PER_COMMIT: usize = 90;
/// At most this many payouts a page.
pub const MAX_PAGE: usize = 100;

/// What applying a payout's event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutApplied {
    Recorded {
        status: PayoutStatus,
        reconciles: bool,
    },
    /// Older than what is known (events come in any order).
    Stale,
    /// A payout of an account no clinic is.
    NotOurs,
}

/// A payout's event (`payout.paid`, `payout.updated`, `payout.failed`,
/// `payout.canceled`): its lines listed and traced the first time it is
/// seen, its status kept current after.
#[instrument(skip_all, fields(account = account.as_str(), payout_id = %facts.id))]
pub async fn apply(
    deps: &(impl HasStore + HasMetrics + HasPayments),
    account: &StripeAccountId,
    facts: &PayoutFacts,
) -> Result<PayoutApplied, AppError> {
    let clinics = deps.store().clinics_of_account(account).await?;
    if clinics.is_empty() {
        tracing::info!("a payout of an account no clinic is: ignored");
        return Ok(PayoutApplied::NotOurs);
    }
    // Clinics of one business sharing the account each see the payout, each
    // line tied to their own actions.
    let mut applied = PayoutApplied::Stale;
    for clinic in clinics {
        if let recorded @ PayoutApplied::Recorded { .. } = apply_to_clinic(deps, clinic, account, facts).await? {
            applied = recorded;
        }
    }
    Ok(applied)
}

async fn apply_to_clinic(
    deps: &(impl HasStore + HasMetrics + HasPayments),
    clinic: ClinicId,
    account: &StripeAccountId,
    facts: &PayoutFacts,
) -> Result<PayoutApplied, AppError> {
    let known = deps.store().get_payout(&clinic, &facts.id).await?;
    // What a payout paid does not change once Stripe lists it: listed once.
    let lines = match &known {
        Some((summary, lines)) if lines.len() == summary.line_count as usize => lines.clone(),
        _ => {
            let listed = deps.payments().list_payout_transactions(account, &facts.id).await?;
            trace(deps, &clinic, &listed).await?
        }
    };
    let payout = Payout::of(account.clone(), facts, &lines);
    if let Some((summary, _)) = &known {
        if !summary.updated_by(&payout) {
            return Ok(PayoutApplied::Stale);
        }
    }
    for (chunk, from) in lines.chunks(LINES_PER_COMMIT).zip((0..).step_by(LINES_PER_COMMIT)) {
        let writes = chunk
            .iter()
            .enumerate()
            .map(|(i, line)| Write::PayoutLine {
                clinic_id: clinic.clone(),
                payout_id: facts.id.clone(),
                index: u32::try_from(from + i).unwrap_or(u32::MAX),
                line: line.clone(),
            })
            .collect();
        deps.store().commit(writes).await?;
    }
    let before = known.as_ref().map(|(summary, _)| summary);
    let write = Write::Payout { clinic_id: clinic.clone(), payout: payout.clone(), expect: expect_of(before) };
    match deps.store().commit(vec![write]).await {
        Ok(()) => {}
        // Another delivery of an event of this payout wrote first: its turn.
        Err(crate::ports::StoreError::Conflict) => return Ok(PayoutApplied::Stale),
        Err(e) => return Err(e.into()),
    }
    let was = before.map(|b| (b.status, b.reconciles()));
    let failed = matches!(payout.status, PayoutStatus::Failed | PayoutStatus::Canceled);
    if failed && !matches!(was, Some((PayoutStatus::Failed | PayoutStatus::Canceled, _))) {
        tracing::error!(clinic_id = %clinic, status = ?payout.status, failure_code = payout.failure_code.as_deref().unwrap_or("-"), "a payout to the clinic's bank failed");
        deps.metrics().signal(MoneySignal::PayoutFailed, None);
    }
    if !payout.reconciles() && was.is_none_or(|(_, reconciled)| reconciled) {
        tracing::error!(clinic_id = %clinic, amount = payout.amount, lines_net = payout.lines_net, "a payout's lines do not add up to it");
        deps.metrics().signal(MoneySignal::PayoutMismatch, None);
    }
    tracing::info!(clinic_id = %clinic, status = ?payout.status, lines = payout.line_count, "payout recorded");
    Ok(PayoutApplied::Recorded { status: payout.status, reconciles: payout.reconciles() })
}

/// Each balance transaction tied to its payment's action and invoices (one
/// read of each payment and action, however many lines name them).
async fn trace(
    deps: &impl HasStore,
    clinic: &ClinicId,
    listed: &[BalanceTransaction],
) -> Result<Vec<PayoutLine>, AppError> {
    let mut actions: HashMap<String, Option<(ActionId, Vec<InvoiceId>)>> = HashMap::new();
    let mut lines = Vec::with_capacity(listed.len());
    for t in listed {
        let traced = match &t.payment_intent {
            Some(pi) => match actions.get(pi.as_str()) {
                Some(found) => found.clone(),
                None => {
                    let found = action_of_payment(deps, clinic, pi).await?;
                    actions.insert(pi.as_str().to_owned(), found.clone());
                    found
                }
            },
            None => None,
        };
        let (action_id, invoice_ids) = traced.map_or((None, Vec::new()), |(a, i)| (Some(a), i));
        lines.push(PayoutLine {
            transaction_id: t.id.clone(),
            kind: PayoutLineKind::of(&t.kind, &t.reporting_category),
            stripe_type: t.kind.clone(),
            created: t.created,
            gross: t.amount,
            fee: t.fee,
            net: t.net,
            payment_intent: t.payment_intent.clone(),
            action_id,
            invoice_ids,
        });
    }
    Ok(lines)
}

/// The action a payment settled (only one of this clinic's), and its invoices.
async fn action_of_payment(
    deps: &impl HasStore,
    clinic: &ClinicId,
    payment_intent: &visitpay_domain::PaymentIntentId,
) -> Result<Option<(ActionId, Vec<InvoiceId>)>, AppError> {
    let Some(payment) = deps.store().find_payment(payment_intent).await? else { return Ok(None) };
    let Some(owner) = payment.value.owner.filter(|o| &o.clinic_id == clinic) else { return Ok(None) };
    let action = deps.store().get_action(clinic, &owner.action_id).await?;
    Ok(action.map(|a| (owner.action_id.clone(), a.invoice_ids().cloned().collect())))
}

/// A clinic's payouts, newest first.
pub async fn list(
    deps: &impl HasStore,
    clinic: &ClinicId,
    limit: usize,
    after: Option<&str>,
) -> Result<PayoutPage, AppError> {
    Ok(deps.store().list_payouts(clinic, limit.clamp(1, MAX_PAGE), after).await?)
}

/// One payout and its lines.
pub async fn get(
    deps: &impl HasStore,
    clinic: &ClinicId,
    payout_id: &str,
) -> Result<(Stored<Payout>, Vec<PayoutLine>), AppError> {
    deps.store().get_payout(clinic, payout_id).await?.ok_or(AppError::NotFound(NotFound::Payout))
}
