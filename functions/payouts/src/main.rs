//! The payouts Lambda: wiring only. A clinic's payouts, traced to what they paid.

use lambda_http::{run, service_fn, Error, Request};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::http::functions;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let deps = wiring::payouts(&lambda_sdk().await?, &LambdaSettings::from_env()).await?;
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(functions::payouts(deps, req).await) }
    }))
    .await
}
