//! CORS: the browser origins `[server.cors]` names may call the API; any other origin gets no
//! `Access-Control-*` header at all (the gate in [`crate::origin`] refuses it before it gets
//! here). Credentials travel in `Authorization`, never in cookies, so none are allowed, and an
//! origin is always echoed, never `*`.
//!
//! Written here rather than taken from `tower-http`, whose layer answers every `OPTIONS` as a
//! preflight and adds its method and header lists whatever the origin: strict means the lists
//! go to listed origins only.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Methods a browser client may use: those the API has (`PUT` uploads packages).
const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE";

/// Request headers a browser client may send: credentials, bodies, SSE resumption, tracing,
/// and A2A's version. (MCP's headers are not listed: the MCP endpoint refuses every browser
/// page.)
const ALLOWED_HEADERS: &str =
    "authorization, content-type, accept, last-event-id, traceparent, a2a-version";

/// Response headers a browser client may read.
const EXPOSED_HEADERS: &str = "location, retry-after, www-authenticate, x-request-id, \
     ratelimit-limit, ratelimit-remaining, ratelimit-reset, ratelimit-policy";

/// What a response varies on when origins are listed: whether it carries CORS headers.
const VARY: HeaderValue = HeaderValue::from_static("origin");
/// What a preflight answer varies on.
const PREFLIGHT_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The CORS policy of `[server.cors]`: its origins, exactly as browsers send them.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Vec<HeaderValue>,
    max_age: HeaderValue,
}

impl Cors {
    /// The policy for `config`, or `None` when no origin is allowed (the strict default).
    /// Origins that are no header value are left out (the configuration refuses them first).
    pub(crate) fn new(config: &nexus_config::CorsConfig) -> Option<Self> {
        let origins: Vec<HeaderValue> = config
            .allowed_origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        (!origins.is_empty()).then(|| Self {
            origins,
            max_age: HeaderValue::from(config.max_age_secs),
        })
    }

    /// Whether `origin` is listed (byte for byte: browsers serialize origins canonically, and
    /// the configuration only takes canonical ones).
    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins.iter().any(|allowed| allowed == origin)
    }

    /// The answer to a listed origin's preflight, given before authentication (a preflight
    /// carries no credentials).
    pub(crate) fn preflight(&self, origin: &HeaderValue) -> Response {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        headers.append(header::VARY, PREFLIGHT_VARY);
        response
    }

    /// Lets the script of a listed `origin` read `response`.
    pub(crate) fn allow(origin: &HeaderValue, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }

    /// Marks `response` as depending on `Origin`, so no cache hands one origin's answer to
    /// another.
    pub(crate) fn vary(response: &mut Response) {
        response.headers_mut().append(header::VARY, VARY);
    }
}

/// Whether `method` and `headers` make a CORS preflight: `OPTIONS` naming the method to come.
pub(crate) fn is_preflight(method: &Method, headers: &axum::http::HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
