//! The control plane: turns packages into running agents and messages into durable tasks.
//!
//! - [`ControlPlane::upload_package`] validates a `.ncpkg`, compiles its component (so a broken
//!   package is refused before anything is stored), keeps the archive in the blob store and its
//!   metadata in the store.
//! - [`ControlPlane::deploy`] creates an agent or a new revision of it, pinning the package by
//!   digest with its config and grants. Grants must stay within what the manifest declares.
//! - [`ControlPlane::invoke`] runs one message as a durable task: created `submitted`, moved to
//!   `working`, every streamed event appended to its log, ended with the reply, artifacts and
//!   usage in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use nexus_blob::{BlobStore, Digest};
use nexus_core::message::{Message, Part, Role};
use nexus_core::{
    Agent, AgentRevision, Grants, Name, NewAgentRevision, NewPackage, NewTask, Package, Task,
    TaskEventKind, TaskId, TaskState, TenantId,
};
use nexus_host::capability;
use nexus_host::emit::{AgentEvent, EventSink};
use nexus_host::http::OutboundPolicy;
use nexus_host::llm::{LlmCapability, LlmProvider};
use nexus_host::state::StateCapability;
use nexus_runtime::{AgentComponent, Runtime, TaskEnv, TaskInput, TaskResult, Usage};
use nexus_store::{NewTaskEvent, StateScope, Store, StoreError};
use serde::Serialize;
use tokio::sync::Mutex;

/// Most events read back to rebuild a multi-turn task's history.
const MAX_HISTORY_EVENTS: u32 = 10_000;
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
}

/// A deployment request: which package (by digest), under which name, with what.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// Agent name; defaults to the manifest's `agent.name`.
    pub name: Option<Name>,
    /// `sha256:…` of an uploaded package.
    pub package_digest: String,
    pub config: BTreeMap<String, String>,
    pub grants: Grants,
}

/// One message to an agent.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub message: Vec<Part>,
    /// The session (A2A `contextId`); a fresh one when absent.
    pub context_id: Option<String>,
    /// Continue this task (it must be waiting in `input_required`) instead of starting one.
    pub task_id: Option<TaskId>,
}

/// A finished invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub task: Task,
    pub result: TaskResult,
    pub usage: Usage,
}

