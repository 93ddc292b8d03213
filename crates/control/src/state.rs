//! Agent state at rest: every value sealed under the tenant's data key (AES-256-GCM), bound to
//! its tenant, agent, session and key, so the database holds no plaintext and a value copied
//! to another row does not open. Keys (the names agents give their values) stay readable, as
//! secret names do: they are needed for lookups and prefix listings.

use std::sync::Arc;

use async_trait::async_trait;
use nexus_core::{AgentId, TenantId};
use nexus_secrets::{DataKey, Kms, StateSlot};
use nexus_store::{Result, StateEntry, StateScope, StateStore, Store, StoreError};
use tokio::sync::OnceCell;

use crate::secrets;

/// How often a compare-and-swap retries when another writer changed the sealed bytes between
/// its read and its swap. Sealing is randomised, so the store compares ciphertexts, not values:
/// a retry reads again and compares the plaintext. Each retry means another writer made
/// progress, so a handful is plenty; past it the swap reports "not swapped", which agents must
/// handle anyway.
const MAX_SWAP_ATTEMPTS: usize = 8;

/// The state of one tenant's agents, sealed on the way in and opened on the way out. Made per
/// task; the data key is unwrapped on the first state call only, so tasks that never touch
/// state pay nothing.
pub(crate) struct SealedState {
    store: Arc<dyn Store>,
    kms: Arc<dyn Kms>,
    tenant: TenantId,
    key: OnceCell<DataKey>,
}

impl SealedState {
    pub(crate) fn new(store: Arc<dyn Store>, kms: Arc<dyn Kms>, tenant: TenantId) -> Self {
        Self {
            store,
            kms,
            tenant,
            key: OnceCell::new(),
        }
    }

    async fn key(&self) -> Result<&DataKey> {
        self.key
            .get_or_try_init(|| async {
                secrets::tenant_key(self.store.as_ref(), self.kms.as_ref(), self.tenant, true)
                    .await
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?
                    .ok_or_else(|| {
                        StoreError::Corrupt("the tenant data key was not created".into())
                    })
            })
            .await
    }

    fn check_tenant(&self, scope: &StateScope) -> Result<()> {
        if scope.tenant == self.tenant {
            Ok(())
        } else {
            Err(StoreError::Corrupt(
                "agent state asked for another tenant's scope".into(),
            ))
        }
    }

    async fn seal(&self, scope: &StateScope, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.key()
            .await?
            .seal(&slot(scope.tenant, scope.agent, &scope.session, key), value)
            .map_err(|e| StoreError::Corrupt(format!("sealing state `{key}`: {e}")))
    }

    /// Opens what the store holds for (`agent`, `session`, `key`).
    pub(crate) async fn open(
        &self,
        agent: AgentId,
        session: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        match self
            .key()
            .await?
            .open(&slot(self.tenant, agent, session, key), sealed)
        {
            Ok(plain) => Ok(plain.to_vec()),
            // Written before state was sealed (it lacks the sealed format): read as stored,
            // and sealed by the next write. A sealed value that fails to open is an error.
            Err(nexus_secrets::SecretsError::Malformed(_)) => Ok(sealed.to_vec()),
            Err(e) => Err(StoreError::Corrupt(format!(
                "state `{key}` does not decrypt: {e}"
            ))),
        }
    }
}

fn slot<'a>(tenant: TenantId, agent: AgentId, session: &'a str, key: &'a str) -> StateSlot<'a> {
    StateSlot {
        tenant,
        agent,
        session,
        key,
    }
}

#[async_trait]
impl StateStore for SealedState {
    async fn state_get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_tenant(scope)?;
        match self.store.state_get(scope, key).await? {
            Some(sealed) => Ok(Some(
                self.open(scope.agent, &scope.session, key, &sealed).await?,
            )),
            None => Ok(None),
        }
    }

    async fn state_put(&self, scope: &StateScope, key: &str, value: &[u8]) -> Result<()> {
        self.check_tenant(scope)?;
        let sealed = self.seal(scope, key, value).await?;
        self.store.state_put(scope, key, &sealed).await
    }

    async fn state_delete(&self, scope: &StateScope, key: &str) -> Result<()> {
        self.check_tenant(scope)?;
        self.store.state_delete(scope, key).await
    }

    async fn state_compare_and_swap(
        &self,
        scope: &StateScope,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        self.check_tenant(scope)?;
        let new = match new {
            Some(value) => Some(self.seal(scope, key, value).await?),
            None => None,
        };
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let current = self.store.state_get(scope, key).await?;
            let matches = match (&current, expected) {
                (None, None) => true,
                (Some(sealed), Some(expected)) => {
                    self.open(scope.agent, &scope.session, key, sealed).await? == expected
                }
                _ => false,
            };
            if !matches {
                return Ok(false);
            }
            if self
                .store
                .state_compare_and_swap(scope, key, current.as_deref(), new.as_deref())
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn state_list_keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.check_tenant(scope)?;
        self.store.state_list_keys(scope, prefix, limit).await
    }

    async fn state_entries(
        &self,
        tenant: TenantId,
        agent: AgentId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<StateEntry>> {
        if tenant != self.tenant {
            return Err(StoreError::Corrupt(
                "agent state asked for another tenant's entries".into(),
            ));
        }
        let mut entries = self
            .store
            .state_entries(tenant, agent, after, limit)
            .await?;
        for entry in &mut entries {
            entry.value = self
                .open(agent, &entry.session, &entry.key, &entry.value)
                .await?;
        }
        Ok(entries)
    }
}
