//! The scheduled reconcile Lambda (EventBridge): wiring only. It asks Stripe
//! about actions it has not heard from and feeds what it learns to the queue.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use visitpay_app::reconcile;
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let deps = wiring::reconcile(&lambda_sdk().await?, &LambdaSettings::from_env()).await?;
    let config = visitpay_edge::config::reconcile_config()?;
    run(service_fn(|event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
        let deps = &deps;
        async move {
            let report = visitpay_edge::lambda::within_deadline(&event.context, reconcile::run(deps, config)).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
