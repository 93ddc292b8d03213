//! `/v1/tenants/{tenant}/members`: the memberships that give users a role in a tenant.

use nexus_core::identity::Role;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants/{tenant}/members`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Passwords never reach logs, not even through `Debug`.
impl std::fmt::Debug for AddMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddMember")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}
