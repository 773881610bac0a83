//! visitpay-local: every function behind one HTTP port, as API Gateway would
//! put them. Each request is matched against the route table, passed through
//! a stand-in for API Gateway's JWT authorizer, turned into the same API
//! Gateway HTTP API (v2) event Lambda receives, and handed to the same handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request as AxumRequest, State};
use axum::http::StatusCode;
use axum::response::Response as AxumResponse;
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use visitpay_app::{Deps, Outbox, Pdf, Queue, Role, Stripe};
use visitpay_edge::http::cors::Cors;
use visitpay_edge::http::functions;
use visitpay_edge::http::routes::Access;
use visitpay_edge::http::{handle, ApiError};

pub mod console;
pub mod dev_jwt;
pub mod events;
pub mod seed;
pub mod stream_mapping;

/// API Gateway HTTP APIs accept payloads up to 10 MB; the handler enforces
/// its own, smaller limit.
const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

/// Every function's ports: the local run serves them all behind one port.
pub type LocalDeps = Deps<Stripe, Queue, Pdf, Outbox>;

#[derive(Clone)]
pub struct Gateway {
    pub deps: LocalDeps,
    pub jwt_secret: Arc<str>,
    /// Origins allowed to call from a browser (`VISITPAY_CORS_ORIGINS`), as
    /// the template's `CorsConfiguration` allows `EmrOrigins`.
    pub cors: Cors,
    /// Where everything is served (`VISITPAY_BASE_PATH`): empty, or
    /// `/prod` as API Gateway serves a named stage.
    pub base_path: BasePath,
}

/// The path the whole local run is served under (`VISITPAY_BASE_PATH`),
/// as API Gateway serves a named stage (`/prod/…`): empty, or `/` and
/// segments of `[A-Za-z0-9._~-]`, no trailing slash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasePath(Arc<str>);

impl BasePath {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().trim_end_matches('/');
        let valid = value.is_empty()
            || (value.starts_with('/')
                && value[1..].split('/').all(|segment| {
                    !segment.is_empty()
                        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
                }));
        if !valid {
            return Err(format!(
                "VISITPAY_BASE_PATH must be empty or like /prod (segments [A-Za-z0-9._~-]), got {value:?}"
            ));
        }
        Ok(BasePath(value.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// API Gateway's `requestContext.stage`: the stage a one-segment base
    /// path names, else `$default`.
    fn stage(&self) -> &str {
        match self.0.strip_prefix('/') {
            Some(stage) if !stage.contains('/') => stage,
            _ => "$default",
        }
    }
}

/// The laptop's clock: wall time plus an offset that only moves forward, so
/// a person (or a test) can reach an action's end of life without waiting
/// hours. It is the Stripe emulator's own clock, so the emulator dates and
/// signs its webhooks with the time the webhook checks them against.
pub struct LocalClock(Arc<stripe_emulator::Clock>);

impl Default for LocalClock {
    fn default() -> Self {
        LocalClock(Arc::new(stripe_emulator::Clock::system()))
    }
}

impl LocalClock {
    pub fn sharing(clock: Arc<stripe_emulator::Clock>) -> Self {
        LocalClock(clock)
    }
    pub fn advance(&self, seconds: i64) {
        self.0.advance(seconds);
    }
}

impl visitpay_app::ports::Clock for LocalClock {
    fn now(&self) -> visitpay_domain::Timestamp {
        // Whole milliseconds, as the system clock gives them.
        let millis = i128::from(self.0.now_millis());
        time::OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).expect("a representable time")
    }
}

/// Local-only controls, outside the API (`/_local/...`).
#[derive(Clone)]
pub struct Controls {
    pub clock: Arc<LocalClock>,
    pub emulator: Option<stripe_emulator::Emulator>,
    /// Status events, as publish-action-events sends them in AWS.
    pub events: events::LocalEvents,
    /// The `Host` values this server answers `/_local/*` for: its own
    /// address, and the loopback names of its port.
    pub own_hosts: OwnHosts,
    /// Every email and text the run would send (`GET /_local/outbox`).
    pub outbox: Arc<visitpay_devkit::outbox::Outbox>,
}

/// The hosts that are this server: the bound address and, on its port,
/// `localhost`, `127.0.0.1` and `[::1]`. A request to `/_local/*` naming any
/// other host reached us through a name that is not ours (DNS rebinding).
#[derive(Debug, Clone)]
pub struct OwnHosts(Arc<[String]>);

impl OwnHosts {
    pub fn of(bound: std::net::SocketAddr) -> Self {
        let port = bound.port();
        let mut hosts = vec![bound.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}")];
        hosts.push(format!("[::1]:{port}"));
        hosts.dedup();
        OwnHosts(hosts.into())
    }

