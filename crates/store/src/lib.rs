//! Storage traits for NexusCore, one per aggregate, and the conformance suite that every
//! backend must pass.
//!
//! Each method is atomic: where an invariant spans rows (a task's state and its event log, an
//! agent and its revisions, the audit hash chain) the backend does the work in one transaction.
//! Every query about tenant-owned data takes the [`TenantId`]; a row of another tenant is
//! reported as not found. Lists page by cursor ([`PageRequest`] / [`Page`]).
//!
//! The backends are `nexus-store-sqlite` and `nexus-store-postgres`; only they know SQL.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nexus_core::identity::Role;
use nexus_core::task::IllegalTransition;
use nexus_core::{
    Agent, AgentId, AgentRevision, ApiKey, ApiKeyId, AuditEvent, IdPrefix, Membership, Name,
    NewAgentRevision, NewApiKey, NewAuditEvent, NewPackage, NewPolicy, NewTask, NewTenant, NewUser,
    Package, PackageRef, Page, PageRequest, Policy, ServiceAccount, Task, TaskEvent, TaskEventKind,
    TaskId, TaskState, Team, TeamId, Tenant, TenantId, User, UserId,
};

pub mod conformance;

/// What can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row in this tenant.
    #[error("{kind} `{key}` not found")]
    NotFound { kind: &'static str, key: String },
    /// A row with the same unique key exists (and, for immutable rows, differs).
    #[error("{kind} `{key}` already exists")]
    AlreadyExists { kind: &'static str, key: String },
    /// The task state machine forbids the requested change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The task has ended; its log takes no more events.
    #[error("task `{0}` has ended and accepts no more events")]
    TaskEnded(TaskId),
    /// Creating the row would exceed a limit on rows of its kind (`limit` per owner).
    #[error("too many {kind}: the limit is {limit}")]
    TooMany { kind: &'static str, limit: usize },
    /// A pagination cursor that this store did not hand out.
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
    /// The database cannot be reached or is shutting down.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row read back does not decode into a domain value (a bug or manual tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(String),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// A `NotFound` for `kind` identified by `key`.
    pub fn not_found(kind: &'static str, key: impl ToString) -> Self {
        Self::NotFound {
            kind,
            key: key.to_string(),
        }
    }

    /// An `AlreadyExists` for `kind` identified by `key`.
    pub fn already_exists(kind: &'static str, key: impl ToString) -> Self {
        Self::AlreadyExists {
            kind,
            key: key.to_string(),
        }
    }
}

/// An event to append to a task's log; the store assigns `seq` and the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskEvent {
    pub kind: TaskEventKind,
    pub payload: serde_json::Value,
}

/// How a task ends, for [`TaskStore::create_ended_task`]: the state it moves to, its status
/// message, and the events it ends with (before the store's `status` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub state: TaskState,
    pub message: Option<String>,
    pub events: Vec<NewTaskEvent>,
}

/// A write's result: the task as the write left it, and the events it appended.
pub type TaskWritten = (Task, Vec<TaskEvent>);

/// Which tasks a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub agent_id: Option<AgentId>,
    pub context_id: Option<String>,
    pub state: Option<TaskState>,
}

/// A task as people list it: with its agent's name and a short id to type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTask {
    pub task: Task,
    /// The name of the task's agent.
    pub agent: String,
    /// The shortest leading part of the task's id (with its hyphens, at least
    /// [`MIN_SHORT_ID_DIGITS`](nexus_core::id_prefix::MIN_SHORT_ID_DIGITS) hex digits) that
    /// no other task of the tenant's starts with when it is listed.
    pub short_id: String,
}

/// Tenants: created, found by id or name, listed.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant and appends `audit` to the new tenant's chain (its first event),
    /// atomically; `AlreadyExists` if the name is taken, and then nothing is stored.
    async fn create_tenant(&self, new: NewTenant, audit: NewAuditEvent) -> Result<Tenant>;
    /// Returns the tenant named `new.name`, creating it if absent (used for `default`).
    /// Not audited.
    async fn ensure_tenant(&self, new: NewTenant) -> Result<Tenant>;
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn get_tenant_by_name(&self, name: &Name) -> Result<Tenant>;
    /// Tenants in creation order.
    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>>;
    /// Deletes the tenant and everything it owns, its data key first (crypto-shredding), then
    /// agents, revisions, tasks and their events, state, secrets, packages' metadata, keys,
    /// policies, members and its audit chain, and appends `audit` to the chain of
    /// `audit_tenant` (the deleting caller's), all in one transaction: a failure leaves the
    /// tenant whole, never without its key. Adds `"data_key_destroyed": bool` to `audit.details`
    /// (an object) and returns it. `NotFound` if there is no such tenant, and then nothing is
    /// stored.
    async fn delete_tenant(
        &self,
        tenant: TenantId,
        audit_tenant: TenantId,
        audit: NewAuditEvent,
    ) -> Result<bool>;
}

