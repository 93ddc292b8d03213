//! Tasks: one message to an agent runs as a durable task (`run`), followed through its log
//! (`follow`), with the capabilities its revision grants (`env`).

mod env;
mod follow;
mod run;

use std::sync::Arc;

use nexus_core::message::{Message, Part, Role};
use nexus_core::{
    Agent, Caller, IdPrefix, Name, NewTask, Page, PageRequest, Task, TaskEvent, TaskEventKind,
    TaskId, TaskState, TenantId,
};
use nexus_host::emit::EventSink;
use nexus_runtime::{TaskInput, TaskResult, Usage};
use nexus_store::{ListedTask, NewTaskEvent, StoreError, TaskFilter};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::packages::Loaded;
use crate::{Action, CallChain, ControlError, ControlPlane};
use run::{LiveGuard, Opening, Run};

/// Longest session (context) id accepted.
pub const MAX_CONTEXT_ID_LEN: usize = 256;
/// Longest message id (A2A `messageId`) kept, in bytes: ids are UUIDs or similar, and each is
/// stored with its message.
pub const MAX_MESSAGE_ID_LEN: usize = 256;

/// Most tasks an ambiguous id prefix is counted up to: the error says how many share it, and
/// past this many the exact number helps no one (it costs one index range read per request).
pub const MAX_PREFIX_MATCHES_COUNTED: u32 = 100;

/// One message to an agent.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub message: Vec<Part>,
    /// The caller's id for the message (A2A `messageId`), kept in the task's history; one is
    /// made up when absent.
    pub message_id: Option<String>,
    /// The session (A2A `contextId`); a fresh one when absent.
    pub context_id: Option<String>,
    /// Continue this task (it must be waiting in `input_required`) instead of starting one.
    pub task_id: Option<TaskId>,
    /// The chain of agent calls this task belongs to, and its trace; empty for a client's
    /// request (an incoming `traceparent` goes in `trace_id`).
    pub chain: CallChain,
}

/// A finished invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub task: Task,
    /// How the agent's run ended; absent when the task was canceled while it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    pub usage: Usage,
    /// The task's whole event log at the end, so callers can render it without reading it
    /// back.
    #[serde(skip)]
    pub log: Vec<TaskEvent>,
}

/// A task that has started running.
#[derive(Debug)]
pub struct Started {
    /// The task, `working`.
    pub task: Task,
    /// Its whole event log so far, oldest first.
    pub log: Vec<TaskEvent>,
    pub(crate) outcome: tokio::task::JoinHandle<Result<Invocation, ControlError>>,
}

impl Started {
    /// Waits for the run to end (or to ask for input).
    pub async fn finished(self) -> Result<Invocation, ControlError> {
        self.outcome
            .await
            .map_err(|e| ControlError::Internal(format!("the task runner failed: {e}")))?
    }
}

impl ControlPlane {
    /// Runs `request` as a durable task and waits for it to end (or to ask for input).
    pub async fn invoke(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        agent_name: &Name,
        request: InvokeRequest,
    ) -> Result<Invocation, ControlError> {
        let started = self.start(caller, tenant, agent_name, request).await?;
        started.finished().await
    }

    /// Starts `request` as a durable task on the agent's current revision (or continues the
    /// waiting task it names) and returns once the task is `working`. The agent runs in the
    /// background and the task ends even if the caller goes away; follow it with
    /// [`follow`](Self::follow) or wait with [`Started::finished`].
    pub async fn start(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        agent_name: &Name,
        request: InvokeRequest,
    ) -> Result<Started, ControlError> {
        let agent = self
            .agent_for(caller, tenant, Action::TaskSend, agent_name)
            .await?;
        self.start_authorized(caller, tenant, agent, request).await
    }

    /// [`start`](Self::start) for an agent the caller has already looked up.
    pub async fn start_agent(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        agent: Agent,
        request: InvokeRequest,
    ) -> Result<Started, ControlError> {
        self.authorize_agent(caller, tenant, Action::TaskSend, &agent)
            .await?;
        self.start_authorized(caller, tenant, agent, request).await
    }

