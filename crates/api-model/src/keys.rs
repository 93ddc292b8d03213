//! `/v1/tenants/{tenant}/keys`: API keys.

use chrono::{DateTime, Utc};
use nexus_core::ApiKey;
use nexus_core::identity::Role;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants/{tenant}/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label for people, e.g. `ci`.
    #[schema(example = "ci")]
    pub name: String,
    /// The key's role; leave it out for a service account's key, which has the account's.
    pub role: Option<Role>,
    /// Make the key a service account's: it acts as that account, with its role.
    pub service_account: Option<String>,
    /// Manage tenants and act in all of them; only a platform admin may grant it.
    #[serde(default)]
    pub platform_admin: bool,
    /// Refused from this instant on (RFC 3339); never expires when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new key, with its secret: shown in this response only.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedKeyBody {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Send as `Authorization: Bearer <secret>`. Not stored: it cannot be shown again.
    pub secret: String,
}

/// The secret never reaches logs, not even through `Debug`.
impl std::fmt::Debug for CreatedKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKeyBody")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
