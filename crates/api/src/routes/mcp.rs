//! MCP at `/mcp/{tenant}`: the tenant's agents as tools, over Streamable HTTP (protocol
//! 2025-11-25 and the earlier revisions the `rmcp` SDK speaks), served by `rmcp`.
//!
//! # Tools
//!
//! One tool per skill in the agent's manifest, named so that MCP's tool-name rules hold
//! (`[A-Za-z0-9_.-]`, case-sensitive) and a name never changes meaning:
//!
//! - an agent with one skill (or none) is one tool named after the agent: `echo`;
//! - an agent with several skills is one tool per skill, `{agent}__{skill}`: `docs__summarize`.
//!
//! Agent names cannot contain `_`, so the first `__` always separates the agent from the
//! skill. Both forms are accepted on `tools/call` whatever the agent has now: `{agent}` keeps
//! working after a second skill is added, and `{agent}__{skill}` works for single-skill
//! agents. The agent receives the message the same way whichever skill was named (tasks do
//! not carry a skill yet); the skill decides the description the model sees.
//!
//! Every tool takes `message` (required text for the agent), `session` (the A2A `contextId`:
//! calls with the same session share the agent's per-session state) and `task` (the id of a
//! task that asked for more input, to answer it). A call is a durable task; its id is in the
//! result's `_meta` under `nexus/taskId` for lookup over REST.
//!
//! # Sessions
//!
//! The endpoint is stateless (`rmcp`'s stateless mode with JSON responses): each POST is
//! answered on its own, no `Mcp-Session-Id` is issued, and `GET`/`DELETE` are not served.
//! Nothing in a tool call depends on a transport session (conversations are the `session`
//! argument, stored with the tasks), so stateless mode loses nothing. A session manager would
//! cost: its standing `GET` streams would each hold a slot of the gateway's concurrency limit
//! and be cut by its request timeout, its sessions are per-process memory to bound and expire,
//! and they tie a client to one server node. Stateless, every MCP request is an ordinary
//! request under the gateway's timeout, concurrency limit and metrics.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nexus_control::{ControlError, InvokeRequest, MAX_CONTEXT_ID_LEN};
use nexus_core::message::{Part, Role};
use nexus_core::{
    Agent, Cursor, ErrorCode, Name, PageRequest, Task, TaskEventKind, TaskId, TaskState, Tenant,
};
use nexus_package::Manifest;
use nexus_protocol::a2a::TaskView;
use nexus_store::StoreError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ProtocolVersion,
    ResourceContents, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::Scope;
use crate::error::ApiError;
use crate::extract::{Path, RawBody};

/// Separates the agent from the skill in a tool name. Agent names cannot contain `_`.
pub const SKILL_SEPARATOR: &str = "__";
/// The newest MCP revision this endpoint implements and is tested against.
const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;
/// Agents per `tools/list` page: each costs two store reads to describe, so a page stays
/// cheap; the store's largest page means one page holds every tool of almost any tenant.
const AGENTS_PER_PAGE: u32 = nexus_core::page::MAX_PAGE_SIZE;
/// Longest part of a caller-supplied name echoed in an error message.
const MAX_ECHOED_CHARS: usize = 128;
/// The arguments every tool takes.
const ARGUMENTS: [&str; 3] = ["message", "session", "task"];

/// `POST /mcp/{tenant}`: one MCP message, answered as JSON.
///
/// An unknown tenant is a 404 problem before any MCP handling. The body has already been read
/// under the router's body limit (413 problem past it).
pub async fn endpoint(
    state: Scope,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let tenant = crate::routes::tenants::resolve_tenant(&state, &tenant).await?;
    // What rmcp would refuse in plain text, refused here as problems (it also checks
    // `Accept` and `Origin`; see `transport_refusal`).
    if !is_json(&headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "MCP messages are `application/json`",
        ));
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not JSON: {e}"),
        ));
    }
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let trace_id = super::inbound_trace_id(&headers);
    *request.headers_mut() = headers;
    let tools = TenantTools {
        state,
        tenant: Arc::new(tenant),
        trace_id,
    };
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        server_config(),
    );
    let response = service.handle(request).await.map(Body::new);
    if response.status().is_client_error() && !is_json(response.headers()) {
        return Err(transport_refusal(response).await);
    }
    Ok(response.into_response())
}

