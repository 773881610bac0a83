//! Payment actions: assign in a visit, read, cancel; the patient's view.

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use tracing::instrument;

use super::invoices::pick;
use super::sessions::close_open_sessions;
use super::transitions::{apply_event, replace_action, Known};
use super::{
    check_invoice_ids, with_retries, AppError, Caller, HasClock, HasConfig, HasIds, HasMetrics, HasPayments, HasStore,
    NotFound,
};
use crate::ports::{
    Expect, IdempotencyRecord, MoneySignal, PaymentsError, RefundRequest, Stored, Write, META_ACTION, META_CLINIC,
    META_REFUND_ATTEMPT,
};
use visitpay_domain::action::{NewAction, REFUND_ATTEMPT_IN_FLIGHT};
use visitpay_domain::{
    hash_token, link_token, link_token_action, Action, ActionEvent, ActionId, ActionLine, Actor, ClinicId, Contacts,
    DomainError, Invoice, InvoiceId, Locale, Money, PatientId, RefundAttempt, RefundRecord, SessionsClosed, Terms,
    VisitId,
};

/// How long a repeat of the same `Idempotency-Key` returns the first answer.
const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, Serialize)]
pub struct AssignRequest {
    pub patient_id: PatientId,
    pub invoice_ids: Vec<InvoiceId>,
    pub locale: Locale,
    /// Where to send the patient the link (and reminders, and the receipt).
    pub notify: Contacts,
}

#[derive(Debug)]
pub enum Assigned {
    /// A new action; `patient_url` carries the one copy of the link token.
    Created { action: Stored<Action>, patient_url: String },
    /// A repeat of an earlier request with the same key: the first answer,
    /// as the edge rendered it (`first_answer`).
    Replayed { body: String },
}

