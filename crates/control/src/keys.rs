//! API keys: made (shown once), listed, revoked, and turned back into a [`Caller`] on every
//! request ([`ControlPlane::authenticate`], which hands bearer tokens shaped like JWTs to
//! `oidc` instead when an issuer is configured).
//!
//! Authentication reads through a small cache of recently seen keys, so a request costs a hash
//! and a map lookup rather than a database read. Revoking through this node drops the key from
//! the cache at once; another node sharing the database notices within [`KEY_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nexus_core::identity::{MAX_KEY_NAME_LEN, Role};
use nexus_core::{ApiKey, ApiKeyId, Caller, NewApiKey, Page, PageRequest, TenantId};

use crate::{Action, ControlError, ControlPlane, audit};

/// How long a key read from the database is trusted without reading it again: what another
/// node's revocation may take to reach this one.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Keys kept in the cache; past this it starts over (a few hundred bytes each).
const MAX_CACHED_KEYS: usize = 10_000;

/// What a new key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyRequest {
    pub name: String,
    pub role: Role,
    /// Manage tenants and act in all of them (only a platform admin may grant this).
    pub platform_admin: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just made: the stored key and its secret, which is shown this once.
#[derive(Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Recently authenticated keys by secret hash.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<String, (ApiKey, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<ApiKey> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(hash)
            .filter(|(_, read)| read.elapsed() < KEY_CACHE_TTL)
            .map(|(key, _)| key.clone())
    }

    fn put(&self, hash: String, key: ApiKey) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(hash, (key, Instant::now()));
    }

    pub(crate) fn forget(&self, id: ApiKeyId) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|_, (key, _)| key.id != id);
    }

    /// Forgets every session of a user (after its membership changed).
    pub(crate) fn forget_user(&self, user: nexus_core::UserId) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|_, (key, _)| key.user_id != Some(user));
    }

    /// Forgets every key of a deleted service account.
    pub(crate) fn forget_service_account(&self, account: nexus_core::ServiceAccountId) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|_, (key, _)| key.service_account_id != Some(account));
    }

    /// Forgets every key of a deleted tenant.
    pub(crate) fn forget_tenant(&self, tenant: TenantId) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|_, (key, _)| key.tenant_id != tenant);
    }
}

