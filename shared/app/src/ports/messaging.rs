//! Messages out to the patient: email (Amazon SES in AWS) and text (Amazon
//! SNS), in visitpay's own types. The adapters speak the services' APIs;
//! locally, a recording outbox stands in for both.

use async_trait::async_trait;

use super::BoxError;
use visitpay_domain::{ActionId, ClinicId, EmailAddress, PhoneNumber};

/// A file attached to an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One email, in plain text. The sender's address is the deployment's
/// (a verified SES identity); its display name is the clinic's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Which action it is about (for the local outbox and tags, never logs).
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub to: EmailAddress,
    pub from_name: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The one-click unsubscribe address (RFC 8058 `List-Unsubscribe`).
    pub unsubscribe_url: String,
}

/// One text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub to: PhoneNumber,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// The service could not take it now (throttling, an outage): tried
    /// again later.
    #[error("messaging unavailable: {}", super::ErrorChain(&**.0))]
    Unavailable(#[source] BoxError),
    /// The service refused this message (an address it suppresses, a number
    /// it cannot reach): sending it again will not help.
    #[error("the message was refused: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Messenger: Send + Sync {
    /// The provider's id of the email sent.
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError>;
    /// The provider's id of the text sent.
    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError>;
}
