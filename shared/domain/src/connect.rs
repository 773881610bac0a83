//! A clinic's connected Stripe account as Stripe last described it (a
//! retrieve, or `account.updated`), and its payouts traced to the actions
//! and invoices they paid.

use serde::{Deserialize, Serialize};

use crate::{ActionId, Currency, DomainError, InvoiceId, PaymentIntentId, StripeAccountId, Timestamp};

/// At most this many requirements are kept (Stripe lists a few dozen at
/// most; each a dotted field name).
const MAX_REQUIREMENTS: usize = 50;
const MAX_REQUIREMENT_CHARS: usize = 120;

/// What Stripe says the account can do, and what it still needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHealth {
    pub id: StripeAccountId,
    /// Stripe: "Whether the account can process charges."
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    /// Whether the clinic went through Stripe's onboarding to its end.
    pub details_submitted: bool,
    /// `requirements.currently_due` and `past_due`: what the clinic must
    /// still give Stripe (field names, never values).
    pub requirements_due: Vec<String>,
    /// `requirements.disabled_reason`, e.g. `requirements.past_due`.
    pub disabled_reason: Option<String>,
    /// When Stripe said so: an event's `created`, or when we asked. An older
    /// word never replaces a newer one (events come in any order).
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: Timestamp,
}

impl AccountHealth {
    /// Stripe's description, bounded and cleaned: requirements are sorted,
    /// without duplicates, each a short printable field name.
    pub fn new(
        id: StripeAccountId,
        charges_enabled: bool,
        payouts_enabled: bool,
        details_submitted: bool,
        requirements_due: Vec<String>,
        disabled_reason: Option<String>,
        as_of: Timestamp,
    ) -> Self {
        let mut requirements: Vec<String> = requirements_due
            .into_iter()
            .filter(|r| !r.is_empty() && r.chars().count() <= MAX_REQUIREMENT_CHARS && !r.chars().any(char::is_control))
            .collect();
        requirements.sort();
        requirements.dedup();
        requirements.truncate(MAX_REQUIREMENTS);
        let disabled_reason = disabled_reason.filter(|r| {
            !r.is_empty() && r.chars().count() <= MAX_REQUIREMENT_CHARS && !r.chars().any(char::is_control)
        });
        AccountHealth {
            id,
            charges_enabled,
            payouts_enabled,
            details_submitted,
            requirements_due: requirements,
            disabled_reason,
            // Stripe dates its events to the second (`created`): a read made
            // at 12:00:00.700 must not outrank the account.updated of
            // 12:00:00 that follows it, or onboarding finished within the
            // second of the account's making is lost as "stale". The price:
            // an event of that same second that came before the read wins
            // over it too; the next account.updated (or check) says it again.
            // Within one second, Stripe's order cannot be told anyway.
            as_of: as_of.replace_nanosecond(0).unwrap_or(as_of),
        }
    }

    /// Whether `newer` may replace this description: the same account, said later.
    pub fn superseded_by(&self, newer: &AccountHealth) -> bool {
        newer.id == self.id && newer.as_of >= self.as_of
    }

    /// Payments can be taken on the account now, or why not.
    pub fn can_take_payments(&self) -> Result<(), DomainError> {
        if self.charges_enabled {
            Ok(())
        } else {
            Err(DomainError::StripeAccountRestricted)
        }
    }
}

/// What one balance transaction of a payout is, for the clinic's books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutLineKind {
    /// A patient's payment (its Stripe fee in `fee`).
    Charge,
    /// A refund to a patient.
    Refund,
    /// Money withdrawn for a dispute (and its fee).
    DisputeWithdrawal,
    /// Money given back when a dispute was won.
    DisputeReinstatement,
    /// A fee Stripe charged on its own line.
    StripeFee,
    /// The payout itself (its amount, negative: the money leaving the balance).
    Payout,
    /// Anything else (an adjustment, a transfer…), shown as Stripe names it.
    Other,
}

