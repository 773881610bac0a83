//! The route table: one place that says which function serves which route and
//! who may call it. API Gateway's route keys, the local runner and the
//! template test come from here; each function's handlers, route by route,
//! are in `http::functions`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    ClinicSettings,
    SelectInvoices,
    AssignAction,
    ActionStatus,
    CreateCheckout,
    StripeWebhook,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::ClinicSettings => "clinic-settings",
            Function::SelectInvoices => "select-invoices",
            Function::AssignAction => "assign-action",
            Function::ActionStatus => "action-status",
            Function::CreateCheckout => "create-checkout",
            Function::StripeWebhook => "stripe-webhook",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Staff JWT; the clinic comes from the token.
    Staff,
    /// Support JWT.
    Support,
    /// Staff of the clinic in the path, or support.
    StaffOrSupport,
    /// The patient link token, in the path (or, back from Stripe, in the
    /// link's cookie); no JWT.
    Patient,
    /// Stripe: the `Stripe-Signature` header over the raw body; no JWT.
    Stripe,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
    pub access: Access,
}

impl Route {
    /// Stripe's events are larger than anything a person sends; an event
    /// is accepted only if the queue can take it (`MAX_MESSAGE_BYTES`).
    pub fn max_body_bytes(&self) -> usize {
        match self.access {
            Access::Stripe => visitpay_app::ports::MAX_MESSAGE_BYTES,
            _ => 64 * 1024,
        }
    }

    /// API Gateway's route key, e.g. `GET /actions/{action_id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
    fn is_key(&self, key: &str) -> bool {
        key.split_once(' ') == Some((self.method, self.path))
    }
}

const fn route(method: &'static str, path: &'static str, function: Function, access: Access) -> Route {
    Route { method, path, function, access }
}

pub static ROUTES: &[Route] = &[
    route("PUT", "/clinics/{clinic_id}/payment-settings", Function::ClinicSettings, Access::Support),
    route("GET", "/clinics/{clinic_id}/payment-settings", Function::ClinicSettings, Access::StaffOrSupport),
    route("PUT", "/patients/{patient_id}/invoices/{invoice_id}", Function::SelectInvoices, Access::Staff),
    route("GET", "/patients/{patient_id}/invoices", Function::SelectInvoices, Access::Staff),
    route("POST", "/patients/{patient_id}/invoices/select", Function::SelectInvoices, Access::Staff),
    route("POST", "/visits/{visit_id}/actions", Function::AssignAction, Access::Staff),
    route("POST", "/actions/{action_id}/cancel", Function::AssignAction, Access::Staff),
    route("POST", "/actions/{action_id}/refund", Function::AssignAction, Access::Staff),
    route("GET", "/visits/{visit_id}/actions", Function::ActionStatus, Access::Staff),
    route("GET", "/actions/{action_id}", Function::ActionStatus, Access::Staff),
    route("GET", "/patient/actions/{token}", Function::ActionStatus, Access::Patient),
    route("GET", "/patient/return/{action_id}", Function::ActionStatus, Access::Patient),
    route("GET", "/patient/actions/{token}/receipt", Function::ActionStatus, Access::Patient),
    route("GET", "/actions/{action_id}/receipt", Function::ActionStatus, Access::Staff),
    route("POST", "/patient/actions/{token}/checkout", Function::CreateCheckout, Access::Patient),
    route("POST", "/webhooks/stripe", Function::StripeWebhook, Access::Stripe),
];

pub fn by_key(key: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.is_key(key))
}

/// Matches a concrete request path against the table, as API Gateway does,
/// returning the route and its path parameters.
pub fn match_path(method: &str, path: &str) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().filter(|r| r.method.eq_ignore_ascii_case(method)).find_map(|r| {
        let pattern: Vec<&str> = r.path.split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(&segments) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !s.is_empty() => params.push((name, (*s).to_owned())),
                Some(_) => return None,
                None if p == s => {}
                None => return None,
            }
        }
        Some((r, params))
    })
}

/// Whether any route has this path with another method (for a 405).
pub fn path_exists(path: &str) -> bool {
    ["GET", "PUT", "POST", "DELETE", "PATCH"].iter().any(|m| match_path(m, path).is_some())
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
}
