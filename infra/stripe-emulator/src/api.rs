//! The Stripe API surface (`/v1/...`): authentication, `Stripe-Account` scoping, idempotency,
//! the request log, and the operations themselves.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::form::{self, as_int, string_list};
use crate::objects;
use crate::store::{
    IdempotentResponse, LineItem, Origin, PaymentIntentData, Refund, RefundStart, RefundStatus, Session, SessionStatus,
    State,
};
use crate::util::{json_response, random_id};
use crate::Emulator;

const MIN_EXPIRY: i64 = 30 * 60;
const MAX_EXPIRY: i64 = 24 * 60 * 60;
/// Tolerance for `expires_at` bounds: clients compute "now + 30 min" a moment before we check it.
const EXPIRY_SLACK: i64 = 10;

/// Who is asking and on whose behalf.
struct Ctx<'a> {
    /// The secret key the request was made with.
    key: String,
    account: Option<String>,
    origin: Origin,
    public_base: &'a str,
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
    let live = state.livemode;
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "checkout", "sessions"]) => create_session(state, ctx, params),
        ("GET", ["v1", "checkout", "sessions"]) => list_sessions(state, ctx, params),
        ("GET", ["v1", "checkout", "sessions", id]) => {
            check_session(state, ctx, id)?;
            Ok(session_json(state, id, params))
        }
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => expire_session(state, ctx, id, params),
        ("GET", ["v1", "checkout", "sessions", id, "line_items"]) => {
            check_session(state, ctx, id)?;
            let items = state.sessions[*id].line_items.iter().map(|li| (li.id.clone(), li)).collect();
            paginate(items, |li| objects::line_item(li), params, &format!("/v1/checkout/sessions/{id}/line_items"))
        }
        ("POST", ["v1", "refunds"]) => create_refund(state, ctx, params),
        ("GET", ["v1", "refunds", id]) => match state.refunds.get(*id) {
            Some(refund) if refund.account == ctx.account => Ok(objects::refund(refund, live)),
            _ => Err(ApiError::no_such("refund", id, "id")),
        },
        ("GET", ["v1", "refunds"]) => {
            let payment_intent = opt_string(params, "payment_intent");
            let mut items: Vec<&crate::store::Refund> = state
                .refunds
                .values()
                .filter(|r| r.account == ctx.account)
                .filter(|r| payment_intent.as_deref().is_none_or(|pi| r.payment_intent == pi))
                .collect();
            items.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
            let items = items.into_iter().map(|r| (r.id.clone(), r)).collect();
            paginate(items, |r| objects::refund(r, live), params, "/v1/refunds")
        }
        ("GET", ["v1", "payment_intents", id]) => match state.payment_intents.get(*id) {
            Some(intent) if intent.account == ctx.account => Ok(objects::payment_intent(intent, live)),
            _ => Err(ApiError::no_such("payment_intent", id, "intent")),
        },
        ("GET", ["v1", "charges", id]) => match state.charges.get(*id) {
            Some(charge) if charge.account == ctx.account => {
                let expand = string_list(params.get("expand")).iter().any(|e| e == "refunds");
                Ok(state.charge_json(charge, expand))
            }
            _ => Err(ApiError::no_such("charge", id, "charge")),
        },
        ("GET", ["v1", "disputes"]) => {
            let payment_intent = opt_string(params, "payment_intent");
            let charge = opt_string(params, "charge");
            let mut items: Vec<&crate::store::Dispute> = state
                .disputes
                .values()
                .filter(|d| d.account == ctx.account)
                .filter(|d| payment_intent.as_deref().is_none_or(|pi| d.payment_intent == pi))
                .filter(|d| charge.as_deref().is_none_or(|ch| d.charge == ch))
                .collect();
            items.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
            let items = items.into_iter().map(|d| (d.id.clone(), d)).collect();
            paginate(items, |d| objects::dispute(d, live), params, "/v1/disputes")
        }
        ("GET", ["v1", "disputes", id]) => match state.disputes.get(*id) {
            Some(dispute) if dispute.account == ctx.account => Ok(objects::dispute(dispute, live)),
            _ => Err(ApiError::no_such("dispute", id, "dispute")),
        },
        // A connected account, read by the platform (no `Stripe-Account`): one the
        // platform is not connected to, or that disconnected it, is refused as
        // Stripe refuses it ("does not have access to account … (or that account
        // does not exist)").
        ("GET", ["v1", "accounts", id]) => match state.accounts.get(*id) {
            Some(account) if account.connected && ctx.account.is_none() => {
                Ok(objects::account(id, account, state.now()))
            }
            _ => Err(ApiError::account_invalid(&ctx.key, id)),
        },
        ("GET", ["v1", "events"]) => list_events(state, ctx, params),
        ("GET", ["v1", "events", id]) => match state.events.iter().find(|e| e.id == *id) {
            Some(event) if event.account == ctx.account => Ok(objects::event(event)),
            _ => Err(ApiError::no_such("event", id, "id")),
        },
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

