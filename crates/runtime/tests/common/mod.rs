//! Shared by the runtime's integration tests: guest components built from source, a store,
//! and task helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use nexus_core::message::Part;
use nexus_core::{Grants, Name, NewAgentRevision, NewTenant};
use nexus_runtime::{AgentComponent, Runtime, RuntimeConfig, TaskEnv, TaskInput, TaskOutcome};
use nexus_store::{StateScope, Store};
use nexus_store_sqlite::SqliteStore;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the example agents and the test guests for wasm32-wasip2 (once per test process;
/// cargo makes it a no-op when nothing changed) and returns the directory of the components.
fn components_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = repo_root().join("target/wasm");
        for workspace in ["examples", "tests/guests"] {
            let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
                .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
                .current_dir(repo_root().join(workspace))
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("run cargo to build the guest components");
            assert!(
                status.success(),
                "building {workspace} for wasm32-wasip2 failed"
            );
        }
        target.join("wasm32-wasip2/release")
    })
}

/// The bytes of a guest component (`echo`, `counter`, …, `hostile`).
pub fn guest(name: &str) -> Vec<u8> {
    std::fs::read(components_dir().join(format!("{name}.wasm")))
        .unwrap_or_else(|e| panic!("component {name}: {e}"))
}

pub fn runtime(config: RuntimeConfig) -> Runtime {
    Runtime::new(config).expect("runtime")
}

pub fn load(runtime: &Runtime, name: &str) -> AgentComponent {
    runtime.load(&guest(name)).expect("load component")
}

pub fn input(text: &str) -> TaskInput {
    input_in_session(text, "session-1")
}

pub fn input_in_session(text: &str, session: &str) -> TaskInput {
    TaskInput {
        task_id: nexus_core::TaskId::new().to_string(),
        context_id: session.to_owned(),
        message: vec![Part::text(text)],
        history: Vec::new(),
        metadata: Vec::new(),
    }
}

pub async fn run(runtime: &Runtime, agent: &AgentComponent, text: &str) -> TaskOutcome {
    runtime.run(agent, input(text), TaskEnv::deny_all()).await
}

/// A real SQLite store with a tenant and an agent to scope state to.
pub struct StateFixture {
    pub store: Arc<dyn Store>,
    pub tenant: nexus_core::TenantId,
    pub agent: nexus_core::AgentId,
    _dir: tempfile::TempDir,
}

impl StateFixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/nexus.db", dir.path().display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url, 2).await.expect("store"));
        let tenant = store
            .create_tenant(
                NewTenant {
                    name: Name::parse("t").expect("name"),
                    display_name: "T".into(),
                },
                nexus_core::NewAuditEvent {
                    actor: "system".into(),
                    action: "tenant.create".into(),
                    target: "tenants/t".into(),
                    details: serde_json::Value::Null,
                },
            )
            .await
            .expect("tenant")
            .id;
        let (agent, _) = store
            .deploy_revision(
                tenant,
                NewAgentRevision {
                    name: Name::parse("counter").expect("name"),
                    package: "local/counter@0.1.0".parse().expect("ref"),
                    package_digest: "sha256:test".into(),
                    config: Default::default(),
                    secret_names: Vec::new(),
                    grants: Grants::default(),
                    deployed_by: String::new(),
                },
            )
            .await
            .expect("agent");
        Self {
            store,
            tenant,
            agent: agent.id,
            _dir: dir,
        }
    }

    pub fn scope(&self, session: &str) -> StateScope {
        StateScope {
            tenant: self.tenant,
            agent: self.agent,
            session: session.to_owned(),
        }
    }
}

/// The text of a completed task's reply; panics with the outcome otherwise.
pub fn reply_text(outcome: &TaskOutcome) -> String {
    match &outcome.result {
        nexus_runtime::TaskResult::Completed { reply } => {
            nexus_core::message::text_of(&reply.message)
        }
        other => panic!("expected a completed task, got {other:?}"),
    }
}

/// The error code of a failed task; panics with the outcome otherwise.
pub fn error_code(outcome: &TaskOutcome) -> &'static str {
    match &outcome.result {
        nexus_runtime::TaskResult::Failed { error } => error.code(),
        other => panic!("expected a failed task, got {other:?}"),
    }
}