impl PayoutLineKind {
    /// From the balance transaction's `type` and `reporting_category`
    /// (Stripe's "Reporting categories" page: a dispute is an `adjustment`
    /// of category `dispute`, a won one `dispute_reversal`).
    pub fn of(transaction_type: &str, reporting_category: &str) -> Self {
        match (transaction_type, reporting_category) {
            ("charge" | "payment", _) => PayoutLineKind::Charge,
            ("refund" | "payment_refund", _) => PayoutLineKind::Refund,
            (_, "dispute") => PayoutLineKind::DisputeWithdrawal,
            (_, "dispute_reversal") => PayoutLineKind::DisputeReinstatement,
            ("stripe_fee", _) | (_, "fee") => PayoutLineKind::StripeFee,
            ("payout", _) => PayoutLineKind::Payout,
            _ => PayoutLineKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutLineKind::Charge => "charge",
            PayoutLineKind::Refund => "refund",
            PayoutLineKind::DisputeWithdrawal => "dispute_withdrawal",
            PayoutLineKind::DisputeReinstatement => "dispute_reinstatement",
            PayoutLineKind::StripeFee => "stripe_fee",
            PayoutLineKind::Payout => "payout",
            PayoutLineKind::Other => "other",
        }
    }
}

/// One balance transaction of a payout, traced to what it paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutLine {
    /// Stripe's balance transaction id (`txn_…`).
    pub transaction_id: String,
    pub kind: PayoutLineKind,
    /// Stripe's `type`, kept for "other" lines and for the curious.
    pub stripe_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: Timestamp,
    /// In minor units: the gross, Stripe's fee on it, and what reached the
    /// balance (`net = gross - fee`).
    pub gross: i64,
    pub fee: i64,
    pub net: i64,
    /// The payment it is about, and the action and invoices that payment
    /// settled; `None` for what is not visitpay's (other software's charges,
    /// Stripe's own lines).
    pub payment_intent: Option<PaymentIntentId>,
    pub action_id: Option<ActionId>,
    pub invoice_ids: Vec<InvoiceId>,
}

/// A payout's state, as Stripe last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Pending,
    InTransit,
    Paid,
    Failed,
    Canceled,
}

impl PayoutStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => PayoutStatus::Pending,
            "in_transit" => PayoutStatus::InTransit,
            "paid" => PayoutStatus::Paid,
            "failed" => PayoutStatus::Failed,
            "canceled" => PayoutStatus::Canceled,
            _ => return None,
        })
    }

    /// A payout that can still fail after `paid` (Stripe: within 5 business
    /// days) moves forward only; `failed` and `canceled` are final.
    fn rank(self) -> u8 {
        match self {
            PayoutStatus::Pending => 0,
            PayoutStatus::InTransit => 1,
            PayoutStatus::Paid => 2,
            PayoutStatus::Failed | PayoutStatus::Canceled => 3,
        }
    }
}

/// A payout as Stripe's event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutFacts {
    pub id: String,
    pub amount: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub arrival_date: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    /// The event's `created`: when Stripe said so.
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: Timestamp,
}

/// A payout to the clinic's bank, with what it paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub payout_id: String,
    pub account: StripeAccountId,
    pub amount: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    #[doc = "When Stripe made it, and when it is expected in the bank."]
    pub created: Timestamp,
    pub arrival_date: Timestamp,
    pub failure_code: Option<String>,
    /// The sum of the lines' nets other than the payout's own: what the
    /// payout should be.
    pub lines_net: i64,
    pub line_count: u32,
    /// When Stripe said what this records (the event's `created`).
    pub as_of: Timestamp,
}

impl Payout {
    /// Whether its lines add up to it, to the cent.
    pub fn reconciles(&self) -> bool {
        self.lines_net == self.amount
    }

    /// What a newer word from Stripe (`next`) makes of this payout: its
    /// status only moves forward, and an older word changes nothing.
    pub fn updated_by(&self, next: &Payout) -> bool {
        next.as_of >= self.as_of && next.status.rank() >= self.status.rank()
    }

    /// The total of the lines that are not the payout's own.
    pub fn lines_net(lines: &[PayoutLine]) -> i64 {
        lines.iter().filter(|l| l.kind != PayoutLineKind::Payout).map(|l| l.net).sum()
    }

