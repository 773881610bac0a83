//! The clinic-settings Lambda: wiring only. Routes and logic live in the visitpay crate.

use lambda_http::{run, service_fn, Error, Request};
use visitpay::config::LambdaDeps;
use visitpay::http::{handle, routes::Function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay::telemetry::init();
    let deps = LambdaDeps::from_env().await?.build();
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(deps, Function::ClinicSettings, req).await) }
    }))
    .await
}