    fn contains(&self, host: &str) -> bool {
        self.0.iter().any(|own| own.eq_ignore_ascii_case(host))
    }
}

/// `/_local/*` answers only its own host, and only same-origin or direct
/// calls: a page elsewhere (another site in the same browser) cannot mint a
/// token, move the clock or read the event stream, and neither can a name
/// rebound to 127.0.0.1. Browsers send `Origin` on cross-origin requests and
/// on every POST, and `Sec-Fetch-Site` on every request.
async fn local_only(State(hosts): State<OwnHosts>, request: AxumRequest, next: axum::middleware::Next) -> AxumResponse {
    match refusal(&hosts, request.headers()) {
        Some(message) => to_axum(ApiError::new(StatusCode::FORBIDDEN, "local_only", message).into_response()),
        None => next.run(request).await,
    }
}

/// Why a request to `/_local/*` is refused, if it is.
fn refusal(hosts: &OwnHosts, headers: &axum::http::HeaderMap) -> Option<&'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").unwrap_or_default();
    if !hosts.contains(host) {
        return Some("local controls answer only this server's own address");
    }
    let same_origin = |origin: &str| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
    };
    if header("origin").is_some_and(|origin| !same_origin(origin)) {
        return Some("local controls refuse calls from another origin");
    }
    if header("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return Some("local controls refuse calls from another site");
    }
    None
}

/// `POST /_local/clock/advance {"seconds": n}`: moves this server's clock and
/// the emulator's forward together.
async fn advance_clock(State(controls): State<Controls>, body: axum::body::Bytes) -> AxumResponse {
    let seconds = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["seconds"].as_i64()).filter(|s| *s >= 0);
    let Some(seconds) = seconds else {
        return to_axum(
            ApiError::bad_request("invalid_body", "expected {\"seconds\": <non-negative integer>}").into_response(),
        );
    };
    // One clock: the emulator's advance moves ours (and expires what is due at Stripe).
    match &controls.emulator {
        Some(emulator) => {
            emulator.advance_clock(seconds);
        }
        None => controls.clock.advance(seconds),
    }
    let now = visitpay_app::ports::Clock::now(controls.clock.as_ref());
    let text =
        json!({ "now": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default() }).to_string();
    AxumResponse::builder()
        .header("content-type", "application/json")
        .body(AxumBody::from(text))
        .expect("valid response")
}

#[derive(serde::Deserialize)]
struct ClinicQuery {
    clinic: Option<String>,
}

/// `GET /_local/outbox?clinic=<id>` (that clinic's staff token): every email
/// and text the run would have sent for it, newest last.
async fn outbox(
    State((outbox, secret)): State<(Arc<visitpay_devkit::outbox::Outbox>, Arc<str>)>,
    axum::extract::Query(query): axum::extract::Query<ClinicQuery>,
    headers: axum::http::HeaderMap,
) -> AxumResponse {
    let Some(clinic) = query.clinic.and_then(|c| visitpay_domain::ClinicId::parse(&c).ok()) else {
        return to_axum(ApiError::bad_request("invalid_query", "clinic=<clinic id> is required").into_response());
    };
    let Some(claims) = bearer_claims(&headers, &secret) else {
        return to_axum(ApiError::unauthorized().into_response());
    };
    let staff = claims.get("role").map(String::as_str) == Some("staff")
        && claims.get("clinic_id").map(String::as_str) == Some(clinic.as_str());
    if !staff {
        let refused = ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only this clinic's staff see its outbox");
        return to_axum(refused.into_response());
    }
    let text = json!({ "messages": outbox.of_clinic(&clinic) }).to_string();
    AxumResponse::builder()
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(AxumBody::from(text))
        .expect("valid response")
}

