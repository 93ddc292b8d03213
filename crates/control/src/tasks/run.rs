//! A task's run: its first write, the agent's execution, its streamed events and its outcome.

use std::sync::Arc;

use nexus_core::message::{Message, Role};
use nexus_core::{NewTask, Task, TaskEvent, TaskEventKind, TaskId, TaskState, TenantId};
use nexus_host::emit::AgentEvent;
use nexus_runtime::{AgentComponent, TaskEnv, TaskInput, TaskOutcome, TaskResult, Usage};
use nexus_store::{NewTaskEvent, QueuedCreate, StoreError, TaskEnd};

use super::{Invocation, json};
use crate::{ControlError, ControlPlane};

/// Tries at writing a task's outcome while the store is unavailable, and the first wait
/// between them (doubling): about 3 s in all, longer than a pool timeout or a failover blip.
const FINAL_WRITE_ATTEMPTS: u32 = 5;
const FINAL_WRITE_FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Marks a task as running on this node until dropped, so it can be followed and canceled.
pub(super) struct LiveGuard {
    control: Arc<ControlPlane>,
    task: TaskId,
    run: u64,
    pub(super) canceled: tokio::sync::watch::Receiver<bool>,
}

impl LiveGuard {
    /// Fails when the task already runs here: only one message at a time may continue it.
    pub(super) fn begin(control: Arc<ControlPlane>, task: TaskId) -> Result<Self, ControlError> {
        let (run, canceled) = control
            .live
            .begin(task)
            .ok_or(StoreError::IllegalTransition(
                nexus_core::task::IllegalTransition {
                    from: TaskState::Working,
                    to: TaskState::Working,
                },
            ))?;
        Ok(Self {
            control,
            task,
            run,
            canceled,
        })
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.control.live.end(self.task, self.run);
    }
}

impl ControlPlane {
    /// Writes a task's start, runs the agent and writes how it ended; tells `started` how the
    /// task stood once its start was written (or why it could not start).
    ///
    /// A new task's first slice of the run (up to the agent's first wait or yield, at most an
    /// epoch tick) goes before anything is written. A task that ends within it, which is most
    /// short tasks, is written once ([`TaskStore::create_ended_task`]): one wait for the
    /// database instead of two, one row written instead of written and updated. Nothing is
    /// lost by waiting: until that commit nobody has the task's id, and the caller hears of
    /// the task only once it is stored. A task that does not end within its first slice has
    /// its creation queued there, before the run goes on, so every longer task is recorded
    /// `working` while it runs (and failed at the next start if the node dies).
    ///
    /// [`TaskStore::create_ended_task`]: nexus_store::TaskStore::create_ended_task
    pub(super) async fn run(
        self: Arc<Self>,
        opening: Opening,
        run: Run,
        started: StartedSender,
    ) -> Result<Invocation, ControlError> {
        let Run {
            tenant,
            task_id,
            component,
            input,
            env,
            mut streamed,
            live,
        } = run;
        let mut canceled = live.canceled.clone();
        let execution = async {
            tokio::select! {
                outcome = self.runtime.run(&component, input, env) => Some(outcome),
                // Dropping the run stops the guest at its next yield point.
                Ok(_) = canceled.wait_for(|canceled| *canceled) => None,
            }
        };
        let mut execution = std::pin::pin!(execution);

        let (creation, canceled_at_once) = match opening {
            Opening::Continue {
                task,
                earlier_events,
                user_event,
            } => {
                // A follow-up message: the task keeps its revision and sees its earlier
                // messages.
                match self
                    .transition(tenant, task.id, TaskState::Working, None, vec![user_event])
                    .await
                {
                    Ok((task, appended)) => {
                        let mut log = earlier_events;
                        log.extend(appended);
                        let _ = started.send(Ok((task, log.clone())));
                        (Creation::Done(log), false)
                    }
                    Err(e) => {
                        let _ = started.send(Err(e.into()));
                        return Err(ControlError::Internal("the task did not continue".into()));
                    }
                }
            }
            Opening::Create { new, user_event } => {
                match poll_once(execution.as_mut()) {
                    // Ended within its first slice: created and ended in one write, with the
                    // events it streamed.
                    Some(Some(outcome)) => {
                        let mut events = Vec::new();
                        while let Ok(event) = streamed.try_recv() {
                            events.push(streamed_event(&event));
                        }
                        let (state, message, mut ending) = outcome_events(&outcome);
                        events.append(&mut ending);
                        let end = TaskEnd {
                            state,
                            message,
                            events,
                        };
                        let written = self
                            .write_with_retries(task_id, || {
                                self.store.create_ended_task(
                                    tenant,
                                    new.clone(),
                                    vec![user_event.clone()],
                                    end.clone(),
                                )
                            })
                            .await;
                        drop(live);
                        return match written {
                            Ok(((task, start_log), ended)) => {
                                let _ = started.send(Ok((task, start_log.clone())));
                                self.finish(
                                    tenant,
                                    task_id,
                                    outcome,
                                    Ok(ended),
                                    start_log,
                                    Vec::new(),
                                )
                                .await
                            }
                            Err(e) => {
                                let _ = started.send(Err(e.into()));
                                Err(ControlError::Internal("the task was not created".into()))
                            }
                        };
                    }
                    first_slice => {
                        match self
                            .store
                            .queue_create_task(tenant, new, vec![user_event])
                            .await
                        {
                            // Pending, or (not expected: only a stored task can be canceled)
                            // canceled within its first slice.
                            Ok(created) => {
                                (Creation::Queued(created, started), first_slice.is_some())
                            }
                            Err(e) => {
                                let _ = started.send(Err(e.into()));
                                return Err(ControlError::Internal(
                                    "the task was not created".into(),
                                ));
                            }
                        }
                    }
                }
            }
        };

        if canceled_at_once {
            creation.committed().await?;
            drop(live);
            return self
                .ended_elsewhere(tenant, task_id, None, Usage::default())
                .await;
        }
        // Streamed events go to the task's log as they come, beside the run in this
        // tokio task (the run yields while it waits and at every epoch tick). The sink
        // is dropped with the instance, which ends the log writer once every event is
        // in the log.
        let log_writer = async {
            let mut written = Vec::new();
            while let Some(event) = streamed.recv().await {
                match self
                    .append(tenant, task_id, vec![streamed_event(&event)])
                    .await
                {
                    Ok(appended) => written.extend(appended),
                    Err(e) => {
                        tracing::warn!(task = %task_id, error = %e, "dropping a task event");
                    }
                }
            }
            written
        };
        let committed = async {
            let committed = creation.committed().await;
            if committed.is_err() {
                // No task: stop the run (its own writes fail, finding none).
                self.live.cancel(task_id);
            }
            committed
        };
        let (outcome, written, start_log) = tokio::join!(execution, log_writer, committed);
        let start_log = match start_log {
            Ok(log) => log,
            Err(e) => {
                // No task: its own writes failed, finding none.
                drop(live);
                return Err(e);
            }
        };
        let Some(outcome) = outcome else {
            // Canceled: the cancellation is already recorded.
            drop(live);
            return self
                .ended_elsewhere(tenant, task_id, None, Usage::default())
                .await;
        };
        let (state, message, events) = outcome_events(&outcome);
        let result = self
            .write_outcome(tenant, task_id, state, message, events)
            .await;
        drop(live);
        self.finish(tenant, task_id, outcome, result, start_log, written)
            .await
    }

