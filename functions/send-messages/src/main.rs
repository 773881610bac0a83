//! The send-messages Lambda: wiring only. Messages to patients (email
//! through SES, texts through SNS), started by the table's stream (a message
//! just decided), the schedule (those now due) or the patients' replies.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::lambda::messages::{self, Trigger};
use visitpay_edge::lambda::within_deadline;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let pdf = Arc::new(visitpay_pdf::KrillaPdf::new());
    let deps = wiring::send_messages(&lambda_sdk().await?, &LambdaSettings::from_env(), pdf).await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deps = &deps;
        async move {
            let work = async {
                Ok::<_, Error>(match messages::trigger(event.payload)? {
                    Trigger::Stream(batch) => serde_json::to_value(messages::stream(deps, batch).await)?,
                    Trigger::Schedule => {
                        serde_json::to_value(visitpay_app::messages::deliver_due(deps, messages::SWEEP_BATCH).await?)?
                    }
                    Trigger::Inbound(texts) => serde_json::json!({ "words": messages::inbound(deps, texts).await? }),
                })
            };
            within_deadline(&event.context, work).await
        }
    }))
    .await
}
