//! Stripe webhooks, once verified at the edge (`adapters::stripe::webhook`):
//! hand the event to the queue and answer fast. Applying it is the
//! consumer's job.

use super::{AppError, HasQueue};
use crate::ports::{QueueMessage, StripeDelivery};

/// Queues one verified delivery. Any failure to queue is an error, so Stripe
/// gets a non-2xx and delivers again (or, for an event too large to ever be
/// queued, a 4xx): no event is lost silently.
pub async fn accept(deps: &impl HasQueue, delivery: StripeDelivery) -> Result<(), AppError> {
    let (event_id, event_type) = (delivery.event_id.clone(), delivery.event_type.clone());
    if let Err(e) = deps.queue().enqueue(&QueueMessage::Stripe(delivery)).await {
        tracing::error!(event_id = %event_id, event_type = %event_type, error = %e, "webhook event not queued");
        return Err(e.into());
    }
    tracing::info!(event_id = %event_id, event_type = %event_type, "webhook event queued");
    Ok(())
}
