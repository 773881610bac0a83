//! Every HTTP route, declared once: its function, method, path, who may call
//! it, and its handler. From this one declaration come each function's entry
//! point (a function's `main.rs` calls it with its deps; the bounds say which
//! ports it must be wired with, and a missing one does not compile), the
//! route table (`ROUTES`) that API Gateway's route keys, the local runner's
//! matching, CORS and the template test read, and `handle`, which serves
//! any route for deps wired with every port (the local runner, tests).

use lambda_http::{Body, Request, Response};

use super::routes::{Access, Route};
use super::{actions, invoices, patient, payouts, receipt, serve, settings, unsubscribe, webhook};
use visitpay_app::{HasClock, HasConfig, HasIds, HasMetrics, HasPayments, HasPdf, HasQueue, HasStore};

/// Declares the functions and their routes (see the module's comment).
macro_rules! functions {
    ($(
        $(#[$doc:meta])*
        $variant:ident $name:literal, fn $entry:ident(deps: [$($bound:ident),+]) {
            $($method:ident $path:literal $access:ident => $handler:path;)+
        }
    )+) => {
        /// The HTTP functions, as the template names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Function {
            $($variant,)+
        }

        impl Function {
            pub const ALL: &'static [Function] = &[$(Function::$variant,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Function::$variant => $name,)+
                }
            }

            /// The function serving `route` (every route of `ROUTES` has one).
            pub fn serving(route: &Route) -> Function {
                *Function::ALL.iter().find(|f| f.name() == route.function).expect("a declared function")
            }
        }

        pub static ROUTES: &[Route] = &[
            $($(Route { method: stringify!($method), path: $path, function: $name, access: Access::$access },)+)+
        ];

        $(
            $(#[$doc])*
            pub async fn $entry(deps: &(impl $($bound +)+), req: Request) -> Response<Body> {
                serve!(deps, Function::$variant, req, |deps, key, ctx| {
                    $(if key == concat!(stringify!($method), " ", $path) {
                        return $handler(deps, ctx).await;
                    })+
                })
            }
        )+

        /// Any function's request, for deps wired with every port (the
        /// local runner, which serves them all behind one port, and tests).
        pub async fn handle(
            deps: &(impl HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasPayments + HasQueue + HasPdf),
            function: Function,
            req: Request,
        ) -> Response<Body> {
            match function {
                $(Function::$variant => $entry(deps, req).await,)+
            }
        }
    };
}

