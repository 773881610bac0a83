//! The clinic-settings Lambda: wiring only. Routes and logic live in the visitpay crate.

use lambda_http::{run, service_fn, Error, Request};
use visitpay::http::{handle, routes::Function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay::telemetry::init();
    let deps = visitpay::config::lambda_deps(Default::default()).await?;
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(deps, Function::ClinicSettings, req).await) }
    }))
    .await
}
