//! Authorization: may this caller do this to this tenant's resource?
//!
//! Deny by default. A caller that cannot reach the tenant at all (another tenant's principal)
//! gets "not found", so it learns nothing of what exists there. Platform-only actions need a
//! platform admin. Everything else is decided by Cedar (`cedar`): the built-in roles are Cedar
//! policies, and a tenant's own policies are evaluated with them. A denial is `Denied` (403),
//! naming the policy that forbade it, and is recorded in the caller's own tenant's audit chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cedar_policy::PolicySet;
use nexus_core::identity::Role;
use nexus_core::{Caller, NewAuditEvent, TenantId};
use nexus_store::StoreError;

use crate::{ControlError, ControlPlane};

pub mod cedar;

pub use cedar::{Decided, Resource};

/// How long a tenant's policy set read from the database is used without reading it again:
/// what another node's policy change may take to apply here. Changes through this node apply
/// at once.
pub const POLICY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Tenants whose policy sets are kept; past this the cache starts over.
const MAX_CACHED_POLICY_SETS: usize = 10_000;

/// Decisions kept per tenant policy set; past this its memo starts over.
const MAX_MEMOIZED_DECISIONS: usize = 4_096;

/// A tenant's policy set (built-in roles and its own) and the decisions made under it.
///
/// Cedar evaluation costs tens of microseconds, and a request makes several decisions (the
/// tenant, the agent, the task). Where no policy reads the request's `context` (the clock),
/// a decision depends only on the principal, the action and the resource, so it is made once
/// and remembered for as long as the set is (at most [`POLICY_CACHE_TTL`], and dropped on any
/// policy change).
#[derive(Debug)]
pub(crate) struct TenantPolicies {
    pub(crate) set: PolicySet,
    /// Whether no policy mentions `context`, so decisions can be remembered.
    memoizable: bool,
    decisions: Mutex<HashMap<DecisionKey, Decided>>,
}

/// Everything a decision depends on when the policies do not read the context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    principal: nexus_core::Principal,
    role: Role,
    platform_admin: bool,
    caller_tenant: TenantId,
    teams: Vec<nexus_core::Name>,
    action: Action,
    /// The agent's name, tags and owner.
    agent: Option<(String, Vec<String>, String)>,
}

impl TenantPolicies {
    fn new<'a>(tenant_policies: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let memoizable = tenant_policies
            .clone()
            .into_iter()
            .all(|(_, text)| !text.contains("context"));
        Self {
            set: cedar::policy_set(tenant_policies),
            memoizable,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// Cedar's decision, from memory when it was made before under this set.
    pub(crate) fn decide(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
        resource: Resource<'_>,
    ) -> Decided {
        if !self.memoizable {
            return cedar::decide(&self.set, caller, tenant, action, resource);
        }
        let key = DecisionKey {
            principal: caller.principal.clone(),
            role: caller.role,
            platform_admin: caller.platform_admin,
            caller_tenant: caller.tenant,
            teams: caller.teams.clone(),
            action,
            agent: match resource {
                Resource::Tenant => None,
                Resource::Agent { name, tags, owner } => {
                    Some((name.to_owned(), tags.to_vec(), owner.to_owned()))
                }
            },
        };
        let remembered = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(decided) = remembered {
            return decided;
        }
        let decided = cedar::decide(&self.set, caller, tenant, action, resource);
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if decisions.len() >= MAX_MEMOIZED_DECISIONS {
            decisions.clear();
        }
        decisions.insert(key, decided.clone());
        decided
    }
}

/// Each tenant's policies, read from the store at most every [`POLICY_CACHE_TTL`].
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    sets: Mutex<HashMap<TenantId, (Arc<TenantPolicies>, Instant)>>,
}

impl PolicyCache {
    fn get(&self, tenant: TenantId) -> Option<Arc<TenantPolicies>> {
        let sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        sets.get(&tenant)
            .filter(|(_, read)| read.elapsed() < POLICY_CACHE_TTL)
            .map(|(set, _)| set.clone())
    }

    fn put(&self, tenant: TenantId, set: Arc<TenantPolicies>) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if sets.len() >= MAX_CACHED_POLICY_SETS {
            sets.clear();
        }
        sets.insert(tenant, (set, Instant::now()));
    }

    /// Forgets a tenant's set after its policies changed.
    pub(crate) fn forget(&self, tenant: TenantId) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        sets.remove(&tenant);
    }
}

