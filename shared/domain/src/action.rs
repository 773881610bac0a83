//! A payment action and its state machine. `Action::apply` is the one place
//! that decides every transition; callers persist what it returns.
//!
//! `assigned → checkout_open → (processing) → paid`; from `assigned` and
//! `checkout_open`: `cancelled`, `expired`; from `processing`: `failed`; from
//! `paid`: `partially_refunded`, `refunded`; `disputed` is a flag. States only
//! move forward: a late or repeated event is a no-op. A payment that lands on
//! an action that can no longer take it is recorded and flagged for refund.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::charge::{merge_dispute, merge_refunds, refunded_total, Charged, DisputeRecord, RefundRecord};
use super::{
    ActionId, ClinicId, ClinicTimeZone, Currency, DomainError, Invoice, InvoiceId, InvoiceStatus, LineItemText, Locale,
    Money, PatientId, ReceiptDetails, ReceiptIssuer, ServiceDate, StripeAccountId, Timestamp, UserId, VisitId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Assigned,
    CheckoutOpen,
    Processing,
    Paid,
    PartiallyRefunded,
    Refunded,
    Failed,
    Cancelled,
    Expired,
}

impl ActionStatus {
    /// A live action holds its invoices in `pending`.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Assigned | Self::CheckoutOpen | Self::Processing)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::CheckoutOpen => "checkout_open",
            Self::Processing => "processing",
            Self::Paid => "paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who or what caused a transition, as recorded in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
pub enum Actor {
    Staff(UserId),
    /// The patient, through their link.
    Patient,
    Stripe {
        event_id: String,
    },
    Reconcile,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff(u) => write!(f, "staff:{u}"),
            Actor::Patient => f.write_str("patient"),
            Actor::Stripe { event_id } => write!(f, "stripe:{event_id}"),
            Actor::Reconcile => f.write_str("reconcile"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ActionStatus>,
    pub to: ActionStatus,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// A Checkout Session opened or expired: the patient coming back to pay.
    /// Such entries are kept only at the start and the end of a long history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routine: bool,
}

/// What happened to an action, from staff, Stripe or the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ActionEvent {
    /// A Checkout Session was created for the reserved attempt.
    CheckoutOpened {
        session_id: String,
        url: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: Timestamp,
    },
    CheckoutExpired {
        session_id: String,
    },
    /// Checkout completed and the money is taken. It is the action's payment
    /// only if what Stripe says it charged (`charged`) is the action's.
    PaymentSucceeded {
        session_id: String,
        payment_intent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charged: Option<Charged>,
    },
    /// Checkout completed with a delayed method; the outcome comes later.
    PaymentProcessing {
        session_id: String,
    },
    PaymentFailed {
        session_id: String,
    },
    /// Staff cancel, after closing the action's sessions at Stripe.
    Cancel {
        #[serde(default)]
        closed: SessionsClosed,
    },
    /// The action's lifetime ended (or its clinic's account is gone), after
    /// closing its sessions at Stripe.
    Expire {
        #[serde(default)]
        closed: SessionsClosed,
    },
    /// Refunds of a payment as Stripe reported them (ours or made in
    /// Stripe's dashboard), each with its status. `attempt`: the staff
    /// refund attempt this answers, whose reservation it settles.
    Refunded {
        payment_intent: String,
        refunds: Vec<RefundRecord>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A dispute of a payment, as Stripe last reported it.
    Dispute {
        payment_intent: String,
        dispute: DisputeRecord,
    },
    /// A dispute opened, from signals queued before disputes were followed.
    Disputed,
    /// How the patient paid, as Stripe's charge reported it.
    PaymentMethod {
        payment_intent: String,
        method: super::PaymentMethod,
    },
}

/// What was done at Stripe before an action ended: the Checkout Sessions
/// expired (its current one among them), so none can still be paid. The state
/// machine refuses to end an action whose current session is not among them:
/// one opened meanwhile must be closed first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsClosed {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<String>,
    /// The attempts whose sessions are known closed: expired, or never
    /// created (Stripe's answer under the attempt's key was a refusal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<u32>,
    /// The clinic's Stripe account no longer lets us in: nothing could be expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account_disconnected: bool,
}

impl SessionsClosed {
    pub fn expired(sessions: Vec<String>) -> Self {
        SessionsClosed { expired: sessions, attempts: Vec::new(), account_disconnected: false }
    }
    pub fn disconnected() -> Self {
        SessionsClosed { expired: Vec::new(), attempts: Vec::new(), account_disconnected: true }
    }
    /// Whether this closes `session`: by its attempt, or by its id.
    fn covers(&self, session: &OpenSession) -> bool {
        self.account_disconnected
            || self.attempts.contains(&session.attempt)
            || session.session_id.as_ref().is_some_and(|id| self.expired.contains(id))
    }
}

impl ActionEvent {
    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ActionEvent::CheckoutOpened { .. } => "checkout_opened",
            ActionEvent::CheckoutExpired { .. } => "checkout_expired",
            ActionEvent::PaymentSucceeded { .. } => "payment_succeeded",
            ActionEvent::PaymentProcessing { .. } => "payment_processing",
            ActionEvent::PaymentFailed { .. } => "payment_failed",
            ActionEvent::Cancel { .. } => "cancel",
            ActionEvent::Expire { .. } => "expire",
            ActionEvent::Refunded { .. } => "refunded",
            ActionEvent::Dispute { .. } | ActionEvent::Disputed => "disputed",
            ActionEvent::PaymentMethod { .. } => "payment_method",
        }
    }
}

/// What a transition implies for the action's invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceEffect {
    Unchanged,
    /// Back to `selected` (cancelled, expired, failed).
    Release,
    MarkPaid,
    /// Owed again after a full refund.
    Reopen,
    /// Paid again: a refund that had reopened them failed. Only invoices
    /// still free and last paid by this action follow (`Invoice::follow`).
    Repay,
}

