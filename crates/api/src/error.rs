//! API errors as RFC 9457 `application/problem+json`, and the one place where error codes
//! become HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_core::ErrorCode;
use nexus_store::StoreError;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of every error response (shared with clients through `nexus-api-model`).
pub use nexus_api_model::Problem;

/// An error that a handler or layer returns to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// The problem+json body of this error (also sent as an SSE `error` event mid-stream).
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:nexus:error:{}", self.code),
            title: title_of(self.code).to_owned(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
        }
    }
}

/// The HTTP status of each error code. Exhaustive on purpose: a new code must choose one.
pub const fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        // A `Host` the server does not answer to is 400, not 421: RFC 9112 §3.2 asks 400 for a
        // missing, repeated or invalid `Host`, one code keeps clients simple, and 421 would make
        // browsers retry on a fresh connection for nothing.
        ErrorCode::InvalidJson
        | ErrorCode::InvalidParameter
        | ErrorCode::HostRefused
        | ErrorCode::MalformedRequest => StatusCode::BAD_REQUEST,
        ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::InvalidBody
        | ErrorCode::ValidationFailed
        | ErrorCode::InvalidPackage
        | ErrorCode::GrantRefused
        | ErrorCode::GrantsUnconfirmed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RouteNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorCode::OriginRefused | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Conflict | ErrorCode::IllegalTransition => StatusCode::CONFLICT,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Overloaded | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Title shown for each code.
const fn title_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidJson => "Malformed JSON",
        ErrorCode::InvalidBody => "Request body does not match the schema",
        ErrorCode::ValidationFailed => "Validation failed",
        ErrorCode::UnsupportedMediaType => "Unsupported media type",
        ErrorCode::PayloadTooLarge => "Payload too large",
        ErrorCode::InvalidParameter => "Invalid parameter",
        ErrorCode::RouteNotFound => "No such route",
        ErrorCode::MethodNotAllowed => "Method not allowed",
        ErrorCode::NotAcceptable => "Not acceptable",
        ErrorCode::OriginRefused => "Origin refused",
        ErrorCode::HostRefused => "Host refused",
        ErrorCode::MalformedRequest => "Malformed request",
        ErrorCode::HeadersTooLarge => "Request header fields too large",
        ErrorCode::Unauthenticated => "Authentication required",
        ErrorCode::Forbidden => "Forbidden",
        ErrorCode::RateLimited => "Too many requests",
        ErrorCode::NotFound => "Not found",
        ErrorCode::Conflict => "Conflict",
        ErrorCode::IllegalTransition => "Illegal state transition",
        ErrorCode::InvalidPackage => "Invalid package",
        ErrorCode::GrantRefused => "Grant refused",
        ErrorCode::GrantsUnconfirmed => "Grants not confirmed",
        ErrorCode::Timeout => "Request timed out",
        ErrorCode::Overloaded => "Server overloaded",
        ErrorCode::Unavailable => "Service unavailable",
        ErrorCode::Internal => "Internal error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = %self.code, detail = %self.detail, "request failed");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self.code, ErrorCode::Overloaded | ErrorCode::Unavailable) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        nexus_control::ControlError::Store(err).into()
    }
}

impl From<nexus_control::ControlError> for ApiError {
    fn from(err: nexus_control::ControlError) -> Self {
        // Internal details stay in the log; the client gets the request id to quote.
        if err.is_internal() {
            tracing::error!(error = %err, "request failed inside the control plane");
            return Self::new(
                ErrorCode::Internal,
                "an internal error occurred; see the server log for this request id",
            );
        }
        Self::new(err.code(), err.to_string())
    }
}
