//! Connected accounts, as the platform reads them.

use serde_json::Value;

use super::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::store::State;

/// `GET /v1/accounts/{id}`, by the platform (no `Stripe-Account`): one the
/// platform is not connected to, or that disconnected it, is refused as
/// Stripe refuses it ("does not have access to account … (or that account
/// does not exist)").
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.accounts.get(id) {
        Some(account) if account.connected && ctx.account.is_none() => Ok(objects::account(id, account)),
        _ => Err(ApiError::account_invalid(&ctx.key, id)),
    }
}
