//! Write NexusCore agents in Rust.
//!
//! An agent is a type implementing [`Agent`], exported with [`export_agent!`]:
//!
//! ```ignore
//! use nexus_agent_sdk::{Agent, AgentError, Response, Task};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn handle(task: Task) -> Result<Response, AgentError> {
//!         Ok(Response::text(format!("you said: {}", task.text())))
//!     }
//! }
//!
//! nexus_agent_sdk::export_agent!(Echo);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2` (`nexus run .` does this for you). The platform
//! calls [`Agent::handle`] once per task; everything else goes through the modules here:
//! [`state`], [`llm`], [`emit`], [`config`], [`log`], [`http`], [`agents`], [`bus`]. Each
//! capability must be granted to the deployment; an ungranted call returns a `Denied` error.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "agent",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "nexus_agent_sdk::bindings",
        generate_all,
    });
}

pub use bindings::exports::nexus::agent::handler::{AgentError, Outcome, Response, Task};
pub use bindings::nexus::agent::types::{Artifact, FilePart, Message, Part, Role};

/// An agent: one call per task.
pub trait Agent {
    /// Handles one task and returns the reply (or why it could not).
    fn handle(task: Task) -> Result<Response, AgentError>;
}

/// Exports `$agent` (a type implementing [`Agent`]) as the component's task handler.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        const _: () = {
            struct __NexusExport;
            impl $crate::bindings::exports::nexus::agent::handler::Guest for __NexusExport {
                fn handle(
                    task: $crate::Task,
                ) -> ::core::result::Result<$crate::Response, $crate::AgentError> {
                    <$agent as $crate::Agent>::handle(task)
                }
            }
    $crate::bindings::export!(__NexusExport with_types_in $crate::bindings);
        };
    };
}

/// Lets an agent use `?` on capability calls: any capability error fails the task with a
/// readable message.
macro_rules! fails_task {
    ($($error:ty => $what:literal),* $(,)?) => {
        $(
            impl From<$error> for AgentError {
                fn from(error: $error) -> Self {
                    AgentError::Failed(format!("{}: {error:?}", $what))
                }
            }
        )*
    };
}

fails_task!(
    state::StateError => "state",
    llm::LlmError => "llm",
    agents::CallError => "agent call",
    bus::BusError => "bus",
    emit::EmitError => "emit",
);

#[cfg(feature = "http")]
impl From<http::HttpError> for AgentError {
    fn from(error: http::HttpError) -> Self {
        AgentError::Failed(error.to_string())
    }
}

/// Concatenates the text parts of `parts`, separated by newlines.
pub fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Task {
    /// The text of the new message.
    pub fn text(&self) -> String {
        text_of(&self.message)
    }

    /// The metadata value under `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Response {
    /// A completed task whose reply is `text`.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Completed,
            message: vec![Part::Text(text.into())],
            artifacts: Vec::new(),
        }
    }

    /// Asks the caller for more input; the next message continues this task.
    pub fn input_required(question: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::InputRequired,
            message: vec![Part::Text(question.into())],
            artifacts: Vec::new(),
        }
    }

    /// Adds an artifact to the response.
    pub fn with_artifact(mut self, artifact: Artifact) -> Self {
        self.artifacts.push(artifact);
        self
    }
}

impl Artifact {
    /// A text artifact.
    pub fn text(id: impl Into<String>, name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: Some(name.into()),
            parts: vec![Part::Text(text.into())],
        }
    }
}

/// Durable key-value state scoped to (agent, session).
pub mod state {
    pub use crate::bindings::nexus::agent::state::{
        StateError, compare_and_swap, delete, get, list_keys, set,
    };

    /// The value under `key` as UTF-8 text (lossy), if any.
    pub fn get_string(key: &str) -> Result<Option<String>, StateError> {
        Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Stores `value` as UTF-8 text.
    pub fn set_string(key: &str, value: &str) -> Result<(), StateError> {
        set(key, value.as_bytes())
    }
}

/// Chat completion through the platform's model gateway.
pub mod llm {
    pub use crate::bindings::nexus::agent::llm::{
        ChatMessage, Completion, CompletionRequest, LlmError, TokenUsage, complete,
    };

    /// Asks the default model one question and returns the answer text.
    pub fn ask(prompt: &str) -> Result<String, LlmError> {
        Ok(complete(&CompletionRequest {
            model: None,
            messages: vec![ChatMessage {
                role: "user".into(),
                content: prompt.into(),
            }],
            max_tokens: None,
            temperature: None,
        })?
        .content)
    }
}

/// Streaming to the caller while the task runs.
pub mod emit {
    pub use crate::bindings::nexus::agent::emit::{
        EmitError, artifact_chunk, partial_text, progress,
    };
}

/// Configuration values and secrets granted to the deployment.
pub mod config {
    pub use crate::bindings::nexus::agent::config::{get, get_secret, keys};
}

/// Calling other agents.
pub mod agents {
    pub use crate::bindings::nexus::agent::agents::{CallError, call};
}

/// Publishing to topics.
pub mod bus {
    pub use crate::bindings::nexus::agent::bus::{BusError, publish};
}

/// Structured logs attached to the task.
pub mod log {
    pub use crate::bindings::nexus::agent::log::{Level, log};

    /// Logs `message` at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message, &[]);
    }

    /// Logs `message` at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message, &[]);
    }

    /// Logs `message` at info level.
    pub fn info(message: &str) {
        log(Level::Info, message, &[]);
    }

    /// Logs `message` at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message, &[]);
    }

    /// Logs `message` at error level.
    pub fn error(message: &str) {
        log(Level::Error, message, &[]);
    }
}

#[cfg(feature = "http")]
pub mod http;
