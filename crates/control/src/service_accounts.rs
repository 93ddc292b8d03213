//! Service accounts: named machine identities of a tenant (a CI pipeline, a backend). Their API
//! keys act as the account (`service:<name>`, Cedar `Nexus::ServiceAccount::"<name>"`) with its
//! role, so keys can be rotated while audit and policies keep naming the same identity, and
//! deleting the account ends all its keys at once.

use chrono::{DateTime, Utc};
use nexus_core::identity::Role;
use nexus_core::{Caller, Name, ServiceAccount, ServiceAccountId, TenantId};
use nexus_store::StoreError;

use crate::keys::{CreatedKey, NewKeyRequest};
use crate::{Action, ControlError, ControlPlane, audit};

/// Longest description of a service account, in characters.
pub const MAX_SERVICE_ACCOUNT_DESCRIPTION_LEN: usize = 500;

impl ControlPlane {
    /// Creates a service account with `role` (at most the caller's own).
    pub async fn create_service_account(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: Name,
        role: Role,
        description: String,
    ) -> Result<ServiceAccount, ControlError> {
        self.authorize(caller, tenant, Action::KeyCreate).await?;
        if !caller.platform_admin && role > caller.role {
            return Err(ControlError::Denied(format!(
                "a `{}` cannot create a service account with the role `{role}`",
                caller.role
            )));
        }
        if description.chars().count() > MAX_SERVICE_ACCOUNT_DESCRIPTION_LEN
            || description.chars().any(char::is_control)
        {
            return Err(ControlError::Invalid(format!(
                "description: at most {MAX_SERVICE_ACCOUNT_DESCRIPTION_LEN} characters, without control characters"
            )));
        }
        let account = ServiceAccount {
            id: ServiceAccountId::new(),
            tenant_id: tenant,
            name,
            role,
            description,
            created_by: caller.principal.id(),
            created_at: nexus_core::page::now(),
        };
        let event = audit::event(
            caller,
            "service_account.create",
            format!("service-accounts/{}", account.name),
            serde_json::json!({ "role": role }),
        );
        match self.store.create_service_account(account, event).await {
            Err(StoreError::AlreadyExists { .. }) => Err(ControlError::Conflict(
                "the tenant has a service account of that name".into(),
            )),
            other => Ok(other?),
        }
    }

    /// The tenant's service accounts by name.
    pub async fn list_service_accounts(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> Result<Vec<ServiceAccount>, ControlError> {
        self.authorize(caller, tenant, Action::KeyList).await?;
        Ok(self.store.list_service_accounts(tenant).await?)
    }

    /// Deletes a service account and all its keys, refused from the next request on.
    pub async fn delete_service_account(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<ServiceAccount, ControlError> {
        self.authorize(caller, tenant, Action::KeyRevoke).await?;
        let event = audit::event(
            caller,
            "service_account.delete",
            format!("service-accounts/{name}"),
            serde_json::Value::Null,
        );
        let deleted = self
            .store
            .delete_service_account(tenant, name, event)
            .await?;
        self.keys.forget_service_account(deleted.id);
        Ok(deleted)
    }

    /// Makes a key of the service account `account`, with its role.
    pub async fn create_service_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        account: &Name,
        name: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedKey, ControlError> {
        self.authorize(caller, tenant, Action::KeyCreate).await?;
        let found = self.store.get_service_account(tenant, account).await?;
        self.create_key_for(
            caller,
            tenant,
            NewKeyRequest {
                name,
                role: found.role,
                platform_admin: false,
                expires_at,
            },
            Some((found.id, found.name)),
        )
        .await
    }
}
