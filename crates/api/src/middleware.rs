//! Gateway plumbing: fallbacks, layer errors, panics and request metrics.

use std::any::Any;
use std::time::Instant;

use axum::BoxError;
use axum::extract::{MatchedPath, Request};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nexus_core::ErrorCode;
use nexus_telemetry::{HTTP_IN_FLIGHT, HTTP_REQUEST_DURATION, HTTP_REQUESTS};

use crate::error::ApiError;

/// Any path no route matches.
pub async fn route_not_found(uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::new(ErrorCode::RouteNotFound, format!("no route for {path}"))
}

/// A known path with a method it does not support.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{path} does not support this method"),
    )
}

/// Maps failures of the tower layers (the timeout) to problems.
pub async fn gateway_error(err: BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            ErrorCode::Timeout,
            "the request took too long and was abandoned",
        )
    } else {
        tracing::error!(error = %err, "unhandled gateway error");
        ApiError::new(ErrorCode::Internal, "an internal error occurred")
    }
}

/// A handler panicked: answer 500 problem+json; the panic is logged, the server keeps going.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    ApiError::new(ErrorCode::Internal, "an internal error occurred").into_response()
}

/// Records the request count, duration and in-flight gauge, labelled by route template (not
/// raw path, which would explode label cardinality).
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    metrics::gauge!(HTTP_IN_FLIGHT).increment(1.0);
    let response = next.run(request).await;
    metrics::gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(start.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    response
}
