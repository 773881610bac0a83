//! A payment action: its terms, fixed when staff assign it, and its life,
//! cut into the parts that own their rules: the lifecycle (status moves,
//! here), its Checkout Sessions (`checkout`), refunds of its payment
//! (`refunds`), disputes (`disputes`) and money it may not keep (`late`),
//! all recorded in its history (`history`). `Action::apply` decides every
//! transition and says what it caused (`Outcome`); callers write it.
//!
//! `assigned → checkout_open → (processing) → paid`; from `assigned` and
//! `checkout_open`: `cancelled`, `expired`; from `processing`: `failed`; from
//! `paid`: `partially_refunded`, `refunded`; `disputed` is a flag. States only
//! move forward: a late or repeated event is a no-op. A payment that lands on
//! an action that can no longer take it is recorded and flagged for refund.

mod checkout;
mod checks;
mod disputes;
mod events;
mod history;
mod late;
mod messages;
mod refunds;
#[cfg(test)]
mod tests;

pub use checkout::{Checkout, Checkouts, OpenSession, MAX_OPEN_SESSIONS, RESERVATION_REUSE, SESSION_CLOCK_SKEW};
pub use checks::Checks;
pub use disputes::Disputes;
pub use events::{ActionEvent, Outcome, SessionsClosed};
pub use history::{ActionStatus, Actor, History, HistoryEntry, ROUTINE_HISTORY_HEAD, ROUTINE_HISTORY_TAIL};
pub use late::{LatePayment, LatePayments, MAX_LATE_PAYMENTS};
pub use messages::{MessageLink, Messages, MAX_MESSAGE_LINKS};
pub use refunds::{RefundAttempt, Refunds, MAX_REFUNDS, REFUND_ATTEMPT_IN_FLIGHT};

use crate::invoice::InvoiceEffect;
use crate::{
    ActionId, Charged, ClinicId, ClinicTimeZone, Contacts, Currency, DomainError, Invoice, InvoiceId, LineItemText,
    Locale, Money, PatientId, PaymentIntentId, PaymentMethod, ReceiptDetails, ReceiptIssuer, ServiceDate, SessionId,
    StripeAccountId, Timestamp, VisitId,
};

/// One invoice collected by the action, with what its receipt will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionLine {
    pub invoice_id: InvoiceId,
    pub amount: Money,
    /// What the receipt says of the invoice, as it was when assigned: a
    /// pending invoice cannot change, so this is what the payment paid for,
    /// and an issued receipt keeps saying it after the invoice is reopened
    /// and imported again. `None` on actions assigned before receipts were
    /// kept with them (their receipt reads the invoices).
    pub service_date: Option<ServiceDate>,
    pub receipt: ReceiptDetails,
}

impl ActionLine {
    /// A line with nothing kept for the receipt (tests, and old records).
    pub fn new(invoice_id: InvoiceId, amount: Money) -> Self {
        ActionLine { invoice_id, amount, service_date: None, receipt: ReceiptDetails::default() }
    }

    /// The line for an invoice, with what its receipt will say.
    pub fn of(invoice: &Invoice) -> Self {
        ActionLine {
            invoice_id: invoice.invoice_id.clone(),
            amount: invoice.money(),
            service_date: Some(invoice.service_date.clone()),
            receipt: invoice.receipt.clone(),
        }
    }
}

/// What staff committed to when they assigned the action: settings changes
/// do not move it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The clinic's Stripe account, ttl and line-item policy when assigned.
    pub stripe_account_id: StripeAccountId,
    pub checkout_ttl_minutes: u32,
    pub line_item_text: LineItemText,
    /// Who issues the receipt, and the zone its dates are days of. `None`
    /// on actions older than that (their receipt reads the settings).
    pub receipt_issuer: Option<ReceiptIssuer>,
    pub time_zone: Option<ClinicTimeZone>,
    /// Hours after assignment at which the patient is reminded (none on
    /// actions older than reminders).
    pub reminder_hours: Vec<u32>,
}