/// Everything a caller can ask the control plane to do. The names are stable: they appear in
/// audit events and in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    TenantList,
    TenantCreate,
    TenantRead,
    TenantDelete,
    TenantExport,
    PackageUpload,
    PackageList,
    AgentDeploy,
    AgentList,
    AgentRead,
    AgentDelete,
    AgentRollback,
    StateRead,
    StateClear,
    TaskSend,
    TaskList,
    TaskRead,
    TaskCancel,
    PushConfigWrite,
    PushConfigRead,
    KeyCreate,
    KeyList,
    KeyRevoke,
    PolicyWrite,
    PolicyRead,
    AuditRead,
    MemberList,
    MemberWrite,
    PasswordReset,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 29] = [
        Action::TenantList,
        Action::TenantCreate,
        Action::TenantRead,
        Action::TenantDelete,
        Action::TenantExport,
        Action::PackageUpload,
        Action::PackageList,
        Action::AgentDeploy,
        Action::AgentList,
        Action::AgentRead,
        Action::AgentDelete,
        Action::AgentRollback,
        Action::StateRead,
        Action::StateClear,
        Action::TaskSend,
        Action::TaskList,
        Action::TaskRead,
        Action::TaskCancel,
        Action::PushConfigWrite,
        Action::PushConfigRead,
        Action::KeyCreate,
        Action::KeyList,
        Action::KeyRevoke,
        Action::PolicyWrite,
        Action::PolicyRead,
        Action::AuditRead,
        Action::MemberList,
        Action::MemberWrite,
        Action::PasswordReset,
    ];

    /// The action's stable name, e.g. `agent.deploy`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TenantList => "tenant.list",
            Self::TenantCreate => "tenant.create",
            Self::TenantRead => "tenant.read",
            Self::TenantDelete => "tenant.delete",
            Self::TenantExport => "tenant.export",
            Self::PackageUpload => "package.upload",
            Self::PackageList => "package.list",
            Self::AgentDeploy => "agent.deploy",
            Self::AgentList => "agent.list",
            Self::AgentRead => "agent.read",
            Self::AgentDelete => "agent.delete",
            Self::AgentRollback => "agent.rollback",
            Self::StateRead => "state.read",
            Self::StateClear => "state.clear",
            Self::TaskSend => "task.send",
            Self::TaskList => "task.list",
            Self::TaskRead => "task.read",
            Self::TaskCancel => "task.cancel",
            Self::PushConfigWrite => "push_config.write",
            Self::PushConfigRead => "push_config.read",
            Self::KeyCreate => "key.create",
            Self::KeyList => "key.list",
            Self::KeyRevoke => "key.revoke",
            Self::PolicyWrite => "policy.write",
            Self::PolicyRead => "policy.read",
            Self::AuditRead => "audit.read",
            Self::MemberList => "member.list",
            Self::MemberWrite => "member.write",
            Self::PasswordReset => "user.password_reset",
        }
    }

    /// The action called `name`, as policies and `nexus policies explain` spell it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }

    /// The least privileged built-in role allowed to do this in its own tenant: the table
    /// the built-in Cedar role policies are written from.
    pub const fn least_role(self) -> Role {
        match self {
            Self::TenantList
            | Self::TenantRead
            | Self::PackageList
            | Self::AgentList
            | Self::AgentRead
            | Self::TaskList
            | Self::TaskRead
            | Self::PushConfigRead => Role::Viewer,
            Self::TaskSend | Self::TaskCancel | Self::PushConfigWrite => Role::Operator,
            // Reading an agent's state shows its values in the clear: for those who build it.
            Self::PackageUpload
            | Self::AgentDeploy
            | Self::AgentDelete
            | Self::AgentRollback
            | Self::StateRead
            | Self::StateClear => Role::Developer,
            Self::KeyCreate
            | Self::KeyList
            | Self::KeyRevoke
            | Self::PolicyWrite
            | Self::PolicyRead
            | Self::AuditRead
            | Self::MemberList
            | Self::MemberWrite => Role::Admin,
            // All of the tenant's data, in the clear: its owners decide who takes it out.
            Self::TenantExport => Role::Owner,
            // Only platform admins, whatever their role (see `authorize`).
            // Accounts span tenants: resetting one's password is the platform's business.
            Self::TenantCreate | Self::TenantDelete | Self::PasswordReset => Role::Owner,
        }
    }

    /// Whether only a platform admin may do this.
    pub const fn platform_only(self) -> bool {
        matches!(
            self,
            Self::TenantCreate | Self::TenantDelete | Self::PasswordReset
        )
    }
}

impl ControlPlane {
    /// Fails with "not found" unless `caller` may see `tenant` at all.
    pub(crate) fn reach(&self, caller: &Caller, tenant: TenantId) -> Result<(), ControlError> {
        if caller.can_reach(tenant) {
            Ok(())
        } else {
            Err(StoreError::not_found("tenant", tenant).into())
        }
    }

    /// Whether `caller` may do `action` in `tenant` (to the tenant itself): the decision every
    /// operation makes first, for gateways and benchmarks. A denial is audited like any other.
    pub async fn may(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
    ) -> Result<(), ControlError> {
        self.authorize(caller, tenant, action).await
    }

