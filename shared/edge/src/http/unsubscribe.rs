//! An email's unsubscribe link: the page asks to confirm (mail scanners
//! open links, and opening one must change nothing), the form's POST — or a
//! mail client's RFC 8058 one-click POST — records that the clinic sends no
//! more email to that address.

use askama::Template;
use lambda_http::http::StatusCode;

use super::page::{self, words};
use super::request::Ctx;
use super::{Answer, ApiError};
use visitpay_app::{messages, HasClock, HasStore};
use visitpay_domain::Locale;

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribeHtml<'a> {
    lang: &'a str,
    title: &'a str,
    css: &'static str,
    state: &'a str,
    message: &'a str,
    confirm: bool,
    button: &'a str,
}

fn locale(ctx: &Ctx<'_>) -> Locale {
    ctx.query("lang").and_then(|l| Locale::parse(&l).ok()).unwrap_or(Locale::FrCa)
}

fn render(status: StatusCode, locale: Locale, state: &str, confirm: bool) -> Answer {
    let w = words(locale);
    let u = &w.unsubscribe;
    let message = match state {
        "confirm" => u.question,
        "done" => u.done,
        _ => u.not_found,
    };
    let html =
        UnsubscribeHtml { lang: w.lang, title: u.title, css: page::CSS, state, message, confirm, button: u.button };
    Ok(page::html_page(status, html.render().expect("the page renders")))
}

/// The token in the path, shaped as visitpay mints them (256 bits in
/// unpadded base64url: 43 characters, as the edge function also checks), or
/// the page says the link is unknown without a read.
fn token(ctx: &Ctx<'_>) -> Option<String> {
    let token = ctx.path("token").ok()?;
    let valid = token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    valid.then_some(token)
}

/// `GET /unsubscribe/{token}`: asks to confirm; changes nothing.
pub(super) async fn view(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let locale = locale(&ctx);
    let Some(token) = token(&ctx) else { return render(StatusCode::NOT_FOUND, locale, "not_found", false) };
    match messages::unsubscribe_link(deps, &token).await {
        Ok(_) => render(StatusCode::OK, locale, "confirm", true),
        Err(visitpay_app::AppError::NotFound(_)) => render(StatusCode::NOT_FOUND, locale, "not_found", false),
        Err(e) => Err(ApiError::from(e)),
    }
}

/// `POST /unsubscribe/{token}`: no more email from that clinic to that address.
pub(super) async fn confirm(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let locale = locale(&ctx);
    let Some(token) = token(&ctx) else { return render(StatusCode::NOT_FOUND, locale, "not_found", false) };
    match messages::unsubscribe(deps, &token).await {
        Ok(_) => render(StatusCode::OK, locale, "done", false),
        Err(visitpay_app::AppError::NotFound(_)) => render(StatusCode::NOT_FOUND, locale, "not_found", false),
        Err(e) => Err(ApiError::from(e)),
    }
}
