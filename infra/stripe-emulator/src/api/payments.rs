//! PaymentIntents and Charges, as the platform reads them on a connected account.

use serde_json::Value;

use super::Ctx;
use crate::error::ApiError;
use crate::form::string_list;
use crate::objects;
use crate::store::State;

/// `GET /v1/payment_intents/{id}[?expand[]=latest_charge]`: the latest
/// charge is its id unless expanded, as any expandable field ("Expanding
/// responses", API reference). Stripe refuses to expand what cannot be:
/// "This property cannot be expanded (x)."
pub(super) fn retrieve_intent(state: &State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
    let intent = match state.payment_intents.get(id) {
        Some(intent) if intent.account == ctx.account => intent,
        _ => return Err(ApiError::no_such("payment_intent", id, "intent")),
    };
    let mut json = objects::payment_intent(intent, state.livemode);
    for field in string_list(params.get("expand")) {
        match field.as_str() {
            "latest_charge" => {
                if let Some(charge) = intent.latest_charge.as_ref().and_then(|c| state.charges.get(c)) {
                    json["latest_charge"] = state.charge_json(charge, false);
                }
            }
            other => {
                return Err(ApiError::invalid(format!("This property cannot be expanded ({other})."), Some("expand")))
            }
        }
    }
    Ok(json)
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
