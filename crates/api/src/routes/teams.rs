//! `/v1/tenants/{tenant}/teams`: groups of members that give each of them the team's role.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{AddTeamMember, CreateTeam};
use nexus_core::{ErrorCode, Name, Team};

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path};
use crate::routes::tenants::resolve_tenant;

fn name_of(what: &str, value: &str) -> Result<Name, ApiError> {
    Name::parse(value)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("{what}: {e}")))
}

fn path_name(what: &str, value: &str) -> Result<Name, ApiError> {
    Name::parse(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`{what}`: {e}")))
}

/// Create a team.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/teams", tag = "access", request_body = CreateTeam,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "The team, without members", body = Team),
        (status = 403, description = "The role is above the caller's", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create_team(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<CreateTeam>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = name_of("name", &body.name)?;
    let team = state
        .control
        .create_team(&state.caller, tenant.id, name, body.role)
        .await?;
    let location = format!("/v1/tenants/{}/teams/{}", tenant.name, team.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(team),
    ))
}

/// List the tenant's teams with their members.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/teams", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses((status = 200, description = "The teams by name", body = Vec<Team>)))]
pub async fn list_teams(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Team>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state.control.list_teams(&state.caller, tenant.id).await?,
    ))
}

/// Delete a team; its members stay members of the tenant with their own role.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/teams/{team}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"),
        ("team" = String, Path, description = "Team name")),
    responses(
        (status = 200, description = "The deleted team", body = Team),
        (status = 404, description = "No such team", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn delete_team(
    state: Scope,
    Path((tenant, team)): Path<(String, String)>,
) -> Result<Json<Team>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let team = path_name("team", &team)?;
    Ok(Json(
        state
            .control
            .delete_team(&state.caller, tenant.id, &team)
            .await?,
    ))
}

/// Add a member of the tenant to a team.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/teams/{team}/members", tag = "access",
    request_body = AddTeamMember,
    params(("tenant" = String, Path, description = "Tenant name or id"),
        ("team" = String, Path, description = "Team name")),
    responses(
        (status = 200, description = "The team", body = Team),
        (status = 404, description = "No such team, or the user is not a member of the tenant",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_team_member(
    state: Scope,
    Path((tenant, team)): Path<(String, String)>,
    Json(body): Json<AddTeamMember>,
) -> Result<Json<Team>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let team = path_name("team", &team)?;
    let user = name_of("name", &body.name)?;
    Ok(Json(
        state
            .control
            .set_team_member(&state.caller, tenant.id, &team, &user, true)
            .await?,
    ))
}

/// Remove a member from a team.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/teams/{team}/members/{user}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"),
        ("team" = String, Path, description = "Team name"),
        ("user" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "The team", body = Team),
        (status = 404, description = "No such team or team member", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn remove_team_member(
    state: Scope,
    Path((tenant, team, user)): Path<(String, String, String)>,
) -> Result<Json<Team>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let team = path_name("team", &team)?;
    let user = path_name("user", &user)?;
    Ok(Json(
        state
            .control
            .set_team_member(&state.caller, tenant.id, &team, &user, false)
            .await?,
    ))
}
