//! What every endpoint's parameters go through: each endpoint's accepted
//! parameters (anything else is refused, as Stripe refuses it), Stripe's
//! parameter forms, list filters and pagination.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::form::as_int;
use crate::objects;

pub(super) fn opt_string(params: &Value, name: &str) -> Option<String> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A metadata-like map: scalar values become strings; empty values unset the key, as on Stripe.
/// "You can specify up to 50 keys, with key names up to 40 characters long and values up to 500
/// characters long" (Stripe API reference, Metadata).
pub(super) fn string_map(value: Option<&Value>, param: &str) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn string_map_unchecked(value: Option<&Value>, param: &str) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn int_param(value: &Value, param: &str) -> Result<i64, ApiError> {
    as_int(value).ok_or_else(|| {
        ApiError::invalid_code("parameter_invalid_integer", format!("Invalid integer: {}", display(value)), Some(param))
    })
}

pub(super) fn display(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}

/// The parameters an endpoint takes; anything else is refused ("Received unknown parameter").
#[derive(Clone, Copy)]
pub(super) enum Spec {
    /// A value (or a list of values: `expand[]`).
    Value,
    /// Free-form keys (`metadata`).
    Free,
    Object(&'static [(&'static str, Spec)]),
    /// A list whose items are `Spec` (`line_items[0][...]`).
    List(&'static Spec),
}

pub(super) const PRODUCT_DATA: Spec = Spec::Object(&[("name", Spec::Value), ("description", Spec::Value)]);

pub(super) const PRICE_DATA: Spec =
    Spec::Object(&[("currency", Spec::Value), ("unit_amount", Spec::Value), ("product_data", PRODUCT_DATA)]);

pub(super) const LINE_ITEM: Spec =
    Spec::Object(&[("price_data", PRICE_DATA), ("price", Spec::Value), ("quantity", Spec::Value)]);

pub(super) const CREATE_SESSION: Spec = Spec::Object(&[
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

pub(super) const CREATE_REFUND: Spec = Spec::Object(&[
    ("payment_intent", Spec::Value),
    ("charge", Spec::Value),
    ("amount", Spec::Value),
    ("metadata", Spec::Free),
    ("reason", Spec::Value),
    ("expand", Spec::Value),
]);

pub(super) const EXPAND_ONLY: Spec = Spec::Object(&[("expand", Spec::Value)]);

pub(super) const LIST: Spec = Spec::Object(&[
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

/// `GET /v1/events`: a list's parameters and `delivery_success`, which only
/// the event list takes (API reference, List all events).
pub(super) const EVENT_LIST: Spec = Spec::Object(&[
    ("limit", Spec::Value),
    ("starting_after", Spec::Value),
    ("ending_before", Spec::Value),
    ("created", Spec::Free),
    ("type", Spec::Value),
    ("types", Spec::Value),
    ("delivery_success", Spec::Value),
]);

/// `POST /v1/accounts`: the parameters visitpay's platform may send (others
/// exist at Stripe; the emulator refuses what it does not implement).
pub(super) const CREATE_ACCOUNT: Spec = Spec::Object(&[
    (
        "controller",
        Spec::Object(&[
            ("fees", Spec::Object(&[("payer", Spec::Value)])),
            ("losses", Spec::Object(&[("payments", Spec::Value)])),
            ("requirement_collection", Spec::Value),
            ("stripe_dashboard", Spec::Object(&[("type", Spec::Value)])),
        ]),
    ),
    ("metadata", Spec::Free),
    ("country", Spec::Value),
    ("email", Spec::Value),
    ("expand", Spec::Value),
]);

pub(super) const CREATE_ACCOUNT_LINK: Spec = Spec::Object(&[
    ("account", Spec::Value),
    ("refresh_url", Spec::Value),
    ("return_url", Spec::Value),
    ("type", Spec::Value),
    ("collection_options", Spec::Object(&[("fields", Spec::Value), ("future_requirements", Spec::Value)])),
]);

pub(super) const LIST_BALANCE: Spec = Spec::Object(&[
    ("limit", Spec::Value),
    ("starting_after", Spec::Value),
    ("ending_before", Spec::Value),
    ("created", Spec::Free),
    ("type", Spec::Value),
    ("source", Spec::Value),
    ("payout", Spec::Value),
    ("currency", Spec::Value),
    ("expand", Spec::Value),
]);

pub(super) fn spec_of(method: &str, segments: &[&str]) -> Option<&'static Spec> {
    Some(match (method, segments) {
        ("POST", ["v1", "accounts"]) => &CREATE_ACCOUNT,
        ("POST", ["v1", "account_links"]) => &CREATE_ACCOUNT_LINK,
        ("GET", ["v1", "balance_transactions"]) => &LIST_BALANCE,
        ("POST", ["v1", "checkout", "sessions"]) => &CREATE_SESSION,
        ("POST", ["v1", "refunds"]) => &CREATE_REFUND,
        ("POST", ["v1", "checkout", "sessions", _, "expire"]) => &EXPAND_ONLY,
        ("GET", ["v1", "checkout", "sessions"] | ["v1", "refunds"]) => &LIST,
        ("GET", ["v1", "events"]) => &EVENT_LIST,
        ("GET", ["v1", "checkout", "sessions", _, "line_items"]) => &LIST,
        ("GET", [_, _, _]) | ("GET", ["v1", "checkout", "sessions", _]) => &EXPAND_ONLY,
        _ => return None,
    })
}

/// The first parameter `spec` does not take, in Stripe's bracket notation.
pub(super) fn unknown_param(value: &Value, spec: &Spec, at: &str) -> Option<String> {
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

/// `created` filter: an exact timestamp or `created[gte]=..&created[lt]=..`.
pub(super) fn created_bounds(value: Option<&Value>) -> Result<Vec<(String, i64)>, ApiError> {
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
pub(super) fn within(bounds: &[(String, i64)], created: i64) -> bool {
    bounds.iter().all(|(op, t)| match op.as_str() {
        "gt" => created > *t,
        "gte" => created >= *t,
        "lt" => created < *t,
        "lte" => created <= *t,
        _ => created == *t,
    })
}

/// Stripe's cursor pagination over a newest-first list: `limit` (1..=100, default 10),
/// `starting_after` / `ending_before` object ids. Items are `(id, object)` pairs; only the
/// page returned is rendered, so long lists (a long run's events) stay cheap to page.
pub(super) fn paginate<T>(
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
