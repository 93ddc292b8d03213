//! The smallest agent: replies `echo: <text>` to whatever it is sent.
//!
//! Shows the shape of every agent: a type implementing [`Agent`], exported with
//! [`nexus_agent_sdk::export_agent!`], rejecting input it cannot handle with
//! [`AgentError::InvalidInput`]. It uses no capability, so it needs no grant.

use nexus_agent_sdk::{Agent, AgentError, Response, Task};

struct Echo;

impl Agent for Echo {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        if text.trim().is_empty() {
            return Err(AgentError::InvalidInput("send some text".into()));
        }
        Ok(Response::text(format!("echo: {text}")))
    }
}

nexus_agent_sdk::export_agent!(Echo);
