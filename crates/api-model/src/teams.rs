//! `/v1/tenants/{tenant}/teams`: groups of members that give each of them the team's role.

use nexus_core::identity::Role;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants/{tenant}/teams`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[schema(example = "sre")]
    pub name: String,
    /// The role each member gets at least.
    pub role: Role,
}

/// Body of `POST /v1/tenants/{tenant}/teams/{team}/members`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTeamMember {
    /// A member of the tenant, by user name.
    #[schema(example = "alice")]
    pub name: String,
}
