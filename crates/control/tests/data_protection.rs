//! Data protection on SQLite and PostgreSQL, with a real agent writing state: state and
//! secrets are sealed at rest (the raw database holds no plaintext), a deleted tenant leaves
//! nothing that decrypts, and an export carries everything of a tenant, state in the clear.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use futures::StreamExt;
use nexus_control::{
    ControlError, ControlPlane, DeployRequest, ExportRecord, InvokeRequest, TenantRef,
};
use nexus_core::message::Part;
use nexus_core::{Caller, Name, NewAuditEvent, NewTenant, TenantId};

/// What the agent stores (reversed by the guest, so it appears in no message) and what it is
/// given as a secret: neither may appear in the database's bytes.
const STATE_TEXT: &str = "ETATS-TXETNIALP-7f3a9c";
const STORED_STATE: &str = "c9a3f7-PLAINTEXT-STATE";
const SECRET_TEXT: &str = "sk-PLAINTEXT-SECRET-91c2";

enum Backend {
    Sqlite,
    Postgres { url: String, schema: String },
}

struct Platform {
    control: Arc<ControlPlane>,
    /// The platform's own tenant, where the admin acts.
    home: TenantId,
    /// The tenant whose data is protected, exported and deleted.
    acme: TenantId,
    backend: Backend,
    dir: tempfile::TempDir,
}

fn postgres_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/nexus_test".to_owned())
}

