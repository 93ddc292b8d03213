//! Durable tasks through the control plane with real guest components: following a task's
//! events live, and cancelling a running agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use nexus_control::{ControlPlane, DeployRequest, InvokeRequest};
use nexus_core::message::Part;
use nexus_core::{Name, NewTenant, TaskEventKind, TaskState, TenantId};
use nexus_store::Store;
use nexus_store_sqlite::SqliteStore;

struct Platform {
    control: Arc<ControlPlane>,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

/// A control plane on a real SQLite store with `agents` deployed from the built guests.
async fn platform(agents: &[&str]) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nexus.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url, 2).await.unwrap());
    let tenant = store
        .ensure_tenant(NewTenant {
            name: Name::parse("default").unwrap(),
            display_name: "Default".into(),
        })
        .await
        .unwrap()
        .id;
    let (kms, _) = nexus_secrets::LocalKeyFile::open_or_create(dir.path()).unwrap();
    let control = Arc::new(ControlPlane::new(
        store,
        nexus_blob::BlobStore::local(&dir.path().join("blobs")).unwrap(),
        Arc::new(common::runtime(nexus_runtime::RuntimeConfig::default())),
        Arc::new(nexus_host::llm::EchoProvider),
        Arc::new(kms),
    ));
    for name in agents {
        let manifest = format!(
            "[agent]\nname = \"{name}\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
             description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
             description = \"test\"\n"
        );
        let package = nexus_package::pack(&manifest, &common::guest(name), None).unwrap();
        let uploaded = control
            .upload_package(tenant, package.bytes.into())
            .await
            .unwrap();
        control
            .deploy(
                tenant,
                DeployRequest {
                    package_digest: uploaded.digest,
                    ..DeployRequest::default()
                },
            )
            .await
            .unwrap();
    }
    Platform {
        control,
        tenant,
        _dir: dir,
    }
}

fn message(text: &str) -> InvokeRequest {
    InvokeRequest {
        message: vec![Part::text(text)],
        ..InvokeRequest::default()
    }
}

/// A follower that starts after the task began sees the whole log once, in order, and stops
/// when the task ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_every_event_once_in_order() {
    let p = platform(&["streamer"]).await;
    let streamer = Name::parse("streamer").unwrap();
    let started = p
        .control
        .start(p.tenant, &streamer, message("a b c"))
        .await
        .unwrap();
    assert_eq!(started.task.state, TaskState::Working);
    let task_id = started.task.id;
    // One follower from the start, one from the middle of what `start` returned.
    let mut from_start = p.control.follow(p.tenant, task_id, 0);
    let mut from_middle = p.control.follow(p.tenant, task_id, 2);
    let invocation = started.finished().await.unwrap();
    assert_eq!(invocation.task.state, TaskState::Completed);

    let mut seen = Vec::new();
    while let Some(event) = from_start.recv().await {
        seen.push(event.unwrap());
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let partial: String = seen
        .iter()
        .filter(|e| e.payload["event"] == "partial_text")
        .map(|e| e.payload["text"].as_str().unwrap())
        .collect();
    assert_eq!(partial, "a b c ");
    let last = seen.last().unwrap();
    assert_eq!(last.kind, TaskEventKind::Status);
    assert_eq!(last.payload["state"], "completed");

    let mut middle = Vec::new();
    while let Some(event) = from_middle.recv().await {
        middle.push(event.unwrap().seq);
    }
    assert_eq!(middle, seqs[2..].to_vec());
}

/// Cancelling a running task stops the agent: the run ends as canceled, not at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_agent() {
    let p = platform(&["hostile"]).await;
    let hostile = Name::parse("hostile").unwrap();
    let started = p
        .control
        .start(p.tenant, &hostile, message("loop"))
        .await
        .unwrap();
    let task_id = started.task.id;
    let canceled = p.control.cancel(p.tenant, task_id).await.unwrap();
    assert_eq!(canceled.state, TaskState::Canceled);

    let invocation = started.finished().await.unwrap();
    // Had the guest run on, it would have ended at its 60 s deadline with a result.
    assert!(invocation.result.is_none(), "{:?}", invocation.result);
    assert_eq!(invocation.task.state, TaskState::Canceled);
    assert!(matches!(
        p.control.cancel(p.tenant, task_id).await,
        Err(nexus_control::ControlError::Store(
            nexus_store::StoreError::IllegalTransition(_)
        ))
    ));
    // The node still runs other tasks of the agent.
    let ok = p
        .control
        .invoke(p.tenant, &hostile, message("hi"))
        .await
        .unwrap();
    assert_eq!(ok.task.state, TaskState::Completed);
}