/// The action's own payment, once Stripe took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub session_id: SessionId,
    pub payment_intent: Option<PaymentIntentId>,
    pub at: Timestamp,
    /// How the patient paid (its charge's payment method, as Stripe tells it), for the receipt.
    pub method: Option<PaymentMethod>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    clinic_id: ClinicId,
    action_id: ActionId,
    visit_id: VisitId,
    patient_id: PatientId,
    label: String,
    locale: Locale,
    /// The invoices collected and their amounts when assigned (frozen: a
    /// pending invoice cannot change), so checkout needs no invoice read.
    lines: Vec<ActionLine>,
    total: Money,
    terms: Terms,
    /// SHA-256 of the patient link token; the token itself is never stored.
    token_hash: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    status: ActionStatus,
    payment: Option<Payment>,
    /// The clinic's Stripe account no longer lets visitpay in.
    account_disconnected: bool,
    /// Where the patient is reached, while the action lives.
    contacts: Contacts,
    messages: Messages,
    checkout: Checkouts,
    refunds: Refunds,
    disputes: Disputes,
    late: LatePayments,
    checks: Checks,
    history: History,
}

/// Everything needed to create an action; amount and currency come from the
/// stored invoices, never from the client.
pub struct NewAction {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub visit_id: VisitId,
    pub patient_id: PatientId,
    pub label: String,
    pub locale: Locale,
    pub lines: Vec<ActionLine>,
    pub total: Money,
    pub token_hash: String,
    pub expires_at: Timestamp,
    pub terms: Terms,
    /// Where to send the link, if staff gave anything.
    pub contacts: Contacts,
}

/// An action as a store kept it, every part whole: what the stores read back
/// (`Action::restore`). Nothing else builds an action but `Action::assign`.
pub struct ActionParts {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub visit_id: VisitId,
    pub patient_id: PatientId,
    pub label: String,
    pub locale: Locale,
    pub lines: Vec<ActionLine>,
    pub total: Money,
    pub terms: Terms,
    pub token_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: ActionStatus,
    pub payment: Option<Payment>,
    pub account_disconnected: bool,
    pub contacts: Contacts,
    pub messages: Messages,
    pub checkout: Checkouts,
    pub refunds: Refunds,
    pub disputes: Disputes,
    pub late: LatePayments,
    pub checks: Checks,
    pub history: History,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The action after the event; equal to the input when nothing changed.
    pub action: Action,
    /// What the event means for the action's invoices.
    pub invoices: InvoiceEffect,
    /// Whether the action changed (and must be written).
    pub changed: bool,
    /// What the change caused that someone must hear of.
    pub outcomes: Vec<Outcome>,
}

/// What one event decides before it is recorded.
pub(crate) enum Step {
    /// Nothing changed: a duplicate, late or stale event.
    Unchanged,
    /// Bookkeeping changed that no person reads: written, not in the history.
    Quiet,
    /// A move to record in the history: the status it moves to, what its
    /// invoices do, the history's reason and amount.
    Move { to: ActionStatus, invoices: InvoiceEffect, reason: String, amount: Option<i64> },
}

/// A move that leaves the status and the invoices as they are.
pub(crate) fn stay(status: ActionStatus, reason: String, amount: Option<i64>) -> Step {
    Step::Move { to: status, invoices: InvoiceEffect::Unchanged, reason, amount }
}

impl Action {
    pub fn assign(new: NewAction, at: Timestamp, actor: &Actor) -> Action {
        let mut history = History::default();
        history.record(HistoryEntry {
            at,
            actor: actor.to_string(),
            from: None,
            to: ActionStatus::Assigned,
            reason: "assigned in visit".into(),
            amount: Some(new.total.amount),
            routine: false,
        });
        Action {
            clinic_id: new.clinic_id,
            action_id: new.action_id,
            visit_id: new.visit_id,
            patient_id: new.patient_id,
            label: new.label,
            locale: new.locale,
            lines: new.lines,
            total: new.total,
            terms: new.terms,
            token_hash: new.token_hash,
            created_at: at,
            expires_at: new.expires_at,
            status: ActionStatus::Assigned,
            payment: None,
            account_disconnected: false,
            // The link's first message (`link-1`) is decided with the action.
            messages: Messages::new(u32::from(!new.contacts.is_empty()), Vec::new()),
            contacts: new.contacts,
            checkout: Checkouts::default(),
            refunds: Refunds::default(),
            disputes: Disputes::default(),
            late: LatePayments::default(),
            checks: Checks::default(),
            history,
        }
    }

