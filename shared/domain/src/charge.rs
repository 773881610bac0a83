//! What Stripe says happened to money: what a session charged, a refund's
//! life, a dispute's life. Stripe promises no order and delivers twice, so
//! each record only ever moves forward (`merge`): a late or repeated event can
//! never undo a later one.

use serde::{Deserialize, Serialize};

use super::{DisputeId, Money, PaymentIntentId, RefundId, StripeAccountId};

/// An id that older records kept as an empty string when unknown.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PaymentIntentId>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => PaymentIntentId::parse(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// What a completed Checkout Session says it charged, as Stripe said it
/// (`amount_total`, `currency`, `mode`, and the account the event came from).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Charged {
    /// Why this is not the payment of an action of `total` on `account`, or
    /// `None` if it is. Anything Stripe did not say is a reason.
    pub fn mismatch(&self, total: &Money, account: &StripeAccountId) -> Option<String> {
        let (amount, currency) = (total.amount, total.currency);
        if self.account.as_deref() != Some(account.as_str()) {
            return Some(format!("it was taken on account {}", self.account.as_deref().unwrap_or("(unstated)")));
        }
        if self.mode.as_deref() != Some("payment") {
            return Some(format!("its session's mode is {}", self.mode.as_deref().unwrap_or("(unstated)")));
        }
        if self.currency.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(currency.code()) {
            return Some(format!("it is in {}", self.currency.as_deref().unwrap_or("(unstated currency)")));
        }
        if self.amount != Some(amount) {
            return Some(match self.amount {
                Some(a) => format!("it is for {a}, not {amount}"),
                None => "its amount is unstated".into(),
            });
        }
        None
    }
}

/// A refund's status at Stripe. `pending` and `requires_action` may still
/// end `failed` or `canceled`; even `succeeded` may later fail (Stripe: "a
/// refund can transition from succeeded to failed" for some methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    Pending,
    RequiresAction,
    /// Records from before statuses were kept were all refunds that moved money.
    #[default]
    Succeeded,
    Failed,
    Canceled,
}

impl RefundState {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::RequiresAction => "requires_action",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
    /// The money left, or is on its way, back to the patient.
    pub fn moves_money(self) -> bool {
        matches!(self, Self::Pending | Self::RequiresAction | Self::Succeeded)
    }
    pub fn is_final_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Canceled)
    }
    /// Order of a refund's life; a record never moves back.
    fn rank(self) -> u8 {
        match self {
            Self::Pending | Self::RequiresAction => 0,
            Self::Succeeded => 1,
            Self::Failed | Self::Canceled => 2,
        }
    }
}

/// How the patient paid, as Stripe's charge reports it
/// (`payment_method_details`): its type, and a card's brand and last 4 or a
/// bank debit's last 4. Never more than a receipt shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    /// `card`, `acss_debit`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
}

impl PaymentMethod {
    /// As a receipt says it: `Visa •••• 4242`, `Débit préautorisé •••• 6789`.
    pub fn describe(&self, words: &visitpay_words::PaymentMethodWords) -> String {
        let name = match (self.kind.as_str(), self.brand.as_deref()) {
            ("card", Some(brand)) => match brand {
                "amex" => "American Express".to_owned(),
                "mastercard" => "Mastercard".to_owned(),
                "visa" => "Visa".to_owned(),
                other => other.to_owned(),
            },
            ("card", None) => words.card.to_owned(),
            ("acss_debit", _) => words.pre_authorized_debit.to_owned(),
            (other, _) => other.to_owned(),
        };
        match &self.last4 {
            Some(last4) => format!("{name} •••• {last4}"),
            None => name,
        }
    }
}

/// One refund of a payment, by Stripe's id; its amount in the payment's
/// currency (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub refund_id: RefundId,
    pub amount: i64,
    #[serde(default)]
    pub status: RefundState,
}

impl RefundRecord {
    pub fn new(refund_id: RefundId, amount: i64, status: RefundState) -> Self {
        RefundRecord { refund_id, amount, status }
    }
}

