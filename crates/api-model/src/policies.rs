//! `/v1/tenants/{tenant}/policies`: a tenant's Cedar policies and `explain`.

use nexus_core::Policy;
use serde::{Deserialize, Serialize};

/// Body of `POST /v1/tenants/{tenant}/policies`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// Unique in the tenant: lowercase letters, digits and `-`.
    #[schema(example = "no-prod-for-developers")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One Cedar `permit` or `forbid`.
    #[schema(
        example = "forbid (principal, action == Nexus::Action::\"task.send\", resource) when { resource has tags && resource.tags.contains(\"prod\") && principal.role == \"developer\" };"
    )]
    pub text: String,
}

/// A tenant's policies and the built-in ones they add to.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyList {
    /// The built-in roles, as Cedar (read-only).
    pub builtin: String,
    pub policies: Vec<Policy>,
}

/// Body of `POST /v1/tenants/{tenant}/policies/explain`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    /// An action name, e.g. `agent.deploy` (see `Nexus::Action` in the built-in policies).
    pub action: String,
    /// A key of the tenant; the caller's own key when absent.
    pub key: Option<String>,
    /// The agent the action is about; the tenant itself when absent.
    pub agent: Option<String>,
}

/// Whether a key may do an action, and which policies decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    /// The principal asked about (`key:<id>`).
    pub principal: String,
    pub role: String,
    pub action: String,
    pub resource: String,
    /// The policies that decided: the permits that allowed, or the forbids that denied.
    pub policies: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Policies that could not be evaluated for this request (and so did not apply).
    pub errors: Vec<String>,
}
