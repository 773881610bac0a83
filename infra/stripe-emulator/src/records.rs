//! The emulator's records: what it keeps of each Stripe object, as plain
//! data. The store (`store`) changes them by Stripe's rules; `objects`
//! renders them in Stripe's wire shapes. Neither is imported here.

use serde_json::{Map, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Complete => "complete",
            Self::Expired => "expired",
        }
    }
}

pub(crate) struct LineItem {
    pub id: String,
    pub price_id: String,
    pub product_id: String,
    pub name: String,
    pub currency: String,
    pub unit_amount: i64,
    pub quantity: i64,
    pub created: i64,
}

impl LineItem {
    pub(crate) fn amount(&self) -> i64 {
        self.unit_amount.saturating_mul(self.quantity)
    }
}

/// What `payment_intent_data` asked the future PaymentIntent to carry.
#[derive(Default)]
pub(crate) struct PaymentIntentData {
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
}

pub(crate) struct Session {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub expires_at: i64,
    pub status: SessionStatus,
    pub paid: bool,
    pub currency: String,
    pub amount_total: i64,
    pub line_items: Vec<LineItem>,
    pub url: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: Map<String, Value>,
    pub locale: Option<String>,
    pub payment_method_types: Vec<String>,
    pub payment_intent_data: PaymentIntentData,
    pub payment_intent: Option<String>,
}

pub(crate) struct PaymentIntent {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub status: &'static str,
    pub method_type: &'static str,
    pub payment_method: String,
    pub client_secret: String,
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub latest_charge: Option<String>,
    pub failure_message: Option<String>,
    pub receipt_email: Option<String>,
}

pub(crate) struct Charge {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: String,
    pub payment_method: String,
    pub method_type: String,
    pub refunds: Vec<String>,
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub billing_email: Option<String>,
    pub balance_transaction: String,
    pub dispute: Option<String>,
}

pub(crate) struct Refund {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    pub payment_intent: String,
    pub payment_method: String,
    pub method_type: String,
    pub metadata: Map<String, Value>,
    pub reason: Option<String>,
    pub balance_transaction: String,
    pub status: RefundStatus,
    pub failure_reason: Option<String>,
}

/// "Status of the refund. This can be `pending`, `requires_action`,
/// `succeeded`, `failed`, or `canceled`" (Stripe API reference, Refund).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::RequiresAction => "requires_action",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "requires_action" => Self::RequiresAction,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }
    /// Money on its way back to the patient, or already there.
    pub(crate) fn counts(self) -> bool {
        matches!(self, Self::Pending | Self::RequiresAction | Self::Succeeded)
    }
}

/// A dispute of a charge ("Possible values include: warning_needs_response,
/// warning_under_review, warning_closed, needs_response, under_review, won,
/// lost, or prevented", Stripe API reference, Dispute).
pub(crate) struct Dispute {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    pub payment_intent: String,
    pub reason: String,
    pub status: String,
    /// Withdrawals (negative) and reinstatements (positive) of the disputed funds.
    pub balance_transactions: Vec<(String, i64)>,
}

impl Dispute {
    /// Whether the charge may still be refunded (Stripe's `is_charge_refundable`):
    /// during an inquiry (`warning_*`), or once the dispute is won.
    pub(crate) fn charge_refundable(&self) -> bool {
        self.status.starts_with("warning_") || self.status == "won"
    }
}

/// Which API request (if any) caused an event: Stripe's `event.request`.
#[derive(Clone, Default)]
pub(crate) struct Origin {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(crate) struct Event {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub kind: String,
    /// Snapshot of the object at emission time, as Stripe does.
    pub object: Value,
    pub origin: Origin,
    pub pending_webhooks: i64,
    pub livemode: bool,
}

/// The first response to an idempotent request, replayed for identical retries.
pub(crate) struct IdempotentResponse {
    pub method: String,
    pub path: String,
    pub params: Value,
    pub status: u16,
    pub body: Value,
    pub created: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Succeeded,
    Declined,
    DelayedSucceeded,
    DelayedFailed,
}

impl Outcome {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "succeeded" => Self::Succeeded,
            "declined" => Self::Declined,
            "delayed_succeeded" => Self::DelayedSucceeded,
            "delayed_failed" => Self::DelayedFailed,
            _ => return None,
        })
    }
}

