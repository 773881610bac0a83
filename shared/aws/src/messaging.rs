//! Email through Amazon SES (API v2) and text through Amazon SNS. Email goes
//! as a raw MIME message (mail-builder), so the receipt's PDF rides along
//! and RFC 8058's one-click unsubscribe headers are set; every email names
//! the deployment's configuration set, whose suppression options keep SES
//! from sending again to an address that bounced or complained. A text is
//! `Transactional` (SNS delivers it first, and it is never marketing).

use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use aws_sdk_sns::types::MessageAttributeValue;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::url::URL;
use mail_builder::MessageBuilder;

use visitpay_app::ports::{Email, MessagingError, Messenger, Sms};

/// Where email comes from and how it is tracked.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// A verified SES identity's address: `paiements@pay.example.com`.
    pub from_address: String,
    /// The SES configuration set (suppression, event destinations).
    pub configuration_set: Option<String>,
    /// The SMS sender's origination number or sender id, if the account has one.
    pub sms_origination: Option<String>,
}

pub struct SesSnsMessenger {
    ses: aws_sdk_sesv2::Client,
    sns: aws_sdk_sns::Client,
    settings: SenderSettings,
}

impl SesSnsMessenger {
    pub fn new(ses: aws_sdk_sesv2::Client, sns: aws_sdk_sns::Client, settings: SenderSettings) -> Self {
        SesSnsMessenger { ses, sns, settings }
    }
}

/// The email as MIME: plain text in UTF-8, attachments, one-click unsubscribe.
pub fn mime(email: &Email, from_address: &str) -> Result<Vec<u8>, MessagingError> {
    let mut builder = MessageBuilder::new()
        .from((email.from_name.as_str(), from_address))
        .to(email.to.as_str())
        .subject(email.subject.as_str())
        .header("List-Unsubscribe", URL::new(email.unsubscribe_url.as_str()))
        .header("List-Unsubscribe-Post", Raw::new("List-Unsubscribe=One-Click"))
        .text_body(email.text.as_str());
    for a in &email.attachments {
        builder = builder.attachment(a.content_type.as_str(), a.filename.as_str(), a.bytes.as_slice());
    }
    builder.write_to_vec().map_err(|e| MessagingError::Rejected(format!("the email could not be written: {e}")))
}

/// SES's and SNS's refusals that sending again cannot change; anything
/// else (throttling, an outage, a network error) may pass later.
fn classify<E, R>(e: SdkError<E, R>) -> MessagingError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    const REFUSED: &[&str] = &[
        "MessageRejected",
        "BadRequestException",
        "NotFoundException",
        "MailFromDomainNotVerifiedException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterException",
        "OptedOutException",
    ];
    match e.code() {
        Some(code) if REFUSED.contains(&code) => {
            MessagingError::Rejected(format!("{code}: {}", e.message().unwrap_or_default()))
        }
        _ => MessagingError::Unavailable(Box::new(e)),
    }
}

#[async_trait]
impl Messenger for SesSnsMessenger {
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError> {
        let data = mime(email, &self.settings.from_address)?;
        let raw =
            RawMessage::builder().data(Blob::new(data)).build().map_err(|e| MessagingError::Rejected(e.to_string()))?;
        let sent = self
            .ses
            .send_email()
            .from_email_address(&self.settings.from_address)
            .destination(aws_sdk_sesv2::types::Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.settings.configuration_set.clone())
            .send()
            .await
            .map_err(classify)?;
        Ok(sent.message_id.unwrap_or_default())
    }

    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| MessagingError::Rejected(e.to_string()))
        };
        let mut publish = self
            .sns
            .publish()
            .phone_number(sms.to.as_str())
            .message(&sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(origination) = &self.settings.sms_origination {
            publish = publish.message_attributes("AWS.MM.SMS.OriginationNumber", attribute(origination)?);
        }
        let sent = publish.send().await.map_err(classify)?;
        Ok(sent.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visitpay_app::ports::Attachment;
    use visitpay_domain::{ActionId, ClinicId, EmailAddress};

    #[test]
    fn an_email_is_mime_with_its_attachment_and_one_click_unsubscribe() {
        let email = Email {
            clinic_id: ClinicId::parse("c").unwrap(),
            action_id: ActionId::parse("a").unwrap(),
            to: EmailAddress::parse("patient@example.com").unwrap(),
            from_name: "Clinique Évangéline".into(),
            subject: "Clinique Évangéline — votre reçu (45,00 $)".into(),
            text: "Merci.".into(),
            attachments: vec![Attachment {
                filename: "recu-R-1.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.7".to_vec(),
            }],
            unsubscribe_url: "https://pay.example.com/unsubscribe/t".into(),
        };
        let text = String::from_utf8(mime(&email, "paiements@pay.example.com").unwrap()).unwrap();
        assert!(text.contains("List-Unsubscribe: <https://pay.example.com/unsubscribe/t>"), "{text}");
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{text}");
        assert!(text.contains("paiements@pay.example.com") && text.contains("To: <patient@example.com>"), "{text}");
        assert!(text.contains("recu-R-1.pdf") && text.contains("application/pdf"), "{text}");
        assert!(text.is_ascii(), "non-ASCII names are encoded, not raw: {text}");
    }
}