fn request_hash(visit: &VisitId, req: &AssignRequest) -> String {
    let canonical = serde_json::to_string(&(visit, req)).expect("serializable");
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Assigns a payment action for selected invoices in a visit. The amount is
/// the sum of the stored invoices; the label comes from the clinic's settings
/// in the visit's language. All writes land together or not at all: with an
/// `Idempotency-Key`, the key's record too, holding the first answer as the
/// edge renders it (`first_answer`, without the link), which a repeat gets.
#[instrument(skip_all, fields(clinic_id = %clinic, visit_id = %visit, invoices = req.invoice_ids.len()))]
pub async fn assign(
    deps: &(impl HasStore + HasClock + HasIds + HasConfig + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
    visit: &VisitId,
    req: AssignRequest,
    idempotency_key: Option<&str>,
    first_answer: impl Fn(&Stored<Action>) -> String + Send + Sync,
) -> Result<Assigned, AppError> {
    check_invoice_ids(&req.invoice_ids)?;
    let hash = request_hash(visit, &req);
    with_retries!({
        let inputs = deps.store().assign_inputs(clinic, &req.patient_id, &req.invoice_ids, idempotency_key).await?;
        if let Some(first) = inputs.idempotency {
            if first.request_hash != hash {
                return Err(AppError::IdempotencyKeyReused);
            }
            return Ok(Assigned::Replayed { body: first.response });
        }
        let settings = inputs.settings.filter(|s| s.enabled).ok_or(DomainError::PaymentsDisabled)?;
        // Only while Stripe lets the clinic's account charge (its patients would fail at Checkout).
        crate::accounts::ensure_can_take_payments(deps, &settings, inputs.account.as_ref()).await?;
        let chosen = pick(&inputs.invoices, &req.invoice_ids)?;
        let now = deps.clock().now();
        let action_id = deps.ids().action_id();
        let reserved: Vec<Invoice> = chosen.iter().map(|i| i.reserve_for(&action_id, now)).collect::<Result<_, _>>()?;
        let total = Money::sum(chosen.iter().map(|i| i.money()).collect::<Vec<_>>().iter())?;
        let stripe_account_id = settings.stripe_account_id.clone().ok_or(DomainError::PaymentsDisabled)?;
        if total.currency != settings.currency {
            return Err(DomainError::CurrencyMismatch.into());
        }
        // Stripe would refuse the Checkout Session: refuse the action instead.
        if total.amount < total.currency.stripe_minimum() {
            return Err(DomainError::AmountBelowMinimum {
                minimum: total.currency.stripe_minimum(),
                currency: total.currency,
            }
            .into());
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
                lines: chosen.iter().map(|i| ActionLine::of(i)).collect(),
                total,
                token_hash: hash_token(&token),
                expires_at,
                terms: Terms {
                    stripe_account_id,
                    checkout_ttl_minutes: settings.checkout_ttl_minutes,
                    line_item_text: settings.line_item_text,
                    receipt_issuer: Some(settings.receipt_issuer.clone()),
                    time_zone: Some(settings.time_zone.clone()),
                    reminder_hours: settings.reminder_hours.clone(),
                },
                contacts: req.notify.clone(),
            },
            now,
            &Actor::Staff(by.sub.clone()),
        );

        let mut writes = vec![Write::Action { action: action.clone(), expect: Expect::Absent }];
        // The link now and its reminders, decided with the action.
        writes.extend(
            action.messages_at_assignment().into_iter().map(|intent| Write::Message { intent, expect: Expect::Absent }),
        );
        let action = Stored { value: action, version: Expect::Absent.next_version() };
        for (old, new) in chosen.iter().zip(reserved) {
            writes.push(Write::Invoice { invoice: new, expect: old.expect() });
        }
        if let Some(key) = idempotency_key {
            writes.push(Write::Idempotency(IdempotencyRecord {
                clinic_id: clinic.clone(),
                key: key.to_owned(),
                request_hash: hash.clone(),
                action_id: action_id.clone(),
                response: first_answer(&action),
                expires_at: now + IDEMPOTENCY_WINDOW,
            }));
        }
        deps.store().commit(writes).await?;
        tracing::info!(action_id = %action_id, amount = total.amount, "action assigned");
        let patient_url = deps.config().patient_links.link(&token);
        Ok(Assigned::Created { action, patient_url })
    })
}

pub async fn get(deps: &impl HasStore, clinic: &ClinicId, action: &ActionId) -> Result<Stored<Action>, AppError> {
    deps.store().get_action(clinic, action).await?.ok_or(AppError::NotFound(NotFound::Action))
}

pub async fn list_for_visit(
    deps: &impl HasStore,
    clinic: &ClinicId,
    visit: &VisitId,
) -> Result<Vec<Stored<Action>>, AppError> {
    Ok(deps.store().list_visit_actions(clinic, visit).await?)
}

/// Staff cancel: the action's sessions are expired at Stripe first (so none
/// can still be paid), then the action ends and its invoices go back to
/// `selected`. If Stripe says a session was just completed, the cancel is
/// refused: the payment is on its way and will be applied. If a session
/// opened meanwhile, the state machine refuses the cancel and it starts over.
#[instrument(skip_all, fields(clinic_id = %clinic, action_id = %action_id))]
pub async fn cancel(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
    action_id: &ActionId,
) -> Result<Stored<Action>, AppError> {
    let actor = Actor::Staff(by.sub.clone());
    for _ in 0..MAX_CLOSE_ROUNDS {
        let current = get(deps, clinic, action_id).await?;
        // Refuse early what the state machine would refuse, before calling Stripe.
        let closed_anyway = ActionEvent::Cancel { closed: SessionsClosed::disconnected() };
        current.apply(&closed_anyway, deps.clock().now(), &actor)?;
        let closed = match close_open_sessions(deps, &current, None).await {
            Ok(closed) => closed,
            // Nothing on the account can be done (or paid through visitpay) any more.
            Err(AppError::Payments(PaymentsError::AccountDisconnected)) => SessionsClosed::disconnected(),
            Err(e) => return Err(e),
        };
        let known = Known { action: current, payment: None };
        match apply_event(deps, clinic, action_id, Some(known), &ActionEvent::Cancel { closed }, &actor).await {
            Err(AppError::Domain(DomainError::CheckoutChanged)) => {
                tracing::info!("a session opened while cancelling; closing it too");
            }
            Ok(action) => {
                tracing::info!("action cancelled");
                return Ok(action);
            }
            Err(e) => return Err(e),
        }
    }
    Err(AppError::Contended)
}

/// Rounds of "close the sessions, then end the action" before giving up to
/// a patient who keeps opening new ones.
const MAX_CLOSE_ROUNDS: usize = 4;

/// What staff sending the link got.
#[derive(Debug)]
pub enum LinkSent {
    /// The message is decided (delivered off the request path).
    Decided(Stored<Action>),
    /// A repeat of an earlier request with the same key: the first answer,
    /// as the edge rendered it. Nothing is sent again.
    Replayed { body: String },
}

/// Staff send the link (again), by email and/or text, to the contacts given
/// now or those the action has: the message is decided here, with the
/// action, and delivered off the request path. With an `Idempotency-Key`, a
/// retry (a timeout, a double click) gets the first answer, and the patient
/// one message.
#[instrument(skip_all, fields(clinic_id = %clinic, action_id = %action_id))]
pub async fn send_link(
    deps: &(impl HasStore + HasClock),
    clinic: &ClinicId,
    action_id: &ActionId,
    contacts: Contacts,
    idempotency_key: Option<&str>,
    first_answer: impl Fn(&Stored<Action>) -> String + Send + Sync,
) -> Result<LinkSent, AppError> {
    let canonical = serde_json::to_string(&("send", action_id, &contacts)).expect("serializable");
    let hash: String = Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    with_retries!({
        if let Some(key) = idempotency_key {
            if let Some(first) = deps.store().get_idempotency(clinic, key).await? {
                if first.request_hash != hash {
                    return Err(AppError::IdempotencyKeyReused);
                }
                return Ok(LinkSent::Replayed { body: first.response });
            }
        }
        let current = get(deps, clinic, action_id).await?;
        let now = deps.clock().now();
        let (next, intent) = current.send_link(&contacts, now)?;
        let expect = current.expect();
        let sent = Stored { value: next.clone(), version: expect.next_version() };
        let mut writes = vec![
            Write::Action { action: next, expect },
            Write::Message { intent: intent.clone(), expect: Expect::Absent },
        ];
        if let Some(key) = idempotency_key {
            // Created with the message, or not at all: a concurrent repeat conflicts and replays.
            writes.push(Write::Idempotency(IdempotencyRecord {
                clinic_id: clinic.clone(),
                key: key.to_owned(),
                request_hash: hash.clone(),
                action_id: action_id.clone(),
                response: first_answer(&sent),
                expires_at: now + IDEMPOTENCY_WINDOW,
            }));
        }
        deps.store().commit(writes).await?;
        tracing::info!(key = %intent.key, "link to send again decided");
        Ok(LinkSent::Decided(sent))
    })
}

/// Staff refund of the action's payment: all that remains, or `amount`.
/// Never more than was paid: checked here, before anything is sent to Stripe.
///
/// Each refund is an attempt reserved on the action first; its number is the
/// idempotency key. A quick retry of the same refund (after a timeout, a
/// double click) sends the same key, so Stripe makes it once. An attempt
/// Stripe refused is dropped (Stripe would replay that answer for the key);
/// an unanswered one, once it can no longer be in flight, is looked up in
/// Stripe's list of the payment's refunds (each carries its attempt number)
/// before any other refund: recorded if it happened, dropped if not.
#[instrument(skip_all, fields(clinic_id = %clinic, action_id = %action_id))]
pub async fn refund(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    by: &Caller,
    clinic: &ClinicId,
    action_id: &ActionId,
    amount: Option<i64>,
) -> Result<Stored<Action>, AppError> {
    let actor = Actor::Staff(by.sub.clone());
    /// What one look at the action decides.
    enum Next {
        /// Send this attempt to Stripe.
        Send(Stored<Action>, u32, i64),
        /// Another refund is unanswered: learn from Stripe whether it happened.
        Settle(Stored<Action>, RefundAttempt),
    }
    let mut rounds = 0;
    let (action, attempt, amount) = loop {
        let next = with_retries!({
            let action = get(deps, clinic, action_id).await?;
            let amount = action.refund_amount(amount)?;
            let now = deps.clock().now();
            if let Some(same) = action.usable_refund_attempt(amount, now) {
                let attempt = same.attempt;
                return Ok(Next::Send(action, attempt, amount));
            }
            if let Some(unanswered) = action.refunds().attempt().cloned() {
                return Ok(Next::Settle(action, unanswered));
            }
            let reserved = replace_action(deps, &action, action.reserve_refund(amount, now)?).await?;
            let attempt = reserved.refunds().attempt().expect("reserved").attempt;
            Ok(Next::Send(reserved, attempt, amount))
        })?;
        match next {
            Next::Send(action, attempt, amount) => break (action, attempt, amount),
            Next::Settle(_, _) if rounds >= MAX_CLOSE_ROUNDS => return Err(AppError::Contended),
            Next::Settle(action, unanswered) => settle_unanswered(deps, &action, &unanswered, &actor).await?,
        }
        rounds += 1;
    };
    let payment_intent = action
        .payment_intent_id()
        .cloned()
        .ok_or_else(|| AppError::Inconsistent(format!("paid action {action_id} without a payment intent")))?;
    let request = RefundRequest {
        account: action.stripe_account_id().clone(),
        idempotency_key: format!("visitpay-refund-{action_id}-{attempt}"),
        payment_intent: payment_intent.clone(),
        amount: Some(amount),
        metadata: vec![
            (META_ACTION.to_owned(), action_id.to_string()),
            (META_CLINIC.to_owned(), clinic.to_string()),
            (META_REFUND_ATTEMPT.to_owned(), attempt.to_string()),
        ],
    };
    let refund = match deps.payments().refund(&request).await {
        Ok(refund) => refund,
        Err(e) => {
            // Refused: Stripe keeps that answer under the key, so the next
            // refund must be a new attempt. Unanswered (a timeout, a 5xx):
            // the attempt stays, and a retry sends the same key.
            if matches!(e, PaymentsError::Rejected { .. } | PaymentsError::AccountDisconnected) {
                deps.metrics().signal(MoneySignal::RefundFailed, Some((clinic, action_id)));
                drop_refund_attempt(deps, clinic, action_id, attempt).await?;
            }
            return Err(match e {
                PaymentsError::Rejected { code: Some(code), .. }
                    if code == "amount_too_large" || code == "charge_already_refunded" =>
                {
                    DomainError::RefundExceedsRemaining(action.refundable().amount).into()
                }
                other => other.into(),
            });
        }
    };
    tracing::info!(refund_id = %refund.id, amount = refund.amount, status = refund.status.as_str(), "refund created");
    let event = ActionEvent::Refunded {
        payment_intent,
        refunds: vec![RefundRecord::new(refund.id, refund.amount, refund.status)],
        attempt: Some(attempt),
    };
    let known = Known { action, payment: None };
    apply_event(deps, clinic, action_id, Some(known), &event, &actor).await
}

/// An earlier refund attempt that was never answered: Stripe's list of the
/// payment's refunds says whether it happened (it carries its attempt
/// number). If it did, it is recorded; if not, and it can no longer be in
/// flight, it is dropped; otherwise the caller must wait.
async fn settle_unanswered(
    deps: &(impl HasStore + HasClock + HasMetrics + HasPayments),
    action: &Stored<Action>,
    unanswered: &RefundAttempt,
    actor: &Actor,
) -> Result<(), AppError> {
    let payment_intent = action.payment_intent_id().cloned().ok_or_else(|| {
        AppError::Inconsistent(format!("paid action {} without a payment intent", action.action_id()))
    })?;
    let listed = deps.payments().list_refunds(action.stripe_account_id(), &payment_intent).await?;
    let happened = listed.iter().any(|r| r.attempt == Some(unanswered.attempt));
    if happened {
        let refunds = listed.into_iter().map(|r| RefundRecord::new(r.id, r.amount, r.status)).collect();
        let event = ActionEvent::Refunded { payment_intent, refunds, attempt: Some(unanswered.attempt) };
        let known = Known { action: action.clone(), payment: None };
        apply_event(deps, action.clinic_id(), action.action_id(), Some(known), &event, actor).await?;
        return Ok(());
    }
    if deps.clock().now() - unanswered.reserved_at < REFUND_ATTEMPT_IN_FLIGHT {
        return Err(DomainError::RefundInProgress.into());
    }
    drop_refund_attempt(deps, action.clinic_id(), action.action_id(), unanswered.attempt).await
}

/// Forgets a refund attempt (conditional on the action as read again).
async fn drop_refund_attempt(
    deps: &impl HasStore,
    clinic: &ClinicId,
    action_id: &ActionId,
    attempt: u32,
) -> Result<(), AppError> {
    with_retries!({
        let action = get(deps, clinic, action_id).await?;
        if let Some(dropped) = action.drop_refund_attempt(attempt) {
            replace_action(deps, &action, dropped).await?;
        }
        Ok(())
    })
}

/// What the patient's link is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// To pay: the link lives as long as the action can be paid.
    Pay,
    /// To see the action and its receipt: as long as it can be paid, and,
    /// once paid, for the clinic's receipt period (`receipt_days`) after:
    /// patients claim from their insurer months later.
    Look,
}

