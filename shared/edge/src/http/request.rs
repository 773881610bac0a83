//! What a handler reads from an API Gateway v2 request: the caller the JWT
//! authorizer vouched for, path and query parameters, a JSON body, the
//! headers the API honours. Each refusal is a `RequestError`, which
//! `http::error` turns into a status and a code.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;

use super::routes::{Access, Route};
use visitpay_app::{Caller, Role};
use visitpay_domain::{ClinicId, DomainError, UserId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("your role may not call this route")]
    Forbidden,
    #[error("no such route")]
    RouteNotFound,
    #[error("the body may be at most {0} bytes")]
    TooLarge(usize),
    #[error("a JSON body is required")]
    MissingBody,
    #[error("the body is not valid JSON")]
    InvalidJson,
    #[error("the body does not have the expected shape: {0}")]
    InvalidBody(String),
    #[error("Idempotency-Key must be 1 to 128 characters of [A-Za-z0-9_.:-]")]
    InvalidIdempotencyKey,
    #[error("status must be unprocessed, selected, pending or paid")]
    InvalidStatus,
    /// A path parameter the domain refuses (an id, a locale).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// The patient link cannot be one of ours: answered like an unknown one.
    #[error("payment link not found")]
    LinkNotFound,
    /// A patient route reached without the edge in front of it (the
    /// execute-api address directly, around the per-client limits).
    #[error("patient pages are served through the clinic's payment address only")]
    NotThroughEdge,
}

/// The header the edge (CloudFront) adds to every request it forwards to
/// the API, with the deployment's secret: patient routes answer only those.
pub const EDGE_HEADER: &str = "x-visitpay-edge";

/// One request as its handler sees it.
pub struct Ctx<'a> {
    pub req: &'a Request,
    pub route: &'static Route,
    /// The authenticated caller, for routes with a JWT.
    pub caller: Option<Caller>,
}

/// Reads the authorizer's JWT claims into a caller. API Gateway has already
/// checked the signature; locally the runner plays that part.
fn caller(req: &Request) -> Result<Caller, RequestError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    }
    .ok_or(RequestError::Unauthorized)?;
    let sub = claims.get("sub").and_then(|s| UserId::parse(s).ok()).ok_or(RequestError::Unauthorized)?;
    let role = match claims.get("role").map(String::as_str) {
        Some("staff") => Role::Staff,
        Some("support") => Role::Support,
        _ => return Err(RequestError::Unauthorized),
    };
    let clinic_id = match claims.get("clinic_id") {
        Some(c) => Some(ClinicId::parse(c).map_err(|_| RequestError::Unauthorized)?),
        None => None,
    };
    if role == Role::Staff && clinic_id.is_none() {
        return Err(RequestError::Unauthorized);
    }
    Ok(Caller { sub, role, clinic_id })
}

/// The caller a route admits, checked once for every handler of it. With an
/// edge configured (`edge`: its secret), a patient route answers only what
/// came through it: the per-client limits in front of the patient routes
/// cannot be gone around by calling API Gateway's own address.
pub(crate) fn authorize(
    req: &Request,
    access: Access,
    edge: Option<&secrecy::SecretString>,
) -> Result<Option<Caller>, RequestError> {
    if access == Access::Patient {
        if let Some(secret) = edge {
            use secrecy::ExposeSecret;
            use subtle::ConstantTimeEq;
            let sent = req.headers().get(EDGE_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if !bool::from(sent.ct_eq(secret.expose_secret().as_bytes())) {
                return Err(RequestError::NotThroughEdge);
            }
        }
        return Ok(None);
    }
    if access == Access::Stripe {
        return Ok(None);
    }
    let caller = caller(req)?;
    let allowed = match access {
        Access::Staff => caller.role == Role::Staff,
        Access::Support => caller.role == Role::Support,
        Access::StaffOrSupport | Access::Patient | Access::Stripe => true,
    };
    if !allowed {
        return Err(RequestError::Forbidden);
    }
    Ok(Some(caller))
}

impl Ctx<'_> {
    pub fn caller(&self) -> Result<&Caller, RequestError> {
        self.caller.as_ref().ok_or(RequestError::Unauthorized)
    }

    /// A staff caller and the clinic their token is for.
    pub fn staff(&self) -> Result<(&Caller, &ClinicId), RequestError> {
        let caller = self.caller()?;
        Ok((caller, caller.clinic_id.as_ref().ok_or(RequestError::Unauthorized)?))
    }

    pub fn path(&self, name: &str) -> Result<String, RequestError> {
        self.req.path_parameters().first(name).map(str::to_owned).ok_or(RequestError::RouteNotFound)
    }

    /// A path parameter, validated by the domain's parser.
    pub fn id<T>(&self, name: &str, parse: impl Fn(&str) -> Result<T, DomainError>) -> Result<T, RequestError> {
        Ok(parse(&self.path(name)?)?)
    }

    pub fn query(&self, name: &str) -> Option<String> {
        self.req.query_string_parameters().first(name).map(str::to_owned)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body<T: DeserializeOwned>(&self) -> Result<T, RequestError> {
        let bytes: &[u8] = self.req.body().as_ref();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError::MissingBody);
        }
        serde_json::from_slice(bytes).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                RequestError::InvalidJson
            } else {
                RequestError::InvalidBody(e.to_string())
            }
        })
    }

    /// An optional JSON body: absent or empty means defaults.
    pub fn optional_body<T: DeserializeOwned + Default>(&self) -> Result<T, RequestError> {
        let bytes: &[u8] = self.req.body().as_ref();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        self.body()
    }

    /// Tokens are an action id, a dot and base64url; anything else cannot be one of ours.
    pub fn patient_token(&self) -> Result<String, RequestError> {
        let token = self.path("token")?;
        let plausible = !token.is_empty()
            && token.len() <= 128
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !plausible {
            return Err(RequestError::LinkNotFound);
        }
        Ok(token)
    }

    pub fn idempotency_key(&self) -> Result<Option<String>, RequestError> {
        let Some(value) = self.req.headers().get("idempotency-key") else {
            return Ok(None);
        };
        let key = value.to_str().unwrap_or("");
        let valid = (1..=128).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
        if !valid {
            return Err(RequestError::InvalidIdempotencyKey);
        }
        Ok(Some(key.to_owned()))
    }
}
