//! `/v1/tenants/{tenant}/policies`: a tenant's Cedar policies on top of the built-in roles,
//! and `explain`, which says whether a key may do something and which policy decided.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{CreatePolicy, ExplainBody, Explanation, PolicyList};
use nexus_control::ExplainRequest;
use nexus_core::{ApiKeyId, ErrorCode, Name, Policy};

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path};
use crate::routes::tenants::resolve_tenant;

fn name(what: &str, value: &str) -> Result<Name, ApiError> {
    Name::parse(value)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("{what}: {e}")))
}

/// Add a policy (admins); it applies from the next request.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/policies", tag = "access", request_body = CreatePolicy,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "Created", body = Policy),
        (status = 409, description = "A policy of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not one Cedar policy", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_policy(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<CreatePolicy>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let policy = state
        .control
        .create_policy(
            &state.caller,
            tenant.id,
            name("name", &body.name)?,
            body.description,
            body.text,
        )
        .await?;
    let location = format!("/v1/tenants/{}/policies/{}", tenant.name, policy.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(policy),
    ))
}

/// The tenant's policies and the built-in role policies.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/policies", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses((status = 200, description = "The policies", body = PolicyList)))]
pub async fn list_policies(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<Json<PolicyList>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let policies = state
        .control
        .list_policies(&state.caller, tenant.id)
        .await?;
    Ok(Json(PolicyList {
        builtin: state.control.builtin_policies(),
        policies,
    }))
}

/// Remove a policy; it stops applying from the next request.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/policies/{policy}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("policy" = String, Path, description = "Policy name")),
    responses(
        (status = 200, description = "Deleted", body = Policy),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_policy(
    state: Scope,
    Path((tenant, policy)): Path<(String, String)>,
) -> Result<Json<Policy>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let policy = Name::parse(&policy)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`policy`: {e}")))?;
    Ok(Json(
        state
            .control
            .delete_policy(&state.caller, tenant.id, &policy)
            .await?,
    ))
}

/// Whether a key may do an action (on an agent), and which policy decided; changes nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/policies/explain", tag = "access", request_body = ExplainBody,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses((status = 200, description = "The decision and why", body = Explanation)))]
pub async fn explain(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<ExplainBody>,
) -> Result<Json<Explanation>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let key = body
        .key
        .as_deref()
        .map(|key| {
            key.parse::<ApiKeyId>()
                .map_err(|e: nexus_core::IdParseError| {
                    ApiError::new(ErrorCode::ValidationFailed, format!("key: {e}"))
                })
        })
        .transpose()?;
    let agent = body
        .agent
        .as_deref()
        .map(|a| name("agent", a))
        .transpose()?;
    let nexus_control::Explanation {
        allowed,
        principal,
        role,
        action,
        resource,
        policies,
        reason,
        errors,
    } = state
        .control
        .explain(
            &state.caller,
            tenant.id,
            ExplainRequest {
                key,
                action: body.action,
                agent,
            },
        )
        .await?;
    Ok(Json(Explanation {
        allowed,
        principal,
        role,
        action,
        resource,
        policies,
        reason,
        errors,
    }))
}
