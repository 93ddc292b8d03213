//! Authentication at the gateway: every request to `/v1`, `/a2a` and `/mcp` carries an
//! `Authorization: Bearer <credential>` header (an API key, a login session's token or an OIDC
//! JWT), which the control plane turns into the request's [`Caller`](nexus_core::Caller).
//! Public by choice: health, readiness, metrics, the OpenAPI document, `POST /v1/login` (which
//! checks a password instead), agent cards (which declare how to authenticate) and MCP's
//! protected-resource metadata.
//!
//! Without that header, a client certificate (mutual TLS) naming a service account by its
//! SPIFFE id authenticates as that account when `[server.tls] trust_domain` is set.
//!
//! A refusal is `401` problem+json with `WWW-Authenticate: Bearer`; for MCP it also names the
//! protected-resource metadata, as MCP's authorization spec asks.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nexus_core::ErrorCode;

use crate::admission::{Admission, Requester};
use crate::error::ApiError;
use crate::ratelimit::RateLimits;

/// What the authentication layer needs: the control plane (which knows the keys) and the
/// rate limits it applies to whoever it lets in.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub control: std::sync::Arc<nexus_control::ControlPlane>,
    pub rate_limits: Option<std::sync::Arc<RateLimits>>,
    /// The node's, tenants' and principals' shares of requests in flight.
    pub(crate) admission: std::sync::Arc<Admission>,
    /// With authentication off (`Authentication::InsecureNone`), the caller every request is.
    pub anonymous: Option<nexus_core::Caller>,
}

/// Where MCP clients find how to authenticate to `/mcp/{tenant}` (RFC 9728).
pub const MCP_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource/mcp";
/// The route of that metadata, per tenant.
pub const MCP_RESOURCE_METADATA_ROUTE: &str = "/.well-known/oauth-protected-resource/mcp/{tenant}";

/// Whether `path` is served without credentials.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json" | "/v1/login"
    ) || (path.starts_with("/a2a/") && path.ends_with("/.well-known/agent-card.json"))
        || path.starts_with(MCP_RESOURCE_METADATA)
}

/// Authenticates the request, counts it against its key's and tenant's rates and admits it
/// into their shares of requests in flight, or answers 401 (or 429, or 503).
pub async fn authenticate(
    State(state): State<Gateway>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        // Logins come without credentials: they are limited per client address.
        if request.uri().path() == LOGIN_PATH
            && let Some(limits) = &state.rate_limits
            && let Some(client) = client_ip(&request)
            && let Err(exceeded) = limits.admit_login(client)
        {
            return exceeded.into_response();
        }
        let client = client_ip(&request).map(crate::ratelimit::client_key);
        let requester = Requester {
            tenant: None,
            principal: client.map_or_else(|| "local".to_owned(), |ip| format!("ip:{ip}")),
        };
        return match state.admission.admit(requester) {
            Ok(_admitted) => next.run(request).await,
            Err(share) => ApiError::from(share).into_response(),
        };
    }
    if let Some(anonymous) = &state.anonymous {
        let requester = Requester {
            tenant: Some(anonymous.tenant),
            principal: anonymous.principal.id(),
        };
        request.extensions_mut().insert(anonymous.clone());
        return match state.admission.admit(requester) {
            Ok(_admitted) => next.run(request).await,
            Err(share) => ApiError::from(share).into_response(),
        };
    }
    // A refusal leaves the body unread, and the server then closes the connection: say so, or a
    // keep-alive client sends its next request into a closing connection.
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let close = |mut response: Response| {
        if has_body {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    };
    let credential = nexus_auth::bearer(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    );
    let refused = |e: nexus_control::ControlError| {
        if e.code() == ErrorCode::Unauthenticated {
            ApiError::new(ErrorCode::Unauthenticated, e.to_string())
        } else {
            ApiError::from(e)
        }
    };
    let authenticated = match credential {
        Ok(credential) => state
            .control
            .authenticate(credential)
            .await
            .map_err(refused),
        Err(nexus_auth::BearerError::Missing) => match client_certificate_uris(&request) {
            Some(uris) if state.control.accepts_workload_certificates() => state
                .control
                .authenticate_workload(&uris)
                .await
                .map_err(refused),
            _ => Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "this endpoint needs credentials: send `Authorization: Bearer <credential>`, an \
                 API key (`nexus keys create`), a session token (`nexus login`) or a token of \
                 the configured OIDC issuer",
            )),
        },
        Err(nexus_auth::BearerError::Malformed) => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "the `Authorization` header must be `Bearer <key>`",
        )),
    };
    let refusal = match authenticated {
        Ok(caller) => {
            if let Some(limits) = &state.rate_limits
                && let Err(exceeded) = limits.admit(&caller)
            {
                return close(exceeded.into_response());
            }
            let requester = Requester {
                tenant: Some(caller.tenant),
                principal: caller.principal.id(),
            };
            let _admitted = match state.admission.admit(requester) {
                Ok(admitted) => admitted,
                Err(share) => return close(ApiError::from(share).into_response()),
            };
            let trace_id = crate::routes::inbound_trace_id(request.headers());
            let client_ip = client_ip(&request);
            request
                .extensions_mut()
                .insert(caller.with_trace_id(trace_id).with_client_ip(client_ip));
            return next.run(request).await;
        }
        Err(refusal) => refusal,
    };
    let mut response = refusal.into_response();
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        let challenge = challenge(request.uri().path(), request.headers());
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    close(response)
}