    /// Writes a task's outcome.
    async fn write_outcome(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        state: TaskState,
        message: Option<String>,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>), StoreError> {
        self.write_with_retries(task_id, || {
            self.transition(tenant, task_id, state, message.clone(), events.clone())
        })
        .await
    }

    /// Runs `write` of a task's outcome until it is not refused as `Unavailable`, a few times.
    /// The outcome must land, or the task would stay `working` until the next restart (or,
    /// when it was not yet created, the run would be lost): a store that is briefly
    /// unavailable gets a few tries.
    async fn write_with_retries<T, F, W>(
        &self,
        task_id: TaskId,
        mut write: W,
    ) -> Result<T, StoreError>
    where
        W: FnMut() -> F,
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut delay = FINAL_WRITE_FIRST_RETRY;
        let mut attempts = 1;
        loop {
            match write().await {
                Err(StoreError::Unavailable(e)) if attempts < FINAL_WRITE_ATTEMPTS => {
                    tracing::warn!(task = %task_id, error = %e, attempts, "retrying a task's outcome");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempts += 1;
                }
                other => break other,
            }
        }
    }

    /// The invocation of a run whose outcome write returned `result`.
    async fn finish(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        outcome: TaskOutcome,
        result: Result<(Task, Vec<TaskEvent>), StoreError>,
        mut log: Vec<TaskEvent>,
        written: Vec<TaskEvent>,
    ) -> Result<Invocation, ControlError> {
        // `log` is the task's log up to its start.
        match result {
            Ok((task, appended)) => {
                log.extend(written);
                log.extend(appended);
                Ok(Invocation {
                    task,
                    result: Some(outcome.result),
                    usage: outcome.usage,
                    log,
                })
            }
            // Canceled just as it ended: the cancellation stands.
            Err(StoreError::IllegalTransition(_)) => {
                self.ended_elsewhere(tenant, task_id, Some(outcome.result), outcome.usage)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The invocation of a task whose end was recorded by someone else (a cancellation).
    async fn ended_elsewhere(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        result: Option<TaskResult>,
        usage: Usage,
    ) -> Result<Invocation, ControlError> {
        let task = self.store.get_task(tenant, task_id).await?;
        let log = self.store.task_log(tenant, task_id).await?;
        Ok(Invocation {
            task,
            result,
            usage,
            log,
        })
    }

    /// Moves a task and tells its followers.
    pub(crate) async fn transition(
        &self,
        tenant: TenantId,
        id: TaskId,
        to: TaskState,
        message: Option<String>,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>), StoreError> {
        let (task, appended) = self
            .store
            .transition_task(tenant, id, to, message, events)
            .await?;
        self.live.publish(id, &appended);
        Ok((task, appended))
    }

    /// Appends to a task's log and tells its followers.
    pub(crate) async fn append(
        &self,
        tenant: TenantId,
        id: TaskId,
        events: Vec<NewTaskEvent>,
    ) -> Result<Vec<TaskEvent>, StoreError> {
        let appended = self.store.append_task_events(tenant, id, events).await?;
        self.live.publish(id, &appended);
        Ok(appended)
    }
}

/// How a run's task begins.
pub(super) enum Opening {
    /// A new task, to be created `working` with the user's message.
    Create {
        new: NewTask,
        user_event: NewTaskEvent,
    },
    /// A task waiting for input, continued with the user's message.
    Continue {
        task: Task,
        earlier_events: Vec<TaskEvent>,
        user_event: NewTaskEvent,
    },
}

/// What a run needs besides its opening.
pub(super) struct Run {
    pub(super) tenant: TenantId,
    pub(super) task_id: TaskId,
    pub(super) component: AgentComponent,
    pub(super) input: TaskInput,
    pub(super) env: TaskEnv,
    pub(super) streamed: tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
    pub(super) live: LiveGuard,
}

/// Where a run's task start stands: written (with the task's log so far), or a creation in
/// the store's queue whose commit the caller of [`ControlPlane::start_agent`] waits for.
enum Creation {
    Done(Vec<TaskEvent>),
    Queued(QueuedCreate, StartedSender),
}

pub(super) type StartedSender =
    tokio::sync::oneshot::Sender<Result<(Task, Vec<TaskEvent>), ControlError>>;

impl Creation {
    /// The task's log up to its start, once that is committed; the waiting caller is told.
    async fn committed(self) -> Result<Vec<TaskEvent>, ControlError> {
        match self {
            Self::Done(log) => Ok(log),
            Self::Queued(created, started) => match created.await {
                Ok((task, log)) => {
                    // A caller that went away does not need to know.
                    let _ = started.send(Ok((task, log.clone())));
                    Ok(log)
                }
                Err(e) => {
                    let reason = e.to_string();
                    let _ = started.send(Err(e.into()));
                    Err(ControlError::Internal(format!(
                        "the task was not created: {reason}"
                    )))
                }
            },
        }
    }
}

/// Polls `future` once, without a waker to call back: its output if it is ready at once. A
/// future left pending must be polled again with a real waker, which it then registers.
fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// A log event for something the agent streamed.
fn streamed_event(event: &AgentEvent) -> NewTaskEvent {
    let kind = match event {
        AgentEvent::Artifact { .. } => TaskEventKind::Artifact,
        AgentEvent::Log { .. } => TaskEventKind::Log,
        AgentEvent::Progress { .. } | AgentEvent::PartialText { .. } => TaskEventKind::Message,
    };
    NewTaskEvent {
        kind,
        payload: json(event),
    }
}

/// The state a run's outcome moves its task to, the status message, and the events that
/// record it: the reply and artifacts (or none for a failure), then the usage.
fn outcome_events(outcome: &TaskOutcome) -> (TaskState, Option<String>, Vec<NewTaskEvent>) {
    let (state, message, mut events) = match &outcome.result {
        TaskResult::Completed { reply } | TaskResult::InputRequired { reply } => {
            let state = if matches!(outcome.result, TaskResult::Completed { .. }) {
                TaskState::Completed
            } else {
                TaskState::InputRequired
            };
            let mut events = vec![NewTaskEvent {
                kind: TaskEventKind::Message,
                payload: json(&Message {
                    role: Role::Agent,
                    parts: reply.message.clone(),
                    message_id: None,
                }),
            }];
            events.extend(reply.artifacts.iter().map(|artifact| NewTaskEvent {
                kind: TaskEventKind::Artifact,
                payload: json(artifact),
            }));
            (state, None, events)
        }
        TaskResult::Rejected { reason } => (TaskState::Rejected, Some(reason.clone()), Vec::new()),
        TaskResult::Failed { error } => (
            TaskState::Failed,
            Some(format!("{}: {error}", error.code())),
            Vec::new(),
        ),
    };
    events.push(NewTaskEvent {
        kind: TaskEventKind::Usage,
        payload: json(&outcome.usage),
    });
    (state, message, events)
}
