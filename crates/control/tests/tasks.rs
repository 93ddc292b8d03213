//! Durable tasks through the control plane with real guest components: following a task's
//! events live, and cancelling a running agent; and the audit of the changes that set them up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use nexus_control::{ControlPlane, DeployRequest, InvokeRequest};
use nexus_core::message::Part;
use nexus_core::{Caller, Name, NewTenant, TaskEventKind, TaskState, TenantId};

struct Platform {
    control: Arc<ControlPlane>,
    store: Arc<dyn nexus_store::Store>,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

/// A control plane on a real SQLite store with `agents` deployed from the built guests.
async fn platform(agents: &[&str]) -> Platform {
    let p = empty_platform().await;
    for name in agents {
        p.deploy(name, name, &[]).await;
    }
    p
}

async fn empty_platform() -> Platform {
    empty_platform_on(nexus_runtime::RuntimeConfig::default()).await
}

/// A platform from the composition root on a fresh SQLite file, its `default` tenant empty.
async fn empty_platform_on(runtime: nexus_runtime::RuntimeConfig) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let platform = nexus_server::PlatformBuilder::new(dir.path())
        .runtime(runtime)
        .build()
        .await
        .unwrap();
    Platform {
        control: platform.control,
        store: platform.store,
        tenant: platform.default_tenant,
        _dir: dir,
    }
}

impl Platform {
    /// Deploys the guest component `guest` as agent `name` with `config`; `delegate` declares
    /// and is granted `agents`.
    async fn deploy(&self, guest: &str, name: &str, config: &[(&str, &str)]) {
        self.deploy_with(guest, name, config, "").await;
    }

    /// [`deploy`](Self::deploy) with extra manifest TOML (e.g. a `[limits]` table).
    async fn deploy_with(&self, guest: &str, name: &str, config: &[(&str, &str)], extra: &str) {
        let calls = guest == "delegate";
        let manifest = format!(
            "[agent]\nname = \"{name}\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
             description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
             description = \"test\"\n[capabilities]\nagents = {calls}\n{extra}"
        );
        let package = nexus_package::pack(&manifest, &common::guest(guest), None).unwrap();
        let uploaded = self
            .control
            .upload_package(
                &Caller::system(self.tenant),
                self.tenant,
                package.bytes.into(),
            )
            .await
            .unwrap();
        let mut grants = nexus_core::Grants::default();
        if calls {
            grants.capabilities.push("agents".into());
        }
        self.control
            .deploy(
                &Caller::system(self.tenant),
                self.tenant,
                DeployRequest {
                    package_digest: uploaded.digest,
                    config: config
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    grants: Some(grants),
                    ..DeployRequest::default()
                },
            )
            .await
            .unwrap();
    }

    async fn invoke(&self, agent: &str, text: &str) -> nexus_control::Invocation {
        self.control
            .invoke(
                &Caller::system(self.tenant),
                self.tenant,
                &Name::parse(agent).unwrap(),
                message(text),
            )
            .await
            .unwrap()
    }
}

fn reply_text(invocation: &nexus_control::Invocation) -> String {
    match &invocation.result {
        Some(nexus_runtime::TaskResult::Completed { reply }) => {
            nexus_core::message::text_of(&reply.message)
        }
        other => panic!(
            "not completed: {other:?} ({:?})",
            invocation.task.status_message
        ),
    }
}

