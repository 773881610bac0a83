//! Disputes, as the platform reads them on a connected account.

use serde_json::Value;

use super::params::{opt_string, paginate};
use super::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::records::Dispute;
use crate::store::State;

/// `GET /v1/disputes[?payment_intent=…&charge=…]`, newest first.
pub(super) fn list(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let payment_intent = opt_string(params, "payment_intent");
    let charge = opt_string(params, "charge");
    let mut items: Vec<&Dispute> = state
        .disputes
        .values()
        .filter(|d| d.account == ctx.account)
        .filter(|d| payment_intent.as_deref().is_none_or(|pi| d.payment_intent == pi))
        .filter(|d| charge.as_deref().is_none_or(|ch| d.charge == ch))
        .collect();
    items.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let items = items.into_iter().map(|d| (d.id.clone(), d)).collect();
    paginate(items, |d| objects::dispute(d, state.livemode), params, "/v1/disputes")
}

/// `GET /v1/disputes/{id}`.
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.disputes.get(id) {
        Some(dispute) if dispute.account == ctx.account => Ok(objects::dispute(dispute, state.livemode)),
        _ => Err(ApiError::no_such("dispute", id, "dispute")),
    }
}
