//! Who calls: roles, API keys, users of an OIDC issuer and the [`Caller`] every control-plane
//! operation takes first.
//!
//! Authentication (turning a credential into a `Caller`) lives in `nexus-auth`; authorization
//! (deciding what a `Caller` may do) in the control plane. This module is only the vocabulary.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, ApiKeyId, Name, ServiceAccountId, TenantId, UserId};

/// Longest API key label accepted, in characters.
pub const MAX_KEY_NAME_LEN: usize = 100;
/// Longest OIDC subject accepted, in bytes: OpenID Connect Core §2 caps `sub` at 255 ASCII
/// characters.
pub const MAX_SUBJECT_LEN: usize = 255;

/// A built-in role. Each is a Cedar policy set in `nexus-control` (see `authz`); tenants add
/// policies of their own on top.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in the tenant; changes nothing.
    Viewer,
    /// A viewer that also sends messages to agents and cancels tasks.
    Operator,
    /// An operator that also uploads packages, deploys, rolls back and deletes agents.
    Developer,
    /// A developer that also manages keys, policies and reads the audit log.
    Admin,
    /// An admin of the tenant itself (its settings, export, deletion).
    Owner,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Developer,
        Role::Admin,
        Role::Owner,
    ];

    /// The role as it appears on the wire and in policies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Developer => "developer",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of the built-in roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected viewer, operator, developer, admin or owner")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

/// An API key as stored and listed: never the secret, only a recognisable prefix of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    /// A label for people, e.g. `ci` or `laptop`.
    pub name: String,
    pub role: Role,
    /// May manage tenants (create, list all) and act in any tenant: the operator of the
    /// platform. Only the bootstrap key and keys such a key creates with the flag have it.
    pub platform_admin: bool,
    /// The key's first characters, to recognise it (`nxk_AbCd1234`).
    pub prefix: String,
    /// Who created it (a principal id, or `system` for the bootstrap key).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Refused from this instant on; never when absent.
    pub expires_at: Option<DateTime<Utc>>,
    /// Refused from this instant on; set by revocation.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set for a login session: the user account the key stands for (its `name` is the
    /// user's name). Absent for keys made with `nexus keys create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The service account the key belongs to, if any: it acts as that account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_id: Option<ServiceAccountId>,
    /// That account's name (names never change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub service_account: Option<Name>,
    /// For a login session: the user's teams in the tenant when it logged in (team changes
    /// end the user's sessions, so this stays true). Empty for other keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<Name>,
}

impl ApiKey {
    /// Whether the key may authenticate at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// What it takes to store an API key: the hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    pub platform_admin: bool,
    pub prefix: String,
    /// Hex sha256 of the whole key string; unique across tenants.
    pub secret_hash: String,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user account a login session stands for; `None` for other keys.
    pub user_id: Option<UserId>,
    /// The service account the key belongs to (its id and name); `None` for other keys.
    pub service_account: Option<(ServiceAccountId, Name)>,
    /// The teams a login session's user belongs to in the tenant; empty for other keys.
    pub teams: Vec<Name>,
}

impl NewApiKey {
    /// The stored key, created now in `tenant_id`.
    pub fn into_key(self, tenant_id: TenantId) -> ApiKey {
        ApiKey {
            id: self.id,
            tenant_id,
            name: self.name,
            role: self.role,
            platform_admin: self.platform_admin,
            prefix: self.prefix,
            created_by: self.created_by,
            created_at: crate::page::now(),
            expires_at: self.expires_at,
            revoked_at: None,
            user_id: self.user_id,
            service_account_id: self.service_account.as_ref().map(|(id, _)| *id),
            service_account: self.service_account.map(|(_, name)| name),
            teams: self.teams,
        }
    }
}

/// Who acts. Its [`id`](Principal::id) is what audit events and tasks record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A client holding an API key.
    ApiKey { id: ApiKeyId, name: String },
    /// An agent calling another agent (its own principal: policies can restrict it).
    Agent { id: AgentId, name: Name },
    /// A user (or a service) holding a token from the configured OIDC issuer, by the token's
    /// subject (at most [`MAX_SUBJECT_LEN`] bytes).
    User { subject: String },
    /// A user account of this platform, logged in with its password (`nexus login`).
    Account { id: UserId, name: Name },
    /// A service account of a tenant, acting through one of its API keys.
    Service { id: ServiceAccountId, name: Name },
    /// The platform itself: bootstrap, recovery, tests of the control plane.
    System,
}

impl Principal {
    /// A stable id for audit and policies: `key:<uuid>`, `agent:<uuid>`, `oidc:<subject>`,
    /// `user:<name>`, `service:<name>` or `system`.
    pub fn id(&self) -> String {
        match self {
            Self::ApiKey { id, .. } => format!("key:{id}"),
            Self::Agent { id, .. } => format!("agent:{id}"),
            Self::User { subject } => format!("oidc:{subject}"),
            Self::Account { name, .. } => format!("user:{name}"),
            Self::Service { name, .. } => format!("service:{name}"),
            Self::System => "system".to_owned(),
        }
    }
}