    /// An action as a store kept it. Refused if it contradicts itself (paid
    /// without its payment, or the reverse): a hand-edited or corrupt record
    /// must not drive a decision.
    pub fn restore(parts: ActionParts) -> Result<Action, String> {
        if parts.status.was_paid() != parts.payment.is_some() {
            return Err(format!("action {} is {} with payment {:?}", parts.action_id, parts.status, parts.payment));
        }
        if parts.lines.iter().any(|l| l.amount.currency != parts.total.currency) {
            return Err(format!("action {} mixes currencies", parts.action_id));
        }
        Ok(Action {
            clinic_id: parts.clinic_id,
            action_id: parts.action_id,
            visit_id: parts.visit_id,
            patient_id: parts.patient_id,
            label: parts.label,
            locale: parts.locale,
            lines: parts.lines,
            total: parts.total,
            terms: parts.terms,
            token_hash: parts.token_hash,
            created_at: parts.created_at,
            expires_at: parts.expires_at,
            status: parts.status,
            payment: parts.payment,
            account_disconnected: parts.account_disconnected,
            contacts: parts.contacts,
            messages: parts.messages,
            checkout: parts.checkout,
            refunds: parts.refunds,
            disputes: parts.disputes,
            late: parts.late,
            checks: parts.checks,
            history: parts.history,
        })
    }

    // --- what it is -------------------------------------------------------

    pub fn clinic_id(&self) -> &ClinicId {
        &self.clinic_id
    }
    pub fn action_id(&self) -> &ActionId {
        &self.action_id
    }
    pub fn visit_id(&self) -> &VisitId {
        &self.visit_id
    }
    pub fn patient_id(&self) -> &PatientId {
        &self.patient_id
    }
    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn locale(&self) -> Locale {
        self.locale
    }
    pub fn lines(&self) -> &[ActionLine] {
        &self.lines
    }
    pub fn invoice_ids(&self) -> impl Iterator<Item = &InvoiceId> {
        self.lines.iter().map(|l| &l.invoice_id)
    }
    pub fn total(&self) -> Money {
        self.total
    }
    pub fn currency(&self) -> Currency {
        self.total.currency
    }
    pub fn terms(&self) -> &Terms {
        &self.terms
    }
    pub fn stripe_account_id(&self) -> &StripeAccountId {
        &self.terms.stripe_account_id
    }
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
    pub fn status(&self) -> ActionStatus {
        self.status
    }
    pub fn payment(&self) -> Option<&Payment> {
        self.payment.as_ref()
    }
    pub fn paid_at(&self) -> Option<Timestamp> {
        self.payment.as_ref().map(|p| p.at)
    }
    pub fn payment_intent_id(&self) -> Option<&PaymentIntentId> {
        self.payment.as_ref().and_then(|p| p.payment_intent.as_ref())
    }
    pub fn payment_method(&self) -> Option<&PaymentMethod> {
        self.payment.as_ref().and_then(|p| p.method.as_ref())
    }
    pub fn account_disconnected(&self) -> bool {
        self.account_disconnected
    }
    pub fn checkout(&self) -> &Checkouts {
        &self.checkout
    }
    pub fn checkout_session_id(&self) -> Option<&SessionId> {
        self.checkout.current_session()
    }
    pub fn refunds(&self) -> &Refunds {
        &self.refunds
    }
    pub fn disputes(&self) -> &Disputes {
        &self.disputes
    }
    pub fn disputed(&self) -> bool {
        self.disputes.disputed
    }
    pub fn late(&self) -> &LatePayments {
        &self.late
    }
    pub fn checks(&self) -> &Checks {
        &self.checks
    }
    pub fn history(&self) -> &History {
        &self.history
    }

    // --- money ------------------------------------------------------------

    /// What the refunds of the action's payment that moved money (pending
    /// included) add up to, at most what was paid.
    pub fn refunded(&self) -> Money {
        let amount = if self.status.was_paid() { self.refunds.total().min(self.total.amount) } else { 0 };
        Money { amount, currency: self.total.currency }
    }

    /// What may still be refunded of the action's own payment.
    pub fn refundable(&self) -> Money {
        let amount = match self.status {
            ActionStatus::Paid | ActionStatus::PartiallyRefunded => self.total.amount - self.refunded().amount,
            _ => 0,
        };
        Money { amount, currency: self.total.currency }
    }

    /// What the clinic keeps of the action's own payment: paid, less what was
    /// refunded (or is on its way back) and what a lost dispute took.
    pub fn kept(&self) -> Money {
        let amount = match (self.payment_intent_id(), self.status.was_paid()) {
            (Some(own), true) => self.total.amount - self.refunded().amount - self.disputes.withdrawn_from(own),
            _ => 0,
        };
        Money { amount, currency: self.total.currency }
    }