    /// [`start_agent`](Self::start_agent) once the caller is authorized.
    async fn start_authorized(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        agent: Agent,
        request: InvokeRequest,
    ) -> Result<Started, ControlError> {
        check_request(&request)?;
        let user_message = Message {
            role: Role::User,
            parts: request.message,
            message_id: request.message_id,
        };
        let user_event = NewTaskEvent {
            kind: TaskEventKind::Message,
            payload: json(&user_message),
        };
        // Everything that can refuse the request is checked before the task changes, so a
        // refused request leaves no task behind (or the waiting task as it was).
        let (waiting, revision_number, earlier_events) = match request.task_id {
            Some(id) => {
                let task = self.store.get_task(tenant, id).await?;
                if task.agent_id != agent.id {
                    return Err(StoreError::not_found("task", id).into());
                }
                task.state
                    .transition(TaskState::Working)
                    .map_err(StoreError::IllegalTransition)?;
                let events = self.store.task_log(tenant, id).await?;
                let revision = task.agent_revision;
                (Some(task), revision, events)
            }
            None => (None, agent.current_revision, Vec::new()),
        };
        let revision = self.revision(tenant, agent.id, revision_number).await?;
        let Loaded { component, limits } = self.component(&revision.package_digest).await?;
        let history = history_of(&earlier_events);
        let context_id = match &waiting {
            Some(task) => task.context_id.clone(),
            None => request
                .context_id
                .clone()
                .unwrap_or_else(|| TaskId::new().to_string()),
        };
        let task_id = waiting.as_ref().map_or_else(TaskId::new, |task| task.id);
        let trace_id = request
            .chain
            .trace_id
            .clone()
            .unwrap_or_else(|| task_id.as_uuid().simple().to_string());
        let chain = CallChain {
            trace_id: Some(trace_id.clone()),
            ..request.chain.clone()
        };
        // What this task's own calls to other agents carry: it is their parent.
        let mut callers = request.chain.callers;
        callers.push(agent.id);
        let child_chain = CallChain {
            parent: Some(task_id),
            callers,
            trace_id: Some(trace_id.clone()),
        };
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut env = self
            .task_env(
                tenant,
                &agent,
                &revision,
                &context_id,
                EventSink::new(sender),
                child_chain,
            )
            .await?;
        env.limits = limits;

        // Only one message at a time may run a task here.
        let live = LiveGuard::begin(self.clone(), task_id)?;
        let input = TaskInput {
            task_id: task_id.to_string(),
            context_id: context_id.clone(),
            message: user_message.parts,
            history,
            metadata: vec![("traceparent".to_owned(), chain.traceparent(task_id))],
        };
        let span = tracing::info_span!(
            "task",
            task = %task_id,
            agent = %agent.name,
            trace_id = %trace_id,
            parent = ?chain.parent
        );
        let continued = waiting.is_some();
        let opening = match waiting {
            Some(task) => Opening::Continue {
                task,
                earlier_events,
                user_event,
            },
            None => Opening::Create {
                new: NewTask {
                    id: task_id,
                    agent_id: agent.id,
                    agent_revision: agent.current_revision,
                    context_id,
                    parent_task_id: chain.parent,
                    started_by: caller.principal.id(),
                    start_working: true,
                },
                user_event,
            },
        };
        // The whole task, from its first write to its outcome, runs in a tokio task of its
        // own: the caller may go away (a client disconnects, a gateway timeout) and a task that
        // was written still runs and ends.
        let (started_sender, started) = tokio::sync::oneshot::channel();
        let runner = self.clone();
        let outcome = tokio::spawn(
            async move {
                let run = Run {
                    tenant,
                    task_id,
                    component,
                    input,
                    env,
                    streamed: receiver,
                    live,
                };
                runner.run(opening, run, started_sender).await
            }
            .instrument(span),
        );
        match started.await {
            Ok(Ok((task, log))) => {
                if continued {
                    // The task's webhooks hear of the new message's run too, whichever API
                    // sent it. A failure here must not fail the message, which runs already.
                    if let Err(e) = self.arm_push(tenant, &task, &log, None).await {
                        tracing::warn!(task = %task.id, error = %e,
                            "push notifications of a continued task could not start");
                    }
                }
                Ok(Started { task, log, outcome })
            }
            Ok(Err(e)) => Err(e),
            // The runner ended without saying how the task started: it panicked.
            Err(_) => Err(match outcome.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => ControlError::Internal("the task runner did not start".into()),
                Err(e) => ControlError::Internal(format!("starting the task failed: {e}")),
            }),
        }
    }

    /// Cancels a task that has not ended; a running agent is stopped.
    pub async fn cancel(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        task_id: TaskId,
    ) -> Result<Task, ControlError> {
        self.authorize(caller, tenant, Action::TaskCancel).await?;
        // In its own tokio task, so a caller that goes away cannot leave the cancellation
        // recorded but the agent running.
        let this = self.clone();
        tokio::spawn(async move {
            let (task, _) = this
                .transition(
                    tenant,
                    task_id,
                    TaskState::Canceled,
                    Some("canceled by the caller".into()),
                    Vec::new(),
                )
                .await?;
            this.live.cancel(task_id);
            Ok(task)
        })
        .await
        .map_err(|e| ControlError::Internal(format!("canceling the task failed: {e}")))?
    }

    /// A task.
    pub async fn task(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: TaskId,
    ) -> Result<Task, ControlError> {
        self.authorize(caller, tenant, Action::TaskRead).await?;
        Ok(self.store.get_task(tenant, id).await?)
    }

    /// Tasks in creation order, filtered.
    pub async fn list_tasks(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, ControlError> {
        self.authorize(caller, tenant, Action::TaskList).await?;
        Ok(self.store.list_tasks(tenant, filter, page).await?)
    }

    /// Tasks newest first, filtered, each with its agent's name and the shortest prefix of its
    /// id that is unique in the tenant.
    pub async fn list_tasks_newest(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<ListedTask>, ControlError> {
        self.authorize(caller, tenant, Action::TaskList).await?;
        Ok(self.store.list_tasks_newest(tenant, filter, page).await?)
    }

    /// The id of the tenant's one task whose id starts with `prefix` (a whole id is taken as
    /// it is). None is `not_found`; several are `validation_failed`, saying how many.
    pub async fn resolve_task(
        &self,
        caller: &Caller,
        tenant: TenantId,
        prefix: &IdPrefix,
    ) -> Result<TaskId, ControlError> {
        self.authorize(caller, tenant, Action::TaskRead).await?;
        if let Some(id) = prefix.whole() {
            return Ok(TaskId::from_uuid(id));
        }
        let ids = self
            .store
            .task_ids_with_prefix(tenant, prefix, MAX_PREFIX_MATCHES_COUNTED + 1)
            .await?;
        match ids.as_slice() {
            [] => Err(StoreError::not_found("task", prefix).into()),
            [id] => Ok(*id),
            many => {
                let count = if many.len() > MAX_PREFIX_MATCHES_COUNTED as usize {
                    format!("more than {MAX_PREFIX_MATCHES_COUNTED}")
                } else {
                    many.len().to_string()
                };
                Err(ControlError::Invalid(format!(
                    "task id prefix `{prefix}` is ambiguous: {count} tasks start with it; \
                     give more of the id"
                )))
            }
        }
    }

    /// A task's events with `seq > after_seq`, oldest first, at most `limit`.
    pub async fn task_events(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: TaskId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, ControlError> {
        self.authorize(caller, tenant, Action::TaskRead).await?;
        Ok(self
            .store
            .list_task_events(tenant, id, after_seq, limit)
            .await?)
    }

    /// A task's whole event log, oldest first.
    pub async fn task_log(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: TaskId,
    ) -> Result<Vec<TaskEvent>, ControlError> {
        self.authorize(caller, tenant, Action::TaskRead).await?;
        Ok(self.store.task_log(tenant, id).await?)
    }
}

/// Refuses an empty message or an unusable session id.
pub(crate) fn check_request(request: &InvokeRequest) -> Result<(), ControlError> {
    if request.message.is_empty() {
        return Err(ControlError::Invalid("the message has no parts".into()));
    }
    if request
        .context_id
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CONTEXT_ID_LEN)
    {
        return Err(ControlError::Invalid(format!(
            "the session (context id) must be 1 to {MAX_CONTEXT_ID_LEN} bytes"
        )));
    }
    if request
        .message_id
        .as_ref()
        .is_some_and(|m| m.is_empty() || m.len() > MAX_MESSAGE_ID_LEN)
    {
        return Err(ControlError::Invalid(format!(
            "the message id must be 1 to {MAX_MESSAGE_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// The conversation so far, from a task's log: its messages, without streamed chunks.
pub(crate) fn history_of(events: &[TaskEvent]) -> Vec<Message> {
    events
        .iter()
        .filter(|e| e.kind == TaskEventKind::Message && e.payload.get("event").is_none())
        .filter_map(|e| Message::deserialize(&e.payload).ok())
        .collect()
}

pub(crate) fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
