//! A2A wire types in the 1.0 and 0.3 shapes, and the mapping from NexusCore tasks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_core::message::{Artifact, Message, Part, Role};
use nexus_core::{Task, TaskEvent, TaskEventKind, TaskState};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Which A2A version a request speaks (the `A2A-Version` header; missing means 0.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V0_3,
}

impl Version {
    /// The version named by an `A2A-Version` header value.
    pub fn from_header(value: Option<&str>) -> Option<Self> {
        match value.map(str::trim) {
            None | Some("") => Some(Self::V0_3),
            Some(v) if v == "0.3" || v.starts_with("0.3.") => Some(Self::V0_3),
            Some(v) if v == "1.0" || v.starts_with("1.0.") || v == "1" => Some(Self::V1),
            Some(_) => None,
        }
    }
}

/// Everything A2A shows of a task, gathered from its row and event log.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub task: Task,
    /// Messages in order, with their ids.
    pub history: Vec<(String, Message)>,
    pub artifacts: Vec<Artifact>,
}

impl TaskView {
    /// Builds the view from a task and its events (oldest first).
    pub fn new(task: Task, events: &[TaskEvent]) -> Self {
        let mut history = Vec::new();
        let mut artifacts: Vec<Artifact> = Vec::new();
        for event in events {
            // Streamed events carry an `event` tag; final messages and artifacts do not.
            let streamed = event.payload.get("event").is_some();
            match event.kind {
                TaskEventKind::Message if !streamed => {
                    // Read in place: a clone of the payload's tree would cost more than the read.
                    if let Ok(message) = Message::deserialize(&event.payload) {
                        // The sender's own id when it gave one (A2A clients must), else ours.
                        let id = message
                            .message_id
                            .clone()
                            .unwrap_or_else(|| format!("{}-{}", task.id, event.seq));
                        history.push((id, message));
                    }
                }
                TaskEventKind::Artifact => {
                    let payload = if streamed {
                        &event.payload["artifact"]
                    } else {
                        &event.payload
                    };
                    let artifact = Artifact::deserialize(payload).ok();
                    if let Some(artifact) = artifact {
                        match artifacts.iter_mut().find(|a| a.id == artifact.id) {
                            Some(existing) => existing.parts.extend(artifact.parts),
                            None => artifacts.push(artifact),
                        }
                    }
                }
                _ => {}
            }
        }
        Self {
            task,
            history,
            artifacts,
        }
    }

    /// The last message from the agent, if any.
    fn last_agent_message(&self) -> Option<&(String, Message)> {
        self.history
            .iter()
            .rev()
            .find(|(_, m)| m.role == Role::Agent)
    }

    /// The task in `version`'s shape, with at most `history_length` messages of history.
    pub fn to_json(&self, version: Version, history_length: Option<usize>) -> Value {
        let task = &self.task;
        let context_id = task.context_id.as_str();
        let task_id = task.id.to_string();
        let status_message = match task.state {
            TaskState::Failed | TaskState::Rejected | TaskState::Canceled => {
                task.status_message.as_ref().map(|text| {
                    (
                        format!("{task_id}-status"),
                        Message {
                            role: Role::Agent,
                            parts: vec![Part::text(text)],
                            message_id: None,
                        },
                    )
                })
            }
            _ => self.last_agent_message().cloned(),
        };
        let history: Vec<Value> = {
            let skip = history_length.map_or(0, |n| self.history.len().saturating_sub(n));
            self.history
                .iter()
                .skip(skip)
                .map(|(id, m)| message_json(version, id, m, context_id, &task_id))
                .collect()
        };
        let artifacts: Vec<Value> = self
            .artifacts
            .iter()
            .map(|a| artifact_json(version, a))
            .collect();
        let mut status = Map::new();
        status.insert(
            "state".into(),
            Value::String(state_name(version, task.state).into()),
        );
        if let Some((id, message)) = &status_message {
            status.insert(
                "message".into(),
                message_json(version, id, message, context_id, &task_id),
            );
        }
        status.insert(
            "timestamp".into(),
            Value::String(timestamp(task.updated_at)),
        );
        let mut out = json!({
            "id": task_id,
            "contextId": context_id,
            "status": Value::Object(status),
            "artifacts": artifacts,
            "history": history,
        });
        if version == Version::V0_3 {
            out["kind"] = Value::String("task".into());
        }
        out
    }
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The wire name of a task state.
pub fn state_name(version: Version, state: TaskState) -> &'static str {
    match (version, state) {
        (Version::V1, TaskState::Submitted) => "TASK_STATE_SUBMITTED",
        (Version::V1, TaskState::Working) => "TASK_STATE_WORKING",
        (Version::V1, TaskState::InputRequired) => "TASK_STATE_INPUT_REQUIRED",
        (Version::V1, TaskState::AuthRequired) => "TASK_STATE_AUTH_REQUIRED",
        (Version::V1, TaskState::Completed) => "TASK_STATE_COMPLETED",
        (Version::V1, TaskState::Failed) => "TASK_STATE_FAILED",
        (Version::V1, TaskState::Canceled) => "TASK_STATE_CANCELED",
        (Version::V1, TaskState::Rejected) => "TASK_STATE_REJECTED",
        (Version::V0_3, TaskState::Submitted) => "submitted",
        (Version::V0_3, TaskState::Working) => "working",
        (Version::V0_3, TaskState::InputRequired) => "input-required",
        (Version::V0_3, TaskState::AuthRequired) => "auth-required",
        (Version::V0_3, TaskState::Completed) => "completed",
        (Version::V0_3, TaskState::Failed) => "failed",
        (Version::V0_3, TaskState::Canceled) => "canceled",
        (Version::V0_3, TaskState::Rejected) => "rejected",
    }
}