fn message(text: &str) -> InvokeRequest {
    InvokeRequest {
        message_id: None,
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
        .start(
            &Caller::system(p.tenant),
            p.tenant,
            &streamer,
            message("a b c"),
        )
        .await
        .unwrap();
    assert_eq!(started.task.state, TaskState::Working);
    let task_id = started.task.id;
    // One follower from the start, one from the middle of what `start` returned.
    let mut from_start = p
        .control
        .follow(&Caller::system(p.tenant), p.tenant, task_id, 0);
    let mut from_middle = p
        .control
        .follow(&Caller::system(p.tenant), p.tenant, task_id, 2);
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

/// A task that ends within its first slice of the run is written once, creation and outcome
/// together: by the time `start` reports it started, its outcome is stored too. What `start`
/// returns is still the task as it started, for streams to begin with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_ends_at_once_is_written_with_its_outcome() {
    // Slices of a minute: however slow this machine, the echo ends within its first slice.
    let p = empty_platform_on(nexus_runtime::RuntimeConfig {
        limits: nexus_runtime::Limits {
            slice_ticks: 30_000,
            ..nexus_runtime::Limits::default()
        },
        ..nexus_runtime::RuntimeConfig::default()
    })
    .await;
    p.deploy("echo", "echo", &[]).await;
    let echo = Name::parse("echo").unwrap();
    let started = p
        .control
        .start(&Caller::system(p.tenant), p.tenant, &echo, message("hi"))
        .await
        .unwrap();
    assert_eq!(started.task.state, TaskState::Working);
    let kinds: Vec<_> = started.log.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            TaskEventKind::Status,
            TaskEventKind::Message,
            TaskEventKind::Status
        ]
    );
    let stored = p
        .control
        .store()
        .get_task(p.tenant, started.task.id)
        .await
        .unwrap();
    assert_eq!(stored.state, TaskState::Completed);

    let invocation = started.finished().await.unwrap();
    assert_eq!(reply_text(&invocation), "echo: hi");
    let log = p
        .control
        .store()
        .task_log(p.tenant, invocation.task.id)
        .await
        .unwrap();
    assert_eq!(log, invocation.log);
    let kinds: Vec<_> = log.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            TaskEventKind::Status,
            TaskEventKind::Message,
            TaskEventKind::Status,
            TaskEventKind::Message,
            TaskEventKind::Usage,
            TaskEventKind::Status
        ]
    );
}

/// Cancelling a running task stops the agent: the run ends as canceled, not at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_agent() {
    let p = platform(&["hostile"]).await;
    let hostile = Name::parse("hostile").unwrap();
    let started = p
        .control
        .start(
            &Caller::system(p.tenant),
            p.tenant,
            &hostile,
            message("loop"),
        )
        .await
        .unwrap();
    let task_id = started.task.id;
    let canceled = p
        .control
        .cancel(&Caller::system(p.tenant), p.tenant, task_id)
        .await
        .unwrap();
    assert_eq!(canceled.state, TaskState::Canceled);

    let invocation = started.finished().await.unwrap();
    // Had the guest run on, it would have ended at its 60 s deadline with a result.
    assert!(invocation.result.is_none(), "{:?}", invocation.result);
    assert_eq!(invocation.task.state, TaskState::Canceled);
    assert!(matches!(
        p.control
            .cancel(&Caller::system(p.tenant), p.tenant, task_id)
            .await,
        Err(nexus_control::ControlError::Store(
            nexus_store::StoreError::IllegalTransition(_)
        ))
    ));
    // The node still runs other tasks of the agent.
    let ok = p
        .control
        .invoke(&Caller::system(p.tenant), p.tenant, &hostile, message("hi"))
        .await
        .unwrap();
    assert_eq!(ok.task.state, TaskState::Completed);
}

/// An agent's call to another is a child task in the same session, linked to its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_call_agents_as_child_tasks() {
    let p = platform(&["echo"]).await;
    p.deploy("delegate", "delegate", &[]).await;
    p.deploy("delegate", "relay", &[("target", "default/delegate")])
        .await;

    let relayed = p.invoke("relay", "hi").await;
    assert_eq!(
        reply_text(&relayed),
        "default/delegate says: echo says: echo: hi"
    );

    let tasks = p
        .control
        .store()
        .list_tasks(
            p.tenant,
            &nexus_store::TaskFilter::default(),
            nexus_core::PageRequest::after(None, 10),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(tasks.len(), 3, "relay, delegate and echo each ran a task");
    let child = |parent: &nexus_core::Task| {
        tasks
            .iter()
            .find(|t| t.parent_task_id == Some(parent.id))
            .unwrap_or_else(|| panic!("no child of {}", parent.id))
            .clone()
    };
    let delegate = child(&relayed.task);
    let echo = child(&delegate);
    for task in [&delegate, &echo] {
        assert_eq!(task.context_id, relayed.task.context_id);
        assert_eq!(task.state, TaskState::Completed);
    }
    // Each task records who started it: the client, then each calling agent.
    assert_eq!(relayed.task.started_by.as_deref(), Some("system"));
    let agent_id = |name: &str| {
        let store = p.control.store().clone();
        let tenant = p.tenant;
        let name = Name::parse(name).unwrap();
        async move { store.get_agent(tenant, &name).await.unwrap().id }
    };
    assert_eq!(
        delegate.started_by,
        Some(format!("agent:{}", agent_id("relay").await))
    );
    assert_eq!(
        echo.started_by,
        Some(format!("agent:{}", agent_id("delegate").await))
    );
}

