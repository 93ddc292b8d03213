//! `nexus:agent/state`: durable key-value state per (agent, session), over the store.

use std::fmt;
use std::sync::Arc;

use nexus_store::{StateScope, StateStore, StoreError};
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::state::{self as wit, StateError};

/// Longest key, in bytes: keys are for lookup, not storage.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes: state is for small structured data; big outputs are artifacts.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most keys one `list-keys` call returns.
pub const MAX_LIST_KEYS: u32 = 1000;

/// The `state` context of one task: where its state lives, or `None` when not granted.
pub struct StateCapability {
    backend: Option<(Arc<dyn StateStore>, StateScope)>,
}

impl StateCapability {
    /// State granted, stored in `store` under `scope`.
    pub fn granted(store: Arc<dyn StateStore>, scope: StateScope) -> Self {
        Self {
            backend: Some((store, scope)),
        }
    }

    /// Every call answers `denied`.
    pub fn denied() -> Self {
        Self { backend: None }
    }

    fn backend(&self) -> Result<(&dyn StateStore, &StateScope), StateError> {
        self.backend
            .as_ref()
            .map(|(store, scope)| (store.as_ref(), scope))
            .ok_or(StateError::Denied)
    }
}

impl fmt::Debug for StateCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCapability")
            .field("scope", &self.backend.as_ref().map(|(_, scope)| scope))
            .finish()
    }
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "keys must be 1 to {MAX_KEY_BYTES} bytes, this one is {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), StateError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StateError::TooLarge(format!(
            "values may be at most {MAX_VALUE_BYTES} bytes, this one is {}",
            value.len()
        )));
    }
    Ok(())
}

fn storage_error(err: StoreError) -> StateError {
    tracing::warn!(error = %err, "agent state operation failed");
    StateError::Unavailable(err.to_string())
}

impl wit::Host for StateCapability {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StateError> {
        let (store, scope) = self.backend()?;
        check_key(&key)?;
        store.state_get(scope, &key).await.map_err(storage_error)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        let (store, scope) = self.backend()?;
        check_key(&key)?;
        check_value(&value)?;
        store
            .state_put(scope, &key, &value)
            .await
            .map_err(storage_error)
    }

    async fn delete(&mut self, key: String) -> Result<(), StateError> {
        let (store, scope) = self.backend()?;
        check_key(&key)?;
        store.state_delete(scope, &key).await.map_err(storage_error)
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StateError> {
        let (store, scope) = self.backend()?;
        check_key(&key)?;
        if let Some(new) = &new {
            check_value(new)?;
        }
        store
            .state_compare_and_swap(scope, &key, expected.as_deref(), new.as_deref())
            .await
            .map_err(storage_error)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, StateError> {
        let (store, scope) = self.backend()?;
        if prefix.len() > MAX_KEY_BYTES {
            return Err(StateError::InvalidKey(
                "prefix longer than the key limit".into(),
            ));
        }
        store
            .state_list_keys(scope, &prefix, limit.min(MAX_LIST_KEYS))
            .await
            .map_err(storage_error)
    }
}

/// Links `nexus:agent/state`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StateCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<StateCapability>>(linker, get)
}