impl ControlPlane {
    /// The caller a bearer credential stands for: a JWT from the OIDC issuer, when one is
    /// configured and the credential looks like a JWT, or else an API key. Unknown, expired and
    /// revoked keys are all `Unauthenticated`, with the same message, so a guess learns
    /// nothing; an expired or revoked key's use is recorded in its tenant's audit chain.
    pub async fn authenticate(&self, credential: &str) -> Result<Caller, ControlError> {
        if let Some(oidc) = &self.oidc
            && nexus_auth::jwt::looks_like_jwt(credential)
        {
            let authenticated = oidc.authenticate(self.store.as_ref(), credential).await;
            if let Err(ControlError::Unauthenticated(_)) = &authenticated {
                self.record_auth_failure("oidc_token").await;
            }
            return authenticated;
        }
        if credential.len() > nexus_auth::MAX_CREDENTIAL_LEN {
            metrics::counter!("nexus_auth_failures_total", "reason" => "unknown_key").increment(1);
            self.record_auth_failure("unknown_key").await;
            return Err(unauthenticated());
        }
        let hash = nexus_auth::hash_key(credential);
        let key = match self.keys.get(&hash) {
            Some(key) => key,
            None => {
                let Some(key) = self.store.find_api_key_by_hash(&hash).await? else {
                    metrics::counter!("nexus_auth_failures_total", "reason" => "unknown_key")
                        .increment(1);
                    self.record_auth_failure("unknown_key").await;
                    return Err(unauthenticated());
                };
                self.keys.put(hash, key.clone());
                key
            }
        };
        if !key.is_active(nexus_core::page::now()) {
            let reason = if key.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            };
            metrics::counter!("nexus_auth_failures_total", "reason" => reason).increment(1);
            let event = nexus_core::NewAuditEvent {
                actor: format!("key:{}", key.id),
                action: "auth.fail".into(),
                target: format!("keys/{}", key.id),
                details: serde_json::json!({ "reason": reason }),
            };
            if let Err(e) = self.store.append_audit(key.tenant_id, event).await {
                tracing::warn!(error = %e, "a refused key could not be audited");
            }
            return Err(unauthenticated());
        }
        Ok(Caller::for_key(&key))
    }

    /// Makes a key in `tenant`. A caller cannot hand out more than it has: a role above its
    /// own, or platform rights it lacks.
    pub async fn create_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: NewKeyRequest,
    ) -> Result<CreatedKey, ControlError> {
        self.create_key_for(caller, tenant, request, None).await
    }

    /// [`create_key`](Self::create_key), for a service account when `account` is given.
    pub(crate) async fn create_key_for(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: NewKeyRequest,
        account: Option<(nexus_core::ServiceAccountId, nexus_core::Name)>,
    ) -> Result<CreatedKey, ControlError> {
        self.authorize(caller, tenant, Action::KeyCreate).await?;
        if !caller.platform_admin && request.role > caller.role {
            return Err(ControlError::Denied(format!(
                "a `{}` cannot create a key with the role `{}`",
                caller.role, request.role
            )));
        }
        if request.platform_admin && !caller.platform_admin {
            return Err(ControlError::Denied(
                "only a platform admin can create platform admin keys".into(),
            ));
        }
        check_key_name(&request.name)?;
        if request
            .expires_at
            .is_some_and(|at| at <= nexus_core::page::now())
        {
            return Err(ControlError::Invalid(
                "expires_at: must be in the future".into(),
            ));
        }
        let secret =
            nexus_auth::generate_key().map_err(|e| ControlError::Internal(e.to_string()))?;
        let key = self
            .store_key(caller, tenant, request, secret.prefix, secret.hash, account)
            .await?;
        Ok(CreatedKey {
            key,
            secret: secret.secret,
        })
    }

    async fn store_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: NewKeyRequest,
        prefix: String,
        hash: String,
        account: Option<(nexus_core::ServiceAccountId, nexus_core::Name)>,
    ) -> Result<ApiKey, ControlError> {
        let new = NewApiKey {
            id: ApiKeyId::new(),
            name: request.name,
            role: request.role,
            platform_admin: request.platform_admin,
            prefix,
            secret_hash: hash,
            created_by: caller.principal.id(),
            expires_at: request.expires_at,
            user_id: None,
            service_account: account,
            teams: Vec::new(),
        };
        let event = audit::event(
            caller,
            "key.create",
            format!("keys/{}", new.id),
            serde_json::json!({
                "name": new.name,
                "role": new.role,
                "platform_admin": new.platform_admin,
                "expires_at": new.expires_at,
                "service_account": new.service_account.as_ref().map(|(_, name)| name),
            }),
        );
        Ok(self.store.create_api_key(tenant, new, event).await?)
    }

    /// A tenant's keys, revoked ones included, without their secrets.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, ControlError> {
        self.authorize(caller, tenant, Action::KeyList).await?;
        Ok(self.store.list_api_keys(tenant, page).await?)
    }

    /// Revokes a key: refused from the next request on.
    pub async fn revoke_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: ApiKeyId,
    ) -> Result<ApiKey, ControlError> {
        self.authorize(caller, tenant, Action::KeyRevoke).await?;
        let event = audit::event(
            caller,
            "key.revoke",
            format!("keys/{id}"),
            serde_json::Value::Null,
        );
        let key = self.store.revoke_api_key(tenant, id, event).await?;
        self.keys.forget(id);
        Ok(key)
    }

    /// Makes a fresh platform usable: when no key exists anywhere, creates a platform admin
    /// key (owner of `tenant`) from `chosen` (`NEXUS_BOOTSTRAP_API_KEY`) or at random. Returns
    /// the secret of a key it made at random, to be shown once; `None` when keys exist or the
    /// key was chosen. A chosen key that already exists is kept as it is.
    pub async fn bootstrap_key(
        &self,
        tenant: TenantId,
        chosen: Option<&str>,
    ) -> Result<Option<String>, ControlError> {
        let system = Caller::system(tenant);
        let request = NewKeyRequest {
            name: "bootstrap".into(),
            role: Role::Owner,
            platform_admin: true,
            expires_at: None,
        };
        if let Some(chosen) = chosen {
            let secret = nexus_auth::accept_key(chosen)
                .map_err(|e| ControlError::Invalid(format!("NEXUS_BOOTSTRAP_API_KEY: {e}")))?;
            if self
                .store
                .find_api_key_by_hash(&secret.hash)
                .await?
                .is_none()
            {
                self.store_key(&system, tenant, request, secret.prefix, secret.hash, None)
                    .await?;
            }
            return Ok(None);
        }
        if self.store.any_api_key().await? {
            return Ok(None);
        }
        let secret =
            nexus_auth::generate_key().map_err(|e| ControlError::Internal(e.to_string()))?;
        self.store_key(&system, tenant, request, secret.prefix, secret.hash, None)
            .await?;
        Ok(Some(secret.secret))
    }
}

fn unauthenticated() -> ControlError {
    ControlError::Unauthenticated("the API key is unknown, expired or revoked".into())
}

fn check_key_name(name: &str) -> Result<(), ControlError> {
    let len = name.chars().count();
    if name.trim().is_empty() || len > MAX_KEY_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(format!(
            "name: must be 1 to {MAX_KEY_NAME_LEN} characters, not blank, without control \
             characters"
        )));
    }
    Ok(())
}
