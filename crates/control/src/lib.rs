//! The control plane: the one way in to tenant data. Every public operation takes the
//! authenticated [`Caller`] first and authorizes it (`authz`) before it reads or changes
//! anything; routes of every protocol (REST, A2A, MCP) and agent-to-agent calls go through
//! here, never to the store.
//!
//! One module per concern:
//! - `tenants`: tenants, resolved by name or id, visible only to their own callers;
//! - `packages`: upload (validate, compile, store), list, load by digest; `unpacking`: the
//!   node's memory budget for unpacking packages;
//! - `deployments`: agents and their revisions, rollback, deletion, agent cards; `grants`:
//!   what a deployment grants and configures (the manifest's requests, confirmed; carry-over);
//! - `tasks`: a message runs as a durable task (`run`), followed through its log (`follow`),
//!   with the capabilities its revision grants (`env`); cancel, get, list, events;
//! - `push`: A2A push-notification configs and their watchers;
//! - `calls`: agent-to-agent calls as child tasks;
//! - `secrets`: deployment secrets, sealed at rest; `state`: agent state, sealed the same way;
//! - `export`: all of a tenant's data, as one stream of records (GDPR);
//! - `service_accounts`: machine identities whose keys act as them;
//! - `keys`, `oidc` and `workloads`: authentication, by API key, by a token of the configured
//!   OIDC issuer, or by a client certificate's SPIFFE id naming a service account;
//! - `users`: accounts, memberships, password logins (sessions are keys naming their user);
//!   `teams`: groups of members that give each the team's role;
//! - `audit`: the tenant's audit chain, written with the real principal.

use std::collections::HashMap;
use std::sync::Arc;

use nexus_blob::BlobStore;
use nexus_core::{AgentId, AgentRevision, TenantId};

pub use nexus_core::Caller;
use nexus_host::capability;
use nexus_host::llm::LlmProvider;
use nexus_runtime::Runtime;
use nexus_store::Store;
use tokio::sync::Mutex;

mod audit;
mod auth_failures;
mod authz;
mod calls;
mod deployments;
mod error;
mod export;
mod grants;
mod keys;
mod live;
mod oidc;
mod packages;
mod passwords;
mod policies;
mod push;
mod secrets;
mod service_accounts;
mod state;
mod tasks;
mod teams;
mod tenants;
mod unpacking;
mod users;
mod workloads;

pub use audit::MAX_AUDIT_PAGE;
pub use auth_failures::AUTH_FAILURE_AUDIT_INTERVAL;
pub use authz::{Action, POLICY_CACHE_TTL};
pub use calls::{CallChain, MAX_CALL_DEPTH, trace_id_from_traceparent};
pub use deployments::{AgentCard, AgentDetail, DeployRequest};
pub use error::ControlError;
pub use export::{ExportRecord, ExportStream};
pub use grants::{check_grants, requested as requested_grants};
pub use keys::{CreatedKey, KEY_CACHE_TTL, NewKeyRequest};
pub use oidc::{
    DISCOVERY_PATH, ISSUER_TIMEOUT, MAX_ISSUER_BODY_BYTES, MIN_REFETCH_INTERVAL, OidcSettings,
};
pub use policies::{ExplainRequest, Explanation, MAX_POLICY_DESCRIPTION_LEN};
pub use push::{
    CheckedPushConfig, MAX_PUSH_CONFIG_ID_LEN, MAX_PUSH_CONFIGS_PER_TASK, MAX_PUSH_CREDENTIALS_LEN,
    MAX_PUSH_SCHEME_LEN, MAX_PUSH_TOKEN_LEN, MAX_PUSH_URL_LEN, NewPushConfig,
};
pub use secrets::{MAX_SECRET_NAME_LEN, MAX_SECRET_VALUE_BYTES, MAX_SECRETS_PER_AGENT};
pub use service_accounts::MAX_SERVICE_ACCOUNT_DESCRIPTION_LEN;
pub use state::{MAX_STATE_KEYS_LISTED, StateKey, StateListing};
pub use tasks::{
    Invocation, InvokeRequest, MAX_CONTEXT_ID_LEN, MAX_PREFIX_MATCHES_COUNTED, Started,
};
pub use tenants::TenantRef;
pub use unpacking::{
    MAX_CONCURRENT_UNPACKS, MAX_UNPACKS_WAITING, UNPACK_MEMORY_BYTES, UNPACK_MEMORY_WAIT,
};
pub use users::{
    LoginRequest, MAX_CONCURRENT_PASSWORD_CHECKS, NewMemberRequest, SESSION_TTL, Session, WhoAmI,
};
pub use workloads::{SPIFFE_SCHEME, WorkloadId};

