//! Agents (deployments of a package in a tenant) and their immutable revisions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, Name, PackageRef, TenantId};

/// A deployed agent. What it runs is its current revision; older revisions are kept for
/// rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    /// Unique within the tenant; the agent's address is `{tenant}/{name}`.
    pub name: Name,
    /// The revision that serves new tasks.
    pub current_revision: u32,
    /// Who created it, as a principal id (`user:alice`, `key:<id>`, `service:ci`...), for
    /// policies (`resource.owner == principal.id`); empty for agents created before owners
    /// were recorded.
    #[serde(default)]
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a deployment allows an agent to use. Deny by default: anything absent is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host capabilities granted, e.g. `state`, `llm`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Outbound hosts granted, as `scheme://host:port` patterns.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// One immutable configuration of an agent: which package (pinned by digest), with which
/// config, secrets and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentRevision {
    pub agent_id: AgentId,
    /// 1 for the first deployment, then +1 for each later one.
    pub revision: u32,
    #[schema(value_type = String, example = "acme/summarizer@1.2.0")]
    pub package: PackageRef,
    /// `sha256:<hex>` of the package archive this revision runs.
    pub package_digest: String,
    pub config: BTreeMap<String, String>,
    /// Names of the secrets granted to the agent; the values are stored apart, encrypted.
    pub secret_names: Vec<String>,
    pub grants: Grants,
    /// Who deployed it, as a principal id; empty for revisions deployed before this was
    /// recorded and for local runs.
    #[serde(default)]
    pub deployed_by: String,
    pub created_at: DateTime<Utc>,
}

/// What a deployment supplies to create an agent, or a new revision of an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgentRevision {
    pub name: Name,
    pub package: PackageRef,
    pub package_digest: String,
    pub config: BTreeMap<String, String>,
    pub secret_names: Vec<String>,
    pub grants: Grants,
    /// The deploying principal's id; it becomes the agent's owner when this creates the agent.
    pub deployed_by: String,
}
