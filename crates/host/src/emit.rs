//! `nexus:agent/emit`: progress, partial text and artifacts streamed to the caller, and the
//! output budget they share with the final reply.

use nexus_core::message::Artifact;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::emit::{self as wit, EmitError};
use crate::bindings::nexus::agent::types as wit_types;
use crate::convert::artifact_from_wit;

/// Something an agent produced while its task runs, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    Progress {
        text: String,
    },
    PartialText {
        text: String,
    },
    Artifact {
        artifact: Artifact,
        last_chunk: bool,
    },
    Log {
        level: String,
        message: String,
        fields: Vec<(String, String)>,
    },
}

/// Where a task's events go; events sent after the receiver is gone are dropped.
#[derive(Debug, Clone, Default)]
pub struct EventSink(Option<UnboundedSender<AgentEvent>>);

impl EventSink {
    pub fn new(sender: UnboundedSender<AgentEvent>) -> Self {
        Self(Some(sender))
    }

    /// A sink that drops everything.
    pub fn discard() -> Self {
        Self(None)
    }

    pub fn send(&self, event: AgentEvent) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(event);
        }
    }
}

/// Bytes each streamed event or log line costs on top of its text. Every one becomes a row in
/// the task's log, so an empty event must not be free: a guest looping on `progress("")` would
/// otherwise grow the log (and the node's memory) without bound until its deadline.
pub const EVENT_OVERHEAD_BYTES: usize = 64;

/// Counts bytes against a budget. Once over, it stays over: the task ends with the limit error.
#[derive(Debug, Clone, Copy)]
pub struct OutputMeter {
    used: usize,
    limit: usize,
    exceeded: bool,
}

impl OutputMeter {
    pub fn new(limit: usize) -> Self {
        Self {
            used: 0,
            limit,
            exceeded: false,
        }
    }

    /// Adds `bytes`; returns false (and stays exceeded) if that goes over the limit.
    pub fn charge(&mut self, bytes: usize) -> bool {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            self.exceeded = true;
        }
        !self.exceeded
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// The `emit` context of one task.
#[derive(Debug)]
pub struct EmitCapability {
    sink: EventSink,
    /// Shared by everything the task outputs: emitted events and the final reply.
    pub meter: OutputMeter,
}

impl EmitCapability {
    pub fn new(sink: EventSink, output_limit: usize) -> Self {
        Self {
            sink,
            meter: OutputMeter::new(output_limit),
        }
    }

    fn emit(&mut self, bytes: usize, event: impl FnOnce() -> AgentEvent) -> Result<(), EmitError> {
        if !self
            .meter
            .charge(bytes.saturating_add(EVENT_OVERHEAD_BYTES))
        {
            return Err(EmitError::OutputLimit);
        }
        self.sink.send(event());
        Ok(())
    }
}

impl wit::Host for EmitCapability {
    async fn progress(&mut self, text: String) -> Result<(), EmitError> {
        self.emit(text.len(), || AgentEvent::Progress { text })
    }

    async fn partial_text(&mut self, text: String) -> Result<(), EmitError> {
        self.emit(text.len(), || AgentEvent::PartialText { text })
    }

    async fn artifact_chunk(
        &mut self,
        artifact: wit_types::Artifact,
        last_chunk: bool,
    ) -> Result<(), EmitError> {
        let artifact = artifact_from_wit(artifact);
        self.emit(artifact.size(), || AgentEvent::Artifact {
            artifact,
            last_chunk,
        })
    }
}

/// Links `nexus:agent/emit`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut EmitCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<EmitCapability>>(linker, get)
}