/// Revisions kept in memory; past this the cache starts over (a few KiB each).
const MAX_CACHED_REVISIONS: usize = 10_000;

/// Capabilities a deployment can grant, by name.
pub const GRANTABLE: [&str; 4] = [
    capability::STATE,
    capability::LLM,
    capability::AGENTS,
    capability::BUS,
];

/// The control plane of one node.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    runtime: Arc<Runtime>,
    llm: Arc<dyn LlmProvider>,
    /// Wraps the tenants' data keys, which seal deployment secrets.
    kms: Arc<dyn nexus_secrets::Kms>,
    /// Loaded components by package digest: compiled once, instantiated per task.
    loaded: Mutex<HashMap<String, packages::Loaded>>,
    /// The memory every package unpacked on this node reserves from.
    unpack_memory: Arc<unpacking::UnpackMemory>,
    /// Tasks running on this node, for followers and cancellation.
    live: live::LiveTasks,
    /// Push-notification delivery and the watchers running here.
    push: push::PushState,
    /// Revisions read so far. A revision never changes once deployed (a new deploy is a new
    /// number), so this needs no invalidation; it saves a read on every invocation.
    revisions: std::sync::Mutex<HashMap<(TenantId, AgentId, u32), AgentRevision>>,
    /// Recently authenticated API keys.
    keys: keys::KeyCache,
    /// The OIDC issuer whose tokens are accepted, with its keys; `None`: API keys only.
    oidc: Option<Arc<oidc::Oidc>>,
    /// Each tenant's policy set (built-in roles and its own).
    policies: authz::PolicyCache,
    /// Manifest tags by package digest, for policies about agents.
    tags: std::sync::Mutex<HashMap<String, Arc<[String]>>>,
    /// Bounds the password hashing of logins and new accounts.
    password_checks: users::PasswordChecks,
    /// Failed authentications naming no tenant, audited in batches.
    auth_failures: auth_failures::AuthFailures,
    /// The SPIFFE trust domain whose workload certificates authenticate (`workloads`).
    trust_domain: Option<String>,
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
            unpack_memory: unpacking::UnpackMemory::new(unpacking::UNPACK_MEMORY_BYTES),
            live: live::LiveTasks::default(),
            push: push::PushState::new(nexus_push::Settings::default()),
            revisions: std::sync::Mutex::new(HashMap::new()),
            keys: keys::KeyCache::default(),
            oidc: None,
            policies: authz::PolicyCache::default(),
            tags: std::sync::Mutex::new(HashMap::new()),
            password_checks: users::PasswordChecks::default(),
            auth_failures: auth_failures::AuthFailures::default(),
            trust_domain: None,
        }
    }

    /// Checks that the database answers (readiness); touches no tenant's data.
    pub async fn ping(&self) -> Result<(), ControlError> {
        Ok(self.store.ping().await?)
    }

    /// Writes failed authentications that name no tenant at most once per `interval`
    /// (default [`AUTH_FAILURE_AUDIT_INTERVAL`]; zero writes each one, for tests).
    #[must_use]
    pub fn with_auth_failure_audit_interval(mut self, interval: std::time::Duration) -> Self {
        self.auth_failures = auth_failures::AuthFailures::new(interval);
        self
    }

    /// Drops everything this node remembers of a deleted tenant: its keys (so they stop
    /// authenticating at once), its policy set and its revisions.
    fn forget_tenant(&self, tenant: TenantId) {
        self.keys.forget_tenant(tenant);
        self.policies.forget(tenant);
        self.revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(owner, _, _), _| *owner != tenant);
    }

    /// The store, for the composition root (bootstrap, recovery) and tests; request handling
    /// never reaches it except through the operations here.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
