//! Stripe's error envelope: `{"error":{"type":..,"code":..,"message":..,"param":..}}`.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: Value,
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
        Self { status, body: json!({ "error": error }) }
    }

    /// 400 `invalid_request_error` about one parameter.
    pub(crate) fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", None, message, param)
    }

    /// 400 `invalid_request_error` with an error code.
    pub(crate) fn invalid_code(code: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(400, "invalid_request_error", Some(code), message, param)
    }

    pub(crate) fn missing_param(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            format!("Missing required param: {param}."),
            Some(param),
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