/// Cycles, chains past the depth limit, other tenants' agents and unknown agents are refused,
/// and the calling agent sees why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_are_bounded() {
    let p = platform(&["echo"]).await;
    // d1 → d2 → … → dN → echo.
    let max = nexus_control::MAX_CALL_DEPTH;
    for i in 1..=max {
        let target = if i == max {
            "echo".to_owned()
        } else {
            format!("d{}", i + 1)
        };
        p.deploy("delegate", &format!("d{i}"), &[("target", &target)])
            .await;
    }
    // From d2, the chain holds MAX agents (d2..dN and echo): allowed. From d1, one too many.
    let within = p.invoke("d2", "deep").await;
    assert!(reply_text(&within).ends_with("echo says: echo: deep"));
    let too_deep = p.invoke("d1", "deeper").await;
    assert_eq!(too_deep.task.state, TaskState::Failed);
    assert!(
        too_deep
            .task
            .status_message
            .as_deref()
            .unwrap_or("")
            .contains("too deep or loops back"),
        "{:?}",
        too_deep.task.status_message
    );

    p.deploy("delegate", "ouroboros", &[("target", "ouroboros")])
        .await;
    p.deploy("delegate", "stranger", &[("target", "elsewhere/echo")])
        .await;
    p.deploy("delegate", "lost", &[("target", "nobody")]).await;
    for (agent, reason) in [
        ("ouroboros", "too deep or loops back"),
        ("stranger", "no agent to delegate to"),
        ("lost", "no agent to delegate to"),
    ] {
        let failed = p.invoke(agent, "x").await;
        assert_eq!(failed.task.state, TaskState::Failed, "{agent}");
        let why = failed.task.status_message.unwrap_or_default();
        assert!(why.contains(reason), "{agent}: {why}");
    }

    // Another tenant's agent is denied, not found.
    let other = p
        .control
        .store()
        .ensure_tenant(NewTenant {
            name: Name::parse("elsewhere").unwrap(),
            display_name: "Elsewhere".into(),
        })
        .await
        .unwrap();
    assert_ne!(other.id, p.tenant);
    let denied = p.invoke("stranger", "x").await;
    assert!(
        denied
            .task
            .status_message
            .unwrap_or_default()
            .contains("denied"),
        "a call into another tenant is a policy denial"
    );
}

/// A manifest's `[limits]` apply to its tasks: a shorter deadline and less memory than the
/// node's defaults (60 s, 128 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_limits_apply_to_tasks() {
    let p = empty_platform().await;
    p.deploy_with(
        "hostile",
        "hasty",
        &[],
        "[limits]\ntimeout_secs = 1\nmemory_mib = 16\n",
    )
    .await;
    let spun = p.invoke("hasty", "loop").await;
    assert_eq!(spun.task.state, TaskState::Failed);
    let why = spun.task.status_message.unwrap_or_default();
    assert!(why.contains("deadline of 1000 ms"), "{why}");
    let hoarded = p.invoke("hasty", "memory").await;
    let why = hoarded.task.status_message.unwrap_or_default();
    assert!(
        why.contains(&format!("more than {} bytes", 16 * 1024 * 1024)),
        "{why}"
    );
}

