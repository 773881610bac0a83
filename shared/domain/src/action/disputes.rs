//! Disputes of the action's payments, followed to their outcome.

use super::{stay, Action, Outcome, Step};
use crate::charge::merge_dispute;
use crate::{DisputeRecord, PaymentIntentId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disputes {
    pub(crate) records: Vec<DisputeRecord>,
    /// Some dispute is open (or one was, reported before disputes were followed).
    pub(crate) disputed: bool,
}

/// What merging a dispute did.
pub(crate) struct Merged {
    /// A dispute visitpay had not heard of.
    pub new: bool,
    /// It closed lost just now.
    pub lost: bool,
}

impl Disputes {
    pub fn new(records: Vec<DisputeRecord>, disputed: bool) -> Self {
        Disputes { records, disputed }
    }

    pub fn records(&self) -> &[DisputeRecord] {
        &self.records
    }

    pub fn disputed(&self) -> bool {
        self.disputed
    }

    /// Merges what Stripe says of a dispute; `None` when nothing moved.
    pub(crate) fn merge(&mut self, seen: &DisputeRecord) -> Option<Merged> {
        let known_before = self.records.iter().find(|d| d.dispute_id == seen.dispute_id).cloned();
        if !merge_dispute(&mut self.records, seen) {
            return None;
        }
        self.disputed = self.records.iter().any(|d| !d.status.is_closed());
        let now = self.get(seen).expect("merged");
        let was_lost = known_before.as_ref().is_some_and(|d| d.outcome() == Some("lost"));
        Some(Merged { new: known_before.is_none(), lost: now.outcome() == Some("lost") && !was_lost })
    }

    /// The legacy "payment disputed" signal; `false` if already disputed.
    pub(crate) fn flag(&mut self) -> bool {
        let newly = !self.disputed;
        self.disputed = true;
        newly
    }

    pub(crate) fn get(&self, seen: &DisputeRecord) -> Option<&DisputeRecord> {
        self.records.iter().find(|d| d.dispute_id == seen.dispute_id)
    }

    /// What disputes took back of a payment.
    pub fn withdrawn_from(&self, payment_intent: &PaymentIntentId) -> i64 {
        self.records.iter().filter(|d| d.payment_intent.as_ref() == Some(payment_intent)).map(|d| d.withdrawn()).sum()
    }

    /// A dispute stops refunds of a payment while it is more than an inquiry
    /// and not won (Stripe: "has been charged back; cannot issue a refund");
    /// a lost one took the money already.
    pub fn block_refunds_of(&self, payment_intent: Option<&PaymentIntentId>) -> bool {
        self.records.iter().any(|d| d.payment_intent.as_ref() == payment_intent && d.blocks_refunds())
    }
}

/// What a history entry says of a dispute.
fn reason(d: &DisputeRecord) -> String {
    match d.outcome() {
        Some("lost") => format!("dispute {} lost: {} withdrawn", d.dispute_id, d.withdrawn()),
        Some(_) => format!("dispute {} closed in the clinic's favour", d.dispute_id),
        None if d.funds_withdrawn => format!("dispute {}: {} withdrawn pending the outcome", d.dispute_id, d.amount),
        None => format!("payment disputed ({}): {}", d.dispute_id, d.status.as_str()),
    }
}

impl Action {
    /// A dispute of one of the action's payments moved, as Stripe reported it.
    pub(crate) fn dispute_moved(
        &mut self,
        payment_intent: &PaymentIntentId,
        dispute: &DisputeRecord,
        outcomes: &mut Vec<Outcome>,
    ) -> Step {
        let mut seen = dispute.clone();
        if seen.payment_intent.is_none() {
            seen.payment_intent = Some(payment_intent.clone());
        }
        let disputed_before = self.disputes.disputed;
        let Some(merged) = self.disputes.merge(&seen) else { return Step::Unchanged };
        if merged.new || (self.disputes.disputed && !disputed_before) {
            outcomes.push(Outcome::DisputeOpened);
        }
        if merged.lost {
            outcomes.push(Outcome::DisputeLost);
        }
        // A lost dispute of a late payment gave that money back too.
        let withdrawn = self.disputes.withdrawn_from(payment_intent);
        self.late.disputed(payment_intent, withdrawn);
        let d = self.disputes.get(&seen).expect("merged");
        stay(self.status, reason(d), Some(d.amount))
    }

    /// A dispute opened, from signals queued before disputes were followed.
    pub(crate) fn dispute_flagged(&mut self, outcomes: &mut Vec<Outcome>) -> Step {
        if !self.disputes.flag() {
            return Step::Unchanged;
        }
        outcomes.push(Outcome::DisputeOpened);
        stay(self.status, "payment disputed".into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{ActionEvent, ActionStatus, DisputeId, DisputeStatus, DomainError};

    fn dispute(status: DisputeStatus, withdrawn: bool) -> ActionEvent {
        ActionEvent::Dispute {
            payment_intent: pi("pi_cs"),
            dispute: DisputeRecord {
                dispute_id: DisputeId::parse("dp_1").unwrap(),
                payment_intent: Some(pi("pi_cs")),
                amount: 4500,
                status,
                funds_withdrawn: withdrawn,
                funds_reinstated: false,
            },
        }
    }

    #[test]
    fn a_dispute_has_a_life_and_a_lost_one_takes_the_money() {
        let paid = paid_action();
        let open = step(&paid, dispute(DisputeStatus::NeedsResponse, false));
        assert_eq!(open.outcomes, [Outcome::DisputeOpened]);
        let open = open.action;
        assert!(open.disputed());
        assert_eq!(open.kept(), cad(4500));
        let withdrawn = step(&open, dispute(DisputeStatus::NeedsResponse, true));
        assert!(withdrawn.outcomes.is_empty(), "the same dispute, heard of once");
        let withdrawn = withdrawn.action;
        assert_eq!(withdrawn.kept(), cad(0), "Stripe took the disputed amount");
        let lost = step(&withdrawn, dispute(DisputeStatus::Lost, false));
        assert_eq!(lost.outcomes, [Outcome::DisputeLost]);
        let lost = lost.action;
        assert!(!lost.disputed(), "closed");
        assert_eq!(
            (lost.disputes().records()[0].outcome(), lost.kept(), lost.status()),
            (Some("lost"), cad(0), ActionStatus::Paid)
        );
        assert!(lost.history().entries().last().unwrap().reason.contains("lost: 4500 withdrawn"));
        assert!(!step(&lost, dispute(DisputeStatus::UnderReview, false)).changed, "a stale update");
    }

    /// Stripe refuses to refund a charge under a chargeback ("has been
    /// charged back"); an inquiry (`warning_*`) does not stop refunds.
    #[test]
    fn a_chargeback_stops_refunds_an_inquiry_does_not() {
        let inquiry = step(&paid_action(), dispute(DisputeStatus::WarningNeedsResponse, false)).action;
        assert_eq!(inquiry.refund_amount(None), Ok(4500));
        let chargeback = step(&paid_action(), dispute(DisputeStatus::NeedsResponse, false)).action;
        assert_eq!(chargeback.refund_amount(None), Err(DomainError::PaymentDisputed));
    }

    #[test]
    fn the_old_disputed_signal_flags_once() {
        let flagged = step(&paid_action(), ActionEvent::Disputed);
        assert!(flagged.action.disputed() && flagged.outcomes == [Outcome::DisputeOpened]);
        assert!(!step(&flagged.action, ActionEvent::Disputed).changed);
    }
}
