//! The shared conformance suite on PostgreSQL.
//!
//! Needs a server: `NEXUS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/nexus_test`).
//! Every test gets its own schema, so parallel runs and test binaries never collide.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::sync::Arc;

use nexus_core::{Name, NewAuditEvent, NewTenant};
use nexus_store::{AuditStore, Store, TenantStore};
use nexus_store_postgres::PgStore;

fn url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/nexus_test".to_owned())
}

fn schema_name() -> String {
    format!("t_{}", uuid_like())
}

fn uuid_like() -> String {
    nexus_core::TaskId::new().to_string().replace('-', "")
}

async fn fresh() -> Arc<dyn Store> {
    // Schemas are left behind for inspection; `.ci/run` recreates the test database each run.
    Arc::new(
        PgStore::open(&url(), 4, Some(&schema_name()))
            .await
            .unwrap(),
    )
}

nexus_store::conformance_tests!(fresh());

#[tokio::test]
async fn committed_rows_survive_reconnecting() {
    let schema = schema_name();
    let store = PgStore::open(&url(), 2, Some(&schema)).await.unwrap();
    let tenant = store
        .create_tenant(
            NewTenant {
                name: Name::parse("durable").unwrap(),
                display_name: "Durable".into(),
            },
            NewAuditEvent {
                actor: "system".into(),
                action: "tenant.create".into(),
                target: "tenants/durable".into(),
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    store.close().await;

    let reopened = PgStore::open(&url(), 2, Some(&schema)).await.unwrap();
    assert_eq!(reopened.get_tenant(tenant.id).await.unwrap(), tenant);
    assert_eq!(
        reopened.list_audit(tenant.id, 0, 10).await.unwrap().len(),
        1,
        "the creation's audit event was committed with it"
    );
    reopened.close().await;
    PgStore::drop_schema(&url(), &schema).await.unwrap();
}

#[tokio::test]
async fn hostile_schema_names_are_refused() {
    for bad in ["", "Robert'); DROP TABLE x;--", "a\"b", &"x".repeat(64)] {
        assert!(PgStore::open(&url(), 1, Some(bad)).await.is_err(), "{bad}");
    }
}
