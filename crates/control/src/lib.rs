//! The control plane: turns packages into running agents and messages into durable tasks.
//!
//! - [`ControlPlane::upload_package`] validates a `.ncpkg`, compiles its component (so a broken
//!   package is refused before anything is stored), keeps the archive in the blob store and its
//!   metadata in the store.
//! - [`ControlPlane::deploy`] creates an agent or a new revision of it, pinning the package by
//!   digest with its config and grants. Grants must stay within what the manifest declares.
//! - [`ControlPlane::invoke`] runs one message as a durable task: created `working` (its log
//!   records `submitted` first), every streamed event appended to its log, ended with the
//!   reply, artifacts and usage in one transaction. A task that ends within its first slice of
//!   the run is created and ended in one write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use nexus_blob::{BlobStore, Digest};
use nexus_core::message::{Message, Part, Role};
use nexus_core::{
    Agent, AgentId, AgentRevision, Grants, Name, NewAgentRevision, NewPackage, NewTask, Package,
    Task, TaskEvent, TaskEventKind, TaskId, TaskState, TenantId,
};
use nexus_host::capability;
use nexus_host::emit::{AgentEvent, EventSink};
use nexus_host::http::OutboundPolicy;
use nexus_host::llm::{LlmCapability, LlmProvider};
use nexus_host::state::StateCapability;
use nexus_runtime::{AgentComponent, Runtime, TaskEnv, TaskInput, TaskOutcome, TaskResult, Usage};
use nexus_store::{NewTaskEvent, QueuedCreate, StateScope, Store, StoreError, TaskEnd};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::Instrument;

mod calls;
mod live;
mod push;
mod secrets;

pub use calls::{CallChain, MAX_CALL_DEPTH, trace_id_from_traceparent};

pub use push::{
    CheckedPushConfig, MAX_PUSH_CONFIG_ID_LEN, MAX_PUSH_CONFIGS_PER_TASK, MAX_PUSH_CREDENTIALS_LEN,
    MAX_PUSH_SCHEME_LEN, MAX_PUSH_TOKEN_LEN, MAX_PUSH_URL_LEN, NewPushConfig,
};
pub use secrets::{MAX_SECRET_NAME_LEN, MAX_SECRET_VALUE_BYTES, MAX_SECRETS_PER_AGENT};

/// Tries at writing a task's outcome while the store is unavailable, and the first wait
/// between them (doubling): about 3 s in all, longer than a pool timeout or a failover blip.
const FINAL_WRITE_ATTEMPTS: u32 = 5;
const FINAL_WRITE_FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
/// Revisions kept in memory; past this the cache starts over (a few KiB each).
const MAX_CACHED_REVISIONS: usize = 10_000;
/// Events read from the log per query while a follower catches up.
const REPLAY_PAGE: u32 = 500;
/// Events queued for one follower; a slow reader (e.g. a slow network) holds back only itself.
const FOLLOW_BUFFER: usize = 64;
/// Longest session (context) id accepted.
pub const MAX_CONTEXT_ID_LEN: usize = 256;

/// Capabilities a deployment can grant, by name.
pub const GRANTABLE: [&str; 4] = [
    capability::STATE,
    capability::LLM,
    capability::AGENTS,
    capability::BUS,
];

/// What went wrong in a control-plane operation.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid package: {0}")]
    Package(#[from] nexus_package::PackageError),
    #[error("blob storage: {0}")]
    Blob(#[from] nexus_blob::BlobError),
    /// The component does not compile or link against the platform.
    #[error("invalid agent component: {0}")]
    Component(String),
    /// A grant the manifest does not declare, or an unknown capability.
    #[error("grant refused: {0}")]
    Grant(String),
    /// Bad input that is not about grants (e.g. an empty message).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A bug or a crash inside the control plane; details are in the server log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A deployment request: which package (by digest), under which name, with what.
#[derive(Clone, Default)]
pub struct DeployRequest {
    /// Agent name; defaults to the manifest's `agent.name`.
    pub name: Option<Name>,
    /// `sha256:…` of an uploaded package.
    pub package_digest: String,
    pub config: BTreeMap<String, String>,
    /// Secrets to create or replace, by name; the agent keeps its other secrets. Stored
    /// encrypted; `Debug` shows the names only.
    pub secrets: BTreeMap<String, String>,
    pub grants: Grants,
}

impl std::fmt::Debug for DeployRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployRequest")
            .field("name", &self.name)
            .field("package_digest", &self.package_digest)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .finish()
    }
}