/// `POST /_local/sms/inbound {"from": "+1…", "body": "STOP"}`: a patient's
/// reply, as the SMS service's two-way channel brings it in AWS.
async fn sms_inbound(State(gateway): State<Gateway>, body: axum::body::Bytes) -> AxumResponse {
    let body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let from = body["from"].as_str().and_then(|f| visitpay_domain::PhoneNumber::parse(f).ok());
    let (Some(from), Some(text)) = (from, body["body"].as_str()) else {
        let refused = ApiError::bad_request("invalid_body", "expected {\"from\": <E.164 number>, \"body\": <text>}");
        return to_axum(refused.into_response());
    };
    match visitpay_app::messages::sms_received(&gateway.deps, &from, text).await {
        Ok(word) => {
            let text = json!({ "opted_out": word }).to_string();
            AxumResponse::builder()
                .header("content-type", "application/json")
                .body(AxumBody::from(text))
                .expect("valid response")
        }
        Err(e) => to_axum(ApiError::from(e).into_response()),
    }
}

/// `POST /_local/tokens {"clinic_id": …, "role": "staff"|"support"}`: a dev
/// token, as `visitpay-local token` prints (the console signs in with it).
async fn mint_token(State(secret): State<Arc<str>>, body: axum::body::Bytes) -> AxumResponse {
    let body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let clinic = body["clinic_id"].as_str().filter(|c| visitpay_domain::ids::is_valid_id(c));
    let role = match body["role"].as_str() {
        Some("staff") => Some((Role::Staff, "console-staff")),
        Some("support") => Some((Role::Support, "console-support")),
        _ => None,
    };
    let (Some(clinic), Some((role, sub))) = (clinic, role) else {
        return to_axum(
            ApiError::bad_request("invalid_body", "expected {\"clinic_id\": <id>, \"role\": \"staff\"|\"support\"}")
                .into_response(),
        );
    };
    let text = json!({ "token": token(&secret, clinic, role, sub) }).to_string();
    AxumResponse::builder()
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(AxumBody::from(text))
        .expect("valid response")
}

/// The gateway for every function, the Stripe emulator under `/stripe` when
/// there is one, the local controls, the status event stream and the
/// reference clinic console.
pub fn router(gateway: Gateway, controls: Controls) -> Router {
    let stream = events::Stream { events: controls.events.clone(), jwt_secret: gateway.jwt_secret.clone() };
    let local = Router::new()
        .route("/_local/clock/advance", axum::routing::post(advance_clock))
        .with_state(controls.clone())
        .merge(Router::new().route("/_local/events", axum::routing::get(events::stream)).with_state(stream))
        .merge(
            Router::new()
                .route("/_local/tokens", axum::routing::post(mint_token))
                .with_state(gateway.jwt_secret.clone()),
        )
        .merge(
            Router::new()
                .route("/_local/outbox", axum::routing::get(outbox))
                .with_state((controls.outbox.clone(), gateway.jwt_secret.clone())),
        )
        .merge(Router::new().route("/_local/sms/inbound", axum::routing::post(sms_inbound)).with_state(gateway.clone()))
        .layer(axum::middleware::from_fn_with_state(controls.own_hosts.clone(), local_only));
    let base_path = gateway.base_path.clone();
    let router = Router::new()
        .fallback(serve_request)
        .with_state(gateway)
        .merge(local)
        .merge(console::router(base_path.as_str()));
    let router = match &controls.emulator {
        Some(emulator) => router.nest("/stripe", emulator.router()),
        None => router,
    };
    if base_path.as_str().is_empty() {
        return router;
    }
    // Under a base path, as API Gateway serves a named stage: nothing answers outside it.
    Router::new()
        .nest(base_path.as_str(), router)
        .fallback(|| async { to_axum(ApiError::route_not_found().into_response()) })
}

