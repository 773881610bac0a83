//! Payment actions: assign in a visit, read, cancel; the patient's view.

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use tracing::instrument;

use super::invoices::pick;
use super::transitions::{apply_event, Known};
use super::views::ActionView;
use super::{
    check_invoice_ids, with_retries, AppError, Caller, HasClock, HasConfig, HasIds, HasMetrics, HasPayments, HasStore,
    NotFound,
};
use crate::domain::action::NewAction;
use crate::domain::{
    hash_token, link_token, link_token_action, Action, ActionEvent, ActionId, ActionLine, Actor, ClinicId, DomainError,
    Invoice, InvoiceId, Locale, Money, PatientId, RefundRecord, VisitId,
};
use crate::ports::{
    Expect, IdempotencyRecord, MoneySignal, PaymentsError, RefundRequest, SessionStatus, Write, META_ACTION,
    META_CLINIC,
};

/// How long a repeat of the same `Idempotency-Key` returns the first answer.
const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, Serialize)]
pub struct AssignRequest {
    pub patient_id: PatientId,
    pub invoice_ids: Vec<InvoiceId>,
    pub locale: Locale,
}

#[derive(Debug)]
pub enum Assigned {
    /// A new action; `patient_url` carries the one copy of the link token.
    Created { action: Action, patient_url: String },
    /// A repeat of an earlier request with the same key: its first answer.
    Replayed { status: u16, body: String },
}

