//! An agent that calls another agent: hands the message to the agent named by its config key
//! `target` (default `echo`; `{tenant}/{agent}` or a name in its own tenant) and relays the
//! answer as `<target> says: <answer>`.
//!
//! Needs the `agents` grant (`nexus deploy examples/delegate --grant agents`). The call is a
//! child task of this one, in the same session and trace; the platform refuses cycles and
//! chains deeper than its limit, which arrive here as [`CallError`]s.

use nexus_agent_sdk::agents::{self, CallError};
use nexus_agent_sdk::{Agent, AgentError, Part, Response, Task, config, text_of};

/// Called when the deployment sets no `target`.
const DEFAULT_TARGET: &str = "echo";

struct Delegate;

impl Agent for Delegate {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        if text.trim().is_empty() {
            return Err(AgentError::InvalidInput("send some text".into()));
        }
        let target = config::get("target").unwrap_or_else(|| DEFAULT_TARGET.to_owned());
        match agents::call(&target, &[Part::Text(text)]) {
            Ok(reply) => Ok(Response::text(format!(
                "{target} says: {}",
                text_of(&reply)
            ))),
            Err(CallError::Denied) => Err(AgentError::Failed(format!(
                "the platform denied the call to `{target}` (is `agents` granted? is it in \
                 another tenant?)"
            ))),
            Err(CallError::NotFound(what)) => Err(AgentError::Failed(format!(
                "no agent to delegate to: {what}"
            ))),
            Err(CallError::DepthExceeded) => Err(AgentError::Failed(
                "the chain of agent calls is too deep or loops back".into(),
            )),
            Err(CallError::Failed(why)) => {
                Err(AgentError::Failed(format!("`{target}` failed: {why}")))
            }
            Err(CallError::Unavailable(why)) => Err(AgentError::Failed(why)),
        }
    }
}

nexus_agent_sdk::export_agent!(Delegate);
