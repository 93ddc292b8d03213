//! Deployments: agents, their immutable revisions, grants, rollback and deletion.

use std::collections::BTreeMap;
use std::sync::Arc;

use nexus_core::{
    Agent, AgentId, AgentRevision, Caller, Grants, Name, NewAgentRevision, Page, PageRequest,
    Tenant, TenantId,
};
use nexus_store::StoreError;
use serde::Serialize;

use crate::authz::Resource;
use crate::grants::{self, check_grants, check_private_hosts};
use crate::tenants::TenantRef;
use crate::{Action, ControlError, ControlPlane, MAX_CACHED_REVISIONS, audit, secrets};

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

/// A deployment request: which package (by digest), under which name, with what. What it
/// leaves out carries over from the agent's current revision (the rule is in `grants`).
#[derive(Clone, Default)]
pub struct DeployRequest {
    /// Agent name; defaults to the manifest's `agent.name`.
    pub name: Option<Name>,
    /// `sha256:…` of an uploaded package.
    pub package_digest: String,
    /// Config keys to add or replace; the agent keeps its other keys.
    pub config: BTreeMap<String, String>,
    /// Config keys to remove; each must be set now.
    pub unset_config: Vec<String>,
    /// Secrets to create or replace, by name; the agent keeps its other secrets. Stored
    /// encrypted; `Debug` shows the names only.
    pub secrets: BTreeMap<String, String>,
    /// Exactly these grants, each declared by the manifest; `None`: what the manifest requests,
    /// carried over from the current revision where it requested the same.
    pub grants: Option<Grants>,
    /// Without `grants`: the deployer confirmed what the manifest newly requests.
    pub accept_requested_grants: bool,
}