fn request_hash(visit: &VisitId, req: &AssignRequest) -> String {
    let canonical = serde_json::to_string(&(visit, req)).expect("serializable");
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Assigns a payment action for selected invoices in a visit. The amount is
/// the sum of the stored invoices; the label comes from the clinic's settings
/// in the visit's language. All writes land together or not at all.
#[instrument(skip_all, fields(clinic_id = %clinic, visit_id = %visit, invoices = req.invoice_ids.len()))]
pub async fn assign(
    deps: &(impl HasStore + HasClock + HasIds + HasConfig),
    by: &Caller,
    clinic: &ClinicId,
    visit: &VisitId,
    req: AssignRequest,
    idempotency_key: Option<&str>,
) -> Result<Assigned, AppError> {
    check_invoice_ids(&req.invoice_ids)?;
    let hash = request_hash(visit, &req);
    with_retries!({
        let inputs = deps.store().assign_inputs(clinic, &req.patient_id, &req.invoice_ids, idempotency_key).await?;
        if let Some(first) = inputs.idempotency {
            if first.request_hash != hash {
                return Err(AppError::IdempotencyKeyReused);
            }
            return Ok(Assigned::Replayed { status: first.status, body: first.response });
        }
        let settings = inputs.settings.filter(|s| s.enabled).ok_or(DomainError::PaymentsDisabled)?;
        let chosen = pick(&inputs.invoices, &req.invoice_ids)?;
        let now = deps.clock().now();
        let action_id = deps.ids().action_id();
        let reserved: Vec<Invoice> = chosen.iter().map(|i| i.reserve_for(&action_id, now)).collect::<Result<_, _>>()?;
        let total = Money::sum(chosen.iter().map(|i| i.money()).collect::<Vec<_>>().iter())?;
        if total.currency != settings.currency {
            return Err(DomainError::CurrencyMismatch.into());
        }

        let token = link_token(&action_id, &deps.ids().link_token());
        let expires_at = now + Duration::hours(i64::from(settings.action_ttl_hours));
        let action = Action::assign(
            NewAction {
                clinic_id: clinic.clone(),
                action_id: action_id.clone(),
                visit_id: visit.clone(),
                patient_id: req.patient_id.clone(),
                label: settings.label.for_locale(req.locale).to_owned(),
                locale: req.locale,
                lines: chosen
                    .iter()
                    .map(|i| ActionLine { invoice_id: i.invoice_id.clone(), amount: i.amount })
                    .collect(),
                total,
                token_hash: hash_token(&token),
                expires_at,
                stripe_account_id: settings.stripe_account_id.clone().ok_or(DomainError::PaymentsDisabled)?,
                checkout_ttl_minutes: settings.checkout_ttl_minutes,
                line_item_text: settings.line_item_text,
            },
            now,
            &Actor::Staff(by.sub.clone()),
        );

        let mut writes = vec![Write::Action { action: action.clone(), expect: Expect::Absent }];
        for (old, new) in chosen.iter().zip(reserved) {
            writes.push(Write::Invoice { invoice: new, expect: Expect::Version(old.version) });
        }
        if let Some(key) = idempotency_key {
            writes.push(Write::Idempotency(IdempotencyRecord {
                clinic_id: clinic.clone(),
                key: key.to_owned(),
                request_hash: hash.clone(),
                action_id: action_id.clone(),
                status: 201,
                response: serde_json::to_string(&ActionView::new(&action, None)).expect("serializable"),
                expires_at: now + IDEMPOTENCY_WINDOW,
            }));
        }
        deps.store().commit(writes).await?;
        tracing::info!(action_id = %action_id, amount = total.amount, "action assigned");
        let patient_url = format!("{}/{}", deps.config().patient_link_base, token);
        Ok(Assigned::Created { action, patient_url })
    })
}

pub async fn get(deps: &impl HasStore, clinic: &ClinicId, action: &ActionId) -> Result<Action, AppError> {
    deps.store().get_action(clinic, action).await?.ok_or(AppError::NotFound(NotFound::Action))
}

pub async fn list_for_visit(deps: &impl HasStore, clinic: &ClinicId, visit: &VisitId) -> Result<Vec<Action>, AppError> {
    Ok(deps.store().list_visit_actions(clinic, visit).await?)
}

/// Staff cancel: the open Checkout Session is expired at Stripe first (so
/// it can no longer be paid), then the action ends and its invoices go back
/// to `selected`. If Stripe says the session was just completed, the cancel is
/// refused: the payment is on its way and will be applied.
#[instrument(skip_all, fields(clinic_id = %clinic, action_id = %action_id))]
pub async fn cancel(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
    action_id: &ActionId,
) -> Result<Action, AppError> {
    let current = get(deps, clinic, action_id).await?;
    // Refuse early what the state machine would refuse, before calling Stripe.
    current.apply(&ActionEvent::Cancel, deps.clock().now(), &Actor::Staff(by.sub.clone()))?;
    if let Some(session_id) = current.checkout_session_id() {
        expire_session(deps, &current, session_id).await?;
    }
    let actor = Actor::Staff(by.sub.clone());
    let known = Known { action: current, payment: None };
    let action = apply_event(deps, clinic, action_id, Some(known), &ActionEvent::Cancel, &actor).await?;
    tracing::info!("action cancelled");
    Ok(action)
}

/// Expires a Checkout Session at Stripe. Already expired is fine; completed
/// means a payment is landing, which must not be cancelled away.
pub(crate) async fn expire_session(deps: &impl HasPayments, action: &Action, session_id: &str) -> Result<(), AppError> {
    let payments = deps.payments();
    match payments.expire_checkout(&action.stripe_account_id, session_id).await {
        Ok(_) | Err(PaymentsError::NotFound) => Ok(()),
        Err(e @ (PaymentsError::Unavailable(_) | PaymentsError::Unexpected(_))) => Err(e.into()),
        Err(PaymentsError::Rejected { .. }) => {
            let session = payments.retrieve_checkout(&action.stripe_account_id, session_id).await?;
            match session.status {
                SessionStatus::Expired => Ok(()),
                SessionStatus::Complete => Err(DomainError::PaymentProcessing.into()),
                SessionStatus::Open => {
                    Err(PaymentsError::Unexpected(format!("session {session_id} would not expire")).into())
                }
            }
        }
    }
}

/// Staff refund of the action's payment: all that remains, or `amount`.
/// Never more than was paid: checked here, before anything is sent to Stripe.
#[instrument(skip_all, fields(clinic_id = %clinic, action_id = %action_id))]
pub async fn refund(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
    action_id: &ActionId,
    amount: Option<i64>,
) -> Result<Action, AppError> {
    let action = get(deps, clinic, action_id).await?;
    let remaining = action.refundable();
    if remaining == 0 {
        return Err(DomainError::NotRefundable(action.status()).into());
    }
    let amount = amount.unwrap_or(remaining);
    if amount <= 0 || amount > crate::domain::MAX_AMOUNT {
        return Err(DomainError::InvalidAmount.into());
    }
    if amount > remaining {
        return Err(DomainError::RefundExceedsRemaining(remaining).into());
    }
    // Bounded so the action's item stays small however it is refunded; the
    // last one may always take all that remains.
    if action.refunds.len() + 1 >= crate::domain::action::MAX_REFUNDS && amount < remaining {
        return Err(DomainError::TooManyRefunds(action.refunds.len()).into());
    }
    let payment_intent = action
        .payment_intent_id
        .clone()
        .ok_or_else(|| AppError::Inconsistent(format!("paid action {action_id} without a payment intent")))?;
    // The n-th refund of this action: a retry of the same request reuses the
    // key (Stripe answers with the same refund); a different amount is refused.
    let request = RefundRequest {
        account: action.stripe_account_id.clone(),
        idempotency_key: format!("visitpay-refund-{action_id}-{}", action.refunds.len() + 1),
        payment_intent: payment_intent.clone(),
        amount: Some(amount),
        metadata: vec![(META_ACTION.to_owned(), action_id.to_string()), (META_CLINIC.to_owned(), clinic.to_string())],
    };
    let refund = deps.payments().refund(&request).await.inspect_err(|e| {
        if matches!(e, PaymentsError::Rejected { .. }) {
            deps.metrics().signal(MoneySignal::RefundFailed, Some((clinic, action_id)));
        }
    });
    let refund = refund.map_err(|e| match e {
        PaymentsError::Rejected { code: Some(code), .. }
            if code == "amount_too_large" || code == "charge_already_refunded" =>
        {
            DomainError::RefundExceedsRemaining(remaining).into()
        }
        PaymentsError::Rejected { code: Some(code), .. } if code == "idempotency_error" => AppError::Contended,
        other => other.into(),
    })?;
    tracing::info!(refund_id = %refund.id, amount = refund.amount, "refund created");
    let event = ActionEvent::Refunded {
        payment_intent,
        refunds: vec![RefundRecord { refund_id: refund.id, amount: refund.amount }],
        total_refunded: None,
    };
    let known = Known { action, payment: None };
    apply_event(deps, clinic, action_id, Some(known), &event, &Actor::Staff(by.sub.clone())).await
}

/// The patient's view, reached by the link token alone: one read of the
/// action it names, then its hash must match (in constant time) and the link
/// must not have expired. Every failure looks the same: 404 `link_not_found`.
pub async fn for_patient(deps: &(impl HasStore + HasClock), token: &str) -> Result<Action, AppError> {
    let not_found = || AppError::NotFound(NotFound::Link);
    let action_id = link_token_action(token).ok_or_else(not_found)?;
    let action = deps.store().find_action(&action_id).await?.ok_or_else(not_found)?;
    let proved: bool = hash_token(token).as_bytes().ct_eq(action.token_hash.as_bytes()).into();
    if !proved || action.expires_at <= deps.clock().now() {
        return Err(not_found());
    }
    Ok(action)
}
