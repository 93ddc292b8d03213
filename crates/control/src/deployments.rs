//! Deployments: agents, their immutable revisions, grants, rollback and deletion.

use std::collections::BTreeMap;

use nexus_core::{
    Agent, AgentId, AgentRevision, Caller, Grants, Name, NewAgentRevision, Page, PageRequest,
    Tenant, TenantId,
};
use nexus_host::capability;
use nexus_host::http::OutboundPolicy;
use nexus_store::StoreError;
use serde::Serialize;

use crate::tenants::TenantRef;
use crate::{Action, ControlError, ControlPlane, GRANTABLE, MAX_CACHED_REVISIONS, audit, secrets};

/// An agent with all its revisions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentDetail {
    pub agent: Agent,
    pub revisions: Vec<AgentRevision>,
}

/// What an agent's public card is made of: the agent and its current manifest.
#[derive(Debug)]
pub struct AgentCard {
    pub tenant: Tenant,
    pub agent: Agent,
    pub manifest: nexus_package::Manifest,
}

/// A deployment request: which package (by digest), under which name, with what.
#[derive(Clone, Default)]
pub struct DeployRequest {
    /// Agent name; defaults to the manifest's `agent.name`.
    pub name: Option<Name>,
    /// `sha256:…` of an uploaded package.
    pub package_digest: String,
    pub config: BTreeMap<String, String>,
    /// Secrets to create or replace, by name; the agent keeps its other secrets. Stored
    /// encrypted; `Debug` shows the names only.
    pub secrets: BTreeMap<String, String>,
    pub grants: Grants,
}

impl std::fmt::Debug for DeployRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployRequest")
            .field("name", &self.name)
            .field("package_digest", &self.package_digest)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .finish()
    }
}

impl ControlPlane {
    /// Creates the agent, or a new revision of it, from an uploaded package. `secrets` are
    /// sealed and stored with the revision and its audit event, in one transaction; the agent
    /// keeps earlier secrets not named again, and the revision lists all of them.
    pub async fn deploy(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: DeployRequest,
    ) -> Result<(Agent, AgentRevision), ControlError> {
        self.authorize(caller, tenant, Action::AgentDeploy).await?;
        secrets::check(&request.secrets)?;
        let package = self
            .store
            .get_package_by_digest(tenant, &request.package_digest)
            .await?;
        let manifest: nexus_package::Manifest = serde_json::from_value(package.manifest.clone())
            .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")))?;
        check_grants(&manifest, &request.grants)?;
        let name = match request.name {
            Some(name) => name,
            None => package.reference.name.clone(),
        };
        let sealed = if request.secrets.is_empty() {
            Vec::new()
        } else {
            secrets::check_total(self.store.as_ref(), tenant, &name, &request.secrets).await?;
            secrets::seal(
                self.store.as_ref(),
                self.kms.as_ref(),
                tenant,
                &name,
                &request.secrets,
            )
            .await?
        };
        // The store adds the revision number it assigns to the details. `secrets` names the
        // secrets this deployment sets (the revision lists all the agent has afterwards).
        let event = audit::event(
            caller,
            "agent.deploy",
            format!("agents/{name}"),
            serde_json::json!({
                "package": package.reference.to_string(),
                "digest": package.digest,
                "grants": request.grants,
                "secrets": request.secrets.keys().collect::<Vec<_>>(),
            }),
        );
        let deployed = self
            .store
            .deploy_revision_with_secrets(
                tenant,
                NewAgentRevision {
                    name,
                    package: package.reference.clone(),
                    package_digest: package.digest.clone(),
                    config: request.config,
                    // The store lists every secret the agent has after this deployment.
                    secret_names: Vec::new(),
                    grants: request.grants,
                },
                sealed,
                event,
            )
            .await?;
        // Revisions never change, so the agent's first task need not read this one back.
        self.remember_revision(tenant, &deployed.1);
        Ok(deployed)
    }

