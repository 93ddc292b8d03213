//! An agent that makes outbound HTTP requests: fetches the URL it is sent.
//!
//! Replies with the status, the body size and the first 200 characters of the body. Only hosts
//! granted to the deployment are reachable; any other is refused by the platform before a
//! connection is made. Needs an outbound host grant (`--allow-host` with `nexus run`).

use nexus_agent_sdk::http::{self, HttpError};
use nexus_agent_sdk::{Agent, AgentError, Response, Task};

/// Characters of the body quoted in the reply.
const PREVIEW_CHARS: usize = 200;

struct Fetcher;

impl Agent for Fetcher {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        let url = text.trim();
        if url.is_empty() {
            return Err(AgentError::InvalidInput(
                "send a URL, e.g. https://example.com/".into(),
            ));
        }

        let response = http::get(url).map_err(|error| match error {
            HttpError::InvalidUrl(why) => {
                AgentError::InvalidInput(format!("`{url}` is not an http(s) URL: {why}"))
            }
            HttpError::Refused(why) => AgentError::Failed(format!(
                "the request to {url} was refused ({why}); \
                 the host must be granted with `--allow-host`"
            )),
            other => AgentError::Failed(other.to_string()),
        })?;

        let preview: String = response.text().chars().take(PREVIEW_CHARS).collect();
        Ok(Response::text(format!(
            "{} {} bytes\n{preview}",
            response.status,
            response.body.len()
        )))
    }
}

nexus_agent_sdk::export_agent!(Fetcher);
