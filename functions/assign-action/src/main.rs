//! The assign-action Lambda (assign, cancel, refund): wiring only. Routes and
//! logic live in the visitpay crate; Stripe is needed to expire and refund.

use lambda_http::{run, service_fn, Error, Request};
use visitpay::config::Needs;
use visitpay::http::{handle, routes::Function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay::telemetry::init();
    let deps = visitpay::config::lambda_deps(Needs { payments: true, ..Default::default() }).await?;
    run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(handle(deps, Function::AssignAction, req).await) }
    }))
    .await
}