/// Agents and their immutable revisions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates the agent `new.name` at revision 1, or adds the next revision to it and makes that
    /// revision current, in one transaction. Not audited: it serves local runs (`nexus run`),
    /// which have no control plane; deployments through the control plane use
    /// [`SecretStore::deploy_revision_with_secrets`].
    async fn deploy_revision(
        &self,
        tenant: TenantId,
        new: NewAgentRevision,
    ) -> Result<(Agent, AgentRevision)>;
    async fn get_agent(&self, tenant: TenantId, name: &Name) -> Result<Agent>;
    async fn get_agent_by_id(&self, tenant: TenantId, id: AgentId) -> Result<Agent>;
    /// Agents in creation order.
    async fn list_agents(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Agent>>;
    async fn get_revision(
        &self,
        tenant: TenantId,
        agent: AgentId,
        revision: u32,
    ) -> Result<AgentRevision>;
    /// All revisions of an agent, newest first.
    async fn list_revisions(&self, tenant: TenantId, agent: AgentId) -> Result<Vec<AgentRevision>>;
    /// Makes an existing revision current (rollback or roll forward) and appends `audit` to
    /// the tenant's chain, atomically. `NotFound` if the agent is not in `tenant` or has no such
    /// revision, and then nothing is stored.
    async fn set_current_revision(
        &self,
        tenant: TenantId,
        agent: AgentId,
        revision: u32,
        audit: NewAuditEvent,
    ) -> Result<Agent>;
    /// Deletes the agent with its revisions and tasks and appends `audit` to the tenant's
    /// chain, atomically. `NotFound` if the agent is not in `tenant`, and then nothing is
    /// stored.
    async fn delete_agent(
        &self,
        tenant: TenantId,
        agent: AgentId,
        audit: NewAuditEvent,
    ) -> Result<()>;
}

/// Package metadata (the bytes live in the blob store).
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Records a build of a package version and appends `audit` to the tenant's chain,
    /// atomically. A build is identified by its digest: putting a digest already stored returns
    /// the stored row (and is audited all the same: a repeated upload is still an upload). A
    /// new digest for a version becomes another build of it while the version is unpublished;
    /// once a build of it is [published](Self::publish_package) the version is immutable, a new
    /// digest for it is `AlreadyExists`, and then nothing is stored.
    async fn put_package(
        &self,
        tenant: TenantId,
        new: NewPackage,
        audit: NewAuditEvent,
    ) -> Result<Package>;
    /// The newest build of a package version.
    async fn get_package(&self, tenant: TenantId, reference: &PackageRef) -> Result<Package>;
    async fn get_package_by_digest(&self, tenant: TenantId, digest: &str) -> Result<Package>;
    /// Marks the build `digest` published, with `audit`, atomically: from then on its version
    /// takes no other build. Publishing a published build again changes nothing. The
    /// marketplace's publishing sets this; nothing else does.
    async fn publish_package(
        &self,
        tenant: TenantId,
        digest: &str,
        audit: NewAuditEvent,
    ) -> Result<Package>;
    /// Packages in creation order.
    async fn list_packages(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Package>>;
}

/// The outcome of a [`TaskStore::queue_create_task`]: the task and its first events as
/// committed.
pub type QueuedCreate =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(Task, Vec<TaskEvent>)>> + Send>>;

/// Events read per query when a whole task log is read.
pub const TASK_LOG_PAGE: u32 = 5_000;

