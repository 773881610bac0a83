//! The receipt as a page that prints cleanly and as a PDF, in French or
//! English, for the patient (behind their link) and for staff. One document
//! model (`visitpay_app::receipt::document`) feeds both forms, so they say
//! the same thing. The PDF is another function's route (`receipt-pdf`): its
//! fonts are heavy, and the pages' function does not carry them.

use askama::Template;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use super::page::{self, Message};
use super::request::Ctx;
use super::{Answer, ApiError};
use visitpay_app::ports::ReceiptDocument;
use visitpay_app::receipt::{self, Receipt};
use visitpay_app::{messages, HasClock, HasPdf, HasStore};
use visitpay_domain::{ActionId, Locale};

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptHtml<'a> {
    lang: &'a str,
    title: &'a str,
    css: &'static str,
    header: &'a [(String, String)],
    services_caption: &'a str,
    columns: &'a [&'static str; 4],
    rows: &'a [[String; 4]],
    footer: &'a [(String, String)],
    missing: &'a str,
    pdf_href: String,
    pdf_label: &'static str,
}

/// The receipt's style (its hash is in the page's policy).
const RECEIPT_CSS: &str = include_str!("../../templates/receipt.css");

fn html(doc: &ReceiptDocument, lang_query: &str) -> Response<Body> {
    let words = page::words(if doc.lang == "fr" { Locale::FrCa } else { Locale::EnCa });
    let page = ReceiptHtml {
        lang: doc.lang,
        title: &doc.title,
        css: RECEIPT_CSS,
        header: &doc.header,
        services_caption: doc.services_caption,
        columns: &doc.columns,
        rows: &doc.rows,
        footer: &doc.footer,
        missing: &doc.missing,
        pdf_href: format!("receipt.pdf{}", lang_query.replacen('&', "?", 1)),
        pdf_label: words.receipt.download_pdf,
    };
    page::html_response_with_style(StatusCode::OK, page.render().expect("the receipt renders"), RECEIPT_CSS)
}

fn pdf_answer(bytes: Vec<u8>, number: &str) -> Response<Body> {
    let mut response = Response::new(Body::Binary(bytes));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/pdf"));
    let disposition = format!("attachment; filename=\"{number}.pdf\"");
    headers.insert("content-disposition", HeaderValue::from_str(&disposition).expect("ascii"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// The page, or for an old `?format=pdf` link, the way to the PDF's route.
fn answer(receipt: &Receipt, ctx: &Ctx<'_>) -> Response<Body> {
    // The language as understood, never the query's own text: it goes into a header.
    let lang_query = match locale(ctx) {
        Some(Locale::FrCa) => "&lang=fr",
        Some(Locale::EnCa) => "&lang=en",
        None => "",
    };
    if ctx.query("format").as_deref() == Some("pdf") {
        let mut moved = Response::new(Body::Empty);
        *moved.status_mut() = StatusCode::SEE_OTHER;
        let to = format!("receipt.pdf{}", lang_query.replacen('&', "?", 1));
        moved.headers_mut().insert("location", HeaderValue::from_str(&to).expect("ascii"));
        moved.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
        return moved;
    }
    html(&receipt::document(receipt), lang_query)
}

fn locale(ctx: &Ctx<'_>) -> Option<Locale> {
    ctx.query("lang").and_then(|l| Locale::parse(&l).ok())
}

/// `GET /patient/actions/{token}/receipt[?format=pdf]`. A browser is told in
/// words when there is no receipt; an API client gets the error's code.
pub(super) async fn for_patient(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let token = ctx.patient_token()?;
    match receipt::for_patient_link(deps, &token, locale(&ctx)).await {
        Ok(found) => Ok(answer(&found, &ctx)),
        Err(e) if page::wants_html(ctx.header("accept")) => {
            let error = ApiError::from(e);
            let kind = if error.status == StatusCode::NOT_FOUND { Message::LinkNotFound } else { Message::NoReceipt };
            Ok(page::message(error.status, locale(&ctx).unwrap_or(Locale::FrCa), kind))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /actions/{action_id}/receipt[?format=pdf]`: the same receipt for staff.
pub(super) async fn for_staff(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let found = receipt::for_staff(deps, clinic, &action_id, locale(&ctx)).await?;
    Ok(answer(&found, &ctx))
}

/// `GET /patient/actions/{token}/receipt.pdf`.
pub(super) async fn pdf_for_patient(deps: &(impl HasStore + HasClock + HasPdf), ctx: Ctx<'_>) -> Answer {
    let token = ctx.patient_token()?;
    match receipt::for_patient_link(deps, &token, locale(&ctx)).await {
        Ok(found) => Ok(pdf_answer(messages::receipt_pdf(deps.pdf(), &found)?, &found.number)),
        Err(e) if page::wants_html(ctx.header("accept")) => {
            let error = ApiError::from(e);
            let kind = if error.status == StatusCode::NOT_FOUND { Message::LinkNotFound } else { Message::NoReceipt };
            Ok(page::message(error.status, locale(&ctx).unwrap_or(Locale::FrCa), kind))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /actions/{action_id}/receipt.pdf`: the same PDF for staff.
pub(super) async fn pdf_for_staff(deps: &(impl HasStore + HasClock + HasPdf), ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let found = receipt::for_staff(deps, clinic, &action_id, locale(&ctx)).await?;
    Ok(pdf_answer(messages::receipt_pdf(deps.pdf(), &found)?, &found.number))
}
