//! NCAP = A2A, per agent: the Agent Card at `/a2a/{tenant}/{agent}/.well-known/agent-card.json`
//! and JSON-RPC 2.0 at `/a2a/{tenant}/{agent}`, in A2A 1.0 (`A2A-Version: 1.0`, PascalCase
//! methods) or 0.3 (no header, `message/send` names).
//!
//! Supported: send (blocking until the task ends or asks for input, or returning at once),
//! streaming send and resubscription over SSE (fed by the task's event log, see
//! [`nexus_protocol::stream`]), get, list (1.0), cancel, multi-turn through `taskId`, and push
//! notification configs ([`super::a2a_push`]).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_control::{ControlError, InvokeRequest};
use nexus_core::{Agent, Cursor, Name, PageRequest, TaskId, TaskState, Tenant};
use nexus_protocol::a2a::{self, MessageError, TaskView, Version};
use nexus_protocol::jsonrpc::{self, RpcError, code};
use nexus_protocol::stream::StreamRenderer;
use nexus_store::{StoreError, TaskFilter};
use serde_json::{Value, json};

use super::{a2a_push, a2a_rest};
use crate::Scope;
use crate::error::ApiError;
use crate::extract::{Path, RawBody};

/// Header selecting the A2A version.
pub const VERSION_HEADER: &str = "a2a-version";
/// Most tasks one `ListTasks` page returns (as the A2A SDKs cap it).
const MAX_LIST_PAGE: u32 = 100;
/// Tasks in a `ListTasks` page without `pageSize` (the A2A default).
const DEFAULT_LIST_PAGE: u32 = 50;
/// Most characters of an unsupported `A2A-Version` echoed back in the error.
const MAX_ECHOED_VERSION: usize = 64;

pub(crate) async fn resolve(
    state: &Scope,
    tenant: &str,
    agent: &str,
) -> Result<(Tenant, Agent), ApiError> {
    let tenant = crate::routes::tenants::resolve_tenant(state, tenant).await?;
    let name = Name::parse(agent).map_err(|e| {
        ApiError::new(
            nexus_core::ErrorCode::InvalidParameter,
            format!("`agent`: {e}"),
        )
    })?;
    let agent = state.control.agent(&state.caller, tenant.id, &name).await?;
    Ok((tenant, agent))
}

/// The Agent Card: skills from the manifest, 1.0 `supportedInterfaces` and 0.3 fields.
pub async fn card(
    State(state): State<crate::AppState>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let reference = nexus_control::TenantRef::parse(&tenant).map_err(|e| {
        ApiError::new(
            nexus_core::ErrorCode::InvalidParameter,
            format!("`tenant` must be a tenant name or id: {e}"),
        )
    })?;
    let name = Name::parse(&agent).map_err(|e| {
        ApiError::new(
            nexus_core::ErrorCode::InvalidParameter,
            format!("`agent`: {e}"),
        )
    })?;
    let nexus_control::AgentCard {
        tenant,
        agent,
        manifest,
    } = state.control.agent_card(&reference, &name).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:7700");
    let url = format!("http://{host}/a2a/{}/{}", tenant.name, agent.name);
    let skills: Vec<Value> = manifest
        .skills
        .iter()
        .map(|skill| {
            json!({
                "id": skill.id,
                "name": skill.name,
                "description": skill.description,
                "tags": skill.tags,
                "examples": skill.examples,
                "inputModes": manifest.agent.input_modes,
                "outputModes": manifest.agent.output_modes,
            })
        })
        .collect();
    let card = json!({
        "name": agent.name,
        "description": manifest.agent.description,
        "version": manifest.agent.version.to_string(),
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        ],
        "capabilities": {"streaming": true, "pushNotifications": true, "extendedAgentCard": false},
        "defaultInputModes": manifest.agent.input_modes,
        "defaultOutputModes": manifest.agent.output_modes,
        "skills": skills,
        "provider": {"organization": tenant.display_name, "url": format!("http://{host}")},
        // Every call needs an API key as a bearer token (the card itself is public).
        "securitySchemes": {
            "bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer",
                "description": "A NexusCore API key (`nexus keys create`)"}}
        },
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
        // A2A 0.3 fields, for 0.3 clients.
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
    });
    Ok(cacheable_card(&headers, card.to_string(), agent.updated_at))
}

