//! The receipt-pdf Lambda: wiring only. The receipt as a PDF, with the fonts
//! every name needs; the pages' function does not carry them.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::http::functions;

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let pdf = Arc::new(visitpay_pdf::KrillaPdf::new());
    let deps = wiring::receipt_pdf(&lambda_sdk().await?, &LambdaSettings::from_env(), pdf).await?;
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(functions::receipt_pdf(deps, req).await) }
    }))
    .await
}