/// What merging refunds changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefundsMerged {
    pub added: Vec<RefundRecord>,
    /// Refunds whose status moved, with the new status.
    pub moved: Vec<RefundRecord>,
}

impl RefundsMerged {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.moved.is_empty()
    }
    /// Refunds that just ended without moving money.
    pub fn failures(&self) -> impl Iterator<Item = &RefundRecord> {
        self.added.iter().chain(&self.moved).filter(|r| r.status.is_final_failure())
    }
}

/// Merges what Stripe says of refunds into `known`: new ones are added, known
/// ones only move forward.
pub fn merge_refunds(known: &mut Vec<RefundRecord>, seen: &[RefundRecord]) -> RefundsMerged {
    let mut merged = RefundsMerged::default();
    for r in seen {
        match known.iter_mut().find(|k| k.refund_id == r.refund_id) {
            None => {
                known.push(r.clone());
                merged.added.push(r.clone());
            }
            Some(k) if r.status.rank() > k.status.rank() => {
                k.status = r.status;
                merged.moved.push(k.clone());
            }
            Some(_) => {}
        }
    }
    merged
}

/// What a payment's refunds add up to: money gone or on its way back.
pub fn refunded_total(refunds: &[RefundRecord]) -> i64 {
    refunds.iter().filter(|r| r.status.moves_money()).map(|r| r.amount).sum()
}

/// A dispute's status at Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    WarningNeedsResponse,
    WarningUnderReview,
    WarningClosed,
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
    Prevented,
}

impl DisputeStatus {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WarningNeedsResponse => "warning_needs_response",
            Self::WarningUnderReview => "warning_under_review",
            Self::WarningClosed => "warning_closed",
            Self::NeedsResponse => "needs_response",
            Self::UnderReview => "under_review",
            Self::Won => "won",
            Self::Lost => "lost",
            Self::Prevented => "prevented",
        }
    }
    pub fn is_closed(self) -> bool {
        matches!(self, Self::WarningClosed | Self::Won | Self::Lost | Self::Prevented)
    }
    /// Order of a dispute's life; a record never moves back.
    fn rank(self) -> u8 {
        match self {
            Self::WarningNeedsResponse | Self::NeedsResponse => 0,
            Self::WarningUnderReview | Self::UnderReview => 1,
            Self::WarningClosed | Self::Won | Self::Lost | Self::Prevented => 2,
        }
    }
}

/// One dispute of a payment, as Stripe last told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeRecord {
    pub dispute_id: DisputeId,
    /// The payment disputed (the action's own, or a late one); `None` on
    /// records kept before disputes named it.
    #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<PaymentIntentId>,
    pub amount: i64,
    pub status: DisputeStatus,
    /// Stripe took the disputed amount from the clinic's balance
    /// (`charge.dispute.funds_withdrawn`).
    #[serde(default)]
    pub funds_withdrawn: bool,
    /// ... and gave it back (`charge.dispute.funds_reinstated`, a won dispute).
    #[serde(default)]
    pub funds_reinstated: bool,
}

impl DisputeRecord {
    /// Money the dispute took from the clinic and kept.
    pub fn withdrawn(&self) -> i64 {
        let lost = self.status == DisputeStatus::Lost || self.funds_withdrawn;
        if lost && !self.funds_reinstated && self.status != DisputeStatus::Won {
            self.amount
        } else {
            0
        }
    }
    /// Stripe refuses refunds of the charge meanwhile: a chargeback under
    /// way or lost (an inquiry, `warning_*`, or a won dispute does not).
    pub fn blocks_refunds(&self) -> bool {
        matches!(self.status, DisputeStatus::NeedsResponse | DisputeStatus::UnderReview | DisputeStatus::Lost)
    }

    /// `won` or `lost` once closed.
    pub fn outcome(&self) -> Option<&'static str> {
        match self.status {
            DisputeStatus::Won | DisputeStatus::WarningClosed | DisputeStatus::Prevented => Some("won"),
            DisputeStatus::Lost => Some("lost"),
            _ => None,
        }
    }
}

