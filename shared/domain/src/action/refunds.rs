//! Refunds of the action's own payment: each as Stripe reported it (ours or
//! made in Stripe's dashboard), and the staff refund attempt under way.

use serde::{Deserialize, Serialize};

use super::{Action, ActionStatus, Outcome, Step};
use crate::charge::{merge_refunds, refunded_total, RefundsMerged};
use crate::invoice::InvoiceEffect;
use crate::{DomainError, RefundRecord, Timestamp};

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

/// At most this many refunds of one payment through visitpay; with Stripe's
/// own (dashboard) refunds, the action stays far below DynamoDB's item limit.
pub const MAX_REFUNDS: usize = 250;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refunds {
    pub(crate) records: Vec<RefundRecord>,
    /// A staff refund sent (or about to be sent) to Stripe and not yet
    /// answered: its number is its idempotency key.
    pub(crate) attempt: Option<RefundAttempt>,
    pub(crate) attempts: u32,
}

/// What taking Stripe's word on refunds did.
pub(crate) struct Taken {
    pub merged: RefundsMerged,
    /// The staff attempt it answers was settled.
    pub settled: bool,
}

impl Refunds {
    pub fn new(records: Vec<RefundRecord>, attempt: Option<RefundAttempt>, attempts: u32) -> Self {
        Refunds { records, attempt, attempts }
    }

    pub fn records(&self) -> &[RefundRecord] {
        &self.records
    }

