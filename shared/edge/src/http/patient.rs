//! The patient's side, reached by the link token alone: what they owe, and
//! Checkout.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use super::actions::NoBody;
use super::page::{self, Arrival, Message, Place};
use super::request::Ctx;
use super::views::PatientActionView;
use super::{json, Answer, ApiError};
use visitpay_app::{actions, checkout, AppError, HasClock, HasConfig, HasPayments, HasStore};
use visitpay_domain::{link_token_action, Locale, Timestamp};

#[derive(Serialize)]
struct CheckoutView<'a> {
    checkout_url: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: Timestamp,
}

/// `GET /patient/actions/{token}`: the page for a browser (`Accept:
/// text/html`), which also sets the cookie the way back from Stripe reads;
/// JSON for anyone else.
pub(super) async fn view(deps: &(impl HasStore + HasClock + HasConfig), ctx: Ctx<'_>) -> Answer {
    let html = page::wants_html(ctx.header("accept"));
    let token = match ctx.patient_token() {
        Ok(token) => token,
        Err(e) if html => return Ok(html_error(ApiError::from(e), None)),
        Err(e) => return Err(e.into()),
    };
    if !html {
        let action = actions::for_patient(deps, &token, actions::Reach::Look).await?;
        return Ok(json(StatusCode::OK, &PatientActionView::from(&action.value)));
    }
    let lang = page_locale(&ctx);
    match checkout::patient_page(deps, &token, lang).await {
        Ok(found) => {
            let mut response =
                page::render(&found, &Place::link(&token), Arrival::from_query(ctx.query("checkout").as_deref()));
            response.headers_mut().insert("set-cookie", link_cookie(deps, &token));
            Ok(response)
        }
        Err(e) => Ok(html_error(e.into(), lang)),
    }
}

/// `GET /patient/return/{action_id}?checkout=success|cancelled`: where
/// Stripe sends the patient back. The patient is found by the link cookie,
/// and only if it is this action's; otherwise the page shows nothing of it.
pub(super) async fn back_from_stripe(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let action_id = ctx.path("action_id")?;
    let lang = page_locale(&ctx);
    let token = page::cookie_token(ctx.header("cookie"))
        .filter(|t| link_token_action(t).is_some_and(|a| a.as_str() == action_id));
    let Some(token) = token else {
        return Ok(page::message(StatusCode::OK, lang.unwrap_or(Locale::FrCa), Message::OpenYourLink));
    };
    match checkout::patient_page(deps, &token, lang).await {
        Ok(found) => Ok(page::render(
            &found,
            &Place::back_from_stripe(&token),
            Arrival::from_query(ctx.query("checkout").as_deref()),
        )),
        Err(e) => Ok(html_error(e.into(), lang)),
    }
}

/// `POST /patient/actions/{token}/checkout`: JSON with the session's URL, or
/// for the page's Pay form (a form post) a 303 to Stripe's page, and back to
/// the page when the action cannot be paid any more.
pub(super) async fn checkout(deps: &(impl HasStore + HasClock + HasConfig + HasPayments), ctx: Ctx<'_>) -> Answer {
    let token = ctx.patient_token()?;
    let form = ctx.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Ok(match checkout::open(deps, &token).await {
            // A top-level navigation (the form targets the top window): the
            // cookie is first-party here even when the page was framed by the EMR.
            Ok(link) => {
                let mut response = see_other(&link.url);
                response.headers_mut().insert("set-cookie", link_cookie(deps, &token));
                response
            }
            // The page says why (cancelled, paid, expired…).
            Err(AppError::Domain(_) | AppError::NotFound(_)) => see_other(&format!("../{token}")),
            Err(e) => html_error(e.into(), None),
        });
    }
    let NoBody {} = ctx.optional_body()?;
    let link = checkout::open(deps, &token).await?;
    Ok(json(StatusCode::OK, &CheckoutView { checkout_url: &link.url, expires_at: link.expires_at }))
}

/// The link cookie, for the return route under the configured base path.
fn link_cookie(deps: &impl HasConfig, token: &str) -> HeaderValue {
    let path = deps.config().patient_links.return_cookie_path();
    HeaderValue::from_str(&page::link_cookie(token, &path)).expect("a token and a checked path are header-safe")
}

/// The page's language: `?lang=fr|en` when the patient switched, else the visit's.
fn page_locale(ctx: &Ctx<'_>) -> Option<Locale> {
    ctx.query("lang").and_then(|l| Locale::parse(&l).ok())
}

fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert("location", HeaderValue::from_str(location).expect("a URL is header-safe"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// An error as a page: the same status, words instead of JSON.
fn html_error(error: ApiError, lang: Option<Locale>) -> Response<Body> {
    let kind = if error.status == StatusCode::NOT_FOUND { Message::LinkNotFound } else { Message::Unavailable };
    page::message(error.status, lang.unwrap_or(Locale::FrCa), kind)
}
