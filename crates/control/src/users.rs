//! User accounts and logins: people who sign in with a password (`nexus login`) and act in a
//! tenant with the role of their membership.
//!
//! A login checks the password (argon2id, off the async threads, at most
//! [`MAX_CONCURRENT_PASSWORD_CHECKS`] at once) and opens a session: an API key naming the
//! user, with the highest role of its membership and its teams (`teams`), expiring after [`SESSION_TTL`]. Sessions authenticate like
//! any key (the same cache, revocation and audit); changing or ending a membership revokes the
//! user's sessions in that tenant, and `logout` revokes the one presented.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nexus_auth::password;
use nexus_core::identity::Role;
use nexus_core::{
    ApiKeyId, Caller, Membership, Name, NewApiKey, NewUser, Page, PageRequest, Principal, Tenant,
    TenantId, User, UserId,
};
use nexus_store::StoreError;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::{Action, ControlError, ControlPlane, TenantRef, audit};

/// How long a login lasts: a working day, after which the CLI asks for the password again.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Password checks running at once. Each costs ~20 ms of one core and 19 MiB: this bounds
/// what a flood of logins can take from the node (the rest wait, up to [`PASSWORD_QUEUE_WAIT`]).
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 2;
/// How long a login waits for a password check slot before it is refused as overloaded.
pub const PASSWORD_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Logins that may wait for a password check slot; past this a login is refused at once, so a
/// flood of logins cannot hold the server's request slots (`max_in_flight`) for other callers.
pub const MAX_QUEUED_PASSWORD_CHECKS: usize = 16;
/// Longest display name of a user, in characters.
pub const MAX_USER_DISPLAY_NAME_LEN: usize = 200;

/// What `login` answers to a wrong name, a wrong password or an account without that tenant
/// alike, so a guess learns nothing.
const LOGIN_REFUSED: &str = "wrong user name or password";

/// Bounds concurrent password hashing (see [`MAX_CONCURRENT_PASSWORD_CHECKS`]) and the logins
/// waiting for it (see [`MAX_QUEUED_PASSWORD_CHECKS`]).
#[derive(Debug)]
pub(crate) struct PasswordChecks {
    slots: Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self {
            slots: Semaphore::new(MAX_CONCURRENT_PASSWORD_CHECKS),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl PasswordChecks {
    /// A password check slot: at once if one is free, else after waiting in a bounded queue,
    /// else `Overloaded`.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ControlError> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let overloaded =
            || ControlError::Overloaded("too many logins at once; try again in a moment".into());
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_PASSWORD_CHECKS {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(overloaded());
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(PASSWORD_QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ControlError::Internal("password checks closed".into())),
            Err(_) => Err(overloaded()),
        }
    }
}

/// Counts a waiting login while it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Adding someone to a tenant: a new account (with a password) or an existing one (without).
#[derive(Debug, Clone)]
pub struct NewMemberRequest {
    pub name: Name,
    pub role: Role,
    /// Creates the account with this password; absent: the account must exist.
    pub password: Option<String>,
    pub display_name: Option<String>,
}

/// A login attempt.
#[derive(Clone)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
    /// The tenant to act in; may be left out when the account belongs to one tenant only.
    pub tenant: Option<TenantRef>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// An open session: the token to send as `Authorization: Bearer`, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub tenant: Tenant,
    pub user: User,
    pub role: Role,
    /// The user's teams in the tenant, which policies can name.
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<Name>,
}

/// Who the caller is, as the platform sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub tenant: Tenant,
    /// `key:<id>`, `user:<name>`, `oidc:<subject>`, `agent:<id>` or `system`.
    pub principal: String,
    pub role: Role,
    pub platform_admin: bool,
    /// The caller's teams in its tenant (a login session's or an OIDC token's).
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<Name>,
}