/// Objects of another account (or of the platform, when a `Stripe-Account` is given) do not exist.
fn check_session(state: &State, ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    match state.sessions.get(id) {
        Some(session) if session.account == ctx.account => Ok(()),
        _ => Err(ApiError::no_such("checkout.session", id, "id")),
    }
}

/// The session, with `expand[]=payment_intent` / `expand[]=line_items` inlined; other expansions are ignored.
fn session_json(state: &State, id: &str, params: &Value) -> Value {
    let session = &state.sessions[id];
    let mut json = objects::session(session, state.livemode);
    for field in string_list(params.get("expand")) {
        match field.as_str() {
            "payment_intent" => {
                if let Some(intent) = session.payment_intent.as_ref().and_then(|pi| state.payment_intents.get(pi)) {
                    json["payment_intent"] = objects::payment_intent(intent, state.livemode);
                }
            }
            "line_items" => {
                let items = session.line_items.iter().map(objects::line_item).collect();
                json["line_items"] = objects::list(items, false, &format!("/v1/checkout/sessions/{id}/line_items"));
            }
            _ => {}
        }
    }
    json
}

fn opt_string(params: &Value, name: &str) -> Option<String> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A metadata-like map: scalar values become strings; empty values unset the key, as on Stripe.
/// "You can specify up to 50 keys, with key names up to 40 characters long and values up to 500
/// characters long" (Stripe API reference, Metadata).
fn string_map(value: Option<&Value>, param: &str) -> Result<Map<String, Value>, ApiError> {
    let map = string_map_unchecked(value, param)?;
    if map.len() > 50 {
        return Err(ApiError::invalid(
            format!("Metadata can have up to 50 keys, but you've set {}", map.len()),
            Some(param),
        ));
    }
    for (key, value) in &map {
        if key.chars().count() > 40 {
            return Err(ApiError::invalid(
                format!(
                    "Metadata keys can have up to 40 characters, but you passed in a key that is {} characters. Invalid key: {key}",
                    key.chars().count()
                ),
                Some(param),
            ));
        }
        let len = value.as_str().map_or(0, |v| v.chars().count());
        if len > 500 {
            return Err(ApiError::invalid(
                format!("Metadata values can have up to 500 characters, but you passed in a value that is {len} characters."),
                Some(param),
            ));
        }
    }
    Ok(map)
}

fn string_map_unchecked(value: Option<&Value>, param: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some((k.clone(), Value::String(s.clone()))),
                other => Some((k.clone(), Value::String(other.to_string()))),
            })
            .collect()),
        Some(_) => Err(ApiError::invalid(format!("Invalid object: `{param}` must be a hash."), Some(param))),
    }
}

fn int_param(value: &Value, param: &str) -> Result<i64, ApiError> {
    as_int(value).ok_or_else(|| {
        ApiError::invalid_code("parameter_invalid_integer", format!("Invalid integer: {}", display(value)), Some(param))
    })
}

fn display(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}

/// The smallest charge per currency, in minor units ("Minimum and maximum charge amounts",
/// Stripe docs, Supported currencies): 0.50 in most, 0.30 in GBP, ¥50.
pub(crate) fn minimum_amount(currency: &str) -> Option<i64> {
    Some(match currency {
        "usd" | "cad" | "eur" | "chf" | "aud" | "nzd" | "sgd" | "brl" | "inr" => 50,
        "gbp" => 30,
        "jpy" => 50,
        "dkk" => 250,
        "nok" | "sek" => 300,
        "hkd" => 400,
        "mxn" => 1_000,
        _ => return None,
    })
}

/// The parameters an endpoint takes; anything else is refused ("Received unknown parameter").
#[derive(Clone, Copy)]
enum Spec {
    /// A value (or a list of values: `expand[]`).
    Value,
    /// Free-form keys (`metadata`).
    Free,
    Object(&'static [(&'static str, Spec)]),
    /// A list whose items are `Spec` (`line_items[0][...]`).
    List(&'static Spec),
}

