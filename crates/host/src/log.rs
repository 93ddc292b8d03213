//! `nexus:agent/log`: structured logs attached to the task, within a size budget.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::log::{self as wit, Level};
use crate::emit::{AgentEvent, EventSink, OutputMeter};

/// The `log` context of one task.
#[derive(Debug)]
pub struct LogCapability {
    sink: EventSink,
    task_id: String,
    /// Bytes of log text; past the limit, lines are dropped and the task ends with `log_limit`.
    pub meter: OutputMeter,
}

impl LogCapability {
    pub fn new(sink: EventSink, task_id: String, log_limit: usize) -> Self {
        Self {
            sink,
            task_id,
            meter: OutputMeter::new(log_limit),
        }
    }
}

impl wit::Host for LogCapability {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let size = crate::emit::EVENT_OVERHEAD_BYTES
            + message.len()
            + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.meter.charge(size) {
            return;
        }
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        tracing::debug!(task = %self.task_id, agent_level = level, %message, "agent log");
        self.sink.send(AgentEvent::Log {
            level: level.to_owned(),
            message,
            fields,
        });
    }
}

/// Links `nexus:agent/log`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogCapability>>(linker, get)
}