/// A task whose agent is deleted between lookup and creation is refused as `agent` not found
/// and leaves no task behind, although its run starts before the creation commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_agent_vanished_is_refused_and_leaves_nothing() {
    let p = platform(&["echo"]).await;
    // One task first, so the revision and component are in memory and only the creation can
    // notice that the agent is gone.
    assert_eq!(reply_text(&p.invoke("echo", "hi").await), "echo: hi");
    let store = p.control.store().clone();
    let agent = store
        .get_agent(p.tenant, &Name::parse("echo").unwrap())
        .await
        .unwrap();
    store
        .delete_agent(
            p.tenant,
            agent.id,
            nexus_core::NewAuditEvent {
                actor: "system".into(),
                action: "agent.delete".into(),
                target: "agents/echo".into(),
                details: serde_json::json!({ "agent_id": agent.id }),
            },
        )
        .await
        .unwrap();

    let error = p
        .control
        .start_agent(&Caller::system(p.tenant), p.tenant, agent, message("late"))
        .await
        .expect_err("the agent is gone");
    assert!(
        matches!(
            &error,
            nexus_control::ControlError::Store(nexus_store::StoreError::NotFound {
                kind: "agent",
                ..
            })
        ),
        "{error:?}"
    );
    let tasks = store
        .list_tasks(
            p.tenant,
            &nexus_store::TaskFilter::default(),
            nexus_core::PageRequest::default(),
        )
        .await
        .unwrap();
    assert!(tasks.items.is_empty(), "{:?}", tasks.items);
}

