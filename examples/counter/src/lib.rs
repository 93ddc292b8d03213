//! A stateful agent: counts the messages of a session.
//!
//! The count lives in durable state under the key `count`, scoped to the session (the A2A
//! `contextId`), so every session counts from zero. Updates go through `compare_and_swap` in a
//! short retry loop, so two tasks of one session running at once never lose an increment.
//! Sending `reset` deletes the key. Needs the `state` grant.

use nexus_agent_sdk::state::{self, StateError};
use nexus_agent_sdk::{Agent, AgentError, Response, Task};

/// The state key holding the count, as decimal text.
const KEY: &str = "count";
/// Compare-and-swap attempts before giving up on a contended count.
const MAX_ATTEMPTS: u32 = 5;

struct Counter;

impl Agent for Counter {
    fn handle(task: Task) -> Result<Response, AgentError> {
        if task.text().trim() == "reset" {
            state::delete(KEY).map_err(state_error)?;
            return Ok(Response::text("count: 0"));
        }
        let count = increment()?;
        Ok(Response::text(format!("count: {count}")))
    }
}

/// Adds one to the stored count and returns the new value.
fn increment() -> Result<u64, AgentError> {
    for _ in 0..MAX_ATTEMPTS {
        let current = state::get(KEY).map_err(state_error)?;
        let count = match &current {
            None => 0,
            Some(bytes) => parse_count(bytes)?,
        };
        let next = count
            .checked_add(1)
            .ok_or_else(|| AgentError::Failed("the count cannot go any higher".into()))?;
        let swapped =
            state::compare_and_swap(KEY, current.as_deref(), Some(next.to_string().as_bytes()))
                .map_err(state_error)?;
        if swapped {
            return Ok(next);
        }
        // Another task of this session changed the count in between: read it again.
    }
    Err(AgentError::Failed(format!(
        "the count kept changing under concurrent updates; gave up after {MAX_ATTEMPTS} attempts"
    )))
}

fn parse_count(bytes: &[u8]) -> Result<u64, AgentError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            AgentError::Failed(format!(
                "the stored count {:?} is not a number; send `reset` to start over",
                String::from_utf8_lossy(bytes)
            ))
        })
}

fn state_error(error: StateError) -> AgentError {
    AgentError::Failed(match error {
        StateError::Denied => "state is not granted to this agent".into(),
        StateError::InvalidKey(why) => format!("invalid state key: {why}"),
        StateError::TooLarge(why) => format!("state too large: {why}"),
        StateError::Unavailable(why) => format!("state unavailable: {why}"),
    })
}

nexus_agent_sdk::export_agent!(Counter);