/// The MCP error of a control-plane error: one exhaustive `match` on its code. MCP tools
/// report bad arguments (an unknown agent or task, a message the agent refuses) as invalid
/// params; what the server could not do as internal errors.
fn control_error(error: ControlError) -> ErrorData {
    use nexus_core::ErrorCode as C;
    match error.code() {
        C::InvalidJson
        | C::InvalidBody
        | C::ValidationFailed
        | C::InvalidParameter
        | C::InvalidPackage
        | C::GrantRefused
        | C::GrantsUnconfirmed
        | C::PayloadTooLarge
        | C::UnsupportedMediaType
        | C::NotFound
        | C::RouteNotFound
        | C::MethodNotAllowed
        | C::NotAcceptable
        | C::Conflict
        | C::IllegalTransition
        | C::Forbidden
        | C::Unauthenticated
        | C::OriginRefused
        | C::HostRefused
        | C::MalformedRequest
        | C::HeadersTooLarge => ErrorData::invalid_params(error.to_string(), None),
        C::RateLimited | C::Timeout | C::Overloaded | C::Unavailable | C::Internal => {
            internal(error)
        }
    }
}

/// Whether `Content-Type` says `application/json` (parameters such as `charset` aside).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// rmcp answers what it refuses at the transport (no `Accept` for JSON and SSE, a browser's
/// `Origin`, a JSON body that is no JSON-RPC message) with a plain-text body; the gateway
/// answers problems.
async fn transport_refusal(response: axum::http::Response<Body>) -> ApiError {
    use axum::http::StatusCode;
    /// rmcp's refusals are a sentence; anything longer is cut.
    const MAX_REFUSAL_BYTES: usize = 4096;
    let status = response.status();
    let detail = match axum::body::to_bytes(response.into_body(), MAX_REFUSAL_BYTES).await {
        Ok(body) => String::from_utf8_lossy(&body)
            .chars()
            .take(MAX_ECHOED_CHARS * 2)
            .collect(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
        StatusCode::FORBIDDEN => ErrorCode::OriginRefused,
        // The content type was checked before: rmcp says 415 for a JSON body that is no
        // JSON-RPC message.
        _ => ErrorCode::InvalidBody,
    };
    ApiError::new(code, format!("MCP: {detail}"))
}

fn server_config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // The gateway serves every route under whatever host name it is reached by (a server
        // behind a proxy or on a LAN name must keep working); checking `Host` here alone would
        // protect nothing the REST API leaves open.
        .disable_allowed_hosts()
        // MCP requires validating `Origin` against DNS rebinding. MCP clients are programs that
        // send none; a request that carries one comes from a browser page, and no page is
        // trusted yet, so it is refused (403).
        .enforce_origin_validation()
        // Already read whole under the router's body limit.
        .with_max_request_body_bytes(usize::MAX)
}

/// The MCP server of one tenant.
#[derive(Debug, Clone)]
struct TenantTools {
    state: Scope,
    tenant: Arc<Tenant>,
    /// The W3C trace of the request's `traceparent`, which the tasks it starts join.
    trace_id: Option<String>,
}

