//! The emulator's router: the Stripe API, the test controls and the hosted checkout page.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::form::{as_bool, as_int};
use crate::store::Outcome;
use crate::util::json_response;
use crate::{api, page, Emulator};

pub(crate) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(api::handle))
        .route("/test/checkout_sessions/{id}/pay", post(test_pay))
        .route("/test/requests", get(test_requests))
        .route("/test/clock/advance", post(advance_clock))
        .route("/checkout/{id}", get(page::show))
        .route("/checkout/{id}/pay", post(page::pay))
        .fallback(not_found)
        .with_state(emulator)
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}"), None))
}

/// `POST /test/checkout_sessions/{id}/pay {"outcome": .., "send_webhooks": ..}`: the patient pays.
async fn test_pay(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = json_body(&body).and_then(|params| {
        let requested = params.get("outcome").and_then(Value::as_str).unwrap_or("succeeded").to_owned();
        let outcome = Outcome::parse(&requested).ok_or_else(|| {
            ApiError::invalid(
                format!("Unknown outcome `{requested}`: use succeeded, declined, delayed_succeeded or delayed_failed."),
                Some("outcome"),
            )
        })?;
        let send_webhooks = params.get("send_webhooks").and_then(as_bool).unwrap_or(true);
        let (session, events) = emulator.with_state(|state| state.pay(&id, outcome, send_webhooks))?;
        Ok(json!({
            "session": session,
            "events": events,
            "outcome": requested,
            "declined": outcome == Outcome::Declined,
        }))
    });
    match result {
        Ok(body) => json_response(200, &body),
        Err(error) => json_response(error.status, &error.body),
    }
}

async fn test_requests(State(emulator): State<Emulator>) -> Response {
    json_response(200, &Value::Array(emulator.requests()))
}

/// `POST /test/clock/advance {"seconds": n}`: moves the emulated clock forward, e.g. past `expires_at`.
async fn advance_clock(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let result = json_body(&body).and_then(|params| {
        let seconds = params
            .get("seconds")
            .and_then(as_int)
            .filter(|s| *s >= 0)
            .ok_or_else(|| ApiError::invalid("`seconds` must be a non-negative integer.", Some("seconds")))?;
        Ok(emulator.with_state(|state| {
            let now = state.advance_clock(seconds);
            // Anything that expired meanwhile does so right away, not at the next sweep.
            state.expire_due();
            json!({ "now": now })
        }))
    });
    match result {
        Ok(body) => json_response(200, &body),
        Err(error) => json_response(error.status, &error.body),
    }
}

async fn not_found(uri: Uri) -> Response {
    let error =
        ApiError::new(404, "invalid_request_error", None, format!("Unrecognized request URL ({}).", uri.path()), None);
    json_response(error.status, &error.body)
}
