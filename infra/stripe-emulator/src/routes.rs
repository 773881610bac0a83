//! The emulator's router: the Stripe API, the test controls and the hosted checkout page.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::form::{as_bool, as_int};
use crate::records::{Outcome, RefundStart, RefundStatus};
use crate::util::json_response;
use crate::webhooks::DeliveryMode;
use crate::{api, page, Emulator};

pub(crate) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(api::handle))
        .route("/test/checkout_sessions/{id}/pay", post(test_pay))
        .route("/test/requests", get(test_requests))
        .route("/test/clock/advance", post(advance_clock))
        .route("/test/refunds/behaviour", post(refund_behaviour))
        .route("/test/refunds/{id}", post(refund_status))
        .route("/test/payment_intents/{id}/dispute", post(open_dispute))
        .route("/test/disputes/{id}/{step}", post(dispute_step))
        .route("/test/accounts", post(connect_account))
        .route("/test/accounts/{id}/deauthorize", post(deauthorize_account))
        .route("/test/livemode", post(livemode))
        .route("/test/latency", post(latency))
        .route("/test/faults", post(faults).delete(clear_faults))
        .route("/test/webhooks/mode", post(webhook_mode))
        .route("/test/webhooks/flush", post(flush_webhooks))
        .route("/test/webhooks", get(webhook_state))
        .route("/checkout/{id}", get(page::show))
        .route("/checkout/{id}/pay", post(page::pay))
        .route("/connect/onboarding/{link}", get(page::onboarding).post(page::onboarding_submit))
        .route("/test/accounts/{id}/status", post(account_status))
        .route("/test/payouts", post(pay_out))
        .fallback(not_found)
        .with_state(emulator)
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}"), None))
}

/// `POST /test/checkout_sessions/{id}/pay {"outcome": .., "send_webhooks": ..}`: the patient pays.
async fn test_pay(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = json_body(&body).and_then(|params| {
        let requested = params.get("outcome").and_then(Value::as_str).unwrap_or("succeeded").to_owned();
        let outcome = Outcome::parse(&requested).ok_or_else(|| {
            ApiError::invalid(
                format!("Unknown outcome `{requested}`: use succeeded, declined, delayed_succeeded or delayed_failed."),
                Some("outcome"),
            )
        })?;
        let send_webhooks = params.get("send_webhooks").and_then(as_bool).unwrap_or(true);
        let (session, events) = emulator.with_state(|state| state.pay(&id, outcome, send_webhooks))?;
        Ok(json!({
            "session": session,
            "events": events,
            "outcome": requested,
            "declined": outcome == Outcome::Declined,
        }))
    });
    match result {
        Ok(body) => json_response(200, &body),
        Err(error) => json_response(error.status, &error.body),
    }
}

async fn test_requests(State(emulator): State<Emulator>) -> Response {
    json_response(200, &Value::Array(emulator.requests()))
}

/// `POST /test/clock/advance {"seconds": n}`: moves the emulated clock forward, e.g. past `expires_at`.
async fn advance_clock(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let seconds = params
            .get("seconds")
            .and_then(as_int)
            .filter(|s| *s >= 0)
            .ok_or_else(|| ApiError::invalid("`seconds` must be a non-negative integer.", Some("seconds")))?;
        // Anything that expired meanwhile does so right away, not at the next sweep.
        Ok(json!({ "now": emulator.advance_clock(seconds) }))
    }))
}

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => json_response(200, &body),
        Err(error) => json_response(error.status, &error.body),
    }
}

fn text<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

/// `POST /test/refunds/behaviour {"start": "succeeded"|"pending"|"requires_action"}`: what card refunds start as.
async fn refund_behaviour(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let start = match text(&params, "start") {
            Some("succeeded") => RefundStart::Succeeded,
            Some("pending") => RefundStart::Pending,
            Some("requires_action") => RefundStart::RequiresAction,
            _ => {
                return Err(ApiError::invalid("`start` must be succeeded, pending or requires_action.", Some("start")))
            }
        };
        emulator.with_state(|state| state.refund_start = start);
        Ok(json!({"start": text(&params, "start")}))
    }))
}

