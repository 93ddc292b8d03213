//! The NexusCore HTTP API.
//!
//! [`router`] builds the whole application: the routes (one module per resource under
//! [`routes`]), the OpenAPI document generated from the handlers, and the gateway layers.
//! Every error leaves as `application/problem+json` through [`error::ApiError`].
//!
//! Layer order, outermost first (see [`router`]): security headers → request id → trace span →
//! panic catcher → metrics → the cross-site gate (`Host`, `Origin`, CORS: [`origin`]) → timeout
//! → body limit → authentication (with rate limits and admission: the node's, the tenant's and
//! the principal's shares of requests in flight, see `admission`) → routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::get;
use nexus_core::{Caller, ErrorCode};
use nexus_telemetry::MetricsHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod admission;
mod authn;
mod cors;
pub mod error;
pub mod extract;
mod middleware;
mod origin;
mod ratelimit;
pub mod routes;

pub use authn::is_public;
pub use error::{ApiError, PROBLEM_JSON, Problem};

/// Header carrying the request id, generated when the client sends none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Shared state of every handler. It holds no store: every operation on tenant data goes
/// through the control plane, with the request's [`Caller`].
#[derive(Clone, Debug)]
pub struct AppState {
    pub control: Arc<nexus_control::ControlPlane>,
    pub metrics: MetricsHandle,
}

/// One request's handle on the platform: the control plane and the authenticated caller it
/// acts for. Extracting it from a request without a caller (no authentication layer ran) is
/// `unauthenticated`.
#[derive(Clone, Debug)]
pub struct Scope {
    pub control: Arc<nexus_control::ControlPlane>,
    pub caller: Caller,
}

impl axum::extract::FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "this request carries no credentials",
            )
        })?;
        Ok(Self {
            control: state.control.clone(),
            caller,
        })
    }
}

/// Request limits enforced by the gateway layers.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Requests in flight at most: on the node, per tenant, per principal (see `admission`).
    pub max_in_flight: usize,
    pub max_in_flight_per_tenant: usize,
    pub max_in_flight_per_principal: usize,
    /// Requests per key and per tenant (after authentication).
    pub rate_limit: nexus_config::RateLimitConfig,
    /// Whether requests must authenticate.
    pub authentication: Authentication,
    /// Which browser origins may call the API (none by default).
    pub cors: nexus_config::CorsConfig,
    /// Host names served besides IP literals and `localhost` (`[server] allowed_hosts`; `*`
    /// for any). Empty by default: the server's own addresses only.
    pub allowed_hosts: Vec<String>,
}

/// Whether the gateway asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authentication {
    /// Every non-public request carries an API key (the default, and the only safe choice).
    #[default]
    Required,
    /// No credentials, no rate limits, no authorization: every request acts as the platform
    /// itself in `tenant`. Only for a server on loopback (benchmarking the gateway's cost,
    /// a laptop alone); the server refuses it on any other address.
    InsecureNone { tenant: nexus_core::TenantId },
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "NexusCore API",
        description = "Control plane of NexusCore, the self-hosted platform for AI agents. \
            Errors are `application/problem+json` bodies with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "tenants", description = "Organisations that own agents, keys and data"),
        (name = "agents", description = "Packages and deployments: agents, revisions, rollback"),
        (name = "access", description = "API keys, policies and the audit log"),
        (name = "tasks", description = "Sending messages to agents; durable tasks and their event logs"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
    components(schemas(Problem, ErrorCode, nexus_api_model::ExportTrailer)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the API key bearer scheme that every route but the public ones requires.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `nexus keys create`"))
                    .build(),
            ),
        );
    }
}

/// The routes with their OpenAPI description, before state and layers.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::health::metrics))
        .routes(routes!(
            routes::tenants::list_tenants,
            routes::tenants::create_tenant
        ))
        .routes(routes!(
            routes::tenants::get_tenant,
            routes::tenants::delete_tenant
        ))
        .routes(routes!(routes::tenants::export_tenant))
        .routes(routes!(routes::users::login))
        .routes(routes!(routes::users::logout))
        .routes(routes!(routes::users::whoami))
        .routes(routes!(routes::users::change_password))
        .routes(routes!(routes::users::reset_password))
        .routes(routes!(
            routes::users::add_member,
            routes::users::list_members
        ))
        .routes(routes!(routes::users::remove_member))
        .routes(routes!(
            routes::teams::create_team,
            routes::teams::list_teams
        ))
        .routes(routes!(routes::teams::delete_team))
        .routes(routes!(routes::teams::add_team_member))
        .routes(routes!(routes::teams::remove_team_member))
        .routes(routes!(
            routes::service_accounts::create_service_account,
            routes::service_accounts::list_service_accounts
        ))
        .routes(routes!(routes::service_accounts::delete_service_account))
        .routes(routes!(routes::keys::create_key, routes::keys::list_keys))
        .routes(routes!(routes::keys::revoke_key))
        .routes(routes!(routes::keys::list_audit))
        .routes(routes!(
            routes::policies::create_policy,
            routes::policies::list_policies
        ))
        .routes(routes!(routes::policies::explain))
        .routes(routes!(routes::policies::delete_policy))
        .routes({
            // Packages are uploaded whole; the package format's own limit bounds them.
            let (schemas, paths, route) = routes!(
                routes::agents::upload_package,
                routes::agents::list_packages
            );
            let route = route.layer(DefaultBodyLimit::max(routes::agents::MAX_PACKAGE_BYTES));
            (schemas, paths, route)
        })
        .routes(routes!(routes::agents::deploy, routes::agents::list_agents))
        .routes(routes!(
            routes::agents::get_agent,
            routes::agents::delete_agent
        ))
        .routes(routes!(routes::agents::rollback))
        .routes(routes!(routes::secrets::list_secrets))
        .routes(routes!(routes::secrets::delete_secret))
        .routes(routes!(
            routes::state::list_state,
            routes::state::clear_state
        ))
        .routes(routes!(routes::state::get_state))
        .routes(routes!(routes::agents::invoke))
        .routes(routes!(routes::tasks::list_tasks))
        .routes(routes!(routes::tasks::get_task))
        .routes(routes!(routes::tasks::task_events))
        .routes(routes!(routes::tasks::cancel_task))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of the API, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// A route outside the OpenAPI document (the document itself and the protocol bindings),
