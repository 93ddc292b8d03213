//! The shared conformance suite on SQLite, plus durability across reopening the file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::sync::Arc;

use nexus_core::{Name, NewAuditEvent, NewTenant};
use nexus_store::{AuditStore, Store, TenantStore};
use nexus_store_sqlite::SqliteStore;

/// A fresh database file per test; the directory lives as long as the process (leaked on
/// purpose so the file outlives the store).
async fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}/nexus.db", dir.display());
    Arc::new(SqliteStore::open(&url, 4).await.unwrap())
}

nexus_store::conformance_tests!(fresh());

#[tokio::test]
async fn committed_rows_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nexus.db", dir.path().display());
    let store = SqliteStore::open(&url, 2).await.unwrap();
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
    drop(store);

    let reopened = SqliteStore::open(&url, 2).await.unwrap();
    assert_eq!(reopened.get_tenant(tenant.id).await.unwrap(), tenant);
    assert_eq!(
        reopened.list_audit(tenant.id, 0, 10).await.unwrap().len(),
        1,
        "the creation's audit event was committed with it"
    );
}

#[tokio::test]
async fn a_second_process_cannot_open_the_file_while_it_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nexus.db", dir.path().display());
    let store = SqliteStore::open(&url, 2).await.unwrap();
    let Err(error) = SqliteStore::open(&url, 2).await else {
        panic!("a second store opened a database that is in use");
    };
    assert!(matches!(error, nexus_store::StoreError::Unavailable(_)));
    assert!(error.to_string().contains("in use"), "{error}");
    drop(store);
    SqliteStore::open(&url, 2).await.unwrap();
}

#[tokio::test]
async fn unreachable_file_is_unavailable_not_a_panic() {
    let result = SqliteStore::open("sqlite:///nonexistent-dir/sub/nexus.db", 1).await;
    assert!(
        matches!(result, Err(nexus_store::StoreError::Unavailable(_))),
        "{result:?}"
    );
}
