//! `/v1/tenants/{tenant}/keys` and `/audit`: API keys (shown once, listed without secrets,
//! revoked) and the tenant's audit chain.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{CreateKey, CreatedKeyBody};
use nexus_control::NewKeyRequest;
use nexus_core::{ApiKey, ApiKeyId, AuditEvent, ErrorCode, Name, Page};
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::tenants::{ListParams, resolve_tenant};

/// Create an API key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "access", request_body = CreateKey,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "Created; the secret is in this response only", body = CreatedKeyBody),
        (status = 403, description = "The caller may not create such a key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let created = match (body.role, body.service_account) {
        (Some(role), None) => {
            state
                .control
                .create_key(
                    &state.caller,
                    tenant.id,
                    NewKeyRequest {
                        name: body.name,
                        role,
                        platform_admin: body.platform_admin,
                        expires_at: body.expires_at,
                    },
                )
                .await?
        }
        (None, Some(account)) if !body.platform_admin => {
            let account = Name::parse(&account).map_err(|e| {
                ApiError::new(ErrorCode::ValidationFailed, format!("service_account: {e}"))
            })?;
            state
                .control
                .create_service_key(
                    &state.caller,
                    tenant.id,
                    &account,
                    body.name,
                    body.expires_at,
                )
                .await?
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "give either `role` or `service_account` (a service account's key has its \
                 role and no platform rights)",
            ));
        }
    };
    let location = format!("/v1/tenants/{}/keys/{}", tenant.name, created.key.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CreatedKeyBody {
            key: created.key,
            secret: created.secret,
        }),
    ))
}

/// List API keys (without their secrets), revoked ones included.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"), ListParams),
    responses((status = 200, description = "A page of keys", body = Page<ApiKey>)))]
pub async fn list_keys(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_keys(&state.caller, tenant.id, params.page())
            .await?,
    ))
}

/// Revoke an API key: refused from the next request on.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/keys/{key}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("key" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Revoked", body = ApiKey),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(
    state: Scope,
    Path((tenant, key)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let id: ApiKeyId = key.parse().map_err(|e: nexus_core::IdParseError| {
        ApiError::new(ErrorCode::InvalidParameter, e.to_string())
    })?;
    Ok(Json(
        state
            .control
            .revoke_key(&state.caller, tenant.id, id)
            .await?,
    ))
}

/// Paging of the audit chain.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events after this sequence number (default 0: from the start).
    pub after: Option<u64>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<u32>,
}

/// The tenant's audit events, oldest first: who changed what, every denial.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"), AuditParams),
    responses((status = 200, description = "Events in chain order", body = Vec<AuditEvent>)))]
pub async fn list_audit(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_audit(
                &state.caller,
                tenant.id,
                params.after.unwrap_or(0),
                params.limit.unwrap_or(nexus_control::MAX_AUDIT_PAGE),
            )
            .await?,
    ))
}