    /// Money Stripe holds that must go back: a payment that was not the
    /// action's to take, or the action's own once its invoices were
    /// collected again elsewhere.
    pub fn refund_needed(&self) -> bool {
        self.late.unsettled() || (!self.late.collected_elsewhere.is_empty() && self.refundable().amount > 0)
    }

    /// A dispute stops refunds of the action's payment while it is more than
    /// an inquiry and not won; a lost one took the money already.
    pub fn refunds_blocked_by_dispute(&self) -> bool {
        self.disputes.block_refunds_of(self.payment_intent_id())
    }

    /// The account a charge event about `payment_intent` must come from: the
    /// action's own, or that of the late payment it is about.
    pub fn account_of_payment(&self, payment_intent: &PaymentIntentId) -> &str {
        if self.payment_intent_id() == Some(payment_intent) {
            return self.terms.stripe_account_id.as_str();
        }
        self.late.account_of(payment_intent).unwrap_or(self.terms.stripe_account_id.as_str())
    }

    // --- the one function that decides every transition --------------------

    /// Applies an event: the lifecycle's moves are decided here, each
    /// ledger's (refunds, disputes, money it may not keep) in its module.
    pub fn apply(&self, event: &ActionEvent, at: Timestamp, actor: &Actor) -> Result<Applied, DomainError> {
        let needed_before = self.refund_needed();
        let mut next = self.clone();
        let mut outcomes = Vec::new();
        let (to, invoices, reason, amount) = match next.decide(event, at, &mut outcomes)? {
            Step::Unchanged => {
                return Ok(Applied {
                    action: self.clone(),
                    invoices: InvoiceEffect::Unchanged,
                    changed: false,
                    outcomes: vec![],
                })
            }
            Step::Quiet => {
                return Ok(Applied { action: next, invoices: InvoiceEffect::Unchanged, changed: true, outcomes })
            }
            Step::Move { to, invoices, reason, amount } => (to, invoices, reason, amount),
        };
        next.history.record(HistoryEntry {
            at,
            actor: actor.to_string(),
            from: Some(self.status),
            to,
            reason,
            amount,
            routine: event.is_routine(),
        });
        if to != self.status {
            next.forget_contacts_on(to);
        }
        next.status = to;
        if next.refund_needed() && !needed_before && !outcomes.contains(&Outcome::RefundNeeded) {
            outcomes.push(Outcome::RefundNeeded);
        }
        Ok(Applied { action: next, invoices, changed: true, outcomes })
    }

