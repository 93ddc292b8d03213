//! Changing passwords: a user changes its own (knowing the current one), a platform admin
//! resets anyone's (accounts span tenants, so no tenant's admin may). Either way every session
//! of the account ends, in every tenant.

use nexus_auth::password;
use nexus_core::{Caller, Name, Principal};

use crate::{Action, ControlError, ControlPlane, audit};

impl ControlPlane {
    /// Changes the calling user's password; `current` must be right. Ends all its sessions,
    /// the calling one too.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: String,
        new: String,
    ) -> Result<(), ControlError> {
        let Principal::Account { name, .. } = &caller.principal else {
            return Err(ControlError::Invalid(
                "only a logged-in user has a password to change".into(),
            ));
        };
        password::check_password(&new)
            .map_err(|e| ControlError::Invalid(format!("new password: {e}")))?;
        let Some((user, stored)) = self.store.find_user(name).await? else {
            return Err(ControlError::Unauthenticated("the account is gone".into()));
        };
        if !self.verify_password(current, stored).await? {
            self.audit_login_failure(caller.tenant, &user).await;
            return Err(ControlError::Denied("the current password is wrong".into()));
        }
        let hash = self.hash_password(new).await?;
        let event = audit::event(
            caller,
            "user.password",
            format!("users/{name}"),
            serde_json::Value::Null,
        );
        self.store
            .set_password(user.id, &hash, caller.tenant, event)
            .await?;
        self.keys.forget_user(user.id);
        Ok(())
    }

    /// Sets another account's password (platform admins only). Ends all its sessions.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        name: &Name,
        new: String,
    ) -> Result<(), ControlError> {
        self.authorize(caller, caller.tenant, Action::PasswordReset)
            .await?;
        password::check_password(&new)
            .map_err(|e| ControlError::Invalid(format!("new password: {e}")))?;
        let Some((user, _)) = self.store.find_user(name).await? else {
            return Err(ControlError::Store(nexus_store::StoreError::not_found(
                "user", name,
            )));
        };
        let hash = self.hash_password(new).await?;
        let event = audit::event(
            caller,
            "user.password_reset",
            format!("users/{name}"),
            serde_json::Value::Null,
        );
        self.store
            .set_password(user.id, &hash, caller.tenant, event)
            .await?;
        self.keys.forget_user(user.id);
        Ok(())
    }
}
