//! The ports the use cases depend on, one concern each: the store (split by
//! what is stored), payments (Stripe), the event queue, the status events out, the clock, ids and
//! money metrics. Adapters (the AWS and Stripe crates, and the dev kit's embedded ones) implement them; a use case
//! names only the ports it uses (`app::Has*`).

pub mod clock;
pub mod deadline;
pub mod ids;
pub mod messaging;
pub mod metrics;
pub mod payments;
pub mod pdf;
pub mod queue;
pub mod status_events;
pub mod store;

pub use clock::Clock;
pub use ids::Ids;
pub use messaging::{Attachment, Email, MessagingError, Messenger, Sms};
pub use metrics::{Metrics, MoneySignal};
pub use payments::{
    AccountLink, BalanceTransaction, CheckoutLine, CheckoutRequest, CheckoutSession, ConnectedAccount, EventLog,
    LoggedEvent, Payments, PaymentsError, Refund, RefundRequest, SessionPaymentStatus, SessionStatus, META_ACTION,
    META_CLINIC, META_REFUND_ATTEMPT,
};
pub use pdf::{PdfError, ReceiptDocument, ReceiptPdf};
pub use queue::{message_size, EventQueue, QueueError, QueueMessage, StripeDelivery, MAX_MESSAGE_BYTES};
pub use status_events::{PublishError, StatusEvents, MAX_EVENTS_PER_PUT};
pub use store::{
    expect_of, AccountStore, ActionStore, AssignInputs, AssignStore, CatchUpCheckpoint, Commit, Expect,
    IdempotencyRecord, InvoiceStore, MessageStore, PaymentStore, PayoutPage, PayoutStore, ReconcileStore,
    SettingsStore, Store, StoreError, Stored, Write,
};

/// An error kept as the source of ours, whatever produced it (an SDK, a client).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Displays an error and every source under it (`a: b: c`), for logs: SDK
/// errors say little at the top ("service error") and everything below.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
