//! `/v1/tenants/{tenant}/packages`, `/agents` and `/tasks`: deploying agents and running them
//! as durable tasks.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{
    AgentDetail, DeployBody, Deployment, Invocation, InvokeBody, RollbackBody, TaskResult,
};
use nexus_control::{DeployRequest, InvokeRequest};
use nexus_core::message::Part;
use nexus_core::{
    Agent, Cursor, ErrorCode, Grants, Name, Package, Page, PageRequest, Task, TaskEvent, TaskId,
    TaskState,
};
use nexus_store::TaskFilter;
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query, RawBody};
use crate::routes::tenants::{ListParams, resolve_tenant};

/// Largest package upload: the compressed archive limit of the package format.
pub const MAX_PACKAGE_BYTES: usize = nexus_package::MAX_COMPRESSED_BYTES as usize;
/// Most task events returned by one events request.
pub const MAX_EVENTS_PER_PAGE: u32 = 1000;

fn parse_name(what: &'static str, value: &str) -> Result<Name, ApiError> {
    Name::parse(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("`{what}`: {e}")))
}

/// Upload a `.ncpkg` package (the raw archive as the body).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/packages", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A .ncpkg archive"),
    responses(
        (status = 201, description = "Stored (or already present)", body = Package),
        (status = 422, description = "Invalid package", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload_package(
    state: Scope,
    Path(tenant): Path<String>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let package = state
        .control
        .upload_package(&state.caller, tenant.id, body)
        .await?;
    Ok((StatusCode::CREATED, Json(package)))
}

/// List uploaded packages.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/packages", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ListParams),
    responses((status = 200, description = "A page of packages", body = Page<Package>)))]
pub async fn list_packages(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Package>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_packages(&state.caller, tenant.id, params.page())
            .await?,
    ))
}

/// Deploy an uploaded package as a new agent or a new revision of one.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents", tag = "agents", request_body = DeployBody,
    params(("tenant" = String, Path, description = "Tenant name or id")),
    responses(
        (status = 201, description = "Deployed", body = Deployment),
        (status = 404, description = "No such package", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A grant the manifest does not declare (`grant_refused`), or an invalid name, config or secret (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deploy(
    state: Scope,
    Path(tenant): Path<String>,
    Json(body): Json<DeployBody>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = body
        .name
        .as_deref()
        .map(|n| {
            Name::parse(n)
                .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("name: {e}")))
        })
        .transpose()?;
    let (agent, revision) = state
        .control
        .deploy(
            &state.caller,
            tenant.id,
            DeployRequest {
                name,
                package_digest: body.package_digest,
                config: body.config,
                secrets: body.secrets,
                grants: Grants {
                    capabilities: body.grants.capabilities,
                    hosts: body.grants.hosts,
                },
            },
        )
        .await?;
    let location = format!("/v1/tenants/{}/agents/{}", tenant.name, agent.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Deployment { agent, revision }),
    ))
}

/// List agents.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ListParams),
    responses((status = 200, description = "A page of agents", body = Page<Agent>)))]
pub async fn list_agents(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Agent>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .list_agents(&state.caller, tenant.id, params.page())
            .await?,
    ))
}

/// Get an agent and its revisions.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name")),
    responses(
        (status = 200, description = "The agent", body = AgentDetail),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_agent(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
) -> Result<Json<AgentDetail>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let nexus_control::AgentDetail { agent, revisions } = state
        .control
        .agent_detail(&state.caller, tenant.id, &parse_name("agent", &agent)?)
        .await?;
    Ok(Json(AgentDetail { agent, revisions }))
}

/// Delete an agent with its revisions, tasks and state.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/agents/{agent}", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_agent(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    state
        .control
        .delete_agent(&state.caller, tenant.id, &parse_name("agent", &agent)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make an earlier (or any existing) revision current.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents/{agent}/rollback", tag = "agents", request_body = RollbackBody,
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name")),
    responses(
        (status = 200, description = "Rolled back", body = Agent),
        (status = 404, description = "No such agent or revision", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rollback(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
    Json(body): Json<RollbackBody>,
) -> Result<Json<Agent>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .rollback(
                &state.caller,
                tenant.id,
                &parse_name("agent", &agent)?,
                body.revision,
            )
            .await?,
    ))
}