const PRODUCT_DATA: Spec = Spec::Object(&[("name", Spec::Value), ("description", Spec::Value)]);
const PRICE_DATA: Spec =
    Spec::Object(&[("currency", Spec::Value), ("unit_amount", Spec::Value), ("product_data", PRODUCT_DATA)]);
const LINE_ITEM: Spec = Spec::Object(&[("price_data", PRICE_DATA), ("price", Spec::Value), ("quantity", Spec::Value)]);
const CREATE_SESSION: Spec = Spec::Object(&[
    ("mode", Spec::Value),
    ("line_items", Spec::List(&LINE_ITEM)),
    ("client_reference_id", Spec::Value),
    ("customer_email", Spec::Value),
    ("metadata", Spec::Free),
    (
        "payment_intent_data",
        Spec::Object(&[
            ("metadata", Spec::Free),
            ("description", Spec::Value),
            ("application_fee_amount", Spec::Value),
        ]),
    ),
    ("locale", Spec::Value),
    ("expires_at", Spec::Value),
    ("success_url", Spec::Value),
    ("cancel_url", Spec::Value),
    ("payment_method_types", Spec::Value),
    ("expand", Spec::Value),
]);
const CREATE_REFUND: Spec = Spec::Object(&[
    ("payment_intent", Spec::Value),
    ("charge", Spec::Value),
    ("amount", Spec::Value),
    ("metadata", Spec::Free),
    ("reason", Spec::Value),
    ("expand", Spec::Value),
]);
const EXPAND_ONLY: Spec = Spec::Object(&[("expand", Spec::Value)]);
const LIST: Spec = Spec::Object(&[
    ("limit", Spec::Value),
    ("starting_after", Spec::Value),
    ("ending_before", Spec::Value),
    ("created", Spec::Free),
    ("type", Spec::Value),
    ("types", Spec::Value),
    ("payment_intent", Spec::Value),
    ("status", Spec::Value),
    ("expand", Spec::Value),
]);

fn spec_of(method: &str, segments: &[&str]) -> Option<&'static Spec> {
    Some(match (method, segments) {
        ("POST", ["v1", "checkout", "sessions"]) => &CREATE_SESSION,
        ("POST", ["v1", "refunds"]) => &CREATE_REFUND,
        ("POST", ["v1", "checkout", "sessions", _, "expire"]) => &EXPAND_ONLY,
        ("GET", ["v1", "checkout", "sessions"] | ["v1", "events"] | ["v1", "refunds"]) => &LIST,
        ("GET", ["v1", "checkout", "sessions", _, "line_items"]) => &LIST,
        ("GET", [_, _, _]) | ("GET", ["v1", "checkout", "sessions", _]) => &EXPAND_ONLY,
        _ => return None,
    })
}

/// The first parameter `spec` does not take, in Stripe's bracket notation.
fn unknown_param(value: &Value, spec: &Spec, at: &str) -> Option<String> {
    let name = |key: &str| if at.is_empty() { key.to_owned() } else { format!("{at}[{key}]") };
    match (spec, value) {
        (Spec::Object(fields), Value::Object(map)) => {
            map.iter().find_map(|(key, v)| match fields.iter().find(|(f, _)| f == key) {
                None => Some(name(key)),
                Some((_, inner)) => unknown_param(v, inner, &name(key)),
            })
        }
        (Spec::List(item), Value::Array(items)) => {
            items.iter().enumerate().find_map(|(i, v)| unknown_param(v, item, &format!("{at}[{i}]")))
        }
        _ => None,
    }
}