/// Parses a wire state name of either version.
pub fn parse_state(name: &str) -> Option<TaskState> {
    TaskState::ALL.into_iter().find(|state| {
        state_name(Version::V1, *state) == name || state_name(Version::V0_3, *state) == name
    })
}

fn part_json(version: Version, part: &Part) -> Value {
    match (version, part) {
        (Version::V1, Part::Text { text }) => json!({ "text": text }),
        (Version::V1, Part::Data { data }) => json!({ "data": data }),
        (
            Version::V1,
            Part::File {
                name,
                media_type,
                bytes,
            },
        ) => {
            let mut out = json!({ "raw": BASE64.encode(bytes) });
            if let Some(name) = name {
                out["filename"] = json!(name);
            }
            if let Some(media_type) = media_type {
                out["mediaType"] = json!(media_type);
            }
            out
        }
        (Version::V0_3, Part::Text { text }) => json!({ "kind": "text", "text": text }),
        (Version::V0_3, Part::Data { data }) => json!({ "kind": "data", "data": data }),
        (
            Version::V0_3,
            Part::File {
                name,
                media_type,
                bytes,
            },
        ) => {
            let mut file = json!({ "bytes": BASE64.encode(bytes) });
            if let Some(name) = name {
                file["name"] = json!(name);
            }
            if let Some(media_type) = media_type {
                file["mimeType"] = json!(media_type);
            }
            json!({ "kind": "file", "file": file })
        }
    }
}

/// A message in `version`'s shape.
pub fn message_json(
    version: Version,
    id: &str,
    message: &Message,
    context_id: &str,
    task_id: &str,
) -> Value {
    let role = match (version, message.role) {
        (Version::V1, Role::User) => "ROLE_USER",
        (Version::V1, Role::Agent) => "ROLE_AGENT",
        (Version::V0_3, Role::User) => "user",
        (Version::V0_3, Role::Agent) => "agent",
    };
    let mut out = json!({
        "messageId": id,
        "role": role,
        "parts": message.parts.iter().map(|p| part_json(version, p)).collect::<Vec<_>>(),
        "contextId": context_id,
        "taskId": task_id,
    });
    if version == Version::V0_3 {
        out["kind"] = json!("message");
    }
    out
}

pub(crate) fn artifact_json(version: Version, artifact: &Artifact) -> Value {
    let mut out = json!({
        "artifactId": artifact.id,
        "parts": artifact.parts.iter().map(|p| part_json(version, p)).collect::<Vec<_>>(),
    });
    if let Some(name) = &artifact.name {
        out["name"] = json!(name);
    }
    out
}

/// An incoming `message`, in either version's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub message_id: String,
    pub parts: Vec<Part>,
    pub context_id: Option<String>,
    pub task_id: Option<String>,
}

/// Why an incoming message was refused: `Invalid` is -32602, `Unsupported` is -32005.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    Invalid(String),
    Unsupported(String),
}

/// Parses `params.message`.
pub fn parse_message(message: &Value) -> Result<IncomingMessage, MessageError> {
    let invalid = |why: &str| MessageError::Invalid(why.to_owned());
    let object = message
        .as_object()
        .ok_or_else(|| invalid("`message` must be an object"))?;
    let text_field = |name: &str| -> Result<Option<String>, MessageError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(MessageError::Invalid(format!(
                "`message.{name}` must be a string"
            ))),
        }
    };
    let message_id =
        text_field("messageId")?.ok_or_else(|| invalid("`message.messageId` is required"))?;
    match object.get("role").and_then(Value::as_str) {
        Some("user" | "ROLE_USER") => {}
        Some(other) => {
            return Err(MessageError::Invalid(format!(
                "`message.role` must be the user's, not `{other}`"
            )));
        }
        None => return Err(invalid("`message.role` is required")),
    }
    let parts = object
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`message.parts` must be an array"))?;
    if parts.is_empty() {
        return Err(invalid("`message.parts` must not be empty"));
    }
    let parts = parts
        .iter()
        .map(parse_part)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IncomingMessage {
        message_id,
        parts,
        context_id: text_field("contextId")?.filter(|c| !c.is_empty()),
        task_id: text_field("taskId")?.filter(|t| !t.is_empty()),
    })
}

