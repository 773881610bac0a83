//! Stripe's error envelope: `{"error":{"type":..,"code":..,"message":..,"param":..}}`.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: Value,
    /// A refusal of the request's parameters, before anything executed: "If
    /// incoming parameters fail validation … no idempotent result is saved"
    /// (Stripe docs, Idempotent requests). Every other answer is saved.
    pub validation: bool,
}

impl ApiError {
    pub(crate) fn new(
        status: u16,
        kind: &str,
        code: Option<&str>,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> Self {
        let mut error = Map::new();
        error.insert("type".into(), json!(kind));
        if let Some(code) = code {
            error.insert("code".into(), json!(code));
        }
        error.insert("message".into(), json!(message.into()));
        if let Some(param) = param {
            error.insert("param".into(), json!(param));
        }
        Self { status, body: json!({ "error": error }), validation: false }
    }

    fn validating(mut self) -> Self {
        self.validation = true;
        self
    }

    /// 400 `invalid_request_error` about one parameter (validation: not saved under a key).
    pub(crate) fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", None, message, param).validating()
    }

    /// 400 `invalid_request_error` with an error code (validation: not saved under a key).
    pub(crate) fn invalid_code(code: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", Some(code), message, param).validating()
    }

    /// 400 about the state of the objects, found while executing (saved under a key).
    pub(crate) fn refused(code: Option<&str>, message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", code, message, param)
    }

    pub(crate) fn missing_param(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            format!("Missing required param: {param}."),
            Some(param),
        )
        .validating()
    }

    /// "Received unknown parameter: X" (`parameter_unknown`), as Stripe answers any parameter it does not take.
    pub(crate) fn unknown_param(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_unknown"),
            format!("Received unknown parameter: {param}"),
            Some(param),
        )
        .validating()
    }

    /// A `Stripe-Account` that is not (or no longer) connected to the platform.
    pub(crate) fn account_invalid(key: &str, account: &str) -> Self {
        let shown: String = key.chars().take(8).collect();
        let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        Self::new(
            403,
            "invalid_request_error",
            Some("account_invalid"),
            format!(
                "The provided key '{shown}***{tail}' does not have access to account '{account}' (or that account \
                 does not exist). Application access may have been revoked."
            ),
            None,
        )
        .validating()
    }

    /// Stripe's 500: "Something went wrong on Stripe's end."
    pub(crate) fn server_error() -> Self {
        Self::new(500, "api_error", None, "An unknown error occurred", None)
    }

    /// 429: "If you send many requests in quick succession, you might see
    /// error responses with status code 429" (Stripe, Rate limits).
    pub(crate) fn rate_limited() -> Self {
        Self::new(
            429,
            "invalid_request_error",
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            None,
        )
    }

    /// 404 `resource_missing`, also what an object of another account looks like.
    pub(crate) fn no_such(kind: &str, id: &str, param: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such {kind}: '{id}'"),
            Some(param),
        )
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", None, message, None)
    }
}
