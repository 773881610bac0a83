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

    /// Its clients from the function's SDK configuration, without the SDK's
    /// retries: neither SES's SendEmail nor SNS's Publish takes an
    /// idempotency token, so an attempt retried after a timeout may deliver
    /// twice. A failure goes back to the message, which decides (`classify`).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, settings: SenderSettings) -> Self {
        let no_retries = aws_config::retry::RetryConfig::disabled();
        let ses = aws_sdk_sesv2::config::Builder::from(sdk).retry_config(no_retries.clone()).build();
        let sns = aws_sdk_sns::config::Builder::from(sdk).retry_config(no_retries).build();
        Self::new(aws_sdk_sesv2::Client::from_conf(ses), aws_sdk_sns::Client::from_conf(sns), settings)
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
    builder.write_to_vec().map_err(|_| MessagingError::Rejected("mime_not_written".into()))
}

/// What a failed call means for the message, from the SDK's error: its
/// kind, and for an answer, the service's error code. Never its message text,
/// which may name the address or the number.
///
/// - An answer from the service: a refusal of the recipient (`recipient`,
///   e.g. SES's `MessageRejected`) is final; any other (throttling, an
///   outage, a set-up the deployment must fix, such as an unverified
///   identity or a missing configuration set) is tried again later, and
///   given up on with an alarm after eight tries.
/// - No answer after the request may have gone (a timeout, a response lost
///   or unreadable): it may have been sent, so it is never sent again.
/// - The request never left (it could not be built, the service could not be
///   reached): tried again later.
fn classify<E, R>(e: SdkError<E, R>, recipient: impl Fn(&str, &str) -> bool) -> MessagingError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(service) => {
            let error = service.err();
            let code = error.code().unwrap_or("no_code").to_owned();
            if recipient(&code, error.message().unwrap_or_default()) {
                MessagingError::Rejected(code)
            } else {
                MessagingError::Unavailable(code)
            }
        }
        SdkError::TimeoutError(_) => MessagingError::Unknown("timeout".into()),
        SdkError::ResponseError(_) => MessagingError::Unknown("unreadable_response".into()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => MessagingError::Unknown("timeout".into()),
        SdkError::DispatchFailure(_) => MessagingError::Unavailable("unreachable".into()),
        SdkError::ConstructionFailure(_) => MessagingError::Unavailable("request_not_built".into()),
        _ => MessagingError::Unavailable("sdk_error".into()),
    }
}

/// SES refuses the message for its recipient (a suppressed address, a
/// sandbox's unverified one): `MessageRejected` (SES API v2 reference,
/// SendEmail errors).
fn ses_refuses_recipient(code: &str, _message: &str) -> bool {
    code == "MessageRejected"
}

/// SNS refuses the number itself: `InvalidParameter` naming `PhoneNumber`
/// (a number it cannot text). Other invalid parameters are the deployment's
/// (an origination identity), to fix and retry.
fn sns_refuses_recipient(code: &str, message: &str) -> bool {
    code == "InvalidParameter" && message.contains("PhoneNumber")
}

#[async_trait]
impl Messenger for SesSnsMessenger {
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError> {
        let data = mime(email, &self.settings.from_address)?;
        let raw = RawMessage::builder()
            .data(Blob::new(data))
            .build()
            .map_err(|_| MessagingError::Rejected("raw_message".into()))?;
        let sent = self
            .ses
            .send_email()
            .from_email_address(&self.settings.from_address)
            .destination(aws_sdk_sesv2::types::Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.settings.configuration_set.clone())
            .send()
            .await
            .map_err(|e| classify(e, ses_refuses_recipient))?;
        Ok(sent.message_id.unwrap_or_default())
    }

    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|_| MessagingError::Rejected("message_attribute".into()))
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
        let sent = publish.send().await.map_err(|e| classify(e, sns_refuses_recipient))?;
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
