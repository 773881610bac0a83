//! API Gateway HTTP API (v2) request → use case → response. The same code runs
//! in Lambda and behind the local runner, which builds identical events.

pub mod cors;
pub mod error;
pub mod routes;

use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::app::views::{ActionList, ActionView, InvoiceList, InvoiceView, PatientActionView, SelectionView};
use crate::app::{self, actions, checkout, invoices, settings, webhook, Caller, Deps, Role};
use crate::domain::invoice::InvoiceInput;
use crate::domain::{
    ActionId, ClinicId, DomainError, InvoiceId, InvoiceStatus, Locale, PatientId, SettingsInput, UserId, VisitId,
};
pub use error::ApiError;
use routes::{Access, Function, Op, Route};

/// Handles one API Gateway v2 request for `function`. Never fails: every
/// error becomes a response with a stable code.
pub async fn handle(deps: &Deps, function: Function, req: Request) -> Response<Body> {
    let started = Instant::now();
    let ctx = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => Some(ctx.clone()),
        _ => None,
    };
    let request_id = ctx.as_ref().and_then(|c| c.request_id.clone()).unwrap_or_default();
    // The route key is a template (`/patient/actions/{token}`): safe to log,
    // unlike the raw path, which may carry a patient's link token.
    let route_key = ctx.as_ref().and_then(|c| c.route_key.clone()).unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %request_id, route = %route_key);
    async move {
        let mut clinic_for_log = None;
        let response = match routes::by_key(&route_key).filter(|r| r.function == function) {
            None => ApiError::route_not_found().into_response(),
            Some(route) => match dispatch(deps, route, &req, &mut clinic_for_log).await {
                Ok(response) => response,
                Err(e) => e.into_response(),
            },
        };
        tracing::info!(
            clinic_id = clinic_for_log.as_ref().map(|c: &ClinicId| c.as_str()).unwrap_or("-"),
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}

/// Serializes a JSON answer. Money and patient data must not be cached.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).expect("views serialize");
    json_text(status, text)
}

fn json_text(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// Reads the authorizer's JWT claims into a caller. API Gateway has already
/// checked the signature; locally the runner plays that part.
fn caller(req: &Request) -> Result<Caller, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    }
    .ok_or_else(ApiError::unauthorized)?;
    let sub = claims.get("sub").and_then(|s| UserId::parse(s).ok()).ok_or_else(ApiError::unauthorized)?;
    let role = match claims.get("role").map(String::as_str) {
        Some("staff") => Role::Staff,
        Some("support") => Role::Support,
        _ => return Err(ApiError::unauthorized()),
    };
    let clinic_id = match claims.get("clinic_id") {
        Some(c) => Some(ClinicId::parse(c).map_err(|_| ApiError::unauthorized())?),
        None => None,
    };
    if role == Role::Staff && clinic_id.is_none() {
        return Err(ApiError::unauthorized());
    }
    Ok(Caller { sub, role, clinic_id })
}

fn authorize(req: &Request, access: Access) -> Result<Option<Caller>, ApiError> {
    if matches!(access, Access::Patient | Access::Stripe) {
        return Ok(None);
    }
    let caller = caller(req)?;
    let allowed = match access {
        Access::Staff => caller.role == Role::Staff,
        Access::Support => caller.role == Role::Support,
        Access::StaffOrSupport | Access::Patient | Access::Stripe => true,
    };
    if !allowed {
        return Err(ApiError::forbidden());
    }
    Ok(Some(caller))
}

fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters().first(name).map(str::to_owned).ok_or_else(ApiError::route_not_found)
}

fn parse_id<T>(parse: impl Fn(&str) -> Result<T, DomainError>, raw: &str) -> Result<T, ApiError> {
    parse(raw).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))
}

fn parse_ids(raw: &[String]) -> Result<Vec<InvoiceId>, ApiError> {
    raw.iter().map(|s| parse_id(InvoiceId::parse, s)).collect()
}

fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("invalid_json", "the body is not valid JSON")
        } else {
            ApiError::bad_request("invalid_body", format!("the body does not have the expected shape: {e}"))
        }
    })
}

/// An optional JSON body: absent or empty means defaults.
fn optional_body<T: DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body(req)
}