/// The control plane of one node.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    runtime: Arc<Runtime>,
    llm: Arc<dyn LlmProvider>,
    /// Loaded components by package digest: compiled once, instantiated per task.
    loaded: Mutex<HashMap<String, AgentComponent>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        runtime: Arc<Runtime>,
        llm: Arc<dyn LlmProvider>,
    ) -> Self {
        Self {
            store,
            blobs,
            runtime,
            llm,
            loaded: Mutex::new(HashMap::new()),
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
        self.loaded
            .lock()
            .await
            .insert(stored.digest.clone(), component);
        Ok(stored)
    }

    /// Creates the agent, or a new revision of it, from an uploaded package.
    pub async fn deploy(
        &self,
        tenant: TenantId,
        request: DeployRequest,
    ) -> Result<(Agent, AgentRevision), ControlError> {
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
        let deployed = self
            .store
            .deploy_revision(
                tenant,
                NewAgentRevision {
                    name,
                    package: package.reference.clone(),
                    package_digest: package.digest.clone(),
                    config: request.config,
                    secret_names: Vec::new(),
                    grants: request.grants,
                },
            )
            .await?;
        Ok(deployed)
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

    /// The loaded component of a package, loading it from the blob store on first use.
    async fn component(&self, digest: &str) -> Result<AgentComponent, ControlError> {
        if let Some(component) = self.loaded.lock().await.get(digest) {
            return Ok(component.clone());
        }
        let digest_value: Digest = digest
            .parse()
            .map_err(|e: nexus_blob::InvalidDigest| StoreError::Corrupt(e.to_string()))?;
        let bytes = self.blobs.get(&digest_value).await?;
        let package = nexus_package::unpack(&bytes)?;
        let component = self.load(package.wasm).await?;
        self.loaded
            .lock()
            .await
            .insert(digest.to_owned(), component.clone());
        Ok(component)
    }

    /// Runs `request` as a durable task on the agent's current revision.
    pub async fn invoke(
        &self,
        tenant: TenantId,
        agent_name: &Name,
        request: InvokeRequest,
    ) -> Result<Invocation, ControlError> {
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
        let agent = self.store.get_agent(tenant, agent_name).await?;
        let user_message = Message {
            role: Role::User,
            parts: request.message,
        };
        let user_event = NewTaskEvent {
            kind: TaskEventKind::Message,
            payload: json(&user_message),
        };
        let (task, revision_number, history) = match request.task_id {
            // A follow-up message: the task keeps its revision and sees its earlier messages.
            Some(id) => {
                let task = self.store.get_task(tenant, id).await?;
                if task.agent_id != agent.id {
                    return Err(StoreError::not_found("task", id).into());
                }
                let events = self
                    .store
                    .list_task_events(tenant, id, 0, MAX_HISTORY_EVENTS)
                    .await?;
                let history = events
                    .into_iter()
                    .filter(|e| {
                        e.kind == TaskEventKind::Message && e.payload.get("event").is_none()
                    })
                    .filter_map(|e| serde_json::from_value::<Message>(e.payload).ok())
                    .collect();
                let (task, _) = self
                    .store
                    .transition_task(tenant, id, TaskState::Working, None, vec![user_event])
                    .await?;
                let revision = task.agent_revision;
                (task, revision, history)
            }
            None => {
                let context_id = request
                    .context_id
                    .clone()
                    .unwrap_or_else(|| TaskId::new().to_string());
                let (task, _) = self
                    .store
                    .create_task(
                        tenant,
                        NewTask {
                            agent_id: agent.id,
                            agent_revision: agent.current_revision,
                            context_id,
                            parent_task_id: None,
                        },
                        vec![user_event],
                    )
                    .await?;
                let (task, _) = self
                    .store
                    .transition_task(tenant, task.id, TaskState::Working, None, Vec::new())
                    .await?;
                (task, agent.current_revision, Vec::new())
            }
        };
        let revision = self
            .store
            .get_revision(tenant, agent.id, revision_number)
            .await?;
        let component = self.component(&revision.package_digest).await?;
        let context_id = task.context_id.clone();

        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let env = self.task_env(
            tenant,
            &agent,
            &revision,
            &context_id,
            EventSink::new(sender),
        )?;
        // Streamed events go to the task's log as they come.
        let store = self.store.clone();
        let task_id = task.id;
        let log_writer = tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                let kind = match &event {
                    AgentEvent::Artifact { .. } => TaskEventKind::Artifact,
                    AgentEvent::Log { .. } => TaskEventKind::Log,
                    AgentEvent::Progress { .. } | AgentEvent::PartialText { .. } => {
                        TaskEventKind::Message
                    }
                };
                let appended = store
                    .append_task_events(
                        tenant,
                        task_id,
                        vec![NewTaskEvent {
                            kind,
                            payload: json(&event),
                        }],
                    )
                    .await;
                if let Err(e) = appended {
                    tracing::warn!(task = %task_id, error = %e, "dropping a task event");
                }
            }
        });
        let outcome = self
            .runtime
            .run(
                &component,
                TaskInput {
                    task_id: task.id.to_string(),
                    context_id,
                    message: user_message.parts,
                    history,
                    metadata: Vec::new(),
                },
                env,
            )
            .await;
        // The sink is dropped with the instance; wait until every event is in the log.
        if let Err(e) = log_writer.await {
            tracing::warn!(task = %task_id, error = %e, "task event writer failed");
        }

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
            TaskResult::Rejected { reason } => {
                (TaskState::Rejected, Some(reason.clone()), Vec::new())
            }
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
        let task = match self
            .store
            .transition_task(tenant, task.id, state, message, events)
            .await
        {
            Ok((task, _)) => task,
            // Canceled while it ran: the cancellation stands.
            Err(StoreError::IllegalTransition(_)) => self.store.get_task(tenant, task.id).await?,
            Err(e) => return Err(e.into()),
        };
        Ok(Invocation {
            task,
            result: outcome.result,
            usage: outcome.usage,
        })
    }

    /// The capabilities of one task, from the revision's grants.
    fn task_env(
        &self,
        tenant: TenantId,
        agent: &Agent,
        revision: &AgentRevision,
        context_id: &str,
        events: EventSink,
    ) -> Result<TaskEnv, ControlError> {
        let granted = |name: &str| revision.grants.capabilities.iter().any(|c| c == name);
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
            config: nexus_host::config::ConfigCapability::new(
                revision.config.clone(),
                BTreeMap::new(),
            ),
            llm: if granted(capability::LLM) {
                LlmCapability::granted(self.llm.clone())
            } else {
                LlmCapability::denied()
            },
            agents: nexus_host::agents::AgentsCapability::new(granted(capability::AGENTS)),
            bus: nexus_host::bus::BusCapability::new(granted(capability::BUS)),
            outbound: OutboundPolicy::new(&revision.grants.hosts)
                .map_err(|e| StoreError::Corrupt(format!("stored grant: {e}")))?,
            events,
        })
    }
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

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