    pub fn attempt(&self) -> Option<&RefundAttempt> {
        self.attempt.as_ref()
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// What the refunds that moved money (pending included) add up to.
    pub fn total(&self) -> i64 {
        refunded_total(&self.records)
    }

    /// Takes what Stripe says of refunds; `attempt` is the staff attempt this
    /// answers, whose reservation it settles.
    pub(crate) fn take(&mut self, seen: &[RefundRecord], attempt: Option<u32>) -> Taken {
        let merged = merge_refunds(&mut self.records, seen);
        let settled = attempt.is_some() && self.attempt.as_ref().map(|a| a.attempt) == attempt;
        if settled {
            self.attempt = None;
        }
        Taken { merged, settled }
    }

    /// The staff refund attempt to send again with its key: the same amount,
    /// possibly still in flight.
    pub fn usable_attempt(&self, amount: i64, now: Timestamp) -> Option<&RefundAttempt> {
        self.attempt.as_ref().filter(|a| a.amount == amount && now - a.reserved_at < REFUND_ATTEMPT_IN_FLIGHT)
    }

    pub(crate) fn reserve(&mut self, amount: i64, now: Timestamp) {
        self.attempts += 1;
        self.attempt = Some(RefundAttempt { attempt: self.attempts, amount, reserved_at: now });
    }

    pub(crate) fn drop_attempt(&mut self, attempt: u32) -> bool {
        let named = self.attempt.as_ref().map(|a| a.attempt) == Some(attempt);
        if named {
            self.attempt = None;
        }
        named
    }
}

/// What a history entry says of refunds that moved.
fn reason(merged: &RefundsMerged, total: i64, amount: i64) -> String {
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

/// Refunds by staff: how much, and the attempt reserved before Stripe is called.
impl Action {
    /// The staff refund attempt to send again with its key: the same amount,
    /// possibly still in flight.
    pub fn usable_refund_attempt(&self, amount: i64, now: Timestamp) -> Option<&RefundAttempt> {
        self.refunds.usable_attempt(amount, now)
    }

    /// Whether staff may refund the payment now, and how much a refund of
    /// `amount` (all that remains when `None`) is.
    pub fn refund_amount(&self, amount: Option<i64>) -> Result<i64, DomainError> {
        let remaining = self.refundable().amount;
        if remaining == 0 {
            return Err(DomainError::NotRefundable(self.status));
        }
        if self.refunds_blocked_by_dispute() {
            return Err(DomainError::PaymentDisputed);
        }
        let amount = amount.unwrap_or(remaining);
        if amount <= 0 || amount > crate::MAX_AMOUNT {
            return Err(DomainError::InvalidAmount);
        }
        Ok(amount)
    }

    /// Reserves the next staff refund attempt for `amount`, checked against
    /// what remains before anything is sent to Stripe.
    pub fn reserve_refund(&self, amount: i64, now: Timestamp) -> Result<Action, DomainError> {
        let remaining = self.refundable().amount;
        if amount > remaining {
            return Err(DomainError::RefundExceedsRemaining(remaining));
        }
        // Bounded so the action stays small however it is refunded; the last
        // one may always take all that remains.
        if self.refunds.records.len() + 1 >= MAX_REFUNDS && amount < remaining {
            return Err(DomainError::TooManyRefunds(self.refunds.records.len()));
        }
        let mut next = self.clone();
        next.refunds.reserve(amount, now);
        Ok(next)
    }

    /// Forgets an attempt Stripe answered with an error (its key is spent:
    /// Stripe would replay that error) or that never reached Stripe.
    pub fn drop_refund_attempt(&self, attempt: u32) -> Option<Action> {
        let mut next = self.clone();
        next.refunds.drop_attempt(attempt).then_some(next)
    }
}

impl Action {
    /// Refunds of the action's own payment as Stripe reported them: the
    /// action is paid, partly or fully refunded by what moved money, and its
    /// invoices owed again once all of it went back (paid again if a refund
    /// then failed).
    pub(crate) fn own_refunded(
        &mut self,
        refunds: &[RefundRecord],
        attempt: Option<u32>,
        outcomes: &mut Vec<Outcome>,
    ) -> Step {
        let taken = self.refunds.take(refunds, attempt);
        if taken.merged.is_empty() {
            // Nothing new at Stripe; an answered attempt is bookkeeping.
            return if taken.settled { Step::Quiet } else { Step::Unchanged };
        }
        if taken.merged.failures().next().is_some() {
            outcomes.push(Outcome::RefundFailed);
        }
        let amount = self.total.amount;
        let total = self.refunds.total().min(amount);
        let to = match total {
            0 => ActionStatus::Paid,
            t if t >= amount => ActionStatus::Refunded,
            _ => ActionStatus::PartiallyRefunded,
        };
        let invoices = match (self.status == ActionStatus::Refunded, to == ActionStatus::Refunded) {
            (false, true) => InvoiceEffect::Reopen,
            (true, false) => InvoiceEffect::Repay,
            _ => InvoiceEffect::Unchanged,
        };
        Step::Move { to, invoices, reason: reason(&taken.merged, total, amount), amount: Some(total) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{ActionEvent, RefundState};

    #[test]
    fn refunds_only_move_forward() {
        use RefundState::*;
        let paid = paid_action();
        assert_eq!(paid.refundable(), cad(4500));
        let part = step(&paid, refunded("pi_cs", &[("re_1", 1000, Succeeded)])).action;
        assert_eq!(
            (part.status(), part.refunded(), part.refundable()),
            (ActionStatus::PartiallyRefunded, cad(1000), cad(3500))
        );
        assert!(!step(&part, refunded("pi_cs", &[("re_1", 1000, Succeeded)])).changed, "the same refund, seen again");
        assert!(!step(&part, refunded("pi_cs", &[("re_1", 1000, Pending)])).changed, "an older status is stale");
        let dashboard = step(&part, refunded("pi_cs", &[("re_dash", 500, Succeeded)])).action;
        assert_eq!((dashboard.refunded(), dashboard.refunds().records().len()), (cad(1500), 2));
        let full = step(&dashboard, refunded("pi_cs", &[("re_2", 3000, Succeeded)]));
        assert_eq!((full.action.status(), full.invoices), (ActionStatus::Refunded, InvoiceEffect::Reopen));
        assert!(full.outcomes.is_empty(), "a refund that moved money alarms no one");
    }

    /// Stripe: a refund may be `pending`, then `succeeded`, `failed` or
    /// `canceled` (refund.updated / refund.failed). A refund that fails gives
    /// the money back to the clinic: the action is paid again, its invoices too.
    #[test]
    fn a_failed_refund_puts_the_action_and_its_invoices_back() {
        use RefundState::*;
        let paid = paid_action();
        let pending = step(&paid, refunded("pi_cs", &[("re_1", 4500, Pending)]));
        assert_eq!(
            (pending.action.status(), pending.action.refunded(), pending.invoices),
            (ActionStatus::Refunded, cad(4500), InvoiceEffect::Reopen),
            "a pending refund is money on its way back"
        );
        let failed = step(&pending.action, refunded("pi_cs", &[("re_1", 4500, Failed)]));
        assert_eq!(
            (failed.action.status(), failed.action.refunded(), failed.invoices),
            (ActionStatus::Paid, cad(0), InvoiceEffect::Repay)
        );
        assert_eq!(failed.outcomes, [Outcome::RefundFailed], "a failed refund is heard of");
        assert!(failed.action.history().entries().last().unwrap().reason.contains("re_1 of 4500 failed"));
        assert_eq!(failed.action.refundable(), cad(4500), "it may be refunded again");
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
        let paid = paid_action();
        let reserved = paid.reserve_refund(1000, t(20)).unwrap();
        let attempt = reserved.refunds().attempt().cloned().unwrap();
        assert_eq!((attempt.attempt, attempt.amount), (1, 1000));
        assert!(reserved.usable_refund_attempt(1000, t(30)).is_some(), "a retry of the same refund");
        assert!(reserved.usable_refund_attempt(900, t(30)).is_none(), "another amount is another refund");
        assert!(reserved.usable_refund_attempt(1000, t(20) + REFUND_ATTEMPT_IN_FLIGHT).is_none());
        let answered = ActionEvent::Refunded {
            payment_intent: pi("pi_cs"),
            refunds: vec![RefundRecord::new(re("re_1"), 1000, RefundState::Pending)],
            attempt: Some(1),
        };
        let settled = step(&reserved, answered.clone()).action;
        assert_eq!((settled.refunds().attempt(), settled.refunded()), (None, cad(1000)));
        assert!(!step(&settled, answered).changed, "the same answer twice");
        let next = settled.reserve_refund(500, t(40)).unwrap();
        assert_eq!(next.refunds().attempt().unwrap().attempt, 2, "a new key for the next refund");
        assert_eq!(next.drop_refund_attempt(2).unwrap().refunds().attempt(), None);
        assert!(next.drop_refund_attempt(1).is_none(), "only the attempt named");
    }

    /// Stripe answers an attempt with nothing new when the refund was already
    /// reported by its webhook: the attempt is settled all the same, quietly.
    #[test]
    fn an_answer_that_says_nothing_new_settles_its_attempt_without_history() {
        let reserved = paid_action().reserve_refund(1000, t(20)).unwrap();
        let webhook = step(&reserved, refunded("pi_cs", &[("re_1", 1000, RefundState::Pending)])).action;
        let answer = ActionEvent::Refunded {
            payment_intent: pi("pi_cs"),
            refunds: vec![RefundRecord::new(re("re_1"), 1000, RefundState::Pending)],
            attempt: Some(1),
        };
        let settled = step(&webhook, answer);
        assert!(settled.changed && settled.action.refunds().attempt().is_none());
        assert_eq!(settled.action.history().entries().len(), webhook.history().entries().len());
    }

    /// What staff may refund: what remains of the payment, not while a
    /// chargeback is under way, never more, never in more than MAX_REFUNDS.
    #[test]
    fn staff_refund_only_what_remains() {
        assert_eq!(action().refund_amount(None), Err(DomainError::NotRefundable(ActionStatus::Assigned)));
        let paid = paid_action();
        assert_eq!(paid.refund_amount(None), Ok(4500), "all that remains by default");
        assert_eq!(paid.refund_amount(Some(0)), Err(DomainError::InvalidAmount));
        assert_eq!(paid.reserve_refund(4501, t(20)).unwrap_err(), DomainError::RefundExceedsRemaining(4500));
        let mut many = paid.clone();
        for n in 0..MAX_REFUNDS - 1 {
            let id = format!("re_{n}");
            many = step(&many, refunded("pi_cs", &[(&id, 1, RefundState::Succeeded)])).action;
        }
        assert_eq!(many.reserve_refund(1, t(20)).unwrap_err(), DomainError::TooManyRefunds(MAX_REFUNDS - 1));
        let rest = many.refundable().amount;
        assert!(many.reserve_refund(rest, t(20)).is_ok(), "the last refund may take all that remains");
    }
}
