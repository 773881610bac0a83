//! The reference clinic console (`/console`): plain HTML and a little
//! JavaScript showing an EMR's front-end team how to call the API, served by
//! the local runner only (never deployed). Compiled in, so the binary is
//! the whole local run.

use axum::body::Body as AxumBody;
use axum::response::Response as AxumResponse;
use axum::Router;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Only its own files: no inline script or style, no other origin.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(content_type: &'static str, text: &'static str) -> AxumResponse {
    AxumResponse::builder()
        .header("content-type", content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .body(AxumBody::from(text))
        .expect("valid response")
}

/// The console's routes. Its page names its own files under the server's
/// base path (`VISITPAY_BASE_PATH`); its script finds the API under the same
/// base from its own address.
pub fn router(base_path: &str) -> Router {
    let index: &'static str =
        Box::leak(INDEX.replace("\"/console/", &format!("\"{base_path}/console/")).into_boxed_str());
    Router::new()
        .route("/console", axum::routing::get(move || async move { file("text/html; charset=utf-8", index) }))
        .route("/console/", axum::routing::get(move || async move { file("text/html; charset=utf-8", index) }))
        .route("/console/console.js", axum::routing::get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console/console.css", axum::routing::get(|| async { file("text/css; charset=utf-8", STYLE) }))
}