    /// Allows `caller` to do `action` to the tenant itself (see [`authorize_on`]).
    ///
    /// [`authorize_on`]: Self::authorize_on
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
    ) -> Result<(), ControlError> {
        self.authorize_on(caller, tenant, action, Resource::Tenant)
            .await
    }

    /// Allows `caller` to do `action` to `resource` in `tenant`, or says why not: another
    /// tenant's caller gets `NotFound`; a platform-only action needs a platform admin; the
    /// rest is Cedar's decision. A denial is audited.
    pub(crate) async fn authorize_on(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
        resource: Resource<'_>,
    ) -> Result<(), ControlError> {
        self.reach(caller, tenant)?;
        // The platform acting on its own behalf (bootstrap, recovery, a server run without
        // authentication) is not subject to tenants' policies.
        if caller.principal == nexus_core::Principal::System {
            return Ok(());
        }
        if action.platform_only() && !caller.platform_admin {
            let reason = format!("`{}` needs a platform admin key", action.name());
            return Err(self.deny(caller, tenant, action, reason, &[]).await);
        }
        let policies = self.policy_set(tenant).await?;
        let decided = policies.decide(caller, tenant, action, resource);
        if decided.allowed {
            return Ok(());
        }
        let reason = match decided.policies.as_slice() {
            [] => format!(
                "no policy permits `{}` to the role `{}` (the built-in roles allow it from `{}` up)",
                action.name(),
                caller.role,
                action.least_role()
            ),
            forbids => format!("`{}` is forbidden by {}", action.name(), forbids.join(", ")),
        };
        let reason = if decided.errors.is_empty() {
            reason
        } else {
            format!(
                "{reason}; policies that could not be evaluated: {}",
                decided.errors.join("; ")
            )
        };
        Err(self
            .deny(caller, tenant, action, reason, &decided.policies)
            .await)
    }

    /// Records a denial in the caller's tenant and returns its error.
    async fn deny(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
        reason: String,
        policies: &[String],
    ) -> ControlError {
        let event = NewAuditEvent {
            actor: caller.principal.id(),
            action: "authz.deny".into(),
            target: format!("tenants/{tenant}"),
            details: serde_json::json!({
                "action": action.name(),
                "reason": reason,
                "policies": policies,
            }),
        };
        if let Err(e) = self.store.append_audit(caller.tenant, event).await {
            tracing::warn!(error = %e, "a denial could not be audited");
        }
        ControlError::Denied(reason)
    }

    /// The policies that apply in `tenant`: the built-in roles and the tenant's own.
    pub(crate) async fn policy_set(
        &self,
        tenant: TenantId,
    ) -> Result<Arc<TenantPolicies>, ControlError> {
        if let Some(set) = self.policies.get(tenant) {
            return Ok(set);
        }
        let stored = self.store.list_policies(tenant).await?;
        let set = Arc::new(TenantPolicies::new(
            stored.iter().map(|p| (p.name.as_str(), p.text.as_str())),
        ));
        self.policies.put(tenant, set.clone());
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_dotted() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        assert!(names.iter().all(|n| n.contains('.')));
    }

    #[test]
    fn viewers_read_and_only_admins_manage_keys() {
        assert_eq!(Action::AgentRead.least_role(), Role::Viewer);
        assert_eq!(Action::TaskSend.least_role(), Role::Operator);
        assert_eq!(Action::AgentDeploy.least_role(), Role::Developer);
        assert_eq!(Action::KeyCreate.least_role(), Role::Admin);
        assert!(Action::TenantCreate.platform_only());
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;
    use nexus_core::{ApiKeyId, Principal};

    fn developer(tenant: TenantId) -> Caller {
        Caller {
            tenant,
            principal: Principal::ApiKey {
                id: ApiKeyId::new(),
                name: "dev".into(),
            },
            role: Role::Developer,
            platform_admin: false,
            trace_id: None,
            teams: Vec::new(),
            client_ip: None,
        }
    }

    #[test]
    fn remembered_decisions_are_cedars_and_context_policies_are_not_remembered() {
        let tenant = TenantId::new();
        let forbid = r#"forbid (principal, action == Nexus::Action::"task.send", resource)
            when { resource has tags && resource.tags.contains("prod") };"#;
        let plain = TenantPolicies::new([("no-prod", forbid)]);
        assert!(plain.memoizable);
        let caller = developer(tenant);
        let prod = ["prod".to_owned()];
        for _ in 0..2 {
            for (tags, allowed) in [(&prod[..], false), (&[][..], true)] {
                let resource = Resource::Agent {
                    name: "billing",
                    tags,
                    owner: "",
                };
                let decided = plain.decide(&caller, tenant, Action::TaskSend, resource);
                assert_eq!(
                    decided,
                    cedar::decide(&plain.set, &caller, tenant, Action::TaskSend, resource)
                );
                assert_eq!(decided.allowed, allowed);
            }
        }
        // Another principal with the same role is its own entry: names can matter to policies.
        let other = developer(tenant);
        let resource = Resource::Agent {
            name: "billing",
            tags: &prod,
            owner: "",
        };
        assert!(
            !plain
                .decide(&other, tenant, Action::TaskSend, resource)
                .allowed
        );
        assert_eq!(plain.decisions.lock().unwrap().len(), 3);

        let timed = TenantPolicies::new([(
            "never-at-night",
            r#"forbid (principal, action, resource) when { context.hour < 0 };"#,
        )]);
        assert!(!timed.memoizable);
        assert!(
            timed
                .decide(&caller, tenant, Action::AgentRead, Resource::Tenant)
                .allowed
        );
        assert!(timed.decisions.lock().unwrap().is_empty());
    }
}
