//! `nexus:agent/config`: configuration values and secrets granted to the deployment.

use std::collections::BTreeMap;
use std::fmt;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::config as wit;

/// The configuration one task sees.
#[derive(Default)]
pub struct ConfigCapability {
    values: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}

impl ConfigCapability {
    pub fn new(values: BTreeMap<String, String>, secrets: BTreeMap<String, String>) -> Self {
        Self { values, secrets }
    }
}

impl fmt::Debug for ConfigCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret values never reach logs.
        f.debug_struct("ConfigCapability")
            .field("values", &self.values)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl wit::Host for ConfigCapability {
    async fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }

    async fn get_secret(&mut self, name: String) -> Option<String> {
        self.secrets.get(&name).cloned()
    }

    async fn keys(&mut self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }
}

/// Links `nexus:agent/config`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ConfigCapability>>(linker, get)
}
