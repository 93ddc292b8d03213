//! `/v1/tenants/{tenant}/service-accounts`: machine identities whose keys act as them.

use nexus_core::identity::Role;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants/{tenant}/service-accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    #[schema(example = "ci")]
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub description: String,
}