/// One message to an agent.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub message: Vec<Part>,
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
    outcome: tokio::task::JoinHandle<Result<Invocation, ControlError>>,
}

impl Started {
    /// Waits for the run to end (or to ask for input).
    pub async fn finished(self) -> Result<Invocation, ControlError> {
        self.outcome
            .await
            .map_err(|e| ControlError::Internal(format!("the task runner failed: {e}")))?
    }
}

/// Marks a task as running on this node until dropped, so it can be followed and canceled.
struct LiveGuard {
    control: Arc<ControlPlane>,
    task: TaskId,
    run: u64,
    canceled: tokio::sync::watch::Receiver<bool>,
}

impl LiveGuard {
    /// Fails when the task already runs here: only one message at a time may continue it.
    fn begin(control: Arc<ControlPlane>, task: TaskId) -> Result<Self, ControlError> {
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

/// The control plane of one node.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    runtime: Arc<Runtime>,
    llm: Arc<dyn LlmProvider>,
    /// Wraps the tenants' data keys, which seal deployment secrets.
    kms: Arc<dyn nexus_secrets::Kms>,
    /// Loaded components by package digest: compiled once, instantiated per task.
    loaded: Mutex<HashMap<String, Loaded>>,
    /// Tasks running on this node, for followers and cancellation.
    live: live::LiveTasks,
    /// Push-notification delivery and the watchers running here.
    push: push::PushState,
    /// Revisions read so far. A revision never changes once deployed (a new deploy is a new
    /// number), so this needs no invalidation; it saves a read on every invocation.
    revisions: std::sync::Mutex<HashMap<(TenantId, AgentId, u32), AgentRevision>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane over `store` and `blobs`, running agents on `runtime`, with `llm` as the
    /// model provider and `kms` protecting deployment secrets.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        runtime: Arc<Runtime>,
        llm: Arc<dyn LlmProvider>,
        kms: Arc<dyn nexus_secrets::Kms>,
    ) -> Self {
        Self {
            store,
            blobs,
            runtime,
            llm,
            kms,
            loaded: Mutex::new(HashMap::new()),
            live: live::LiveTasks::default(),
            push: push::PushState::new(nexus_push::Settings::default()),
            revisions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Validates, compiles and stores a package. Uploading the same bytes again is a no-op.
    pub async fn upload_package(
        &self,
        tenant: TenantId,
        bytes: Bytes,
    ) -> Result<Package, ControlError> {
        let package = nexus_package::unpack(&bytes)?;
        // Compile before storing anything: a package whose component does not load is refused
        // whole.
        let component = self.load(package.wasm.clone()).await?;
        let digest = self.blobs.put(bytes).await?;
        let stored = self
            .store
            .put_package(
                tenant,
                NewPackage {
                    reference: package.manifest.package_ref(),
                    digest: digest.to_string(),
                    size_bytes: package.bytes.len() as u64,
                    manifest: package.manifest.to_json(),
                },
            )
            .await?;
        let limits = limit_overrides(&package.manifest);
        self.loaded
            .lock()
            .await
            .insert(stored.digest.clone(), Loaded { component, limits });
        Ok(stored)
    }

    /// Creates the agent, or a new revision of it, from an uploaded package. `secrets` are
    /// sealed and stored with the revision, in one transaction; the agent keeps earlier secrets
    /// not named again, and the revision lists all of them.
    pub async fn deploy(
        &self,
        tenant: TenantId,
        request: DeployRequest,
    ) -> Result<(Agent, AgentRevision), ControlError> {
        secrets::check(&request.secrets)?;
        let package = self
            .store
            .get_package_by_digest(tenant, &request.package_digest)
            .await?;
        let manifest: nexus_package::Manifest = serde_json::from_value(package.manifest.clone())
            .map_err(|e| StoreError::Corrupt(format!("stored manifest: {e}")))?;
        check_grants(&manifest, &request.grants)?;
        let name = match request.name {
            Some(name) => name,
            None => package.reference.name.clone(),
        };
        let sealed = if request.secrets.is_empty() {
            Vec::new()
        } else {
            secrets::check_total(self.store.as_ref(), tenant, &name, &request.secrets).await?;
            secrets::seal(
                self.store.as_ref(),
                self.kms.as_ref(),
                tenant,
                &name,
                &request.secrets,
            )
            .await?
        };
        let deployed = self
            .store
            .deploy_revision_with_secrets(
                tenant,
                NewAgentRevision {
                    name,
                    package: package.reference.clone(),
                    package_digest: package.digest.clone(),
                    config: request.config,
                    // The store lists every secret the agent has after this deployment.
                    secret_names: Vec::new(),
                    grants: request.grants,
                },
                sealed,
            )
            .await?;
        // Revisions never change, so the agent's first task need not read this one back.
        self.remember_revision(tenant, &deployed.1);
        Ok(deployed)
    }

    /// An agent's revision, from memory when it was read before.
    async fn revision(
        &self,
        tenant: TenantId,
        agent: AgentId,
        number: u32,
    ) -> Result<AgentRevision, ControlError> {
        let key = (tenant, agent, number);
        let cached = self
            .revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(revision) = cached {
            return Ok(revision);
        }
        let revision = self.store.get_revision(tenant, agent, number).await?;
        self.remember_revision(tenant, &revision);
        Ok(revision)
    }

    fn remember_revision(&self, tenant: TenantId, revision: &AgentRevision) {
        let mut revisions = self
            .revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if revisions.len() >= MAX_CACHED_REVISIONS {
            revisions.clear();
        }
        revisions.insert(
            (tenant, revision.agent_id, revision.revision),
            revision.clone(),
        );
    }

    /// Compiles (or loads cached machine code for) a component on a blocking thread: Cranelift
    /// takes tens of milliseconds of CPU that must not stall the async workers.
    async fn load(&self, wasm: Vec<u8>) -> Result<AgentComponent, ControlError> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.load(&wasm))
            .await
            .map_err(|e| ControlError::Component(format!("compilation was interrupted: {e}")))?
            .map_err(|e| ControlError::Component(e.to_string()))
    }

