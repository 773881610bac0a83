//! The SQS consumer Lambda: wiring only. It applies Stripe events through
//! the state machine and reports failed records (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::lambda::consumer;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let deps = wiring::process_payment_events(&lambda_sdk().await?, &LambdaSettings::from_env()).await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move {
            let work = consumer::handle(deps, event.payload);
            Ok::<SqsBatchResponse, Error>(visitpay_edge::lambda::within_deadline(&event.context, work).await)
        }
    }))
    .await
}
