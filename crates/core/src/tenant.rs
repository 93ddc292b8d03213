//! Tenants: the organisations that own everything else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Name, TenantId};

/// Name of the tenant every fresh data directory has.
pub const DEFAULT_TENANT: &str = "default";

/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 200;

/// An organisation: the unit of isolation for data, keys, quotas and billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique, URL-safe name used in paths such as `/a2a/{tenant}/{agent}`.
    pub name: Name,
    /// Free-form name for people.
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// What it takes to create a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub name: Name,
    pub display_name: String,
}

impl NewTenant {
    /// Builds the stored tenant with a fresh id and the current time.
    pub fn into_tenant(self) -> Tenant {
        Tenant {
            id: TenantId::new(),
            name: self.name,
            display_name: self.display_name,
            created_at: crate::page::now(),
        }
    }
}
