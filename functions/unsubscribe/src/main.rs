//! The unsubscribe Lambda: wiring only. An email's unsubscribe link: its
//! page, and the patient's confirmation.

use lambda_http::{run, service_fn, Error, Request};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::http::functions;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let deps = wiring::unsubscribe(&lambda_sdk().await?, &LambdaSettings::from_env()).await?;
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(functions::unsubscribe(deps, req).await) }
    }))
    .await
}
