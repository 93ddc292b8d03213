//! `/v1/tenants/{tenant}/service-accounts`: machine identities whose keys act as them.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::CreateServiceAccount;
use nexus_core::{ErrorCode, Name, ServiceAccount};

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path};
use crate::routes::tenants::resolve_tenant;

/// Create a service account; make its keys with `POST …/keys` and `service_account`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/service-accounts", tag = "access",
    request_body = CreateServiceAccount,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "The account", body = ServiceAccount),
        (status = 403, description = "The role is above the caller's", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create_service_account(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<CreateServiceAccount>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = Name::parse(&body.name)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("name: {e}")))?;
    let account = state
        .control
        .create_service_account(&state.caller, tenant.id, name, body.role, body.description)
        .await?;
    let location = format!(
        "/v1/tenants/{}/service-accounts/{}",
        tenant.name, account.name
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(account),
    ))
}

/// List the tenant's service accounts.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/service-accounts", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses((status = 200, description = "The accounts by name", body = Vec<ServiceAccount>)))]
pub async fn list_service_accounts(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<ServiceAccount>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_service_accounts(&state.caller, tenant.id)
            .await?,
    ))
}

/// Delete a service account and all its keys.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/service-accounts/{account}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"),
        ("account" = String, Path, description = "Service account name")),
    responses(
        (status = 200, description = "The deleted account", body = ServiceAccount),
        (status = 404, description = "No such account", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn delete_service_account(
    state: Scope,
    Path((tenant, account)): Path<(String, String)>,
) -> Result<Json<ServiceAccount>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let account = Name::parse(&account)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`account`: {e}")))?;
    Ok(Json(
        state
            .control
            .delete_service_account(&state.caller, tenant.id, &account)
            .await?,
    ))
}
