//! API Gateway HTTP API (v2) request → use case → response. The same code runs
//! in Lambda and behind the local runner, which builds identical events.
//!
//! Each function's entry point (`functions`) lists its routes, each with its
//! handler; `Incoming` does what every route needs (the route's caller check,
//! the body limit, the request's log span and line) once. Handlers are
//! grouped by what they serve (`settings`, `invoices`, `actions`, `patient`,
//! `webhook`); `error` decides every status and code.

mod actions;
pub mod cors;
pub mod error;
pub mod functions;
mod invoices;
mod page;
mod patient;
mod payouts;
mod receipt;
pub mod request;
pub mod routes;
mod settings;
mod unsubscribe;
pub mod views;
mod webhook;

use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

pub use error::ApiError;
pub use functions::handle;
use functions::Function;
use request::{authorize, Ctx, RequestError};

/// What a handler answers: a response, or an error `error` maps.
pub type Answer = Result<Response<Body>, ApiError>;

/// Time kept to send an answer after the work's deadline.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);
/// API Gateway's HTTP API gives an integration 30 seconds at most.
const GATEWAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One request on its way through a function: what every route needs (the
/// route's own caller check, the body limit, the log span and line) is done
/// here once; the function's entry point (`functions`) picks the handler.
pub(crate) struct Incoming<'r> {
    req: &'r Request,
    function: Function,
    route_key: String,
    started: Instant,
    span: tracing::Span,
}

impl<'r> Incoming<'r> {
    pub(crate) fn new(function: Function, req: &'r Request) -> Self {
        let ctx = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => Some(ctx),
            _ => None,
        };
        let request_id = ctx.and_then(|c| c.request_id.clone()).unwrap_or_default();
        // The route key is a template (`/patient/actions/{token}`): safe to log,
        // unlike the raw path, which may carry a patient's link token.
        let route_key = ctx.and_then(|c| c.route_key.clone()).unwrap_or_default();
        let span = tracing::info_span!("request", request_id = %request_id, route = %route_key);
        Incoming { req, function, route_key, started: Instant::now(), span }
    }

    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// When the answer must be ready: Lambda's deadline for this invocation
    /// less a second to send it, or, outside Lambda (the local runner),
    /// within API Gateway's 30-second integration timeout.
    pub(crate) fn deadline(&self) -> std::time::Instant {
        match self.req.lambda_context_ref() {
            Some(context) => visitpay_app::ports::deadline::from_epoch_millis(context.deadline, ANSWER_MARGIN),
            None => self.started + GATEWAY_TIMEOUT - ANSWER_MARGIN,
        }
    }

    /// The route's key, if it is one of this function's routes.
    pub(crate) fn route_key(&self) -> &str {
        &self.route_key
    }

    /// The request as its handler sees it, once its route admits it.
    pub(crate) fn admit(&self, config: &visitpay_app::AppConfig) -> Result<Ctx<'r>, ApiError> {
        let route = functions::by_key(&self.route_key)
            .filter(|r| r.function == self.function.name())
            .ok_or_else(ApiError::route_not_found)?;
        let caller = authorize(self.req, route.access, config.edge_secret.as_ref())?;
        if self.req.body().len() > route.max_body_bytes() {
            let (bytes, limit) = (self.req.body().len(), route.max_body_bytes());
            tracing::warn!(bytes, limit, "request body over the route's limit");
            return Err(RequestError::TooLarge(limit).into());
        }
        Ok(Ctx { req: self.req, route, caller })
    }

    /// The answer as a response, and the request's one log line.
    pub(crate) fn finish(self, answer: Answer) -> Response<Body> {
        let response = answer.unwrap_or_else(ApiError::into_response);
        let clinic = self.req.path_parameters().first("clinic_id").map(str::to_owned).or_else(|| clinic_of(self.req));
        tracing::info!(
            clinic_id = clinic.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0,
            "request handled"
        );
        response
    }
}

/// A function's entry point: the request admitted by its route, then
/// `dispatch` (its routes' handlers, by route key), within its deadline.
macro_rules! serve {
    ($deps:expr, $function:expr, $req:expr, |$d:ident, $key:ident, $ctx:ident| $dispatch:block) => {{
        let incoming = $crate::http::Incoming::new($function, &$req);
        let span = incoming.span();
        let deadline = incoming.deadline();
        let work = async {
            let answer = match incoming.admit(::visitpay_app::HasConfig::config($deps)) {
                Err(e) => Err(e),
                Ok($ctx) => {
                    let ($d, $key) = ($deps, incoming.route_key());
                    async move {
                        $dispatch
                        #[allow(unreachable_code)]
                        Err($crate::http::ApiError::route_not_found())
                    }
                    .await
                }
            };
            incoming.finish(answer)
        };
        tracing::Instrument::instrument(::visitpay_app::ports::deadline::within(deadline, work), span).await
    }};
}
pub(crate) use serve;

/// The clinic of the JWT, for the request's log line.
fn clinic_of(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref()?.jwt.as_ref()?.claims.get("clinic_id").cloned()
        }
        _ => None,
    }
}

/// Serializes a JSON answer. Money and patient data must not be cached.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).expect("views serialize");
    json_text(status, text)
}

pub(crate) fn json_text(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// A read a polling client may make conditional: the answer carries an
/// `ETag` (a digest of the body, so of every stored version it shows), and a
/// request whose `If-None-Match` names it gets `304 Not Modified` with no
/// body (RFC 9110 §13.1.2: weak comparison, a list, or `*`). The read itself
/// writes nothing either way.
pub(crate) fn conditional(if_none_match: Option<&str>, mut response: Response<Body>) -> Response<Body> {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(response.body().as_ref());
    let tag = format!("\"{}\"", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]));
    let matches = if_none_match.is_some_and(|header| {
        header.split(',').map(str::trim).any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
    });
    if matches {
        let mut not_modified = Response::new(Body::Empty);
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
        response = not_modified;
    }
    response.headers_mut().insert("etag", HeaderValue::from_str(&tag).expect("base64 is header-safe"));
    response
}