/// Tasks, their state machine and their event logs.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Creates a task in `SUBMITTED` with a first `status` event, followed by `events`.
    async fn create_task(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>)>;
    /// [`create_task`](Self::create_task) in two steps: returns once the creation is queued,
    /// with its outcome to await (the task as committed). Writes to the task that the caller
    /// queues after this returns come after the creation, so it may start running the task
    /// before the commit; a store that commits at once (the default) returns when it did.
    async fn queue_create_task(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
    ) -> Result<QueuedCreate> {
        let created = self.create_task(tenant, new, events).await;
        Ok(Box::pin(std::future::ready(created)))
    }
    /// [`create_task`](Self::create_task) followed by a
    /// [`transition_task`](Self::transition_task) of the new task to `end`, as one atomic
    /// write: for a task that ran to its end before anything of it was stored. Returns both
    /// writes' results, the creation's first. An `end` the state machine refuses from the
    /// created state is an `IllegalTransition`, and nothing is stored.
    async fn create_ended_task(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
        end: TaskEnd,
    ) -> Result<(TaskWritten, TaskWritten)>;
    async fn get_task(&self, tenant: TenantId, id: TaskId) -> Result<Task>;
    /// Tasks in creation order, filtered.
    async fn list_tasks(
        &self,
        tenant: TenantId,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>>;
    /// Tasks newest first, filtered, each with its agent's name and its short id (see
    /// [`ListedTask`]).
    async fn list_tasks_newest(
        &self,
        tenant: TenantId,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<ListedTask>>;
    /// The ids of the tenant's tasks that start with `prefix`, in id order, at most `limit`.
    async fn task_ids_with_prefix(
        &self,
        tenant: TenantId,
        prefix: &IdPrefix,
        limit: u32,
    ) -> Result<Vec<TaskId>>;
    /// Moves the task to `to` if the state machine allows it, appending `events` followed by a
    /// `status` event, atomically. Returns the task and the appended events.
    async fn transition_task(
        &self,
        tenant: TenantId,
        id: TaskId,
        to: TaskState,
        message: Option<String>,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>)>;
    /// Appends events to a task that has not ended.
    async fn append_task_events(
        &self,
        tenant: TenantId,
        id: TaskId,
        events: Vec<NewTaskEvent>,
    ) -> Result<Vec<TaskEvent>>;
    /// Events with `seq > after_seq`, oldest first, at most `limit`.
    async fn list_task_events(
        &self,
        tenant: TenantId,
        id: TaskId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>>;
    /// A task's whole event log, oldest first, read page by page. Its size is bounded by the
    /// task's output and log budgets (every event costs part of one), per turn.
    async fn task_log(&self, tenant: TenantId, id: TaskId) -> Result<Vec<TaskEvent>> {
        let mut log: Vec<TaskEvent> = Vec::new();
        loop {
            let after = log.last().map_or(0, |event| event.seq);
            let page = self
                .list_task_events(tenant, id, after, TASK_LOG_PAGE)
                .await?;
            let full = page.len() == TASK_LOG_PAGE as usize;
            log.extend(page);
            if !full {
                return Ok(log);
            }
        }
    }
    /// Marks every task that was running (`SUBMITTED` or `WORKING`) as `FAILED` with `reason`,
    /// across all tenants. Run at start-up so no task stays `WORKING` after a crash; tasks
    /// waiting for the user (`INPUT_REQUIRED`, `AUTH_REQUIRED`) keep waiting. Returns how many
    /// changed.
    async fn fail_unfinished_tasks(&self, reason: &str) -> Result<u64>;
}

/// The append-only, hash-chained audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event at the end of the tenant's chain.
    async fn append_audit(&self, tenant: TenantId, event: NewAuditEvent) -> Result<AuditEvent>;
    /// Events with `seq > after_seq`, oldest first, at most `limit`.
    async fn list_audit(
        &self,
        tenant: TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>>;
}

/// API keys: stored by the hash of their secret, never the secret; each change recorded in the
/// tenant's audit chain in the same transaction.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores `new` in `tenant` and appends `audit` to the tenant's chain, atomically.
    /// `AlreadyExists` if the id or the secret hash is taken (in any tenant).
    async fn create_api_key(
        &self,
        tenant: TenantId,
        new: NewApiKey,
        audit: NewAuditEvent,
    ) -> Result<ApiKey>;
    /// The key whose secret hashes to `secret_hash`, in whichever tenant, revoked or not.
    async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>>;
    async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey>;
    /// A tenant's keys in creation order, revoked ones included.
    async fn list_api_keys(&self, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>>;
    /// Marks the key revoked now (keeping the first revocation time if it already was) and
    /// appends `audit`, atomically. `NotFound` if the key is not in `tenant`.
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        audit: NewAuditEvent,
    ) -> Result<ApiKey>;
    /// Whether any key exists in any tenant: a fresh data directory has none.
    async fn any_api_key(&self) -> Result<bool>;
    /// Stores a service account, appending `audit`, atomically. `AlreadyExists` if the tenant
    /// has one of that name.
    async fn create_service_account(
        &self,
        account: ServiceAccount,
        audit: NewAuditEvent,
    ) -> Result<ServiceAccount>;
    /// The tenant's service accounts by name.
    async fn list_service_accounts(&self, tenant: TenantId) -> Result<Vec<ServiceAccount>>;
    async fn get_service_account(&self, tenant: TenantId, name: &Name) -> Result<ServiceAccount>;
    /// Deletes a service account with its keys, appending `audit`, atomically. `NotFound` (and
    /// no event) if there is none.
    async fn delete_service_account(
        &self,
        tenant: TenantId,
        name: &Name,
        audit: NewAuditEvent,
    ) -> Result<ServiceAccount>;
}

/// User accounts (global, with an argon2id password hash the store never interprets) and their
/// memberships of tenants, each change audited in the tenant's chain in the same transaction.
/// A login session is an API key with `user_id` set ([`ApiKeyStore::create_api_key`]); it
/// carries the role the membership had at login, so every change of a membership revokes the
/// user's sessions in that tenant.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the account `new` as a member of `tenant` with `role`, appending `audit`,
    /// atomically. `AlreadyExists` if the name is taken, and then nothing is stored.
    async fn create_user(
        &self,
        tenant: TenantId,
        new: NewUser,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Membership>;
    /// Makes the existing account `name` a member of `tenant` with `role`, or changes its role
    /// (revoking its sessions there), appending `audit`, atomically. `NotFound` if there is no
    /// such account.
    async fn put_membership(
        &self,
        tenant: TenantId,
        name: &Name,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Membership>;
    /// Removes `name` from `tenant` and revokes its sessions there, appending `audit`,
    /// atomically. `NotFound` (and no event) if it is not a member.
    async fn remove_membership(
        &self,
        tenant: TenantId,
        name: &Name,
        audit: NewAuditEvent,
    ) -> Result<Membership>;
    /// The tenant's members by name.
    async fn list_members(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Membership>>;
    /// The account called `name` with its password hash, for logging in.
    async fn find_user(&self, name: &Name) -> Result<Option<(User, String)>>;
    /// Every membership of an account, oldest first.
    async fn user_memberships(&self, user: UserId) -> Result<Vec<Membership>>;
    /// Replaces an account's password hash and revokes all its sessions, in every tenant,
    /// appending `audit` to the chain of every tenant the account belongs to and of
    /// `audit_tenant` (the caller's), atomically. `NotFound` (and no event) if
    /// there is no such account.
    async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        audit_tenant: TenantId,
        audit: NewAuditEvent,
    ) -> Result<()>;
    /// Creates an empty team, appending `audit`, atomically. `AlreadyExists` if the tenant has
    /// a team of that name.
    async fn create_team(
        &self,
        tenant: TenantId,
        id: TeamId,
        name: &Name,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Team>;
    /// The tenant's teams by name, with their members.
    async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>>;
    /// Deletes a team and revokes its members' sessions in the tenant, appending `audit`,
    /// atomically. `NotFound` (and no event) if there is no such team.
    async fn delete_team(
        &self,
        tenant: TenantId,
        name: &Name,
        audit: NewAuditEvent,
    ) -> Result<Team>;
    /// Adds (`add = true`) or removes the member `user` to or from `team`, revoking the user's
    /// sessions in the tenant, appending `audit`, atomically. `NotFound` if there is no such
    /// team, or (adding) `user` is not a member of the tenant, or (removing) not of the team.
    async fn set_team_member(
        &self,
        tenant: TenantId,
        team: &Name,
        user: &Name,
        add: bool,
        audit: NewAuditEvent,
    ) -> Result<Team>;
    /// The teams of `user` in `tenant` (by name) with the role each gives it, by name.
    async fn user_teams(&self, tenant: TenantId, user: UserId) -> Result<Vec<(Name, Role)>>;
}

/// Tenant policies (Cedar text, parsed by the control plane), each change audited in the same
/// transaction.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Stores `new` and appends `audit`, atomically. `AlreadyExists` if the tenant has a policy
    /// of that name; `TooMany` past `max_per_tenant`.
    async fn create_policy(
        &self,
        tenant: TenantId,
        new: NewPolicy,
        max_per_tenant: usize,
        audit: NewAuditEvent,
    ) -> Result<Policy>;
    /// A tenant's policies in creation order (there are at most a few hundred).
    async fn list_policies(&self, tenant: TenantId) -> Result<Vec<Policy>>;
    /// Deletes the policy named `name` and appends `audit`, atomically; `NotFound` (and no
    /// event) if there is none.
    async fn delete_policy(
        &self,
        tenant: TenantId,
        name: &Name,
        audit: NewAuditEvent,
    ) -> Result<Policy>;
}

/// Whose agent state a call touches: one agent's state for one session (A2A `contextId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateScope {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub session: String,
}

/// Durable key-value state of agents, scoped to (agent, session). Size limits are the caller's
/// policy (`nexus-host`); the store keeps whatever it is given.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn state_get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` to `value`, creating or replacing it.
    async fn state_put(&self, scope: &StateScope, key: &str, value: &[u8]) -> Result<()>;
    /// Removes `key`; removing an absent key succeeds.
    async fn state_delete(&self, scope: &StateScope, key: &str) -> Result<()>;
    /// Atomically replaces the value if it equals `expected` (`None`: absent). `new = None`
    /// deletes. Returns whether the swap happened.
    async fn state_compare_and_swap(
        &self,
        scope: &StateScope,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool>;
    /// Keys that start with `prefix`, in byte order, at most `limit`.
    async fn state_list_keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Removes all of an agent's state, or one `session`'s, and appends `audit` to the
    /// tenant's chain in the same transaction. Returns how many values were removed.
    async fn state_clear(
        &self,
        tenant: TenantId,
        agent: AgentId,
        session: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<u64>;
    /// All of an agent's state across sessions, ordered by (session, key), starting after
    /// `after` (a (session, key) pair), at most `limit` entries: for exports.
    async fn state_entries(
        &self,
        tenant: TenantId,
        agent: AgentId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<StateEntry>>;
}

/// One value of an agent's state, as stored (sealed by the caller if it seals).
#[derive(Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub session: String,
    pub key: String,
    pub value: Vec<u8>,
}

impl Debug for StateEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateEntry")
            .field("session", &self.session)
            .field("key", &self.key)
            .field("value_bytes", &self.value.len())
            .finish()
    }
}

