//! A stand-in for Lambda's DynamoDB event source mapping, for runs against
//! moto (which serves DynamoDB Streams but runs no Lambda): it reads the
//! table's stream through the DynamoDB Streams API (GetShardIterator,
//! GetRecords, as the mapping does), drops what the template's
//! `FilterCriteria` drops, hands each shard's records to
//! publish-action-events' handler as the event Lambda would send, and
//! delivers again from the record the handler reports failed. Not modelled:
//! bisecting, retry limits and the on-failure destination (Lambda's own).

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use serde_json::{json, Value};
use visitpay_app::ports::StatusEvents;
use visitpay_aws::dynamodb::stream::ACTION_RECORDS_FILTER;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("DynamoDB Streams at {endpoint}: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{operation} answered {status}: {body}")]
    Refused { operation: &'static str, status: u16, body: String },
    #[error("table {0} has no stream (StreamSpecification missing)")]
    NoStream(String),
}

/// Does `value` match an EventBridge-style `pattern` (the syntax Lambda
/// event filtering uses): every key of the pattern present, an array of
/// options matching when any one does, an option being a literal or
/// `{"prefix": "…"}` (Lambda Developer Guide, "Lambda event filtering":
/// "Prefix matching")? Only the forms our filters use; any other operator
/// matches nothing, so a filter this does not understand fails its test.
pub fn matches(pattern: &Value, value: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| value.get(k).is_some_and(|v| matches(p, v))),
        Value::Array(options) => options.iter().any(|o| match o {
            Value::Object(op) => match (op.len(), op.get("prefix")) {
                (1, Some(Value::String(prefix))) => value.as_str().is_some_and(|v| v.starts_with(prefix.as_str())),
                _ => false,
            },
            literal => literal == value,
        }),
        other => other == value,
    }
}

struct Shard {
    iterator: Option<String>,
    /// Records delivered but not yet done, oldest first: delivered again.
    held: Vec<Value>,
}

pub struct StreamMapping {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    stream_arn: String,
    filter: Value,
    shards: BTreeMap<String, Shard>,
}

impl StreamMapping {
    /// publish-action-events' mapping: action records, from the oldest
    /// record of every shard (`StartingPosition: TRIM_HORIZON`).
    pub async fn connect(endpoint: &str, region: &str, table: &str) -> Result<Self, StreamError> {
        Self::connect_filtered(endpoint, region, table, ACTION_RECORDS_FILTER).await
    }

    /// A mapping with the given filter pattern, from the oldest record of every shard.
    pub async fn connect_filtered(
        endpoint: &str,
        region: &str,
        table: &str,
        filter: &str,
    ) -> Result<Self, StreamError> {
        let mut mapping = StreamMapping {
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            stream_arn: String::new(),
            filter: serde_json::from_str(filter).expect("the filter is JSON"),
            shards: BTreeMap::new(),
        };
        let table_info =
            mapping.call("DynamoDB_20120810.DescribeTable", "DescribeTable", json!({ "TableName": table })).await?;
        mapping.stream_arn = table_info["Table"]["LatestStreamArn"]
            .as_str()
            .ok_or_else(|| StreamError::NoStream(table.to_owned()))?
            .to_owned();
        let stream = mapping
            .call(
                "DynamoDBStreams_20120810.DescribeStream",
                "DescribeStream",
                json!({ "StreamArn": mapping.stream_arn }),
            )
            .await?;
        for shard in stream["StreamDescription"]["Shards"].as_array().cloned().unwrap_or_default() {
            let id = shard["ShardId"].as_str().unwrap_or_default().to_owned();
            let it = mapping
                .call(
                    "DynamoDBStreams_20120810.GetShardIterator",
                    "GetShardIterator",
                    json!({ "StreamArn": mapping.stream_arn, "ShardId": id, "ShardIteratorType": "TRIM_HORIZON" }),
                )
                .await?;
            mapping
                .shards
                .insert(id, Shard { iterator: it["ShardIterator"].as_str().map(str::to_owned), held: Vec::new() });
        }
        Ok(mapping)
    }