impl InvoiceEffect {
    /// The state an invoice held by the action must be in, and the state it
    /// moves to: the one definition of these moves (see `Invoice::follow`).
    pub fn invoice_move(self) -> Option<(InvoiceStatus, InvoiceStatus)> {
        match self {
            InvoiceEffect::Unchanged => None,
            InvoiceEffect::Release => Some((InvoiceStatus::Pending, InvoiceStatus::Selected)),
            InvoiceEffect::MarkPaid => Some((InvoiceStatus::Pending, InvoiceStatus::Paid)),
            InvoiceEffect::Reopen => Some((InvoiceStatus::Paid, InvoiceStatus::Unprocessed)),
            // From unprocessed or selected: see `Invoice::follow`.
            InvoiceEffect::Repay => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The action after the event; equal to the input when nothing changed.
    pub action: Action,
    pub invoices: InvoiceEffect,
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub visit_id: VisitId,
    pub patient_id: PatientId,
    pub label: String,
    pub locale: Locale,
    /// The invoices collected and their amounts when assigned (frozen: a
    /// pending invoice cannot change), so checkout needs no invoice read.
    pub lines: Vec<ActionLine>,
    pub amount: i64,
    pub currency: Currency,
    status: ActionStatus,
    /// The clinic's Stripe account, ttl and line-item policy when the action
    /// was assigned: the action is a commitment, settings changes do not move it.
    pub stripe_account_id: StripeAccountId,
    pub checkout_ttl_minutes: u32,
    pub line_item_text: LineItemText,
    /// Who issues the receipt and the zone its dates are in, fixed when the
    /// action was assigned: an issued receipt never changes. Absent on
    /// actions older than that (their receipt reads the clinic's settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_issuer: Option<ReceiptIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<ClinicTimeZone>,
    /// How many Checkout attempts were reserved; each has its own idempotency key.
    pub checkout_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    /// Every Checkout Session of this action that may still be open (bounded:
    /// `MAX_OPEN_SESSIONS`): what cancel, expiry and the sweep after a
    /// payment expire, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_sessions: Vec<OpenSession>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    /// What the refunds of the action's payment that moved money (pending
    /// included) add up to.
    pub refunded_amount: i64,
    /// How the patient paid (`charge.succeeded`), for the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<super::PaymentMethod>,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    /// A staff refund sent (or about to be sent) to Stripe and not yet
    /// answered: its number is its idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_attempt: Option<RefundAttempt>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refund_attempts: u32,
    /// Some dispute of its payment is open.
    pub disputed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disputes: Vec<DisputeRecord>,
    /// Payments Stripe took that this action could no longer take (or that
    /// were not its own: another amount, currency or account): kept here,
    /// visibly, until Stripe has refunded all of each.
    #[serde(default)]
    pub late_payments: Vec<LatePayment>,
    /// Invoices this action's payment was for that were collected again
    /// while a refund of it was under way, before that refund failed: the
    /// patient paid twice, and the action's payment must be refunded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collected_elsewhere: Vec<InvoiceId>,
    /// The clinic's Stripe account no longer lets visitpay in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account_disconnected: bool,
    /// When reconcile last asked Stripe about this action and learnt nothing new.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// Reconcile's checks of this action that failed in a row, and when it
    /// may try again: a failing action waits its turn behind healthy ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_checks: u32,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Timestamp>,
    /// SHA-256 of the patient link token; the token itself is never stored.
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub version: u64,
    /// Every transition, but for routine checkout churn beyond the first and
    /// last few (`compact_history`): bounded, so the item stays under
    /// DynamoDB's 400 KB over the longest life an action can have.
    pub history: Vec<HistoryEntry>,
    /// Routine entries dropped from the middle of `history`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Routine history (a Checkout Session opened, or expired back to
/// `assigned`) kept at the start and at the end; between them, only counted.
/// Every other transition (money moved, the action ended, a dispute, a late
/// payment) is always kept.
pub const ROUTINE_HISTORY_HEAD: usize = 2;
pub const ROUTINE_HISTORY_TAIL: usize = 20;

/// At most this many refunds of one payment through visitpay; with Stripe's
/// own (dashboard) refunds, the action's item stays far below 400 KB.
pub const MAX_REFUNDS: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLine {
    pub invoice_id: InvoiceId,
    pub amount: i64,
    /// What the receipt says of the invoice, as it was when assigned: a
    /// pending invoice cannot change, so this is what the payment paid for,
    /// and an issued receipt keeps saying it after the invoice is reopened
    /// and imported again. Absent on actions assigned before receipts were
    /// kept with them (their receipt reads the invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date: Option<ServiceDate>,
    #[serde(default, skip_serializing_if = "ReceiptDetails::is_empty")]
    pub receipt: ReceiptDetails,
}

impl ActionLine {
    /// A line with nothing kept for the receipt (tests, and old records).
    pub fn new(invoice_id: InvoiceId, amount: i64) -> Self {
        ActionLine { invoice_id, amount, service_date: None, receipt: ReceiptDetails::default() }
    }

    /// The line for an invoice, with what its receipt will say.
    pub fn of(invoice: &Invoice) -> Self {
        ActionLine {
            invoice_id: invoice.invoice_id.clone(),
            amount: invoice.amount,
            service_date: Some(invoice.service_date.clone()),
            receipt: invoice.receipt.clone(),
        }
    }
}

/// One Checkout attempt: reserved first (so concurrent clicks agree on its
/// idempotency key and parameters), then opened with Stripe's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub reserved_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A Checkout Session visitpay asked Stripe for on this action that may still
/// be open: recorded when its attempt is reserved, before Stripe is called,
/// and given its id once Stripe answers. An attempt whose answer was lost is
/// still found: its idempotency key gives back the same session for as long
/// as any session can be open (Stripe keeps a key's answer 24 hours; a
/// session lives at most 24). Closing sessions reads this list, never the
/// clinic's whole Stripe account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When Stripe ends it (the attempt's `expires_at`): no longer open after.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// At most this many sessions of one action may be open at once. A session
/// is replaced only once it is near its end, so a patient has one or two;
/// the bound keeps the item small whatever a client does.
pub const MAX_OPEN_SESSIONS: usize = 20;

/// Stripe's clock and ours may differ: a session is taken as open until
/// this long after its `expires_at`.
pub const SESSION_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// At most this many payments that are not the action's own are kept on it;
/// more are recorded apart (`StrayPayment`), each with an alarm.
pub const MAX_LATE_PAYMENTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatePayment {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    /// What Stripe said it charged (absent on records older than amounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Why it is not the action's payment.
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<RefundRecord>,
    /// Stripe has refunded all of it.
    #[serde(default)]
    pub refunded: bool,
}

impl LatePayment {
    /// Nothing of it left at the clinic: refunded at Stripe (pending refunds
    /// included), or taken back by a lost dispute (`withdrawn`). A record
    /// without an amount (older than amounts) counts any refund, as it did.
    fn settled(&self, withdrawn: i64) -> bool {
        let back = refunded_total(&self.refunds) + withdrawn;
        match self.amount {
            Some(amount) => back >= amount,
            None => back > 0 || (self.refunded && self.refunds.is_empty()),
        }
    }
}

/// A staff refund reserved on the action before Stripe is called, so that a
/// retry of the same refund sends the same idempotency key, and a different
/// refund a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAttempt {
    pub attempt: u32,
    pub amount: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub reserved_at: Timestamp,
}

/// How long an unanswered refund attempt may still be in flight (our Stripe
/// calls give up within half a minute). Within it, a repeat of the same
/// refund sends the same key; after it, Stripe's list of refunds says whether
/// the attempt happened, and a new refund gets a new key (Stripe replays a
/// key's first answer, a 500 included, for at least 24 hours).
pub const REFUND_ATTEMPT_IN_FLIGHT: time::Duration = time::Duration::seconds(60);

/// A reserved attempt is reused only this long: long enough for concurrent
/// clicks and quick retries, short enough that its expiry stays in Stripe's bounds.
pub const RESERVATION_REUSE: time::Duration = time::Duration::seconds(60);

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
    pub stripe_account_id: StripeAccountId,
    pub checkout_ttl_minutes: u32,
    pub line_item_text: LineItemText,
    /// Who issues the receipt, and the zone its dates are days of, as the
    /// clinic's settings said when the action was assigned.
    pub receipt_issuer: ReceiptIssuer,
    pub time_zone: ClinicTimeZone,
}

impl Action {
    pub fn assign(new: NewAction, at: Timestamp, actor: &Actor) -> Action {
        Action {
            clinic_id: new.clinic_id,
            action_id: new.action_id,
            visit_id: new.visit_id,
            patient_id: new.patient_id,
            label: new.label,
            locale: new.locale,
            lines: new.lines,
            amount: new.total.amount,
            currency: new.total.currency,
            status: ActionStatus::Assigned,
            stripe_account_id: new.stripe_account_id,
            checkout_ttl_minutes: new.checkout_ttl_minutes,
            line_item_text: new.line_item_text,
            receipt_issuer: Some(new.receipt_issuer),
            time_zone: Some(new.time_zone),
            checkout_attempts: 0,
            checkout: None,
            open_sessions: Vec::new(),
            paid_session_id: None,
            payment_intent_id: None,
            paid_at: None,
            refunded_amount: 0,
            payment_method: None,
            refunds: Vec::new(),
            refund_attempt: None,
            refund_attempts: 0,
            disputed: false,
            disputes: Vec::new(),
            late_payments: Vec::new(),
            collected_elsewhere: Vec::new(),
            account_disconnected: false,
            checked_at: None,
            failed_checks: 0,
            retry_after: None,
            token_hash: new.token_hash,
            created_at: at,
            expires_at: new.expires_at,
            version: 1,
            history: vec![HistoryEntry {
                at,
                actor: actor.to_string(),
                from: None,
                to: ActionStatus::Assigned,
                reason: "assigned in visit".into(),
                amount: Some(new.total.amount),
                routine: false,
            }],
            history_omitted: 0,
        }
    }