/// A secret value of an agent, already encrypted by the caller: the store never sees
/// plaintext. `Debug` shows the name and size only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub ciphertext: Vec<u8>,
}

impl Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("name", &self.name)
            .field("ciphertext_bytes", &self.ciphertext.len())
            .finish()
    }
}

/// Agents' secrets, sealed by the caller, keyed by (tenant, agent, name), and each tenant's
/// data key, wrapped by the caller's KMS. An agent's secrets are deleted with it, a tenant's
/// key with the tenant.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores `wrapped` as the tenant's data key unless it already has one. Returns the key the
    /// tenant has afterwards: the earlier one if another call stored it first.
    async fn put_tenant_key(&self, tenant: TenantId, wrapped: &[u8]) -> Result<Vec<u8>>;
    /// The tenant's wrapped data key, if it has one.
    async fn get_tenant_key(&self, tenant: TenantId) -> Result<Option<Vec<u8>>>;
    /// Destroys the tenant's data key (crypto-shredding: its secrets, webhook secrets and
    /// agent state no longer decrypt). Returns whether there was one.
    async fn delete_tenant_key(&self, tenant: TenantId) -> Result<bool>;
    /// Does what [`AgentStore::deploy_revision`] does and, in the same transaction, creates or
    /// replaces the agent's `secrets`, keeping its other secrets, and appends `audit` to the
    /// tenant's chain. The revision's `secret_names` become the names of all the agent's
    /// secrets afterwards, sorted; those in `new` are ignored.
    ///
    /// The store numbers the revision inside the transaction, so it adds
    /// `"revision": <number>` to `audit.details` before sealing the event (replacing a
    /// `revision` key already there). `details` should be a JSON object; any other value is
    /// wrapped as `{"details": <value>, "revision": <number>}`.
    async fn deploy_revision_with_secrets(
        &self,
        tenant: TenantId,
        new: NewAgentRevision,
        secrets: Vec<SealedSecret>,
        audit: NewAuditEvent,
    ) -> Result<(Agent, AgentRevision)>;
    /// Creates or replaces one secret of an agent.
    async fn put_secret(
        &self,
        tenant: TenantId,
        agent: AgentId,
        secret: SealedSecret,
    ) -> Result<()>;
    async fn get_secret(
        &self,
        tenant: TenantId,
        agent: AgentId,
        name: &str,
    ) -> Result<Option<Vec<u8>>>;
    /// All secrets of an agent, by name.
    async fn list_secrets(&self, tenant: TenantId, agent: AgentId) -> Result<Vec<SealedSecret>>;
    /// The names of an agent's secrets and when each was last set, by name; no ciphertexts.
    async fn list_secret_names(&self, tenant: TenantId, agent: AgentId) -> Result<Vec<SecretInfo>>;
    /// Removes a secret and appends `audit` to the tenant's chain in the same transaction;
    /// returns whether there was one (without one, nothing is written, not even the event).
    async fn delete_secret(
        &self,
        tenant: TenantId,
        agent: AgentId,
        name: &str,
        audit: NewAuditEvent,
    ) -> Result<bool>;
}

