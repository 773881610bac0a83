//! The payment-event queue on SQS: the webhook and reconcile send, Lambda's
//! event source mapping (or, locally, the dev kit's `poll`) delivers
//! batches to the consumer.

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use visitpay_app::ports::{message_size, EventQueue, QueueError, QueueMessage, MAX_MESSAGE_BYTES};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// The queue's `MaximumMessageSize` (the template sets SQS's maximum).
    max_message_bytes: usize,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue { client, queue_url: queue_url.into(), max_message_bytes: MAX_MESSAGE_BYTES }
    }

    /// As `new`, for a queue whose `MaximumMessageSize` is `max` (tests).
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }
    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("type and value set")
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        // SQS counts the attributes too; moto counts only the body, so check here.
        let bytes = message_size(message);
        if bytes > self.max_message_bytes {
            return Err(QueueError::TooLarge { bytes, max: self.max_message_bytes });
        }
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body())
            // A standard queue is fair between message groups: "Fair queues
            // identify tenants by the MessageGroupId property on each message"
            // (SQS Developer Guide, fair queues); one clinic's backlog then
            // does not hold up another's payments. No ordering is implied.
            .set_message_group_id(message.tenant().map(str::to_owned));
        for (name, value) in message.attributes() {
            send = send.message_attributes(name, string_attribute(&value));
        }
        send.send().await.map_err(|e| {
            // "One or more parameters are invalid. Reason: Message must be shorter than N bytes."
            let too_long = e.code() == Some("InvalidParameterValue")
                && e.message().is_some_and(|m| m.contains("Message must be shorter"));
            if too_long {
                QueueError::TooLarge { bytes, max: self.max_message_bytes }
            } else {
                QueueError::Unavailable(Box::new(e))
            }
        })?;
        Ok(())
    }
}
