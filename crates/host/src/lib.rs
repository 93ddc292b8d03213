//! Host capabilities: what an agent can ask of the platform, through the `nexus:agent` WIT
//! contract (`wit/agent.wit`).
//!
//! Each capability is a module with its own context type and `add_to_linker` function:
//! [`state`], [`config`], [`log`], [`emit`], [`llm`], [`agents`], [`bus`], and the outbound
//! HTTP policy in [`http`]. Capabilities are linked for every agent (so any component
//! instantiates) but deny at call time unless the deployment granted them. [`Capabilities`]
//! bundles one task's contexts; the runtime keeps it in the wasmtime store.

pub mod agents;
pub mod bindings;
pub mod bus;
pub mod config;
pub mod convert;
pub mod emit;
pub mod http;
pub mod llm;
pub mod log;
pub mod state;

use wasmtime::component::{HasSelf, Linker};

pub use emit::{AgentEvent, OutputMeter};

/// Names of grantable capabilities, as used in manifests and grants.
pub mod capability {
    pub const STATE: &str = "state";
    pub const LLM: &str = "llm";
    pub const AGENTS: &str = "agents";
    pub const BUS: &str = "bus";
}

/// The capability contexts of one task.
#[derive(Debug)]
pub struct Capabilities {
    pub state: state::StateCapability,
    pub config: config::ConfigCapability,
    pub log: log::LogCapability,
    pub emit: emit::EmitCapability,
    pub llm: llm::LlmCapability,
    pub agents: agents::AgentsCapability,
    pub bus: bus::BusCapability,
}

/// Store data that carries a task's [`Capabilities`].
pub trait CapabilityView {
    fn capabilities(&mut self) -> &mut Capabilities;
}

/// Links every `nexus:agent` import.
pub fn add_to_linker<T: CapabilityView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    use bindings::nexus::agent as wit;
    wit::types::add_to_linker::<T, HasSelf<Capabilities>>(linker, |t| t.capabilities())?;
    state::add_to_linker(linker, |t| &mut t.capabilities().state)?;
    config::add_to_linker(linker, |t| &mut t.capabilities().config)?;
    log::add_to_linker(linker, |t| &mut t.capabilities().log)?;
    emit::add_to_linker(linker, |t| &mut t.capabilities().emit)?;
    llm::add_to_linker(linker, |t| &mut t.capabilities().llm)?;
    agents::add_to_linker(linker, |t| &mut t.capabilities().agents)?;
    bus::add_to_linker(linker, |t| &mut t.capabilities().bus)?;
    Ok(())
}

impl bindings::nexus::agent::types::Host for Capabilities {}