    /// The payout Stripe describes, with the lines it paid.
    pub fn of(account: StripeAccountId, facts: &PayoutFacts, lines: &[PayoutLine]) -> Payout {
        Payout {
            payout_id: facts.id.clone(),
            account,
            amount: facts.amount,
            currency: facts.currency,
            status: facts.status,
            created: facts.created,
            arrival_date: facts.arrival_date,
            failure_code: facts.failure_code.clone(),
            lines_net: Payout::lines_net(lines),
            line_count: u32::try_from(lines.len()).unwrap_or(u32::MAX),
            as_of: facts.as_of,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn stripes_description_is_bounded_and_an_older_one_never_wins() {
        let acct = StripeAccountId::parse("acct_1").unwrap();
        let h = AccountHealth::new(
            acct.clone(),
            false,
            false,
            false,
            vec!["external_account".into(), "tos_acceptance.date".into(), "external_account".into(), "bad\n".into()],
            Some("requirements.past_due".into()),
            t(10),
        );
        assert_eq!(h.requirements_due, ["external_account", "tos_acceptance.date"]);
        assert_eq!(h.can_take_payments(), Err(DomainError::StripeAccountRestricted));
        let older = AccountHealth { as_of: t(5), charges_enabled: true, ..h.clone() };
        assert!(!h.superseded_by(&older));
        let newer = AccountHealth { as_of: t(20), charges_enabled: true, ..h.clone() };
        assert!(h.superseded_by(&newer) && newer.can_take_payments().is_ok());
        let other = AccountHealth { id: StripeAccountId::parse("acct_2").unwrap(), ..newer };
        assert!(!h.superseded_by(&other), "another account's word is not this one's");
    }

    #[test]
    fn an_event_of_the_same_second_as_a_read_supersedes_it() {
        // The account made (and read) at .700; Stripe's account.updated of
        // that second says `created` = the whole second.
        let acct = StripeAccountId::parse("acct_1").unwrap();
        let read_at = t(10) + time::Duration::milliseconds(700);
        let read = AccountHealth::new(acct.clone(), false, false, false, vec![], None, read_at);
        assert_eq!(read.as_of, t(10));
        let event = AccountHealth::new(acct, true, true, true, vec![], None, t(10));
        assert!(read.superseded_by(&event), "onboarding completed within the second is applied");
    }

    /// Stripe's "Reporting categories": type and category to what the clinic reads.
    #[test]
    fn balance_transactions_are_read_by_type_and_category() {
        use PayoutLineKind::*;
        let cases = [
            (("charge", "charge"), Charge),
            (("payment", "charge"), Charge),
            (("refund", "refund"), Refund),
            (("payment_refund", "refund"), Refund),
            (("adjustment", "dispute"), DisputeWithdrawal),
            (("adjustment", "dispute_reversal"), DisputeReinstatement),
            (("stripe_fee", "fee"), StripeFee),
            (("payout", "payout"), Payout),
            (("adjustment", "other_adjustment"), Other),
            (("transfer", "transfer"), Other),
        ];
        for ((t, c), want) in cases {
            assert_eq!(PayoutLineKind::of(t, c), want, "{t}/{c}");
        }
    }

    #[test]
    fn a_payout_only_moves_forward() {
        let p = super::Payout {
            payout_id: "po_1".into(),
            account: StripeAccountId::parse("acct_1").unwrap(),
            amount: 1000,
            currency: Currency::parse("cad").unwrap(),
            status: PayoutStatus::Paid,
            created: t(0),
            arrival_date: t(86_400),
            failure_code: None,
            lines_net: 1000,
            line_count: 2,
            as_of: t(10),
        };
        assert!(p.reconciles());
        let failed = super::Payout { status: PayoutStatus::Failed, as_of: t(20), ..p.clone() };
        assert!(p.updated_by(&failed));
        let late_paid = super::Payout { status: PayoutStatus::Paid, as_of: t(30), ..failed.clone() };
        assert!(!failed.updated_by(&late_paid), "failed is final");
        let stale = super::Payout { status: PayoutStatus::InTransit, as_of: t(5), ..p.clone() };
        assert!(!p.updated_by(&stale));
    }
}