/// A secret of an agent as it may be shown: its name and when its value was last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

/// A webhook for a task's push notifications (A2A `TaskPushNotificationConfig`), with its
/// secrets sealed by the caller: the store never sees the token or credentials in the clear.
/// `Debug` shows their sizes only.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfig {
    pub task_id: TaskId,
    /// Chosen by the caller, unique per task.
    pub id: String,
    /// The A2A version that renders the notifications (`1.0` or `0.3`); opaque to the store.
    pub protocol_version: String,
    pub url: String,
    /// The sealed token the receiver checks.
    pub token: Option<Vec<u8>>,
    /// `Authorization` scheme, e.g. `Bearer`.
    pub auth_scheme: Option<String>,
    /// The sealed credentials sent after the scheme.
    pub auth_credentials: Option<Vec<u8>>,
    /// When the id was first put (replacing a config keeps it); set by the store.
    pub created_at: DateTime<Utc>,
}

impl Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("task_id", &self.task_id)
            .field("id", &self.id)
            .field("protocol_version", &self.protocol_version)
            .field("url", &self.url)
            .field("token_bytes", &self.token.as_ref().map(Vec::len))
            .field("auth_scheme", &self.auth_scheme)
            .field(
                "auth_credentials_bytes",
                &self.auth_credentials.as_ref().map(Vec::len),
            )
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Tasks' push-notification webhooks, keyed by (tenant, task, id). Deleted with their task
/// (and so with its agent and tenant).
#[async_trait]
pub trait PushConfigStore: Send + Sync {
    /// Creates `config`, or replaces the task's config with the same id (keeping its
    /// `created_at`). `NotFound` if the task is not in this tenant; `TooMany` if the task
    /// would have more than `max_per_task` configs. Returns the stored config.
    async fn put_push_config(
        &self,
        tenant: TenantId,
        config: PushConfig,
        max_per_task: usize,
    ) -> Result<PushConfig>;
    /// `NotFound` if the task has no config `id` (or is not in this tenant).
    async fn get_push_config(&self, tenant: TenantId, task: TaskId, id: &str)
    -> Result<PushConfig>;
    /// A task's configs, oldest first.
    async fn list_push_configs(&self, tenant: TenantId, task: TaskId) -> Result<Vec<PushConfig>>;
    /// Removes one config; returns whether there was one.
    async fn delete_push_config(&self, tenant: TenantId, task: TaskId, id: &str) -> Result<bool>;
}

/// A complete storage backend.
#[async_trait]
pub trait Store:
    TenantStore
    + AgentStore
    + PackageStore
    + TaskStore
    + AuditStore
    + ApiKeyStore
    + PolicyStore
    + UserStore
    + StateStore
    + SecretStore
    + PushConfigStore
    + Debug
    + Send
    + Sync
{
    /// Short backend name for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// Checks that the database answers; used by `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// Closes connections, waiting for in-flight queries.
    async fn close(&self);
}
