//! What running a task produces: the reply or a specific error, and the resources used.

use std::time::Duration;

use nexus_core::message::{Artifact, Part};
use nexus_host::llm::LlmUsage;
use serde::Serialize;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskResult {
    /// The agent finished; `reply` is its answer.
    Completed { reply: Reply },
    /// The agent needs more input; `reply` asks for it.
    InputRequired { reply: Reply },
    /// The agent refused the input (A2A `rejected`).
    Rejected { reason: String },
    /// The task failed: a limit, a trap, or the agent's own error.
    Failed { error: TaskError },
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub message: Vec<Part>,
    pub artifacts: Vec<Artifact>,
}

/// Why a task failed. Each variant has a stable [`code`](TaskError::code), which is also its
/// `code` tag when serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TaskError {
    #[error("the task ran past its deadline of {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    #[error("the agent tried to use more than {limit_bytes} bytes of memory")]
    MemoryLimit { limit_bytes: usize },
    #[error("the agent overflowed its stack (unbounded recursion?)")]
    StackOverflow,
    #[error("the agent used up its CPU budget of {limit} fuel")]
    FuelExhausted { limit: u64 },
    #[error("the agent produced more than {limit_bytes} bytes of output")]
    OutputLimit { limit_bytes: usize },
    #[error("the agent logged more than {limit_bytes} bytes")]
    LogLimit { limit_bytes: usize },
    #[error("the agent trapped: {message}")]
    Trap {
        message: String,
        /// Guest frames, innermost first, with function names where the component has them.
        backtrace: Vec<String>,
    },
    #[error("the agent failed: {message}")]
    #[serde(rename = "agent_error")]
    Agent { message: String },
    #[error("the component could not be instantiated: {message}")]
    #[serde(rename = "instantiation_failed")]
    Instantiation { message: String },
    /// Every instance slot of the node stayed taken until the task's deadline (for instance by
    /// agents waiting on agents they call).
    #[error("no instance slot came free within the task's deadline of {limit_ms} ms")]
    #[serde(rename = "node_at_capacity")]
    AtCapacity { limit_ms: u64 },
}

impl TaskError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::StackOverflow => "stack_overflow",
            Self::FuelExhausted { .. } => "fuel_exhausted",
            Self::OutputLimit { .. } => "output_limit",
            Self::LogLimit { .. } => "log_limit",
            Self::Trap { .. } => "trap",
            Self::Agent { .. } => "agent_error",
            Self::Instantiation { .. } => "instantiation_failed",
            Self::AtCapacity { .. } => "node_at_capacity",
        }
    }
}

/// Resources one task used, for metering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Serialized (in the task log's `usage` event) as `wall_time_us`, in microseconds.
    #[serde(rename = "wall_time_us", serialize_with = "micros")]
    pub wall_time: Duration,
    /// Fuel consumed (≈ wasm instructions), when metering is on.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the instance reached.
    pub peak_memory_bytes: usize,
    pub output_bytes: usize,
    pub log_bytes: usize,
    pub llm: LlmUsage,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A finished task: how it ended and what it used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskOutcome {
    pub result: TaskResult,
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialized `code` tag (what `nexus run --json` and `/v1` show) is the documented
    /// code, not the variant's name.
    #[test]
    fn serialized_errors_carry_their_documented_codes() {
        let cases = [
            (TaskError::Timeout { limit_ms: 1 }, "timeout"),
            (TaskError::MemoryLimit { limit_bytes: 1 }, "memory_limit"),
            (TaskError::StackOverflow, "stack_overflow"),
            (TaskError::FuelExhausted { limit: 1 }, "fuel_exhausted"),
            (TaskError::OutputLimit { limit_bytes: 1 }, "output_limit"),
            (TaskError::LogLimit { limit_bytes: 1 }, "log_limit"),
            (
                TaskError::Trap {
                    message: "m".into(),
                    backtrace: Vec::new(),
                },
                "trap",
            ),
            (
                TaskError::Agent {
                    message: "m".into(),
                },
                "agent_error",
            ),
            (
                TaskError::Instantiation {
                    message: "m".into(),
                },
                "instantiation_failed",
            ),
            (TaskError::AtCapacity { limit_ms: 1 }, "node_at_capacity"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
            let json = serde_json::to_value(&error).unwrap_or_default();
            assert_eq!(json["code"], code, "{error:?}");
        }
    }
}