    /// Decides what `event` does to this action (a copy of the one it is
    /// applied to, changed in place), noting what it caused in `outcomes`.
    fn decide(&mut self, event: &ActionEvent, at: Timestamp, outcomes: &mut Vec<Outcome>) -> Result<Step, DomainError> {
        use ActionEvent as E;
        use ActionStatus as S;
        Ok(match (self.status, event) {
            (S::Assigned | S::CheckoutOpen, E::Cancel { closed }) => {
                self.check_closed(closed)?;
                self.checkout.all_closed();
                let reason = format!("cancelled by staff{}", closed_note(closed));
                Step::Move { to: S::Cancelled, invoices: InvoiceEffect::Release, reason, amount: None }
            }
            (s, E::Cancel { .. }) => return Err(DomainError::InvalidTransition(s, "cancelled")),

            (S::Assigned | S::CheckoutOpen, E::Expire { closed }) => {
                self.check_closed(closed)?;
                self.checkout.all_closed();
                let reason = if closed.account_disconnected {
                    self.account_disconnected = true;
                    "the clinic's Stripe account is disconnected; the action can no longer be paid".to_owned()
                } else {
                    format!("action lifetime elapsed{}", closed_note(closed))
                };
                Step::Move { to: S::Expired, invoices: InvoiceEffect::Release, reason, amount: None }
            }
            (_, E::Expire { .. }) => Step::Unchanged,

            (S::Assigned | S::CheckoutOpen, E::CheckoutOpened { session_id, url, expires_at }) => {
                if self.checkout_session_id() == Some(session_id) {
                    return Ok(Step::Unchanged);
                }
                if !self.checkout.opened(session_id, url, *expires_at) {
                    return Err(DomainError::InvalidTransition(self.status, "opened for checkout"));
                }
                stay(S::CheckoutOpen, format!("checkout session {session_id} opened"), None)
            }
            (s, E::CheckoutOpened { .. }) => return Err(DomainError::InvalidTransition(s, "opened for checkout")),

            (S::CheckoutOpen, E::CheckoutExpired { session_id }) if self.checkout_session_id() == Some(session_id) => {
                self.checkout.current_expired(session_id);
                stay(S::Assigned, format!("checkout session {session_id} expired; the patient may retry"), None)
            }
            (_, E::CheckoutExpired { .. }) => Step::Unchanged,

            (
                S::Assigned | S::CheckoutOpen | S::Processing,
                E::PaymentSucceeded { session_id, payment_intent, charged },
            ) if self.not_its_payment(charged.as_ref()).is_none() => {
                // A completed session is no longer open.
                self.checkout.forget(session_id);
                let payment_intent = payment_intent.clone();
                self.payment = Some(Payment { session_id: session_id.clone(), payment_intent, at, method: None });
                Step::Move {
                    to: S::Paid,
                    invoices: InvoiceEffect::MarkPaid,
                    reason: format!("payment succeeded on session {session_id}"),
                    amount: Some(self.total.amount),
                }
            }
            (_, E::PaymentSucceeded { session_id, payment_intent, charged }) => {
                self.keep_late_payment(session_id, payment_intent.as_ref(), charged.as_ref(), outcomes)?
            }

            // Only the action's current session moves it without money: a
            // session that is not its own cannot hold up or fail the action.
            (S::Assigned | S::CheckoutOpen, E::PaymentProcessing { session_id })
                if self.checkout_session_id() == Some(session_id) =>
            {
                self.checkout.forget(session_id);
                let reason = format!("payment on session {session_id} processing (delayed method)");
                stay(S::Processing, reason, Some(self.total.amount))
            }
            (_, E::PaymentProcessing { .. }) => Step::Unchanged,

            // From assigned/checkout_open too: the failure may overtake the
            // "completed, unpaid" event that would have moved us to processing.
            (S::Assigned | S::CheckoutOpen | S::Processing, E::PaymentFailed { session_id })
                if self.checkout_session_id() == Some(session_id) =>
            {
                let reason = format!("delayed payment on session {session_id} failed");
                Step::Move { to: S::Failed, invoices: InvoiceEffect::Release, reason, amount: None }
            }
            (_, E::PaymentFailed { .. }) => Step::Unchanged,

            (_, E::Refunded { payment_intent, refunds, .. }) if self.payment_intent_id() != Some(payment_intent) => {
                self.late_refunded(payment_intent, refunds, outcomes)
            }
            (S::Paid | S::PartiallyRefunded | S::Refunded, E::Refunded { refunds, attempt, .. }) => {
                self.own_refunded(refunds, *attempt, outcomes)
            }
            (_, E::Refunded { .. }) => Step::Unchanged,

            (_, E::Dispute { payment_intent, dispute }) => self.dispute_moved(payment_intent, dispute, outcomes),
            (_, E::Disputed) => self.dispute_flagged(outcomes),

            (_, E::MessageSent { kind, channel, .. }) => self.message_sent(*kind, *channel),

            (_, E::PaymentMethod { payment_intent, method }) => {
                let ours = self.payment_intent_id() == Some(payment_intent);
                let status = self.status;
                let Some(payment) = self.payment.as_mut().filter(|_| ours) else { return Ok(Step::Unchanged) };
                if payment.method.as_ref() == Some(method) {
                    return Ok(Step::Unchanged);
                }
                payment.method = Some(method.clone());
                // The history is the record, in English.
                let by = method.describe(&visitpay_words::en::WORDS.payment_method);
                stay(status, format!("paid by {by}"), None)
            }
        })
    }

    /// Why a payment is not this action's, from what Stripe said it charged.
    pub(crate) fn not_its_payment(&self, charged: Option<&Charged>) -> Option<String> {
        match charged {
            Some(c) => c.mismatch(&self.total, &self.terms.stripe_account_id),
            None => Some("Stripe did not say what it charged".into()),
        }
    }

    /// An action ends only once every session it may have open is closed at Stripe.
    fn check_closed(&self, closed: &SessionsClosed) -> Result<(), DomainError> {
        if self.checkout.closed_by(closed) {
            Ok(())
        } else {
            Err(DomainError::CheckoutChanged)
        }
    }
}

/// What a cancel or expiry's history says of the sessions it closed.
fn closed_note(closed: &SessionsClosed) -> String {
    match closed.expired.as_slice() {
        [] => String::new(),
        sessions => {
            let ids: Vec<&str> = sessions.iter().map(SessionId::as_str).collect();
            format!("; checkout session {} expired at Stripe", ids.join(", "))
        }
    }
}
