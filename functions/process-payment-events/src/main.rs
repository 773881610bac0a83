//! The SQS consumer Lambda: wiring only. It applies Stripe events through
//! the state machine and reports failed records (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use visitpay::app::payment_events::handle_sqs;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay::telemetry::init();
    let deps = visitpay::config::LambdaDeps::from_env().await?.build();
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move { Ok::<SqsBatchResponse, Error>(handle_sqs(deps, event.payload).await) }
    }))
    .await
}