/// Longest session id accepted.
const MAX_CONTEXT_ID_LEN: usize = 256;

/// Send a message to an agent and wait for the task to end (or stream its events).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents/{agent}/tasks", tag = "tasks", request_body = InvokeBody,
    params(("tenant" = String, Path, description = "Tenant name or id"), ("agent" = String, Path, description = "Agent name")),
    responses(
        (status = 200, description = "The finished task with the agent's result; with `stream`, a text/event-stream of its events (`task`, then one event per log event)",
            content(
                (Invocation = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invoke(
    state: Scope,
    Path((tenant, agent)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<InvokeBody>,
) -> Result<axum::response::Response, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let agent = parse_name("agent", &agent)?;
    let mut message = body.parts;
    if let Some(text) = body.text {
        message.insert(0, Part::text(text));
    }
    if let Some(context) = &body.context_id
        && (context.is_empty() || context.len() > MAX_CONTEXT_ID_LEN)
    {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("context_id: must be 1 to {MAX_CONTEXT_ID_LEN} bytes"),
        ));
    }
    let task_id = body.task_id.as_deref().map(parse_task_id).transpose()?;
    let started = state
        .control
        .start(
            &state.caller,
            tenant.id,
            &agent,
            InvokeRequest {
                message,
                context_id: body.context_id,
                task_id,
                chain: nexus_control::CallChain {
                    trace_id: super::inbound_trace_id(&headers),
                    ..nexus_control::CallChain::default()
                },
            },
        )
        .await?;
    if body.stream {
        let after = started.log.last().map_or(0, |e| e.seq);
        let events = state
            .control
            .follow(&state.caller, tenant.id, started.task.id, after);
        return Ok(event_stream(Some(started.task), events));
    }
    let invocation = invocation_body(started.finished().await?);
    Ok(Json(invocation).into_response())
}

/// The wire form of a finished invocation. Everything is destructured or matched whole, so a
/// field or variant the runtime adds cannot be left out of the API's model unnoticed.
fn invocation_body(invocation: nexus_control::Invocation) -> Invocation {
    use nexus_api_model::{LlmUsage, Reply, TaskError, Usage};
    use nexus_runtime::{Reply as RunReply, TaskError as RunError, TaskResult as RunResult};

    let size = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let reply = |RunReply { message, artifacts }: RunReply| Reply { message, artifacts };
    let nexus_control::Invocation {
        task,
        result,
        usage,
        log: _,
    } = invocation;
    let result = result.map(|result| match result {
        RunResult::Completed { reply: r } => TaskResult::Completed { reply: reply(r) },
        RunResult::InputRequired { reply: r } => TaskResult::InputRequired { reply: reply(r) },
        RunResult::Rejected { reason } => TaskResult::Rejected { reason },
        RunResult::Failed { error } => TaskResult::Failed {
            error: match error {
                RunError::Timeout { limit_ms } => TaskError::Timeout { limit_ms },
                RunError::MemoryLimit { limit_bytes } => TaskError::MemoryLimit {
                    limit_bytes: size(limit_bytes),
                },
                RunError::StackOverflow => TaskError::StackOverflow,
                RunError::FuelExhausted { limit } => TaskError::FuelExhausted { limit },
                RunError::OutputLimit { limit_bytes } => TaskError::OutputLimit {
                    limit_bytes: size(limit_bytes),
                },
                RunError::LogLimit { limit_bytes } => TaskError::LogLimit {
                    limit_bytes: size(limit_bytes),
                },
                RunError::Trap { message, backtrace } => TaskError::Trap { message, backtrace },
                RunError::Agent { message } => TaskError::Agent { message },
                RunError::Instantiation { message } => TaskError::Instantiation { message },
                RunError::AtCapacity { limit_ms } => TaskError::AtCapacity { limit_ms },
            },
        },
    });
    let nexus_runtime::Usage {
        wall_time,
        fuel_consumed,
        peak_memory_bytes,
        output_bytes,
        log_bytes,
        llm,
    } = usage;
    Invocation {
        task,
        result,
        usage: Usage {
            wall_time: u64::try_from(wall_time.as_micros()).unwrap_or(u64::MAX),
            fuel_consumed,
            peak_memory_bytes: size(peak_memory_bytes),
            output_bytes: size(output_bytes),
            log_bytes: size(log_bytes),
            llm: LlmUsage {
                calls: llm.calls,
                prompt_tokens: llm.prompt_tokens,
                completion_tokens: llm.completion_tokens,
            },
        },
    }
}

/// A task's events as SSE: `task` first when given, then each log event as it is committed,
/// named by its kind with its sequence number as the SSE id (so `Last-Event-ID` resumes).
fn event_stream(
    first: Option<Task>,
    events: tokio::sync::mpsc::Receiver<Result<TaskEvent, nexus_control::ControlError>>,
) -> axum::response::Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    type SseItem = Result<Event, std::convert::Infallible>;

    let head = futures::stream::iter(first.map(|task| -> SseItem {
        Ok(Event::default()
            .event("task")
            .data(serde_json::to_string(&task).unwrap_or_default()))
    }));
    let tail = futures::stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        let item: SseItem = match events.recv().await? {
            Ok(event) => Ok(Event::default()
                .event(event.kind.as_str())
                .id(event.seq.to_string())
                .data(serde_json::to_string(&event).unwrap_or_default())),
            Err(error) => {
                let problem = ApiError::from(error);
                let item = Ok(Event::default()
                    .event("error")
                    .data(serde_json::to_string(&problem.problem()).unwrap_or_default()));
                return Some((item, None));
            }
        };
        Some((item, Some(events)))
    });
    Sse::new(futures::StreamExt::chain(head, tail))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Filters of the task list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    pub limit: Option<u32>,
    pub after: Option<String>,
    /// Only tasks of this agent (name).
    pub agent: Option<String>,
    pub context_id: Option<String>,
    /// Only tasks in this state (`working`, `completed`, …).
    pub state: Option<String>,
}

