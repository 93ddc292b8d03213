//! Tasks and the A2A task state machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, TaskId, TenantId};

/// The lifecycle state of a task, as defined by A2A.
///
/// ```text
/// SUBMITTED ─► WORKING ─► COMPLETED | FAILED | CANCELED | REJECTED
///    │            │ ▲
///    │            ▼ │
///    │      INPUT_REQUIRED | AUTH_REQUIRED ─► FAILED | CANCELED
///    └─► REJECTED | FAILED | CANCELED
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

/// A state change the state machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a task cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: TaskState,
    pub to: TaskState,
}

/// Text that names no task state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a task state")]
pub struct UnknownTaskState(pub String);

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 8] = [
        Self::Submitted,
        Self::Working,
        Self::InputRequired,
        Self::AuthRequired,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::Rejected,
    ];

    /// The state as stored and sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Working => "working",
            Self::InputRequired => "input_required",
            Self::AuthRequired => "auth_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Rejected => "rejected",
        }
    }

    /// A terminal task never changes state again.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Rejected
        )
    }

    /// Whether the state machine allows going from `self` to `to`.
    pub const fn can_transition_to(self, to: TaskState) -> bool {
        use TaskState::*;
        match self {
            Submitted => matches!(to, Working | Rejected | Failed | Canceled),
            // An agent may reject input only after looking at it, so WORKING -> REJECTED too.
            Working => matches!(
                to,
                InputRequired | AuthRequired | Completed | Failed | Canceled | Rejected
            ),
            InputRequired | AuthRequired => matches!(to, Working | Failed | Canceled),
            Completed | Failed | Canceled | Rejected => false,
        }
    }

    /// Checks a transition, returning the new state.
    pub fn transition(self, to: TaskState) -> Result<TaskState, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = UnknownTaskState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownTaskState(s.chars().take(64).collect()))
    }
}

/// One A2A task: a unit of work sent to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    /// The agent revision that runs the task.
    pub agent_revision: u32,
    /// The A2A `contextId`: the session (conversation) this task belongs to.
    pub context_id: String,
    /// The task that started this one, for agent-to-agent calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_task_id: Option<TaskId>,
    pub state: TaskState,
    /// Human-readable reason for the current state (e.g. why it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Who started the task: the principal id (`key:<id>`, `user:<name>`, `oidc:<subject>`,
    /// `agent:<id>` for an agent-to-agent call, `system`). Absent on tasks stored before
    /// principals were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What it takes to create a task; it starts `SUBMITTED`, or `WORKING` with `start_working`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Chosen by the caller (a fresh [`TaskId::new`]), so the id can be handed out (e.g. to
    /// an agent's child calls) before the task is stored.
    pub id: TaskId,
    pub agent_id: AgentId,
    pub agent_revision: u32,
    pub context_id: String,
    pub parent_task_id: Option<TaskId>,
    /// The principal id of the caller that starts it (see [`Task::started_by`]).
    pub started_by: String,
    /// Create the task already `WORKING`: its log still records `submitted`, then the events
    /// given at creation, then `working`, all in one transaction (one write instead of two on
    /// the hot path of every invocation).
    pub start_working: bool,
}

/// What a task event records. Events form the task's append-only log, which streaming clients
/// resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskEventKind {
    /// The task changed state; payload `{"state": …, "message": …}`.
    Status,
    /// A message from the user or the agent.
    Message,
    /// An artifact (or a chunk of one) produced by the agent.
    Artifact,
    /// A structured log line from the agent.
    Log,
    /// Resource usage reported at the end of the task.
    Usage,
}

impl TaskEventKind {
    /// Every kind, for parsing.
    pub const ALL: [TaskEventKind; 5] = [
        Self::Status,
        Self::Message,
        Self::Artifact,
        Self::Log,
        Self::Usage,
    ];

    /// The kind as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Message => "message",
            Self::Artifact => "artifact",
            Self::Log => "log",
            Self::Usage => "usage",
        }
    }
}

impl FromStr for TaskEventKind {
    type Err = UnknownTaskState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownTaskState(s.chars().take(64).collect()))
    }
}

/// One entry of a task's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskEvent {
    pub task_id: TaskId,
    /// Position in the task's log, starting at 1 and without gaps.
    pub seq: u64,
    pub kind: TaskEventKind,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn transition_table() {
        // Every allowed edge; everything else must be refused.
        let allowed = [
            (Submitted, Working),
            (Submitted, Rejected),
            (Submitted, Failed),
            (Submitted, Canceled),
            (Working, InputRequired),
            (Working, AuthRequired),
            (Working, Completed),
            (Working, Failed),
            (Working, Canceled),
            (Working, Rejected),
            (InputRequired, Working),
            (InputRequired, Failed),
            (InputRequired, Canceled),
            (AuthRequired, Working),
            (AuthRequired, Failed),
            (AuthRequired, Canceled),
        ];
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_states_have_no_exit() {
        for state in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(
                TaskState::ALL
                    .iter()
                    .all(|to| !state.can_transition_to(*to))
            );
        }
    }

    #[test]
    fn text_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(serde_json::Value::from(state.as_str()))
            );
        }
        assert!("WORKING".parse::<TaskState>().is_err());
    }
}