/// How long clients may reuse a card without asking again: long enough to spare a client that
/// fetches it per call, short enough that a redeploy shows within a minute.
const CARD_MAX_AGE_SECS: u32 = 60;

/// The card with its validators (A2A 1.0 §8.6: `Cache-Control` and `ETag` SHOULD,
/// `Last-Modified` MAY): the ETag is a digest of the body, so it changes with anything shown;
/// a request whose `If-None-Match` names it gets `304 Not Modified` without the body.
fn cacheable_card(
    request: &HeaderMap,
    body: String,
    updated_at: chrono::DateTime<chrono::Utc>,
) -> Response {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let validators = [
        (
            header::CACHE_CONTROL,
            format!("public, max-age={CARD_MAX_AGE_SECS}"),
        ),
        (header::ETAG, etag.clone()),
        (
            header::LAST_MODIFIED,
            updated_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
    ];
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (
        validators,
        [(header::CONTENT_TYPE, "application/json".to_owned())],
        body,
    )
        .into_response()
}

fn rpc_response(response: jsonrpc::Response) -> Response {
    let body = serde_json::to_vec(&response).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// JSON-RPC 2.0 endpoint of one agent.
///
/// A body not declared `application/json` (or `application/a2a+json`) is a `415
/// unsupported_media_type` problem, not a JSON-RPC error: it is refused before anything reads
/// it, as the binding requires that type, and a request a browser may send from any page
/// without a preflight (`text/plain`, a form, no type) is no JSON-RPC request at all.
pub async fn rpc(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    crate::extract::require_json(&headers, &body, true)?;
    let (tenant, agent) = resolve(&state, &tenant, &agent).await?;
    let raw: jsonrpc::RawRequest = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(e) => {
            let code = if e.is_data() {
                code::INVALID_REQUEST
            } else {
                code::PARSE_ERROR
            };
            return Ok(rpc_response(jsonrpc::Response::error(
                Value::Null,
                RpcError::new(code, e.to_string()),
            )));
        }
    };
    let mut request = match jsonrpc::validate(raw) {
        Ok(request) => request,
        Err(rejected) => {
            return Ok(rpc_response(jsonrpc::Response::error(
                rejected.id,
                rejected.error,
            )));
        }
    };
    let version = match request_version(&headers) {
        Ok(version) => version,
        // The version is not one we speak: answer as 1.0 does, with the reason.
        Err(error) => return Ok(rpc_response(rpc_error(Version::V1, request.id, error))),
    };
    if version == Version::V1 {
        // ProtoJSON: proto field names (`task_id`) are accepted for the JSON names.
        nexus_protocol::proto_json::accept_proto_names(&mut request.params);
    }
    let trace_id = super::inbound_trace_id(&headers);
    if is_streaming(version, &request.method) {
        return Ok(stream(
            &state,
            &tenant,
            &agent,
            version,
            request.id,
            &request.method,
            request.params,
            trace_id,
        )
        .await);
    }
    let outcome = dispatch(
        &state,
        &tenant,
        &agent,
        version,
        &request.method,
        request.params,
        trace_id,
    )
    .await;
    Ok(rpc_response(match outcome {
        Ok(result) => jsonrpc::Response::result(request.id, result),
        Err(error) => rpc_error(version, request.id, error),
    }))
}

/// An error response; in 1.0 its `data` is the `google.rpc.ErrorInfo` naming the A2A reason
/// (spec §9.5), in 0.3 it has none.
fn rpc_error(version: Version, id: Value, mut error: RpcError) -> jsonrpc::Response {
    if version == Version::V1 {
        error.data = Some(json!([a2a_rest::error_info(&error)]));
    }
    jsonrpc::Response::error(id, error)
}

/// Runs one (non-streaming) method. Tasks it starts join the W3C trace `trace_id`, the
/// request's `traceparent` if it had one.
pub(crate) async fn dispatch(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    method: &str,
    params: Value,
    trace_id: Option<String>,
) -> Result<Value, RpcError> {
    use Version::{V0_3, V1};
    match (version, method) {
        (V1, "SendMessage") | (V0_3, "message/send") => {
            send(state, tenant, agent, version, params, trace_id).await
        }
        (V1, "GetTask") | (V0_3, "tasks/get") => get(state, tenant, agent, version, params).await,
        (V1, "ListTasks") => list(state, tenant, agent, params).await,
        (V1, "CancelTask") | (V0_3, "tasks/cancel") => {
            cancel(state, tenant, agent, version, params).await
        }
        (V1, "CreateTaskPushNotificationConfig") | (V0_3, "tasks/pushNotificationConfig/set") => {
            a2a_push::create(state, tenant, agent, version, params).await
        }
        (V1, "GetTaskPushNotificationConfig") | (V0_3, "tasks/pushNotificationConfig/get") => {
            a2a_push::get(state, tenant, agent, version, params).await
        }
        (V1, "ListTaskPushNotificationConfigs") | (V0_3, "tasks/pushNotificationConfig/list") => {
            a2a_push::list(state, tenant, agent, version, params).await
        }
        (V1, "DeleteTaskPushNotificationConfig")
        | (V0_3, "tasks/pushNotificationConfig/delete") => {
            a2a_push::delete(state, tenant, agent, version, params).await
        }
        (V1, "GetExtendedAgentCard") | (V0_3, "agent/getAuthenticatedExtendedCard") => {
            Err(RpcError::new(
                code::EXTENDED_CARD_NOT_CONFIGURED,
                "this agent has no extended card",
            ))
        }
        _ => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "no method `{method}` in A2A {}",
                if version == V1 {
                    "1.0"
                } else {
                    "0.3 (send `A2A-Version: 1.0` for 1.0 methods)"
                }
            ),
        )),
    }
}