/// List tasks, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tasks", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), TaskListParams),
    responses((status = 200, description = "A page of tasks", body = Page<Task>)))]
pub async fn list_tasks(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<TaskListParams>,
) -> Result<Json<Page<Task>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    let agent_id = match &params.agent {
        Some(name) => Some(
            state
                .control
                .agent(&state.caller, tenant.id, &parse_name("agent", name)?)
                .await?
                .id,
        ),
        None => None,
    };
    let task_state = params
        .state
        .as_deref()
        .map(|s| {
            s.parse::<TaskState>()
                .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))
        })
        .transpose()?;
    let filter = TaskFilter {
        agent_id,
        context_id: params.context_id,
        state: task_state,
    };
    let page = PageRequest::after(
        params.after.map(Cursor),
        params.limit.unwrap_or(nexus_core::page::DEFAULT_PAGE_SIZE),
    );
    Ok(Json(
        state
            .control
            .list_tasks(&state.caller, tenant.id, &filter, page)
            .await?,
    ))
}

fn parse_task_id(value: &str) -> Result<TaskId, ApiError> {
    value.parse().map_err(|e: nexus_core::IdParseError| {
        ApiError::new(ErrorCode::InvalidParameter, e.to_string())
    })
}

/// Get a task.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tasks/{task}", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_task(
    state: Scope,
    Path((tenant, task)): Path<(String, String)>,
) -> Result<Json<Task>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .task(&state.caller, tenant.id, parse_task_id(&task)?)
            .await?,
    ))
}

/// Paging of a task's event log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Return events after this sequence number (default 0: from the start).
    pub after: Option<u64>,
    pub limit: Option<u32>,
    /// Answer with a `text/event-stream` that goes on with new events until the task stops
    /// running (`nexus logs -f`). A `Last-Event-ID` header resumes after that event.
    #[serde(default)]
    pub follow: bool,
}

/// A task's event log: status changes, messages, streamed output, artifacts, logs, usage.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tasks/{task}/events", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id"), EventParams),
    responses((status = 200, description = "Events in order; with `follow`, a text/event-stream", body = Vec<TaskEvent>)))]
