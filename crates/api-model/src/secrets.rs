//! `/v1/tenants/{tenant}/agents/{agent}/secrets`: an agent's secrets, by name only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One secret of an agent: its name and when its value was last set. Values are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretInfo {
    #[schema(example = "api-key")]
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

/// Answer of `GET /v1/tenants/{tenant}/agents/{agent}/secrets`: every secret, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretList {
    pub items: Vec<SecretInfo>,
}