async fn platform(backend: Backend) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let builder = nexus_server::PlatformBuilder::new(dir.path());
    let builder = match &backend {
        Backend::Sqlite => builder,
        Backend::Postgres { url, schema } => builder.database_url(url).postgres_schema(schema),
    };
    let nexus_server::Platform {
        store,
        control,
        default_tenant: home,
    } = builder.build().await.unwrap();
    let acme = store
        .create_tenant(
            NewTenant {
                name: Name::parse("acme").unwrap(),
                display_name: "Acme".into(),
            },
            NewAuditEvent {
                actor: "system".into(),
                action: "tenant.create".into(),
                target: "tenants/acme".into(),
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap()
        .id;
    let p = Platform {
        control,
        home,
        acme,
        backend,
        dir,
    };
    p.deploy_vault().await;
    p
}

fn postgres() -> Backend {
    Backend::Postgres {
        url: postgres_url(),
        schema: format!(
            "t_{}",
            nexus_core::TaskId::new().to_string().replace('-', "")
        ),
    }
}

impl Platform {
    fn admin(&self) -> Caller {
        Caller::system(self.home)
    }

    /// The hostile guest as `vault` in acme, granted state, with one secret.
    async fn deploy_vault(&self) {
        let manifest = "[agent]\nname = \"vault\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
             description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
             description = \"test\"\n[capabilities]\nstate = true\n";
        let package = nexus_package::pack(manifest, &common::guest("hostile"), None).unwrap();
        let caller = Caller::system(self.acme);
        let uploaded = self
            .control
            .upload_package(&caller, self.acme, package.bytes.into())
            .await
            .unwrap();
        self.control
            .deploy(
                &caller,
                self.acme,
                DeployRequest {
                    package_digest: uploaded.digest,
                    grants: Some(nexus_core::Grants {
                        capabilities: vec!["state".into()],
                        hosts: vec![],
                    }),
                    secrets: [("api-key".to_owned(), SECRET_TEXT.to_owned())].into(),
                    ..DeployRequest::default()
                },
            )
            .await
            .unwrap();
    }

    /// Sends `text` to the vault and returns its reply.
    async fn ask_vault(&self, text: &str) -> String {
        let invocation = self
            .control
            .invoke(
                &Caller::system(self.acme),
                self.acme,
                &Name::parse("vault").unwrap(),
                InvokeRequest {
                    message_id: None,
                    message: vec![Part::text(text)],
                    context_id: Some("session-1".into()),
                    ..InvokeRequest::default()
                },
            )
            .await
            .unwrap();
        match &invocation.result {
            Some(nexus_runtime::TaskResult::Completed { reply }) => {
                nexus_core::message::text_of(&reply.message)
            }
            other => panic!("not completed: {other:?}"),
        }
    }

    /// The bytes the database holds for agent state and secrets: the whole SQLite file with
    /// its WAL, or every `agent_state` and `agent_secrets` row of PostgreSQL. Also says how
    /// many state and secret rows there were, so a test cannot pass by reading nothing.
    async fn raw_bytes(&self) -> (Vec<u8>, usize) {
        match &self.backend {
            Backend::Sqlite => {
                let mut bytes = Vec::new();
                for file in ["nexus.db", "nexus.db-wal"] {
                    if let Ok(more) = std::fs::read(self.dir.path().join(file)) {
                        bytes.extend(more);
                    }
                }
                let rows = usize::from(contains(&bytes, b"api-key"));
                (bytes, rows)
            }
            Backend::Postgres { url, schema } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let mut bytes = Vec::new();
                let mut rows = 0;
                for query in [
                    format!("SELECT value FROM {schema}.agent_state"),
                    format!("SELECT ciphertext FROM {schema}.agent_secrets"),
                    format!("SELECT wrapped FROM {schema}.tenant_keys"),
                ] {
                    let found: Vec<(Vec<u8>,)> = sqlx::query_as(sqlx::AssertSqlSafe(query))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                    rows += found.len();
                    for (value,) in found {
                        bytes.extend(value);
                    }
                }
                pool.close().await;
                (bytes, rows)
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_stored_text_is_the_reversed_message() {
    assert_eq!(STATE_TEXT.chars().rev().collect::<String>(), STORED_STATE);
}

async fn state_and_secrets_are_sealed_at_rest(backend: Backend) {
    let p = platform(backend).await;
    // The guest stores the text reversed, reads it back through the platform and replies
    // with it reversed again: a round trip through sealing and opening.
    assert_eq!(
        p.ask_vault(&format!("state {STATE_TEXT}")).await,
        format!("stored {STATE_TEXT}")
    );
    let (bytes, rows) = p.raw_bytes().await;
    assert!(rows > 0, "the check must read the rows it inspects");
    assert!(
        !contains(&bytes, STORED_STATE.as_bytes()),
        "state plaintext at rest"
    );
    assert!(
        !contains(&bytes, SECRET_TEXT.as_bytes()),
        "secret plaintext at rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_secrets_are_sealed_at_rest_on_sqlite() {
    state_and_secrets_are_sealed_at_rest(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_secrets_are_sealed_at_rest_on_postgres() {
    state_and_secrets_are_sealed_at_rest(postgres()).await;
}

/// A sealed value copied to another session's row does not open there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_moved_to_another_key_does_not_open() {
    let p = platform(Backend::Sqlite).await;
    p.ask_vault("state first").await;
    let store = p.control.store();
    let agent = store
        .get_agent(p.acme, &Name::parse("vault").unwrap())
        .await
        .unwrap();
    let scope = nexus_store::StateScope {
        tenant: p.acme,
        agent: agent.id,
        session: "session-1".into(),
    };
    let sealed = store.state_get(&scope, "k").await.unwrap().unwrap();
    let other_session = nexus_store::StateScope {
        session: "session-2".into(),
        ..scope.clone()
    };
    // The bytes are sealed for session-1: read at session-2 (here by the export), they fail.
    store.state_put(&other_session, "k", &sealed).await.unwrap();
    let (export_tenant, mut records) = p
        .control
        .export_tenant(&p.admin(), &TenantRef::Id(p.acme))
        .await
        .unwrap();
    assert_eq!(export_tenant.id, p.acme);
    let mut failed = None;
    while let Some(record) = records.next().await {
        if let Err(e) = record {
            failed = Some(e);
        }
    }
    assert!(
        matches!(&failed, Some(ControlError::Store(_))),
        "the moved value must not open: {failed:?}"
    );
}

async fn a_deleted_tenant_leaves_nothing_that_decrypts(backend: Backend) {
    let p = platform(backend).await;
    p.ask_vault(&format!("state {STATE_TEXT}")).await;
    let store = p.control.store().clone();
    let wrapped = store.get_tenant_key(p.acme).await.unwrap().unwrap();
    let (before, _) = p.raw_bytes().await;
    assert!(
        contains(&before, &wrapped),
        "the wrapped key is in the database before"
    );

    // Only a platform admin acting from another tenant deletes it.
    let own = p
        .control
        .delete_tenant(&Caller::system(p.acme), &TenantRef::Id(p.acme))
        .await;
    assert!(matches!(own, Err(ControlError::Conflict(_))), "{own:?}");
    let deleted = p
        .control
        .delete_tenant(&p.admin(), &TenantRef::Name(Name::parse("acme").unwrap()))
        .await
        .unwrap();
    assert_eq!(deleted.id, p.acme);

    assert_eq!(store.get_tenant_key(p.acme).await.unwrap(), None);
    let (after, _) = p.raw_bytes().await;
    assert!(
        !contains(&after, &wrapped),
        "a copy of the wrapped data key is left in the database"
    );
    // Nothing of the tenant is reachable, and its deletion is in the admin's chain.
    let gone = p.control.tenant(&p.admin(), &TenantRef::Id(p.acme)).await;
    assert!(
        matches!(&gone, Err(e) if e.code() == nexus_core::ErrorCode::NotFound),
        "{gone:?}"
    );
    let chain = p
        .control
        .list_audit(&p.admin(), p.home, 0, 100)
        .await
        .unwrap();
    let last = chain.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.target.as_str()),
        ("tenant.delete", "tenants/acme")
    );
    assert_eq!(last.details["data_key_destroyed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_leaves_nothing_that_decrypts_on_sqlite() {
    a_deleted_tenant_leaves_nothing_that_decrypts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_leaves_nothing_that_decrypts_on_postgres() {
    a_deleted_tenant_leaves_nothing_that_decrypts(postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_carries_everything_of_the_tenant() {
    let p = platform(Backend::Sqlite).await;
    p.ask_vault(&format!("state {STATE_TEXT}")).await;
    // An admin of the tenant who is not an owner may not take it all out.
    let admin_only = Caller::for_user(p.acme, "alice".into(), nexus_core::identity::Role::Admin);
    let refused = p
        .control
        .export_tenant(&admin_only, &TenantRef::Id(p.acme))
        .await;
    assert!(
        matches!(refused, Err(ControlError::Denied(_))),
        "{:?}",
        refused.err()
    );

    // People and machines of the tenant are part of its data too.
    let owner = Caller::system(p.acme);
    p.control
        .add_member(
            &owner,
            p.acme,
            nexus_control::NewMemberRequest {
                name: Name::parse("alice").unwrap(),
                role: nexus_core::identity::Role::Viewer,
                password: Some("correct horse battery staple".into()),
                display_name: None,
            },
        )
        .await
        .unwrap();
    p.control
        .create_team(
            &owner,
            p.acme,
            Name::parse("sre").unwrap(),
            nexus_core::identity::Role::Viewer,
        )
        .await
        .unwrap();
    p.control
        .create_service_account(
            &owner,
            p.acme,
            Name::parse("ci").unwrap(),
            nexus_core::identity::Role::Viewer,
            String::new(),
        )
        .await
        .unwrap();
    let (_, records) = p
        .control
        .export_tenant(&owner, &TenantRef::Id(p.acme))
        .await
        .unwrap();
    let records: Vec<ExportRecord> = records.map(Result::unwrap).collect().await;
    let kinds: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::to_value(r).unwrap()["record"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("tenant"));
    for kind in [
        "package",
        "agent",
        "revision",
        "secret",
        "state",
        "task",
        "task_event",
        "member",
        "team",
        "service_account",
        "audit_event",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let state = records
        .iter()
        .find_map(|r| match r {
            ExportRecord::State {
                key,
                value_base64,
                session,
                ..
            } => Some((session.clone(), key.clone(), value_base64.clone())),
            _ => None,
        })
        .unwrap();
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD
        .decode(&state.2)
        .unwrap();
    assert_eq!((state.0.as_str(), state.1.as_str()), ("session-1", "k"));
    assert_eq!(
        value,
        STORED_STATE.as_bytes(),
        "state is exported in the clear"
    );
    let text = serde_json::to_string(
        &records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!text.contains(SECRET_TEXT), "secret values never leave");
    assert!(!text.contains("argon2"), "password hashes never leave");
    // The export itself is audited.
    let chain = p
        .control
        .list_audit(&Caller::system(p.acme), p.acme, 0, 100)
        .await
        .unwrap();
    assert!(chain.iter().any(|e| e.action == "tenant.export"));
}

/// State stored before values were sealed still reads (as stored), and the next write seals it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_written_before_sealing_still_reads() {
    let p = platform(Backend::Sqlite).await;
    let store = p.control.store();
    let agent = store
        .get_agent(p.acme, &Name::parse("vault").unwrap())
        .await
        .unwrap();
    let scope = nexus_store::StateScope {
        tenant: p.acme,
        agent: agent.id,
        session: "old".into(),
    };
    store
        .state_put(&scope, "k", b"written in the clear")
        .await
        .unwrap();
    let (_, records) = p
        .control
        .export_tenant(&Caller::system(p.acme), &TenantRef::Id(p.acme))
        .await
        .unwrap();
    let records: Vec<ExportRecord> = records.map(Result::unwrap).collect().await;
    use base64::Engine;
    let value = records
        .iter()
        .find_map(|r| match r {
            ExportRecord::State {
                session,
                value_base64,
                ..
            } if session == "old" => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(value_base64)
                    .unwrap(),
            ),
            _ => None,
        })
        .unwrap();
    assert_eq!(value, b"written in the clear");
}