pub async fn task_events(
    state: Scope,
    Path((tenant, task)): Path<(String, String)>,
    Query(params): Query<EventParams>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    if params.follow {
        let task = state
            .control
            .task(&state.caller, tenant.id, parse_task_id(&task)?)
            .await?;
        let resume = headers
            .get("last-event-id")
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidParameter,
                            "`Last-Event-ID` must be an event sequence number",
                        )
                    })
            })
            .transpose()?;
        let after = resume.unwrap_or(0).max(params.after.unwrap_or(0));
        let events = state
            .control
            .follow(&state.caller, tenant.id, task.id, after);
        return Ok(event_stream(None, events));
    }
    let limit = params
        .limit
        .unwrap_or(MAX_EVENTS_PER_PAGE)
        .clamp(1, MAX_EVENTS_PER_PAGE);
    Ok(Json(
        state
            .control
            .task_events(
                &state.caller,
                tenant.id,
                parse_task_id(&task)?,
                params.after.unwrap_or(0),
                limit,
            )
            .await?,
    )
    .into_response())
}

/// Cancel a task that has not ended (e.g. one waiting for input).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tasks/{task}/cancel", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Canceled", body = Task),
        (status = 409, description = "The task has already ended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_task(
    state: Scope,
    Path((tenant, task)): Path<(String, String)>,
) -> Result<Json<Task>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    Ok(Json(
        state
            .control
            .cancel(&state.caller, tenant.id, parse_task_id(&task)?)
            .await?,
    ))
}

// The model quotes at most this much of a secret's name in its errors: what the control
// plane accepts as a name.
const _: () =
    assert!(nexus_api_model::agents::MAX_SECRET_NAME_LEN == nexus_control::MAX_SECRET_NAME_LEN);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use nexus_core::{AgentId, Part, TaskId, TaskState, TenantId};
    use nexus_runtime::{Reply, TaskError, TaskResult, Usage};

    use super::invocation_body;

    fn task() -> nexus_core::Task {
        let now = chrono::Utc::now();
        nexus_core::Task {
            id: TaskId::new(),
            tenant_id: TenantId::new(),
            agent_id: AgentId::new(),
            agent_revision: 3,
            context_id: "session".into(),
            parent_task_id: None,
            state: TaskState::Completed,
            status_message: Some("done".into()),
            started_by: Some("system".into()),
            created_at: now,
            updated_at: now,
        }
    }

    /// The model of an invocation is what the control plane's `Invocation` serializes to,
    /// field for field, for every kind of result.
    #[test]
    fn invocations_keep_their_wire_format() {
        let reply = Reply {
            message: vec![Part::text("hello")],
            artifacts: Vec::new(),
        };
        let mut usage = Usage {
            wall_time: Duration::from_micros(1_234),
            fuel_consumed: Some(99),
            peak_memory_bytes: 65_536,
            output_bytes: 5,
            log_bytes: 7,
            ..Usage::default()
        };
        usage.llm.calls = 1;
        usage.llm.prompt_tokens = 10;
        usage.llm.completion_tokens = 20;
        let results = [
            None,
            Some(TaskResult::Completed {
                reply: reply.clone(),
            }),
            Some(TaskResult::InputRequired { reply }),
            Some(TaskResult::Rejected {
                reason: "no".into(),
            }),
            Some(TaskResult::Failed {
                error: TaskError::StackOverflow,
            }),
            Some(TaskResult::Failed {
                error: TaskError::MemoryLimit {
                    limit_bytes: 1 << 20,
                },
            }),
            Some(TaskResult::Failed {
                error: TaskError::Trap {
                    message: "unreachable".into(),
                    backtrace: vec!["f".into()],
                },
            }),
            Some(TaskResult::Failed {
                error: TaskError::Agent {
                    message: "oops".into(),
                },
            }),
            Some(TaskResult::Failed {
                error: TaskError::AtCapacity { limit_ms: 5 },
            }),
        ];
        for result in results {
            let invocation = nexus_control::Invocation {
                task: task(),
                result,
                usage,
                log: Vec::new(),
            };
            let expected = serde_json::to_value(&invocation).unwrap();
            let model = invocation_body(invocation);
            assert_eq!(serde_json::to_value(&model).unwrap(), expected);
            let read: nexus_api_model::Invocation = serde_json::from_value(expected).unwrap();
            assert_eq!(read, model, "clients read back what was sent");
        }
    }
}