/// `POST /test/refunds/{id} {"status": "succeeded"|"failed"|"canceled", "failure_reason": ..}`: the bank answers.
async fn refund_status(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let status = text(&params, "status")
            .and_then(RefundStatus::parse)
            .ok_or_else(|| ApiError::invalid("`status` must be a refund status.", Some("status")))?;
        let reason = text(&params, "failure_reason").map(str::to_owned);
        emulator.with_state(|state| state.set_refund_status(&id, status, reason))
    }))
}

/// `POST /test/payment_intents/{id}/dispute {"reason": .., "amount": ..}`: the patient disputes the charge.
async fn open_dispute(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let reason = text(&params, "reason").unwrap_or("fraudulent").to_owned();
        let amount = params.get("amount").and_then(as_int);
        emulator.with_state(|state| state.open_dispute(&id, &reason, amount))
    }))
}

/// `POST /test/disputes/{id}/{update|funds_withdrawn|funds_reinstated|close} {"status"|"outcome": ..}`.
async fn dispute_step(
    State(emulator): State<Emulator>,
    Path((id, step)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(json_body(&body).and_then(|params| {
        let status = text(&params, "status").or_else(|| text(&params, "outcome")).map(str::to_owned);
        emulator.with_state(|state| state.dispute_step(&id, &step, status.as_deref()))
    }))
}

/// `POST /test/accounts {"id": "acct_…"}`: a clinic connects its account.
async fn connect_account(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let id = text(&params, "id")
            .filter(|id| id.starts_with("acct_"))
            .ok_or_else(|| ApiError::invalid("`id` must be an account id (acct_…).", Some("id")))?;
        emulator.connect_account(id);
        Ok(json!({"id": id, "connected": true}))
    }))
}

/// `POST /test/accounts/{id}/deauthorize`: the clinic disconnects its account from the platform.
/// "Occurs when a connected account disconnects from your platform" (Stripe Connect, webhooks):
/// `account.application.deauthorized`, with the account set on the event.
async fn deauthorize_account(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    answer(emulator.with_state(|state| {
        let account = state.accounts.get_mut(&id).ok_or_else(|| ApiError::no_such("account", &id, "account"))?;
        account.connected = false;
        let event = state.emit(
            "account.application.deauthorized",
            crate::objects::application(),
            Some(id.clone()),
            &crate::records::Origin::default(),
            true,
        );
        // The platform can no longer read the account's events, so the event itself is answered.
        let event = state.events.iter().rev().find(|e| e.id == event).map(crate::objects::event);
        Ok(json!({"id": id, "connected": false, "event": event}))
    }))
}

/// `POST /test/accounts/{id}/status {"charges_enabled", "payouts_enabled",
/// "disabled_reason", "requirements_due"}`: Stripe changes the account (a
/// verification failed, a requirement came due) and sends `account.updated`.
async fn account_status(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let flag = |k: &str| params.get(k).and_then(as_bool);
        let requirements_due = match params.get("requirements_due") {
            None => None,
            Some(Value::Array(items)) => {
                Some(items.iter().map(|i| i.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or_else(
                    || ApiError::invalid("`requirements_due` is a list of field names.", Some("requirements_due")),
                )?)
            }
            Some(_) => {
                return Err(ApiError::invalid("`requirements_due` is a list of field names.", Some("requirements_due")))
            }
        };
        let disabled_reason = match params.get("disabled_reason") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => return Err(ApiError::invalid("`disabled_reason` is text or null.", Some("disabled_reason"))),
        };
        let change = crate::balance::AccountChange {
            charges_enabled: flag("charges_enabled"),
            payouts_enabled: flag("payouts_enabled"),
            details_submitted: flag("details_submitted"),
            requirements_due,
            disabled_reason,
        };
        emulator.with_state(|state| state.update_account(&id, change))
    }))
}

