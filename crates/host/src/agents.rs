//! `nexus:agent/agents`: calling other agents. The host only checks the grant and converts
//! types; the platform behind [`AgentCaller`] runs the call as a child task (the control plane
//! on a server). Without a caller (e.g. `nexus run`) a granted call answers `unavailable`.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use nexus_core::message::Part;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::agents::{self as wit, CallError};
use crate::bindings::nexus::agent::types as wit_types;
use crate::convert::{part_from_wit, part_to_wit};

/// Why a call to another agent failed; mirrors the WIT `call-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentCallError {
    /// Policy forbids this call (e.g. another tenant's agent).
    #[error("denied: {0}")]
    Denied(String),
    #[error("no agent `{0}`")]
    NotFound(String),
    /// The call would go deeper than the platform allows, or call an agent already in the chain.
    #[error("call depth exceeded: {0}")]
    DepthExceeded(String),
    /// The called agent's task did not complete.
    #[error("the called agent failed: {0}")]
    Failed(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Runs one agent's call to another and returns the reply.
#[async_trait]
pub trait AgentCaller: Send + Sync + Debug {
    /// Calls `target` (`{tenant}/{agent}` or an agent name in the caller's tenant).
    async fn call(&self, target: &str, message: Vec<Part>) -> Result<Vec<Part>, AgentCallError>;
}

/// The `agents` context of one task.
#[derive(Debug, Default)]
pub struct AgentsCapability {
    granted: bool,
    caller: Option<Arc<dyn AgentCaller>>,
}

impl AgentsCapability {
    /// Granted (or not) with no platform behind it: granted calls answer `unavailable`.
    pub fn new(granted: bool) -> Self {
        Self {
            granted,
            caller: None,
        }
    }

    /// Granted, with calls carried out by `caller`.
    pub fn granted(caller: Arc<dyn AgentCaller>) -> Self {
        Self {
            granted: true,
            caller: Some(caller),
        }
    }
}

impl wit::Host for AgentsCapability {
    async fn call(
        &mut self,
        agent: String,
        message: Vec<wit_types::Part>,
    ) -> Result<Vec<wit_types::Part>, CallError> {
        if !self.granted {
            return Err(CallError::Denied);
        }
        let Some(caller) = &self.caller else {
            return Err(CallError::Unavailable(
                "agent-to-agent calls need a NexusCore server; `nexus run` has none".into(),
            ));
        };
        let message = message.into_iter().map(part_from_wit).collect();
        match caller.call(&agent, message).await {
            Ok(reply) => Ok(reply.iter().map(part_to_wit).collect()),
            // The WIT `denied` carries no reason; the caller's log has it.
            Err(AgentCallError::Denied(why)) => {
                tracing::info!(target_agent = %agent, reason = %why, "agent call denied");
                Err(CallError::Denied)
            }
            Err(AgentCallError::NotFound(what)) => Err(CallError::NotFound(what)),
            Err(AgentCallError::DepthExceeded(why)) => {
                tracing::info!(target_agent = %agent, reason = %why, "agent call refused");
                Err(CallError::DepthExceeded)
            }
            Err(AgentCallError::Failed(why)) => Err(CallError::Failed(why)),
            Err(AgentCallError::Unavailable(why)) => Err(CallError::Unavailable(why)),
        }
    }
}

/// Links `nexus:agent/agents`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut AgentsCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<AgentsCapability>>(linker, get)
}
