//! `/v1/login`, `/v1/whoami`, `/v1/password` and `/v1/users/{user}/password`: sessions, the
//! caller, and passwords.

use chrono::{DateTime, Utc};
use nexus_core::identity::Role;
use nexus_core::{Name, Tenant, User};
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/login`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(example = "alice")]
    pub name: String,
    pub password: String,
    /// Tenant name or id to act in; may be left out when the user belongs to one tenant.
    pub tenant: Option<String>,
}

/// An open session: the token to send as `Authorization: Bearer`, shown once.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub tenant: Tenant,
    pub user: User,
    pub role: Role,
    /// The user's teams in the tenant, which policies can name.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<Name>,
}

/// Who the caller is, as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub tenant: Tenant,
    /// `key:<id>`, `user:<name>`, `oidc:<subject>`, `agent:<id>` or `system`.
    pub principal: String,
    pub role: Role,
    pub platform_admin: bool,
    /// The caller's teams in its tenant (a login session's or an OIDC token's).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<Name>,
}

/// Body of `POST /v1/password`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

/// Body of `POST /v1/users/{user}/password`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// At least 12 characters.
    pub new_password: String,
}

// Passwords and tokens never reach logs, not even through `Debug`.

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .field("tenant", &self.tenant)
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_passwords() {
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            Login {
                name: "alice".into(),
                password: "pw-login".into(),
                tenant: None,
            },
            ChangePassword {
                current_password: "pw-current".into(),
                new_password: "pw-new".into(),
            },
            ResetPassword {
                new_password: "pw-reset".into(),
            },
            crate::AddMember {
                name: "bob".into(),
                role: Role::Viewer,
                password: Some("pw-member".into()),
                display_name: None,
            },
        );
        assert!(shown.contains("alice") && shown.contains("bob"), "{shown}");
        assert!(!shown.contains("pw-"), "{shown}");
    }
}