    /// The agent named `name`.
    pub async fn agent(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Agent, ControlError> {
        self.authorize(caller, tenant, Action::AgentRead).await?;
        Ok(self.store.get_agent(tenant, name).await?)
    }

    /// Agents in creation order.
    pub async fn list_agents(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<Agent>, ControlError> {
        self.authorize(caller, tenant, Action::AgentList).await?;
        Ok(self.store.list_agents(tenant, page).await?)
    }

    /// An agent with all its revisions.
    pub async fn agent_detail(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<AgentDetail, ControlError> {
        self.authorize(caller, tenant, Action::AgentRead).await?;
        let agent = self.store.get_agent(tenant, name).await?;
        let revisions = self.store.list_revisions(tenant, agent.id).await?;
        Ok(AgentDetail { agent, revisions })
    }

    /// The manifest of the agent's current revision.
    pub async fn agent_manifest(
        &self,
        caller: &Caller,
        tenant: TenantId,
        agent: &Agent,
    ) -> Result<nexus_package::Manifest, ControlError> {
        self.authorize(caller, tenant, Action::AgentRead).await?;
        self.current_manifest(tenant, agent).await
    }

    /// What an agent's card shows. Cards are public by choice (A2A clients read them to learn
    /// how to authenticate), so this takes no caller: it reveals the agent's name, skills and
    /// security schemes, nothing of its config, grants or tasks.
    pub async fn agent_card(
        &self,
        tenant: &TenantRef,
        name: &Name,
    ) -> Result<AgentCard, ControlError> {
        let tenant = match tenant {
            TenantRef::Id(id) => self.store.get_tenant(*id).await?,
            TenantRef::Name(name) => self.store.get_tenant_by_name(name).await?,
        };
        let agent = self.store.get_agent(tenant.id, name).await?;
        let manifest = self.current_manifest(tenant.id, &agent).await?;
        Ok(AgentCard {
            tenant,
            agent,
            manifest,
        })
    }

    async fn current_manifest(
        &self,
        tenant: TenantId,
        agent: &Agent,
    ) -> Result<nexus_package::Manifest, ControlError> {
        let revision = self
            .revision(tenant, agent.id, agent.current_revision)
            .await?;
        let package = self
            .store
            .get_package_by_digest(tenant, &revision.package_digest)
            .await?;
        serde_json::from_value(package.manifest)
            .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")).into())
    }

    /// Deletes an agent with its revisions, tasks, state and secrets.
    pub async fn delete_agent(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<(), ControlError> {
        self.authorize(caller, tenant, Action::AgentDelete).await?;
        let agent = self.store.get_agent(tenant, name).await?;
        let event = audit::event(
            caller,
            "agent.delete",
            format!("agents/{}", agent.name),
            serde_json::json!({ "agent_id": agent.id }),
        );
        self.store.delete_agent(tenant, agent.id, event).await?;
        Ok(())
    }

    /// Makes `revision` current, or by default the newest revision before the current one.
    pub async fn rollback(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
        revision: Option<u32>,
    ) -> Result<Agent, ControlError> {
        self.authorize(caller, tenant, Action::AgentRollback)
            .await?;
        let agent = self.store.get_agent(tenant, name).await?;
        let target = match revision {
            Some(revision) => revision,
            None => self
                .store
                .list_revisions(tenant, agent.id)
                .await?
                .into_iter()
                .map(|r| r.revision)
                .find(|r| *r < agent.current_revision)
                .ok_or_else(|| {
                    ControlError::Conflict("there is no earlier revision to roll back to".into())
                })?,
        };
        let event = audit::event(
            caller,
            "agent.rollback",
            format!("agents/{}", agent.name),
            serde_json::json!({ "from": agent.current_revision, "to": target }),
        );
        Ok(self
            .store
            .set_current_revision(tenant, agent.id, target, event)
            .await?)
    }

    /// An agent's revision, from memory when it was read before.
    pub(crate) async fn revision(
        &self,
        tenant: TenantId,
        agent: AgentId,
        number: u32,
    ) -> Result<AgentRevision, ControlError> {
        let key = (tenant, agent, number);
        let cached = self
            .revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(revision) = cached {
            return Ok(revision);
        }
        let revision = self.store.get_revision(tenant, agent, number).await?;
        self.remember_revision(tenant, &revision);
        Ok(revision)
    }

    fn remember_revision(&self, tenant: TenantId, revision: &AgentRevision) {
        let mut revisions = self
            .revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if revisions.len() >= MAX_CACHED_REVISIONS {
            revisions.clear();
        }
        revisions.insert(
            (tenant, revision.agent_id, revision.revision),
            revision.clone(),
        );
    }
}

/// Grants may only name known capabilities the manifest declares, and hosts it lists.
pub fn check_grants(
    manifest: &nexus_package::Manifest,
    grants: &Grants,
) -> Result<(), ControlError> {
    let declared = &manifest.capabilities;
    for capability in &grants.capabilities {
        let allowed = match capability.as_str() {
            capability::STATE => declared.state,
            capability::LLM => declared.llm,
            capability::AGENTS => declared.agents,
            capability::BUS => declared.bus,
            other => {
                return Err(ControlError::Grant(format!(
                    "unknown capability `{other}`; grantable: {}",
                    GRANTABLE.join(", ")
                )));
            }
        };
        if !allowed {
            return Err(ControlError::Grant(format!(
                "`{capability}` is not declared in the package manifest's [capabilities]"
            )));
        }
    }
    for host in &grants.hosts {
        OutboundPolicy::new(&[host]).map_err(|e| ControlError::Grant(e.to_string()))?;
        if !declared.hosts.iter().any(|h| h == host) {
            return Err(ControlError::Grant(format!(
                "host `{host}` is not declared in the package manifest's [capabilities].hosts"
            )));
        }
    }
    Ok(())
}
