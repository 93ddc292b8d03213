//! `/v1/tenants`: the organisations that own everything else.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_control::TenantRef;
use nexus_core::{Cursor, ErrorCode, Name, Page, PageRequest, Tenant};
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and `-`, starting with a letter; at most 63 characters.
    #[schema(example = "acme")]
    pub name: String,
    /// Name for people; defaults to `name`.
    #[schema(example = "Acme Corp")]
    pub display_name: Option<String>,
}

/// Paging parameters of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

impl ListParams {
    /// The page these parameters ask for.
    pub fn page(self) -> PageRequest {
        PageRequest::after(
            self.after.map(Cursor),
            self.limit.unwrap_or(nexus_core::page::DEFAULT_PAGE_SIZE),
        )
    }
}

/// List tenants, oldest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses(
        (status = 200, description = "A page of tenants", body = Page<Tenant>),
        (status = 400, description = "Invalid paging parameter", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn list_tenants(
    state: Scope,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    Ok(Json(
        state
            .control
            .list_tenants(&state.caller, params.page())
            .await?,
    ))
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 409, description = "The name is taken", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or body", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create_tenant(
    state: Scope,
    Json(body): Json<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let name = Name::parse(&body.name)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("name: {e}")))?;
    let tenant = state
        .control
        .create_tenant(&state.caller, name, body.display_name)
        .await?;
    let location = format!("/v1/tenants/{}", tenant.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(tenant),
    ))
}

/// Get a tenant by name or id.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name or id", example = "default")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 400, description = "Not a valid name or id", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_tenant(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(resolve_tenant(&state, &tenant).await?))
}

/// Finds a tenant by id (a UUID) or by name, if the caller may see it.
pub async fn resolve_tenant(state: &Scope, name_or_id: &str) -> Result<Tenant, ApiError> {
    let reference = TenantRef::parse(name_or_id).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`tenant` must be a tenant name or id: {e}"),
        )
    })?;
    Ok(state.control.tenant(&state.caller, &reference).await?)
}