/// A refused upload leaves no compiled machine code behind: not for a component that imports
/// what the platform does not provide, nor for one without the agent export (both compile, and
/// fail only at linking), nor for a good component whose package is refused by the store. An
/// accepted package's code is cached once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_packages_leave_no_compiled_component() {
    /// The component preamble: `\0asm`, version 0x0d, layer 1.
    const COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";
    /// An import section with one import, the resource type `r`, which nothing provides:
    /// section 10, 6 bytes, 1 import, plain name `r`, `(type (sub resource))`.
    const UNKNOWN_IMPORT: &[u8] = &[0x0a, 0x06, 0x01, 0x00, 0x01, b'r', 0x03, 0x01];

    let cache = tempfile::tempdir().unwrap();
    let p = empty_platform_on(nexus_runtime::RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..nexus_runtime::RuntimeConfig::default()
    })
    .await;
    let artifacts = || {
        std::fs::read_dir(cache.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let manifest = |name: &str| {
        format!(
            "[agent]\nname = \"{name}\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
             description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
             description = \"test\"\n"
        )
    };
    let upload = |manifest: String, wasm: Vec<u8>| {
        let control = p.control.clone();
        let tenant = p.tenant;
        async move {
            let package = nexus_package::pack(&manifest, &wasm, None).unwrap();
            control
                .upload_package(&Caller::system(tenant), tenant, package.bytes.into())
                .await
        }
    };

    let unknown_import = [COMPONENT, UNKNOWN_IMPORT].concat();
    let no_export = COMPONENT.to_vec();
    for (what, wasm) in [("unknown import", unknown_import), ("no export", no_export)] {
        let error = upload(manifest("refused"), wasm).await.expect_err(what);
        assert_eq!(
            error.code(),
            nexus_core::ErrorCode::InvalidPackage,
            "{what}: {error}"
        );
        assert_eq!(artifacts(), Vec::<std::path::PathBuf>::new(), "{what}");
    }

    let accepted = upload(manifest("agent"), common::guest("echo"))
        .await
        .unwrap();
    assert_eq!(artifacts().len(), 1, "an accepted package is cached");

    // The same reference with other bytes once the version is published: compiled and linked,
    // then refused by the store.
    p.store
        .publish_package(
            p.tenant,
            &accepted.digest,
            nexus_core::NewAuditEvent {
                actor: "system".into(),
                action: "package.publish".into(),
                target: format!("packages/{}", accepted.reference),
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    let error = upload(manifest("agent"), common::guest("hostile"))
        .await
        .expect_err("the version is published");
    assert_eq!(error.code(), nexus_core::ErrorCode::Conflict, "{error}");
    assert!(error.to_string().contains("published"), "{error}");
    assert_eq!(
        artifacts().len(),
        1,
        "nothing cached for the refused package"
    );
    let packages = p
        .control
        .list_packages(
            &Caller::system(p.tenant),
            p.tenant,
            nexus_core::PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(packages.items.len(), 1);
}

/// With private addresses off (the default), a grant that can only name a private host is
/// refused when deployed, with a code and a message that say why; grants that may name public
/// hosts deploy (their calls are checked address by address). With the setting on, all deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_of_private_hosts_are_refused_at_deploy_unless_allowed() {
    let hosts = [
        ("http://127.0.0.1:*", false),
        ("http://localhost:8080", false),
        ("http://[::1]:8080", false),
        ("http://0.0.0.0:*", false),
        ("http://169.254.169.254", false),
        ("https://example.com", true),
        ("http://*:*", true),
        ("http://db.internal", true),
    ];
    let declared: Vec<String> = hosts.iter().map(|(h, _)| format!("{h:?}")).collect();
    let manifest = format!(
        "[agent]\nname = \"net\"\nnamespace = \"tests\"\nversion = \"0.1.0\"\n\
         description = \"test\"\n[[skills]]\nid = \"test\"\nname = \"Test\"\n\
         description = \"test\"\n[capabilities]\nhosts = [{}]\n",
        declared.join(", ")
    );
    for allow in [false, true] {
        let p = empty_platform_on(nexus_runtime::RuntimeConfig {
            allow_private_addresses: allow,
            ..nexus_runtime::RuntimeConfig::default()
        })
        .await;
        let caller = Caller::system(p.tenant);
        let package = nexus_package::pack(&manifest, &common::guest("hostile"), None).unwrap();
        let uploaded = p
            .control
            .upload_package(&caller, p.tenant, package.bytes.into())
            .await
            .unwrap();
        for (i, (host, public)) in hosts.iter().enumerate() {
            let deployed = p
                .control
                .deploy(
                    &caller,
                    p.tenant,
                    DeployRequest {
                        package_digest: uploaded.digest.clone(),
                        name: Some(Name::parse(&format!("net{i}")).unwrap()),
                        grants: Some(nexus_core::Grants {
                            hosts: vec![(*host).to_owned()],
                            ..nexus_core::Grants::default()
                        }),
                        ..DeployRequest::default()
                    },
                )
                .await;
            if allow || *public {
                assert!(deployed.is_ok(), "{host} (private {allow}): {deployed:?}");
            } else {
                let error = deployed.expect_err(host);
                assert_eq!(error.code(), nexus_core::ErrorCode::GrantRefused, "{host}");
                assert!(
                    error.to_string().contains("allow_private_addresses"),
                    "{host}: {error}"
                );
            }
        }
    }
}

/// Each control-plane change is audited once, with the store's write: uploads (a repeated one
/// too), deployments (with the revision the store assigned), rollbacks, deletions and tenant
/// creations; a refused change records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_changes_are_audited_once_each() {
    let p = platform(&["echo"]).await;
    p.deploy("echo", "echo", &[]).await;
    let caller = Caller::system(p.tenant);
    let echo = Name::parse("echo").unwrap();
    let refused = p.control.rollback(&caller, p.tenant, &echo, Some(9)).await;
    assert!(refused.is_err(), "{refused:?}");
    p.control
        .rollback(&caller, p.tenant, &echo, None)
        .await
        .unwrap();
    p.control
        .delete_agent(&caller, p.tenant, &echo)
        .await
        .unwrap();
    let created = p
        .control
        .create_tenant(&caller, Name::parse("acme").unwrap(), None)
        .await
        .unwrap();
    let taken = p
        .control
        .create_tenant(&caller, Name::parse("acme").unwrap(), None)
        .await;
    assert!(taken.is_err(), "{taken:?}");

    let events = p
        .control
        .list_audit(&caller, p.tenant, 0, 100)
        .await
        .unwrap();
    assert_eq!(nexus_core::audit::verify_chain(&events), Ok(()));
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        [
            "package.upload",
            "agent.deploy",
            "package.upload",
            "agent.deploy",
            "agent.rollback",
            "agent.delete"
        ]
    );
    assert!(events.iter().all(|e| e.actor == "system"), "{events:?}");
    let deploy = &events[3].details;
    assert_eq!(events[1].details["revision"], 1);
    assert_eq!(deploy["revision"], 2);
    assert_eq!(deploy["package"], "tests/echo@0.1.0");
    assert!(deploy["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(deploy["secrets"], serde_json::json!([]));
    assert_eq!(events[4].details, serde_json::json!({ "from": 2, "to": 1 }));
    assert_eq!(events[5].target, "agents/echo");

    let theirs = p
        .control
        .list_audit(&caller, created.id, 0, 100)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(
        (
            theirs[0].seq,
            theirs[0].action.as_str(),
            theirs[0].target.as_str()
        ),
        (1, "tenant.create", "tenants/acme")
    );
    assert_eq!(
        theirs[0].details,
        serde_json::json!({ "display_name": "acme" })
    );
}

/// A tenant policy forbids what a role allows: here, the agent `relay` may not call `echo`.
/// The child call fails as denied inside the calling agent, the denial is audited with the
/// policy that decided, and removing the policy restores the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_policy_can_forbid_one_agent_to_call_another() {
    let p = platform(&["echo"]).await;
    p.deploy("delegate", "relay", &[("target", "echo")]).await;
    let admin = Caller::system(p.tenant);
    assert_eq!(
        reply_text(&p.invoke("relay", "hi").await),
        "echo says: echo: hi"
    );

    let forbid = r#"forbid (principal is Nexus::Agent, action == Nexus::Action::"task.send", resource)
        when { principal.name == "relay" && resource.name == "echo" };"#;
    let name = Name::parse("relay-not-echo").unwrap();
    p.control
        .create_policy(&admin, p.tenant, name.clone(), String::new(), forbid.into())
        .await
        .unwrap();
    let refused = p.invoke("relay", "hi").await;
    assert_eq!(refused.task.state, TaskState::Failed);
    assert!(
        refused
            .task
            .status_message
            .as_deref()
            .unwrap_or("")
            .contains("denied the call"),
        "{:?}",
        refused.task.status_message
    );
    // Clients may still call echo: the policy is about the agent.
    assert_eq!(reply_text(&p.invoke("echo", "hi").await), "echo: hi");

    let events = p
        .control
        .list_audit(&admin, p.tenant, 0, 1000)
        .await
        .unwrap();
    let denial = events
        .iter()
        .rev()
        .find(|e| e.action == "authz.deny")
        .expect("the denial is audited");
    assert!(denial.actor.starts_with("agent:"), "{}", denial.actor);
    assert_eq!(denial.details["action"], "task.send");
    assert_eq!(denial.details["policies"][0], "tenant:relay-not-echo");
    assert!(events.iter().any(|e| e.action == "policy.create"));

    p.control
        .delete_policy(&admin, p.tenant, &name)
        .await
        .unwrap();
    assert_eq!(
        reply_text(&p.invoke("relay", "hi").await),
        "echo says: echo: hi"
    );
}

/// Policies that are not one Cedar policy are refused whole, with Cedar's reason.
#[tokio::test]
async fn malformed_policies_are_refused_and_change_nothing() {
    let p = empty_platform().await;
    let admin = Caller::system(p.tenant);
    for (text, expected) in [
        ("permit(principal, action, resource)", "not a Cedar policy"),
        (
            "permit(principal == ?principal, action, resource);",
            "one `permit` or `forbid`",
        ),
        (
            "permit(principal, action, resource); forbid(principal, action, resource);",
            "one `permit` or `forbid`",
        ),
    ] {
        let refused = p
            .control
            .create_policy(
                &admin,
                p.tenant,
                Name::parse("bad").unwrap(),
                String::new(),
                text.into(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, nexus_control::ControlError::Invalid(m) if m.contains(expected)),
            "{text}: {refused}"
        );
    }
    let huge = format!(
        "permit(principal, action, resource) when {{ {} }};",
        "true && ".repeat(5000) + "true"
    );
    let too_long = p
        .control
        .create_policy(
            &admin,
            p.tenant,
            Name::parse("huge").unwrap(),
            String::new(),
            huge,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&too_long, nexus_control::ControlError::Invalid(m) if m.contains("at most")),
        "{too_long}"
    );
    assert!(
        p.control
            .list_policies(&admin, p.tenant)
            .await
            .unwrap()
            .is_empty()
    );
}
