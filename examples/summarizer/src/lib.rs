//! An agent that calls a model: summarizes the text it is sent in one sentence.
//!
//! Calls [`llm::complete`] with a system and a user message, replies with the completion and
//! attaches it as the artifact `summary`, and logs the model and token usage. The config key
//! `max_tokens` caps the completion (default 256). Needs the `llm` grant.

use nexus_agent_sdk::llm::{self, ChatMessage, CompletionRequest, LlmError};
use nexus_agent_sdk::{Agent, AgentError, Artifact, Response, Task, config, log};

/// Completion cap when the config key `max_tokens` is unset or not a positive number.
const DEFAULT_MAX_TOKENS: u32 = 256;
const SYSTEM_PROMPT: &str =
    "You are a precise assistant. Answer with exactly one sentence and nothing else.";

struct Summarizer;

impl Agent for Summarizer {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        if text.trim().is_empty() {
            return Err(AgentError::InvalidInput(
                "send the text to summarize".into(),
            ));
        }

        let completion = llm::complete(&CompletionRequest {
            model: None,
            messages: vec![
                ChatMessage {
                    role: "system".into(),
                    content: SYSTEM_PROMPT.into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: format!("Summarize in one sentence:\n\n{text}"),
                },
            ],
            max_tokens: Some(max_tokens()),
            temperature: None,
        })
        .map_err(llm_error)?;

        log::info(&format!(
            "model {}: {} prompt tokens, {} completion tokens",
            completion.model, completion.usage.prompt_tokens, completion.usage.completion_tokens
        ));

        let summary = completion.content.trim().to_owned();
        if summary.is_empty() {
            return Err(AgentError::Failed(
                "the model returned an empty summary".into(),
            ));
        }
        Ok(Response::text(summary.clone())
            .with_artifact(Artifact::text("summary", "summary", summary)))
    }
}

/// The completion cap: config `max_tokens` if it is a positive number, else the default.
fn max_tokens() -> u32 {
    let Some(value) = config::get("max_tokens") else {
        return DEFAULT_MAX_TOKENS;
    };
    match value.trim().parse() {
        Ok(max) if max > 0 => max,
        _ => {
            log::warn(&format!(
                "config max_tokens {value:?} is not a positive number; using {DEFAULT_MAX_TOKENS}"
            ));
            DEFAULT_MAX_TOKENS
        }
    }
}

fn llm_error(error: LlmError) -> AgentError {
    AgentError::Failed(match error {
        LlmError::Denied => "llm is not granted to this agent".into(),
        LlmError::InvalidRequest(why) => format!("the model rejected the request: {why}"),
        LlmError::Unavailable(why) => format!("the model is unavailable: {why}"),
    })
}

nexus_agent_sdk::export_agent!(Summarizer);