/// The path of password logins.
const LOGIN_PATH: &str = "/v1/login";

/// The address the connection came from, when the server was started with connection info
/// (plain TCP or TLS); `None` in tests that call the router directly.
fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| peer.0.ip())
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<nexus_tls::TlsPeer>>()
                .map(|peer| peer.0.addr.ip())
        })
}

/// The subjectAltName URIs of the client certificate the connection was made with (verified
/// by the TLS listener against the client CA), if any.
fn client_certificate_uris(request: &Request) -> Option<std::sync::Arc<[String]>> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<nexus_tls::TlsPeer>>()
        .map(|peer| peer.0.client_uris.clone())
        .filter(|uris| !uris.is_empty())
}

/// The `WWW-Authenticate` challenge for `path`: MCP's names its resource metadata.
fn challenge(path: &str, headers: &axum::http::HeaderMap) -> String {
    match path.strip_prefix("/mcp/") {
        Some(tenant) if !tenant.is_empty() && !tenant.contains('/') => {
            let tenant: String = tenant
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect();
            format!(
                "Bearer realm=\"nexus\", resource_metadata=\"{}{MCP_RESOURCE_METADATA}/{tenant}\"",
                base_url(headers)
            )
        }
        _ => "Bearer realm=\"nexus\"".to_owned(),
    }
}

/// The base URL a client reached the server by (its `Host`).
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1:7700");
    format!("http://{host}")
}

/// MCP's protected-resource metadata for `/mcp/{tenant}` (RFC 9728): bearer tokens in the
/// `Authorization` header; the API keys come from `nexus keys create`, not from an
/// authorization server.
pub async fn mcp_resource_metadata(
    State(state): State<crate::AppState>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let base = base_url(&headers);
    let tenant: String = tenant.chars().take(64).collect();
    // The OIDC issuer, when one is configured, is where MCP clients can get a token.
    let authorization_servers: Vec<&str> = state.control.oidc_issuer().into_iter().collect();
    axum::Json(serde_json::json!({
        "resource": format!("{base}/mcp/{tenant}"),
        "authorization_servers": authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": format!("NexusCore tenant {tenant}"),
        "resource_documentation": "Send `Authorization: Bearer <credential>`: an API key made with `nexus keys create`, a session token from `nexus login`, or a token of the authorization server listed here.",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_paths_are_public() {
        for public in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/openapi.json",
            "/a2a/default/echo/.well-known/agent-card.json",
            "/.well-known/oauth-protected-resource/mcp/default",
        ] {
            assert!(is_public(public), "{public}");
        }
        for private in [
            "/v1/tenants",
            "/v1/openapi.json/x",
            "/a2a/default/echo",
            "/a2a/default/echo/message:send",
            "/mcp/default",
            "/healthz/",
            "/",
        ] {
            assert!(!is_public(private), "{private}");
        }
    }
}
