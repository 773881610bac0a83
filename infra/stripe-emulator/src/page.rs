//! The hosted checkout page (`GET /checkout/{id}`) where a patient "pays" with one of the
//! test outcomes, and its form handler (`POST /checkout/{id}/pay`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::balance::AccountChange;
use crate::form;
use crate::records::{Outcome, Session, SessionStatus};
use crate::Emulator;

const ZERO_DECIMAL: &[&str] =
    &["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];

pub(crate) async fn show(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let declined = query.contains_key("declined");
    let base = emulator.public_base().to_owned();
    match emulator.with_state(|state| state.sessions.get(&id).map(|s| render(s, &base, declined))) {
        Some(html) => Html(html).into_response(),
        None => not_found(&id),
    }
}

pub(crate) async fn pay(State(emulator): State<Emulator>, Path(id): Path<String>, body: Bytes) -> Response {
    let params = form::parse(&body);
    let requested = params.get("outcome").and_then(Value::as_str).unwrap_or_default();
    // Absolute URLs: the page may be served under a prefix (`/stripe/`) the router cannot see.
    let page_url = format!("{}/checkout/{id}", emulator.public_base());
    if requested == "cancel" {
        let cancel_url = emulator.with_state(|state| state.sessions.get(&id).map(|s| s.cancel_url.clone()));
        return match cancel_url {
            Some(url) => Redirect::to(&url.unwrap_or(page_url)).into_response(),
            None => not_found(&id),
        };
    }
    let Some(outcome) = Outcome::parse(requested) else {
        return (StatusCode::BAD_REQUEST, Html(format!("<p>Unknown outcome “{}”.</p>", escape(requested))))
            .into_response();
    };
    let result = emulator.with_state(|state| {
        state.pay(&id, outcome, true).map(|_| state.sessions.get(&id).and_then(|s| s.success_url.clone()))
    });
    match result {
        Ok(_) if outcome == Outcome::Declined => Redirect::to(&format!("{page_url}?declined=1")).into_response(),
        Ok(Some(success_url)) => Redirect::to(&success_url.replace("{CHECKOUT_SESSION_ID}", &id)).into_response(),
        Ok(None) => Redirect::to(&page_url).into_response(),
        Err(error) if error.status == 404 => not_found(&id),
        // Not open any more: the page explains why.
        Err(_) => Redirect::to(&page_url).into_response(),
    }
}

/// Stripe's hosted onboarding, emulated (`GET /connect/onboarding/{link}`):
/// an Account Link is single use and expires (the API reference: "temporary
/// and single-use"); a used or expired one sends the person to its
/// `refresh_url`, as Stripe does.
pub(crate) async fn onboarding(State(emulator): State<Emulator>, Path(link): Path<String>) -> Response {
    let base = emulator.public_base().to_owned();
    let shown = emulator.with_state(|state| {
        let now = state.now();
        let link_state = state.account_links.get_mut(&link)?;
        if link_state.used || now > link_state.expires_at {
            return Some(Err(link_state.refresh_url.clone()));
        }
        link_state.used = true;
        Some(Ok(link_state.account.clone()))
    });
    match shown {
        None => (
            StatusCode::NOT_FOUND,
            Html(page("Onboarding link not found", "en", "<p class=\"notice\">No such link.</p>")),
        )
            .into_response(),
        Some(Err(refresh_url)) => Redirect::to(&refresh_url).into_response(),
        Some(Ok(account)) => {
            let action = escape(&format!("{base}/connect/onboarding/{link}"));
            let body = format!(
                "<p class=\"badge\">Test mode</p><h1>Set up payments</h1>\
                 <p>Account <code>{}</code>: tell Stripe about the clinic to take payments.</p>\
                 <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"outcome\" value=\"complete\">\
                 <button type=\"submit\" class=\"primary\" data-outcome=\"complete\">Submit everything</button></form>\
                 <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"outcome\" value=\"later\">\
                 <button type=\"submit\" data-outcome=\"later\">Leave the bank account for later</button></form>",
                escape(&account)
            );
            Html(page("Stripe onboarding", "en", &body)).into_response()
        }
    }
}

/// The onboarding page's form (`POST /connect/onboarding/{link}`): the
/// clinic submits everything (the account can take charges) or leaves its
/// bank account due (it cannot, `requirements.past_due`); Stripe sends
/// `account.updated` and the person back to the link's `return_url`.
pub(crate) async fn onboarding_submit(
    State(emulator): State<Emulator>,
    Path(link): Path<String>,
    body: Bytes,
) -> Response {
    let params = form::parse(&body);
    let complete = match params.get("outcome").and_then(Value::as_str) {
        Some("complete") => true,
        Some("later") => false,
        _ => return (StatusCode::BAD_REQUEST, Html("<p>Unknown outcome.</p>".to_owned())).into_response(),
    };
    let result = emulator.with_state(|state| {
        let link_state = state.account_links.get_mut(&link)?;
        // Only the page that was opened sends its form, once.
        if !link_state.used || link_state.submitted {
            return Some(Err(link_state.refresh_url.clone()));
        }
        link_state.submitted = true;
        let (account, return_url) = (link_state.account.clone(), link_state.return_url.clone());
        let change = if complete {
            AccountChange {
                charges_enabled: Some(true),
                payouts_enabled: Some(true),
                details_submitted: Some(true),
                requirements_due: Some(Vec::new()),
                disabled_reason: Some(None),
            }
        } else {
            AccountChange {
                charges_enabled: Some(false),
                payouts_enabled: Some(false),
                details_submitted: Some(true),
                requirements_due: Some(vec!["external_account".to_owned()]),
                disabled_reason: Some(Some("requirements.past_due".to_owned())),
            }
        };
        Some(state.update_account(&account, change).map(|_| return_url).map_err(|_| String::new()))
    });
    match result {
        None => (StatusCode::NOT_FOUND, Html("<p>No such link.</p>".to_owned())).into_response(),
        Some(Ok(return_url)) => Redirect::to(&return_url).into_response(),
        Some(Err(refresh_url)) if !refresh_url.is_empty() => Redirect::to(&refresh_url).into_response(),
        Some(Err(_)) => (StatusCode::NOT_FOUND, Html("<p>No such account.</p>".to_owned())).into_response(),
    }
}

fn not_found(id: &str) -> Response {
    let html = page(
        "Checkout session not found",
        "en",
        &format!("<p class=\"notice\">No checkout session “{}”.</p>", escape(id)),
    );
    (StatusCode::NOT_FOUND, Html(html)).into_response()
}

fn render(session: &Session, base: &str, declined: bool) -> String {
    let locale = session.locale.as_deref();
    // The page's words in the session's `locale`, as Stripe's own page follows it.
    let lang = visitpay_words::Lang::of_tag(locale.unwrap_or("en"));
    let words = &lang.words().emulator;
    let money = |amount: i64| format_amount(amount, &session.currency, locale);
    let total = money(session.amount_total);
    let mut body = String::new();
    body.push_str(&format!("<p class=\"badge\">{}</p>", words.badge));
    body.push_str(&format!(
        "<h1 class=\"total\">{}</h1><p class=\"currency\">{}</p><ul class=\"items\">",
        escape(&total),
        escape(&session.currency.to_ascii_uppercase())
    ));
    for item in &session.line_items {
        body.push_str(&format!(
            "<li><span>{} × {}</span><span>{}</span></li>",
            escape(&item.name),
            item.quantity,
            escape(&money(item.amount()))
        ));
    }
    body.push_str("</ul>");
    match session.status {
        SessionStatus::Open => {
            if declined {
                body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>", words.declined));
            }
            let action = escape(&format!("{base}/checkout/{}/pay", session.id));
            let buttons = [
                ("succeeded", words.pay, "primary"),
                ("declined", words.decline, ""),
                ("delayed_succeeded", words.debit_succeeds, ""),
                ("delayed_failed", words.debit_fails, ""),
                ("cancel", words.cancel, "link"),
            ];
            for (outcome, label, class) in buttons {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"outcome\" value=\"{outcome}\">\
                     <button type=\"submit\" class=\"{class}\" data-outcome=\"{outcome}\">{label}</button></form>"
                ));
            }
        }
        SessionStatus::Expired => body.push_str(&format!("<p class=\"notice\">{}</p>", words.expired)),
        SessionStatus::Complete => body.push_str(&format!(
            "<p class=\"notice\">{} ({}).</p>",
            words.complete,
            if session.paid { words.paid } else { words.unpaid }
        )),
    }
    page(&format!("{} – {total}", words.title), lang.words().lang, &body)
}

