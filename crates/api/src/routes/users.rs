//! `/v1/login`, `/v1/logout`, `/v1/whoami` and `/v1/tenants/{tenant}/members`: user accounts,
//! password logins and the memberships that give users a role in a tenant.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use nexus_control::{LoginRequest, NewMemberRequest, Session, TenantRef, WhoAmI};
use nexus_core::identity::Role;
use nexus_core::{ErrorCode, Membership, Name, Page};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::tenants::{ListParams, resolve_tenant};
use crate::{AppState, Scope};

/// Body of `POST /v1/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(example = "alice")]
    pub name: String,
    pub password: String,
    /// Tenant name or id to act in; may be left out when the user belongs to one tenant.
    pub tenant: Option<String>,
}

/// Log in with a user name and password: opens a session whose token (shown once) is sent as
/// `Authorization: Bearer`. Wrong names, passwords and tenants are all the same 401.
#[utoipa::path(post, path = "/v1/login", tag = "access", request_body = Login,
    responses(
        (status = 201, description = "A session; the token is in this response only", body = Session),
        (status = 401, description = "Wrong user name or password", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "Too many logins at once", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = match body.tenant {
        Some(tenant) => Some(TenantRef::parse(&tenant).map_err(|e| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                format!("tenant: must be a tenant name or id: {e}"),
            )
        })?),
        None => None,
    };
    let session = state
        .control
        .login(LoginRequest {
            name: body.name,
            password: body.password,
            tenant,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// End the session whose token authenticates this request.
#[utoipa::path(post, path = "/v1/logout", tag = "access",
    responses(
        (status = 204, description = "The session is over"),
        (status = 422, description = "Not a login session (API keys are revoked instead)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(state: Scope, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let credential = nexus_auth::bearer(
        headers
            .get(header::AUTHORIZATION)
            .map(axum::http::HeaderValue::as_bytes),
    )
    .map_err(|_| ApiError::new(ErrorCode::Unauthenticated, "no bearer credential"))?;
    state.control.logout(&state.caller, credential).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the credential of this request stands for: tenant, principal and role.
#[utoipa::path(get, path = "/v1/whoami", tag = "access",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub async fn whoami(state: Scope) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(state.control.whoami(&state.caller).await?))
}

/// Body of `POST /v1/tenants/{tenant}/members`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's login name: lowercase letters, digits and `-`.
    #[schema(example = "alice")]
    pub name: String,
    pub role: Role,
    /// Creates the account with this password (at least 12 characters); leave it out to add
    /// an existing account or change a member's role.
    pub password: Option<String>,
    pub display_name: Option<String>,
}

/// Add a member: a new account (with a password) or an existing one; for a member already,
/// this changes the role and ends their sessions in the tenant.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/members", tag = "access", request_body = AddMember,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "The membership", body = Membership),
        (status = 403, description = "The caller may not grant that role", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "A password was given for an existing account", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Bad name, weak password, or no such account", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn add_member(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<AddMember>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = Name::parse(&body.name)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("name: {e}")))?;
    let membership = state
        .control
        .add_member(
            &state.caller,
            tenant.id,
            NewMemberRequest {
                name,
                role: body.role,
                password: body.password,
                display_name: body.display_name,
            },
        )
        .await?;
    let location = format!(
        "/v1/tenants/{}/members/{}",
        tenant.name, membership.user.name
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(membership),
    ))
}

/// List the tenant's members by name.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/members", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"), ListParams),
    responses((status = 200, description = "A page of members", body = Page<Membership>)))]
pub async fn list_members(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Membership>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_members(&state.caller, tenant.id, params.page())
            .await?,
    ))
}

/// Remove a member from the tenant and end their sessions there; the account stays.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/members/{user}", tag = "access",
    params(("tenant" = String, Path, description = "Tenant name or id"),
        ("user" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "The membership that ended", body = Membership),
        (status = 404, description = "Not a member", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn remove_member(
    state: Scope,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<Membership>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = Name::parse(&user)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`user`: {e}")))?;
    Ok(Json(
        state
            .control
            .remove_member(&state.caller, tenant.id, &name)
            .await?,
    ))
}

/// Passwords never reach logs, not even through `Debug`.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AddMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddMember")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// Body of `POST /v1/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword").finish_non_exhaustive()
    }
}

/// Change your own password (a login session). Ends all your sessions, this one too.
#[utoipa::path(post, path = "/v1/password", tag = "access", request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; log in again"),
        (status = 403, description = "The current password is wrong", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Not a login session, or a weak new password", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    state: Scope,
    Json(body): Json<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .change_password(&state.caller, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/users/{user}/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// At least 12 characters.
    pub new_password: String,
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword").finish_non_exhaustive()
    }
}

/// Set a user's password (platform admins: accounts span tenants). Ends all its sessions.
#[utoipa::path(post, path = "/v1/users/{user}/password", tag = "access", request_body = ResetPassword,
    params(("user" = String, Path, description = "User name")),
    responses(
        (status = 204, description = "Set"),
        (status = 403, description = "Not a platform admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn reset_password(
    state: Scope,
    Path(user): Path<String>,
    Json(body): Json<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    let name = Name::parse(&user)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`user`: {e}")))?;
    state
        .control
        .reset_password(&state.caller, &name, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
