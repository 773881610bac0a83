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

use super::{
    ActionId, ClinicId, Currency, DomainError, InvoiceId, InvoiceStatus, LineItemText, Locale, Money, PatientId,
    StripeAccountId, Timestamp, UserId, VisitId,
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
    /// Checkout completed and the money is taken.
    PaymentSucceeded {
        session_id: String,
        payment_intent: Option<String>,
    },
    /// Checkout completed with a delayed method; the outcome comes later.
    PaymentProcessing {
        session_id: String,
    },
    PaymentFailed {
        session_id: String,
    },
    Cancel,
    Expire,
    /// Refunds of a payment: the ones we know of by id (ours or made in
    /// Stripe's dashboard) and, from `charge.refunded`, Stripe's cumulative total.
    Refunded {
        payment_intent: String,
        refunds: Vec<RefundRecord>,
        total_refunded: Option<i64>,
    },
    Disputed,
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
            ActionEvent::Cancel => "cancel",
            ActionEvent::Expire => "expire",
            ActionEvent::Refunded { .. } => "refunded",
            ActionEvent::Disputed => "disputed",
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
    /// How many Checkout attempts were reserved; each has its own idempotency key.
    pub checkout_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    pub refunded_amount: i64,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    pub disputed: bool,
    /// Payments Stripe took that this action could no longer take: they are
    /// kept here, visibly, until refunded.
    #[serde(default)]
    pub late_payments: Vec<LatePayment>,
    /// When reconcile last asked Stripe about this action and learnt nothing new.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatePayment {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    /// Set once Stripe reports this payment refunded.
    #[serde(default)]
    pub refunded: bool,
}

