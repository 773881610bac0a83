//! Each HTTP function's routes, each with its handler. A function's `main.rs`
//! calls its entry point here with its deps; the bounds say which ports the
//! function must be wired with (a missing one does not compile).

use lambda_http::{Body, Request, Response};

use super::routes::Function;
use super::{actions, invoices, patient, receipt, serve, settings, webhook};
use visitpay_app::{HasClock, HasConfig, HasIds, HasMetrics, HasPayments, HasQueue, HasStore};

pub async fn clinic_settings(
    deps: &(impl HasStore + HasClock + HasConfig + HasMetrics + HasPayments),
    req: Request,
) -> Response<Body> {
    serve!(deps, Function::ClinicSettings, req, {
        "PUT /clinics/{clinic_id}/payment-settings" => settings::put,
        "GET /clinics/{clinic_id}/payment-settings" => settings::get,
    })
}

pub async fn select_invoices(deps: &(impl HasStore + HasClock + HasConfig), req: Request) -> Response<Body> {
    serve!(deps, Function::SelectInvoices, req, {
        "PUT /patients/{patient_id}/invoices/{invoice_id}" => invoices::put,
        "GET /patients/{patient_id}/invoices" => invoices::list,
        "POST /patients/{patient_id}/invoices/select" => invoices::select,
    })
}

pub async fn assign_action(
    deps: &(impl HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasPayments),
    req: Request,
) -> Response<Body> {
    serve!(deps, Function::AssignAction, req, {
        "POST /visits/{visit_id}/actions" => actions::assign,
        "POST /actions/{action_id}/cancel" => actions::cancel,
        "POST /actions/{action_id}/refund" => actions::refund,
    })
}

pub async fn action_status(deps: &(impl HasStore + HasClock + HasConfig), req: Request) -> Response<Body> {
    serve!(deps, Function::ActionStatus, req, {
        "GET /visits/{visit_id}/actions" => actions::list_for_visit,
        "GET /actions/{action_id}" => actions::get,
        "GET /actions/{action_id}/receipt" => receipt::for_staff,
        "GET /patient/actions/{token}" => patient::view,
        "GET /patient/actions/{token}/receipt" => receipt::for_patient,
        "GET /patient/return/{action_id}" => patient::back_from_stripe,
    })
}

pub async fn create_checkout(
    deps: &(impl HasStore + HasClock + HasConfig + HasPayments),
    req: Request,
) -> Response<Body> {
    serve!(deps, Function::CreateCheckout, req, {
        "POST /patient/actions/{token}/checkout" => patient::checkout,
    })
}

pub async fn stripe_webhook(deps: &(impl HasClock + HasConfig + HasQueue), req: Request) -> Response<Body> {
    serve!(deps, Function::StripeWebhook, req, {
        "POST /webhooks/stripe" => webhook::receive,
    })
}

/// Any function's request, for deps wired with every port (the local runner,
/// which serves them all behind one port, and tests).
pub async fn handle(
    deps: &(impl HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasPayments + HasQueue),
    function: Function,
    req: Request,
) -> Response<Body> {
    match function {
        Function::ClinicSettings => clinic_settings(deps, req).await,
        Function::SelectInvoices => select_invoices(deps, req).await,
        Function::AssignAction => assign_action(deps, req).await,
        Function::ActionStatus => action_status(deps, req).await,
        Function::CreateCheckout => create_checkout(deps, req).await,
        Function::StripeWebhook => stripe_webhook(deps, req).await,
    }
}
