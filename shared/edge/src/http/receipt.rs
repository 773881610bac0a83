//! The receipt as a page that prints cleanly and as a PDF, in French or
//! English, for the patient (behind their link) and for staff. One document
//! model feeds both forms, so they say the same thing.

use askama::Template;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use super::page::{self, Message};
use super::pdf::{self, Line};
use super::request::Ctx;
use super::{Answer, ApiError};
use visitpay_app::receipt::{self, Receipt};
use visitpay_app::{HasClock, HasStore};
use visitpay_domain::{format_amount, ActionId, Locale, RefundState};

/// What the receipt says, in order, whatever its form.
struct Document {
    lang: &'static str,
    title: String,
    header: Vec<(String, String)>,
    services_caption: &'static str,
    columns: [&'static str; 4],
    rows: Vec<[String; 4]>,
    footer: Vec<(String, String)>,
    missing: String,
    download_pdf: &'static str,
}

fn document(r: &Receipt) -> Document {
    let words = page::words(r.locale);
    let w = &words.receipt;
    let money = |amount: i64| format_amount(amount, r.currency, r.locale);
    let mut missing: Vec<&str> = Vec::new();
    let mut given = |value: &Option<String>, what: &'static str| match value {
        Some(v) => v.clone(),
        None => {
            if !missing.contains(&what) {
                missing.push(what);
            }
            w.not_provided.to_owned()
        }
    };
    let mut header = vec![
        (w.receipt_no.to_owned(), r.number.clone()),
        (w.issued_by.to_owned(), given(&r.issuer.legal_name, w.missing_legal_name)),
        // An address may be given on several lines; the receipt writes it on one.
        (
            w.address.to_owned(),
            given(
                &r.issuer.address.as_ref().map(|a| a.lines().map(str::trim).collect::<Vec<_>>().join(", ")),
                w.missing_address,
            ),
        ),
        (w.phone.to_owned(), given(&r.issuer.phone, w.missing_phone)),
    ];
    let patient = r.patient_name().map(str::to_owned);
    header.push((w.patient.to_owned(), given(&patient, w.missing_patient_name)));
    let rows = r
        .lines
        .iter()
        .map(|line| {
            let d = &line.details;
            let provider = [
                given(&d.provider_name, w.missing_provider_name),
                given(&d.profession, w.missing_profession),
                format!("{} {}", w.registration_no, given(&d.registration_number, w.missing_registration_number)),
            ]
            .join(", ");
            let date = given(&line.service_date, w.missing_service_date);
            [line.service.clone(), date, provider, money(line.amount)]
        })
        .collect();
    let mut footer = vec![
        (w.total_paid.to_owned(), money(r.total)),
        (w.paid_on.to_owned(), page::date(r.paid_at, r.locale, &r.time_zone)),
        (w.payment_reference.to_owned(), r.payment_reference.clone()),
        (
            w.payment_method.to_owned(),
            r.payment_method
                .as_ref()
                .map_or_else(|| w.not_yet_reported.to_owned(), |m| m.describe(&words.payment_method)),
        ),
    ];
    for (amount, status) in &r.refunds {
        let state = match status {
            RefundState::Succeeded => w.refund_completed,
            _ => w.refund_in_progress,
        };
        footer.push((w.refund.to_owned(), format!("{} ({state})", money(*amount))));
    }
    if r.refunded_amount > 0 {
        footer.push((w.net_paid.to_owned(), money(r.total - r.refunded_amount)));
    }
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!("{} {}.", w.not_provided_by_clinic, missing.join(", "))
    };
    Document {
        lang: words.lang,
        title: format!("{} — {}", w.receipt, r.clinic_label),
        header,
        services_caption: w.services,
        columns: [w.column_service, w.column_date, w.column_provider, w.column_amount],
        rows,
        footer,
        missing,
        download_pdf: w.download_pdf,
    }
}

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

fn html(doc: &Document, lang_query: &str) -> Response<Body> {
    let pdf_href = format!("?format=pdf{lang_query}");
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
        pdf_href,
        pdf_label: doc.download_pdf,
    };
    page::html_response_with_style(StatusCode::OK, page.render().expect("the receipt renders"), RECEIPT_CSS)
}

fn pdf_document(doc: &Document, number: &str) -> Response<Body> {
    let mut lines = vec![Line::heading(doc.title.clone()), Line::blank()];
    lines.extend(doc.header.iter().map(|(k, v)| Line::plain(format!("{k} : {v}"))));
    lines.push(Line::blank());
    lines.push(Line::strong(doc.services_caption));
    for row in &doc.rows {
        lines.push(Line::plain(format!("{} — {} — {}", row[0], row[1], row[3])));
        lines.push(Line::plain(format!("    {}", row[2])));
    }
    lines.push(Line::blank());
    lines.extend(doc.footer.iter().map(|(k, v)| Line::plain(format!("{k} : {v}"))));
    if !doc.missing.is_empty() {
        lines.push(Line::blank());
        lines.push(Line::plain(doc.missing.clone()));
    }
    let mut response = Response::new(Body::Binary(pdf::render(&doc.title, &lines)));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/pdf"));
    let disposition = format!("attachment; filename=\"{number}.pdf\"");
    headers.insert("content-disposition", HeaderValue::from_str(&disposition).expect("ascii"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

fn answer(receipt: &Receipt, ctx: &Ctx<'_>) -> Response<Body> {
    let doc = document(receipt);
    let lang_query = ctx.query("lang").map(|l| format!("&lang={l}")).unwrap_or_default();
    match ctx.query("format").as_deref() {
        Some("pdf") => pdf_document(&doc, &receipt.number),
        _ => html(&doc, &lang_query),
    }
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
