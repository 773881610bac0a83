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

pub(super) fn list(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
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

/// `GET /v1/events/{id}`.
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.events.iter().find(|e| e.id == id) {
        Some(event) if event.account == ctx.account => Ok(objects::event(event)),
        _ => Err(ApiError::no_such("event", id, "id")),
    }
}
