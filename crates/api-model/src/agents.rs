//! `/v1/tenants/{tenant}/agents` and their tasks: deploying agents, rolling them back, and
//! invoking them.

use std::collections::BTreeMap;

use nexus_core::{Agent, AgentRevision, Artifact, Part, Task};
use serde::{Deserialize, Deserializer, Serialize};

/// Longest secret name (the control plane's `MAX_SECRET_NAME_LEN`): error messages about a
/// secret quote at most this much of its name.
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// What a deployment grants: capability names and outbound host patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsBody {
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// Body of `POST /v1/tenants/{tenant}/agents`. What a redeployment leaves out carries over
/// from the agent's current revision: config keys, secrets, and grants the manifest still
/// requests (see `docs/agents.md`, Grants and config).
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// `sha256:…` of an uploaded package.
    pub package_digest: String,
    /// Agent name; defaults to the package's name.
    pub name: Option<String>,
    /// Config keys to add or replace; the agent keeps its other keys.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Config keys to remove; each must be set on the current revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset_config: Vec<String>,
    /// Secrets to create or replace, name → value; the agent keeps earlier secrets not named
    /// here. Values are stored encrypted and never returned: responses list names only. At
    /// most 64 per agent (`MAX_SECRETS_PER_AGENT`), names of 1 to 128 ASCII letters, digits,
    /// `_`, `-` or `.`, values of 1 byte to 16 KiB (`MAX_SECRET_VALUE_BYTES`).
    #[serde(default, deserialize_with = "secret_values")]
    #[schema(example = json!({"api-key": "sk-…"}))]
    pub secrets: BTreeMap<String, String>,
    /// Exactly these grants, each declared by the manifest (a list narrows what it requests).
    /// Absent: what the manifest requests; what the agent's current revision was not asked
    /// for needs `accept_requested_grants`, else the answer is `grants_unconfirmed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<GrantsBody>,
    /// Without `grants`: the deployer confirms granting what the manifest newly requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_requested_grants: bool,
}

impl std::fmt::Debug for DeployBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret values never reach logs.
        f.debug_struct("DeployBody")
            .field("package_digest", &self.package_digest)
            .field("name", &self.name)
            .field("config", &self.config)
            .field("unset_config", &self.unset_config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .field("accept_requested_grants", &self.accept_requested_grants)
            .finish()
    }
}

/// Reads `secrets` as an object of strings. Unlike serde's own messages, errors name the
/// secret but never echo what was sent.
fn secret_values<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Object(entries) => entries
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(value) => Ok((name, value)),
                _ => Err(D::Error::custom(format!(
                    "secret `{}` must be a string",
                    name.escape_debug()
                        .take(MAX_SECRET_NAME_LEN)
                        .collect::<String>()
                ))),
            })
            .collect(),
        _ => Err(D::Error::custom(
            "`secrets` must be an object of names to string values",
        )),
    }
}

/// An agent with its revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    pub agent: Agent,
    pub revision: AgentRevision,
}

/// An agent with all its revisions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentDetail {
    pub agent: Agent,
    pub revisions: Vec<AgentRevision>,
}

/// Body of a rollback.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Revision to make current; default: the one before the current revision.
    pub revision: Option<u32>,
}

/// Body of `POST …/agents/{agent}/tasks`: the message, as text or parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// Shorthand for one text part.
    pub text: Option<String>,
    /// The message parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Session (A2A `contextId`); a new one when absent.
    pub context_id: Option<String>,
    /// Continue this task, which must be waiting for input (`input_required`).
    pub task_id: Option<String>,
    /// Answer with a `text/event-stream` of the task's events as they happen instead of
    /// waiting for the end: first `task` (the task, working), then one SSE event per log
    /// event (named by its kind, `id` = its sequence number) until the task stops running.
    #[serde(default)]
    pub stream: bool,
}

/// A finished invocation: the task, how the agent's run ended, and what it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invocation {
    pub task: Task,
    /// How the agent's run ended; absent when the task was canceled while it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    pub usage: Usage,
}

/// How an agent's run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reply {
    pub message: Vec<Part>,
    pub artifacts: Vec<Artifact>,
}

/// Why a task failed, tagged by `code`: the task error codes of `docs/errors.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TaskError {
    /// The task ran past its deadline.
    Timeout { limit_ms: u64 },
    /// The agent tried to use more memory than its limit.
    MemoryLimit { limit_bytes: u64 },
    /// The agent overflowed its stack.
    StackOverflow,
    /// The agent used up its CPU budget (fuel).
    FuelExhausted { limit: u64 },
    /// The agent produced more output than its limit.
    OutputLimit { limit_bytes: u64 },
    /// The agent logged more than its limit.
    LogLimit { limit_bytes: u64 },
    /// The agent trapped.
    Trap {
        message: String,
        /// Guest frames, innermost first, with function names where the component has them.
        backtrace: Vec<String>,
    },
    /// The agent returned an error.
    #[serde(rename = "agent_error")]
    Agent { message: String },
    /// The component could not be instantiated.
    #[serde(rename = "instantiation_failed")]
    Instantiation { message: String },
    /// No instance slot came free within the task's deadline.
    #[serde(rename = "node_at_capacity")]
    AtCapacity { limit_ms: u64 },
}

/// Resources one task used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Wall-clock time of the run, in microseconds.
    pub wall_time_us: u64,
    /// Fuel consumed (≈ wasm instructions), when metering is on.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the instance reached.
    pub peak_memory_bytes: u64,
    pub output_bytes: u64,
    pub log_bytes: u64,
    pub llm: LlmUsage,
}

/// Model calls and tokens one task used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmUsage {
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secrets_must_be_strings_and_errors_never_echo_values() {
        let error = serde_json::from_str::<DeployBody>(
            r#"{"package_digest": "d", "secrets": {"api-key": 12345}}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("secret `api-key` must be a string"),
            "{error}"
        );
        assert!(!error.contains("12345"), "{error}");

        let error =
            serde_json::from_str::<DeployBody>(r#"{"package_digest": "d", "secrets": ["x"]}"#)
                .err()
                .unwrap()
                .to_string();
        assert!(error.contains("must be an object"), "{error}");

        let body: DeployBody =
            serde_json::from_str(r#"{"package_digest": "d", "secrets": {"a": "sk-1"}}"#).unwrap();
        assert_eq!(body.secrets["a"], "sk-1");
        assert!(
            !format!("{body:?}").contains("sk-1"),
            "Debug shows names only"
        );
    }

    /// Task errors are tagged with the codes `docs/errors.md` documents, and read back.
    #[test]
    fn task_errors_use_the_documented_codes() {
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
            let json = serde_json::to_value(&error).unwrap();
            assert_eq!(json["code"], code, "{error:?}");
            assert_eq!(serde_json::from_value::<TaskError>(json).unwrap(), error);
        }
    }

    #[test]
    fn an_invoke_body_sends_what_the_cli_always_sent() {
        let body = InvokeBody {
            text: Some("hi".into()),
            ..InvokeBody::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"text": "hi", "context_id": null, "task_id": null, "stream": false})
        );
    }
}
