//! Audit events written by the control plane, with the real principal.

use nexus_core::{AuditEvent, Caller, NewAuditEvent, TenantId};

use crate::{Action, ControlError, ControlPlane};

/// Most audit events one page returns.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// The audit event of `caller` doing `action` to `target`.
pub(crate) fn event(
    caller: &Caller,
    action: &str,
    target: String,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent {
        actor: caller.principal.id(),
        action: action.to_owned(),
        target,
        details,
    }
}

impl ControlPlane {
    /// A tenant's audit events after `after_seq`, oldest first.
    pub async fn list_audit(
        &self,
        caller: &Caller,
        tenant: TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ControlError> {
        self.authorize(caller, tenant, Action::AuditRead).await?;
        Ok(self
            .store
            .list_audit(tenant, after_seq, limit.clamp(1, MAX_AUDIT_PAGE))
            .await?)
    }
}