impl ControlPlane {
    /// Adds a member to `tenant`: creates the account when a password is given, or adds an
    /// existing account (changing its role if it is a member already). A caller cannot hand
    /// out a role above its own.
    pub async fn add_member(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: NewMemberRequest,
    ) -> Result<Membership, ControlError> {
        self.authorize(caller, tenant, Action::MemberWrite).await?;
        if !caller.platform_admin && request.role > caller.role {
            return Err(ControlError::Denied(format!(
                "a `{}` cannot make someone `{}`",
                caller.role, request.role
            )));
        }
        let name = request.name;
        // Changing someone's role is changing what they hold: not above the caller's own.
        self.check_outranks(caller, tenant, &name).await?;
        let event = audit::event(
            caller,
            "member.put",
            format!("users/{name}"),
            serde_json::json!({ "role": request.role, "new_account": request.password.is_some() }),
        );
        let membership = match request.password {
            Some(password) => {
                password::check_password(&password)
                    .map_err(|e| ControlError::Invalid(format!("password: {e}")))?;
                let display_name = request.display_name.unwrap_or_else(|| name.to_string());
                check_display_name(&display_name)?;
                let password_hash = self.hash_password(password).await?;
                let new = NewUser {
                    id: UserId::new(),
                    name: name.clone(),
                    display_name,
                    password_hash,
                };
                match self
                    .store
                    .create_user(tenant, new, request.role, event)
                    .await
                {
                    Err(StoreError::AlreadyExists { .. }) => {
                        return Err(ControlError::Conflict(format!(
                            "a user named `{name}` exists; add them without a password"
                        )));
                    }
                    other => other?,
                }
            }
            None => {
                // Accounts span tenants: bringing one in from elsewhere is a platform admin's
                // act, so a tenant's admin can neither attach someone without their consent nor
                // learn which names exist. Changing a member's role is the tenant's own business.
                if !caller.platform_admin && !self.is_member(tenant, &name).await? {
                    return Err(ControlError::Denied(format!(
                        "`{name}` is not a member here; only a platform admin adds an existing \
                         account to a tenant (give a password to create a new account)"
                    )));
                }
                self.put_existing_member(tenant, &name, request.role, event)
                    .await?
            }
        };
        self.keys.forget_user(membership.user.id);
        Ok(membership)
    }

    /// Whether the account `name` is a member of `tenant`.
    async fn is_member(&self, tenant: TenantId, name: &Name) -> Result<bool, ControlError> {
        let Some((user, _)) = self.store.find_user(name).await? else {
            return Ok(false);
        };
        let memberships = self.store.user_memberships(user.id).await?;
        Ok(memberships.iter().any(|m| m.tenant_id == tenant))
    }

    async fn put_existing_member(
        &self,
        tenant: TenantId,
        name: &Name,
        role: Role,
        event: nexus_core::NewAuditEvent,
    ) -> Result<Membership, ControlError> {
        Ok(
            match self.store.put_membership(tenant, name, role, event).await {
                Err(StoreError::NotFound { .. }) => {
                    return Err(ControlError::Invalid(format!(
                        "there is no user named `{name}`; give a password to create the account"
                    )));
                }
                other => other?,
            },
        )
    }

    /// The tenant's members, by name.
    pub async fn list_members(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<Membership>, ControlError> {
        self.authorize(caller, tenant, Action::MemberList).await?;
        Ok(self.store.list_members(tenant, page).await?)
    }

    /// Removes a member from `tenant` and ends its sessions there; the account stays.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Membership, ControlError> {
        self.authorize(caller, tenant, Action::MemberWrite).await?;
        self.check_outranks(caller, tenant, name).await?;
        let event = audit::event(
            caller,
            "member.remove",
            format!("users/{name}"),
            serde_json::Value::Null,
        );
        let removed = self.store.remove_membership(tenant, name, event).await?;
        self.keys.forget_user(removed.user.id);
        Ok(removed)
    }

