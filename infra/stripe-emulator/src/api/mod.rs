//! The Stripe API surface (`/v1/...`): authentication, `Stripe-Account` scoping, idempotency,
//! the request log, and each request routed to its resource's module.

mod accounts;
mod connect;
mod disputes;
mod events;
mod params;
mod payments;
mod refunds;
mod sessions;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::error::ApiError;
use crate::form;
use crate::objects;
use crate::records::{IdempotentResponse, Origin};
use crate::store::State;
use crate::util::{json_response, random_id};
use crate::Emulator;
use params::{spec_of, unknown_param};

/// Who is asking and on whose behalf.
pub(crate) struct Ctx<'a> {
    /// The secret key the request was made with.
    pub(crate) key: String,
    pub(crate) account: Option<String>,
    pub(crate) origin: Origin,
    pub(crate) public_base: &'a str,
}

pub(crate) async fn handle(
    AxumState(emulator): AxumState<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let params =
        if method == Method::POST { form::parse(&body) } else { form::parse(uri.query().unwrap_or("").as_bytes()) };
    let account = header_value(&headers, "stripe-account");
    let key = if method == Method::POST { header_value(&headers, "idempotency-key") } else { None };
    let request_id = random_id("req_");
    let public_base = emulator.public_base().to_owned();
    // Idempotency keys are scoped per account, as on Stripe.
    let scope = key.clone().map(|key| (account.clone(), key));

    // Before executing: the key, the account, a replay or a conflict.
    let admitted = emulator.with_state(|state| {
        state.log_request(method.as_str(), &path, account.as_deref(), key.as_deref(), &params);
        let secret = authenticate(&headers)?;
        if let Some(account) = &account {
            if !state.accounts.get(account).is_some_and(|a| a.connected) {
                return Err(ApiError::account_invalid(&secret, account));
            }
        }
        state.prune_idempotency();
        if let Some(scope) = &scope {
            if let Some(previous) = state.idempotency.get(scope) {
                if previous.method == method.as_str() && previous.path == path && previous.params == params {
                    return Ok(Some((previous.status, previous.body.clone())));
                }
                let key = key.as_deref().unwrap_or_default();
                return Err(ApiError::new(
                    400,
                    "idempotency_error",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used \
                         with. Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    None,
                ));
            }
            // "The idempotency key provided is currently being used in another request" (Stripe error codes).
            if !state.in_flight.insert(scope.clone()) {
                return Err(ApiError::new(
                    409,
                    "idempotency_error",
                    Some("idempotency_key_in_use"),
                    "The idempotency key provided is currently being used in another request. This occurs if your \
                     integration is making duplicate requests simultaneously.",
                    None,
                ));
            }
        }
        Ok(None)
    });
    let (status, body, replayed) = match admitted {
        Err(error) => (error.status, error.body, false),
        Ok(Some((status, body))) => (status, body, true),
        Ok(None) => {
            let latency = emulator.with_state(|state| state.latency_ms);
            if latency > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
            }
            emulator.with_state(|state| {
                let ctx = Ctx {
                    key: secret_key(&headers).unwrap_or_default(),
                    account: account.clone(),
                    origin: Origin { request_id: Some(request_id.clone()), idempotency_key: key.clone() },
                    public_base: &public_base,
                };
                let fault = state.take_fault(method.as_str(), &path);
                // Refused by the rate limiter before the endpoint runs: "Results are
                // only saved if an API endpoint started executing" (Idempotent requests).
                if fault.as_ref().is_some_and(|f| f.status == 429) {
                    if let Some(scope) = &scope {
                        state.in_flight.remove(scope);
                    }
                    let error = ApiError::rate_limited();
                    return (error.status, error.body, false);
                }
                let outcome = match &fault {
                    Some(f) if !f.effect => Err(ApiError::server_error()),
                    _ => dispatch(state, &ctx, &method, &path, &params),
                };
                let (status, body, executed) = match (outcome, fault) {
                    (_, Some(_)) => {
                        let error = ApiError::server_error();
                        (error.status, error.body, true)
                    }
                    (Ok(body), None) => (200, body, true),
                    (Err(error), None) => (error.status, error.body, !error.validation),
                };
                if let Some(scope) = scope {
                    state.in_flight.remove(&scope);
                    // "Stripe saves the status code and body of the first request made with a given
                    // idempotency key after endpoint execution begins … including 500 errors."
                    if executed {
                        let created = state.now();
                        let response = IdempotentResponse {
                            method: method.as_str().to_owned(),
                            path: path.clone(),
                            params: params.clone(),
                            status,
                            body: body.clone(),
                            created,
                        };
                        state.idempotency.insert(scope, response);
                    }
                }
                (status, body, false)
            })
        }
    };

    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value);
    }
    headers.insert("stripe-version", HeaderValue::from_static(objects::API_VERSION));
    if let Some(value) = key.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert("idempotency-key", value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The secret key from `Bearer <key>` or, as Stripe's curl examples send it, Basic `<key>:`.
fn secret_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let key = if let Some(key) = value.strip_prefix("Bearer ") {
        key.trim().to_owned()
    } else {
        let decoded = BASE64.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
        let credentials = String::from_utf8(decoded).ok()?;
        credentials.split(':').next().unwrap_or_default().to_owned()
    };
    Some(key).filter(|k| !k.is_empty())
}