impl ServerHandler for TenantTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(PROTOCOL_VERSION)
            .with_server_info(
                Implementation::new("nexuscore", env!("CARGO_PKG_VERSION"))
                    .with_title(format!("NexusCore: {}", self.tenant.display_name)),
            )
            .with_instructions(format!(
                "Each tool is an agent of the NexusCore tenant `{}`. Send it text as `message`. \
                 Pass the same `session` to continue a conversation. When an agent asks for \
                 more input, answer by calling the same tool with `task` set to the task id \
                 it gives.",
                self.tenant.name
            ))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL_VERSION))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let after = request
            .and_then(|r| r.cursor)
            .filter(|c| !c.is_empty())
            .map(Cursor);
        let page = self
            .state
            .control
            .list_agents(
                &self.state.caller,
                self.tenant.id,
                PageRequest::after(after, AGENTS_PER_PAGE),
            )
            .await
            .map_err(|e| match e {
                ControlError::Store(StoreError::InvalidCursor(c)) => {
                    ErrorData::invalid_params(format!("invalid cursor `{}`", echo(&c)), None)
                }
                other => control_error(other),
            })?;
        let mut tools = Vec::new();
        for agent in &page.items {
            match self.manifest(agent).await {
                Ok(manifest) => tools.extend(tools_of(&agent.name, &manifest)),
                // One broken agent does not hide the others.
                Err(e) => {
                    tracing::warn!(agent = %agent.name, error = %e, "agent left out of tools/list")
                }
            }
        }
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = page.next_cursor.map(|c| c.0);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let agent = self.resolve_tool(&request.name).await?;
        let arguments = Arguments::parse(request.arguments.as_ref())?;
        let continues = match &arguments.task {
            Some(id) => Some(
                self.waiting_task(&agent, id, arguments.session.as_deref())
                    .await?,
            ),
            None => None,
        };
        let invocation = self
            .state
            .control
            .invoke(
                &self.state.caller,
                self.tenant.id,
                &agent.name,
                InvokeRequest {
                    message_id: None,
                    message: vec![Part::text(arguments.message)],
                    // A continued task keeps its own session.
                    context_id: if continues.is_some() {
                        None
                    } else {
                        arguments.session
                    },
                    task_id: continues,
                    chain: nexus_control::CallChain {
                        trace_id: self.trace_id.clone(),
                        ..nexus_control::CallChain::default()
                    },
                },
            )
            .await
            .map_err(control_error)?;
        Ok(self.result(&request.name, invocation.task).await?.into())
    }
}

impl TenantTools {
    /// The manifest of the agent's current revision, read as the Agent Card reads it.
    async fn manifest(&self, agent: &Agent) -> Result<Manifest, ControlError> {
        self.state
            .control
            .agent_manifest(&self.state.caller, self.tenant.id, agent)
            .await
    }

    /// The agent a tool name designates (see the module docs for the scheme).
    async fn resolve_tool(&self, tool: &str) -> Result<Agent, ErrorData> {
        let unknown = || {
            ErrorData::invalid_params(
                format!(
                    "unknown tool `{}`; tools/list names this tenant's tools",
                    echo(tool)
                ),
                None,
            )
        };
        let (agent, skill) = parse_tool_name(tool).ok_or_else(unknown)?;
        let agent = match self
            .state
            .control
            .agent(&self.state.caller, self.tenant.id, &agent)
            .await
        {
            Ok(agent) => agent,
            Err(ControlError::Store(StoreError::NotFound { .. })) => return Err(unknown()),
            Err(e) => return Err(control_error(e)),
        };
        if let Some(skill) = skill {
            let manifest = self.manifest(&agent).await.map_err(control_error)?;
            if !manifest.skills.iter().any(|s| s.id == skill) {
                return Err(unknown());
            }
        }
        Ok(agent)
    }

