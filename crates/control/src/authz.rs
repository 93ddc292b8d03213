//! Authorization: may this caller do this to this tenant's resource?
//!
//! Deny by default. A caller that cannot reach the tenant at all (another tenant's principal)
//! gets "not found", so it learns nothing of what exists there; a caller of the tenant whose
//! role does not allow the action gets `Denied` (403). Every denial is recorded in the audit
//! chain of the caller's own tenant.

use nexus_core::identity::Role;
use nexus_core::{Caller, NewAuditEvent, TenantId};
use nexus_store::StoreError;

use crate::{ControlError, ControlPlane};

/// Everything a caller can ask the control plane to do. The names are stable: they appear in
/// audit events and in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    TenantList,
    TenantCreate,
    TenantRead,
    PackageUpload,
    PackageList,
    AgentDeploy,
    AgentList,
    AgentRead,
    AgentDelete,
    AgentRollback,
    TaskSend,
    TaskList,
    TaskRead,
    TaskCancel,
    PushConfigWrite,
    PushConfigRead,
    KeyCreate,
    KeyList,
    KeyRevoke,
    AuditRead,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 20] = [
        Action::TenantList,
        Action::TenantCreate,
        Action::TenantRead,
        Action::PackageUpload,
        Action::PackageList,
        Action::AgentDeploy,
        Action::AgentList,
        Action::AgentRead,
        Action::AgentDelete,
        Action::AgentRollback,
        Action::TaskSend,
        Action::TaskList,
        Action::TaskRead,
        Action::TaskCancel,
        Action::PushConfigWrite,
        Action::PushConfigRead,
        Action::KeyCreate,
        Action::KeyList,
        Action::KeyRevoke,
        Action::AuditRead,
    ];

    /// The action's stable name, e.g. `agent.deploy`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TenantList => "tenant.list",
            Self::TenantCreate => "tenant.create",
            Self::TenantRead => "tenant.read",
            Self::PackageUpload => "package.upload",
            Self::PackageList => "package.list",
            Self::AgentDeploy => "agent.deploy",
            Self::AgentList => "agent.list",
            Self::AgentRead => "agent.read",
            Self::AgentDelete => "agent.delete",
            Self::AgentRollback => "agent.rollback",
            Self::TaskSend => "task.send",
            Self::TaskList => "task.list",
            Self::TaskRead => "task.read",
            Self::TaskCancel => "task.cancel",
            Self::PushConfigWrite => "push_config.write",
            Self::PushConfigRead => "push_config.read",
            Self::KeyCreate => "key.create",
            Self::KeyList => "key.list",
            Self::KeyRevoke => "key.revoke",
            Self::AuditRead => "audit.read",
        }
    }

    /// The least privileged built-in role allowed to do this in its own tenant.
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
            Self::PackageUpload | Self::AgentDeploy | Self::AgentDelete | Self::AgentRollback => {
                Role::Developer
            }
            Self::KeyCreate | Self::KeyList | Self::KeyRevoke | Self::AuditRead => Role::Admin,
            // Only platform admins, whatever their role (see `authorize`).
            Self::TenantCreate => Role::Owner,
        }
    }

    /// Whether only a platform admin may do this.
    pub const fn platform_only(self) -> bool {
        matches!(self, Self::TenantCreate)
    }
}

/// Why a decision denied: for the caller's error message and the audit event.
fn denial_reason(caller: &Caller, action: Action) -> String {
    if action.platform_only() {
        format!("`{}` needs a platform admin key", action.name())
    } else {
        format!(
            "the role `{}` may not `{}` (it needs `{}` or above)",
            caller.role,
            action.name(),
            action.least_role()
        )
    }
}

impl ControlPlane {
    /// Allows `caller` to do `action` in `tenant`, or says why not: another tenant's caller
    /// gets `NotFound`, a caller without the right gets `Denied` (and an audit event).
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: Action,
    ) -> Result<(), ControlError> {
        if !caller.can_reach(tenant) {
            return Err(StoreError::not_found("tenant", tenant).into());
        }
        let allowed = if action.platform_only() {
            caller.platform_admin
        } else {
            caller.platform_admin || caller.role >= action.least_role()
        };
        if allowed {
            return Ok(());
        }
        let reason = denial_reason(caller, action);
        let event = NewAuditEvent {
            actor: caller.principal.id(),
            action: "authz.deny".into(),
            target: format!("tenants/{tenant}"),
            details: serde_json::json!({ "action": action.name(), "reason": reason }),
        };
        if let Err(e) = self.store.append_audit(caller.tenant, event).await {
            tracing::warn!(error = %e, "a denial could not be audited");
        }
        Err(ControlError::Denied(reason))
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
