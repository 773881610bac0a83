//! The one place errors become an HTTP status and a stable code.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::app::{AppError, NotFound};
use crate::ports::{QueueError, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "your role may not call this route")
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred")
    }
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body may be at most {limit} bytes"))
    }

    pub fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        let body = Envelope { error: Inner { code: self.code, message: &self.message } };
        let mut response = super::json(self.status, &body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert("retry-after", lambda_http::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => {
                let status = if d.is_conflict() { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
                ApiError::new(status, d.code(), d.to_string())
            }
            AppError::NotFound(what) => {
                let code = match what {
                    NotFound::Settings => "settings_not_found",
                    NotFound::Invoice(_) => "invoice_not_found",
                    NotFound::Action => "action_not_found",
                    NotFound::Link => "link_not_found",
                };
                ApiError::new(StatusCode::NOT_FOUND, code, format!("{what} not found"))
            }
            AppError::IdempotencyKeyReused => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", e.to_string())
            }
            AppError::Contended | AppError::Store(StoreError::Conflict) => {
                ApiError::new(StatusCode::CONFLICT, "concurrent_update", AppError::Contended.to_string())
            }
            AppError::Store(StoreError::Throttled) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "throttled", "the service is busy; retry shortly")
            }
            AppError::Store(err @ StoreError::Unavailable(_)) => {
                tracing::error!(error = %err, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "a dependency is unavailable; retry shortly",
                )
            }
            AppError::Store(err @ (StoreError::Corrupt(_) | StoreError::TooLarge(_))) => {
                tracing::error!(error = %err, "store refused or returned an impossible item");
                ApiError::internal()
            }
            AppError::PaymentsUnavailable(why) => {
                tracing::error!(error = %why, "payment provider unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "payments_unavailable",
                    "the payment provider is unavailable; retry shortly",
                )
            }
            AppError::PaymentsRejected(why) => {
                tracing::error!(error = %why, "payment provider refused a request");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "payment_provider_error",
                    "the payment provider refused the request",
                )
            }
            AppError::Queue(QueueError::Unavailable(_)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the event could not be queued; retry",
            ),
            // Retrying cannot help: a 4xx tells Stripe so (it stops after its retries).
            AppError::Queue(QueueError::TooLarge { max, .. }) => ApiError::too_large(max),
            err @ (AppError::Misconfigured(_) | AppError::Inconsistent(_)) => {
                tracing::error!(error = %err, "internal error");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    #[test]
    fn conflicts_are_409_and_bad_input_400() {
        assert_eq!(ApiError::from(AppError::Domain(DomainError::PaymentsDisabled)).status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from(AppError::Domain(DomainError::InvalidAmount)).status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_text_never_reaches_the_client() {
        let e = ApiError::from(AppError::Store(StoreError::Unavailable("secret table arn".into())));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.message.contains("secret"));
    }
}