functions! {
    /// Clinic payment settings: support writes, staff of the clinic read.
    ClinicSettings "clinic-settings", fn clinic_settings(deps: [HasStore, HasClock, HasConfig, HasMetrics, HasPayments]) {
        PUT "/clinics/{clinic_id}/payment-settings" Support => settings::put;
        GET "/clinics/{clinic_id}/payment-settings" StaffOrSupport => settings::get;
        POST "/clinics/{clinic_id}/stripe-onboarding" Support => settings::onboarding;
    }
    /// A clinic's payouts, traced to what they paid (JSON or CSV).
    Payouts "payouts", fn payouts(deps: [HasStore, HasConfig]) {
        GET "/clinics/{clinic_id}/payouts" StaffOrSupport => payouts::list;
        GET "/clinics/{clinic_id}/payouts/{payout_id}" StaffOrSupport => payouts::get;
    }
    /// Private invoices: import, list, "make a payment".
    SelectInvoices "select-invoices", fn select_invoices(deps: [HasStore, HasClock, HasConfig]) {
        PUT "/patients/{patient_id}/invoices/{invoice_id}" Staff => invoices::put;
        GET "/patients/{patient_id}/invoices" Staff => invoices::list;
        POST "/patients/{patient_id}/invoices/select" Staff => invoices::select;
    }
    /// Payment actions: assign in a visit (and send the link), send it
    /// again, cancel, refund.
    AssignAction "assign-action", fn assign_action(deps: [HasStore, HasClock, HasIds, HasConfig, HasMetrics, HasPayments]) {
        POST "/visits/{visit_id}/actions" Staff => actions::assign;
        POST "/actions/{action_id}/send" Staff => actions::send;
        POST "/actions/{action_id}/cancel" Staff => actions::cancel;
        POST "/actions/{action_id}/refund" Staff => actions::refund;
    }
    /// What staff and the patient read: actions, the patient page, receipts.
    ActionStatus "action-status", fn action_status(deps: [HasStore, HasClock, HasConfig]) {
        GET "/visits/{visit_id}/actions" Staff => actions::list_for_visit;
        GET "/actions/{action_id}" Staff => actions::get;
        GET "/patient/actions/{token}" Patient => patient::view;
        GET "/patient/return/{action_id}" Patient => patient::back_from_stripe;
        GET "/patient/actions/{token}/receipt" Patient => receipt::for_patient;
        GET "/actions/{action_id}/receipt" Staff => receipt::for_staff;
    }
    /// The receipt as a PDF (its fonts stay out of the pages' function).
    ReceiptPdf "receipt-pdf", fn receipt_pdf(deps: [HasStore, HasClock, HasConfig, HasPdf]) {
        GET "/patient/actions/{token}/receipt.pdf" Patient => receipt::pdf_for_patient;
        GET "/actions/{action_id}/receipt.pdf" Staff => receipt::pdf_for_staff;
    }
    /// An email's unsubscribe link: the page, and its confirmation.
    Unsubscribe "unsubscribe", fn unsubscribe(deps: [HasStore, HasClock, HasConfig]) {
        GET "/unsubscribe/{token}" Patient => unsubscribe::view;
        POST "/unsubscribe/{token}" Patient => unsubscribe::confirm;
    }
    /// The patient opens Stripe Checkout.
    CreateCheckout "create-checkout", fn create_checkout(deps: [HasStore, HasClock, HasConfig, HasPayments]) {
        POST "/patient/actions/{token}/checkout" Patient => patient::checkout;
    }
    /// Stripe's events, checked and queued.
    StripeWebhook "stripe-webhook", fn stripe_webhook(deps: [HasClock, HasConfig, HasQueue]) {
        POST "/webhooks/stripe" Stripe => webhook::receive;
    }
}

/// The route of an API Gateway route key (`GET /actions/{action_id}`).
pub fn by_key(key: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.is_key(key))
}

/// Matches a concrete request path against the table, as API Gateway does,
/// returning the route and its path parameters.
pub fn match_path(method: &str, path: &str) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
    ROUTES
        .iter()
        .filter(|r| r.method.eq_ignore_ascii_case(method))
        .find_map(|r| r.path_parameters(path).map(|params| (r, params)))
}

/// Whether any route has this path with another method (for a 405).
pub fn path_exists(path: &str) -> bool {
    ROUTES.iter().any(|r| r.path_parameters(path).is_some())
}

/// The methods the routes use, as CORS allows them.
pub fn methods() -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = ROUTES.iter().map(|r| r.method).collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for r in ROUTES {
            assert_eq!(by_key(&r.key()).map(|x| x.key()), Some(r.key()));
        }
        assert_eq!(ROUTES.iter().map(|r| r.key()).collect::<std::collections::HashSet<_>>().len(), ROUTES.len());
    }

    #[test]
    fn matches_paths_with_parameters() {
        let (r, p) = match_path("PUT", "/patients/p1/invoices/1042").unwrap();
        assert_eq!(r.key(), "PUT /patients/{patient_id}/invoices/{invoice_id}");
        assert_eq!(p, vec![("patient_id", "p1".to_owned()), ("invoice_id", "1042".to_owned())]);
        assert_eq!(
            match_path("POST", "/patients/p1/invoices/select").unwrap().0.path,
            "/patients/{patient_id}/invoices/select"
        );
        assert!(match_path("DELETE", "/actions/a1").is_none());
        assert!(match_path("GET", "/actions//cancel").is_none());
        assert!(path_exists("/actions/a1"));
    }

    /// Every function serves its own routes and answers another's with the
    /// route-not-found error: a route declared under a function is the one
    /// its entry point dispatches.
    #[test]
    fn every_function_has_routes_and_every_route_a_function() {
        for f in Function::ALL {
            assert!(ROUTES.iter().any(|r| r.function == f.name()), "{f:?}");
        }
        assert!(ROUTES.iter().all(|r| Function::ALL.iter().any(|f| f.name() == r.function)));
        assert_eq!(methods(), ["GET", "POST", "PUT"]);
    }
}
