//! A2A streaming: a task's log events as stream responses (`SendStreamingMessage`,
//! `SubscribeToTask`, and their 0.3 names).
//!
//! The first response is the task as it stands; each later one is a status or artifact
//! update. Agent output streamed with `emit` (progress and partial text) arrives as `working`
//! status updates carrying the text; the agent's reply rides on the status update that ends
//! the task. The stream ends with the first status that is terminal or waits for the user.

use std::collections::HashSet;

use nexus_core::message::{Artifact, Message, Part, Role};
use nexus_core::{Task, TaskEvent, TaskEventKind, TaskState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::a2a::{TaskView, Version, artifact_json, message_json, state_name, timestamp};

/// Whether a task in `state` stops a stream: it ended, or it waits for the user.
pub fn ends_stream(state: TaskState) -> bool {
    state.is_terminal() || matches!(state, TaskState::InputRequired | TaskState::AuthRequired)
}

/// Renders one task's events as stream responses, in order.
#[derive(Debug)]
pub struct StreamRenderer {
    version: Version,
    task_id: String,
    context_id: String,
    /// Artifacts already sent, so later chunks of one are marked `append`.
    sent_artifacts: HashSet<String>,
    /// The agent's reply, held until the status change it belongs to.
    reply: Option<(String, Message)>,
}

impl StreamRenderer {
    pub fn new(version: Version, task: &Task) -> Self {
        Self {
            version,
            task_id: task.id.to_string(),
            context_id: task.context_id.clone(),
            sent_artifacts: HashSet::new(),
            reply: None,
        }
    }

    /// The first response: the task as it stands, with at most `history` messages.
    pub fn snapshot(&mut self, view: &TaskView, history: Option<usize>) -> Value {
        self.sent_artifacts
            .extend(view.artifacts.iter().map(|a| a.id.clone()));
        let task = view.to_json(self.version, history);
        match self.version {
            Version::V1 => json!({ "task": task }),
            Version::V0_3 => task,
        }
    }

    /// The response for one event, if callers see it, and whether it ends the stream.
    pub fn event(&mut self, event: &TaskEvent) -> Option<(Value, bool)> {
        let streamed = event.payload.get("event").and_then(Value::as_str);
        match (event.kind, streamed) {
            (TaskEventKind::Status, _) => {
                let state = event
                    .payload
                    .get("state")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<TaskState>().ok())?;
                let message = match state {
                    TaskState::Completed | TaskState::InputRequired => self.reply.take(),
                    _ => event
                        .payload
                        .get("message")
                        .and_then(Value::as_str)
                        .map(|text| (self.message_id(event), agent_text(text))),
                };
                let ends = ends_stream(state);
                Some((self.status_update(state, message, event, ends), ends))
            }
            (TaskEventKind::Message, Some("progress" | "partial_text")) => {
                let text = event.payload.get("text").and_then(Value::as_str)?;
                let message = Some((self.message_id(event), agent_text(text)));
                Some((
                    self.status_update(TaskState::Working, message, event, false),
                    false,
                ))
            }
            (TaskEventKind::Message, None) => {
                let message = Message::deserialize(&event.payload).ok()?;
                // The caller's own messages are not echoed back.
                if message.role == Role::Agent {
                    self.reply = Some((self.message_id(event), message));
                }
                None
            }
            (TaskEventKind::Artifact, streamed) => {
                let (artifact, last_chunk) = match streamed {
                    Some(_) => (
                        Artifact::deserialize(event.payload.get("artifact")?).ok()?,
                        event
                            .payload
                            .get("last_chunk")
                            .and_then(Value::as_bool)
                            .unwrap_or(true),
                    ),
                    None => (Artifact::deserialize(&event.payload).ok()?, true),
                };
                let append = !self.sent_artifacts.insert(artifact.id.clone());
                let mut update = json!({
                    "taskId": self.task_id,
                    "contextId": self.context_id,
                    "artifact": artifact_json(self.version, &artifact),
                    "append": append,
                    "lastChunk": last_chunk,
                });
                Some((
                    match self.version {
                        Version::V1 => json!({ "artifactUpdate": update }),
                        Version::V0_3 => {
                            update["kind"] = json!("artifact-update");
                            update
                        }
                    },
                    false,
                ))
            }
            _ => None,
        }
    }

    fn message_id(&self, event: &TaskEvent) -> String {
        format!("{}-{}", self.task_id, event.seq)
    }

    fn status_update(
        &self,
        state: TaskState,
        message: Option<(String, Message)>,
        event: &TaskEvent,
        ends: bool,
    ) -> Value {
        let mut status = json!({
            "state": state_name(self.version, state),
            "timestamp": timestamp(event.created_at),
        });
        if let Some((id, message)) = message {
            status["message"] =
                message_json(self.version, &id, &message, &self.context_id, &self.task_id);
        }
        let mut update = json!({
            "taskId": self.task_id,
            "contextId": self.context_id,
            "status": status,
        });
        match self.version {
            Version::V1 => json!({ "statusUpdate": update }),
            Version::V0_3 => {
                update["kind"] = json!("status-update");
                update["final"] = json!(ends);
                update
            }
        }
    }
}

