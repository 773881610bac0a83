//! A record as a DynamoDB item: its attributes as serde writes the record,
//! its keys, and times as DynamoDB's TTL reads them.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_dynamo::aws_sdk_dynamodb_1::to_item;

use std::collections::HashMap;

use super::keys;
use visitpay_domain::Timestamp;

/// An item: its attributes by name.
pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn encode<T: Serialize>(value: &T, (pk, sk): (String, String)) -> Item {
    let mut item: Item = to_item(value).expect("records serialize to DynamoDB items");
    item.insert(keys::PK.into(), AttributeValue::S(pk));
    item.insert(keys::SK.into(), AttributeValue::S(sk));
    item
}

pub(crate) fn epoch(at: Timestamp) -> AttributeValue {
    AttributeValue::N(at.unix_timestamp().to_string())
}
