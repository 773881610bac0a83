//! Money the action holds but may not keep: payments Stripe took that the
//! action could no longer take, or that were not its own (another amount,
//! currency or mode on the clinic's account), kept visibly until Stripe has
//! refunded all of each; and the action's own payment once its invoices
//! were collected again elsewhere.

use serde::{Deserialize, Serialize};

use super::{stay, Action, Applied, Outcome, Step};
use crate::charge::{merge_refunds, refunded_total, RefundsMerged};
use crate::invoice::InvoiceEffect;
use crate::{Charged, DomainError, InvoiceId, PaymentIntentId, RefundRecord, SessionId};

/// At most this many payments that are not the action's own are kept on it;
/// more are recorded apart (`StrayPayment`), each with an alarm.
pub const MAX_LATE_PAYMENTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatePayment {
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<PaymentIntentId>,
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatePayments {
    pub(crate) payments: Vec<LatePayment>,
    /// Invoices the action's payment was for that were collected again
    /// while a refund of it was under way, before that refund failed: the
    /// patient paid twice, and the action's payment must be refunded.
    pub(crate) collected_elsewhere: Vec<InvoiceId>,
}

/// What taking refunds of a late payment did.
pub(crate) struct Refunded {
    /// Whether anything moved.
    pub changed: bool,
    pub merged: RefundsMerged,
    /// Whether all of it is now back with the patient.
    pub settled: bool,
    /// What its refunds add up to.
    pub back: i64,
}

impl LatePayments {
    pub fn new(payments: Vec<LatePayment>, collected_elsewhere: Vec<InvoiceId>) -> Self {
        LatePayments { payments, collected_elsewhere }
    }

    pub fn payments(&self) -> &[LatePayment] {
        &self.payments
    }

    pub fn collected_elsewhere(&self) -> &[InvoiceId] {
        &self.collected_elsewhere
    }

    /// Some payment held must still be refunded.
    pub fn unsettled(&self) -> bool {
        self.payments.iter().any(|p| !p.refunded)
    }

    pub(crate) fn knows(&self, session_id: &SessionId) -> bool {
        self.payments.iter().any(|p| &p.session_id == session_id)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.payments.len() >= MAX_LATE_PAYMENTS
    }

    pub(crate) fn keep(&mut self, payment: LatePayment) {
        self.payments.push(payment);
    }

    /// The account a late payment was taken on.
    pub fn account_of(&self, payment_intent: &PaymentIntentId) -> Option<&str> {
        self.of(payment_intent).and_then(|p| p.account.as_deref())
    }

    fn of(&self, payment_intent: &PaymentIntentId) -> Option<&LatePayment> {
        self.payments.iter().find(|p| p.payment_intent.as_ref() == Some(payment_intent))
    }

    /// Refunds of a late payment; `None` if none is that payment.
    pub(crate) fn refunded(
        &mut self,
        payment_intent: &PaymentIntentId,
        seen: &[RefundRecord],
        withdrawn: i64,
    ) -> Option<Refunded> {
        let late = self.payments.iter_mut().find(|p| p.payment_intent.as_ref() == Some(payment_intent))?;
        let merged = merge_refunds(&mut late.refunds, seen);
        let settled = late.settled(withdrawn);
        let changed = !merged.is_empty() || late.refunded != settled;
        late.refunded = settled;
        Some(Refunded { changed, merged, settled, back: refunded_total(&late.refunds) })
    }

    /// A dispute of a late payment moved: a lost one gave that money back too.
    pub(crate) fn disputed(&mut self, payment_intent: &PaymentIntentId, withdrawn: i64) {
        for late in self.payments.iter_mut().filter(|p| p.payment_intent.as_ref() == Some(payment_intent)) {
            late.refunded = late.settled(withdrawn);
        }
    }

    /// Records invoices collected again elsewhere; whether any is new.
    pub(crate) fn collected(&mut self, invoices: Vec<InvoiceId>) -> bool {
        let mut added = false;
        for id in invoices {
            if !self.collected_elsewhere.contains(&id) {
                self.collected_elsewhere.push(id);
                added = true;
            }
        }
        added
    }
}

impl Action {
    /// Invoices of this action collected again elsewhere while a refund of it
    /// was under way: its payment must now go back in full.
    pub fn collected_elsewhere(&self, invoices: Vec<InvoiceId>) -> Applied {
        let mut next = self.clone();
        let needed_before = self.refund_needed();
        let changed = next.late.collected(invoices);
        let outcomes = if next.refund_needed() && !needed_before { vec![Outcome::RefundNeeded] } else { vec![] };
        Applied { action: next, invoices: InvoiceEffect::Unchanged, changed, outcomes }
    }
}

impl Action {
    /// A payment this action cannot take (it was paid, or ended, or the
    /// payment is not its own): kept and flagged for refund. Paid already by
    /// this very session: a duplicate.
    pub(crate) fn keep_late_payment(
        &mut self,
        session_id: &SessionId,
        payment_intent: Option<&PaymentIntentId>,
        charged: Option<&Charged>,
        outcomes: &mut Vec<Outcome>,
    ) -> Result<Step, DomainError> {
        let known = self.payment.as_ref().is_some_and(|p| &p.session_id == session_id) || self.late.knows(session_id);
        if known {
            return Ok(Step::Unchanged);
        }
        let why = match self.not_its_payment(charged) {
            Some(mismatch) => format!("not this action's payment: {mismatch}"),
            None => format!("it arrived after the action was {}", self.status),
        };
        if self.late.is_full() {
            return Err(DomainError::LatePaymentsFull(MAX_LATE_PAYMENTS));
        }
        self.checkout.forget(session_id);
        let charged = charged.cloned().unwrap_or_default();
        self.late.keep(LatePayment {
            session_id: session_id.clone(),
            payment_intent: payment_intent.cloned(),
            amount: charged.amount,
            currency: charged.currency,
            account: charged.account,
            reason: why.clone(),
            refunds: Vec::new(),
            refunded: false,
        });
        outcomes.push(Outcome::RefundNeeded);
        Ok(stay(self.status, format!("payment on session {session_id} kept, refund needed: {why}"), charged.amount))
    }

    /// Refunds of a late payment: it stays flagged until all of it is refunded.
    pub(crate) fn late_refunded(
        &mut self,
        payment_intent: &PaymentIntentId,
        refunds: &[RefundRecord],
        outcomes: &mut Vec<Outcome>,
    ) -> Step {
        let withdrawn = self.disputes.withdrawn_from(payment_intent);
        let Some(taken) = self.late.refunded(payment_intent, refunds, withdrawn) else {
            return Step::Unchanged;
        };
        if !taken.changed {
            return Step::Unchanged;
        }
        let failed = taken.merged.failures().next();
        if failed.is_some() {
            outcomes.push(Outcome::RefundFailed);
        }
        let reason = match (taken.settled, failed) {
            (_, Some(failed)) => {
                format!("refund {} of late payment {payment_intent} {}", failed.refund_id, failed.status.as_str())
            }
            (true, None) => format!("late payment {payment_intent} refunded"),
            (false, None) => format!("late payment {payment_intent}: {} refunded so far", taken.back),
        };
        stay(self.status, reason, Some(taken.back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{ActionEvent, ActionStatus, RefundState};

    #[test]
    fn a_payment_the_action_cannot_take_is_kept_and_flagged() {
        let c = step(&action(), cancel()).action;
        let late = step(&c, paid("cs_9"));
        assert!(late.changed && late.action.refund_needed());
        assert_eq!(late.outcomes, [Outcome::RefundNeeded]);
        assert_eq!(late.action.late().payments()[0].payment_intent, Some(pi("pi_cs_9")));
        assert_eq!((late.action.status(), late.invoices), (ActionStatus::Cancelled, InvoiceEffect::Unchanged));
        assert!(!step(&late.action, paid("cs_9")).changed, "the same late payment is recorded once");
        let refunded = step(&late.action, refunded("pi_cs_9", &[("re_9", 4500, RefundState::Succeeded)]));
        assert!(refunded.changed && !refunded.action.refund_needed());
        assert_eq!((refunded.action.status(), refunded.action.refunded()), (ActionStatus::Cancelled, cad(0)));

        // A second session paid on an action already paid: a double payment, flagged.
        let paid_once = step(&open_action(), paid("cs_1")).action;
        let twice = step(&paid_once, paid("cs_2"));
        assert!(twice.changed && twice.action.refund_needed());
        assert_eq!(
            (twice.action.status(), twice.outcomes.as_slice()),
            (ActionStatus::Paid, &[Outcome::RefundNeeded][..])
        );
    }

    /// A payment counts only if its account, mode, amount and currency are the
    /// action's: a 1-cent session carrying the action's metadata pays nothing.
    #[test]
    fn a_payment_that_is_not_the_actions_own_is_kept_and_flagged() {
        let open = open_action();
        let cent = ActionEvent::PaymentSucceeded {
            session_id: sid("cs_x"),
            payment_intent: Some(pi("pi_x")),
            charged: charged(1),
        };
        let flagged = step(&open, cent);
        assert_eq!((flagged.action.status(), flagged.invoices), (ActionStatus::CheckoutOpen, InvoiceEffect::Unchanged));
        let late = &flagged.action.late().payments()[0];
        assert_eq!((late.amount, late.reason.contains("it is for 1, not 4500")), (Some(1), true));
        assert!(flagged.action.refund_needed());
        let unstated = ActionEvent::PaymentSucceeded { session_id: sid("cs_y"), payment_intent: None, charged: None };
        assert_eq!(step(&open, unstated).action.status(), ActionStatus::CheckoutOpen, "unstated charges pay nothing");
        // The real payment still lands.
        assert_eq!(step(&flagged.action, paid("cs_1")).action.status(), ActionStatus::Paid);
        // Only the current session moves an action without money.
        assert!(!step(&open, ActionEvent::PaymentProcessing { session_id: sid("cs_x") }).changed);
        assert!(!step(&open, ActionEvent::PaymentFailed { session_id: sid("cs_x") }).changed);
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
        let failed = step(&rest, refunded("pi_cs_9", &[("re_2", 4400, Failed)]));
        assert!(failed.action.refund_needed(), "a failed refund leaves it owed back");
        assert_eq!(failed.action.status(), ActionStatus::Cancelled);
        assert_eq!(failed.outcomes, [Outcome::RefundFailed, Outcome::RefundNeeded], "both heard of");
    }

    /// Bounded: past MAX_LATE_PAYMENTS the caller records the payment apart.
    #[test]
    fn late_payments_are_bounded() {
        let mut a = step(&action(), cancel()).action;
        for n in 0..MAX_LATE_PAYMENTS {
            a = step(&a, paid(&format!("cs_{n}"))).action;
        }
        assert_eq!(
            a.apply(&paid("cs_more"), t(10), &stripe()).unwrap_err(),
            DomainError::LatePaymentsFull(MAX_LATE_PAYMENTS)
        );
    }

    /// The invoices a payment was for, collected again while its refund was
    /// under way and before that refund failed: the payment must go back.
    #[test]
    fn invoices_collected_elsewhere_make_the_payment_owed_back() {
        let paid = paid_action();
        let again = paid.collected_elsewhere(vec![InvoiceId::parse("1").unwrap()]);
        assert!(again.changed && again.action.refund_needed());
        assert_eq!(again.outcomes, [Outcome::RefundNeeded]);
        let twice = again.action.collected_elsewhere(vec![InvoiceId::parse("1").unwrap()]);
        assert!(!twice.changed && twice.outcomes.is_empty(), "told twice");
        let refunded = step(&again.action, refunded("pi_cs", &[("re_1", 4500, RefundState::Pending)])).action;
        assert!(!refunded.refund_needed(), "nothing left to give back");
    }
}
