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
    ActionId, ClinicId, Currency, DomainError, InvoiceId, Locale, Money, PatientId, Timestamp, UserId, VisitId,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff(UserId),
    Stripe { event_id: String },
    Reconcile,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff(u) => write!(f, "staff:{u}"),
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
}

/// What happened to an action, from staff, Stripe or the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionEvent {
    CheckoutOpened {
        session_id: String,
        expires_at: Timestamp,
    },
    CheckoutExpired {
        session_id: String,
    },
    /// Checkout completed and the money is taken.
    PaymentSucceeded {
        session_id: String,
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
    /// Stripe's cumulative refunded amount for the payment.
    Refunded {
        total_refunded: i64,
    },
    Disputed,
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
    pub invoice_ids: Vec<InvoiceId>,
    pub amount: i64,
    pub currency: Currency,
    status: ActionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_session_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub checkout_expires_at: Option<Timestamp>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    pub refunded_amount: i64,
    pub disputed: bool,
    /// A payment arrived that this action could no longer take.
    pub refund_needed: bool,
    /// SHA-256 of the patient link token; the token itself is never stored.
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub version: u64,
    pub history: Vec<HistoryEntry>,
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
    pub invoice_ids: Vec<InvoiceId>,
    pub total: Money,
    pub token_hash: String,
    pub expires_at: Timestamp,
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
            invoice_ids: new.invoice_ids,
            amount: new.total.amount,
            currency: new.total.currency,
            status: ActionStatus::Assigned,
            checkout_session_id: None,
            checkout_expires_at: None,
            paid_at: None,
            refunded_amount: 0,
            disputed: false,
            refund_needed: false,
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
            }],
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

            (S::Assigned | S::CheckoutOpen, E::CheckoutOpened { session_id, expires_at }) => {
                if self.checkout_session_id.as_deref() == Some(session_id) {
                    return unchanged();
                }
                next.checkout_session_id = Some(session_id.clone());
                next.checkout_expires_at = Some(*expires_at);
                (S::CheckoutOpen, InvoiceEffect::Unchanged, "checkout session opened".into(), None)
            }
            (s, E::CheckoutOpened { .. }) => return Err(DomainError::InvalidTransition(s, "opened for checkout")),

            (S::CheckoutOpen, E::CheckoutExpired { session_id })
                if self.checkout_session_id.as_deref() == Some(session_id) =>
            {
                next.checkout_session_id = None;
                next.checkout_expires_at = None;
                (S::Assigned, InvoiceEffect::Unchanged, "checkout session expired; the patient may retry".into(), None)
            }
            (_, E::CheckoutExpired { .. }) => return unchanged(),

            (S::Assigned | S::CheckoutOpen | S::Processing, E::PaymentSucceeded { session_id }) => {
                next.checkout_session_id = Some(session_id.clone());
                next.paid_at = Some(at);
                (S::Paid, InvoiceEffect::MarkPaid, "payment succeeded".into(), Some(self.amount))
            }
            (S::Cancelled | S::Expired | S::Failed, E::PaymentSucceeded { .. }) => {
                if self.refund_needed {
                    return unchanged();
                }
                next.refund_needed = true;
                (
                    self.status,
                    InvoiceEffect::Unchanged,
                    "payment received after the action ended; refund needed".into(),
                    Some(self.amount),
                )
            }
            (_, E::PaymentSucceeded { .. }) => return unchanged(),

            (S::Assigned | S::CheckoutOpen, E::PaymentProcessing { session_id }) => {
                next.checkout_session_id = Some(session_id.clone());
                (
                    S::Processing,
                    InvoiceEffect::Unchanged,
                    "payment processing (delayed method)".into(),
                    Some(self.amount),
                )
            }
            (_, E::PaymentProcessing { .. }) => return unchanged(),

            (S::Processing, E::PaymentFailed { .. }) => {
                (S::Failed, InvoiceEffect::Release, "delayed payment failed".into(), None)
            }
            (_, E::PaymentFailed { .. }) => return unchanged(),

            (S::Paid | S::PartiallyRefunded, E::Refunded { total_refunded }) => {
                if *total_refunded <= self.refunded_amount {
                    return unchanged();
                }
                next.refunded_amount = (*total_refunded).min(self.amount);
                if next.refunded_amount >= self.amount {
                    (S::Refunded, InvoiceEffect::Reopen, "fully refunded".into(), Some(next.refunded_amount))
                } else {
                    (
                        S::PartiallyRefunded,
                        InvoiceEffect::Unchanged,
                        "partially refunded".into(),
                        Some(next.refunded_amount),
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
        next.history.push(HistoryEntry { at, actor: actor.to_string(), from: Some(self.status), to, reason, amount });
        next.status = to;
        next.version += 1;
        Ok(Transition { action: next, invoices: effect, changed: true })
    }

    pub fn money(&self) -> Money {
        Money { amount: self.amount, currency: self.currency }
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
                invoice_ids: vec![InvoiceId::parse("1").unwrap()],
                total: Money::new(4500, Currency::parse("cad").unwrap()).unwrap(),
                token_hash: "h".into(),
                expires_at: t(3600),
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
        ActionEvent::CheckoutOpened { session_id: sid.into(), expires_at: t(1800) }
    }

    #[test]
    fn paid_path_records_history() {
        let a = action();
        let open = step(&a, opened("cs_1"));
        assert_eq!(open.action.status(), ActionStatus::CheckoutOpen);
        let paid = step(&open.action, ActionEvent::PaymentSucceeded { session_id: "cs_1".into() });
        assert_eq!((paid.action.status(), paid.invoices), (ActionStatus::Paid, InvoiceEffect::MarkPaid));
        assert_eq!(paid.action.paid_at, Some(t(10)));
        let h = &paid.action.history;
        assert_eq!(h.len(), 3);
        assert_eq!(
            (h[2].from, h[2].to, h[2].actor.as_str()),
            (Some(ActionStatus::CheckoutOpen), ActionStatus::Paid, "stripe:evt_1")
        );
        assert_eq!(paid.action.version, 3);
    }

    #[test]
    fn duplicates_and_late_events_change_nothing() {
        let paid =
            step(&step(&action(), opened("cs_1")).action, ActionEvent::PaymentSucceeded { session_id: "cs_1".into() })
                .action;
        for e in [
            ActionEvent::PaymentSucceeded { session_id: "cs_1".into() },
            ActionEvent::PaymentProcessing { session_id: "cs_1".into() },
            ActionEvent::PaymentFailed { session_id: "cs_1".into() },
            ActionEvent::CheckoutExpired { session_id: "cs_1".into() },
            ActionEvent::Expire,
        ] {
            let tr = step(&paid, e.clone());
            assert!(!tr.changed, "{e:?}");
            assert_eq!(tr.action, paid);
        }
        assert!(paid.apply(&ActionEvent::Cancel, t(1), &stripe()).is_err());
    }

    #[test]
    fn cancel_releases_and_cannot_repeat() {
        let c = step(&action(), ActionEvent::Cancel);
        assert_eq!((c.action.status(), c.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
        assert_eq!(c.action.apply(&ActionEvent::Cancel, t(1), &stripe()).unwrap_err().code(), "invalid_transition");
    }

    #[test]
    fn a_payment_on_an_ended_action_is_flagged_not_lost() {
        let c = step(&action(), ActionEvent::Cancel).action;
        let late = step(&c, ActionEvent::PaymentSucceeded { session_id: "cs_9".into() });
        assert!(late.changed && late.action.refund_needed);
        assert_eq!((late.action.status(), late.invoices), (ActionStatus::Cancelled, InvoiceEffect::Unchanged));
        assert!(!step(&late.action, ActionEvent::PaymentSucceeded { session_id: "cs_9".into() }).changed);
    }

    #[test]
    fn session_expiry_returns_to_assigned_only_for_the_current_session() {
        let open = step(&action(), opened("cs_1")).action;
        assert!(!step(&open, ActionEvent::CheckoutExpired { session_id: "cs_0".into() }).changed);
        let back = step(&open, ActionEvent::CheckoutExpired { session_id: "cs_1".into() }).action;
        assert_eq!((back.status(), back.checkout_session_id.clone()), (ActionStatus::Assigned, None));
        assert_eq!(step(&back, opened("cs_2")).action.status(), ActionStatus::CheckoutOpen);
    }

    #[test]
    fn delayed_methods_end_paid_or_failed() {
        let proc_ =
            step(&step(&action(), opened("cs_1")).action, ActionEvent::PaymentProcessing { session_id: "cs_1".into() })
                .action;
        assert_eq!(proc_.status(), ActionStatus::Processing);
        assert!(proc_.apply(&ActionEvent::Cancel, t(1), &stripe()).is_err());
        let failed = step(&proc_, ActionEvent::PaymentFailed { session_id: "cs_1".into() });
        assert_eq!((failed.action.status(), failed.invoices), (ActionStatus::Failed, InvoiceEffect::Release));
        assert_eq!(
            step(&proc_, ActionEvent::PaymentSucceeded { session_id: "cs_1".into() }).action.status(),
            ActionStatus::Paid
        );
    }

    #[test]
    fn refunds_only_move_forward() {
        let paid = step(&action(), ActionEvent::PaymentSucceeded { session_id: "cs".into() }).action;
        let part = step(&paid, ActionEvent::Refunded { total_refunded: 1000 }).action;
        assert_eq!((part.status(), part.refunded_amount), (ActionStatus::PartiallyRefunded, 1000));
        assert!(
            !step(&part, ActionEvent::Refunded { total_refunded: 500 }).changed,
            "an older, smaller total is stale"
        );
        let full = step(&part, ActionEvent::Refunded { total_refunded: 4500 });
        assert_eq!((full.action.status(), full.invoices), (ActionStatus::Refunded, InvoiceEffect::Reopen));
        let disputed = step(&full.action, ActionEvent::Disputed).action;
        assert!(disputed.disputed);
        assert_eq!(disputed.status(), ActionStatus::Refunded);
    }
}
