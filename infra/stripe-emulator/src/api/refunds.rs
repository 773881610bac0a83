//! Refunds: create (Stripe's rules: what remains, disputes, minimums),
//! retrieve, list by payment.

use serde_json::Value;

use super::params::{int_param, opt_string, paginate, string_map};
use super::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::records::{Refund, RefundStart, RefundStatus};
use crate::store::State;
use crate::util::random_id;

/// `$12.34`, as Stripe words amounts in refund errors.
pub(super) fn dollars(amount: i64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}

pub(super) fn create(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
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
    // The refund leaves the balance when it is made (a failure puts it back).
    let (txn, amount, currency) = (refund.balance_transaction.clone(), refund.amount, refund.currency.clone());
    state.record_balance(&txn, &ctx.account, -amount, 0, &currency, "refund", "refund", &refund_id);
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

/// `GET /v1/refunds/{id}`.
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.refunds.get(id) {
        Some(refund) if refund.account == ctx.account => Ok(objects::refund(refund, state.livemode)),
        _ => Err(ApiError::no_such("refund", id, "id")),
    }
}

/// `GET /v1/refunds[?payment_intent=…]`, newest first.
pub(super) fn list(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let payment_intent = opt_string(params, "payment_intent");
    let mut items: Vec<&Refund> = state
        .refunds
        .values()
        .filter(|r| r.account == ctx.account)
        .filter(|r| payment_intent.as_deref().is_none_or(|pi| r.payment_intent == pi))
        .collect();
    items.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let items = items.into_iter().map(|r| (r.id.clone(), r)).collect();
    paginate(items, |r| objects::refund(r, state.livemode), params, "/v1/refunds")
}
