//! What a route is: its method and path (API Gateway's route key), the
//! function serving it and who may call it. The routes themselves are
//! declared once, with their handlers, in `http::functions`.

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
    /// The function serving it, by its name (`action-status`).
    pub function: &'static str,
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
    pub fn is_key(&self, key: &str) -> bool {
        key.split_once(' ') == Some((self.method, self.path))
    }

    /// The path parameters of a concrete request path, if this route's
    /// path matches it as API Gateway matches (each `{name}` one segment,
    /// not empty).
    pub fn path_parameters(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let pattern: Vec<&'static str> = self.path.split('/').collect();
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
        Some(params)
    }
}