    /// Checks a user's password and opens a session in the tenant asked for (or the only one
    /// the account belongs to). Every outcome about a known account is audited in the tenant
    /// concerned: `user.login` or `auth.login_failed`.
    pub async fn login(&self, request: LoginRequest) -> Result<Session, ControlError> {
        let refused = || ControlError::Unauthenticated(LOGIN_REFUSED.into());
        let name = Name::parse(&request.name).ok();
        let account = match &name {
            Some(name) => self.store.find_user(name).await?,
            None => None,
        };
        let stored_hash = account.as_ref().map_or_else(
            || password::decoy_hash().to_owned(),
            |(_, hash)| hash.clone(),
        );
        let matches = self
            .verify_password(request.password.clone(), stored_hash)
            .await?;
        let Some((user, _)) = account else {
            metrics::counter!("nexus_auth_failures_total", "reason" => "unknown_user").increment(1);
            self.record_auth_failure("unknown_user").await;
            return Err(refused());
        };
        let memberships = self.store.user_memberships(user.id).await?;
        let wanted = match &request.tenant {
            Some(reference) => Some(self.resolve_tenant_ref(reference).await?),
            None => None,
        };
        if !matches {
            metrics::counter!("nexus_auth_failures_total", "reason" => "wrong_password")
                .increment(1);
            for membership in &memberships {
                if wanted.is_none_or(|t| t == membership.tenant_id) {
                    self.audit_login_failure(membership.tenant_id, &user).await;
                }
            }
            return Err(refused());
        }
        let membership = match wanted {
            Some(tenant) => memberships
                .into_iter()
                .find(|m| m.tenant_id == tenant)
                .ok_or_else(refused)?,
            None => match memberships.len() {
                0 => {
                    return Err(ControlError::Denied(format!(
                        "user `{}` is not a member of any tenant",
                        user.name
                    )));
                }
                1 => memberships.into_iter().next().ok_or_else(refused)?,
                _ => {
                    let mut names = Vec::new();
                    for m in &memberships {
                        names.push(self.store.get_tenant(m.tenant_id).await?.name.to_string());
                    }
                    return Err(ControlError::Invalid(format!(
                        "user `{}` belongs to several tenants ({}); say which one",
                        user.name,
                        names.join(", ")
                    )));
                }
            },
        };
        // The role is the highest of the membership's and the user's teams' there.
        let teams = self.store.user_teams(membership.tenant_id, user.id).await?;
        let role = teams
            .iter()
            .map(|(_, role)| *role)
            .fold(membership.role, std::cmp::max);
        let teams = teams.into_iter().map(|(team, _)| team).collect();
        self.open_session(user, Membership { role, ..membership }, teams)
            .await
    }

    async fn open_session(
        &self,
        user: User,
        membership: Membership,
        teams: Vec<Name>,
    ) -> Result<Session, ControlError> {
        let tenant = self.store.get_tenant(membership.tenant_id).await?;
        let secret =
            nexus_auth::generate_key().map_err(|e| ControlError::Internal(e.to_string()))?;
        let expires_at = nexus_core::page::now() + SESSION_TTL;
        let new = NewApiKey {
            id: ApiKeyId::new(),
            name: user.name.to_string(),
            role: membership.role,
            platform_admin: false,
            prefix: secret.prefix,
            secret_hash: secret.hash,
            created_by: format!("user:{}", user.name),
            expires_at: Some(expires_at),
            user_id: Some(user.id),
            service_account: None,
            teams: teams.clone(),
        };
        let event = nexus_core::NewAuditEvent {
            actor: format!("user:{}", user.name),
            action: "user.login".into(),
            target: format!("users/{}", user.name),
            details: serde_json::json!({ "session": new.id, "role": membership.role }),
        };
        self.store.create_api_key(tenant.id, new, event).await?;
        Ok(Session {
            token: secret.secret,
            expires_at,
            tenant,
            user,
            role: membership.role,
            teams,
        })
    }

    /// Ends the session whose token is `credential`; the caller must be its user.
    pub async fn logout(&self, caller: &Caller, credential: &str) -> Result<(), ControlError> {
        let Principal::Account { id: user, name } = &caller.principal else {
            return Err(ControlError::Invalid(
                "only a login session can log out; revoke API keys with `nexus keys revoke`".into(),
            ));
        };
        let hash = nexus_auth::hash_key(credential);
        let Some(key) = self.store.find_api_key_by_hash(&hash).await? else {
            return Err(ControlError::Unauthenticated(
                "the session is not known".into(),
            ));
        };
        if key.user_id != Some(*user) || key.tenant_id != caller.tenant {
            return Err(ControlError::Unauthenticated(
                "the session is not this caller's".into(),
            ));
        }
        let event = audit::event(
            caller,
            "user.logout",
            format!("users/{name}"),
            serde_json::json!({ "session": key.id }),
        );
        self.store
            .revoke_api_key(key.tenant_id, key.id, event)
            .await?;
        self.keys.forget(key.id);
        Ok(())
    }

    /// Who the caller is. Needs no permission beyond being authenticated.
    pub async fn whoami(&self, caller: &Caller) -> Result<WhoAmI, ControlError> {
        Ok(WhoAmI {
            tenant: self.store.get_tenant(caller.tenant).await?,
            principal: caller.principal.id(),
            role: caller.role,
            platform_admin: caller.platform_admin,
            teams: caller.teams.clone(),
        })
    }