fn create_session(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let now = state.now();
    let mode = params.get("mode").and_then(Value::as_str).ok_or_else(|| ApiError::missing_param("mode"))?;
    if mode != "payment" {
        return Err(ApiError::invalid(
            format!("Invalid mode: the Stripe emulator supports only `payment`, not `{mode}`."),
            Some("mode"),
        ));
    }
    let items = match params.get("line_items") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::invalid(
                "You must provide at least one line item in `line_items` in `payment` mode.",
                Some("line_items"),
            ))
        }
    };
    let line_items =
        items.iter().enumerate().map(|(i, item)| line_item(i, item, now)).collect::<Result<Vec<_>, _>>()?;
    let currency = line_items[0].currency.clone();
    if line_items.iter().any(|li| li.currency != currency) {
        return Err(ApiError::invalid("All line items must use the same currency.", Some("line_items")));
    }
    let amount_total = line_items
        .iter()
        .try_fold(0i64, |total, li| total.checked_add(li.amount()))
        .ok_or_else(|| ApiError::invalid("The total amount is too large.", Some("line_items")))?;
    if let Some(minimum) = minimum_amount(&currency) {
        if amount_total < minimum {
            return Err(ApiError::invalid_code(
                "amount_too_small",
                format!(
                    "The Checkout Session's total amount due must add up to at least {} {currency}",
                    crate::page::format_amount(minimum, &currency, None)
                ),
                None,
            ));
        }
    }
    if let Some(reference) = opt_string(params, "client_reference_id") {
        if reference.chars().count() > 200 {
            return Err(ApiError::invalid(
                format!("Invalid string: {reference}...; must be at most 200 characters"),
                Some("client_reference_id"),
            ));
        }
    }

    let expires_at = match params.get("expires_at") {
        None => now + MAX_EXPIRY,
        Some(value) => {
            let expires_at = int_param(value, "expires_at")?;
            if expires_at < now + MIN_EXPIRY - EXPIRY_SLACK {
                return Err(ApiError::invalid(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                    Some("expires_at"),
                ));
            }
            if expires_at > now + MAX_EXPIRY + EXPIRY_SLACK {
                return Err(ApiError::invalid(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                    Some("expires_at"),
                ));
            }
            expires_at
        }
    };

    let intent_params = params.get("payment_intent_data");
    let application_fee_amount = match intent_params.and_then(|p| p.get("application_fee_amount")) {
        None => None,
        Some(value) => match int_param(value, "payment_intent_data[application_fee_amount]")? {
            fee if fee < 0 || fee > amount_total => {
                return Err(ApiError::invalid(
                    "The application fee must be between 0 and the amount of the Checkout Session.",
                    Some("payment_intent_data[application_fee_amount]"),
                ))
            }
            fee => Some(fee),
        },
    };
    let payment_intent_data = PaymentIntentData {
        metadata: string_map(intent_params.and_then(|p| p.get("metadata")), "payment_intent_data[metadata]")?,
        description: intent_params.and_then(|p| opt_string(p, "description")),
        application_fee_amount,
    };
    let mut payment_method_types = string_list(params.get("payment_method_types"));
    if payment_method_types.is_empty() {
        payment_method_types.push("card".into());
    }

    let id = random_id("cs_test_");
    let session = Session {
        url: format!("{}/checkout/{id}", ctx.public_base),
        id: id.clone(),
        account: ctx.account.clone(),
        created: now,
        expires_at,
        status: SessionStatus::Open,
        paid: false,
        currency,
        amount_total,
        line_items,
        success_url: opt_string(params, "success_url"),
        cancel_url: opt_string(params, "cancel_url"),
        client_reference_id: opt_string(params, "client_reference_id"),
        customer_email: opt_string(params, "customer_email"),
        metadata: string_map(params.get("metadata"), "metadata")?,
        locale: opt_string(params, "locale"),
        payment_method_types,
        payment_intent_data,
        payment_intent: None,
    };
    state.sessions.insert(id.clone(), session);
    state.session_order.push(id.clone());
    Ok(session_json(state, &id, params))
}

fn line_item(index: usize, item: &Value, now: i64) -> Result<LineItem, ApiError> {
    let param = |name: &str| format!("line_items[{index}][{name}]");
    if item.get("price").is_some() {
        return Err(ApiError::invalid(
            "The Stripe emulator supports only inline `price_data` line items, not saved prices.",
            Some(&param("price")),
        ));
    }
    let price_data = item.get("price_data").ok_or_else(|| ApiError::missing_param(&param("price_data")))?;
    let currency = price_data
        .get("currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ApiError::missing_param(&param("price_data][currency")))?;
    let unit_amount = price_data
        .get("unit_amount")
        .ok_or_else(|| ApiError::missing_param(&param("price_data][unit_amount")))
        .and_then(|v| int_param(v, &param("price_data][unit_amount")))?;
    if unit_amount < 0 {
        return Err(ApiError::invalid(
            "This value must be greater than or equal to 0.",
            Some(&param("price_data][unit_amount")),
        ));
    }
    let name = price_data
        .get("product_data")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing_param(&param("price_data][product_data][name")))?;
    let quantity = item
        .get("quantity")
        .ok_or_else(|| ApiError::missing_param(&param("quantity")))
        .and_then(|v| int_param(v, &param("quantity")))?;
    if quantity < 1 {
        return Err(ApiError::invalid("This value must be greater than or equal to 1.", Some(&param("quantity"))));
    }
    if unit_amount.checked_mul(quantity).is_none() {
        return Err(ApiError::invalid("The line item amount is too large.", Some(&param("quantity"))));
    }
    Ok(LineItem {
        id: random_id("li_"),
        price_id: random_id("price_"),
        product_id: random_id("prod_"),
        name: name.to_owned(),
        currency,
        unit_amount,
        quantity,
        created: now,
    })
}

