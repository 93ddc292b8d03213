//! `/v1/login`, `/v1/logout`, `/v1/whoami` and `/v1/tenants/{tenant}/members`: user accounts,
//! password logins and the memberships that give users a role in a tenant.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{AddMember, ChangePassword, Login, ResetPassword, Session, WhoAmI};
use nexus_control::{LoginRequest, NewMemberRequest, TenantRef};
use nexus_core::{ErrorCode, Membership, Name, Page};

use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::tenants::{ListParams, resolve_tenant};
use crate::{AppState, Scope};

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
    Ok((StatusCode::CREATED, Json(session_body(session))))
}

/// The wire form of a session; destructured whole, so a new field cannot be left out.
fn session_body(session: nexus_control::Session) -> Session {
    let nexus_control::Session {
        token,
        expires_at,
        tenant,
        user,
        role,
        teams,
    } = session;
    Session {
        token,
        expires_at,
        tenant,
        user,
        role,
        teams,
    }
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
    let nexus_control::WhoAmI {
        tenant,
        principal,
        role,
        platform_admin,
        teams,
    } = state.control.whoami(&state.caller).await?;
    Ok(Json(WhoAmI {
        tenant,
        principal,
        role,
        platform_admin,
        teams,
    }))
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