    /// Appends a transition, then drops the oldest routine entry past the
    /// head while more than head + tail routine entries are kept.
    fn record(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        let routine = self.history.iter().filter(|h| h.routine).count();
        if routine > ROUTINE_HISTORY_HEAD + ROUTINE_HISTORY_TAIL {
            let drop = self.history.iter().enumerate().filter(|(_, h)| h.routine).nth(ROUTINE_HISTORY_HEAD);
            if let Some((index, _)) = drop {
                self.history.remove(index);
                self.history_omitted += 1;
            }
        }
    }

    pub fn status(&self) -> ActionStatus {
        self.status
    }

    /// The one function that decides every transition.
    pub fn apply(&self, event: &ActionEvent, at: Timestamp, actor: &Actor) -> Result<Transition, DomainError> {
        use ActionEvent as E;
        use ActionStatus as S;
        let unchanged = || Ok(Transition { action: self.clone(), invoices: InvoiceEffect::Unchanged, changed: false });
        let mut next = self.clone();
        let (to, effect, reason, amount): (S, InvoiceEffect, String, Option<i64>) = match (self.status, event) {
            (S::Assigned | S::CheckoutOpen, E::Cancel { closed }) => {
                self.check_closed(closed)?;
                next.open_sessions.clear();
                (S::Cancelled, InvoiceEffect::Release, format!("cancelled by staff{}", closed_note(closed)), None)
            }
            (s, E::Cancel { .. }) => return Err(DomainError::InvalidTransition(s, "cancelled")),

            (S::Assigned | S::CheckoutOpen, E::Expire { closed }) => {
                self.check_closed(closed)?;
                next.open_sessions.clear();
                let reason = if closed.account_disconnected {
                    next.account_disconnected = true;
                    "the clinic's Stripe account is disconnected; the action can no longer be paid".to_owned()
                } else {
                    format!("action lifetime elapsed{}", closed_note(closed))
                };
                (S::Expired, InvoiceEffect::Release, reason, None)
            }
            (_, E::Expire { .. }) => return unchanged(),

            (S::Assigned | S::CheckoutOpen, E::CheckoutOpened { session_id, url, expires_at }) => {
                if self.checkout_session_id() == Some(session_id.as_str()) {
                    return unchanged();
                }
                let reserved =
                    self.checkout.as_ref().ok_or(DomainError::InvalidTransition(self.status, "opened for checkout"))?;
                next.checkout = Some(Checkout {
                    session_id: Some(session_id.clone()),
                    url: Some(url.clone()),
                    expires_at: *expires_at,
                    ..reserved.clone()
                });
                let slot = OpenSession {
                    attempt: reserved.attempt,
                    session_id: Some(session_id.clone()),
                    expires_at: *expires_at,
                };
                match next.open_sessions.iter_mut().find(|s| s.attempt == reserved.attempt) {
                    Some(recorded) => *recorded = slot,
                    None => next.open_sessions.push(slot),
                }
                (S::CheckoutOpen, InvoiceEffect::Unchanged, format!("checkout session {session_id} opened"), None)
            }
            (s, E::CheckoutOpened { .. }) => return Err(DomainError::InvalidTransition(s, "opened for checkout")),

            (S::CheckoutOpen, E::CheckoutExpired { session_id })
                if self.checkout_session_id() == Some(session_id.as_str()) =>
            {
                next.checkout = None;
                next.forget_session(session_id);
                (
                    S::Assigned,
                    InvoiceEffect::Unchanged,
                    format!("checkout session {session_id} expired; the patient may retry"),
                    None,
                )
            }
            (_, E::CheckoutExpired { .. }) => return unchanged(),

            (
                S::Assigned | S::CheckoutOpen | S::Processing,
                E::PaymentSucceeded { session_id, payment_intent, charged },
            ) if self.not_its_payment(charged.as_ref()).is_none() => {
                // A completed session is no longer open.
                next.forget_session(session_id);
                next.paid_session_id = Some(session_id.clone());
                next.payment_intent_id = payment_intent.clone();
                next.paid_at = Some(at);
                (
                    S::Paid,
                    InvoiceEffect::MarkPaid,
                    format!("payment succeeded on session {session_id}"),
                    Some(self.amount),
                )
            }
            (_, E::PaymentSucceeded { session_id, payment_intent, charged }) => {
                // Paid already by this very session: a duplicate. Anything else
                // is money this action cannot take (or not its own): kept, and flagged.
                let known = self.paid_session_id.as_deref() == Some(session_id.as_str())
                    || self.late_payments.iter().any(|p| &p.session_id == session_id);
                if known {
                    return unchanged();
                }
                let why = match self.not_its_payment(charged.as_ref()) {
                    Some(mismatch) => format!("not this action's payment: {mismatch}"),
                    None => format!("it arrived after the action was {}", self.status),
                };
                if self.late_payments.len() >= MAX_LATE_PAYMENTS {
                    return Err(DomainError::LatePaymentsFull(MAX_LATE_PAYMENTS));
                }
                next.forget_session(session_id);
                let charged = charged.clone().unwrap_or_default();
                next.late_payments.push(LatePayment {
                    session_id: session_id.clone(),
                    payment_intent: payment_intent.clone(),
                    amount: charged.amount,
                    currency: charged.currency,
                    account: charged.account,
                    reason: why.clone(),
                    refunds: Vec::new(),
                    refunded: false,
                });
                let reason = format!("payment on session {session_id} kept, refund needed: {why}");
                (self.status, InvoiceEffect::Unchanged, reason, charged.amount)
            }

            // Only the action's current session moves it without money: a
            // session that is not its own cannot hold up or fail the action.
            (S::Assigned | S::CheckoutOpen, E::PaymentProcessing { session_id })
                if self.checkout_session_id() == Some(session_id.as_str()) =>
            {
                next.forget_session(session_id);
                (
                    S::Processing,
                    InvoiceEffect::Unchanged,
                    format!("payment on session {session_id} processing (delayed method)"),
                    Some(self.amount),
                )
            }
            (_, E::PaymentProcessing { .. }) => return unchanged(),

            // From assigned/checkout_open too: the failure may overtake the
            // "completed, unpaid" event that would have moved us to processing.
            (S::Assigned | S::CheckoutOpen | S::Processing, E::PaymentFailed { session_id })
                if self.checkout_session_id() == Some(session_id.as_str()) =>
            {
                (S::Failed, InvoiceEffect::Release, format!("delayed payment on session {session_id} failed"), None)
            }
            (_, E::PaymentFailed { .. }) => return unchanged(),

            // Refunds of a late payment: it stays flagged until all of it is refunded.
            (_, E::Refunded { payment_intent, refunds, .. })
                if self.payment_intent_id.as_deref() != Some(payment_intent.as_str()) =>
            {
                let withdrawn = self.withdrawn_from(payment_intent);
                let Some(late) = next
                    .late_payments
                    .iter_mut()
                    .find(|p| p.payment_intent.as_deref() == Some(payment_intent.as_str()))
                else {
                    return unchanged();
                };
                let merged = merge_refunds(&mut late.refunds, refunds);
                let settled = late.settled(withdrawn);
                if merged.is_empty() && late.refunded == settled {
                    return unchanged();
                }
                late.refunded = settled;
                let back = refunded_total(&late.refunds);
                let reason = match (settled, merged.failures().next()) {
                    (_, Some(failed)) => {
                        format!(
                            "refund {} of late payment {payment_intent} {}",
                            failed.refund_id,
                            failed.status.as_str()
                        )
                    }
                    (true, None) => format!("late payment {payment_intent} refunded"),
                    (false, None) => format!("late payment {payment_intent}: {back} refunded so far"),
                };
                (self.status, InvoiceEffect::Unchanged, reason, Some(back))
            }
            (S::Paid | S::PartiallyRefunded | S::Refunded, E::Refunded { refunds, attempt, .. }) => {
                let merged = merge_refunds(&mut next.refunds, refunds);
                let settles = attempt.is_some() && self.refund_attempt.as_ref().map(|a| a.attempt) == *attempt;
                if settles {
                    next.refund_attempt = None;
                }
                if merged.is_empty() {
                    if !settles {
                        return unchanged();
                    }
                    // Nothing new at Stripe, but the attempt is answered: no history.
                    next.version += 1;
                    return Ok(Transition { action: next, invoices: InvoiceEffect::Unchanged, changed: true });
                }
                let total = refunded_total(&next.refunds).min(self.amount);
                next.refunded_amount = total;
                let to = match total {
                    0 => S::Paid,
                    t if t >= self.amount => S::Refunded,
                    _ => S::PartiallyRefunded,
                };
                let effect = match (self.status == S::Refunded, to == S::Refunded) {
                    (false, true) => InvoiceEffect::Reopen,
                    (true, false) => InvoiceEffect::Repay,
                    _ => InvoiceEffect::Unchanged,
                };
                (to, effect, refunds_reason(&merged, total, self.amount), Some(total))
            }
            (_, E::Refunded { .. }) => return unchanged(),

            (_, E::Dispute { payment_intent, dispute }) => {
                let mut seen = dispute.clone();
                if seen.payment_intent.is_empty() {
                    seen.payment_intent = payment_intent.clone();
                }
                if !merge_dispute(&mut next.disputes, &seen) {
                    return unchanged();
                }
                next.disputed = next.disputes.iter().any(|d| !d.status.is_closed());
                // A lost dispute of a late payment gave that money back too.
                let withdrawn = next.withdrawn_from(payment_intent);
                for late in next.late_payments.iter_mut().filter(|p| p.payment_intent.as_ref() == Some(payment_intent))
                {
                    late.refunded = late.settled(withdrawn);
                }
                let d = next.disputes.iter().find(|d| d.dispute_id == seen.dispute_id).expect("merged");
                let reason = match d.outcome() {
                    Some("lost") => format!("dispute {} lost: {} withdrawn", d.dispute_id, d.withdrawn()),
                    Some(_) => format!("dispute {} closed in the clinic's favour", d.dispute_id),
                    None if d.funds_withdrawn => {
                        format!("dispute {}: {} withdrawn pending the outcome", d.dispute_id, d.amount)
                    }
                    None => format!("payment disputed ({}): {}", d.dispute_id, d.status.as_str()),
                };
                (self.status, InvoiceEffect::Unchanged, reason, Some(d.amount))
            }
            (_, E::PaymentMethod { payment_intent, method }) => {
                let ours = self.payment_intent_id.as_deref() == Some(payment_intent.as_str());
                if !ours || self.payment_method.as_ref() == Some(method) {
                    return unchanged();
                }
                next.payment_method = Some(method.clone());
                (self.status, InvoiceEffect::Unchanged, format!("paid by {}", method.describe(false)), None)
            }
            (_, E::Disputed) => {
                if self.disputed {
                    return unchanged();
                }
                next.disputed = true;
                (self.status, InvoiceEffect::Unchanged, "payment disputed".into(), None)
            }
        };
        let routine = matches!(event, E::CheckoutOpened { .. } | E::CheckoutExpired { .. });
        next.record(HistoryEntry {
            at,
            actor: actor.to_string(),
            from: Some(self.status),
            to,
            reason,
            amount,
            routine,
        });
        next.status = to;
        next.version += 1;
        Ok(Transition { action: next, invoices: effect, changed: true })
    }