    async fn call(&self, target: &str, operation: &'static str, body: Value) -> Result<Value, StreamError> {
        let http = |source| StreamError::Http { endpoint: self.endpoint.clone(), source };
        // moto reads the region from the credential scope; it checks no signature.
        let scope = format!(
            "AWS4-HMAC-SHA256 Credential=test/20261201/{}/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let response = self
            .http
            .post(&self.endpoint)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", scope)
            .body(body.to_string())
            .send()
            .await
            .map_err(http)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(http)?;
        if status != 200 {
            return Err(StreamError::Refused { operation, status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The shard's next records (up to `BatchSize` 100), its iterator moved
    /// past them; `None` once the shard is closed.
    async fn get_records(&mut self, shard: &str) -> Result<Option<Vec<Value>>, StreamError> {
        let Some(iterator) = self.shards[shard].iterator.clone() else {
            return Ok(None);
        };
        let body = json!({ "ShardIterator": iterator, "Limit": 100 });
        let out = self.call("DynamoDBStreams_20120810.GetRecords", "GetRecords", body).await?;
        self.shards.get_mut(shard).expect("known shard").iterator =
            out["NextShardIterator"].as_str().map(str::to_owned);
        Ok(Some(out["Records"].as_array().cloned().unwrap_or_default()))
    }

    /// The next batch of each shard that has one (held records first, then
    /// new ones, up to `BatchSize` 100), filtered, as Lambda's event.
    async fn next_batches(&mut self) -> Result<Vec<(String, Event)>, StreamError> {
        let mut batches = Vec::new();
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            if let Some(records) = self.get_records(&id).await? {
                let shard = self.shards.get_mut(&id).expect("known shard");
                for mut record in records {
                    // Records the filter drops are done: Lambda never invokes for them.
                    if matches(&self.filter, &record) {
                        record["eventSourceARN"] = json!(self.stream_arn);
                        shard.held.push(record);
                    }
                }
            }
            let shard = &self.shards[&id];
            if !shard.held.is_empty() {
                let records: Vec<Value> = shard.held.iter().take(100).cloned().collect();
                let event: Event = serde_json::from_value(json!({ "Records": records }))
                    .expect("stream records decode as Lambda's event");
                batches.push((id, event));
            }
        }
        Ok(batches)
    }

    /// One round: every shard's next batch through `handler`; what it reports
    /// failed (and everything after it) is held for the next round. Returns
    /// how many records were handed over.
    pub async fn poll<F, Fut>(&mut self, mut handler: F) -> Result<usize, StreamError>
    where
        F: FnMut(Event) -> Fut,
        Fut: std::future::Future<Output = DynamoDbEventResponse>,
    {
        let mut delivered = 0;
        for (id, event) in self.next_batches().await? {
            let count = event.records.len();
            delivered += count;
            let response = handler(event).await;
            let shard = self.shards.get_mut(&id).expect("known shard");
            let failed: Vec<Option<String>> =
                response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
            let position = |seq: &Option<String>| {
                let seq = seq.as_deref()?;
                shard.held[..count].iter().position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(seq))
            };
            // Lambda resumes from the lowest failure it is told of; a failure
            // it cannot place (no or an unknown identifier) fails the batch.
            let done = match failed.iter().map(position).collect::<Option<Vec<usize>>>() {
                _ if failed.is_empty() => count,
                Some(positions) => positions.into_iter().min().unwrap_or(0),
                None => 0,
            };
            shard.held.drain(..done);
        }
        Ok(delivered)
    }

    /// Every record the shards hold from where they stand, unfiltered: what
    /// Lambda's filter sees. Consumes them.
    pub async fn raw_records(&mut self) -> Result<Vec<Value>, StreamError> {
        let mut records = Vec::new();
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            while let Some(batch) = self.get_records(&id).await?.filter(|b| !b.is_empty()) {
                records.extend(batch);
            }
        }
        Ok(records)
    }

    /// Rounds through publish-action-events' handler until the stream has
    /// nothing new and nothing held (or `max_rounds`).
    pub async fn drain(&mut self, bus: &dyn StatusEvents, max_rounds: usize) -> Result<usize, StreamError> {
        let mut total = 0;
        for _ in 0..max_rounds {
            let n = self.poll(|event| visitpay_edge::lambda::status_stream::handle(bus, event)).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visitpay_aws::dynamodb::stream::MESSAGE_RECORDS_FILTER;

    #[test]
    fn the_filter_keeps_created_and_changed_actions_only() {
        let filter: Value = serde_json::from_str(ACTION_RECORDS_FILTER).unwrap();
        let record = |name: &str, sk: &str| json!({ "eventName": name, "dynamodb": { "Keys": { "pk": { "S": "x" }, "sk": { "S": sk } } } });
        assert!(matches(&filter, &record("INSERT", "ACTION")));
        assert!(matches(&filter, &record("MODIFY", "ACTION")));
        assert!(!matches(&filter, &record("REMOVE", "ACTION")));
        assert!(!matches(&filter, &record("MODIFY", "INVOICE#1042")));
        assert!(!matches(&filter, &record("INSERT", "PAYMENT")));
    }

    #[test]
    fn the_message_filter_keeps_created_messages_only() {
        let filter: Value = serde_json::from_str(MESSAGE_RECORDS_FILTER).unwrap();
        let record = |name: &str, sk: &str| json!({ "eventName": name, "dynamodb": { "Keys": { "pk": { "S": "x" }, "sk": { "S": sk } } } });
        assert!(matches(&filter, &record("INSERT", "MESSAGE#link-1")));
        assert!(!matches(&filter, &record("MODIFY", "MESSAGE#link-1")));
        assert!(!matches(&filter, &record("INSERT", "ACTION")));
        assert!(!matches(&filter, &record("INSERT", "XMESSAGE#link-1")));
        // An operator this does not know matches nothing.
        assert!(!matches(&json!({"a": [{"suffix": "x"}]}), &json!({"a": "x"})));
    }
}