fn authenticate(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = secret_key(headers);
    let Some(key) = key else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, \
             using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication \
             for details, or we can help at https://support.stripe.com/.",
        ));
    };
    if !key.starts_with("sk_test_") {
        let shown: String = key.chars().take(8).collect();
        let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(ApiError::unauthorized(format!("Invalid API Key provided: {shown}****{tail}")));
    }
    Ok(key)
}

fn dispatch(state: &mut State, ctx: &Ctx, method: &Method, path: &str, params: &Value) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(spec) = spec_of(method.as_str(), &segments) {
        if let Some(unknown) = unknown_param(params, spec, "") {
            return Err(ApiError::unknown_param(&unknown));
        }
    }
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "checkout", "sessions"]) => sessions::create(state, ctx, params),
        ("GET", ["v1", "checkout", "sessions"]) => sessions::list(state, ctx, params),
        ("GET", ["v1", "checkout", "sessions", id]) => sessions::retrieve(state, ctx, id, params),
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => sessions::expire(state, ctx, id, params),
        ("GET", ["v1", "checkout", "sessions", id, "line_items"]) => sessions::line_items(state, ctx, id, params),
        ("POST", ["v1", "refunds"]) => refunds::create(state, ctx, params),
        ("GET", ["v1", "refunds", id]) => refunds::retrieve(state, ctx, id),
        ("GET", ["v1", "refunds"]) => refunds::list(state, ctx, params),
        ("GET", ["v1", "payment_intents", id]) => payments::retrieve_intent(state, ctx, id, params),
        ("GET", ["v1", "charges", id]) => payments::retrieve_charge(state, ctx, id, params),
        ("GET", ["v1", "disputes"]) => disputes::list(state, ctx, params),
        ("GET", ["v1", "disputes", id]) => disputes::retrieve(state, ctx, id),
        ("GET", ["v1", "accounts", id]) => accounts::retrieve(state, ctx, id),
        ("POST", ["v1", "accounts"]) => connect::create_account(state, ctx, params),
        ("POST", ["v1", "account_links"]) => connect::create_account_link(state, ctx, params),
        ("GET", ["v1", "balance_transactions"]) => connect::list_balance_transactions(state, ctx, params),
        ("GET", ["v1", "payouts", id]) => connect::retrieve_payout(state, ctx, id),
        ("GET", ["v1", "events"]) => events::list(state, ctx, params),
        ("GET", ["v1", "events", id]) => events::retrieve(state, ctx, id),
        _ => Err(ApiError::new(
            404,
            "invalid_request_error",
            None,
            format!(
                "Unrecognized request URL ({method}: {path}). The Stripe emulator implements only the part of \
                 the API visitpay uses."
            ),
            None,
        )),
    }
}
