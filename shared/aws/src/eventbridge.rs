//! Status events to an EventBridge bus (PutEvents).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use visitpay_app::ports::{PublishError, StatusEvents};
use visitpay_domain::{ActionChanged, ACTION_CHANGED, EVENT_SOURCE};

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus { client, bus_name: bus_name.into() }
    }
}

/// One entry: the action's ARN-less id is in the detail; `Time` is when the
/// change was committed, so a rule's archive replays in commit time.
fn entry(bus: &str, event: &ActionChanged) -> PutEventsRequestEntry {
    let at = aws_sdk_eventbridge::primitives::DateTime::from_millis(
        (event.at.unix_timestamp_nanos() / 1_000_000).try_into().unwrap_or(i64::MAX),
    );
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(EVENT_SOURCE)
        .detail_type(ACTION_CHANGED)
        .detail(serde_json::to_string(event).expect("events serialize"))
        .time(at)
        .build()
}

#[async_trait]
impl StatusEvents for EventBridgeBus {
    async fn publish(&self, events: &[ActionChanged]) -> Result<Vec<Option<String>>, PublishError> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(events.iter().map(|e| entry(&self.bus_name, e)).collect()))
            .send()
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
        // "The entries are in the same order as the request" (PutEvents
        // response): an entry with an `ErrorCode` was not put.
        Ok(out.entries().iter().map(|e| e.error_code().map(str::to_owned)).collect())
    }
}
