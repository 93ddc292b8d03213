//! An agent that streams: sends its reply word by word while it works.
//!
//! Emits a progress note, then each word of the input (or of a default sentence) as partial
//! text, then the whole text as an artifact in two chunks, and finally returns the full reply.
//! Streaming needs no grant, but the task's output is capped: when an emit call reports
//! [`EmitError::OutputLimit`] the agent stops. Needs no grant.

use nexus_agent_sdk::emit::{self, EmitError};
use nexus_agent_sdk::{Agent, AgentError, Artifact, Response, Task};

/// Streamed when the input is empty.
const DEFAULT_TEXT: &str = "the quick brown fox jumps over the lazy dog";
/// The id (and name) of the streamed artifact; its chunks share it.
const ARTIFACT_ID: &str = "words";

struct Streamer;

impl Agent for Streamer {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let input = task.text();
        let text = if input.trim().is_empty() {
            DEFAULT_TEXT
        } else {
            &input
        };
        let words: Vec<&str> = text.split_whitespace().collect();

        emit::progress("thinking").map_err(emit_error)?;
        for word in &words {
            emit::partial_text(&format!("{word} ")).map_err(emit_error)?;
        }

        // The same text as an artifact, in two chunks that concatenate to the whole.
        let (head, tail) = words.split_at(words.len().div_ceil(2));
        let mut first = head.join(" ");
        let second = tail.join(" ");
        if !second.is_empty() {
            first.push(' ');
        }
        emit::artifact_chunk(&Artifact::text(ARTIFACT_ID, ARTIFACT_ID, first), false)
            .map_err(emit_error)?;
        emit::artifact_chunk(&Artifact::text(ARTIFACT_ID, ARTIFACT_ID, second), true)
            .map_err(emit_error)?;

        Ok(Response::text(words.join(" ")))
    }
}

fn emit_error(error: EmitError) -> AgentError {
    match error {
        EmitError::OutputLimit => AgentError::Failed("output limit reached".into()),
    }
}

nexus_agent_sdk::export_agent!(Streamer);
