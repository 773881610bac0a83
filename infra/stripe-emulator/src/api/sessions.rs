//! Checkout Sessions: create (Stripe's rules on amounts, expiry, line items,
//! metadata), retrieve with expansions, list, expire, their line items.

use serde_json::Value;

use super::params::{created_bounds, int_param, opt_string, paginate, string_map, within};
use super::Ctx;
use crate::error::ApiError;
use crate::form::string_list;
use crate::objects;
use crate::records::{LineItem, PaymentIntentData, Session, SessionStatus};
use crate::store::State;
use crate::util::random_id;

pub(super) const MIN_EXPIRY: i64 = 30 * 60;

pub(super) const MAX_EXPIRY: i64 = 24 * 60 * 60;

/// Tolerance for `expires_at` bounds: clients compute "now + 30 min" a moment before we check it.
pub(super) const EXPIRY_SLACK: i64 = 10;

/// Objects of another account (or of the platform, when a `Stripe-Account` is given) do not exist.
pub(super) fn check_session(state: &State, ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    match state.sessions.get(id) {
        Some(session) if session.account == ctx.account => Ok(()),
        _ => Err(ApiError::no_such("checkout.session", id, "id")),
    }
}

/// The session, with `expand[]=payment_intent` / `expand[]=line_items` inlined; other expansions are ignored.
pub(super) fn session_json(state: &State, id: &str, params: &Value) -> Value {
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

/// The smallest charge per currency, in minor units ("Minimum and maximum charge amounts",
/// Stripe docs, Supported currencies): 0.50 in most, 0.30 in GBP, ¥50.
pub(super) fn minimum_amount(currency: &str) -> Option<i64> {
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

pub(super) fn create(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
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

pub(super) fn line_item(index: usize, item: &Value, now: i64) -> Result<LineItem, ApiError> {
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

pub(super) fn list(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
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

pub(super) fn expire(state: &mut State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
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

/// `GET /v1/checkout/sessions/{id}`.
pub(super) fn retrieve(state: &State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
    check_session(state, ctx, id)?;
    Ok(session_json(state, id, params))
}

/// `GET /v1/checkout/sessions/{id}/line_items`.
pub(super) fn line_items(state: &State, ctx: &Ctx, id: &str, params: &Value) -> Result<Value, ApiError> {
    check_session(state, ctx, id)?;
    let items = state.sessions[id].line_items.iter().map(|li| (li.id.clone(), li)).collect();
    paginate(items, |li| objects::line_item(li), params, &format!("/v1/checkout/sessions/{id}/line_items"))
}
