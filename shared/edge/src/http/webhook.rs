//! Stripe's webhook: verified over the exact raw bytes, queued, answered fast.

use lambda_http::http::StatusCode;
use serde_json::json;

use super::request::Ctx;
use super::{json, Answer};
use visitpay_app::{webhook, HasClock, HasConfig, HasQueue};
use visitpay_stripe::webhook::{verify, Verified};

pub(super) async fn receive(deps: &(impl HasClock + HasConfig + HasQueue), ctx: Ctx<'_>) -> Answer {
    let signature = ctx.header("stripe-signature");
    let now = deps.clock().now().unix_timestamp();
    match verify(ctx.req.body().as_ref(), signature, &deps.config().webhook_secrets, now)? {
        Verified::Queue(delivery) => {
            webhook::accept(deps, delivery).await?;
            Ok(json(StatusCode::OK, &json!({"received": true})))
        }
        Verified::Ignored { event_id, event_type } => {
            tracing::info!(event_id = %event_id, event_type = %event_type, "webhook event type ignored");
            Ok(json(StatusCode::OK, &json!({"received": true, "ignored": true})))
        }
    }
}