/// with requests that reach it. The router adds no route but the document's and these, so the
/// isolation walk, which calls both, covers every route there is.
pub(crate) struct ExtraRoute {
    pub path: &'static str,
    pub handler: axum::routing::MethodRouter<AppState>,
    /// Requests that reach the route (paths with `{tenant}`-style placeholders); read by the
    /// isolation walk only.
    #[cfg_attr(not(test), allow(dead_code))]
    pub probes: &'static [(axum::http::Method, &'static str)],
}

/// The routes [`router`] adds to the OpenAPI router's; `openapi_json` is the served document.
pub(crate) fn extra_routes(openapi_json: String) -> Vec<ExtraRoute> {
    use axum::http::Method;
    vec![
        ExtraRoute {
            path: "/v1/openapi.json",
            handler: get(move || {
                let body = openapi_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
            probes: &[(Method::GET, "/v1/openapi.json")],
        },
        ExtraRoute {
            path: "/a2a/{tenant}/{agent}/.well-known/agent-card.json",
            handler: get(routes::a2a::card),
            probes: &[(
                Method::GET,
                "/a2a/{tenant}/{agent}/.well-known/agent-card.json",
            )],
        },
        ExtraRoute {
            path: "/a2a/{tenant}/{agent}",
            handler: axum::routing::post(routes::a2a::rpc),
            probes: &[(Method::POST, "/a2a/{tenant}/{agent}")],
        },
        // The same with a trailing slash, as clients that join paths send it.
        ExtraRoute {
            path: "/a2a/{tenant}/{agent}/",
            handler: axum::routing::post(routes::a2a::rpc),
            probes: &[(Method::POST, "/a2a/{tenant}/{agent}/")],
        },
        // The HTTP+JSON binding: every other path under the base, routed by `a2a_rest`
        // (its `tasks/{id}:cancel` segments are no axum captures).
        ExtraRoute {
            path: "/a2a/{tenant}/{agent}/{*path}",
            handler: axum::routing::any(routes::a2a_rest::endpoint),
            probes: &[
                (Method::POST, "/a2a/{tenant}/{agent}/message:send"),
                (Method::POST, "/a2a/{tenant}/{agent}/message:stream"),
                (Method::GET, "/a2a/{tenant}/{agent}/tasks"),
                (Method::GET, "/a2a/{tenant}/{agent}/tasks/{task}"),
                (Method::POST, "/a2a/{tenant}/{agent}/tasks/{task}:cancel"),
                (Method::GET, "/a2a/{tenant}/{agent}/extendedAgentCard"),
            ],
        },
        ExtraRoute {
            path: "/mcp/{tenant}",
            handler: axum::routing::post(routes::mcp::endpoint),
            probes: &[(Method::POST, "/mcp/{tenant}")],
        },
        ExtraRoute {
            path: authn::MCP_RESOURCE_METADATA_ROUTE,
            handler: get(authn::mcp_resource_metadata),
            probes: &[(Method::GET, authn::MCP_RESOURCE_METADATA_ROUTE)],
        },
    ]
}

/// Builds the complete application.
pub fn router(state: AppState, limits: Limits) -> Router {
    let (routes, openapi) = api();
    // Rendered once: the document does not change while the server runs.
    let openapi_json = openapi.to_json().unwrap_or_else(|_| "{}".to_owned());
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);

    let routes = extra_routes(openapi_json)
        .into_iter()
        .fold(routes, |routes, extra| {
            routes.route(extra.path, extra.handler)
        })
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            authn::Gateway {
                control: state.control.clone(),
                rate_limits: ratelimit::RateLimits::new(&limits.rate_limit).map(Arc::new),
                admission: Arc::new(admission::Admission::new(
                    limits.max_in_flight,
                    limits.max_in_flight_per_tenant,
                    limits.max_in_flight_per_principal,
                )),
                anonymous: match limits.authentication {
                    Authentication::Required => None,
                    Authentication::InsecureNone { tenant } => Some(Caller::system(tenant)),
                },
            },
            authn::authenticate,
        ))
        .with_state(state);

    let routes = routes
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(middleware::gateway_error))
                .timeout(limits.request_timeout),
        )
        // The cross-site gate (`Host`, `Origin`, CORS) refuses before admission counts the
        // request, authentication or any handler runs; it answers listed origins'
        // preflights, which carry no credentials. Inside the metrics and request id layers,
        // so its refusals are counted and carry an id.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origin::Gate::new(&limits.allowed_hosts, &limits.cors)),
            origin::check,
        ))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    with_security_headers(routes)
}

/// Headers every response carries: the API serves JSON, never pages, so browsers are told
/// not to sniff, frame, refer or cache it (a handler's own `Cache-Control` wins).
fn with_security_headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Request limits from defaults, for tests and embedding.
impl Default for Limits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
            max_in_flight_per_tenant: 256,
            max_in_flight_per_principal: 128,
            rate_limit: nexus_config::RateLimitConfig::default(),
            authentication: Authentication::Required,
            cors: nexus_config::CorsConfig::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