    /// What disputes took back of a payment of this action.
    fn withdrawn_from(&self, payment_intent: &str) -> i64 {
        self.disputes.iter().filter(|d| d.payment_intent == payment_intent).map(|d| d.withdrawn()).sum()
    }

    /// A dispute stops refunds of the action's payment while it is more than
    /// an inquiry and not won (Stripe: "has been charged back; cannot issue a
    /// refund"); a lost one took the money already.
    pub fn refunds_blocked_by_dispute(&self) -> bool {
        let own = self.payment_intent_id.as_deref().unwrap_or_default();
        self.disputes.iter().any(|d| d.payment_intent == own && d.blocks_refunds())
    }

    /// Why a payment is not this action's, from what Stripe said it charged.
    fn not_its_payment(&self, charged: Option<&Charged>) -> Option<String> {
        match charged {
            Some(c) => c.mismatch(self.amount, self.currency, &self.stripe_account_id),
            None => Some("Stripe did not say what it charged".into()),
        }
    }

    /// An action ends only once its current session and every other session
    /// it recorded (all that may still be open) are closed at Stripe.
    fn check_closed(&self, closed: &SessionsClosed) -> Result<(), DomainError> {
        let current_open = self
            .checkout_session_id()
            .is_some_and(|current| !closed.account_disconnected && !closed.expired.iter().any(|s| s == current));
        let recorded_open = self.open_sessions.iter().any(|s| !closed.covers(s));
        if current_open || recorded_open {
            return Err(DomainError::CheckoutChanged);
        }
        Ok(())
    }

    /// A session Stripe reports expired or completed is no longer open.
    fn forget_session(&mut self, session_id: &str) {
        self.open_sessions.retain(|s| s.session_id.as_deref() != Some(session_id));
    }