    /// The task named by the `task` argument: this agent's, and waiting for input.
    async fn waiting_task(
        &self,
        agent: &Agent,
        id: &str,
        session: Option<&str>,
    ) -> Result<TaskId, ErrorData> {
        let no_task = || {
            ErrorData::invalid_params(
                format!("`task`: agent `{}` has no task `{}`", agent.name, echo(id)),
                None,
            )
        };
        let id: TaskId = id.parse().map_err(|_| no_task())?;
        let task = match self
            .state
            .control
            .task(&self.state.caller, self.tenant.id, id)
            .await
        {
            Ok(task) if task.agent_id == agent.id => task,
            Ok(_) | Err(ControlError::Store(StoreError::NotFound { .. })) => return Err(no_task()),
            Err(e) => return Err(control_error(e)),
        };
        if task.state != TaskState::InputRequired {
            return Err(ErrorData::invalid_params(
                format!(
                    "`task`: task `{id}` is {} and takes no more messages",
                    task.state
                ),
                None,
            ));
        }
        if session.is_some_and(|s| s != task.context_id) {
            return Err(ErrorData::invalid_params(
                format!(
                    "`session`: task `{id}` belongs to session `{}`",
                    task.context_id
                ),
                None,
            ));
        }
        Ok(id)
    }

    /// The tool result for a task that has stopped running: what the agent answered this
    /// turn, or why it did not.
    async fn result(&self, tool: &str, task: Task) -> Result<CallToolResult, ErrorData> {
        let events = self
            .state
            .control
            .task_log(&self.state.caller, self.tenant.id, task.id)
            .await
            .map_err(control_error)?;
        // This turn: from the caller's latest message on.
        let turn = events
            .iter()
            .rposition(|e| {
                e.kind == TaskEventKind::Message
                    && e.payload.get("event").is_none()
                    && e.payload.get("role") == Some(&json!("user"))
            })
            .unwrap_or(0);
        let view = TaskView::new(task, &events[turn..]);
        let task = &view.task;
        let reply: Vec<&Part> = view
            .history
            .iter()
            .filter(|(_, message)| message.role == Role::Agent)
            .flat_map(|(_, message)| &message.parts)
            .collect();
        let reason = task.status_message.as_deref().unwrap_or("no reason given");
        let mut result = match task.state {
            TaskState::Completed => {
                let mut content = contents(task.id, reply.iter().copied());
                content.extend(contents(
                    task.id,
                    view.artifacts.iter().flat_map(|a| &a.parts),
                ));
                let mut result = CallToolResult::success(content);
                result.structured_content = structured(&reply);
                result
            }
            TaskState::InputRequired => {
                let mut content = contents(task.id, reply.iter().copied());
                content.push(ContentBlock::text(format!(
                    "The agent needs more input (task {id}). To answer, call `{tool}` again \
                     with `message` set to the answer and `task` set to \"{id}\".",
                    id = task.id,
                    tool = echo(tool),
                )));
                CallToolResult::success(content)
            }
            TaskState::Failed => CallToolResult::error(vec![ContentBlock::text(format!(
                "The task failed: {reason}"
            ))]),
            TaskState::Rejected => CallToolResult::error(vec![ContentBlock::text(format!(
                "The agent rejected the message: {reason}"
            ))]),
            TaskState::Canceled => CallToolResult::error(vec![ContentBlock::text(format!(
                "The task was canceled: {reason}"
            ))]),
            // `invoke` returns once the task has stopped running; say so if it has not.
            TaskState::Submitted | TaskState::Working | TaskState::AuthRequired => {
                CallToolResult::success(vec![ContentBlock::text(format!(
                    "The task is {}; look it up at /v1/tenants/{}/tasks/{}.",
                    task.state, self.tenant.name, task.id
                ))])
            }
        };
        let mut meta = JsonObject::new();
        meta.insert("nexus/taskId".into(), json!(task.id.to_string()));
        meta.insert("nexus/session".into(), json!(task.context_id));
        meta.insert("nexus/state".into(), json!(task.state.as_str()));
        result.meta = Some(MetaObject(meta));
        Ok(result)
    }
}

/// The `arguments` of a tool call.
#[derive(Debug)]
struct Arguments {
    message: String,
    session: Option<String>,
    task: Option<String>,
}