impl std::fmt::Debug for DeployRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployRequest")
            .field("name", &self.name)
            .field("package_digest", &self.package_digest)
            .field("config", &self.config)
            .field("unset_config", &self.unset_config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .field("accept_requested_grants", &self.accept_requested_grants)
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
        self.reach(caller, tenant)?;
        secrets::check(&request.secrets)?;
        let package = match self
            .store
            .get_package_by_digest(tenant, &request.package_digest)
            .await
        {
            Ok(package) => package,
            // Say "forbidden" rather than "no such package" to whoever may not deploy at all.
            Err(missing @ StoreError::NotFound { .. }) => {
                let name = request.name.as_ref().map_or("", Name::as_str);
                let resource = Resource::Agent {
                    name,
                    tags: &[],
                    owner: "",
                };
                self.authorize_on(caller, tenant, Action::AgentDeploy, resource)
                    .await?;
                return Err(missing.into());
            }
            Err(e) => return Err(e.into()),
        };
        let manifest: nexus_package::Manifest = serde_json::from_value(package.manifest.clone())
            .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")))?;
        let name = match request.name {
            Some(name) => name,
            None => package.reference.name.clone(),
        };
        // A redeployment is about the agent its owner made; a first one about the agent the
        // caller is about to own.
        let existing = match self.store.get_agent(tenant, &name).await {
            Ok(existing) => Some(existing),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let owner = existing
            .as_ref()
            .map_or_else(|| caller.principal.id(), |agent| agent.owner.clone());
        let resource = Resource::Agent {
            name: name.as_str(),
            tags: &manifest.agent.tags,
            owner: &owner,
        };
        self.authorize_on(caller, tenant, Action::AgentDeploy, resource)
            .await?;
        let current = match &existing {
            Some(agent) => Some((
                self.revision(tenant, agent.id, agent.current_revision)
                    .await?,
                self.current_manifest(tenant, agent).await?,
            )),
            None => None,
        };
        let config = grants::config(
            &name,
            current.as_ref().map(|(revision, _)| &revision.config),
            request.config,
            &request.unset_config,
        )?;
        let granted = match request.grants {
            Some(listed) => listed,
            None => {
                let before = current
                    .as_ref()
                    .map(|(revision, manifest)| grants::Current {
                        granted: &revision.grants,
                        requested: grants::requested(manifest),
                    });
                grants::from_manifest(
                    &name,
                    &manifest,
                    before.as_ref(),
                    request.accept_requested_grants,
                )?
            }
        };
        check_grants(&manifest, &granted)?;
        check_private_hosts(&granted, self.runtime.allows_private_addresses())?;
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
                "grants": granted,
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
                    config,
                    // The store lists every secret the agent has after this deployment.
                    secret_names: Vec::new(),
                    grants: granted,
                    deployed_by: caller.principal.id(),
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
        self.agent_for(caller, tenant, Action::AgentRead, name)
            .await
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
        let agent = self.agent(caller, tenant, name).await?;
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
        self.authorize_agent(caller, tenant, Action::AgentRead, agent)
            .await?;
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
        let agent = self
            .agent_for(caller, tenant, Action::AgentDelete, name)
            .await?;
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
    /// Errors name the agent and its revision numbers.
    pub async fn rollback(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
        revision: Option<u32>,
    ) -> Result<Agent, ControlError> {
        let agent = self
            .agent_for(caller, tenant, Action::AgentRollback, name)
            .await?;
        // Newest first.
        let numbers: Vec<u32> = self
            .store
            .list_revisions(tenant, agent.id)
            .await?
            .into_iter()
            .map(|r| r.revision)
            .collect();
        let target = match revision {
            Some(wanted) if numbers.contains(&wanted) => wanted,
            Some(wanted) => {
                return Err(ControlError::RevisionNotFound(format!(
                    "agent `{name}` has no revision {wanted}; it has {}",
                    describe_revisions(&numbers)
                )));
            }
            None => numbers
                .iter()
                .copied()
                .find(|r| *r < agent.current_revision)
                .ok_or_else(|| {
                    ControlError::Conflict(format!(
                        "agent `{name}` is at revision {}, and it has no earlier revision to \
                         roll back to",
                        agent.current_revision
                    ))
                })?,
        };
        let event = audit::event(
            caller,
            "agent.rollback",
            format!("agents/{}", agent.name),
            serde_json::json!({ "from": agent.current_revision, "to": target }),
        );
        match self
            .store
            .set_current_revision(tenant, agent.id, target, event)
            .await
        {
            Ok(agent) => Ok(agent),
            // Deleted meanwhile (revisions go only with their agent): say so by name.
            Err(StoreError::NotFound { .. }) => Err(StoreError::not_found("agent", name).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// An agent's revision, from memory when it was read before.
    /// The agent `name`, once `caller` is allowed `action` on it. A caller that may not do the
    /// action to any agent of that name is told so (403) even when there is none, rather than
    /// learning whether it exists.
    pub(crate) async fn agent_for(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
        name: &Name,
    ) -> Result<Agent, ControlError> {
        self.reach(caller, tenant)?;
        match self.store.get_agent(tenant, name).await {
            Ok(agent) => {
                self.authorize_agent(caller, tenant, action, &agent).await?;
                Ok(agent)
            }
            Err(missing @ StoreError::NotFound { .. }) => {
                let resource = Resource::Agent {
                    name: name.as_str(),
                    tags: &[],
                    owner: "",
                };
                self.authorize_on(caller, tenant, action, resource).await?;
                Err(missing.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Authorizes `action` on `agent`, as its owner and its current manifest's tags describe
    /// it.
    pub(crate) async fn authorize_agent(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
        agent: &Agent,
    ) -> Result<(), ControlError> {
        self.reach(caller, tenant)?;
        let tags = self.agent_tags(tenant, agent).await?;
        let resource = Resource::Agent {
            name: agent.name.as_str(),
            tags: &tags,
            owner: &agent.owner,
        };
        self.authorize_on(caller, tenant, action, resource).await
    }

    /// The tags of an agent's current manifest, from memory once its package was read.
    pub(crate) async fn agent_tags(
        &self,
        tenant: TenantId,
        agent: &Agent,
    ) -> Result<Arc<[String]>, ControlError> {
        let revision = self
            .revision(tenant, agent.id, agent.current_revision)
            .await?;
        let cached = self
            .tags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&revision.package_digest)
            .cloned();
        if let Some(tags) = cached {
            return Ok(tags);
        }
        let package = self
            .store
            .get_package_by_digest(tenant, &revision.package_digest)
            .await?;
        let tags: Arc<[String]> = package.manifest["agent"]["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut cache = self
            .tags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_REVISIONS {
            cache.clear();
        }
        // Packages are immutable: a digest's tags never change.
        cache.insert(revision.package_digest, tags.clone());
        Ok(tags)
    }

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

/// An agent's revision numbers (newest first) for a message: `1 to 3`, `revision 1`, or the
/// list when some are missing.
fn describe_revisions(numbers: &[u32]) -> String {
    match (numbers.last(), numbers.first()) {
        (Some(first), Some(last)) if first == last => format!("revision {first}"),
        (Some(first), Some(last))
            if u32::try_from(numbers.len()).ok() == Some(last - first + 1) =>
        {
            format!("revisions {first} to {last}")
        }
        _ => {
            let listed: Vec<String> = numbers.iter().rev().map(u32::to_string).collect();
            format!("revisions {}", listed.join(", "))
        }
    }
}