fn page(title: &str, lang: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}}\
         main{{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 2px 8px #0002}}\
         .badge{{display:inline-block;background:#ffde92;color:#5c3b00;padding:.1rem .5rem;border-radius:4px;font-size:.8rem}}\
         .total{{margin:.5rem 0 0}}.currency{{color:#697386;margin:0 0 1rem}}\
         .items{{list-style:none;padding:0}}.items li{{display:flex;justify-content:space-between;padding:.3rem 0;border-bottom:1px solid #e3e8ee}}\
         form{{margin:.5rem 0}}button{{width:100%;padding:.6rem;border:1px solid #c1c9d2;border-radius:6px;background:#fff;font-size:1rem;cursor:pointer}}\
         button.primary{{background:#635bff;color:#fff;border-color:#635bff}}button.link{{border:none;color:#635bff}}\
         .error{{color:#df1b41}}.notice{{background:#f6f9fc;padding:1rem;border-radius:6px}}\
         </style></head><body><main>{}</main></body></html>",
        escape(lang),
        escape(title),
        body
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Formats minor units the way the session's locale would: `45,00 $` (fr-CA), `$45.00` (en-CA).
pub(crate) fn format_amount(amount: i64, currency: &str, locale: Option<&str>) -> String {
    let currency = currency.to_ascii_lowercase();
    let french = locale.is_some_and(|l| l.to_ascii_lowercase().starts_with("fr"));
    let symbol = match currency.as_str() {
        "cad" | "usd" | "aud" | "nzd" | "mxn" => "$".to_owned(),
        "eur" => "€".to_owned(),
        "gbp" => "£".to_owned(),
        "jpy" => "¥".to_owned(),
        other => other.to_ascii_uppercase(),
    };
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.unsigned_abs();
    let (major, minor) =
        if ZERO_DECIMAL.contains(&currency.as_str()) { (amount, None) } else { (amount / 100, Some(amount % 100)) };
    let digits = major.to_string();
    let separator = if french { ' ' } else { ',' };
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    let number = match minor {
        Some(minor) if french => format!("{grouped},{minor:02}"),
        Some(minor) => format!("{grouped}.{minor:02}"),
        None => grouped,
    };
    if french {
        format!("{sign}{number} {symbol}")
    } else if symbol.len() == 3 && symbol.is_ascii() {
        format!("{sign}{symbol} {number}")
    } else {
        format!("{sign}{symbol}{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_the_locale() {
        assert_eq!(format_amount(4500, "cad", Some("fr-CA")), "45,00 $");
        assert_eq!(format_amount(4500, "cad", Some("en-CA")), "$45.00");
        assert_eq!(format_amount(123_456_789, "cad", Some("fr-CA")), "1 234 567,89 $");
        assert_eq!(format_amount(123_456_789, "cad", None), "$1,234,567.89");
        assert_eq!(format_amount(5, "cad", Some("auto")), "$0.05");
        assert_eq!(format_amount(1000, "jpy", None), "¥1,000");
        assert_eq!(format_amount(1999, "chf", None), "CHF 19.99");
    }

    /// "locale: The IETF language tag of the locale Checkout is displayed in"
    /// (API reference, Checkout Session): a French session's page is French.
    #[test]
    fn the_page_speaks_the_sessions_language() {
        let mut session = Session {
            id: "cs_1".into(),
            account: None,
            created: 0,
            expires_at: 1,
            status: SessionStatus::Open,
            paid: false,
            currency: "cad".into(),
            amount_total: 4500,
            line_items: Vec::new(),
            url: String::new(),
            success_url: None,
            cancel_url: None,
            client_reference_id: None,
            customer_email: None,
            metadata: Default::default(),
            locale: None,
            payment_method_types: Vec::new(),
            payment_intent_data: Default::default(),
            payment_intent: None,
        };
        session.locale = Some("fr-CA".into());
        let french = render(&session, "http://e.test", true);
        assert!(french.contains("lang=\"fr\"") && french.contains(">Payer<") && french.contains("refusée"));
        session.locale = Some("en".into());
        let english = render(&session, "http://e.test", false);
        assert!(english.contains("lang=\"en\"") && english.contains(">Pay<") && !english.contains("Payer"));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