impl Arguments {
    fn parse(arguments: Option<&JsonObject>) -> Result<Self, ErrorData> {
        let invalid = |why: String| ErrorData::invalid_params(why, None);
        let empty = JsonObject::new();
        let arguments = arguments.unwrap_or(&empty);
        if let Some(key) = arguments.keys().find(|k| !ARGUMENTS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown argument `{}`; the arguments are `message`, `session` and `task`",
                echo(key)
            )));
        }
        let message = match arguments.get("message") {
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            Some(Value::String(_)) => return Err(invalid("`message` must not be empty".into())),
            Some(Value::Null) | None => {
                return Err(invalid(
                    "`message` (the text for the agent) is required".into(),
                ));
            }
            Some(_) => return Err(invalid("`message` must be a string".into())),
        };
        let session = optional_string(arguments, "session")?;
        if session
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > MAX_CONTEXT_ID_LEN)
        {
            return Err(invalid(format!(
                "`session` must be 1 to {MAX_CONTEXT_ID_LEN} bytes"
            )));
        }
        let task = optional_string(arguments, "task")?;
        Ok(Self {
            message,
            session,
            task,
        })
    }
}

/// A string argument that may be absent (or `null`, as models often send).
fn optional_string(arguments: &JsonObject, key: &str) -> Result<Option<String>, ErrorData> {
    match arguments.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ErrorData::invalid_params(
            format!("`{key}` must be a string"),
            None,
        )),
    }
}

/// Splits a tool name into the agent and, for `{agent}__{skill}`, the skill id.
fn parse_tool_name(tool: &str) -> Option<(Name, Option<&str>)> {
    let (agent, skill) = match tool.split_once(SKILL_SEPARATOR) {
        Some((agent, skill)) => (agent, Some(skill)),
        None => (tool, None),
    };
    let agent = Name::parse(agent).ok()?;
    if skill.is_some_and(str::is_empty) {
        return None;
    }
    Some((agent, skill))
}

/// The tools of one agent (see the module docs for the naming scheme).
fn tools_of(agent: &Name, manifest: &Manifest) -> Vec<Tool> {
    let about = &manifest.agent.description;
    let tool = |name: String, title: &str, description: String, skill: Option<&str>| {
        let mut meta = JsonObject::new();
        meta.insert("nexus/agent".into(), json!(agent.as_str()));
        if let Some(skill) = skill {
            meta.insert("nexus/skill".into(), json!(skill));
        }
        Tool::new(name, description, input_schema())
            .with_title(title)
            .with_meta(MetaObject(meta))
    };
    match manifest.skills.as_slice() {
        [] => vec![tool(agent.to_string(), agent.as_str(), about.clone(), None)],
        [skill] => vec![tool(
            agent.to_string(),
            &skill.name,
            format!(
                "{about}\n\n{}: {}{}",
                skill.name,
                skill.description,
                examples(&skill.examples)
            ),
            Some(&skill.id),
        )],
        skills => skills
            .iter()
            .map(|skill| {
                tool(
                    format!("{agent}{SKILL_SEPARATOR}{}", skill.id),
                    &skill.name,
                    format!(
                        "{}{}\n\nA skill of the agent `{agent}`: {about}",
                        skill.description,
                        examples(&skill.examples)
                    ),
                    Some(&skill.id),
                )
            })
            .collect(),
    }
}

fn examples(examples: &[String]) -> String {
    if examples.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = examples.iter().map(|e| format!("\"{e}\"")).collect();
    format!("\nExample messages: {}", quoted.join(", "))
}