/// Merges what Stripe says of a dispute into `known`; `true` if anything moved.
pub fn merge_dispute(known: &mut Vec<DisputeRecord>, seen: &DisputeRecord) -> bool {
    match known.iter_mut().find(|k| k.dispute_id == seen.dispute_id) {
        None => {
            known.push(seen.clone());
            true
        }
        Some(k) => {
            let before = k.clone();
            if seen.status.rank() > k.status.rank() {
                k.status = seen.status;
            }
            k.funds_withdrawn |= seen.funds_withdrawn;
            k.funds_reinstated |= seen.funds_reinstated;
            *k != before
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    #[test]
    fn refunds_only_move_forward_whatever_the_order() {
        let re = RefundId::parse("re_1").unwrap();
        let pending = RefundRecord::new(re.clone(), 500, RefundState::Pending);
        let failed = RefundRecord::new(re.clone(), 500, RefundState::Failed);
        let succeeded = RefundRecord::new(re, 500, RefundState::Succeeded);
        let mut known = Vec::new();
        assert_eq!(merge_refunds(&mut known, &[pending.clone()]).added, vec![pending.clone()]);
        assert_eq!(refunded_total(&known), 500, "a pending refund counts: the money is on its way");
        let moved = merge_refunds(&mut known, &[failed.clone()]);
        assert_eq!(moved.failures().count(), 1);
        assert_eq!(refunded_total(&known), 0, "a failed refund gives the money back to the clinic");
        for late in [pending, succeeded] {
            assert!(merge_refunds(&mut known, &[late]).is_empty(), "an older status never undoes a failure");
        }
        assert_eq!(known, vec![failed]);
    }

    #[test]
    fn disputes_only_move_forward_and_a_lost_one_keeps_the_money() {
        let open = DisputeRecord {
            dispute_id: DisputeId::parse("dp_1").unwrap(),
            payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
            amount: 4500,
            status: DisputeStatus::NeedsResponse,
            funds_withdrawn: false,
            funds_reinstated: false,
        };
        let mut known = vec![];
        assert!(merge_dispute(&mut known, &open));
        assert!(!merge_dispute(&mut known, &open), "the same event twice");
        assert!(merge_dispute(&mut known, &DisputeRecord { funds_withdrawn: true, ..open.clone() }));
        assert_eq!(known[0].withdrawn(), 4500);
        assert!(merge_dispute(&mut known, &DisputeRecord { status: DisputeStatus::Lost, ..open.clone() }));
        assert!(!merge_dispute(&mut known, &DisputeRecord { status: DisputeStatus::UnderReview, ..open.clone() }));
        assert_eq!(
            (known[0].status, known[0].outcome(), known[0].withdrawn()),
            (DisputeStatus::Lost, Some("lost"), 4500)
        );

        let mut won = vec![DisputeRecord { funds_withdrawn: true, ..open.clone() }];
        merge_dispute(&mut won, &DisputeRecord { funds_reinstated: true, status: DisputeStatus::Won, ..open });
        assert_eq!((won[0].outcome(), won[0].withdrawn()), (Some("won"), 0));
    }

    #[test]
    fn a_payment_counts_only_if_stripe_said_it_is_the_actions() {
        let cad = Currency::parse("cad").unwrap();
        let acct = StripeAccountId::parse("acct_1").unwrap();
        let right = Charged {
            amount: Some(4500),
            currency: Some("cad".into()),
            mode: Some("payment".into()),
            account: Some("acct_1".into()),
        };
        let total = Money::new(4500, cad).unwrap();
        assert_eq!(right.mismatch(&total, &acct), None);
        let wrong = [
            Charged { amount: Some(1), ..right.clone() },
            Charged { amount: None, ..right.clone() },
            Charged { currency: Some("usd".into()), ..right.clone() },
            Charged { mode: Some("setup".into()), ..right.clone() },
            Charged { account: Some("acct_2".into()), ..right.clone() },
            Charged { account: None, ..right },
        ];
        for c in wrong {
            assert!(c.mismatch(&total, &acct).is_some(), "{c:?}");
        }
    }
}
