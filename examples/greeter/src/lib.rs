//! A two-turn agent: the first message of a task gets a question back (the task becomes
//! `input-required`); the answer, sent to the same task, completes it with a greeting.

use nexus_agent_sdk::{Agent, AgentError, Response, Task};

struct Greeter;

impl Agent for Greeter {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        if task.history.is_empty() {
            return Ok(Response::input_required("Hello! What is your name?"));
        }
        let name = text.trim();
        if name.is_empty() {
            return Ok(Response::input_required(
                "I did not catch that. What is your name?",
            ));
        }
        Ok(Response::text(format!("Nice to meet you, {name}!")))
    }
}

nexus_agent_sdk::export_agent!(Greeter);
