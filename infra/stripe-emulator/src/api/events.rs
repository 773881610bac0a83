//! Events: the log Stripe keeps of each account (`GET /v1/events`), filtered
//! by type and creation time, newest first.

use serde_json::Value;

use super::params::{created_bounds, opt_string, paginate, within};
use super::Ctx;
use crate::error::ApiError;
use crate::form::string_list;
use crate::objects;
use crate::store::State;

pub(super) fn type_matches(filters: &[String], kind: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => f == kind,
        })
}

/// `types`: "An array of up to 20 strings containing specific event names …
/// You may pass either `type` or `types`, but not both" (API reference, List all events).
const MAX_TYPES: usize = 20;

pub(super) fn list(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let types = string_list(params.get("types"));
    let single = opt_string(params, "type");
    if !types.is_empty() && single.is_some() {
        return Err(ApiError::invalid("You may pass either `type` or `types`, but not both.", Some("types")));
    }
    if types.len() > MAX_TYPES {
        return Err(ApiError::invalid(
            format!("Invalid array: types must have at most {MAX_TYPES} elements"),
            Some("types"),
        ));
    }
    let types: Vec<String> = types.into_iter().chain(single).collect();
    // "Filter events by whether all webhooks were successfully delivered. If
    // false, events which are still pending or have failed all delivery
    // attempts to a webhook endpoint will be returned."
    let delivery_success = match params.get("delivery_success") {
        None => None,
        Some(v) => Some(
            crate::form::as_bool(v)
                .ok_or_else(|| ApiError::invalid("Invalid boolean: delivery_success", Some("delivery_success")))?,
        ),
    };
    let bounds = created_bounds(params.get("created"))?;
    let oldest = state.now() - crate::store::KEPT_EVENT_SECS;
    let items = state
        .events
        .iter()
        .rev()
        .filter(|e| e.created >= oldest)
        .filter(|e| delivery_success.is_none_or(|wanted| state.was_delivered(e) == wanted))
        .filter(|e| e.account == ctx.account && type_matches(&types, &e.kind) && within(&bounds, e.created))
        .map(|e| (e.id.clone(), e))
        .collect();
    paginate(items, |e| objects::event(e), params, "/v1/events")
}

/// `GET /v1/events/{id}`.
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    let oldest = state.now() - crate::store::KEPT_EVENT_SECS;
    match state.events.iter().find(|e| e.id == id) {
        Some(event) if event.account == ctx.account && event.created >= oldest => Ok(objects::event(event)),
        _ => Err(ApiError::no_such("event", id, "id")),
    }
}