fn list_sessions(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let payment_intent = opt_string(params, "payment_intent");
    let status = opt_string(params, "status");
    let bounds = created_bounds(params.get("created"))?;
    let items = state
        .session_order
        .iter()
        .rev()
        .map(|id| &state.sessions[id])
        .filter(|s| s.account == ctx.account && within(&bounds, s.created))
        .filter(|s| payment_intent.is_none() || s.payment_intent == payment_intent)
        .filter(|s| status.as_deref().is_none_or(|st| s.status.as_str() == st))
        .map(|s| (s.id.clone(), s))
        .collect();
    let live = state.livemode;
    paginate(items, |s| objects::session(s, live), params, "/v1/checkout/sessions")
}

fn expire_session(state: &mut State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
    check_session(state, ctx, id)?;
    let status = state.sessions[id].status;
    if status != SessionStatus::Open {
        return Err(ApiError::refused(
            None,
            format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a \
                 status of `{}`.",
                status.as_str()
            ),
            None,
        ));
    }
    state.expire(id, &ctx.origin, true);
    Ok(session_json(state, id, params))
}

/// `$12.34`, as Stripe words amounts in refund errors.
fn dollars(amount: i64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}

fn create_refund(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let charge_id = if let Some(pi_id) = opt_string(params, "payment_intent") {
        let intent = state
            .payment_intents
            .get(&pi_id)
            .filter(|pi| pi.account == ctx.account)
            .ok_or_else(|| ApiError::no_such("payment_intent", &pi_id, "payment_intent"))?;
        intent.latest_charge.clone().filter(|_| intent.status == "succeeded").ok_or_else(|| {
            ApiError::refused(
                Some("charge_not_refundable"),
                format!("This PaymentIntent ({pi_id}) does not have a successful charge to refund."),
                Some("payment_intent"),
            )
        })?
    } else if let Some(charge_id) = opt_string(params, "charge") {
        match state.charges.get(&charge_id) {
            Some(charge) if charge.account == ctx.account => charge_id,
            _ => return Err(ApiError::no_such("charge", &charge_id, "charge")),
        }
    } else {
        return Err(ApiError::invalid("One of `charge` or `payment_intent` is required.", None));
    };

    let charge = &state.charges[&charge_id];
    // "The charge ch_… has been charged back; cannot issue a refund": a disputed
    // payment is refundable only while the dispute is an inquiry
    // (`is_charge_refundable`, Stripe API reference, Dispute).
    if let Some(dispute) = charge.dispute.as_ref().and_then(|id| state.disputes.get(id)) {
        if !dispute.charge_refundable() {
            return Err(ApiError::refused(
                Some("charge_disputed"),
                format!("The charge {charge_id} has been charged back; cannot issue a refund."),
                None,
            ));
        }
    }
    let remaining = charge.amount - state.amount_refunded(charge);
    let amount = match params.get("amount") {
        None => remaining,
        Some(value) => {
            let amount = int_param(value, "amount")?;
            if amount <= 0 {
                return Err(ApiError::invalid_code(
                    "parameter_invalid_integer",
                    "Invalid positive integer: the refund amount must be greater than 0.",
                    Some("amount"),
                ));
            }
            amount
        }
    };
    if remaining <= 0 {
        return Err(ApiError::refused(
            Some("charge_already_refunded"),
            format!("Charge {charge_id} has already been refunded."),
            None,
        ));
    }
    if amount > remaining {
        return Err(ApiError::refused(
            Some("amount_too_large"),
            format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                dollars(amount),
                dollars(remaining)
            ),
            Some("amount"),
        ));
    }
    let reason = opt_string(params, "reason");
    if let Some(reason) = &reason {
        if !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason.as_str()) {
            return Err(ApiError::invalid(
                format!(
                    "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer (got {reason})."
                ),
                Some("reason"),
            ));
        }
    }
    let refund = Refund {
        id: random_id("re_"),
        account: ctx.account.clone(),
        created: state.now(),
        amount,
        currency: charge.currency.clone(),
        charge: charge_id.clone(),
        payment_intent: charge.payment_intent.clone(),
        payment_method: charge.payment_method.clone(),
        method_type: charge.method_type.clone(),
        metadata: string_map(params.get("metadata"), "metadata")?,
        reason,
        balance_transaction: random_id("txn_"),
        // Card refunds usually succeed at once; a bank debit's is pending until the bank answers.
        status: match (charge.method_type.as_str(), state.refund_start) {
            ("card", RefundStart::Succeeded) => RefundStatus::Succeeded,
            ("card", RefundStart::RequiresAction) => RefundStatus::RequiresAction,
            _ => RefundStatus::Pending,
        },
        failure_reason: None,
    };
    let refund_json = objects::refund(&refund, state.livemode);
    let refund_id = refund.id.clone();
    state.refunds.insert(refund_id.clone(), refund);
    if let Some(charge) = state.charges.get_mut(&charge_id) {
        charge.refunds.push(refund_id);
    }
    // Webhook payloads are never expanded: the charge carries `amount_refunded`, not its refunds.
    let charge_json = state.charge_json(&state.charges[&charge_id], false);
    state.emit("charge.refunded", charge_json, ctx.account.clone(), &ctx.origin, true);
    state.emit("refund.created", refund_json.clone(), ctx.account.clone(), &ctx.origin, true);
    Ok(refund_json)
}

