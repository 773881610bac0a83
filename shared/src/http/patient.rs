//! The patient's side, reached by the link token alone: what they owe, and
//! Checkout.

use lambda_http::http::StatusCode;
use serde::Serialize;

use super::actions::NoBody;
use super::request::Ctx;
use super::{json, Answer};
use crate::app::views::PatientActionView;
use crate::app::{actions, checkout, HasClock, HasConfig, HasPayments, HasStore};
use crate::domain::Timestamp;

#[derive(Serialize)]
struct CheckoutView<'a> {
    checkout_url: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: Timestamp,
}

pub(super) async fn view(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let token = ctx.patient_token()?;
    let action = actions::for_patient(deps, &token).await?;
    Ok(json(StatusCode::OK, &PatientActionView::from(&action)))
}

pub(super) async fn checkout(deps: &(impl HasStore + HasClock + HasConfig + HasPayments), ctx: Ctx<'_>) -> Answer {
    let token = ctx.patient_token()?;
    let NoBody {} = ctx.optional_body()?;
    let link = checkout::open(deps, &token).await?;
    Ok(json(StatusCode::OK, &CheckoutView { checkout_url: &link.url, expires_at: link.expires_at }))
}