/// The authenticated caller of a control-plane operation: the first argument of every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant the principal belongs to; other tenants' resources are "not found" to it
    /// unless it is a platform admin.
    pub tenant: TenantId,
    pub principal: Principal,
    pub role: Role,
    /// May manage tenants and act in every tenant (see [`ApiKey::platform_admin`]).
    pub platform_admin: bool,
    /// W3C trace id of the request, when the client sent a `traceparent`.
    pub trace_id: Option<String>,
    /// The teams of `tenant` the principal belongs to (a login session's user, or an OIDC user
    /// whose token names them); policies match them as `principal in Nexus::Team::"<name>"`.
    pub teams: Vec<Name>,
    /// The address the request came from, when it came over the network (policies see it as
    /// `context.ip`).
    pub client_ip: Option<std::net::IpAddr>,
}

impl Caller {
    /// The platform acting on its own behalf in `tenant`, with every right: bootstrap,
    /// recovery and control-plane tests.
    pub fn system(tenant: TenantId) -> Self {
        Self {
            tenant,
            principal: Principal::System,
            role: Role::Owner,
            platform_admin: true,
            trace_id: None,
            teams: Vec::new(),
            client_ip: None,
        }
    }

    /// The caller authenticated by `key`: the key itself, or the user account whose login
    /// session it is.
    pub fn for_key(key: &ApiKey) -> Self {
        let account = key
            .user_id
            .zip(Name::parse(&key.name).ok())
            .map(|(id, name)| Principal::Account { id, name })
            .or_else(|| {
                key.service_account_id
                    .zip(key.service_account.clone())
                    .map(|(id, name)| Principal::Service { id, name })
            });
        Self {
            tenant: key.tenant_id,
            principal: account.unwrap_or_else(|| Principal::ApiKey {
                id: key.id,
                name: key.name.clone(),
            }),
            role: key.role,
            platform_admin: key.platform_admin,
            trace_id: None,
            teams: key.teams.clone(),
            client_ip: None,
        }
    }

    /// The user `subject` of the OIDC issuer, in `tenant` with `role`, as its token's claims
    /// say. Never a platform admin: platform rights come only with API keys.
    pub fn for_user(tenant: TenantId, subject: String, role: Role) -> Self {
        Self {
            tenant,
            principal: Principal::User { subject },
            role,
            platform_admin: false,
            trace_id: None,
            teams: Vec::new(),
            client_ip: None,
        }
    }

    /// An agent of `tenant` calling other agents from a running task. It acts as an operator
    /// of its tenant (it can send messages to agents), and policies can narrow that.
    pub fn for_agent(tenant: TenantId, agent: &crate::Agent, trace_id: Option<String>) -> Self {
        Self {
            tenant,
            principal: Principal::Agent {
                id: agent.id,
                name: agent.name.clone(),
            },
            role: Role::Operator,
            platform_admin: false,
            trace_id,
            teams: Vec::new(),
            client_ip: None,
        }
    }

    /// The same caller, as a member of `teams`.
    #[must_use]
    pub fn with_teams(mut self, teams: Vec<Name>) -> Self {
        self.teams = teams;
        self
    }

    /// The same caller, from `client_ip`.
    #[must_use]
    pub fn with_client_ip(mut self, client_ip: Option<std::net::IpAddr>) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// The same caller, with the request's trace id.
    #[must_use]
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// Whether this caller may see anything of `tenant` at all.
    pub fn can_reach(&self, tenant: TenantId) -> bool {
        self.platform_admin || self.tenant == tenant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_value(role).ok(),
                Some(serde_json::Value::String(role.as_str().to_owned()))
            );
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn a_key_is_active_until_revoked_or_expired() {
        let now = crate::page::now();
        let mut key = NewApiKey {
            id: ApiKeyId::new(),
            name: "ci".into(),
            role: Role::Viewer,
            platform_admin: false,
            prefix: "nxk_abcdefgh".into(),
            secret_hash: "00".repeat(32),
            created_by: "system".into(),
            expires_at: None,
            user_id: None,
            service_account: None,
            teams: Vec::new(),
        }
        .into_key(TenantId::new());
        assert!(key.is_active(now));
        key.expires_at = Some(now);
        assert!(!key.is_active(now), "expiry is exclusive");
        key.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(key.is_active(now));
        key.revoked_at = Some(now);
        assert!(!key.is_active(now));
    }

    #[test]
    fn users_are_named_by_their_subject_and_never_platform_admins() {
        let tenant = TenantId::new();
        let user = Caller::for_user(tenant, "alice@example.com".into(), Role::Developer);
        assert_eq!(user.principal.id(), "oidc:alice@example.com");
        assert_eq!(user.role, Role::Developer);
        assert!(!user.platform_admin);
        assert!(user.can_reach(tenant));
        assert!(!user.can_reach(TenantId::new()));
    }

    #[test]
    fn only_platform_admins_reach_other_tenants() {
        let home = TenantId::new();
        let other = TenantId::new();
        let mut caller = Caller::system(home);
        assert!(caller.can_reach(other));
        caller.platform_admin = false;
        assert!(caller.can_reach(home));
        assert!(!caller.can_reach(other));
    }
}