/// `created` filter: an exact timestamp or `created[gte]=..&created[lt]=..`.
fn created_bounds(value: Option<&Value>) -> Result<Vec<(String, i64)>, ApiError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(op, v)| match op.as_str() {
                "gt" | "gte" | "lt" | "lte" => Ok((op.clone(), int_param(v, &format!("created[{op}]"))?)),
                _ => Err(ApiError::invalid(format!("Received unknown parameter: created[{op}]"), Some("created"))),
            })
            .collect(),
        Some(value) => Ok(vec![("eq".into(), int_param(value, "created")?)]),
    }
}

/// Whether `created` is within the bounds of a `created` filter.
fn within(bounds: &[(String, i64)], created: i64) -> bool {
    bounds.iter().all(|(op, t)| match op.as_str() {
        "gt" => created > *t,
        "gte" => created >= *t,
        "lt" => created < *t,
        "lte" => created <= *t,
        _ => created == *t,
    })
}

fn type_matches(filters: &[String], kind: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => f == kind,
        })
}

fn list_events(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let mut types = string_list(params.get("types"));
    types.extend(opt_string(params, "type"));
    let bounds = created_bounds(params.get("created"))?;
    let items = state
        .events
        .iter()
        .rev()
        .filter(|e| e.account == ctx.account && type_matches(&types, &e.kind) && within(&bounds, e.created))
        .map(|e| (e.id.clone(), e))
        .collect();
    paginate(items, |e| objects::event(e), params, "/v1/events")
}

/// Stripe's cursor pagination over a newest-first list: `limit` (1..=100, default 10),
/// `starting_after` / `ending_before` object ids. Items are `(id, object)` pairs; only the
/// page returned is rendered, so long lists (a long run's events) stay cheap to page.
fn paginate<T>(
    items: Vec<(String, T)>,
    render: impl Fn(&T) -> Value,
    params: &Value,
    url: &str,
) -> Result<Value, ApiError> {
    let limit = match params.get("limit") {
        None => 10,
        Some(value) => match int_param(value, "limit")? {
            limit @ 1..=100 => limit as usize,
            _ => return Err(ApiError::invalid("Invalid limit: must be an integer between 1 and 100.", Some("limit"))),
        },
    };
    let position = |param: &str| match opt_string(params, param) {
        None => Ok(None),
        Some(id) => items
            .iter()
            .position(|(item, _)| *item == id)
            .map(Some)
            .ok_or_else(|| ApiError::no_such("object", &id, param)),
    };
    let (page, has_more) = if let Some(after) = position("starting_after")? {
        let rest = &items[after + 1..];
        (&rest[..rest.len().min(limit)], rest.len() > limit)
    } else if let Some(before) = position("ending_before")? {
        let start = before.saturating_sub(limit);
        (&items[start..before], start > 0)
    } else {
        (&items[..items.len().min(limit)], items.len() > limit)
    };
    Ok(objects::list(page.iter().map(|(_, item)| render(item)).collect(), has_more, url))
}