/// Tokens are an action id, a dot and base64url; anything else cannot be one of ours.
fn patient_token(req: &Request) -> Result<String, ApiError> {
    let token = path_param(req, "token")?;
    let plausible = !token.is_empty()
        && token.len() <= 128
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !plausible {
        return Err(app::AppError::NotFound(app::NotFound::Link).into());
    }
    Ok(token)
}

#[derive(Serialize)]
struct CheckoutView<'a> {
    checkout_url: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: crate::domain::Timestamp,
}

fn staff_clinic(caller: &Option<Caller>) -> Result<&ClinicId, ApiError> {
    caller.as_ref().and_then(|c| c.clinic_id.as_ref()).ok_or_else(ApiError::unauthorized)
}

fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("");
    let valid = (1..=128).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 128 characters of [A-Za-z0-9_.:-]",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectBody {
    invoice_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    patient_id: String,
    invoice_ids: Vec<String>,
    #[serde(default)]
    locale: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelBody {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    #[serde(default)]
    amount: Option<i64>,
}

async fn dispatch(
    deps: &Deps,
    route: &Route,
    req: &Request,
    clinic_for_log: &mut Option<ClinicId>,
) -> Result<Response<Body>, ApiError> {
    let caller = authorize(req, route.access)?;
    if req.body().len() > route.max_body_bytes() {
        tracing::warn!(bytes = req.body().len(), limit = route.max_body_bytes(), "request body over the route's limit");
        return Err(ApiError::too_large(route.max_body_bytes()));
    }
    if let Some(c) = caller.as_ref().and_then(|c| c.clinic_id.clone()) {
        *clinic_for_log = Some(c);
    }
    let ok = StatusCode::OK;
    match route.op {
        Op::PutSettings | Op::GetSettings => {
            let clinic = parse_id(ClinicId::parse, &path_param(req, "clinic_id")?)?;
            *clinic_for_log = Some(clinic.clone());
            let caller = caller.ok_or_else(ApiError::unauthorized)?;
            // Staff of another clinic learn nothing, not even that it exists.
            if caller.role == Role::Staff && caller.clinic_id.as_ref() != Some(&clinic) {
                return Err(app::AppError::NotFound(app::NotFound::Settings).into());
            }
            if route.op == Op::PutSettings {
                let input: SettingsInput = body(req)?;
                Ok(json(ok, &settings::put(deps, &caller, clinic, input).await?))
            } else {
                Ok(json(ok, &settings::get(deps, &clinic).await?))
            }
        }
        Op::PutInvoice => {
            let clinic = staff_clinic(&caller)?;
            let patient = parse_id(PatientId::parse, &path_param(req, "patient_id")?)?;
            let invoice_id = parse_id(InvoiceId::parse, &path_param(req, "invoice_id")?)?;
            let input: InvoiceInput = body(req)?;
            let (invoice, created) = invoices::import(deps, clinic, &patient, &invoice_id, input).await?;
            let status = if created { StatusCode::CREATED } else { ok };
            Ok(json(status, &InvoiceView::from(&invoice)))
        }
        Op::ListInvoices => {
            let clinic = staff_clinic(&caller)?;
            let patient = parse_id(PatientId::parse, &path_param(req, "patient_id")?)?;
            let status = match req.query_string_parameters().first("status") {
                None => None,
                Some(s) => Some(InvoiceStatus::parse(s).ok_or_else(|| {
                    ApiError::bad_request("invalid_status", "status must be unprocessed, selected, pending or paid")
                })?),
            };
            let list = invoices::list(deps, clinic, &patient, status).await?;
            Ok(json(ok, &InvoiceList { invoices: list.iter().map(InvoiceView::from).collect() }))
        }
        Op::SelectInvoices => {
            let clinic = staff_clinic(&caller)?;
            let patient = parse_id(PatientId::parse, &path_param(req, "patient_id")?)?;
            let SelectBody { invoice_ids } = body(req)?;
            let ids = parse_ids(&invoice_ids)?;
            let (selected, total) = invoices::select(deps, clinic, &patient, &ids).await?;
            Ok(json(ok, &SelectionView { invoices: selected.iter().map(InvoiceView::from).collect(), total }))
        }
        Op::AssignAction => {
            let clinic = staff_clinic(&caller)?;
            let caller = caller.as_ref().ok_or_else(ApiError::unauthorized)?;
            let visit = parse_id(VisitId::parse, &path_param(req, "visit_id")?)?;
            let key = idempotency_key(req)?;
            let AssignBody { patient_id, invoice_ids, locale } = body(req)?;
            let request = actions::AssignRequest {
                patient_id: parse_id(PatientId::parse, &patient_id)?,
                invoice_ids: parse_ids(&invoice_ids)?,
                locale: match locale {
                    None => Locale::FrCa,
                    Some(l) => parse_id(Locale::parse, &l)?,
                },
            };
            match actions::assign(deps, caller, clinic, &visit, request, key.as_deref()).await? {
                actions::Assigned::Created { action, patient_url } => {
                    Ok(json(StatusCode::CREATED, &ActionView::new(&action, Some(patient_url))))
                }
                actions::Assigned::Replayed { status, body } => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
                    let mut response = json_text(status, body);
                    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                    Ok(response)
                }
            }
        }
        Op::CancelAction => {
            let clinic = staff_clinic(&caller)?;
            let caller = caller.as_ref().ok_or_else(ApiError::unauthorized)?;
            let action_id = parse_id(ActionId::parse, &path_param(req, "action_id")?)?;
            let CancelBody {} = optional_body(req)?;
            let action = actions::cancel(deps, caller, clinic, &action_id).await?;
            Ok(json(ok, &ActionView::new(&action, None)))
        }
        Op::RefundAction => {
            let clinic = staff_clinic(&caller)?;
            let caller = caller.as_ref().ok_or_else(ApiError::unauthorized)?;
            let action_id = parse_id(ActionId::parse, &path_param(req, "action_id")?)?;
            let RefundBody { amount } = optional_body(req)?;
            let action = actions::refund(deps, caller, clinic, &action_id, amount).await?;
            Ok(json(ok, &ActionView::new(&action, None)))
        }
        Op::ListVisitActions => {
            let clinic = staff_clinic(&caller)?;
            let visit = parse_id(VisitId::parse, &path_param(req, "visit_id")?)?;
            let list = actions::list_for_visit(deps, clinic, &visit).await?;
            Ok(json(ok, &ActionList { actions: list.iter().map(|a| ActionView::new(a, None)).collect() }))
        }
        Op::GetAction => {
            let clinic = staff_clinic(&caller)?;
            let action_id = parse_id(ActionId::parse, &path_param(req, "action_id")?)?;
            let action = actions::get(deps, clinic, &action_id).await?;
            Ok(json(ok, &ActionView::new(&action, None)))
        }
        Op::PatientGetAction => {
            let token = patient_token(req)?;
            let action = actions::for_patient(deps, &token).await?;
            Ok(json(ok, &PatientActionView::from(&action)))
        }
        Op::PatientCheckout => {
            let token = patient_token(req)?;
            let CancelBody {} = optional_body(req)?;
            let link = checkout::open(deps, &token).await?;
            Ok(json(ok, &CheckoutView { checkout_url: &link.url, expires_at: link.expires_at }))
        }
        Op::StripeWebhook => {
            let signature = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok());
            match webhook::accept(deps, req.body().as_ref(), signature).await {
                Ok(webhook::Accepted::Queued { .. }) => Ok(json(ok, &serde_json::json!({"received": true}))),
                Ok(webhook::Accepted::Ignored { .. }) => {
                    Ok(json(ok, &serde_json::json!({"received": true, "ignored": true})))
                }
                Err(webhook::WebhookError::Signature(e)) => {
                    let code = match e {
                        webhook::SignatureError::Missing => "missing_signature",
                        webhook::SignatureError::Stale => "stale_signature",
                        webhook::SignatureError::Malformed | webhook::SignatureError::Mismatch => "invalid_signature",
                    };
                    Err(ApiError::bad_request(code, e.to_string()))
                }
                Err(webhook::WebhookError::NotAnEvent) => {
                    Err(ApiError::bad_request("invalid_event", "the body is not a Stripe event"))
                }
                Err(webhook::WebhookError::App(e)) => Err(e.into()),
            }
        }
    }
}
