//! User accounts: people who log in with a password, members of tenants with a role.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::identity::Role;
use crate::{Name, ServiceAccountId, TeamId, TenantId, UserId};

/// A user account. Accounts are global (one person, one password); what they may do is set
/// per tenant by their [`Membership`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    /// The login name: lowercase letters, digits and `-`, unique on the platform.
    #[schema(value_type = String)]
    pub name: Name,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// A user's place in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user: User,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// What it takes to create a user account: its password already hashed (argon2id PHC
/// string), never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub name: Name,
    pub display_name: String,
    pub password_hash: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// A named group of a tenant's members; each member has at least the team's role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub tenant_id: TenantId,
    #[schema(value_type = String)]
    pub name: Name,
    pub role: Role,
    /// Members' user names, sorted.
    #[schema(value_type = Vec<String>)]
    pub members: Vec<Name>,
    pub created_at: DateTime<Utc>,
}

/// A machine identity of a tenant (a CI pipeline, a backend calling agents): it holds API keys,
/// which act as the account (`service:<name>`) with its role, and go when it goes. Its name
/// and role never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub tenant_id: TenantId,
    #[schema(value_type = String)]
    pub name: Name,
    pub role: Role,
    pub description: String,
    /// Who created it (a principal id).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}