/// The A2A version the request's `A2A-Version` header names (none means 0.3). A value that
/// is not visible ASCII names no version: it is refused, not taken for a missing header.
fn request_version(headers: &HeaderMap) -> Result<Version, RpcError> {
    let Some(value) = headers.get(VERSION_HEADER) else {
        return Ok(Version::V0_3);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| Version::from_header(Some(v)))
        .ok_or_else(|| {
            let shown: String = String::from_utf8_lossy(value.as_bytes())
                .chars()
                .take(MAX_ECHOED_VERSION)
                .collect();
            RpcError::new(
                code::VERSION_NOT_SUPPORTED,
                format!("A2A version `{shown}` is not supported; use 1.0 or 0.3"),
            )
        })
}

pub(crate) fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(code::INVALID_PARAMS, message)
}

pub(crate) fn internal(error: impl std::fmt::Display) -> RpcError {
    tracing::error!(error = %error, "A2A request failed");
    RpcError::new(code::INTERNAL_ERROR, "internal error; see the server log")
}

fn history_length(params: &Value, at: &[&str]) -> Option<usize> {
    let mut value = params;
    for key in at {
        value = value.get(key)?;
    }
    value.as_u64().map(|n| n as usize)
}

/// The task `id` of this agent, as an A2A task.
async fn render(
    state: &Scope,
    tenant: &Tenant,
    task: nexus_core::Task,
    version: Version,
    history: Option<usize>,
) -> Result<Value, RpcError> {
    let events = state
        .control
        .task_log(&state.caller, tenant.id, task.id)
        .await
        .map_err(control_error)?;
    Ok(TaskView::new(task, &events).to_json(version, history))
}

fn task_id(params: &Value) -> Result<TaskId, RpcError> {
    let id = params
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("`id` (the task id) is required"))?;
    id.parse().map_err(|_| {
        RpcError::new(
            code::TASK_NOT_FOUND,
            format!("no task `{}`", id.chars().take(64).collect::<String>()),
        )
    })
}

