//! The table's DynamoDB Stream records (NEW_AND_OLD_IMAGES), as Lambda
//! delivers them, read back into the change of an action they commit.

use aws_lambda_events::event::dynamodb::EventRecord;
use serde_dynamo::AttributeValue;

use super::keys;
use super::records::{ActionRecord, Unreadable};
use visitpay_app::ports::Stored;
use visitpay_domain::{Action, ActionChanged};

/// The event source mapping's `FilterCriteria` pattern (template.yaml, checked
/// equal by a test): action items (`sk = ACTION`), created or changed.
pub const ACTION_RECORDS_FILTER: &str =
    r#"{"dynamodb":{"Keys":{"sk":{"S":["ACTION"]}}},"eventName":["INSERT","MODIFY"]}"#;

/// send-messages' event source mapping's pattern (template.yaml, checked
/// equal by a test): message items (`sk` beginning `MESSAGE#`) just created.
pub const MESSAGE_RECORDS_FILTER: &str =
    r#"{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"MESSAGE#"}]}}},"eventName":["INSERT"]}"#;

#[derive(Debug, thiserror::Error)]
pub enum StreamRecordError {
    /// An action item the domain cannot read: it must not vanish unseen.
    #[error("an action image that is not an action item: {0}")]
    Image(#[source] serde_dynamo::Error),
    #[error("an action image the domain refuses: {0}")]
    Refused(#[source] Unreadable),
    #[error("a {0} record of an action without its new image (the stream must be NEW_AND_OLD_IMAGES)")]
    NoNewImage(String),
}

/// Is the record about an action item (`sk = ACTION`)? The event source
/// mapping's filter lets only those through; this says so again here.
fn is_action(record: &EventRecord) -> bool {
    matches!(record.change.keys.get(keys::SK), Some(AttributeValue::S(sk)) if sk == keys::ACTION_SK)
}

fn image(item: &serde_dynamo::Item) -> Result<Option<Stored<Action>>, StreamRecordError> {
    if item.is_empty() {
        return Ok(None);
    }
    let record: ActionRecord = serde_dynamo::from_item(item.clone()).map_err(StreamRecordError::Image)?;
    Stored::try_from(record).map(Some).map_err(StreamRecordError::Refused)
}

/// What an observer sees change in this record: `None` for another item,
/// a removal, or a write of the action that shows nothing new.
pub fn action_change(record: &EventRecord) -> Result<Option<ActionChanged>, StreamRecordError> {
    if !is_action(record) || record.event_name == "REMOVE" {
        return Ok(None);
    }
    let new =
        image(&record.change.new_image)?.ok_or_else(|| StreamRecordError::NoNewImage(record.event_name.clone()))?;
    let old = image(&record.change.old_image)?;
    Ok(ActionChanged::between(old.as_ref().map(|o| (&o.value, o.version)), &new.value, new.version))
}
