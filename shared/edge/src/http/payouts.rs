//! A clinic's payouts, each traced to the actions and invoices it paid:
//! JSON, or CSV for the bookkeeper (`Accept: text/csv`).

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use super::request::Ctx;
use super::settings::clinic;
use super::views::{PayoutLineView, PayoutView};
use super::{json, Answer};
use visitpay_app::{payouts, HasStore};
use visitpay_domain::{DomainError, Payout, PayoutLine};

#[derive(Serialize)]
struct PayoutList<'a> {
    payouts: Vec<PayoutView<'a>>,
    /// Give it back as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a str>,
}

#[derive(Serialize)]
struct PayoutDetail<'a> {
    #[serde(flatten)]
    payout: PayoutView<'a>,
    lines: Vec<PayoutLineView<'a>>,
}

/// A page cursor as `list` gives it: `<15 digits>#<payout id>`.
fn cursor(ctx: &Ctx<'_>) -> Result<Option<String>, super::ApiError> {
    let Some(c) = ctx.query("cursor") else { return Ok(None) };
    let valid = c.split_once('#').is_some_and(|(time, id)| {
        time.len() == 15
            && time.bytes().all(|b| b.is_ascii_digit())
            && (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if valid {
        Ok(Some(c))
    } else {
        Err(DomainError::InvalidCursor.into())
    }
}

fn limit(ctx: &Ctx<'_>) -> Result<usize, super::ApiError> {
    match ctx.query("limit") {
        None => Ok(20),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=payouts::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(DomainError::InvalidLimit.into()),
        },
    }
}

/// `GET /clinics/{clinic_id}/payouts[?limit=&cursor=]`: newest first.
pub(super) async fn list(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let clinic = clinic(&ctx)?;
    let page = payouts::list(deps, &clinic, limit(&ctx)?, cursor(&ctx)?.as_deref()).await?;
    let view = PayoutList {
        payouts: page.payouts.iter().map(|p| PayoutView::from(&p.value)).collect(),
        next_cursor: page.next.as_deref(),
    };
    Ok(json(StatusCode::OK, &view))
}

/// `GET /clinics/{clinic_id}/payouts/{payout_id}`: the payout and its lines,
/// as JSON, or as CSV for `Accept: text/csv`.
pub(super) async fn get(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let clinic = clinic(&ctx)?;
    let payout_id = ctx.path("payout_id")?;
    let valid = payout_id.starts_with("po_")
        && payout_id.len() <= 64
        && payout_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(DomainError::InvalidId { what: "payout_id" }.into());
    }
    let (payout, lines) = payouts::get(deps, &clinic, &payout_id).await?;
    if wants_csv(ctx.header("accept")) {
        return Ok(csv_answer(&payout, &lines));
    }
    let view = PayoutDetail {
        payout: PayoutView::from(&payout.value),
        lines: lines.iter().map(PayoutLineView::from).collect(),
    };
    Ok(json(StatusCode::OK, &view))
}

fn wants_csv(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|part| part.trim().starts_with("text/csv")))
}

/// An amount as a bookkeeper writes it: `-15.00` (every currency visitpay
/// bills in has two decimals), no symbol, no grouping.
fn decimal(amount: i64) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", amount.unsigned_abs() / 100, amount.unsigned_abs() % 100)
}

/// One line per balance transaction: date (UTC, as Stripe dates them),
/// type, action, invoices, gross, fee, net, currency, Stripe's id.
fn csv(payout: &Payout, lines: &[PayoutLine]) -> String {
    let mut out = String::from("date,type,action_id,invoice_ids,gross,fee,net,currency,transaction_id\r\n");
    for l in lines {
        let date = l.created.date();
        let invoices: Vec<&str> = l.invoice_ids.iter().map(|i| i.as_str()).collect();
        out.push_str(&format!(
            "{date},{},{},{},{},{},{},{},{}\r\n",
            l.kind.as_str(),
            l.action_id.as_ref().map_or("", |a| a.as_str()),
            invoices.join(";"),
            decimal(l.gross),
            decimal(l.fee),
            decimal(l.net),
            payout.currency.code(),
            l.transaction_id,
        ));
    }
    out
}

fn csv_answer(payout: &Payout, lines: &[PayoutLine]) -> Response<Body> {
    let mut response = Response::new(Body::Text(csv(payout, lines)));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/csv; charset=utf-8"));
    let disposition = format!("attachment; filename=\"{}.csv\"", payout.payout_id);
    headers.insert("content-disposition", HeaderValue::from_str(&disposition).expect("an ascii id"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimals() {
        assert_eq!(decimal(4500), "45.00");
        assert_eq!(decimal(-1500), "-15.00");
        assert_eq!(decimal(-5), "-0.05");
        assert_eq!(decimal(123_456_789), "1234567.89");
        assert_eq!(decimal(0), "0.00");
    }
}