pub(crate) async fn own_task(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    id: TaskId,
) -> Result<nexus_core::Task, RpcError> {
    match state.control.task(&state.caller, tenant.id, id).await {
        Ok(task) if task.agent_id == agent.id => Ok(task),
        Ok(_) | Err(ControlError::Store(StoreError::NotFound { .. })) => Err(RpcError::new(
            code::TASK_NOT_FOUND,
            format!("no task `{id}`"),
        )),
        Err(e) => Err(control_error(e)),
    }
}

async fn send(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
    trace_id: Option<String>,
) -> Result<Value, RpcError> {
    let started = start_message(state, tenant, agent, version, &params, trace_id).await?;
    let history = history_length(&params, &["configuration", "historyLength"]);
    let configuration = params.get("configuration");
    // 1.0 `returnImmediately: true` and 0.3 `blocking: false` ask for the task as soon as it
    // runs; poll it, subscribe to it or get a push notification when it ends.
    let return_now = match version {
        Version::V1 => configuration
            .and_then(|c| c.get("returnImmediately"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        Version::V0_3 => !configuration
            .and_then(|c| c.get("blocking"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };
    let task = if return_now {
        TaskView::new(started.task.clone(), &started.log).to_json(version, history)
    } else {
        let invocation = started.finished().await.map_err(control_error)?;
        TaskView::new(invocation.task, &invocation.log).to_json(version, history)
    };
    Ok(match version {
        Version::V1 => json!({ "task": task }),
        Version::V0_3 => task,
    })
}

/// Starts the task a `SendMessage`/`SendStreamingMessage` (or 0.3 `message/send`/`stream`)
/// asks for: parses the message, checks a continued task is this agent's and waits for
/// input, takes an inline push config, and starts the run.
async fn start_message(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: &Value,
    trace_id: Option<String>,
) -> Result<nexus_control::Started, RpcError> {
    let message = params
        .get("message")
        .ok_or_else(|| invalid_params("`message` is required"))?;
    let message = a2a::parse_message(message).map_err(|e| match e {
        MessageError::Invalid(why) => invalid_params(why),
        MessageError::Unsupported(why) => RpcError::new(code::CONTENT_TYPE_NOT_SUPPORTED, why),
    })?;
    let continue_task = match &message.task_id {
        Some(id) => {
            let id: TaskId = id
                .parse()
                .map_err(|_| RpcError::new(code::TASK_NOT_FOUND, format!("no task `{id}`")))?;
            let task = own_task(state, tenant, agent, id).await?;
            if task.state != TaskState::InputRequired {
                return Err(RpcError::new(
                    code::UNSUPPORTED_OPERATION,
                    format!("task `{id}` is {} and takes no more messages", task.state),
                ));
            }
            Some(id)
        }
        None => None,
    };
    let push = a2a_push::from_message(state, version, params).await?;
    let started = state
        .control
        .start_agent(
            &state.caller,
            tenant.id,
            agent.clone(),
            InvokeRequest {
                message_id: Some(message.message_id),
                message: message.parts,
                context_id: message.context_id,
                task_id: continue_task,
                chain: nexus_control::CallChain {
                    trace_id,
                    ..nexus_control::CallChain::default()
                },
            },
        )
        .await
        .map_err(control_error)?;
    a2a_push::after_start(state, tenant, push, &started).await?;
    Ok(started)
}

/// The JSON-RPC error of a control-plane error: one exhaustive `match` on its code, so a new
/// code must choose its A2A form here.
pub(crate) fn control_error(error: ControlError) -> RpcError {
    use nexus_core::ErrorCode as C;
    let rpc_code = match error.code() {
        C::InvalidJson => code::PARSE_ERROR,
        C::InvalidBody
        | C::ValidationFailed
        | C::InvalidParameter
        | C::InvalidPackage
        | C::GrantRefused
        | C::GrantsUnconfirmed
        | C::PayloadTooLarge => code::INVALID_PARAMS,
        C::UnsupportedMediaType => code::CONTENT_TYPE_NOT_SUPPORTED,
        C::NotFound => code::TASK_NOT_FOUND,
        C::Conflict | C::IllegalTransition => code::UNSUPPORTED_OPERATION,
        C::Forbidden | C::Unauthenticated | C::OriginRefused | C::HostRefused => code::FORBIDDEN,
        C::RouteNotFound
        | C::MethodNotAllowed
        | C::NotAcceptable
        | C::MalformedRequest
        | C::HeadersTooLarge => code::INVALID_REQUEST,
        C::RateLimited | C::Timeout | C::Overloaded | C::Unavailable | C::Internal => {
            return internal(error);
        }
    };
    RpcError::new(rpc_code, error.to_string())
}

async fn get(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let task = own_task(state, tenant, agent, task_id(&params)?).await?;
    render(
        state,
        tenant,
        task,
        version,
        history_length(&params, &["historyLength"]),
    )
    .await
}

async fn list(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    params: Value,
) -> Result<Value, RpcError> {
    let page_size = page_size(&params)?;
    let state_filter = match params.get("status").and_then(Value::as_str) {
        None | Some("TASK_STATE_UNSPECIFIED") => None,
        Some(name) => Some(
            a2a::parse_state(name)
                .ok_or_else(|| invalid_params(format!("unknown task state `{name}`")))?,
        ),
    };
    let filter = TaskFilter {
        agent_id: Some(agent.id),
        context_id: params
            .get("contextId")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        state: state_filter,
    };
    let after = params
        .get("pageToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| Cursor(t.to_owned()));
    let page = state
        .control
        .list_tasks(
            &state.caller,
            tenant.id,
            &filter,
            PageRequest::after(after, page_size),
        )
        .await
        .map_err(|e| match e {
            ControlError::Store(StoreError::InvalidCursor(c)) => {
                invalid_params(format!("invalid pageToken `{c}`"))
            }
            other => control_error(other),
        })?;
    let history = history_length(&params, &["historyLength"]);
    let mut tasks = Vec::with_capacity(page.items.len());
    for task in page.items {
        tasks.push(render(state, tenant, task, Version::V1, history).await?);
    }
    Ok(json!({
        "tasks": tasks,
        "nextPageToken": page.next_cursor.map(|c| c.0).unwrap_or_default(),
        "pageSize": page_size,
    }))
}

/// `ListTasks`' `pageSize`: absent (or null) is the default; a non-negative integer is clamped
/// to `1..=MAX_LIST_PAGE`, as `/v1` clamps `limit`; anything else (negative, fractional, not a
/// number) is refused, as `/v1` and the HTTP+JSON binding refuse it.
fn page_size(params: &Value) -> Result<u32, RpcError> {
    match params.get("pageSize") {
        None | Some(Value::Null) => Ok(DEFAULT_LIST_PAGE),
        Some(value) => value
            .as_u64()
            .map(|n| u32::try_from(n.clamp(1, u64::from(MAX_LIST_PAGE))).unwrap_or(MAX_LIST_PAGE))
            .ok_or_else(|| invalid_params("`pageSize` must be a non-negative integer")),
    }
}

async fn cancel(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let task = own_task(state, tenant, agent, task_id(&params)?).await?;
    match state
        .control
        .cancel(&state.caller, tenant.id, task.id)
        .await
    {
        Ok(task) => render(state, tenant, task, version, None).await,
        Err(ControlError::Store(StoreError::IllegalTransition(_))) => Err(RpcError::new(
            code::TASK_NOT_CANCELABLE,
            format!(
                "task `{}` is {} and cannot be canceled",
                task.id, task.state
            ),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn is_streaming(version: Version, method: &str) -> bool {
    matches!(
        (version, method),
        (Version::V1, "SendStreamingMessage" | "SubscribeToTask")
            | (Version::V0_3, "message/stream" | "tasks/resubscribe")
    )
}

/// A streaming method: a JSON-RPC error as a plain response when it cannot start, else an SSE
/// stream whose events each carry one JSON-RPC response.
#[allow(clippy::too_many_arguments)]
async fn stream(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    id: Value,
    method: &str,
    params: Value,
    trace_id: Option<String>,
) -> Response {
    let opened = match method {
        "SendStreamingMessage" | "message/stream" => {
            open_send_stream(state, tenant, agent, version, &params, trace_id).await
        }
        _ => open_subscription(state, tenant, agent, version, &params).await,
    };
    let (first, renderer, events) = match opened {
        Ok(opened) => opened,
        Err(error) => return rpc_response(rpc_error(version, id, error)),
    };
    sse(id, first, renderer, events)
}

/// What a stream starts with: the task as it stands, the renderer for what follows, and the
/// events that follow (`None` when the task is not running and nothing will follow).
type Opened = (Value, StreamRenderer, Option<FollowReceiver>);
type FollowReceiver = tokio::sync::mpsc::Receiver<Result<nexus_core::TaskEvent, ControlError>>;

pub(crate) async fn open_send_stream(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: &Value,
    trace_id: Option<String>,
) -> Result<Opened, RpcError> {
    let started = start_message(state, tenant, agent, version, params, trace_id).await?;
    let after = started.log.last().map_or(0, |e| e.seq);
    let mut renderer = StreamRenderer::new(version, &started.task);
    let history = history_length(params, &["configuration", "historyLength"]);
    let first = renderer.snapshot(&TaskView::new(started.task.clone(), &started.log), history);
    let events = state
        .control
        .follow(&state.caller, tenant.id, started.task.id, after);
    Ok((first, renderer, Some(events)))
}

pub(crate) async fn open_subscription(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: &Value,
) -> Result<Opened, RpcError> {
    let task = own_task(state, tenant, agent, task_id(params)?).await?;
    if task.state.is_terminal() {
        return Err(RpcError::new(
            code::UNSUPPORTED_OPERATION,
            format!(
                "task `{}` has ended ({}); get it instead",
                task.id, task.state
            ),
        ));
    }
    let log = state
        .control
        .task_log(&state.caller, tenant.id, task.id)
        .await
        .map_err(control_error)?;
    let after = log.last().map_or(0, |e| e.seq);
    let mut renderer = StreamRenderer::new(version, &task);
    let task_id = task.id;
    let view = TaskView::new(task, &log);
    let first = renderer.snapshot(&view, history_length(params, &["historyLength"]));
    let events = state
        .control
        .follow(&state.caller, tenant.id, task_id, after);
    Ok((first, renderer, Some(events)))
}

/// The SSE response: the first event, then one per rendered log event until the stream ends.
fn sse(
    id: Value,
    first: Value,
    renderer: StreamRenderer,
    events: Option<FollowReceiver>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};

    let event = |response: jsonrpc::Response| {
        Ok::<_, std::convert::Infallible>(
            Event::default().data(serde_json::to_string(&response).unwrap_or_default()),
        )
    };
    let head = futures::stream::once({
        let first = event(jsonrpc::Response::result(id.clone(), first));
        async move { first }
    });
    struct Follow {
        id: Value,
        renderer: StreamRenderer,
        events: Option<FollowReceiver>,
    }
    let tail = futures::stream::unfold(
        Follow {
            id,
            renderer,
            events,
        },
        move |mut follow| async move {
            loop {
                let receiver = follow.events.as_mut()?;
                let next = match receiver.recv().await? {
                    Ok(next) => next,
                    Err(error) => {
                        follow.events = None;
                        let response = jsonrpc::Response::error(follow.id.clone(), internal(error));
                        return Some((event(response), follow));
                    }
                };
                if let Some((result, ends)) = follow.renderer.event(&next) {
                    if ends {
                        // Dropping the receiver stops the follower.
                        follow.events = None;
                    }
                    let response = jsonrpc::Response::result(follow.id.clone(), result);
                    return Some((event(response), follow));
                }
            }
        },
    );
    Sse::new(futures::StreamExt::chain(head, tail))
        .keep_alive(KeepAlive::default())
        .into_response()
}
