//! Connect: accounts the platform makes, their Account Links to Stripe's
//! hosted onboarding, and what they were paid out (balance transactions,
//! payouts), as Stripe's API answers them.

use serde_json::Value;

use super::params::{opt_string, paginate, string_map};
use super::Ctx;
use crate::error::ApiError;
use crate::form::string_list;
use crate::objects;
use crate::records::{Account, AccountLink};
use crate::store::State;
use crate::util::random_id;

/// How long an Account Link lasts: the API reference's example link expires
/// 300 s after it is made ("a few minutes", Connect onboarding guide).
const LINK_SECONDS: i64 = 300;

/// `POST /v1/accounts`, by the platform. Controller properties only as
/// Stripe takes them at creation (https://docs.stripe.com/connect/migrate-to-controller-properties):
/// `fees.payer` `account` or `application`; `losses.payments` `stripe` or
/// `application`; `requirement_collection` `stripe` or `application`;
/// `stripe_dashboard.type` `full`, `express` or `none`. A Stripe Dashboard
/// account needs Stripe to collect its requirements.
pub(super) fn create_account(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    if ctx.account.is_some() {
        return Err(ApiError::invalid("Accounts are created by the platform, without Stripe-Account.", None));
    }
    let controller = params.get("controller");
    let field =
        |path: &[&str]| path.iter().try_fold(controller?, |v, k| v.get(*k)).and_then(Value::as_str).map(str::to_owned);
    let allowed: [(&[&str], &[&str]); 4] = [
        (&["fees", "payer"], &["account", "application"]),
        (&["losses", "payments"], &["stripe", "application"]),
        (&["requirement_collection"], &["stripe", "application"]),
        (&["stripe_dashboard", "type"], &["full", "express", "none"]),
    ];
    for (path, values) in allowed {
        if let Some(value) = field(path) {
            if !values.contains(&value.as_str()) {
                let name = format!("controller[{}]", path.join("]["));
                return Err(ApiError::invalid(
                    format!("Invalid {name}: must be one of {}", values.join(", ")),
                    Some(&name),
                ));
            }
        }
    }
    if field(&["stripe_dashboard", "type"]).as_deref() == Some("full")
        && field(&["requirement_collection"]).as_deref() == Some("application")
    {
        return Err(ApiError::invalid(
            "controller[requirement_collection] must be `stripe` for accounts with a Stripe Dashboard.",
            Some("controller[requirement_collection]"),
        ));
    }
    let id = random_id("acct_");
    let account = Account::created(state.now(), string_map(params.get("metadata"), "metadata")?);
    let json = objects::account(&id, &account);
    state.accounts.insert(id, account);
    Ok(json)
}

/// `POST /v1/account_links` (https://docs.stripe.com/api/account_links/create):
/// `account`, `refresh_url`, `return_url` and `type` required; `account_update`
/// "cannot be created for accounts with a Stripe-hosted Dashboard".
pub(super) fn create_account_link(state: &mut State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let required = |name: &str| {
        opt_string(params, name)
            .ok_or_else(|| ApiError::invalid(format!("Missing required param: {name}."), Some(name)))
    };
    let account = required("account")?;
    let (refresh_url, return_url, kind) = (required("refresh_url")?, required("return_url")?, required("type")?);
    if !state.accounts.get(&account).is_some_and(|a| a.connected) {
        return Err(ApiError::account_invalid(&ctx.key, &account));
    }
    match kind.as_str() {
        "account_onboarding" => {}
        "account_update" => {
            return Err(ApiError::invalid(
                "You cannot create `account_update` type Account Links for accounts with a Stripe-hosted Dashboard.",
                Some("type"),
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "Invalid type: must be one of account_onboarding, account_update",
                Some("type"),
            ))
        }
    }
    for url in [&refresh_url, &return_url] {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ApiError::invalid("Not a valid URL", Some("return_url")));
        }
    }
    if let Some(fields) = params.get("collection_options").and_then(|c| c.get("fields")).and_then(Value::as_str) {
        if !matches!(fields, "currently_due" | "eventually_due") {
            return Err(ApiError::invalid(
                "Invalid collection_options[fields]: must be one of currently_due, eventually_due",
                Some("collection_options[fields]"),
            ));
        }
    }
    let now = state.now();
    let link = AccountLink {
        account,
        refresh_url,
        return_url,
        created: now,
        expires_at: now + LINK_SECONDS,
        used: false,
        submitted: false,
    };
    let link_id = random_id("ol_");
    let json = objects::account_link(&link, format!("{}/connect/onboarding/{link_id}", ctx.public_base));
    state.account_links.insert(link_id, link);
    Ok(json)
}

/// `GET /v1/balance_transactions` on a connected account
/// (https://docs.stripe.com/api/balance_transactions/list): newest first,
/// `payout` ("for automatic Stripe payouts only"), `type`, `source`, paged;
/// `expand[]=data.source` expands each source.
pub(super) fn list_balance_transactions(state: &State, ctx: &Ctx, params: &Value) -> Result<Value, ApiError> {
    let Some(account) = &ctx.account else {
        return Err(ApiError::invalid("visitpay's platform has no balance of its own in the emulator.", None));
    };
    let payout = opt_string(params, "payout");
    if let Some(id) = &payout {
        if !state.payouts.get(id).is_some_and(|p| &p.account == account) {
            return Err(ApiError::no_such("payout", id, "payout"));
        }
    }
    let kind = opt_string(params, "type");
    let source = opt_string(params, "source");
    let expand = string_list(params.get("expand")).iter().any(|e| e == "data.source");
    let mut items: Vec<(String, Value)> = state
        .balance
        .iter()
        .filter(|b| b.account.as_deref() == Some(account.as_str()))
        .filter(|b| payout.as_ref().is_none_or(|p| b.payout.as_ref() == Some(p)))
        .filter(|b| kind.as_ref().is_none_or(|k| b.kind == k))
        .filter(|b| source.as_ref().is_none_or(|s| &b.source == s))
        .map(|b| (b.id.clone(), objects::balance_transaction(b, state.balance_source(b, expand))))
        .collect();
    items.reverse(); // newest first
    paginate(items, Value::clone, params, "/v1/balance_transactions")
}

/// `GET /v1/payouts/{id}` on a connected account.
pub(super) fn retrieve_payout(state: &State, ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    match state.payouts.get(id) {
        Some(p) if ctx.account.as_deref() == Some(p.account.as_str()) => Ok(objects::payout(p, state.livemode)),
        _ => Err(ApiError::no_such("payout", id, "id")),
    }
}