/// The patient's view, reached by the link token alone: one read of the
/// action it names, then its hash must match (in constant time) and the link
/// must still reach it (`Reach`). Every failure looks the same: 404
/// `link_not_found`.
pub async fn for_patient(
    deps: &(impl HasStore + HasClock),
    token: &str,
    reach: Reach,
) -> Result<Stored<Action>, AppError> {
    let not_found = || AppError::NotFound(NotFound::Link);
    let action_id = link_token_action(token).ok_or_else(not_found)?;
    let action = deps.store().find_action(&action_id).await?.ok_or_else(not_found)?;
    // The visit's link, or one a message carried: each compared in constant time.
    let hash = hash_token(token);
    let proved =
        action.link_hashes().fold(false, |found, known| found | bool::from(hash.as_bytes().ct_eq(known.as_bytes())));
    if !proved {
        return Err(not_found());
    }
    let now = deps.clock().now();
    if action.expires_at() > now {
        return Ok(action);
    }
    let Some(paid_at) = action.paid_at().filter(|_| reach == Reach::Look) else {
        return Err(not_found());
    };
    let days = deps
        .store()
        .get_settings(action.clinic_id())
        .await?
        .map_or(visitpay_domain::settings::DEFAULT_RECEIPT_DAYS, |s| s.receipt_days);
    if now < paid_at + Duration::days(i64::from(days)) {
        Ok(action)
    } else {
        Err(not_found())
    }
}