/// The claims of the request's valid bearer token, as API Gateway's JWT
/// authorizer would pass them; `None` without one.
pub fn bearer_claims(
    headers: &axum::http::HeaderMap,
    secret: &str,
) -> Option<std::collections::HashMap<String, String>> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))?;
    dev_jwt::verify(secret, bearer.trim(), now_unix()).ok()
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn request_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mints a dev token for `role` (`staff` or `support`).
pub fn token(secret: &str, clinic: &str, role: Role, sub: &str) -> String {
    let role = match role {
        Role::Staff => "staff",
        Role::Support => "support",
    };
    dev_jwt::mint(secret, sub, clinic, role, now_unix(), 12 * 3600)
}

async fn serve_request(State(gw): State<Gateway>, request: AxumRequest) -> AxumResponse {
    let origin = request.headers().get("origin").and_then(|o| o.to_str().ok()).map(str::to_owned);
    // A preflight is API Gateway's to answer (CORS configured), never a route's.
    let preflight = request.method() == axum::http::Method::OPTIONS
        && request.headers().contains_key("access-control-request-method");
    if let (true, Some(origin)) = (preflight, &origin) {
        let mut response = AxumResponse::builder().status(StatusCode::NO_CONTENT);
        for (name, value) in gw.cors.preflight(origin) {
            response = response.header(name, value);
        }
        return response.body(AxumBody::empty()).expect("valid response");
    }
    let mut response = route_request(&gw, request).await;
    if let Some(origin) = origin {
        for (name, value) in gw.cors.response(&origin) {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

async fn route_request(gw: &Gateway, request: AxumRequest) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Some((route, path_params)) = functions::match_path(parts.method.as_str(), &path) else {
        let error = if functions::path_exists(&path) {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        } else {
            ApiError::route_not_found()
        };
        return to_axum(error.into_response());
    };

    // The JWT authorizer: only routes that have one in API Gateway (not the
    // patient's link, not Stripe's webhook).
    let claims = if matches!(route.access, Access::Patient | Access::Stripe) {
        None
    } else {
        match bearer_claims(&parts.headers, &gw.jwt_secret) {
            Some(claims) => Some(claims),
            None => return to_axum(ApiError::unauthorized().into_response()),
        }
    };

    let bytes = match to_bytes(body, GATEWAY_MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return to_axum(ApiError::too_large(GATEWAY_MAX_BODY).into_response()),
    };

    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // Payload 2.0 moves cookies out of the headers into `cookies`, one per entry.
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| Value::String(c.trim().to_owned())).filter(|c| c != ""));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            // API Gateway v2 joins repeated headers with commas.
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(k.into_owned()).and_modify(|e| e.push_str(&format!(",{v}"))).or_insert_with(|| v.into_owned());
    }
    let (body, is_base64) = match std::str::from_utf8(&bytes) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&bytes), true),
    };
    let key = route.key();
    let now = time::OffsetDateTime::now_utc();
    // API Gateway's named stage: the stage is in `rawPath` and the
    // request's path, never in the route key.
    let path = format!("{}{path}", gw.base_path.as_str());
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "visitpay-local",
        "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
        "http": {
            "method": parts.method.as_str(),
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
        },
        "requestId": request_id(),
        "routeKey": key,
        "stage": gw.base_path.stage(),
        "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
        "timeEpoch": now.unix_timestamp() * 1000,
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": is_base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !path_params.is_empty() {
        // API Gateway hands functions decoded path parameters.
        let decoded = path_params.into_iter().map(|(k, v)| (k.to_owned(), Value::String(percent_decode(&v))));
        event["pathParameters"] = Value::Object(decoded.collect());
    }
    if !bytes.is_empty() {
        event["body"] = Value::String(body);
    }
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build an API Gateway event");
            return to_axum(
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred")
                    .into_response(),
            );
        }
    };
    to_axum(handle(&gw.deps, functions::Function::serving(route), request).await)
}

/// `%2D` → `-`; an invalid escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn to_axum(response: lambda_http::Response<lambda_http::Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}

/// Serves on `listener` until ctrl-c.
pub async fn serve(listener: tokio::net::TcpListener, gateway: Gateway, controls: Controls) -> std::io::Result<()> {
    axum::serve(listener, router(gateway, controls))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
