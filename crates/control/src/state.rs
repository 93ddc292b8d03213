//! Agent state at rest: every value sealed under the tenant's data key (AES-256-GCM), bound to
//! its tenant, agent, session and key, so the database holds no plaintext and a value copied
//! to another row does not open. Keys (the names agents give their values) stay readable, as
//! secret names do: they are needed for lookups and prefix listings.

use std::sync::Arc;

use async_trait::async_trait;
use nexus_core::{AgentId, NewAuditEvent, TenantId};
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

    async fn state_clear(
        &self,
        tenant: TenantId,
        agent: AgentId,
        session: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<u64> {
        if tenant != self.tenant {
            return Err(StoreError::Corrupt(
                "agent state asked for another tenant's entries".into(),
            ));
        }
        self.store.state_clear(tenant, agent, session, audit).await
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

/// Most state keys one listing returns: a page a person reads; an agent with more is looked
/// at one session at a time.
pub const MAX_STATE_KEYS_LISTED: u32 = 1000;

/// One value's place in an agent's state: its session (the tasks' context id) and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKey {
    pub session: String,
    pub key: String,
}

/// The keys of an agent's state, in (session, key) order, and whether more were left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateListing {
    pub keys: Vec<StateKey>,
    pub more: bool,
}

impl crate::ControlPlane {
    /// The keys of `agent`'s state, of one `session` or of all, at most `limit` (capped at
    /// [`MAX_STATE_KEYS_LISTED`]); no values.
    pub async fn list_state(
        &self,
        caller: &nexus_core::Caller,
        tenant: TenantId,
        agent: &nexus_core::Name,
        session: Option<&str>,
        limit: u32,
    ) -> std::result::Result<StateListing, crate::ControlError> {
        let agent = self
            .agent_for(caller, tenant, crate::Action::StateRead, agent)
            .await?;
        let limit = limit.clamp(1, MAX_STATE_KEYS_LISTED);
        let mut keys: Vec<StateKey> = match session {
            Some(session) => {
                let scope = StateScope {
                    tenant,
                    agent: agent.id,
                    session: session.to_owned(),
                };
                self.store
                    .state_list_keys(&scope, "", limit + 1)
                    .await?
                    .into_iter()
                    .map(|key| StateKey {
                        session: session.to_owned(),
                        key,
                    })
                    .collect()
            }
            None => self
                .store
                .state_entries(tenant, agent.id, None, limit + 1)
                .await?
                .into_iter()
                .map(|entry| StateKey {
                    session: entry.session,
                    key: entry.key,
                })
                .collect(),
        };
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        Ok(StateListing { keys, more })
    }

    /// One value of `agent`'s state in the clear, opened under the tenant's data key. Reading
    /// is audited: the value leaves the platform.
    pub async fn get_state(
        &self,
        caller: &nexus_core::Caller,
        tenant: TenantId,
        agent: &nexus_core::Name,
        session: &str,
        key: &str,
    ) -> std::result::Result<Vec<u8>, crate::ControlError> {
        let agent = self
            .agent_for(caller, tenant, crate::Action::StateRead, agent)
            .await?;
        let scope = StateScope {
            tenant,
            agent: agent.id,
            session: session.to_owned(),
        };
        let sealed = SealedState::new(self.store.clone(), self.kms.clone(), tenant);
        let value = sealed
            .state_get(&scope, key)
            .await?
            .ok_or_else(|| StoreError::not_found("state key", format!("{session}/{key}")))?;
        self.store
            .append_audit(
                tenant,
                crate::audit::event(
                    caller,
                    "state.read",
                    format!("agents/{}/state", agent.name),
                    serde_json::json!({ "agent_id": agent.id, "session": session, "key": key }),
                ),
            )
            .await?;
        Ok(value)
    }

    /// Removes `agent`'s state, of one `session` or all of it, audited; returns how many
    /// values went.
    pub async fn clear_state(
        &self,
        caller: &nexus_core::Caller,
        tenant: TenantId,
        agent: &nexus_core::Name,
        session: Option<&str>,
    ) -> std::result::Result<u64, crate::ControlError> {
        let agent = self
            .agent_for(caller, tenant, crate::Action::StateClear, agent)
            .await?;
        let event = crate::audit::event(
            caller,
            "state.clear",
            format!("agents/{}/state", agent.name),
            serde_json::json!({ "agent_id": agent.id, "session": session }),
        );
        Ok(self
            .store
            .state_clear(tenant, agent.id, session, event)
            .await?)
    }
}
