//! The one place errors become an HTTP status and a stable code: the
//! request's own faults, the domain's refusals, the use cases' failures and
//! the webhook's. Internal text is logged, never answered.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

use super::request::RequestError;
use visitpay_app::ports::{ErrorChain, PaymentsError, QueueError, StoreError};
use visitpay_app::{AppError, NotFound};
use visitpay_domain::DomainError;
use visitpay_stripe::webhook::{SignatureError, WebhookError};

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
    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred")
    }
    pub fn route_not_found() -> Self {
        RequestError::RouteNotFound.into()
    }
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
    }
    pub fn unauthorized() -> Self {
        RequestError::Unauthorized.into()
    }
    pub fn too_large(limit: usize) -> Self {
        RequestError::TooLarge(limit).into()
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
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

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        use RequestError as R;
        let (status, code) = match &e {
            R::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            R::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            R::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found"),
            R::LinkNotFound => return AppError::NotFound(NotFound::Link).into(),
            R::NotThroughEdge => (StatusCode::FORBIDDEN, "edge_required"),
            R::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            R::MissingBody | R::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json"),
            R::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            R::InvalidIdempotencyKey => (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            R::InvalidStatus => (StatusCode::BAD_REQUEST, "invalid_status"),
            R::Invalid(d) => return d.clone().into(),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use DomainError::*;
        let bad = StatusCode::BAD_REQUEST;
        // A conflict with the current state is 409; bad input is 400.
        let conflict = StatusCode::CONFLICT;
        let (status, code) = match &e {
            InvalidId { .. } => (bad, "invalid_id"),
            InvalidAmount => (bad, "invalid_amount"),
            InvalidCurrency => (bad, "invalid_currency"),
            CurrencyMismatch => (bad, "currency_mismatch"),
            TotalTooLarge => (bad, "amount_too_large"),
            EmptySelection => (bad, "no_invoices"),
            TooManyInvoices { .. } => (bad, "too_many_invoices"),
            DuplicateInvoice(_) => (bad, "duplicate_invoice_id"),
            InvalidSettings(_) => (bad, "invalid_settings"),
            InvalidDate => (bad, "invalid_date"),
            DescriptionTooLong => (bad, "description_too_long"),
            ReceiptFieldTooLong => (bad, "receipt_field_too_long"),
            ReceiptNotAvailable(_) => (conflict, "receipt_not_available"),
            InvalidLocale => (bad, "invalid_locale"),
            InvoiceLocked(_) => (conflict, "invoice_locked"),
            InvoicePending(_) => (conflict, "invoice_pending"),
            InvoicePaid(_) => (conflict, "invoice_paid"),
            InvoiceNotSelected(_) => (conflict, "invoice_not_selected"),
            PaymentsDisabled => (conflict, "payments_disabled"),
            InvalidTransition(..) => (conflict, "invalid_transition"),
            AlreadyPaid => (conflict, "action_already_paid"),
            PaymentProcessing => (conflict, "payment_processing"),
            ActionClosed(_) => (conflict, "action_closed"),
            ActionExpired => (conflict, "action_expired"),
            NotRefundable(_) => (conflict, "not_refundable"),
            RefundExceedsRemaining(_) => (conflict, "refund_exceeds_remaining"),
            TooManyRefunds(_) => (conflict, "too_many_refunds"),
            AmountBelowMinimum { .. } => (bad, "amount_below_minimum"),
            CheckoutChanged => (conflict, "concurrent_update"),
            RefundInProgress => (conflict, "refund_in_progress"),
            PaymentDisputed => (conflict, "payment_disputed"),
            StripeAccountUnknown => (bad, "stripe_account_unknown"),
            TooManyCheckoutSessions(_) => (conflict, "too_many_checkout_sessions"),
            LatePaymentsFull(_) => (conflict, "late_payments_full"),
            InvalidEmail => (bad, "invalid_email"),
            InvalidPhone => (bad, "invalid_phone"),
            NoContact => (bad, "no_contact"),
            TooManySends(_) => (conflict, "too_many_sends"),
            StripeAccountRestricted => (conflict, "stripe_account_restricted"),
            InvalidCursor => (bad, "invalid_cursor"),
            InvalidLimit => (bad, "invalid_limit"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let unavailable =
            |code: &'static str, message: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        match e {
            AppError::Domain(d) => d.into(),
            AppError::NotFound(what) => {
                let code = match what {
                    NotFound::Settings => "settings_not_found",
                    NotFound::Invoice(_) => "invoice_not_found",
                    NotFound::Action => "action_not_found",
                    NotFound::Unsubscribe => "unsubscribe_not_found",
                    NotFound::Payout => "payout_not_found",
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
            AppError::Store(StoreError::Throttled) => unavailable("throttled", "the service is busy; retry shortly"),
            AppError::Store(ref err @ StoreError::Unavailable(_)) => {
                tracing::error!(error = %ErrorChain(err), "store unavailable");
                unavailable("service_unavailable", "a dependency is unavailable; retry shortly")
            }
            AppError::Store(ref err @ (StoreError::Corrupt(_) | StoreError::TooLarge(_))) => {
                tracing::error!(error = %ErrorChain(err), "store refused or returned an impossible item");
                ApiError::internal()
            }
            AppError::Payments(PaymentsError::AccountDisconnected) => ApiError::new(
                StatusCode::CONFLICT,
                "stripe_account_disconnected",
                "the clinic's Stripe account no longer lets visitpay in; reconnect it in the settings",
            ),
            AppError::Payments(ref err @ PaymentsError::Unavailable(_)) => {
                tracing::error!(error = %ErrorChain(err), "payment provider unavailable");
                unavailable("payments_unavailable", "the payment provider is unavailable; retry shortly")
            }
            AppError::Payments(ref err) => {
                tracing::error!(error = %ErrorChain(err), "payment provider refused a request");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "payment_provider_error",
                    "the payment provider refused the request",
                )
            }
            AppError::Queue(QueueError::Unavailable(_)) => {
                unavailable("queue_unavailable", "the event could not be queued; retry")
            }
            // Retrying cannot help: a 4xx tells Stripe so (it stops after its retries).
            AppError::Queue(QueueError::TooLarge { max, .. }) => ApiError::too_large(max),
            err @ AppError::Inconsistent(_) => {
                tracing::error!(error = %err, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let code = match e {
            WebhookError::Signature(SignatureError::Missing) => "missing_signature",
            WebhookError::Signature(SignatureError::Stale) => "stale_signature",
            WebhookError::Signature(SignatureError::Malformed | SignatureError::Mismatch) => "invalid_signature",
            WebhookError::NotAnEvent => "invalid_event",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