    /// The sessions of this action that may still be open at `now`: each it
    /// recorded, not yet past its end at Stripe. (An action recorded before
    /// the list existed has at most its current session.)
    pub fn sessions_to_close(&self, now: Timestamp) -> Vec<OpenSession> {
        let mut open: Vec<OpenSession> =
            self.open_sessions.iter().filter(|s| s.expires_at + SESSION_CLOCK_SKEW > now).cloned().collect();
        // Recorded before `open_sessions` existed: the current session of an
        // action still open to payment.
        let open_to_payment = matches!(self.status, ActionStatus::Assigned | ActionStatus::CheckoutOpen);
        if let (true, Some(Checkout { attempt, session_id: Some(id), expires_at, .. })) =
            (open_to_payment, &self.checkout)
        {
            if !self.open_sessions.iter().any(|s| s.attempt == *attempt) && *expires_at + SESSION_CLOCK_SKEW > now {
                open.push(OpenSession { attempt: *attempt, session_id: Some(id.clone()), expires_at: *expires_at });
            }
        }
        open
    }

    /// The action once its other sessions are known closed (after a payment):
    /// bookkeeping, nothing a person sees.
    pub fn sessions_closed(&self, closed: &SessionsClosed) -> Option<Action> {
        let mut next = self.clone();
        next.open_sessions.retain(|s| !closed.covers(s));
        (next.open_sessions.len() != self.open_sessions.len()).then(|| Action { version: self.version + 1, ..next })
    }

    pub fn money(&self) -> Money {
        Money { amount: self.amount, currency: self.currency }
    }

    pub fn invoice_ids(&self) -> impl Iterator<Item = &InvoiceId> {
        self.lines.iter().map(|l| &l.invoice_id)
    }

    pub fn checkout_session_id(&self) -> Option<&str> {
        self.checkout.as_ref().and_then(|c| c.session_id.as_deref())
    }

    /// Money Stripe holds that must go back: a payment that was not the
    /// action's to take, or the action's own once its invoices were
    /// collected again elsewhere.
    pub fn refund_needed(&self) -> bool {
        self.late_payments.iter().any(|p| !p.refunded)
            || (!self.collected_elsewhere.is_empty() && self.refundable() > 0)
    }

    /// What may still be refunded of the action's own payment.
    pub fn refundable(&self) -> i64 {
        match self.status {
            ActionStatus::Paid | ActionStatus::PartiallyRefunded => self.amount - self.refunded_amount,
            _ => 0,
        }
    }

    /// What the clinic keeps of the action's own payment: paid, less what was
    /// refunded (or is on its way back) and what a lost dispute took.
    pub fn kept_amount(&self) -> i64 {
        if self.payment_intent_id.is_none()
            || !matches!(self.status, ActionStatus::Paid | ActionStatus::PartiallyRefunded | ActionStatus::Refunded)
        {
            return 0;
        }
        let own = self.payment_intent_id.as_deref().unwrap_or_default();
        let withdrawn: i64 = self.disputes.iter().filter(|d| d.payment_intent == own).map(|d| d.withdrawn()).sum();
        self.amount - self.refunded_amount - withdrawn
    }

    /// When the action last changed or was last checked by reconcile, or,
    /// after failed checks, when it may be checked again: the order reconcile
    /// takes actions waiting on Stripe in.
    pub fn last_touched(&self) -> Timestamp {
        let changed = self.history.last().map_or(self.created_at, |h| h.at);
        [self.checked_at, self.retry_after].into_iter().flatten().fold(changed, Timestamp::max)
    }

    /// When reconcile should expire the action: the end of its lifetime, or
    /// later while failed checks back it off.
    pub fn lifetime_due(&self) -> Timestamp {
        self.retry_after.map_or(self.expires_at, |r| r.max(self.expires_at))
    }

    /// Reconcile asked Stripe and learnt nothing new: not again before a while.
    pub fn mark_checked(&self, now: Timestamp) -> Action {
        Action { checked_at: Some(now), failed_checks: 0, retry_after: None, version: self.version + 1, ..self.clone() }
    }