    /// The loaded component of a package and its manifest's limits, loading it from the blob
    /// store on first use.
    async fn component(&self, digest: &str) -> Result<Loaded, ControlError> {
        if let Some(loaded) = self.loaded.lock().await.get(digest) {
            return Ok(loaded.clone());
        }
        let digest_value: Digest = digest
            .parse()
            .map_err(|e: nexus_blob::InvalidDigest| StoreError::Corrupt(e.to_string()))?;
        let bytes = self.blobs.get(&digest_value).await?;
        let package = nexus_package::unpack(&bytes)?;
        let limits = limit_overrides(&package.manifest);
        let component = self.load(package.wasm).await?;
        let loaded = Loaded { component, limits };
        self.loaded
            .lock()
            .await
            .insert(digest.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// Runs `request` as a durable task and waits for it to end (or to ask for input).
    pub async fn invoke(
        self: &Arc<Self>,
        tenant: TenantId,
        agent_name: &Name,
        request: InvokeRequest,
    ) -> Result<Invocation, ControlError> {
        let started = self.start(tenant, agent_name, request).await?;
        started.finished().await
    }

    /// Starts `request` as a durable task on the agent's current revision (or continues the
    /// waiting task it names) and returns once the task is `working`. The agent runs in the
    /// background and the task ends even if the caller goes away; follow it with
    /// [`follow`](Self::follow) or wait with [`Started::finished`].
    pub async fn start(
        self: &Arc<Self>,
        tenant: TenantId,
        agent_name: &Name,
        request: InvokeRequest,
    ) -> Result<Started, ControlError> {
        let agent = self.store.get_agent(tenant, agent_name).await?;
        self.start_agent(tenant, agent, request).await
    }

    /// [`start`](Self::start) for an agent the caller has already looked up.
    pub async fn start_agent(
        self: &Arc<Self>,
        tenant: TenantId,
        agent: Agent,
        request: InvokeRequest,
    ) -> Result<Started, ControlError> {
        check_request(&request)?;
        let user_message = Message {
            role: Role::User,
            parts: request.message,
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
                    if let Err(e) = self.watch_push(tenant, &task, &log, None).await {
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
    async fn run(
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

    /// Cancels a task that has not ended; a running agent is stopped.
    pub async fn cancel(
        self: &Arc<Self>,
        tenant: TenantId,
        task_id: TaskId,
    ) -> Result<Task, ControlError> {
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

    /// Follows a task's event log from `after_seq`: what is logged already, then new events as
    /// they are committed, until the task stops running (ends or waits for input). The
    /// receiver yields an error and closes if the log cannot be read; dropping it stops the
    /// follower.
    pub fn follow(
        self: &Arc<Self>,
        tenant: TenantId,
        task_id: TaskId,
        after_seq: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<TaskEvent, ControlError>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(FOLLOW_BUFFER);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.pump(tenant, task_id, after_seq, &sender).await {
                let _ = sender.send(Err(e)).await;
            }
        });
        receiver
    }

    async fn pump(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        after_seq: u64,
        out: &tokio::sync::mpsc::Sender<Result<TaskEvent, ControlError>>,
    ) -> Result<(), ControlError> {
        use tokio::sync::broadcast::error::RecvError;
        // Subscribe before reading the log, so nothing falls between the two.
        let mut live = self.live.subscribe(task_id);
        let Some(mut last) = self.replay(tenant, task_id, after_seq, out).await? else {
            return Ok(());
        };
        if live.is_none() {
            // Not running here, or it started while we read the log: look once more.
            live = self.live.subscribe(task_id);
            match self.replay(tenant, task_id, last, out).await? {
                Some(seq) => last = seq,
                None => return Ok(()),
            }
        }
        let Some(mut live) = live else {
            return Ok(());
        };
        loop {
            match live.recv().await {
                Ok(event) if event.seq <= last => {}
                Ok(event) if event.seq == last + 1 => {
                    last = event.seq;
                    if out.send(Ok(event)).await.is_err() {
                        return Ok(());
                    }
                }
                // A gap (published out of order, or this follower lagged): the log has it.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    match self.replay(tenant, task_id, last, out).await? {
                        Some(seq) => last = seq,
                        None => return Ok(()),
                    }
                }
                Err(RecvError::Closed) => {
                    self.replay(tenant, task_id, last, out).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Sends the logged events after `after_seq`; returns the last sequence number sent, or
    /// `None` when the receiver is gone.
    async fn replay(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        mut after_seq: u64,
        out: &tokio::sync::mpsc::Sender<Result<TaskEvent, ControlError>>,
    ) -> Result<Option<u64>, ControlError> {
        loop {
            let events = self
                .store
                .list_task_events(tenant, task_id, after_seq, REPLAY_PAGE)
                .await?;
            let full_page = events.len() == REPLAY_PAGE as usize;
            for event in events {
                after_seq = event.seq;
                if out.send(Ok(event)).await.is_err() {
                    return Ok(None);
                }
            }
            if !full_page {
                return Ok(Some(after_seq));
            }
        }
    }

    /// Moves a task and tells its followers.
    async fn transition(
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
    async fn append(
        &self,
        tenant: TenantId,
        id: TaskId,
        events: Vec<NewTaskEvent>,
    ) -> Result<Vec<TaskEvent>, StoreError> {
        let appended = self.store.append_task_events(tenant, id, events).await?;
        self.live.publish(id, &appended);
        Ok(appended)
    }

    /// The capabilities of one task, from the revision's grants, with its secrets decrypted.
    async fn task_env(
        self: &Arc<Self>,
        tenant: TenantId,
        agent: &Agent,
        revision: &AgentRevision,
        context_id: &str,
        events: EventSink,
        calls: CallChain,
    ) -> Result<TaskEnv, ControlError> {
        let granted = |name: &str| revision.grants.capabilities.iter().any(|c| c == name);
        let secrets = secrets::open(
            self.store.as_ref(),
            self.kms.as_ref(),
            tenant,
            agent,
            revision,
        )
        .await?;
        Ok(TaskEnv {
            state: if granted(capability::STATE) {
                StateCapability::granted(
                    self.store.clone(),
                    StateScope {
                        tenant,
                        agent: agent.id,
                        session: context_id.to_owned(),
                    },
                )
            } else {
                StateCapability::denied()
            },
            config: nexus_host::config::ConfigCapability::new(revision.config.clone(), secrets),
            llm: if granted(capability::LLM) {
                LlmCapability::granted(self.llm.clone())
            } else {
                LlmCapability::denied()
            },
            agents: if granted(capability::AGENTS) {
                nexus_host::agents::AgentsCapability::granted(Arc::new(calls::ChildCaller {
                    control: self.clone(),
                    tenant,
                    context_id: context_id.to_owned(),
                    chain: calls,
                }))
            } else {
                nexus_host::agents::AgentsCapability::new(false)
            },
            bus: nexus_host::bus::BusCapability::new(granted(capability::BUS)),
            outbound: OutboundPolicy::new(&revision.grants.hosts)
                .map_err(|e| StoreError::Corrupt(format!("stored grant: {e}")))?,
            events,
            limits: nexus_runtime::LimitOverrides::default(),
        })
    }
}

/// How a run's task begins.
enum Opening {
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
struct Run {
    tenant: TenantId,
    task_id: TaskId,
    component: AgentComponent,
    input: TaskInput,
    env: TaskEnv,
    streamed: tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
    live: LiveGuard,
}

/// Where a run's task start stands: written (with the task's log so far), or a creation in
/// the store's queue whose commit the caller of [`ControlPlane::start_agent`] waits for.
enum Creation {
    Done(Vec<TaskEvent>),
    Queued(QueuedCreate, StartedSender),
}

type StartedSender = tokio::sync::oneshot::Sender<Result<(Task, Vec<TaskEvent>), ControlError>>;

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

/// Grants may only name known capabilities the manifest declares, and hosts it lists.
pub fn check_grants(
    manifest: &nexus_package::Manifest,
    grants: &Grants,
) -> Result<(), ControlError> {
    let declared = &manifest.capabilities;
    for capability in &grants.capabilities {
        let allowed = match capability.as_str() {
            capability::STATE => declared.state,
            capability::LLM => declared.llm,
            capability::AGENTS => declared.agents,
            capability::BUS => declared.bus,
            other => {
                return Err(ControlError::Grant(format!(
                    "unknown capability `{other}`; grantable: {}",
                    GRANTABLE.join(", ")
                )));
            }
        };
        if !allowed {
            return Err(ControlError::Grant(format!(
                "`{capability}` is not declared in the package manifest's [capabilities]"
            )));
        }
    }
    for host in &grants.hosts {
        OutboundPolicy::new(&[host]).map_err(|e| ControlError::Grant(e.to_string()))?;
        if !declared.hosts.iter().any(|h| h == host) {
            return Err(ControlError::Grant(format!(
                "host `{host}` is not declared in the package manifest's [capabilities].hosts"
            )));
        }
    }
    Ok(())
}

/// A package ready to run: its compiled component and the limits its manifest asks for.
#[derive(Clone)]
struct Loaded {
    component: AgentComponent,
    limits: nexus_runtime::LimitOverrides,
}

/// The runtime limits a manifest's `[limits]` ask for.
fn limit_overrides(manifest: &nexus_package::Manifest) -> nexus_runtime::LimitOverrides {
    let limits = &manifest.limits;
    nexus_runtime::LimitOverrides {
        memory_bytes: limits.memory_mib.map(|mib| {
            usize::try_from(mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024)
        }),
        deadline: limits
            .timeout_secs
            .map(|secs| std::time::Duration::from_secs(u64::from(secs))),
        fuel: limits.fuel,
    }
}

/// Refuses an empty message or an unusable session id.
fn check_request(request: &InvokeRequest) -> Result<(), ControlError> {
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
    Ok(())
}

/// The conversation so far, from a task's log: its messages, without streamed chunks.
fn history_of(events: &[TaskEvent]) -> Vec<Message> {
    events
        .iter()
        .filter(|e| e.kind == TaskEventKind::Message && e.payload.get("event").is_none())
        .filter_map(|e| Message::deserialize(&e.payload).ok())
        .collect()
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
