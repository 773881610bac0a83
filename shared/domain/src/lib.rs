//! The domain: everything that decides anything, with no SDK in sight.

pub mod action;
pub mod charge;
pub mod connect;
pub mod contact;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ids;
pub mod invoice;
pub mod link;
pub mod messaging;
pub mod money;
pub mod payment;
pub mod settings;
pub mod signal;
pub mod status_event;

pub use action::{
    Action, ActionEvent, ActionLine, ActionParts, ActionStatus, Actor, Applied, Checkout, Checkouts, Checks, Disputes,
    History, HistoryEntry, LatePayment, LatePayments, MessageLink, NewAction, OpenSession, Outcome, Payment,
    RefundAttempt, Refunds, SessionsClosed, Terms,
};
pub use charge::{Charged, DisputeRecord, DisputeStatus, PaymentMethod, RefundRecord, RefundState};
pub use connect::{AccountHealth, Payout, PayoutLine, PayoutLineKind, PayoutStatus};
pub use contact::{Channel, Contacts, EmailAddress, PhoneNumber};
pub use ids::{
    ActionId, ClinicId, DisputeId, InvoiceId, PatientId, PaymentIntentId, RefundId, SessionId, UserId, VisitId,
};
pub use invoice::{
    follow_action, Followed, Invoice, InvoiceEffect, InvoiceParts, InvoiceStatus, ReceiptDetails, ServiceDate,
};
pub use link::{hash_token, link_token, link_token_action};
pub use messaging::{ChannelOutcome, MessageIntent, MessageKind, OptOut, Plan, QuietHours, TimeOfDay, UnsubscribeLink};
pub use money::{format_amount, Currency, Money, MAX_AMOUNT};
pub use payment::{ChargeChange, ParkedEvent, PaymentOwner, PaymentRef, StrayPayment};
pub use settings::{
    CheckoutDomain, ClinicTimeZone, Label, LineItemText, Locale, PaymentSettings, ReceiptIssuer, SettingsInput,
    StripeAccountId,
};
pub use signal::{PaymentSignal, SignalKind};
pub use status_event::{ActionChanged, ACTION_CHANGED, EVENT_SOURCE};

/// What the domain refuses. `http::error` gives each variant its status and
/// the stable code clients match on; messages are for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{what} must match [A-Za-z0-9_-]{{1,64}}")]
    InvalidId { what: &'static str },
    #[error("amount must be a positive integer number of minor units, at most 99999999")]
    InvalidAmount,
    #[error("currency is not one this service bills in")]
    InvalidCurrency,
    #[error("all invoices of one payment must share the clinic's currency")]
    CurrencyMismatch,
    #[error("the total of these invoices is larger than one payment may be")]
    TotalTooLarge,
    #[error("at least one invoice id is required")]
    EmptySelection,
    #[error("at most {max} invoices fit in one request")]
    TooManyInvoices { max: usize },
    #[error("invoice {0} is listed twice")]
    DuplicateInvoice(String),
    #[error("{0}")]
    InvalidSettings(&'static str),
    #[error("service_date must be a calendar date, YYYY-MM-DD")]
    InvalidDate,
    #[error("description is longer than 500 characters")]
    DescriptionTooLong,
    #[error("each receipt field is at most 200 characters")]
    ReceiptFieldTooLong,
    /// A receipt is for a paid action.
    #[error("a receipt is issued once the action is paid (it is {0:?})")]
    ReceiptNotAvailable(ActionStatus),
    #[error("locale must be fr-CA or en-CA")]
    InvalidLocale,
    #[error("invoice {0} is pending in a payment action or paid and can no longer change")]
    InvoiceLocked(String),
    #[error("invoice {0} is already pending in a payment action")]
    InvoicePending(String),
    #[error("invoice {0} is already paid")]
    InvoicePaid(String),
    #[error("invoice {0} has not been selected with \"make a payment\"")]
    InvoiceNotSelected(String),
    #[error("private payments are not switched on for this clinic")]
    PaymentsDisabled,
    #[error("an action in status {0} cannot be {1}")]
    InvalidTransition(ActionStatus, &'static str),
    #[error("this payment has already been made")]
    AlreadyPaid,
    #[error("a payment for this action is being processed")]
    PaymentProcessing,
    #[error("this payment request is {0} and can no longer be paid")]
    ActionClosed(ActionStatus),
    #[error("this payment request has expired")]
    ActionExpired,
    #[error("an action in status {0} has no payment to refund")]
    NotRefundable(ActionStatus),
    #[error("the refund is larger than what remains to refund ({0})")]
    RefundExceedsRemaining(i64),
    #[error("this payment has been refunded {0} times already; refund the rest in one go")]
    TooManyRefunds(usize),
    #[error("Stripe does not take a payment under {minimum} minor units of {currency}")]
    AmountBelowMinimum { minimum: i64, currency: Currency },
    #[error("a checkout session was opened meanwhile; it must be closed first")]
    CheckoutChanged,
    #[error("a refund of this payment is being made; try again in a minute")]
    RefundInProgress,
    #[error("this payment is disputed: the patient's bank decides; it cannot be refunded meanwhile")]
    PaymentDisputed,
    #[error("Stripe does not know this account, or it is not connected to visitpay")]
    StripeAccountUnknown,
    #[error("{0} checkout sessions of this payment are open; wait for one to end")]
    TooManyCheckoutSessions(usize),
    /// The action holds as many payments that are not its own as it may:
    /// another is recorded apart.
    #[error("the action already holds {0} payments that are not its own")]
    LatePaymentsFull(usize),
    #[error("notify.email must be an email address (local@domain)")]
    InvalidEmail,
    #[error("notify.sms must be a mobile number in E.164 form, like +15145550100")]
    InvalidPhone,
    #[error("the link can be sent only to an email address or a mobile number: give one")]
    NoContact,
    #[error("the link was sent {0} times already")]
    TooManySends(u32),
    #[error("Stripe does not let the clinic's account take payments now: see stripe_account in its settings")]
    StripeAccountRestricted,
    #[error("cursor must be a page's next_cursor, as given")]
    InvalidCursor,
    #[error("limit must be between 1 and 100")]
    InvalidLimit,
}

/// Times are UTC, serialized as RFC 3339 everywhere (API and storage).
pub type Timestamp = time::OffsetDateTime;

/// Maximum invoices in one select or assign: one DynamoDB transaction holds
/// 100 writes, and an assign also writes the action, its link and its
/// idempotency record.
pub const MAX_INVOICES_PER_REQUEST: usize = 50;