    /// Reconcile could not ask Stripe about this action: it tries again
    /// after a backoff that doubles with each failure in a row (from `base`,
    /// at most six hours), behind the actions that are due.
    pub fn check_failed(&self, now: Timestamp, base: time::Duration) -> Action {
        let failed = self.failed_checks.saturating_add(1);
        let backoff = (base * 2i32.pow(failed.min(10) - 1)).min(time::Duration::hours(6));
        Action {
            checked_at: Some(now),
            failed_checks: failed,
            retry_after: Some(now + backoff),
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// Invoices of this action collected again elsewhere while a refund of it
    /// was under way: its payment must now go back in full.
    pub fn collected_elsewhere(&self, invoices: Vec<InvoiceId>) -> Action {
        let mut next = self.clone();
        for id in invoices {
            if !next.collected_elsewhere.contains(&id) {
                next.collected_elsewhere.push(id);
            }
        }
        next
    }

    /// The staff refund attempt to send again with its key: the same amount,
    /// possibly still in flight.
    pub fn usable_refund_attempt(&self, amount: i64, now: Timestamp) -> Option<&RefundAttempt> {
        self.refund_attempt.as_ref().filter(|a| a.amount == amount && now - a.reserved_at < REFUND_ATTEMPT_IN_FLIGHT)
    }

    /// Reserves the next staff refund attempt for `amount`.
    pub fn reserve_refund(&self, amount: i64, now: Timestamp) -> Action {
        let mut next = self.clone();
        next.refund_attempts += 1;
        next.refund_attempt = Some(RefundAttempt { attempt: next.refund_attempts, amount, reserved_at: now });
        next.version += 1;
        next
    }

    /// Forgets an attempt Stripe answered with an error (its key is spent:
    /// Stripe would replay that error) or that never reached Stripe.
    pub fn drop_refund_attempt(&self, attempt: u32) -> Option<Action> {
        (self.refund_attempt.as_ref().map(|a| a.attempt) == Some(attempt)).then(|| Action {
            refund_attempt: None,
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// Reserves a Checkout attempt: the next attempt number (its idempotency
    /// key) and its expiry, fixed before Stripe is called so that concurrent
    /// clicks and retries send Stripe the very same request.
    pub fn reserve_checkout(&self, now: Timestamp) -> Result<Action, DomainError> {
        if !matches!(self.status, ActionStatus::Assigned | ActionStatus::CheckoutOpen) {
            return Err(DomainError::InvalidTransition(self.status, "opened for checkout"));
        }
        // Stripe accepts 30 min to 24 h from its own clock; keep two minutes
        // of margin each side for retries and clock skew.
        let minutes = i64::from(self.checkout_ttl_minutes).clamp(32, 24 * 60 - 2);
        let mut next = self.clone();
        // Sessions past their end at Stripe are no longer open.
        next.open_sessions.retain(|s| s.expires_at + SESSION_CLOCK_SKEW > now);
        if next.open_sessions.len() >= MAX_OPEN_SESSIONS {
            return Err(DomainError::TooManyCheckoutSessions(MAX_OPEN_SESSIONS));
        }
        next.checkout_attempts += 1;
        let expires_at = now + time::Duration::minutes(minutes);
        next.checkout = Some(Checkout {
            attempt: next.checkout_attempts,
            reserved_at: now,
            expires_at,
            session_id: None,
            url: None,
        });
        // Recorded before Stripe is called: whatever becomes of its answer,
        // the attempt's key finds its session again.
        next.open_sessions.push(OpenSession { attempt: next.checkout_attempts, session_id: None, expires_at });
        next.version += 1;
        Ok(next)
    }

    /// The reserved attempt to (re)send to Stripe, if it is recent enough.
    pub fn usable_reservation(&self, now: Timestamp) -> Option<&Checkout> {
        self.checkout.as_ref().filter(|c| c.session_id.is_none() && now - c.reserved_at < RESERVATION_REUSE)
    }

    /// Forgets a reserved Checkout attempt Stripe refused: Stripe keeps that
    /// answer under its key, so the next click must reserve a new attempt.
    pub fn drop_reservation(&self, attempt: u32) -> Option<Action> {
        let reserved = self.checkout.as_ref().is_some_and(|c| c.attempt == attempt && c.session_id.is_none());
        reserved.then(|| {
            let mut next = Action { checkout: None, version: self.version + 1, ..self.clone() };
            // Refused: Stripe made no session for it.
            next.open_sessions.retain(|s| s.attempt != attempt);
            next
        })
    }
}

/// What a cancel or expiry's history says of the sessions it closed.
fn closed_note(closed: &SessionsClosed) -> String {
    match closed.expired.as_slice() {
        [] => String::new(),
        sessions => format!("; checkout session {} expired at Stripe", sessions.join(", ")),
    }
}

/// What a history entry says of refunds that moved.
fn refunds_reason(merged: &super::charge::RefundsMerged, total: i64, amount: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    for r in merged.added.iter().chain(&merged.moved) {
        parts.push(format!("refund {} of {} {}", r.refund_id, r.amount, r.status.as_str()));
    }
    let state = if total >= amount {
        "fully refunded; the invoices are owed again".to_owned()
    } else if total == 0 {
        "nothing refunded; the invoices are paid".to_owned()
    } else {
        format!("refunded {total} of {amount}")
    };
    format!("{}; {state}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{DisputeStatus, RefundState};

    #[test]
    fn paid_path_records_history() {
        let a = reserved(&action());
        let open = step(&a, opened("cs_1"));
        assert_eq!(open.action.status(), ActionStatus::CheckoutOpen);
        assert_eq!(open.action.checkout_session_id(), Some("cs_1"));
        let paid = step(&open.action, paid("cs_1"));
        assert_eq!((paid.action.status(), paid.invoices), (ActionStatus::Paid, InvoiceEffect::MarkPaid));
        assert_eq!((paid.action.paid_at, paid.action.payment_intent_id.as_deref()), (Some(t(10)), Some("pi_cs_1")));
        let h = &paid.action.history;
        assert_eq!(h.len(), 3);
        assert_eq!(
            (h[2].from, h[2].to, h[2].actor.as_str()),
            (Some(ActionStatus::CheckoutOpen), ActionStatus::Paid, "stripe:evt_1")
        );
        assert_eq!(paid.action.version, 4, "assign, reserve, open, pay");
    }

    #[test]
    fn opening_needs_a_reservation_and_reservations_have_bounded_expiry() {
        assert!(action().apply(&opened("cs_1"), t(1), &stripe()).is_err());
        let mut short = action();
        short.checkout_ttl_minutes = 30;
        let r = short.reserve_checkout(t(0)).unwrap();
        let c = r.checkout.as_ref().unwrap();
        assert_eq!((c.attempt, c.expires_at), (1, t(0) + time::Duration::minutes(32)));
        assert!(r.usable_reservation(t(59)).is_some());
        assert!(r.usable_reservation(t(60)).is_none(), "stale reservations are not reused");
        let opened = step(&r, opened("cs_1")).action;
        assert!(opened.usable_reservation(t(1)).is_none(), "an opened attempt is not a reservation");
        assert_eq!(opened.reserve_checkout(t(100)).unwrap().checkout.unwrap().attempt, 2);
        let paid_action = step(&opened, paid("cs_1")).action;
        assert!(paid_action.reserve_checkout(t(100)).is_err());
    }

    #[test]
    fn duplicates_and_late_events_change_nothing() {
        let paid = step(&step(&reserved(&action()), opened("cs_1")).action, paid("cs_1")).action;
        for e in [
            paid_event("cs_1"),
            ActionEvent::PaymentProcessing { session_id: "cs_1".into() },
            ActionEvent::PaymentFailed { session_id: "cs_1".into() },
            ActionEvent::CheckoutExpired { session_id: "cs_1".into() },
            opened("cs_1"),
            ActionEvent::Expire { closed: SessionsClosed::default() },
        ] {
            let tr = paid.apply(&e, t(10), &stripe());
            let unchanged = tr.as_ref().map(|tr| !tr.changed && tr.action == paid).unwrap_or(true);
            assert!(unchanged, "{e:?}");
        }
        assert!(paid.apply(&cancel(), t(1), &stripe()).is_err());
    }

    fn paid_event(sid: &str) -> ActionEvent {
        paid(sid)
    }

    #[test]
    fn cancel_releases_and_cannot_repeat() {
        let c = step(&action(), cancel());
        assert_eq!((c.action.status(), c.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
        assert!(matches!(
            c.action.apply(&cancel(), t(1), &stripe()),
            Err(DomainError::InvalidTransition(ActionStatus::Cancelled, "cancelled"))
        ));
    }

    #[test]
    fn a_payment_the_action_cannot_take_is_kept_and_flagged() {
        let c = step(&action(), cancel()).action;
        let late = step(&c, paid("cs_9"));
        assert!(late.changed && late.action.refund_needed());
        assert_eq!(late.action.late_payments[0].payment_intent.as_deref(), Some("pi_cs_9"));
        assert_eq!((late.action.status(), late.invoices), (ActionStatus::Cancelled, InvoiceEffect::Unchanged));
        assert!(!step(&late.action, paid("cs_9")).changed, "the same late payment is recorded once");
        let refunded = step(&late.action, refunded("pi_cs_9", &[("re_9", 4500, RefundState::Succeeded)]));
        assert!(refunded.changed && !refunded.action.refund_needed());
        assert_eq!((refunded.action.status(), refunded.action.refunded_amount), (ActionStatus::Cancelled, 0));

        // A second session paid on an action already paid: a double payment, flagged.
        let paid_once = step(&step(&reserved(&action()), opened("cs_1")).action, paid("cs_1")).action;
        let twice = step(&paid_once, paid("cs_2"));
        assert!(twice.changed && twice.action.refund_needed());
        assert_eq!(twice.action.status(), ActionStatus::Paid);
    }

    #[test]
    fn session_expiry_returns_to_assigned_only_for_the_current_session() {
        let open = step(&reserved(&action()), opened("cs_1")).action;
        assert!(!step(&open, ActionEvent::CheckoutExpired { session_id: "cs_0".into() }).changed);
        let back = step(&open, ActionEvent::CheckoutExpired { session_id: "cs_1".into() }).action;
        assert_eq!((back.status(), back.checkout_session_id()), (ActionStatus::Assigned, None));
        let again = step(&back.reserve_checkout(t(20)).unwrap(), opened("cs_2")).action;
        assert_eq!((again.status(), again.checkout_attempts), (ActionStatus::CheckoutOpen, 2));
    }

    #[test]
    fn delayed_methods_end_paid_or_failed() {
        let proc_ = step(
            &step(&reserved(&action()), opened("cs_1")).action,
            ActionEvent::PaymentProcessing { session_id: "cs_1".into() },
        )
        .action;
        assert_eq!(proc_.status(), ActionStatus::Processing);
        assert!(proc_.apply(&cancel(), t(1), &stripe()).is_err());
        let failed = step(&proc_, ActionEvent::PaymentFailed { session_id: "cs_1".into() });
        assert_eq!((failed.action.status(), failed.invoices), (ActionStatus::Failed, InvoiceEffect::Release));
        assert_eq!(step(&proc_, paid("cs_1")).action.status(), ActionStatus::Paid);

        // Out of order: the failure overtakes "completed, unpaid"; the late one changes nothing.
        let open = step(&reserved(&action()), opened("cs_1")).action;
        let failed_first = step(&open, ActionEvent::PaymentFailed { session_id: "cs_1".into() }).action;
        assert_eq!(failed_first.status(), ActionStatus::Failed);
        assert!(!step(&failed_first, ActionEvent::PaymentProcessing { session_id: "cs_1".into() }).changed);
    }

    #[test]
    fn history_keeps_every_money_movement_and_only_the_first_and_last_routine_entries() {
        let mut a = reserved(&action());
        for n in 0..100 {
            let open = step(&a, opened(&format!("cs_{n}"))).action;
            let back = step(&open, ActionEvent::CheckoutExpired { session_id: format!("cs_{n}") }).action;
            a = back.reserve_checkout(t(5)).unwrap();
        }
        let paid = step(&step(&a, opened("cs_last")).action, paid("cs_last")).action;
        let routine: Vec<&HistoryEntry> = paid.history.iter().filter(|h| h.routine).collect();
        assert_eq!(routine.len(), ROUTINE_HISTORY_HEAD + ROUTINE_HISTORY_TAIL);
        assert_eq!(
            paid.history_omitted as usize,
            201 - routine.len(),
            "100 sessions opened and expired, one more opened"
        );
        assert!(routine[0].reason.contains("cs_0 opened"), "the first session stays");
        assert!(routine.last().unwrap().reason.contains("cs_last opened"), "the last session stays");
        assert_eq!(paid.history[0].to, ActionStatus::Assigned, "the assignment stays first");
        assert_eq!(paid.history.last().unwrap().to, ActionStatus::Paid, "money is never left out");
        assert_eq!(paid.history.len(), 1 + routine.len() + 1);
    }

    #[test]
    fn refunds_only_move_forward() {
        use RefundState::*;
        let paid = step(&action(), paid("cs")).action;
        assert_eq!(paid.refundable(), 4500);
        let part = step(&paid, refunded("pi_cs", &[("re_1", 1000, Succeeded)])).action;
        assert_eq!(
            (part.status(), part.refunded_amount, part.refundable()),
            (ActionStatus::PartiallyRefunded, 1000, 3500)
        );
        assert!(!step(&part, refunded("pi_cs", &[("re_1", 1000, Succeeded)])).changed, "the same refund, seen again");
        assert!(!step(&part, refunded("pi_cs", &[("re_1", 1000, Pending)])).changed, "an older status is stale");
        let dashboard = step(&part, refunded("pi_cs", &[("re_dash", 500, Succeeded)])).action;
        assert_eq!((dashboard.refunded_amount, dashboard.refunds.len()), (1500, 2));
        let full = step(&dashboard, refunded("pi_cs", &[("re_2", 3000, Succeeded)]));
        assert_eq!((full.action.status(), full.invoices), (ActionStatus::Refunded, InvoiceEffect::Reopen));
    }

    /// Stripe: a refund may be `pending`, then `succeeded`, `failed` or
    /// `canceled` (refund.updated / refund.failed). A refund that fails gives
    /// the money back to the clinic: the action is paid again, its invoices too.
    #[test]
    fn a_failed_refund_puts_the_action_and_its_invoices_back() {
        use RefundState::*;
        let paid = step(&action(), paid("cs")).action;
        let pending = step(&paid, refunded("pi_cs", &[("re_1", 4500, Pending)]));
        assert_eq!(
            (pending.action.status(), pending.action.refunded_amount, pending.invoices),
            (ActionStatus::Refunded, 4500, InvoiceEffect::Reopen),
            "a pending refund is money on its way back"
        );
        let failed = step(&pending.action, refunded("pi_cs", &[("re_1", 4500, Failed)]));
        assert_eq!(
            (failed.action.status(), failed.action.refunded_amount, failed.invoices),
            (ActionStatus::Paid, 0, InvoiceEffect::Repay)
        );
        assert!(failed.action.history.last().unwrap().reason.contains("re_1 of 4500 failed"));
        assert_eq!(failed.action.refundable(), 4500, "it may be refunded again");
        for stale in [Pending, Succeeded] {
            assert!(
                !step(&failed.action, refunded("pi_cs", &[("re_1", 4500, stale)])).changed,
                "{stale:?} after failed"
            );
        }
        // A partial refund that is canceled: back to paid, nothing for the invoices.
        let part = step(&paid, refunded("pi_cs", &[("re_2", 1000, Pending)])).action;
        let canceled = step(&part, refunded("pi_cs", &[("re_2", 1000, Canceled)]));
        assert_eq!((canceled.action.status(), canceled.invoices), (ActionStatus::Paid, InvoiceEffect::Unchanged));
    }

    #[test]
    fn a_staff_refund_attempt_is_settled_by_its_answer() {
        let paid = step(&action(), paid("cs")).action;
        let reserved = paid.reserve_refund(1000, t(20));
        let attempt = reserved.refund_attempt.clone().unwrap();
        assert_eq!((attempt.attempt, attempt.amount), (1, 1000));
        assert!(reserved.usable_refund_attempt(1000, t(30)).is_some(), "a retry of the same refund");
        assert!(reserved.usable_refund_attempt(900, t(30)).is_none(), "another amount is another refund");
        assert!(reserved.usable_refund_attempt(1000, t(20) + REFUND_ATTEMPT_IN_FLIGHT).is_none());
        let answered = ActionEvent::Refunded {
            payment_intent: "pi_cs".into(),
            refunds: vec![RefundRecord::new("re_1", 1000, RefundState::Pending)],
            attempt: Some(1),
        };
        let settled = step(&reserved, answered.clone()).action;
        assert_eq!((settled.refund_attempt.as_ref(), settled.refunded_amount), (None, 1000));
        assert!(!step(&settled, answered).changed, "the same answer twice");
        let next = settled.reserve_refund(500, t(40));
        assert_eq!(next.refund_attempt.as_ref().unwrap().attempt, 2, "a new key for the next refund");
        assert_eq!(next.drop_refund_attempt(2).unwrap().refund_attempt, None);
        assert!(next.drop_refund_attempt(1).is_none(), "only the attempt named");
    }

    /// A payment counts only if its account, mode, amount and currency are the
    /// action's: a 1-cent session carrying the action's metadata pays nothing.
    #[test]
    fn a_payment_that_is_not_the_actions_own_is_kept_and_flagged() {
        let open = step(&reserved(&action()), opened("cs_1")).action;
        let cent = ActionEvent::PaymentSucceeded {
            session_id: "cs_x".into(),
            payment_intent: Some("pi_x".into()),
            charged: charged(1),
        };
        let flagged = step(&open, cent);
        assert_eq!((flagged.action.status(), flagged.invoices), (ActionStatus::CheckoutOpen, InvoiceEffect::Unchanged));
        let late = &flagged.action.late_payments[0];
        assert_eq!((late.amount, late.reason.contains("it is for 1, not 4500")), (Some(1), true));
        assert!(flagged.action.refund_needed());
        let unstated = ActionEvent::PaymentSucceeded { session_id: "cs_y".into(), payment_intent: None, charged: None };
        assert_eq!(step(&open, unstated).action.status(), ActionStatus::CheckoutOpen, "unstated charges pay nothing");
        // The real payment still lands.
        assert_eq!(step(&flagged.action, paid("cs_1")).action.status(), ActionStatus::Paid);
        // Only the current session moves an action without money.
        assert!(!step(&open, ActionEvent::PaymentProcessing { session_id: "cs_x".into() }).changed);
        assert!(!step(&open, ActionEvent::PaymentFailed { session_id: "cs_x".into() }).changed);
    }

    #[test]
    fn a_late_payment_is_flagged_until_all_of_it_is_refunded() {
        use RefundState::*;
        let cancelled = step(&action(), cancel()).action;
        let late = step(&cancelled, paid("cs_9")).action;
        let some = step(&late, refunded("pi_cs_9", &[("re_1", 100, Succeeded)])).action;
        assert!(some.refund_needed(), "1.00 of 45.00 refunded is not a refund");
        let rest = step(&some, refunded("pi_cs_9", &[("re_2", 4400, Pending)])).action;
        assert!(!rest.refund_needed());
        let failed = step(&rest, refunded("pi_cs_9", &[("re_2", 4400, Failed)])).action;
        assert!(failed.refund_needed(), "a failed refund leaves it owed back");
        assert_eq!(failed.status(), ActionStatus::Cancelled);
    }

    #[test]
    fn an_action_ends_only_once_its_current_session_is_closed() {
        let open = step(&reserved(&action()), opened("cs_1")).action;
        for end in [
            ActionEvent::Cancel { closed: SessionsClosed::default() },
            ActionEvent::Expire { closed: SessionsClosed::expired(vec!["cs_0".into()]) },
        ] {
            assert_eq!(open.apply(&end, t(20), &stripe()).unwrap_err(), DomainError::CheckoutChanged, "{end:?}");
        }
        let closed = SessionsClosed::expired(vec!["cs_0".into(), "cs_1".into()]);
        let cancelled = step(&open, ActionEvent::Cancel { closed });
        assert_eq!((cancelled.action.status(), cancelled.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
        assert!(cancelled.action.history.last().unwrap().reason.contains("cs_0, cs_1 expired at Stripe"));
        let gone = step(&open, ActionEvent::Expire { closed: SessionsClosed::disconnected() }).action;
        assert_eq!((gone.status(), gone.account_disconnected), (ActionStatus::Expired, true));
    }

    #[test]
    fn a_dispute_has_a_life_and_a_lost_one_takes_the_money() {
        let paid = step(&action(), paid("cs")).action;
        let dispute = |status: DisputeStatus, withdrawn: bool| ActionEvent::Dispute {
            payment_intent: "pi_cs".into(),
            dispute: DisputeRecord {
                dispute_id: "dp_1".into(),
                payment_intent: "pi_cs".into(),
                amount: 4500,
                status,
                funds_withdrawn: withdrawn,
                funds_reinstated: false,
            },
        };
        let open = step(&paid, dispute(DisputeStatus::NeedsResponse, false)).action;
        assert!(open.disputed);
        assert_eq!(open.kept_amount(), 4500);
        let withdrawn = step(&open, dispute(DisputeStatus::NeedsResponse, true)).action;
        assert_eq!(withdrawn.kept_amount(), 0, "Stripe took the disputed amount");
        let lost = step(&withdrawn, dispute(DisputeStatus::Lost, false)).action;
        assert!(!lost.disputed, "closed");
        assert_eq!(
            (lost.disputes[0].outcome(), lost.kept_amount(), lost.status()),
            (Some("lost"), 0, ActionStatus::Paid)
        );
        assert!(lost.history.last().unwrap().reason.contains("lost: 4500 withdrawn"));
        assert!(!step(&lost, dispute(DisputeStatus::UnderReview, false)).changed, "a stale update");
    }

    #[test]
    fn a_failing_check_waits_behind_healthy_ones() {
        let open = step(&reserved(&action()), opened("cs_1")).action;
        let base = time::Duration::minutes(5);
        let once = open.check_failed(t(100), base);
        let twice = once.check_failed(t(200), base);
        assert_eq!((once.failed_checks, once.retry_after), (1, Some(t(100) + base)));
        assert_eq!(twice.retry_after, Some(t(200) + base * 2), "the backoff doubles");
        assert!(twice.last_touched() > open.last_touched());
        assert_eq!(twice.lifetime_due(), t(3600), "the backoff is shorter than its lifetime here");
        let many = (0..20).fold(open.clone(), |a, _| a.check_failed(t(300), base));
        assert_eq!(many.retry_after, Some(t(300) + time::Duration::hours(6)), "at most six hours");
        let healthy = twice.mark_checked(t(400));
        assert_eq!((healthy.failed_checks, healthy.retry_after), (0, None));
    }

    /// Every session the action asks Stripe for is recorded by its attempt
    /// before Stripe is called, given its id once Stripe answers, and
    /// forgotten once Stripe says it ended; the action cannot end while one
    /// it recorded is not closed; the list is bounded.
    #[test]
    fn the_actions_sessions_are_recorded_before_stripe_answers() {
        let reserved = reserved(&action());
        assert_eq!(
            reserved.open_sessions,
            vec![OpenSession { attempt: 1, session_id: None, expires_at: t(5) + time::Duration::minutes(60) }]
        );
        let open = step(&reserved, opened("cs_1")).action;
        assert_eq!(open.open_sessions[0].session_id.as_deref(), Some("cs_1"));
        // A second attempt whose answer was lost: recorded, no id.
        let lost = open.reserve_checkout(t(100)).unwrap();
        assert_eq!(lost.open_sessions.len(), 2);
        let only_current = SessionsClosed::expired(vec!["cs_1".into()]);
        assert_eq!(
            lost.apply(&ActionEvent::Cancel { closed: only_current.clone() }, t(101), &stripe()).unwrap_err(),
            DomainError::CheckoutChanged,
            "the lost attempt's session may be open: the action does not end"
        );
        let both = SessionsClosed { attempts: vec![1, 2], ..only_current };
        let cancelled = step(&lost, ActionEvent::Cancel { closed: both });
        assert!(cancelled.action.open_sessions.is_empty());
        // Stripe's word that a session ended, or completed, forgets it.
        let expired = step(&open, ActionEvent::CheckoutExpired { session_id: "cs_1".into() }).action;
        assert!(expired.open_sessions.is_empty());
        let paid = step(&open, paid("cs_1")).action;
        assert!(paid.open_sessions.is_empty());
        // A refused attempt made no session.
        assert!(reserved.drop_reservation(1).unwrap().open_sessions.is_empty());
        // Bounded: sessions past their end are dropped; more than the bound
        // open at once is refused.
        let mut busy = action();
        busy.checkout_ttl_minutes = 24 * 60;
        for n in 0..MAX_OPEN_SESSIONS as i64 {
            busy = busy.reserve_checkout(t(n * 61)).unwrap();
        }
        assert_eq!(
            busy.reserve_checkout(t(2000)).unwrap_err(),
            DomainError::TooManyCheckoutSessions(MAX_OPEN_SESSIONS)
        );
        let next_day = t(2000) + time::Duration::days(1) + SESSION_CLOCK_SKEW;
        assert_eq!(busy.reserve_checkout(next_day).unwrap().open_sessions.len(), 1, "ended sessions are dropped");
    }
}