    async fn resolve_tenant_ref(&self, reference: &TenantRef) -> Result<TenantId, ControlError> {
        let found = match reference {
            TenantRef::Id(id) => self.store.get_tenant(*id).await,
            TenantRef::Name(name) => self.store.get_tenant_by_name(name).await,
        };
        match found {
            Ok(tenant) => Ok(tenant.id),
            // As for a wrong password: an unknown tenant tells a guesser nothing.
            Err(StoreError::NotFound { .. }) => {
                Err(ControlError::Unauthenticated(LOGIN_REFUSED.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses to change or remove a member whose role in `tenant` (its own, or a team's) is
    /// above the caller's: an admin cannot demote or remove an owner.
    pub(crate) async fn check_outranks(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<(), ControlError> {
        if caller.platform_admin {
            return Ok(());
        }
        let Some((user, _)) = self.store.find_user(name).await? else {
            return Ok(());
        };
        let own = self
            .store
            .user_memberships(user.id)
            .await?
            .into_iter()
            .find(|m| m.tenant_id == tenant)
            .map(|m| m.role);
        let Some(own) = own else {
            return Ok(());
        };
        let held = self
            .store
            .user_teams(tenant, user.id)
            .await?
            .into_iter()
            .map(|(_, role)| role)
            .fold(own, std::cmp::max);
        if held > caller.role {
            return Err(ControlError::Denied(format!(
                "`{name}` is `{held}` here; a `{}` cannot change or remove them",
                caller.role
            )));
        }
        Ok(())
    }

    pub(crate) async fn audit_login_failure(&self, tenant: TenantId, user: &User) {
        let event = nexus_core::NewAuditEvent {
            actor: format!("user:{}", user.name),
            action: "auth.login_failed".into(),
            target: format!("users/{}", user.name),
            details: serde_json::json!({ "reason": "wrong password" }),
        };
        if let Err(e) = self.store.append_audit(tenant, event).await {
            tracing::warn!(error = %e, "a failed login could not be audited");
        }
    }

    pub(crate) async fn hash_password(&self, password: String) -> Result<String, ControlError> {
        let _permit = self.password_slot().await?;
        tokio::task::spawn_blocking(move || password::hash_password(&password))
            .await
            .map_err(|e| ControlError::Internal(format!("password hashing crashed: {e}")))?
            .map_err(|e| ControlError::Internal(e.to_string()))
    }

    pub(crate) async fn verify_password(
        &self,
        password: String,
        stored: String,
    ) -> Result<bool, ControlError> {
        let _permit = self.password_slot().await?;
        tokio::task::spawn_blocking(move || password::verify_password(&password, &stored))
            .await
            .map_err(|e| ControlError::Internal(format!("password check crashed: {e}")))
    }

    async fn password_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ControlError> {
        self.password_checks.slot().await
    }
}

fn check_display_name(display_name: &str) -> Result<(), ControlError> {
    let len = display_name.chars().count();
    if display_name.trim().is_empty()
        || len > MAX_USER_DISPLAY_NAME_LEN
        || display_name.chars().any(char::is_control)
    {
        return Err(ControlError::Invalid(format!(
            "display_name: must be 1 to {MAX_USER_DISPLAY_NAME_LEN} characters, not blank, without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;

    /// With every slot taken and the queue full, one more login is refused at once instead of
    /// holding a request slot for seconds.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let checks = Arc::new(PasswordChecks::default());
        let held: Vec<_> = (0..MAX_CONCURRENT_PASSWORD_CHECKS)
            .map(|_| checks.slots.try_acquire().unwrap())
            .collect();
        let mut queued = Vec::new();
        for _ in 0..MAX_QUEUED_PASSWORD_CHECKS {
            let checks = checks.clone();
            queued.push(tokio::spawn(async move { checks.slot().await.map(|_| ()) }));
        }
        // Wait until every queued login is counted (they are scheduled, not timed).
        while checks.waiting.load(Ordering::Relaxed) < MAX_QUEUED_PASSWORD_CHECKS {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            checks.slot().await,
            Err(ControlError::Overloaded(_))
        ));
        // Freeing the slots lets the queue through.
        drop(held);
        for login in queued {
            login.await.unwrap().unwrap();
        }
        assert_eq!(checks.waiting.load(Ordering::Relaxed), 0);
        assert!(checks.slot().await.is_ok());
    }
}
