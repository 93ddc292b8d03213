//! `/v1/tenants/{tenant}/tasks`: listing tasks, reading them and their event logs, and
//! canceling them. Every route that takes a task id takes a unique prefix of it too.

use axum::response::IntoResponse;
use nexus_api_model::ListedTask;
use nexus_core::{
    Cursor, ErrorCode, IdPrefix, Page, PageRequest, Task, TaskEvent, TaskId, TaskState, TenantId,
};
use nexus_store::TaskFilter;
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::agents::parse_name;
use crate::routes::tenants::resolve_tenant;

/// Most task events returned by one events request.
pub const MAX_EVENTS_PER_PAGE: u32 = 1000;

/// A task's events as SSE: `task` first when given, then each log event as it is committed,
/// named by its kind with its sequence number as the SSE id (so `Last-Event-ID` resumes).
pub(crate) fn event_stream(
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
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page: continue with older tasks.
    pub after: Option<String>,
    /// Only tasks of this agent (name).
    pub agent: Option<String>,
    pub context_id: Option<String>,
    /// Only tasks in this state (`working`, `completed`, …).
    pub state: Option<String>,
}

/// List tasks, newest first, each with its agent's name and a short id. Pass `next_cursor`
/// as `after` for the next (older) page.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tasks", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), TaskListParams),
    responses((status = 200, description = "A page of tasks, newest first", body = Page<ListedTask>)))]
pub async fn list_tasks(
    state: Scope,
    Path(tenant): Path<String>,
    Query(params): Query<TaskListParams>,
) -> Result<Json<Page<ListedTask>>, ApiError> {
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
            s.parse::<TaskState>().map_err(|e| {
                let valid: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("{e}; the states are {}", valid.join(", ")),
                )
            })
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
    let page = state
        .control
        .list_tasks_newest(&state.caller, tenant.id, &filter, page)
        .await?;
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(
                |nexus_store::ListedTask {
                     task,
                     agent,
                     short_id,
                 }| ListedTask {
                    task,
                    agent,
                    short_id,
                },
            )
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The task that `text` (a task id, or a prefix of one unique in the tenant) names.
pub(crate) async fn resolve_task_id(
    state: &Scope,
    tenant: TenantId,
    text: &str,
) -> Result<TaskId, ApiError> {
    let prefix: IdPrefix = text.parse().map_err(|e: nexus_core::IdParseError| {
        ApiError::new(ErrorCode::InvalidParameter, e.to_string())
    })?;
    Ok(state
        .control
        .resolve_task(&state.caller, tenant, &prefix)
        .await?)
}

/// Get a task.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tasks/{task}", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id, or a prefix of it that no other task of the tenant starts with")),
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
            .task(
                &state.caller,
                tenant.id,
                resolve_task_id(&state, tenant.id, &task).await?,
            )
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
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id, or a prefix of it that no other task of the tenant starts with"), EventParams),
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
            .task(
                &state.caller,
                tenant.id,
                resolve_task_id(&state, tenant.id, &task).await?,
            )
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
                resolve_task_id(&state, tenant.id, &task).await?,
                params.after.unwrap_or(0),
                limit,
            )
            .await?,
    )
    .into_response())
}

/// Cancel a task that has not ended (e.g. one waiting for input).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tasks/{task}/cancel", tag = "tasks",
    params(("tenant" = String, Path, description = "Tenant name or id"), ("task" = String, Path, description = "Task id, or a prefix of it that no other task of the tenant starts with")),
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
            .cancel(
                &state.caller,
                tenant.id,
                resolve_task_id(&state, tenant.id, &task).await?,
            )
            .await?,
    ))
}