fn parse_part(part: &Value) -> Result<Part, MessageError> {
    let invalid = |why: String| MessageError::Invalid(why);
    let object = part
        .as_object()
        .ok_or_else(|| invalid("each part must be an object".into()))?;
    let decode = |b64: &str| {
        BASE64
            .decode(b64)
            .map_err(|e| invalid(format!("file bytes are not base64: {e}")))
    };
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    // 0.3: `kind` discriminator.
    if let Some(kind) = object.get("kind").and_then(Value::as_str) {
        return match kind {
            "text" => Ok(Part::Text {
                text: string(object.get("text"))
                    .ok_or_else(|| invalid("text part without `text`".into()))?,
            }),
            "data" => Ok(Part::Data {
                data: object.get("data").cloned().unwrap_or(Value::Null),
            }),
            "file" => {
                let file = object
                    .get("file")
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid("file part without `file`".into()))?;
                match file.get("bytes").and_then(Value::as_str) {
                    Some(bytes) => Ok(Part::File {
                        name: string(file.get("name")),
                        media_type: string(file.get("mimeType")),
                        bytes: decode(bytes)?,
                    }),
                    None => Err(MessageError::Unsupported(
                        "file parts by URI are not supported; send the bytes".into(),
                    )),
                }
            }
            other => Err(invalid(format!("unknown part kind `{other}`"))),
        };
    }
    // 1.0: a oneof of text, raw, url, data.
    if let Some(text) = object.get("text") {
        return Ok(Part::Text {
            text: text
                .as_str()
                .ok_or_else(|| invalid("`text` must be a string".into()))?
                .to_owned(),
        });
    }
    if let Some(raw) = object.get("raw").and_then(Value::as_str) {
        return Ok(Part::File {
            name: string(object.get("filename")),
            media_type: string(object.get("mediaType")),
            bytes: decode(raw)?,
        });
    }
    if let Some(data) = object.get("data") {
        return Ok(Part::Data { data: data.clone() });
    }
    if object.contains_key("url") {
        return Err(MessageError::Unsupported(
            "file parts by URL are not supported; send the bytes".into(),
        ));
    }
    Err(invalid(
        "a part needs one of `text`, `raw`, `data` (or a 0.3 `kind`)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_headers() {
        assert_eq!(Version::from_header(None), Some(Version::V0_3));
        assert_eq!(Version::from_header(Some("0.3")), Some(Version::V0_3));
        assert_eq!(Version::from_header(Some("1.0")), Some(Version::V1));
        assert_eq!(Version::from_header(Some("2.0")), None);
    }

    #[test]
    fn messages_parse_in_both_shapes() {
        let v1 = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}, {"data": {"a": 1}}, {"raw": "AQI=", "filename": "f"}], "contextId": "c"});
        let parsed = parse_message(&v1).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(parsed.parts.len(), 3);
        assert_eq!(parsed.context_id.as_deref(), Some("c"));
        let v03 = json!({"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "hi"}, {"kind": "file", "file": {"bytes": "AQI=", "name": "f"}}]});
        assert_eq!(parse_message(&v03).map(|m| m.parts.len()), Ok(2));
    }

    #[test]
    fn bad_messages_are_refused_with_the_right_class() {
        let cases = [
            (json!("text"), false),
            (json!({"role": "user", "parts": [{"text": "x"}]}), false),
            (
                json!({"messageId": "m", "role": "agent", "parts": [{"text": "x"}]}),
                false,
            ),
            (
                json!({"messageId": "m", "role": "user", "parts": []}),
                false,
            ),
            (
                json!({"messageId": "m", "role": "user", "parts": [{"kind": "bogus"}]}),
                false,
            ),
            (
                json!({"messageId": "m", "role": "user", "parts": [{"raw": "***"}]}),
                false,
            ),
            (
                json!({"messageId": "m", "role": "user", "parts": [{"url": "https://x/y"}]}),
                true,
            ),
        ];
        for (message, unsupported) in cases {
            match parse_message(&message) {
                Err(MessageError::Unsupported(_)) => assert!(unsupported, "{message}"),
                Err(MessageError::Invalid(_)) => assert!(!unsupported, "{message}"),
                Ok(parsed) => panic!("accepted {message}: {parsed:?}"),
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in TaskState::ALL {
            for version in [Version::V1, Version::V0_3] {
                assert_eq!(parse_state(state_name(version, state)), Some(state));
            }
        }
    }
}
