//! `/v1/tenants/{tenant}/packages`, `/agents` and `/tasks`: deploying agents and running them
//! as durable tasks.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{
    AgentDetail, DeployBody, Deployment, Invocation, InvokeBody, RollbackBody, TaskResult,
};
use nexus_control::{DeployRequest, InvokeRequest};
use nexus_core::message::Part;
use nexus_core::{Agent, ErrorCode, Grants, Name, Package, Page};

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query, RawBody};
use crate::routes::tenants::{ListParams, resolve_tenant};

/// Largest package upload: the compressed archive limit of the package format.
pub const MAX_PACKAGE_BYTES: usize = nexus_package::MAX_COMPRESSED_BYTES as usize;

pub(crate) fn parse_name(what: &'static str, value: &str) -> Result<Name, ApiError> {
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
        (status = 422, description = "A grant the manifest does not declare (`grant_refused`), requested grants not confirmed (`grants_unconfirmed`), or an invalid name, config or secret (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
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
                unset_config: body.unset_config,
                secrets: body.secrets,
                grants: body.grants.map(|grants| Grants {
                    capabilities: grants.capabilities,
                    hosts: grants.hosts,
                }),
                accept_requested_grants: body.accept_requested_grants,
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
        (status = 409, description = "No earlier revision to roll back to", body = Problem, content_type = "application/problem+json"),
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
    let task_id = match body.task_id.as_deref() {
        Some(text) => Some(super::tasks::resolve_task_id(&state, tenant.id, text).await?),
        None => None,
    };
    let started = state
        .control
        .start(
            &state.caller,
            tenant.id,
            &agent,
            InvokeRequest {
                message_id: None,
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
        return Ok(super::tasks::event_stream(Some(started.task), events));
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
            wall_time_us: u64::try_from(wall_time.as_micros()).unwrap_or(u64::MAX),
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
