//! PaymentIntents and Charges, as the platform reads them on a connected account.

use serde_json::Value;

use super::Ctx;
use crate::error::ApiError;
use crate::form::string_list;
use crate::objects;
use crate::store::State;

/// `GET /v1/payment_intents/{id}`.
pub(super) fn retrieve_intent(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.payment_intents.get(id) {
        Some(intent) if intent.account == ctx.account => Ok(objects::payment_intent(intent, state.livemode)),
        _ => Err(ApiError::no_such("payment_intent", id, "intent")),
    }
}

/// `GET /v1/charges/{id}[?expand[]=refunds]`: since 2022-11-15 a Charge lists its refunds only when asked.
pub(super) fn retrieve_charge(state: &State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
    match state.charges.get(id) {
        Some(charge) if charge.account == ctx.account => {
            let expand = string_list(params.get("expand")).iter().any(|e| e == "refunds");
            Ok(state.charge_json(charge, expand))
        }
        _ => Err(ApiError::no_such("charge", id, "charge")),
    }
}
