//! `/v1/tenants/{tenant}/agents/{agent}/secrets`: an agent's secrets, by name; values are set
//! by deployments and never shown.

use axum::http::StatusCode;
use nexus_api_model::{SecretInfo, SecretList};

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path};
use crate::routes::agents::parse_name;
use crate::routes::tenants::resolve_tenant;

/// List an agent's secrets: names and when each was set, never values.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}/secrets", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name")),
    responses(
        (status = 200, description = "The agent's secrets, by name", body = SecretList),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_secrets(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
) -> Result<Json<SecretList>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let secrets = state
        .control
        .list_secrets(&state.caller, tenant.id, &parse_name("agent", &agent)?)
        .await?;
    let items = secrets
        .into_iter()
        .map(|nexus_store::SecretInfo { name, updated_at }| SecretInfo { name, updated_at })
        .collect();
    Ok(Json(SecretList { items }))
}

/// Delete one secret of an agent. Its revisions keep the name; tasks no longer see it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/agents/{agent}/secrets/{secret}", tag = "agents",
    params(
        ("tenant" = String, Path, description = "Tenant name or id"),
        ("agent" = String, Path, description = "Agent name"),
        ("secret" = String, Path, description = "Secret name"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such agent or secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_secret(
    state: Scope,
    Path((tenant, agent, secret)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    state
        .control
        .delete_secret(
            &state.caller,
            tenant.id,
            &parse_name("agent", &agent)?,
            &secret,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
