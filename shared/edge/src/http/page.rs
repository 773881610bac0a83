//! The patient's page: what a browser gets at the patient link (the JSON
//! answer stays for API clients, chosen by `Accept`), and where Stripe sends
//! the patient back. Server-rendered from a compile-time template; paying
//! needs no JavaScript (a hashed one-line script only refreshes a page that
//! waits on Stripe).
//!
//! The link's secret never goes to Stripe: Checkout returns to
//! `/patient/return/{action_id}`, and the page finds the patient again by an
//! HttpOnly, SameSite=Lax cookie set when the link was opened, sent only to
//! that path.

use askama::Template;
use base64::Engine;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};

use visitpay_app::checkout::PatientPage;
use visitpay_domain::{format_amount, ActionStatus, CheckoutDomain, Locale};
use visitpay_words::PageWords;

pub(crate) use visitpay_app::texts::{date, words};

/// The cookie that carries the link token back from Stripe.
pub(crate) const LINK_COOKIE: &str = "visitpay_link";
/// As long as a Checkout Session can live (24 h): a patient who comes back
/// later opens their link again.
const LINK_COOKIE_SECS: u32 = 24 * 3600;

/// The page's style (its hash is in the page's policy).
pub(crate) const CSS: &str = include_str!("../../templates/patient.css");
const REFRESH_SCRIPT: &str = "setTimeout(function(){location.reload()},4000);";

/// Whether the client asked for a page rather than JSON: browsers send
/// `text/html` first in `Accept`; API clients send JSON or nothing.
pub(crate) fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|part| part.trim().starts_with("text/html")))
}

/// How the patient arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// By the link.
    Link,
    /// Back from Stripe after paying: confirming until the payment is applied.
    Paid,
    /// Back from Stripe without paying.
    Cancelled,
}

impl Arrival {
    pub(crate) fn from_query(checkout: Option<&str>) -> Self {
        match checkout {
            Some("success") => Arrival::Paid,
            Some("cancelled") => Arrival::Cancelled,
            _ => Arrival::Link,
        }
    }
    fn query(self) -> &'static str {
        match self {
            Arrival::Link => "",
            Arrival::Paid => "checkout=success&",
            Arrival::Cancelled => "checkout=cancelled&",
        }
    }
}

/// Where the page's own links and form point, relative to the page's URL
/// (so it works under any base): the Pay form to the link's checkout route.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub pay_action: String,
    pub receipt: String,
}

impl Place {
    /// The page at `…/patient/actions/{token}`.
    pub(crate) fn link(token: &str) -> Self {
        Place { pay_action: format!("{token}/checkout"), receipt: format!("{token}/receipt") }
    }
    /// The page at `…/patient/return/{action_id}`.
    pub(crate) fn back_from_stripe(token: &str) -> Self {
        Place { pay_action: format!("../actions/{token}/checkout"), receipt: format!("../actions/{token}/receipt") }
    }
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PageHtml<'a> {
    lang: &'static str,
    t: &'static PageWords,
    title: String,
    heading: &'a str,
    css: &'static str,
    script: &'static str,
    notice: Option<String>,
    lines: Vec<(String, String)>,
    total: String,
    state: &'static str,
    state_title: String,
    state_detail: Option<String>,
    pay_action: Option<String>,
    pay_label: String,
    receipt_href: Option<String>,
    refresh: bool,
    refresh_href: String,
    switch_href: String,
}