/// The input schema every tool shares.
fn input_schema() -> Arc<JsonObject> {
    static SCHEMA: LazyLock<Arc<JsonObject>> = LazyLock::new(|| {
        let schema = json!({
            "type": "object",
            "properties": {
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The message for the agent, as text.",
                },
                "session": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_CONTEXT_ID_LEN,
                    "description": "Conversation id (the A2A contextId). Calls with the same \
                        session share the agent's per-session state; omit it for a new one.",
                },
                "task": {
                    "type": "string",
                    "description": "Answer this task: the id from a call that needed more input.",
                },
            },
            "required": ["message"],
            "additionalProperties": false,
        });
        match schema {
            Value::Object(schema) => Arc::new(schema),
            _ => Arc::default(),
        }
    });
    SCHEMA.clone()
}

/// MCP content for message or artifact parts: text as text, data as its JSON text, files as
/// images, audio or embedded blobs.
fn contents<'a>(task: TaskId, parts: impl Iterator<Item = &'a Part>) -> Vec<ContentBlock> {
    parts
        .enumerate()
        .map(|(index, part)| match part {
            Part::Text { text } => ContentBlock::text(text.clone()),
            Part::Data { data } => ContentBlock::text(data.to_string()),
            Part::File {
                media_type, bytes, ..
            } => {
                let data = BASE64.encode(bytes);
                match media_type.as_deref() {
                    Some(media) if media.starts_with("image/") => ContentBlock::image(data, media),
                    Some(media) if media.starts_with("audio/") => ContentBlock::audio(data, media),
                    media => {
                        let blob = ResourceContents::blob(
                            data,
                            format!("urn:nexus:task:{task}:part:{index}"),
                        );
                        ContentBlock::resource(match media {
                            Some(media) => blob.with_mime_type(media),
                            None => blob,
                        })
                    }
                }
            }
        })
        .collect()
}

/// `structuredContent`: the reply's data, when it is exactly one JSON object.
fn structured(reply: &[&Part]) -> Option<Value> {
    let mut data = reply.iter().filter_map(|part| match part {
        Part::Data { data } => Some(data),
        _ => None,
    });
    match (data.next(), data.next()) {
        (Some(object @ Value::Object(_)), None) => Some(object.clone()),
        _ => None,
    }
}

/// At most [`MAX_ECHOED_CHARS`] of caller input, for error messages.
fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHOED_CHARS).collect()
}

fn internal(error: impl std::fmt::Display) -> ErrorData {
    tracing::error!(error = %error, "MCP request failed");
    ErrorData::internal_error("internal error; see the server log", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_split_at_the_first_separator() {
        let (agent, skill) = parse_tool_name("echo").unwrap();
        assert_eq!((agent.as_str(), skill), ("echo", None));
        let (agent, skill) = parse_tool_name("docs__sum__up").unwrap();
        assert_eq!((agent.as_str(), skill), ("docs", Some("sum__up")));
        for bad in ["", "Echo", "echo__", "__echo", "e cho", "echo_x"] {
            assert!(parse_tool_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn arguments_need_a_message_and_refuse_strangers() {
        let parse = |v: Value| Arguments::parse(v.as_object());
        let ok = parse(json!({"message": "hi", "session": "s1", "task": null})).unwrap();
        assert_eq!(
            (ok.message.as_str(), ok.session.as_deref(), ok.task),
            ("hi", Some("s1"), None)
        );
        for bad in [
            json!({}),
            json!({"message": ""}),
            json!({"message": 5}),
            json!({"message": "hi", "session": ""}),
            json!({"message": "hi", "session": 3}),
            json!({"message": "hi", "extra": 1}),
        ] {
            let error = parse(bad.clone()).unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{bad}");
        }
        assert!(Arguments::parse(None).is_err());
    }

    #[test]
    fn only_a_single_object_is_structured_content() {
        let object = Part::Data {
            data: json!({"a": 1}),
        };
        let text = Part::text("t");
        assert_eq!(structured(&[&text, &object]), Some(json!({"a": 1})));
        assert_eq!(structured(&[&object, &object]), None);
        assert_eq!(structured(&[&Part::Data { data: json!([1]) }]), None);
    }
}
