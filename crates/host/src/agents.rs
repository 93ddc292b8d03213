//! `nexus:agent/agents`: calling other agents. Arrives with the control plane; until then a
//! granted call answers `unavailable`.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::agents::{self as wit, CallError};
use crate::bindings::nexus::agent::types::Part;

/// The `agents` context of one task.
#[derive(Debug, Default)]
pub struct AgentsCapability {
    granted: bool,
}

impl AgentsCapability {
    pub fn new(granted: bool) -> Self {
        Self { granted }
    }
}

impl wit::Host for AgentsCapability {
    async fn call(&mut self, _agent: String, _message: Vec<Part>) -> Result<Vec<Part>, CallError> {
        if !self.granted {
            return Err(CallError::Denied);
        }
        Err(CallError::Unavailable(
            "agent-to-agent calls are not available in this runtime yet".into(),
        ))
    }
}

/// Links `nexus:agent/agents`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut AgentsCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<AgentsCapability>>(linker, get)
}
