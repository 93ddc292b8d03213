//! `/v1/tenants/{tenant}/agents/{agent}/state` (and `/sessions/{session}/state/{key}`): inspecting and clearing an agent's state. Values
//! are sealed at rest; the control plane opens them for those allowed to read them.

use base64::Engine;
use nexus_api_model::{StateCleared, StateEncoding, StateKey, StateKeys, StateValue};
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::agents::parse_name;
use crate::routes::tenants::resolve_tenant;

/// Which state a request is about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// One session (the tasks' context id); all sessions when absent.
    pub session: Option<String>,
    /// Most keys listed (1 to 1000, default 1000).
    pub limit: Option<u32>,
}

/// List the keys of an agent's state, of one session or all; no values.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}/state", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name"), StateParams),
    responses(
        (status = 200, description = "The keys", body = StateKeys),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_state(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
    Query(params): Query<StateParams>,
) -> Result<Json<StateKeys>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let nexus_control::StateListing { keys, more } = state
        .control
        .list_state(
            &state.caller,
            tenant.id,
            &parse_name("agent", &agent)?,
            params.session.as_deref(),
            params.limit.unwrap_or(nexus_control::MAX_STATE_KEYS_LISTED),
        )
        .await?;
    let items = keys
        .into_iter()
        .map(|nexus_control::StateKey { session, key }| StateKey { session, key })
        .collect();
    Ok(Json(StateKeys { items, more }))
}

/// Read one value of an agent's state, in the clear (audited).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}/sessions/{session}/state/{key}", tag = "agents",
    params(
        ("tenant" = String, Path, description = "Tenant name or id"),
        ("agent" = String, Path, description = "Agent name"),
        ("session" = String, Path, description = "The session (the tasks' context id)"),
        ("key" = String, Path, description = "The key"),
    ),
    responses(
        (status = 200, description = "The value", body = StateValue),
        (status = 404, description = "No such agent or key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_state(
    state: Scope,
    Path((tenant, agent, session, key)): Path<(String, String, String, String)>,
) -> Result<Json<StateValue>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let bytes = state
        .control
        .get_state(
            &state.caller,
            tenant.id,
            &parse_name("agent", &agent)?,
            &session,
            &key,
        )
        .await?;
    let (encoding, value) = match String::from_utf8(bytes) {
        Ok(text) => (StateEncoding::Utf8, text),
        Err(e) => (
            StateEncoding::Base64,
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
        ),
    };
    Ok(Json(StateValue {
        session,
        key,
        encoding,
        value,
    }))
}

/// Clear an agent's state: one session's, or all of it (audited).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/agents/{agent}/state", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name"), StateParams),
    responses(
        (status = 200, description = "Cleared", body = StateCleared),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn clear_state(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
    Query(params): Query<StateParams>,
) -> Result<Json<StateCleared>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let deleted = state
        .control
        .clear_state(
            &state.caller,
            tenant.id,
            &parse_name("agent", &agent)?,
            params.session.as_deref(),
        )
        .await?;
    Ok(Json(StateCleared { deleted }))
}
