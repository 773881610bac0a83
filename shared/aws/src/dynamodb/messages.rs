//! Messages to patients on DynamoDB: each message's item (under its action,
//! indexed in gsi4 while it waits), the patients' opt-outs (by digest), the
//! clinic that last texted a number, and unsubscribe links.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::attributes::{encode, epoch, Item};
use super::{keys, records::Unreadable, DynamoStore};
use visitpay_app::ports::{MessageStore, StoreError, Stored};
use visitpay_domain::{
    ActionId, Channel, ChannelOutcome, ClinicId, MessageIntent, MessageKind, OptOut, Timestamp, UnsubscribeLink,
};

/// A message's item is kept this long once it is done: what was sent, when.
const DONE_MESSAGE_DAYS: i64 = 90;

/// A message's item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    pub key: String,
    pub kind: MessageKind,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<ChannelOutcome>,
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sending: bool,
    pub version: u64,
}

impl MessageRecord {
    pub fn of(m: &MessageIntent, version: u64) -> Self {
        MessageRecord {
            clinic_id: m.clinic_id.clone(),
            action_id: m.action_id.clone(),
            key: m.key.clone(),
            kind: m.kind,
            due_at: m.due_at,
            created_at: m.created_at,
            done: m.done.clone(),
            outcomes: m.outcomes.clone(),
            failures: m.failures,
            sending: m.sending,
            version,
        }
    }
}

impl From<MessageRecord> for Stored<MessageIntent> {
    fn from(r: MessageRecord) -> Self {
        Stored {
            value: MessageIntent {
                clinic_id: r.clinic_id,
                action_id: r.action_id,
                key: r.key,
                kind: r.kind,
                due_at: r.due_at,
                created_at: r.created_at,
                done: r.done,
                outcomes: r.outcomes,
                failures: r.failures,
                sending: r.sending,
            },
            version: r.version,
        }
    }
}

/// A message's item: in gsi4 while it waits; kept a while once done.
pub fn message_item(m: &MessageIntent, version: u64) -> Item {
    let mut item = encode(&MessageRecord::of(m, version), keys::message(&m.action_id, &m.key));
    if m.is_pending() {
        let (pk, sk) = keys::message_due(&m.action_id, &m.key, m.due_at);
        item.insert(keys::GSI4PK.into(), AttributeValue::S(pk));
        item.insert(keys::GSI4SK.into(), AttributeValue::S(sk));
    } else {
        item.insert(keys::TTL.into(), epoch(m.due_at + time::Duration::days(DONE_MESSAGE_DAYS)));
    }
    item
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptOutRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
    pub channel: Channel,
    pub digest: String,
    pub opted_out: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub source: String,
}

pub fn opt_out_item(o: &OptOut) -> Item {
    let record = OptOutRecord {
        clinic_id: o.clinic_id.clone(),
        channel: o.channel,
        digest: o.digest.clone(),
        opted_out: o.opted_out,
        at: o.at,
        source: o.source.to_owned(),
    };
    encode(&record, keys::opt_out(o.clinic_id.as_ref(), o.channel.as_str(), &o.digest))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsubscribeRecord {
    pub clinic_id: ClinicId,
    pub email_digest: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

pub fn unsubscribe_item(link: &UnsubscribeLink) -> Item {
    let record = UnsubscribeRecord {
        clinic_id: link.clinic_id.clone(),
        email_digest: link.email_digest.clone(),
        expires_at: link.expires_at,
    };
    let mut item = encode(&record, keys::unsubscribe(&link.token_hash));
    item.insert(keys::TTL.into(), epoch(link.expires_at));
    item
}

fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(Box::new(Unreadable(e.to_string())))
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn get_message(&self, action: &ActionId, key: &str) -> Result<Option<Stored<MessageIntent>>, StoreError> {
        let found: Option<MessageRecord> = self.get(keys::message(action, key)).await?;
        Ok(found.map(Stored::from))
    }

    async fn due_messages(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<MessageIntent>>, StoreError> {
        let before = keys::sortable_time(now + time::Duration::milliseconds(1));
        let mut due: Vec<Stored<MessageIntent>> = Vec::new();
        for shard in 0..keys::RECONCILE_SHARDS {
            let found: Vec<MessageRecord> = self
                .query_up_to(
                    Some(keys::GSI4),
                    "gsi4pk = :p AND gsi4sk < :t",
                    vec![(":p", keys::messages_due_partition(shard)), (":t", before.clone())],
                    limit,
                )
                .await?;
            due.extend(found.into_iter().map(Stored::from));
        }
        due.sort_by_key(|m| m.due_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn opted_out(&self, clinic: &ClinicId, channel: Channel, digest: &str) -> Result<bool, StoreError> {
        for scope in [Some(clinic), None] {
            let found: Option<OptOutRecord> = self.get(keys::opt_out(scope, channel.as_str(), digest)).await?;
            if found.is_some_and(|o| o.opted_out) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn get_unsubscribe(&self, token_hash: &str) -> Result<Option<UnsubscribeLink>, StoreError> {
        let found: Option<UnsubscribeRecord> = self.get(keys::unsubscribe(token_hash)).await?;
        if found.as_ref().is_some_and(|r| r.email_digest.len() != 64) {
            return Err(unreadable("an unsubscribe link without its address's digest"));
        }
        Ok(found.map(|r| UnsubscribeLink {
            token_hash: token_hash.to_owned(),
            clinic_id: r.clinic_id,
            email_digest: r.email_digest,
            expires_at: r.expires_at,
        }))
    }
}
