//! Tenants: the organisations that own everything else. A caller sees its own tenant; only a
//! platform admin lists all of them or creates one.

use nexus_core::tenant::MAX_DISPLAY_NAME_LEN;
use nexus_core::{Caller, Name, NameError, NewTenant, Page, PageRequest, Tenant, TenantId};

use crate::{Action, ControlError, ControlPlane, audit};

/// A tenant as a path names it: by id (a UUID) or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    Id(TenantId),
    Name(Name),
}

impl TenantRef {
    /// Reads an id or, failing that, a name.
    pub fn parse(name_or_id: &str) -> Result<Self, NameError> {
        if let Ok(id) = name_or_id.parse::<TenantId>() {
            return Ok(Self::Id(id));
        }
        Name::parse(name_or_id).map(Self::Name)
    }
}

impl ControlPlane {
    /// The tenant `reference` names, if the caller may see it; "not found" otherwise, as if it
    /// did not exist.
    pub async fn tenant(
        &self,
        caller: &Caller,
        reference: &TenantRef,
    ) -> Result<Tenant, ControlError> {
        let tenant = match reference {
            TenantRef::Id(id) => self.store.get_tenant(*id).await?,
            TenantRef::Name(name) => self.store.get_tenant_by_name(name).await?,
        };
        self.authorize(caller, tenant.id, Action::TenantRead)
            .await?;
        Ok(tenant)
    }

    /// Tenants in creation order: all of them for a platform admin, the caller's own for
    /// anyone else.
    pub async fn list_tenants(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<Tenant>, ControlError> {
        self.authorize(caller, caller.tenant, Action::TenantList)
            .await?;
        if caller.platform_admin {
            return Ok(self.store.list_tenants(page).await?);
        }
        let own = self.store.get_tenant(caller.tenant).await?;
        Ok(Page {
            items: vec![own],
            next_cursor: None,
        })
    }

    /// Creates a tenant (platform admins only), audited in the new tenant's chain.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        name: Name,
        display_name: Option<String>,
    ) -> Result<Tenant, ControlError> {
        self.authorize(caller, caller.tenant, Action::TenantCreate)
            .await?;
        let display_name = display_name.unwrap_or_else(|| name.to_string());
        validate_display_name(&display_name)?;
        let event = audit::event(
            caller,
            "tenant.create",
            format!("tenants/{name}"),
            serde_json::json!({ "display_name": display_name }),
        );
        // The event is the first of the new tenant's chain, written with the tenant.
        Ok(self
            .store
            .create_tenant(NewTenant { name, display_name }, event)
            .await?)
    }
}

impl ControlPlane {
    /// Deletes a tenant and all its data (platform admins only, and never the tenant they act
    /// in): its data key first, then its rows, with the event in the caller's audit chain, in
    /// one transaction. From then on nothing of the tenant decrypts, not even a copy of its
    /// rows taken earlier without the wrapped key.
    /// Package bytes stay in the blob store, which is shared by content across tenants.
    pub async fn delete_tenant(
        &self,
        caller: &Caller,
        reference: &TenantRef,
    ) -> Result<Tenant, ControlError> {
        let tenant = self.tenant(caller, reference).await?;
        self.authorize(caller, tenant.id, Action::TenantDelete)
            .await?;
        if tenant.id == caller.tenant {
            return Err(ControlError::Conflict(format!(
                "tenant `{}` is the one you act in; delete it with a platform admin key of another tenant",
                tenant.name
            )));
        }
        let event = audit::event(
            caller,
            "tenant.delete",
            format!("tenants/{}", tenant.name),
            serde_json::json!({ "tenant_id": tenant.id }),
        );
        // The data key goes first, in the same transaction as the rows.
        self.store
            .delete_tenant(tenant.id, caller.tenant, event)
            .await?;
        self.forget_tenant(tenant.id);
        tracing::info!(tenant = %tenant.name, id = %tenant.id, "tenant deleted");
        Ok(tenant)
    }
}

fn validate_display_name(display_name: &str) -> Result<(), ControlError> {
    let len = display_name.chars().count();
    if display_name.trim().is_empty() || len > MAX_DISPLAY_NAME_LEN {
        return Err(ControlError::Invalid(format!(
            "display_name: must be 1 to {MAX_DISPLAY_NAME_LEN} characters, not blank"
        )));
    }
    if display_name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(
            "display_name: must not contain control characters".into(),
        ));
    }
    Ok(())
}