/// One refund of the action's payment, by Stripe's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub refund_id: String,
    pub amount: i64,
}

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
            checkout_attempts: 0,
            checkout: None,
            paid_session_id: None,
            payment_intent_id: None,
            paid_at: None,
            refunded_amount: 0,
            refunds: Vec::new(),
            disputed: false,
            late_payments: Vec::new(),
            checked_at: None,
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
            (S::Assigned | S::CheckoutOpen, E::Cancel) => {
                (S::Cancelled, InvoiceEffect::Release, "cancelled by staff".into(), None)
            }
            (s, E::Cancel) => return Err(DomainError::InvalidTransition(s, "cancelled")),

            (S::Assigned | S::CheckoutOpen, E::Expire) => {
                (S::Expired, InvoiceEffect::Release, "action lifetime elapsed".into(), None)
            }
            (_, E::Expire) => return unchanged(),

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
                (S::CheckoutOpen, InvoiceEffect::Unchanged, format!("checkout session {session_id} opened"), None)
            }
            (s, E::CheckoutOpened { .. }) => return Err(DomainError::InvalidTransition(s, "opened for checkout")),

            (S::CheckoutOpen, E::CheckoutExpired { session_id })
                if self.checkout_session_id() == Some(session_id.as_str()) =>
            {
                next.checkout = None;
                (
                    S::Assigned,
                    InvoiceEffect::Unchanged,
                    format!("checkout session {session_id} expired; the patient may retry"),
                    None,
                )
            }
            (_, E::CheckoutExpired { .. }) => return unchanged(),

            (S::Assigned | S::CheckoutOpen | S::Processing, E::PaymentSucceeded { session_id, payment_intent }) => {
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
            (_, E::PaymentSucceeded { session_id, payment_intent }) => {
                // Paid already by this very session: a duplicate. Anything else
                // is money this action cannot take; it is kept, and flagged.
                let known = self.paid_session_id.as_deref() == Some(session_id.as_str())
                    || self.late_payments.iter().any(|p| &p.session_id == session_id);
                if known {
                    return unchanged();
                }
                next.late_payments.push(LatePayment {
                    session_id: session_id.clone(),
                    payment_intent: payment_intent.clone(),
                    refunded: false,
                });
                let reason = format!(
                    "payment on session {session_id} arrived after the action was {}; refund needed",
                    self.status
                );
                (self.status, InvoiceEffect::Unchanged, reason, Some(self.amount))
            }

            (S::Assigned | S::CheckoutOpen, E::PaymentProcessing { session_id }) => (
                S::Processing,
                InvoiceEffect::Unchanged,
                format!("payment on session {session_id} processing (delayed method)"),
                Some(self.amount),
            ),
            (_, E::PaymentProcessing { .. }) => return unchanged(),

            // From assigned/checkout_open too: the failure may overtake the
            // "completed, unpaid" event that would have moved us to processing.
            (S::Assigned | S::CheckoutOpen | S::Processing, E::PaymentFailed { session_id }) => {
                (S::Failed, InvoiceEffect::Release, format!("delayed payment on session {session_id} failed"), None)
            }
            (_, E::PaymentFailed { .. }) => return unchanged(),

            // A refund of a late payment clears its flag; the action's own payment is untouched.
            (_, E::Refunded { payment_intent, .. })
                if self.payment_intent_id.as_deref() != Some(payment_intent.as_str()) =>
            {
                let Some(late) = next
                    .late_payments
                    .iter_mut()
                    .find(|p| p.payment_intent.as_deref() == Some(payment_intent.as_str()) && !p.refunded)
                else {
                    return unchanged();
                };
                late.refunded = true;
                (
                    self.status,
                    InvoiceEffect::Unchanged,
                    format!("late payment {payment_intent} refunded"),
                    Some(self.amount),
                )
            }
            (S::Paid | S::PartiallyRefunded, E::Refunded { refunds, total_refunded, .. }) => {
                for r in refunds {
                    if !next.refunds.iter().any(|known| known.refund_id == r.refund_id) {
                        next.refunds.push(r.clone());
                    }
                }
                let by_id: i64 = next.refunds.iter().map(|r| r.amount).sum();
                let total = by_id.max(total_refunded.unwrap_or(0)).max(self.refunded_amount).min(self.amount);
                if total == self.refunded_amount && next.refunds.len() == self.refunds.len() {
                    return unchanged();
                }
                next.refunded_amount = total;
                if total >= self.amount {
                    (
                        S::Refunded,
                        InvoiceEffect::Reopen,
                        "fully refunded; the invoices are owed again".into(),
                        Some(total),
                    )
                } else {
                    (
                        S::PartiallyRefunded,
                        InvoiceEffect::Unchanged,
                        format!("refunded {total} of {}", self.amount),
                        Some(total),
                    )
                }
            }
            (_, E::Refunded { .. }) => return unchanged(),

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

    pub fn money(&self) -> Money {
        Money { amount: self.amount, currency: self.currency }
    }

    pub fn invoice_ids(&self) -> impl Iterator<Item = &InvoiceId> {
        self.lines.iter().map(|l| &l.invoice_id)
    }

    pub fn checkout_session_id(&self) -> Option<&str> {
        self.checkout.as_ref().and_then(|c| c.session_id.as_deref())
    }

    pub fn refund_needed(&self) -> bool {
        self.late_payments.iter().any(|p| !p.refunded)
    }

    /// What may still be refunded of the action's own payment.
    pub fn refundable(&self) -> i64 {
        match self.status {
            ActionStatus::Paid | ActionStatus::PartiallyRefunded => self.amount - self.refunded_amount,
            _ => 0,
        }
    }

    /// When the action last changed or was last checked by reconcile.
    pub fn last_touched(&self) -> Timestamp {
        let changed = self.history.last().map_or(self.created_at, |h| h.at);
        self.checked_at.map_or(changed, |c| c.max(changed))
    }

    /// Reconcile asked Stripe and learnt nothing new: not again before a while.
    pub fn mark_checked(&self, now: Timestamp) -> Action {
        Action { checked_at: Some(now), version: self.version + 1, ..self.clone() }
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
        next.checkout_attempts += 1;
        next.checkout = Some(Checkout {
            attempt: next.checkout_attempts,
            reserved_at: now,
            expires_at: now + time::Duration::minutes(minutes),
            session_id: None,
            url: None,
        });
        next.version += 1;
        Ok(next)
    }

    /// The reserved attempt to (re)send to Stripe, if it is recent enough.
    pub fn usable_reservation(&self, now: Timestamp) -> Option<&Checkout> {
        self.checkout.as_ref().filter(|c| c.session_id.is_none() && now - c.reserved_at < RESERVATION_REUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    fn action() -> Action {
        Action::assign(
            NewAction {
                clinic_id: ClinicId::parse("c").unwrap(),
                action_id: ActionId::parse("a").unwrap(),
                visit_id: VisitId::parse("v").unwrap(),
                patient_id: PatientId::parse("p").unwrap(),
                label: "Payer".into(),
                locale: Locale::FrCa,
                lines: vec![ActionLine { invoice_id: InvoiceId::parse("1").unwrap(), amount: 4500 }],
                total: Money::new(4500, Currency::parse("cad").unwrap()).unwrap(),
                token_hash: "h".into(),
                expires_at: t(3600),
                stripe_account_id: StripeAccountId::parse("acct_1").unwrap(),
                checkout_ttl_minutes: 60,
                line_item_text: LineItemText::Generic,
            },
            t(0),
            &Actor::Staff(UserId::parse("u").unwrap()),
        )
    }

    fn stripe() -> Actor {
        Actor::Stripe { event_id: "evt_1".into() }
    }

    fn step(a: &Action, e: ActionEvent) -> Transition {
        a.apply(&e, t(10), &stripe()).unwrap()
    }

    fn opened(sid: &str) -> ActionEvent {
        ActionEvent::CheckoutOpened {
            session_id: sid.into(),
            url: format!("https://pay.test/{sid}"),
            expires_at: t(1800),
        }
    }

    fn reserved(a: &Action) -> Action {
        a.reserve_checkout(t(5)).unwrap()
    }

    fn paid(sid: &str) -> ActionEvent {
        ActionEvent::PaymentSucceeded { session_id: sid.into(), payment_intent: Some(format!("pi_{sid}")) }
    }

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
            ActionEvent::Expire,
        ] {
            let tr = paid.apply(&e, t(10), &stripe());
            let unchanged = tr.as_ref().map(|tr| !tr.changed && tr.action == paid).unwrap_or(true);
            assert!(unchanged, "{e:?}");
        }
        assert!(paid.apply(&ActionEvent::Cancel, t(1), &stripe()).is_err());
    }

    fn paid_event(sid: &str) -> ActionEvent {
        paid(sid)
    }

    #[test]
    fn cancel_releases_and_cannot_repeat() {
        let c = step(&action(), ActionEvent::Cancel);
        assert_eq!((c.action.status(), c.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
        assert!(matches!(
            c.action.apply(&ActionEvent::Cancel, t(1), &stripe()),
            Err(DomainError::InvalidTransition(ActionStatus::Cancelled, "cancelled"))
        ));
    }

    #[test]
    fn a_payment_the_action_cannot_take_is_kept_and_flagged() {
        let c = step(&action(), ActionEvent::Cancel).action;
        let late = step(&c, paid("cs_9"));
        assert!(late.changed && late.action.refund_needed());
        assert_eq!(late.action.late_payments[0].payment_intent.as_deref(), Some("pi_cs_9"));
        assert_eq!((late.action.status(), late.invoices), (ActionStatus::Cancelled, InvoiceEffect::Unchanged));
        assert!(!step(&late.action, paid("cs_9")).changed, "the same late payment is recorded once");
        let refunded = step(
            &late.action,
            ActionEvent::Refunded { payment_intent: "pi_cs_9".into(), refunds: vec![], total_refunded: Some(4500) },
        );
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
        assert!(proc_.apply(&ActionEvent::Cancel, t(1), &stripe()).is_err());
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
        let refund = |id: &str, amount: i64, total: Option<i64>| ActionEvent::Refunded {
            payment_intent: "pi_cs".into(),
            refunds: vec![RefundRecord { refund_id: id.into(), amount }],
            total_refunded: total,
        };
        let paid = step(&action(), paid("cs")).action;
        assert_eq!(paid.refundable(), 4500);
        let part = step(&paid, refund("re_1", 1000, None)).action;
        assert_eq!(
            (part.status(), part.refunded_amount, part.refundable()),
            (ActionStatus::PartiallyRefunded, 1000, 3500)
        );
        assert!(!step(&part, refund("re_1", 1000, Some(1000))).changed, "the same refund, seen again");
        assert!(!step(&part, refund("re_1", 1000, Some(500))).changed, "an older, smaller total is stale");
        let dashboard = step(&part, refund("re_dash", 500, Some(1500))).action;
        assert_eq!((dashboard.refunded_amount, dashboard.refunds.len()), (1500, 2));
        let full = step(&dashboard, refund("re_2", 3000, None));
        assert_eq!((full.action.status(), full.invoices), (ActionStatus::Refunded, InvoiceEffect::Reopen));
        let disputed = step(&full.action, ActionEvent::Disputed).action;
        assert!(disputed.disputed);
        assert_eq!(disputed.status(), ActionStatus::Refunded);
    }
}