/// The page for an action.
pub(crate) fn render(page: &PatientPage, place: &Place, arrival: Arrival) -> Response<Body> {
    let (lang, t) = (words(page.locale).lang, &words(page.locale).page);
    let action = &page.action;
    let money = |amount: i64| format_amount(amount, action.currency(), page.locale);
    let total = money(action.total().amount);
    let status = action.status();
    let open = matches!(status, ActionStatus::Assigned | ActionStatus::CheckoutOpen);
    // Back from paying but not applied yet: never "paid" before it is.
    let confirming = open && arrival == Arrival::Paid;
    let paid_on = action.paid_at().map(|at| date(at, page.locale, &page.time_zone));
    let (state, state_title, state_detail) = match status {
        _ if confirming => ("confirming", t.confirming.to_owned(), Some(t.confirming_detail.to_owned())),
        ActionStatus::Assigned | ActionStatus::CheckoutOpen => ("open", t.to_pay.to_owned(), None),
        ActionStatus::Processing => ("processing", t.processing.to_owned(), Some(t.processing_detail.to_owned())),
        ActionStatus::Paid => ("paid", paid_title(t, paid_on), None),
        ActionStatus::PartiallyRefunded => (
            "partially_refunded",
            paid_title(t, paid_on),
            Some(format!("{} {}", t.refunded_amount, money(action.refunded().amount))),
        ),
        ActionStatus::Refunded => ("refunded", t.refunded.to_owned(), Some(t.refunded_detail.to_owned())),
        ActionStatus::Failed => ("failed", t.failed.to_owned(), Some(t.failed_detail.to_owned())),
        ActionStatus::Cancelled => ("cancelled", t.cancelled.to_owned(), Some(t.contact_clinic.to_owned())),
        ActionStatus::Expired => ("expired", t.expired.to_owned(), Some(t.contact_clinic.to_owned())),
    };
    let notice = match arrival {
        Arrival::Cancelled if open => Some(t.not_paid.to_owned()),
        _ => None,
    };
    let waiting = confirming || status == ActionStatus::Processing;
    let here = |lang: &str| format!("?{}lang={lang}", arrival.query());
    let html = PageHtml {
        lang,
        t,
        title: format!("{} — {}", t.title, action.label()),
        heading: action.label(),
        css: CSS,
        script: REFRESH_SCRIPT,
        notice,
        lines: page.lines.iter().map(|l| (l.name.clone(), money(l.amount))).collect(),
        total: total.clone(),
        state,
        state_title,
        state_detail,
        pay_action: (open && !confirming).then(|| place.pay_action.clone()),
        pay_label: format!("{} {total}", t.pay),
        receipt_href: action.paid_at().is_some().then(|| format!("{}{}", place.receipt, here(lang))),
        refresh: waiting,
        refresh_href: here(lang),
        switch_href: here(t.other_lang),
    };
    with_headers(
        StatusCode::OK,
        html.render().expect("the page renders"),
        &content_security_policy(&page.embed_origins, &page.checkout_domain),
    )
}

/// A page with no action on it: a link that is not (or no longer) valid,
/// or a return from Stripe in a browser that did not open the link.
pub(crate) fn message(status: StatusCode, locale: Locale, kind: Message) -> Response<Body> {
    let (lang, t) = (words(locale).lang, &words(locale).page);
    let (title, detail) = match kind {
        Message::LinkNotFound => (t.link_not_found, t.contact_clinic),
        Message::OpenYourLink => (t.open_your_link, t.open_your_link_detail),
        Message::Unavailable => (t.unavailable, t.unavailable_detail),
        Message::NoReceipt => (t.no_receipt, t.no_receipt_detail),
    };
    let html = PageHtml {
        lang,
        t,
        title: title.to_owned(),
        heading: t.title,
        css: CSS,
        script: REFRESH_SCRIPT,
        notice: None,
        lines: Vec::new(),
        total: String::new(),
        state: "none",
        state_title: title.to_owned(),
        state_detail: Some(detail.to_owned()),
        pay_action: None,
        pay_label: String::new(),
        receipt_href: None,
        refresh: false,
        refresh_href: String::new(),
        switch_href: format!("?lang={}", t.other_lang),
    };
    html_response(status, html.render().expect("the page renders"))
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Message {
    LinkNotFound,
    OpenYourLink,
    Unavailable,
    NoReceipt,
}

fn paid_title(t: &PageWords, paid_on: Option<String>) -> String {
    match paid_on {
        Some(on) => format!("{} {on}", t.paid_on),
        None => t.paid.to_owned(),
    }
}

/// `Set-Cookie` for the link: only ever sent back to the return route (at
/// `path`, under the patient URLs' base path: `PatientLinks`), only over
/// HTTPS, never to scripts, and with top-level navigations from Stripe
/// (`Lax`), not with requests other sites make.
pub(crate) fn link_cookie(token: &str, path: &str) -> String {
    format!("{LINK_COOKIE}={token}; Path={path}; Max-Age={LINK_COOKIE_SECS}; HttpOnly; Secure; SameSite=Lax")
}

/// The link token in a `Cookie` header, if any.
pub(crate) fn cookie_token(cookie_header: Option<&str>) -> Option<String> {
    cookie_header?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == LINK_COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// An HTML answer with the headers every page carries: a CSP that allows
/// only the page's own hashed style and script, forms to itself and Stripe,
/// no framing; no referrer (the link is a credential); never cached.
pub(crate) fn html_page(status: StatusCode, body: String) -> Response<Body> {
    html_response(status, body)
}

fn html_response(status: StatusCode, body: String) -> Response<Body> {
    with_headers(status, body, &content_security_policy(&[], &CheckoutDomain::default()))
}

/// A page of its own style and no script (the receipt).
pub(crate) fn html_response_with_style(status: StatusCode, body: String, css: &str) -> Response<Body> {
    let csp = format!(
        "default-src 'none'; style-src '{}'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        sha256_source(css)
    );
    with_headers(status, body, &csp)
}

fn with_headers(status: StatusCode, body: String, csp: &str) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("content-security-policy", HeaderValue::from_str(csp).expect("ascii"));
    response
}

/// The page's policy; only the clinic's configured origins may frame it
/// (the EMR's visit window), nobody by default. The Pay form's answer
/// redirects to the clinic's Checkout host (Stripe's, or its Checkout custom
/// domain), and a form's redirect is checked against `form-action`.
pub(crate) fn content_security_policy(embed_origins: &[String], checkout: &CheckoutDomain) -> String {
    let ancestors = if embed_origins.is_empty() { "'none'".to_owned() } else { embed_origins.join(" ") };
    let checkout = checkout.as_str();
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; img-src 'self'; form-action 'self' https://{checkout}; \
         frame-ancestors {ancestors}; base-uri 'none'",
        sha256_source(CSS),
        sha256_source(REFRESH_SCRIPT)
    )
}

