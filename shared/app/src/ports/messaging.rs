//! Messages out to the patient: email (Amazon SES in AWS) and text (Amazon
//! SNS), in visitpay's own types. The adapters speak the services' APIs;
//! locally, a recording outbox stands in for both.

use async_trait::async_trait;

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

/// Why a message did not go. Each carries the service's error code or a
/// kind of failure, never its message text: SES and SNS echo the address or
/// the number there, and these end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// Not sent, and the service said so (throttling, an outage, a
    /// deployment's set-up to fix): tried again later.
    #[error("messaging unavailable ({0})")]
    Unavailable(String),
    /// The service refused this message for its recipient (an address it
    /// suppresses, a number it cannot text): sending it again will not help.
    #[error("the message was refused ({0})")]
    Rejected(String),
    /// No answer (a timeout, a lost response): it may have gone out. Never
    /// sent again, so that the patient never gets it twice.
    #[error("no answer from the messaging service ({0}): the message may have gone out")]
    Unknown(String),
}

#[async_trait]
pub trait Messenger: Send + Sync {
    /// The provider's id of the email sent.
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError>;
    /// The provider's id of the text sent.
    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError>;
}
