//! action-status as an axum Router given to `lambda_http::run` (the
//! runtime's `http-axum` example), each route declared as axum declares
//! them, with tower-http's CORS and body limit: the shape the route-table
//! issue asked to try. Everything past the router is action-status's own
//! code, so the benchmark's size and cold start compare the router alone.

use std::sync::Arc;

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use lambda_http::{run, Error};
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use visitpay_edge::config::{lambda_sdk, wiring, LambdaSettings};
use visitpay_edge::http::functions;

type Deps = Arc<visitpay_app::Deps>;

/// The route's handler, through the same entry point as the function.
async fn serve(State(deps): State<Deps>, req: Request) -> Response<AxumBody> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let req = lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    functions::action_status(deps.as_ref(), req).await.map(|body| AxumBody::from(body.to_vec()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    visitpay_edge::telemetry::init();
    let deps = Arc::new(wiring::action_status(&lambda_sdk().await?, &LambdaSettings::from_env()).await?);
    let app = Router::new()
        .route("/visits/{visit_id}/actions", get(serve))
        .route("/actions/{action_id}", get(serve))
        .route("/patient/actions/{token}", get(serve))
        .route("/patient/return/{action_id}", get(serve))
        .route("/patient/actions/{token}/receipt", get(serve))
        .route("/actions/{action_id}/receipt", get(serve))
        .layer(CorsLayer::new())
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .with_state(deps);
    run(app).await
}
