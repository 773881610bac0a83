//! Payment actions for staff: assign in a visit, cancel, refund; read one,
//! list a visit's.

use lambda_http::http::{HeaderValue, StatusCode};
use serde::Deserialize;

use super::invoices::invoice_ids;
use super::request::Ctx;
use super::views::{ActionList, ActionView};
use super::{json, json_text, Answer};
use visitpay_app::{actions, HasClock, HasConfig, HasIds, HasMetrics, HasPayments, HasStore};
use visitpay_domain::{ActionId, Contacts, DomainError, EmailAddress, Locale, PatientId, PhoneNumber, VisitId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    patient_id: String,
    invoice_ids: Vec<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    notify: Option<NotifyBody>,
}

/// Where to send the link: an email address, a mobile number, or both.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NotifyBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    sms: Option<String>,
}

impl NotifyBody {
    fn contacts(self) -> Result<Contacts, DomainError> {
        Ok(Contacts {
            email: self.email.as_deref().map(EmailAddress::parse).transpose()?,
            sms: self.sms.as_deref().map(PhoneNumber::parse).transpose()?,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NoBody {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    #[serde(default)]
    amount: Option<i64>,
}

pub(super) async fn assign(
    deps: &(impl HasStore + HasClock + HasIds + HasConfig + HasPayments),
    ctx: Ctx<'_>,
) -> Answer {
    let (caller, clinic) = ctx.staff()?;
    let visit = ctx.id("visit_id", VisitId::parse)?;
    let key = ctx.idempotency_key()?;
    let AssignBody { patient_id, invoice_ids: raw, locale, notify } = ctx.body()?;
    let request = actions::AssignRequest {
        patient_id: PatientId::parse(&patient_id)?,
        invoice_ids: invoice_ids(&raw)?,
        locale: match locale {
            None => Locale::FrCa,
            Some(l) => Locale::parse(&l)?,
        },
        notify: notify.unwrap_or_default().contacts()?,
    };
    // The answer a repeat of the same key gets: the first, without the link.
    let first_answer = |action: &_| serde_json::to_string(&ActionView::new(action, None)).expect("serializable");
    Ok(match actions::assign(deps, caller, clinic, &visit, request, key.as_deref(), first_answer).await? {
        actions::Assigned::Created { action, patient_url } => {
            json(StatusCode::CREATED, &ActionView::new(&action, Some(patient_url)))
        }
        actions::Assigned::Replayed { body } => {
            // Only an assignment that created its action is kept under a key.
            let mut response = json_text(StatusCode::CREATED, body);
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    })
}

pub(super) async fn cancel(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    ctx: Ctx<'_>,
) -> Answer {
    let (caller, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let NoBody {} = ctx.optional_body()?;
    let action = actions::cancel(deps, caller, clinic, &action_id).await?;
    Ok(json(StatusCode::OK, &ActionView::new(&action, None)))
}

/// `POST /actions/{action_id}/send`: the link again, to the contacts given
/// (or those the action has).
pub(super) async fn send(deps: &(impl HasStore + HasClock), ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let key = ctx.idempotency_key()?;
    let notify: NotifyBody = ctx.optional_body()?;
    let first_answer = |action: &_| serde_json::to_string(&ActionView::new(action, None)).expect("serializable");
    Ok(match actions::send_link(deps, clinic, &action_id, notify.contacts()?, key.as_deref(), first_answer).await? {
        actions::LinkSent::Decided(action) => json(StatusCode::ACCEPTED, &ActionView::new(&action, None)),
        actions::LinkSent::Replayed { body } => {
            let mut response = json_text(StatusCode::ACCEPTED, body);
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    })
}

pub(super) async fn refund(deps: &(impl HasStore + HasClock + HasMetrics + HasPayments), ctx: Ctx<'_>) -> Answer {
    let (caller, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let RefundBody { amount } = ctx.optional_body()?;
    let action = actions::refund(deps, caller, clinic, &action_id, amount).await?;
    Ok(json(StatusCode::OK, &ActionView::new(&action, None)))
}

pub(super) async fn get(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let action_id = ctx.id("action_id", ActionId::parse)?;
    let action = actions::get(deps, clinic, &action_id).await?;
    Ok(super::conditional(ctx.header("if-none-match"), json(StatusCode::OK, &ActionView::new(&action, None))))
}

pub(super) async fn list_for_visit(deps: &impl HasStore, ctx: Ctx<'_>) -> Answer {
    let (_, clinic) = ctx.staff()?;
    let visit = ctx.id("visit_id", VisitId::parse)?;
    let list = actions::list_for_visit(deps, clinic, &visit).await?;
    let views = ActionList { actions: list.iter().map(|a| ActionView::new(a, None)).collect() };
    Ok(super::conditional(ctx.header("if-none-match"), json(StatusCode::OK, &views)))
}