fn sha256_source(text: &str) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use visitpay_domain::ClinicTimeZone;

    #[test]
    fn browsers_get_the_page_and_api_clients_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(chrome)));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_cookie_is_read_back_among_others() {
        assert_eq!(cookie_token(Some("a=1; visitpay_link=act_1.s3cret; b=2")).as_deref(), Some("act_1.s3cret"));
        assert_eq!(cookie_token(Some("visitpay_link=")), None);
        assert_eq!(cookie_token(None), None);
        let cookie = link_cookie("act_1.s3cret", "/prod/patient/return/");
        for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/prod/patient/return/;"] {
            assert!(cookie.contains(part), "{cookie}");
        }
    }

    #[test]
    fn dates_read_as_in_the_language_and_the_clinics_zone() {
        let toronto = ClinicTimeZone::default();
        let at = time::macros::datetime!(2026-12-01 18:30 UTC);
        assert_eq!(date(at, Locale::FrCa, &toronto), "1\u{a0}décembre\u{a0}2026");
        assert_eq!(date(at, Locale::EnCa, &toronto), "December 1, 2026");
        // 21:00 in Vancouver on 1 December is already the 2nd in UTC.
        let evening = time::macros::datetime!(2026-12-02 05:00 UTC);
        let vancouver = ClinicTimeZone::parse("America/Vancouver").unwrap();
        assert_eq!(date(evening, Locale::EnCa, &vancouver), "December 1, 2026");
        assert_eq!(date(evening, Locale::EnCa, &toronto), "December 2, 2026");
    }

    #[test]
    fn the_policy_allows_only_the_pages_own_style_and_script() {
        let stripe = CheckoutDomain::default();
        let csp = content_security_policy(&[], &stripe);
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("form-action 'self' https://checkout.stripe.com;"), "{csp}");
        let embedded = content_security_policy(&["https://emr.example.com".into()], &stripe);
        assert!(embedded.contains("frame-ancestors https://emr.example.com;"), "{embedded}");
        // A clinic whose Checkout is on its own custom domain: the Pay form may go there.
        let custom = content_security_policy(&[], &CheckoutDomain::parse("pay.clinic.example").unwrap());
        assert!(custom.contains("form-action 'self' https://pay.clinic.example;"), "{custom}");
    }
}