/// What refunds of card payments start as (`POST /test/refunds/behaviour`):
/// card refunds usually succeed at once; bank debits' refunds are `pending`
/// whatever this says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RefundStart {
    Succeeded,
    Pending,
    RequiresAction,
}

/// A connected account: whether it is still connected to the platform, and
/// what Stripe says it can do (`charges_enabled`, `requirements`).
pub(crate) struct Account {
    pub connected: bool,
    pub created: i64,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    /// `requirements.currently_due` (and, with a `disabled_reason` of
    /// `requirements.past_due`, past due too).
    pub requirements_due: Vec<String>,
    pub disabled_reason: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

/// What a new account owes Stripe before it can take charges (the fixture's
/// `requirements.currently_due`, fixtures3.json `account`).
pub(crate) const NEW_ACCOUNT_REQUIREMENTS: &[&str] = &[
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
];

impl Account {
    /// An account already onboarded (a clinic connecting its existing account).
    pub(crate) fn ready(created: i64) -> Self {
        Account {
            connected: true,
            created,
            charges_enabled: true,
            payouts_enabled: true,
            details_submitted: true,
            requirements_due: Vec::new(),
            disabled_reason: None,
            metadata: Default::default(),
        }
    }

    /// An account the platform just made: it can do nothing until onboarded
    /// (the fixture's `charges_enabled: false`, `disabled_reason:
    /// "requirements.past_due"`).
    pub(crate) fn created(created: i64, metadata: serde_json::Map<String, Value>) -> Self {
        Account {
            connected: true,
            created,
            charges_enabled: false,
            payouts_enabled: false,
            details_submitted: false,
            requirements_due: NEW_ACCOUNT_REQUIREMENTS.iter().map(|r| (*r).to_owned()).collect(),
            disabled_reason: Some("requirements.past_due".into()),
            metadata,
        }
    }
}

/// An Account Link: single use, valid five minutes (the API reference's
/// example: `expires_at` 300 s after `created`).
pub(crate) struct AccountLink {
    pub account: String,
    pub refresh_url: String,
    pub return_url: String,
    pub created: i64,
    pub expires_at: i64,
    /// Visited once: a second visit goes to `refresh_url`.
    pub used: bool,
    /// The onboarding page's form was sent.
    pub submitted: bool,
}

/// A balance transaction (https://docs.stripe.com/api/balance_transactions/object):
/// money in or out of a connected account's balance, and the payout that
/// paid it out.
#[derive(Clone)]
pub(crate) struct BalanceTransaction {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub available_on: i64,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    /// `charge`, `refund`, `refund_failure`, `adjustment`, `payout`, `payout_failure`.
    pub kind: &'static str,
    /// Stripe's reporting category (`charge`, `refund`, `dispute`, …).
    pub reporting_category: &'static str,
    /// The object it is about (`ch_`, `re_`, `dp_`, `po_`).
    pub source: String,
    pub payout: Option<String>,
}

impl BalanceTransaction {
    pub(crate) fn net(&self) -> i64 {
        self.amount - self.fee
    }
}

/// A payout of a connected account's balance to its bank.
pub(crate) struct Payout {
    pub id: String,
    pub account: String,
    pub amount: i64,
    pub currency: String,
    pub created: i64,
    pub arrival_date: i64,
    pub status: &'static str,
    pub failure_code: Option<&'static str>,
    pub balance_transaction: String,
    pub failure_balance_transaction: Option<String>,
}

/// A 500 Stripe answers a matching request with, once execution began (so
/// Stripe keeps it under the request's idempotency key): with `effect`, what
/// the request does still happens ("the result of the request is unknown").
/// With `status` 429, Stripe's rate limiter refuses the request before it
/// runs: nothing happens and nothing is kept under its key.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub method: String,
    pub path: String,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub effect: bool,
    #[serde(default = "five_hundred")]
    pub status: u16,
}

fn five_hundred() -> u16 {
    500
}

fn one() -> u32 {
    1
}
