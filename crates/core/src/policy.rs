//! Tenant policies: Cedar policies a tenant adds on top of the built-in roles.
//!
//! The text is stored as written; `nexus-control` parses and evaluates it (only it knows
//! Cedar). Names identify a policy within its tenant, as `nexus policies delete NAME` does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Name, PolicyId, TenantId};

/// Longest policy text accepted, in bytes: room for a long policy with many conditions, not for
/// a file of them.
pub const MAX_POLICY_TEXT_BYTES: usize = 16 * 1024;
/// Most policies per tenant: every request of the tenant evaluates all of them.
pub const MAX_POLICIES_PER_TENANT: usize = 100;

/// A stored tenant policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Policy {
    pub id: PolicyId,
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    #[schema(value_type = String)]
    pub name: Name,
    /// Optional words for people.
    pub description: String,
    /// One Cedar policy (`permit(…)` or `forbid(…)`).
    pub text: String,
    /// The principal that added it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// What it takes to store a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicy {
    pub id: PolicyId,
    pub name: Name,
    pub description: String,
    pub text: String,
    pub created_by: String,
}

impl NewPolicy {
    /// The stored policy, created now in `tenant_id`.
    pub fn into_policy(self, tenant_id: TenantId) -> Policy {
        Policy {
            id: self.id,
            tenant_id,
            name: self.name,
            description: self.description,
            text: self.text,
            created_by: self.created_by,
            created_at: crate::page::now(),
        }
    }
}
