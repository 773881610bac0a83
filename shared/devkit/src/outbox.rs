//! The laptop's outbox: every email and text the run would send, kept in
//! memory (`GET /_local/outbox`) and sent nowhere — or, with
//! `AWS_ENDPOINT_URL`, also handed to SES and SNS at that endpoint (moto),
//! as in AWS.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use serde::Serialize;

use visitpay_app::ports::{Clock, Email, MessagingError, Messenger, Sms};
use visitpay_domain::{ActionId, Channel, ClinicId};

/// One message as the outbox shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    pub message_id: String,
    #[serde(skip)]
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub channel: Channel,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    pub at: String,
    pub attachments: Vec<OutboxAttachment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxAttachment {
    pub filename: String,
    pub content_type: String,
    pub content_base64: String,
}

pub struct Outbox {
    clock: Arc<dyn Clock>,
    /// SES and SNS (at moto) when the run has them; else nothing goes out.
    inner: Option<Arc<dyn Messenger>>,
    sent: Mutex<Vec<OutboxMessage>>,
}

impl Outbox {
    pub fn new(clock: Arc<dyn Clock>, inner: Option<Arc<dyn Messenger>>) -> Self {
        Outbox { clock, inner, sent: Mutex::default() }
    }

    /// A clinic's messages, oldest first.
    pub fn of_clinic(&self, clinic: &ClinicId) -> Vec<OutboxMessage> {
        self.lock().iter().filter(|m| &m.clinic_id == clinic).cloned().collect()
    }

    /// Every message, oldest first.
    pub fn all(&self) -> Vec<OutboxMessage> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OutboxMessage>> {
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keep(&self, mut message: OutboxMessage) -> String {
        let mut sent = self.lock();
        if message.message_id.is_empty() {
            message.message_id = format!("local-{}", sent.len() + 1);
        }
        let id = message.message_id.clone();
        sent.push(message);
        id
    }

    fn now(&self) -> String {
        self.clock.now().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    }
}

#[async_trait]
impl Messenger for Outbox {
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError> {
        let id = match &self.inner {
            Some(inner) => inner.send_email(email).await?,
            None => String::new(),
        };
        let attachments = email
            .attachments
            .iter()
            .map(|a| OutboxAttachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                content_base64: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
            })
            .collect();
        Ok(self.keep(OutboxMessage {
            message_id: id,
            clinic_id: email.clinic_id.clone(),
            action_id: email.action_id.clone(),
            channel: Channel::Email,
            to: email.to.to_string(),
            subject: Some(email.subject.clone()),
            body: email.text.clone(),
            at: self.now(),
            attachments,
        }))
    }

    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError> {
        let id = match &self.inner {
            Some(inner) => inner.send_sms(sms).await?,
            None => String::new(),
        };
        Ok(self.keep(OutboxMessage {
            message_id: id,
            clinic_id: sms.clinic_id.clone(),
            action_id: sms.action_id.clone(),
            channel: Channel::Sms,
            to: sms.to.to_string(),
            subject: None,
            body: sms.text.clone(),
            at: self.now(),
            attachments: Vec::new(),
        }))
    }
}
