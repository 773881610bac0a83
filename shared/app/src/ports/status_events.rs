//! Where committed changes of actions go for the clinic's EMR to see:
//! EventBridge in AWS, the local runner's event stream on a laptop.

use async_trait::async_trait;

use super::BoxError;
use visitpay_domain::ActionChanged;

/// PutEvents takes "a maximum of 10 entries" per request (Amazon
/// EventBridge API reference, PutEvents, `Entries`).
pub const MAX_EVENTS_PER_PUT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The request itself failed (throttled, unreachable, refused): no entry is known to be in.
    #[error("event bus unavailable: {}", super::ErrorChain(&**.0))]
    Unavailable(#[source] BoxError),
}

#[async_trait]
pub trait StatusEvents: Send + Sync {
    /// Publishes `events` (at most `MAX_EVENTS_PER_PUT`) in one request and
    /// says, in the same order, which the bus refused (`Some(its error code)`).
    async fn publish(&self, events: &[ActionChanged]) -> Result<Vec<Option<String>>, PublishError>;
}
