//! Push notifications through the control plane with real guest components and a webhook
//! receiver on loopback: what each version's configs receive, continuation, sealing, and
//! configs of tasks that have ended.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use nexus_control::{ControlPlane, DeployRequest, InvokeRequest, NewPushConfig};
use nexus_core::message::Part;
use nexus_core::{Caller, Name, TaskState, TenantId};
use nexus_protocol::a2a::Version;
use nexus_store::Store;
use serde_json::Value;

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

struct Platform {
    control: Arc<ControlPlane>,
    store: Arc<dyn Store>,
    tenant: TenantId,
    seen: Seen,
    hook: String,
    _dir: tempfile::TempDir,
}

/// A control plane that may deliver to loopback, `agents` deployed, and a webhook receiver.
async fn platform(agents: &[&str]) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let nexus_server::Platform {
        store,
        control,
        default_tenant: tenant,
    } = nexus_server::PlatformBuilder::new(dir.path())
        .push(nexus_push::Settings {
            allow_private_addresses: true,
            base_delay: Duration::from_millis(10),
            ..nexus_push::Settings::default()
        })
        .build()
        .await
        .unwrap();
    for name in agents {
        let manifest = format!(
            "[agent]\nname = \"{name}\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
             description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
             description = \"test\"\n"
        );
        let package = nexus_package::pack(&manifest, &common::guest(name), None).unwrap();
        let uploaded = control
            .upload_package(&Caller::system(tenant), tenant, package.bytes.into())
            .await
            .unwrap();
        control
            .deploy(
                &Caller::system(tenant),
                tenant,
                DeployRequest {
                    package_digest: uploaded.digest,
                    ..DeployRequest::default()
                },
            )
            .await
            .unwrap();
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(seen): State<Seen>, headers: HeaderMap, body: String| async move {
                    let body = serde_json::from_str(&body).unwrap();
                    seen.lock().unwrap().push((headers, body));
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Platform {
        control,
        store,
        tenant,
        seen,
        hook,
        _dir: dir,
    }
}

impl Platform {
    fn config(&self, version: Version) -> NewPushConfig {
        NewPushConfig {
            id: Some("hook-1".into()),
            url: self.hook.clone(),
            token: Some("tok-123".into()),
            auth_scheme: Some("Bearer".into()),
            auth_credentials: Some("cred-456".into()),
            version,
        }
    }

    /// Waits until the receiver has seen `n` notifications; returns them.
    async fn received(&self, n: usize) -> Vec<(HeaderMap, Value)> {
        for _ in 0..500 {
            {
                let seen = self.seen.lock().unwrap();
                if seen.len() >= n {
                    return seen.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "expected {n} notifications, got {:?}",
            self.seen.lock().unwrap()
        );
    }
}

fn message(text: &str) -> InvokeRequest {
    InvokeRequest {
        message_id: None,
        message: vec![Part::text(text)],
        ..InvokeRequest::default()
    }
}

/// A 1.0 config sent with the message gets the task, then every update as the SSE stream
/// renders it, ending with the completed status that carries the reply; with the token and
/// `Authorization` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_config_gets_the_task_and_every_update() {
    let p = platform(&["streamer"]).await;
    let config = p
        .control
        .check_push_config(p.config(Version::V1))
        .await
        .unwrap();
    let started = p
        .control
        .start(
            &Caller::system(p.tenant),
            p.tenant,
            &Name::parse("streamer").unwrap(),
            message("a b c"),
        )
        .await
        .unwrap();
    let stored = p
        .control
        .watch_push(
            &Caller::system(p.tenant),
            p.tenant,
            &started.task,
            &started.log,
            Some(config),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, "hook-1");
    let task_id = started.task.id.to_string();
    started.finished().await.unwrap();

    // Wait for the final update, then check the whole sequence.
    let mut seen = p.received(2).await;
    for _ in 0..100 {
        let last = &seen.last().unwrap().1;
        if last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = p.seen.lock().unwrap().clone();
    }
    let (headers, first) = &seen[0];
    assert_eq!(headers["x-a2a-notification-token"], "tok-123");
    assert_eq!(headers["authorization"], "Bearer cred-456");
    assert_eq!(first["task"]["id"], task_id);
    assert_eq!(first["task"]["status"]["state"], "TASK_STATE_WORKING");
    let partial: String = seen
        .iter()
        .filter_map(|(_, body)| {
            let status = &body["statusUpdate"]["status"];
            (status["state"] == "TASK_STATE_WORKING").then(|| {
                status["message"]["parts"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
        })
        .collect();
    // The progress note, then each word, as the SSE stream shows them.
    assert_eq!(partial, "thinkinga b c ");
    let last = &seen.last().unwrap().1["statusUpdate"];
    assert_eq!(last["taskId"], task_id);
    assert_eq!(last["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(last["status"]["message"]["parts"][0]["text"].is_string());
}

/// A 0.3 config created on a running task gets the 0.3 task once it ends (here: canceled);
/// its secrets are sealed in the store, and responses never need them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_config_gets_the_task_when_it_ends() {
    let p = platform(&["hostile"]).await;
    let started = p
        .control
        .start(
            &Caller::system(p.tenant),
            p.tenant,
            &Name::parse("hostile").unwrap(),
            message("loop"),
        )
        .await
        .unwrap();
    let task = started.task.id;
    let config = p
        .control
        .check_push_config(p.config(Version::V0_3))
        .await
        .unwrap();
    let stored = p
        .control
        .put_push_config(&Caller::system(p.tenant), p.tenant, task, config)
        .await
        .unwrap();
    let sealed = stored.token.clone().unwrap();
    assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
    let credentials = stored.auth_credentials.clone().unwrap();
    assert!(!credentials.windows(8).any(|w| w == b"cred-456"));
    assert_eq!(
        p.store.list_push_configs(p.tenant, task).await.unwrap(),
        [stored]
    );

    p.control
        .cancel(&Caller::system(p.tenant), p.tenant, task)
        .await
        .unwrap();
    started.finished().await.unwrap();
    let seen = p.received(1).await;
    let (headers, body) = &seen[0];
    assert_eq!(headers["x-a2a-notification-token"], "tok-123");
    assert_eq!(body["kind"], "task");
    assert_eq!(body["id"], task.to_string());
    assert_eq!(body["status"]["state"], "canceled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        p.seen.lock().unwrap().len(),
        1,
        "one notification per final state"
    );
}

/// A task waiting for input gets its configs' notifications again when the next message
/// continues it; a config of a task that has ended is stored, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continued_tasks_notify_again_and_ended_ones_never() {
    let p = platform(&["greeter"]).await;
    let greeter = Name::parse("greeter").unwrap();
    let config = p
        .control
        .check_push_config(p.config(Version::V1))
        .await
        .unwrap();
    let started = p
        .control
        .start(&Caller::system(p.tenant), p.tenant, &greeter, message("hi"))
        .await
        .unwrap();
    p.control
        .watch_push(
            &Caller::system(p.tenant),
            p.tenant,
            &started.task,
            &started.log,
            Some(config),
        )
        .await
        .unwrap();
    let waiting = started.finished().await.unwrap().task;
    assert_eq!(waiting.state, TaskState::InputRequired);
    let state = |body: &Value| {
        body["statusUpdate"]["status"]["state"]
            .as_str()
            .or(body["task"]["status"]["state"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let first_run = p.received(2).await;
    assert_eq!(state(&first_run[1].1), "TASK_STATE_INPUT_REQUIRED");

    // The next message, through the control plane as every API sends it: the stored config
    // is watched again, without being sent again.
    let continued = p
        .control
        .start(
            &Caller::system(p.tenant),
            p.tenant,
            &greeter,
            InvokeRequest {
                message_id: None,
                task_id: Some(waiting.id),
                ..message("Ada")
            },
        )
        .await
        .unwrap();
    let done = continued.finished().await.unwrap().task;
    assert_eq!(done.state, TaskState::Completed);
    let all = p.received(4).await;
    let states: Vec<String> = all.iter().map(|(_, body)| state(body)).collect();
    assert_eq!(
        states,
        [
            "TASK_STATE_WORKING",
            "TASK_STATE_INPUT_REQUIRED",
            "TASK_STATE_WORKING",
            "TASK_STATE_COMPLETED"
        ]
    );

    // The task has ended: a new config is kept and readable, and nothing is delivered.
    let late = p
        .control
        .check_push_config(NewPushConfig {
            id: Some("late".into()),
            ..p.config(Version::V1)
        })
        .await
        .unwrap();
    p.control
        .put_push_config(&Caller::system(p.tenant), p.tenant, done.id, late)
        .await
        .unwrap();
    assert_eq!(
        p.control
            .get_push_config(&Caller::system(p.tenant), p.tenant, done.id, "late")
            .await
            .unwrap()
            .id,
        "late"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.seen.lock().unwrap().len(), 4);
    assert!(
        p.control
            .delete_push_config(&Caller::system(p.tenant), p.tenant, done.id, "late")
            .await
            .unwrap()
    );
}

/// Bad configs are refused before anything is stored, naming the field and never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_are_refused() {
    let p = platform(&[]).await;
    let strict = ControlPlane::new(
        p.store.clone(),
        nexus_blob::BlobStore::local(&p._dir.path().join("blobs2")).unwrap(),
        Arc::new(common::runtime(nexus_runtime::RuntimeConfig::default())),
        Arc::new(nexus_host::llm::EchoProvider),
        Arc::new(
            nexus_secrets::LocalKeyFile::open_or_create(p._dir.path())
                .unwrap()
                .0,
        ),
    );
    let base = p.config(Version::V1);
    let cases = [
        (
            "scheme",
            NewPushConfig {
                url: "ftp://example.com/".into(),
                ..base.clone()
            },
        ),
        (
            "user name",
            NewPushConfig {
                url: "https://u:p@example.com/".into(),
                ..base.clone()
            },
        ),
        (
            "token",
            NewPushConfig {
                token: Some("a\nb-secret".into()),
                ..base.clone()
            },
        ),
        (
            "credentials",
            NewPushConfig {
                auth_credentials: Some("x".repeat(10_000)),
                ..base.clone()
            },
        ),
        (
            "scheme",
            NewPushConfig {
                auth_scheme: None,
                ..base.clone()
            },
        ),
        (
            "config id",
            NewPushConfig {
                id: Some("a\u{7}".into()),
                ..base.clone()
            },
        ),
    ];
    for (field, config) in cases {
        let err = p
            .control
            .check_push_config(config)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert!(!err.contains("secret"), "{field}: {err}");
    }
    // The default settings refuse loopback, checked when the config is created.
    let err = strict
        .check_push_config(base)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_private_addresses"), "{err}");
}