/// `POST /test/payouts {"account": "acct_…", "fail": false}`: Stripe pays
/// out the account's available balance (one payout per currency) and sends
/// `payout.paid`, or `payout.failed` with `"fail": true`.
async fn pay_out(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let account = text(&params, "account")
            .ok_or_else(|| ApiError::invalid("`account` is required (acct_…).", Some("account")))?
            .to_owned();
        let fail = params.get("fail").and_then(as_bool).unwrap_or(false);
        emulator.with_state(|state| state.pay_out(&account, fail)).map(|payouts| json!({"payouts": payouts}))
    }))
}

/// `POST /test/livemode {"livemode": true}`: objects and events are live mode from now on.
async fn livemode(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).map(|params| {
        let live = params.get("livemode").and_then(as_bool).unwrap_or(false);
        emulator.with_state(|state| state.livemode = live);
        json!({"livemode": live})
    }))
}

/// `POST /test/latency {"ms": n}`: each API request takes this long, so repeats can overlap.
async fn latency(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).map(|params| {
        let ms = params.get("ms").and_then(as_int).filter(|ms| (0..=60_000).contains(ms)).unwrap_or(0);
        emulator.with_state(|state| state.latency_ms = ms as u64);
        json!({"ms": ms})
    }))
}

/// `POST /test/faults {"method": "POST", "path": "/v1/refunds", "times": 1, "effect": false, "status": 500}`:
/// the next matching requests answer Stripe's 500 (kept under their idempotency key), or
/// with `"status": 429` its rate limiter's refusal (nothing done, nothing kept).
async fn faults(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let fault: crate::records::Fault =
            serde_json::from_value(params).map_err(|e| ApiError::invalid(format!("Invalid fault: {e}"), None))?;
        if ![429, 500].contains(&fault.status) {
            return Err(ApiError::invalid("`status` must be 500 or 429.", Some("status")));
        }
        let shown = json!({"method": fault.method, "path": fault.path, "times": fault.times, "effect": fault.effect,
                           "status": fault.status});
        emulator.with_state(|state| state.faults.push(fault));
        Ok(shown)
    }))
}

/// `DELETE /test/faults`: the faults not met yet are dropped (Stripe's incident is over).
async fn clear_faults(State(emulator): State<Emulator>) -> Response {
    let dropped = emulator.with_state(|state| std::mem::take(&mut state.faults).len());
    json_response(200, &json!({"dropped": dropped}))
}

/// `POST /test/webhooks/mode {"shuffle", "duplicate_every", "delay_secs", "hold", "seed", "endpoint_down"}`.
async fn webhook_mode(State(emulator): State<Emulator>, body: Bytes) -> Response {
    answer(json_body(&body).and_then(|params| {
        let mode: DeliveryMode = serde_json::from_value(params)
            .map_err(|e| ApiError::invalid(format!("Invalid delivery mode: {e}"), None))?;
        emulator.set_delivery_mode(mode.clone());
        Ok(serde_json::to_value(mode).unwrap_or_default())
    }))
}

/// `POST /test/webhooks/flush`: delivers now what is held or delayed, and the retries that are due.
async fn flush_webhooks(State(emulator): State<Emulator>) -> Response {
    let pass = emulator.flush_webhooks().await;
    json_response(200, &serde_json::to_value(pass).unwrap_or_default())
}

async fn webhook_state(State(emulator): State<Emulator>) -> Response {
    json_response(
        200,
        &json!({"pending": emulator.pending_webhooks(), "given_up": emulator.undelivered(),
                "mode": serde_json::to_value(emulator.delivery_mode()).unwrap_or_default()}),
    )
}

async fn not_found(uri: Uri) -> Response {
    let error =
        ApiError::new(404, "invalid_request_error", None, format!("Unrecognized request URL ({}).", uri.path()), None);
    json_response(error.status, &error.body)
}
