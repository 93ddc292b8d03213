//! One module per resource.

pub mod a2a;
pub mod a2a_push;
pub mod a2a_rest;
pub mod agents;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod policies;
pub mod secrets;
pub mod service_accounts;
pub mod state;
pub mod tasks;
pub mod teams;
pub mod tenants;
pub mod users;

/// The W3C trace id of a request's `traceparent` header, if it has a valid one: tasks the
/// request starts join the caller's trace.
pub(crate) fn inbound_trace_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(nexus_control::trace_id_from_traceparent)
}
