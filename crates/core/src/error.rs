//! Stable, machine-readable error codes.
//!
//! A code is part of the public API: clients match on it, so a code is never renamed or reused.
//! The HTTP status for each code is decided in one place, in `nexus-api`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every error the platform reports to a client carries one of these codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body is not well-formed JSON.
    InvalidJson,
    /// The body is JSON but does not match the expected shape (missing, unknown or mistyped fields).
    InvalidBody,
    /// A field has the right type but a value the platform rejects.
    ValidationFailed,
    /// The request declared a content type the endpoint does not accept.
    UnsupportedMediaType,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// A path or query parameter (an id, a name, a cursor) is malformed.
    InvalidParameter,
    /// No route matches the path.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request's `Accept` header excludes every type the endpoint answers with.
    NotAcceptable,
    /// The request comes from a web page (its `Origin`) the endpoint does not serve.
    OriginRefused,
    /// The request line or a header is not valid HTTP/1.1 (an invalid byte in the path, a
    /// malformed header); answered by the connection layer, which then closes the connection.
    MalformedRequest,
    /// The request's headers are larger than the server reads.
    HeadersTooLarge,
    /// The request's `Host` names no address the server answers to (or is malformed, or
    /// given twice): what DNS rebinding would send.
    HostRefused,
    /// The request carries no credentials, or credentials that are malformed, unknown,
    /// expired or revoked.
    Unauthenticated,
    /// The caller is known but may not do this (its role or a policy forbids it).
    Forbidden,
    /// The caller sent too many requests; retry after the `Retry-After` header's seconds.
    RateLimited,
    /// The addressed resource does not exist (or is not visible to the caller).
    NotFound,
    /// The resource already exists or changed concurrently.
    Conflict,
    /// A task state change that the A2A state machine forbids.
    IllegalTransition,
    /// An agent package (manifest, archive or component) is invalid.
    InvalidPackage,
    /// A deployment grants something the package manifest does not declare.
    GrantRefused,
    /// A deployment would grant what the package manifest newly requests, unconfirmed: the
    /// deployer must confirm it or list the grants to give.
    GrantsUnconfirmed,
    /// The request took longer than the server's request timeout.
    Timeout,
    /// The server is at its concurrency limit; retry later.
    Overloaded,
    /// A dependency (such as the database) is unavailable.
    Unavailable,
    /// An unexpected server-side failure; the details are in the server log under the request id.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::ValidationFailed => "validation_failed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidParameter => "invalid_parameter",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotAcceptable => "not_acceptable",
            Self::OriginRefused => "origin_refused",
            Self::HostRefused => "host_refused",
            Self::MalformedRequest => "malformed_request",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::IllegalTransition => "illegal_transition",
            Self::InvalidPackage => "invalid_package",
            Self::GrantRefused => "grant_refused",
            Self::GrantsUnconfirmed => "grants_unconfirmed",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::IllegalTransition,
            ErrorCode::Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::String(code.as_str().to_owned()))
            );
        }
    }
}
