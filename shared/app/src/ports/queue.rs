//! The payment-event queue between the webhook (and reconcile) and the
//! consumer. A message is either Stripe's event, kept exactly as Stripe sent
//! it (the consumer decodes it; a dead letter shows what Stripe said), or a
//! signal reconcile already typed.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use visitpay_domain::{PaymentSignal, SignalKind};

/// SQS's largest message, and what the template's queue allows: "The maximum
/// is 1 MiB or 1,048,576 bytes" (Amazon SQS Developer Guide, quotas; raised
/// from 256 KiB in August 2025).
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

/// A verified Stripe event on its way to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeDelivery {
    pub event_id: String,
    pub event_type: String,
    /// The connected account the event happened on (Stripe's top-level
    /// `account` on a Connect event): the clinic the queue is fair between.
    pub account: Option<String>,
    /// The event JSON exactly as Stripe sent it.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueueMessage {
    Stripe(StripeDelivery),
    Signal(PaymentSignal),
}

/// How a signal travels: `{"visitpay_signal": …}`, which no Stripe event has.
#[derive(Serialize, Deserialize)]
struct SignalBody {
    visitpay_signal: PaymentSignal,
}

#[derive(Deserialize)]
struct StripeHead {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    account: Option<String>,
}

/// SQS's `MessageGroupId`: "up to 128 characters … alphanumeric characters
/// and punctuation" (SendMessage, API reference).
fn valid_group(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation())
}

impl QueueMessage {
    /// The message body on the queue.
    pub fn body(&self) -> String {
        match self {
            QueueMessage::Stripe(delivery) => delivery.body.clone(),
            QueueMessage::Signal(signal) => {
                serde_json::to_string(&SignalBody { visitpay_signal: signal.clone() }).expect("signals serialize")
            }
        }
    }

    /// The message attributes (for people reading a queue; the consumer reads the body).
    pub fn attributes(&self) -> [(&'static str, String); 2] {
        match self {
            QueueMessage::Stripe(d) => [("event_id", d.event_id.clone()), ("event_type", d.event_type.clone())],
            QueueMessage::Signal(s) => [("source", s.actor.to_string()), ("event_type", s.kind.name().to_owned())],
        }
    }

    /// Whose message this is, for a fair queue (SQS fair queues tell tenants
    /// apart by `MessageGroupId`): the clinic's connected account, else the
    /// clinic; none for what is no clinic's (each such message is then a
    /// tenant of its own).
    pub fn tenant(&self) -> Option<&str> {
        let tenant = match self {
            QueueMessage::Stripe(d) => d.account.as_deref(),
            QueueMessage::Signal(s) => s.account.as_deref().or(match &s.kind {
                SignalKind::Action { clinic_id, .. } => Some(clinic_id.as_str()),
                SignalKind::AccountUpdated { health } => Some(health.id.as_str()),
                SignalKind::AccountCheck { account } | SignalKind::PayoutChanged { account, .. } => {
                    Some(account.as_str())
                }
                SignalKind::AccountDisconnected { account } => Some(account.as_str()),
                SignalKind::Payment { .. } => None,
            }),
        };
        tenant.filter(|t| valid_group(t))
    }

    /// A body as the queue delivers it back.
    pub fn from_body(body: &str) -> Result<QueueMessage, serde_json::Error> {
        if let Ok(SignalBody { visitpay_signal }) = serde_json::from_str::<SignalBody>(body) {
            return Ok(QueueMessage::Signal(visitpay_signal));
        }
        let head: StripeHead = serde_json::from_str(body)?;
        Ok(QueueMessage::Stripe(StripeDelivery {
            event_id: head.id,
            event_type: head.event_type,
            account: head.account,
            body: body.to_owned(),
        }))
    }
}

/// The size SQS counts for a message: "All parts of the message attribute,
/// including Name, Type, and Value, are part of the message size
/// restriction" (SQS API reference, MessageAttributeValue), plus the body.
pub fn message_size(message: &QueueMessage) -> usize {
    const STRING: usize = "String".len();
    let attributes: usize = message.attributes().iter().map(|(name, value)| name.len() + STRING + value.len()).sum();
    message.body().len() + attributes
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {}", super::ErrorChain(&**.0))]
    Unavailable(#[source] BoxError),
    /// Over the queue's maximum message size (body and attributes): it can
    /// never be queued as is.
    #[error("a message of {bytes} bytes is over the queue's maximum of {max}")]
    TooLarge { bytes: usize, max: usize },
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError>;
}
