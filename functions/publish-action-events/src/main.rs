//! The table's stream to the EventBridge bus: wiring only. Each committed
//! change of an action is published as a status event for the clinic's EMR.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::lambda::status_stream;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let bus = wiring::publish_action_events(&lambda_sdk().await?, &LambdaSettings::from_env()).await?;
    run(service_fn(|event: LambdaEvent<Event>| {
        let bus = &bus;
        async move { Ok::<DynamoDbEventResponse, Error>(status_stream::handle(bus, event.payload).await) }
    }))
    .await
}