fn agent_text(text: &str) -> Message {
    Message {
        role: Role::Agent,
        parts: vec![Part::text(text)],
        message_id: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use nexus_core::{AgentId, TaskId, TenantId};

    use super::*;

    fn task() -> Task {
        Task {
            id: TaskId::new(),
            tenant_id: TenantId::new(),
            agent_id: AgentId::new(),
            agent_revision: 1,
            context_id: "ctx".into(),
            parent_task_id: None,
            state: TaskState::Working,
            status_message: None,
            started_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event(task: &Task, seq: u64, kind: TaskEventKind, payload: Value) -> TaskEvent {
        TaskEvent {
            task_id: task.id,
            seq,
            kind,
            payload,
            created_at: Utc::now(),
        }
    }

    /// A whole run in both versions: what each event becomes and where the stream ends.
    #[test]
    fn a_run_renders_as_updates_ending_with_the_reply() {
        let task = task();
        let artifact = json!({"id": "a1", "name": "out", "parts": [{"kind": "text", "text": "x"}]});
        let events = [
            event(
                &task,
                3,
                TaskEventKind::Message,
                json!({"event": "partial_text", "text": "Hel"}),
            ),
            event(
                &task,
                4,
                TaskEventKind::Log,
                json!({"event": "log", "level": "info", "message": "m", "fields": []}),
            ),
            event(
                &task,
                5,
                TaskEventKind::Artifact,
                json!({"event": "artifact", "artifact": artifact, "last_chunk": false}),
            ),
            event(
                &task,
                6,
                TaskEventKind::Message,
                json!({"role": "agent", "parts": [{"kind": "text", "text": "Hello"}]}),
            ),
            event(&task, 7, TaskEventKind::Artifact, artifact.clone()),
            event(&task, 8, TaskEventKind::Usage, json!({})),
            event(
                &task,
                9,
                TaskEventKind::Status,
                json!({"state": "completed", "message": null}),
            ),
        ];
        for version in [Version::V1, Version::V0_3] {
            let mut renderer = StreamRenderer::new(version, &task);
            let out: Vec<(Value, bool)> = events.iter().filter_map(|e| renderer.event(e)).collect();
            assert_eq!(out.len(), 4, "{version:?}: {out:?}");
            let body = |v: &Value, key: &str| match version {
                Version::V1 => v[key].clone(),
                Version::V0_3 => v.clone(),
            };
            let chunk = body(&out[0].0, "statusUpdate");
            assert_eq!(
                chunk["status"]["state"],
                state_name(version, TaskState::Working)
            );
            assert_eq!(chunk["status"]["message"]["parts"][0]["text"], "Hel");
            let first = body(&out[1].0, "artifactUpdate");
            assert_eq!(
                (first["append"].as_bool(), first["lastChunk"].as_bool()),
                (Some(false), Some(false))
            );
            let again = body(&out[2].0, "artifactUpdate");
            assert_eq!(again["append"], true);
            let done = body(&out[3].0, "statusUpdate");
            assert_eq!(
                done["status"]["state"],
                state_name(version, TaskState::Completed)
            );
            assert_eq!(done["status"]["message"]["parts"][0]["text"], "Hello");
            assert_eq!(
                done["status"]["message"]["messageId"],
                format!("{}-6", task.id)
            );
            assert_eq!(
                out.iter().map(|(_, ends)| *ends).collect::<Vec<_>>(),
                [false, false, false, true]
            );
            if version == Version::V0_3 {
                assert_eq!(out[3].0["kind"], "status-update");
                assert_eq!(out[3].0["final"], true);
                assert_eq!(out[1].0["kind"], "artifact-update");
            }
        }
    }

    #[test]
    fn failures_carry_their_reason_and_input_requests_end_the_stream() {
        let task = task();
        let mut renderer = StreamRenderer::new(Version::V1, &task);
        let failed = event(
            &task,
            3,
            TaskEventKind::Status,
            json!({"state": "failed", "message": "timeout: too slow"}),
        );
        let (update, ends) = renderer
            .event(&failed)
            .unwrap_or_else(|| panic!("no update"));
        assert!(ends);
        assert_eq!(
            update["statusUpdate"]["status"]["message"]["parts"][0]["text"],
            "timeout: too slow"
        );

        for (state, ends) in [
            ("working", false),
            ("input_required", true),
            ("canceled", true),
        ] {
            let status = event(&task, 4, TaskEventKind::Status, json!({"state": state}));
            assert_eq!(
                renderer.event(&status).map(|(_, e)| e),
                Some(ends),
                "{state}"
            );
        }
        // The caller's own message and unknown states produce nothing.
        let user = event(
            &task,
            5,
            TaskEventKind::Message,
            json!({"role": "user", "parts": [{"kind": "text", "text": "hi"}]}),
        );
        assert_eq!(renderer.event(&user), None);
        let bogus = event(
            &task,
            6,
            TaskEventKind::Status,
            json!({"state": "exploded"}),
        );
        assert_eq!(renderer.event(&bogus), None);
    }
}
