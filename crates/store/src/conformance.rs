//! The conformance suite: behaviour every [`Store`] backend must show.
//!
//! Backends run it with [`conformance_tests!`](crate::conformance_tests), passing an async
//! expression that yields a fresh, empty, migrated store for each case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use nexus_core::audit::verify_chain;
use nexus_core::identity::Role;
use nexus_core::{
    AgentId, ApiKey, ApiKeyId, Cursor, Grants, Name, NewAgentRevision, NewApiKey, NewAuditEvent,
    NewPackage, NewPolicy, NewTask, NewTenant, NewUser, PackageRef, PageRequest, Policy, PolicyId,
    TaskEventKind, TaskId, TaskState, TeamId, TenantId, UserId,
};
use serde_json::json;

use crate::{NewTaskEvent, PushConfig, SealedSecret, StateScope, Store, StoreError, TaskFilter};

/// Generates one `#[tokio::test]` per conformance case. `$fresh` is an async expression
/// evaluating to an `Arc<dyn Store>` (or anything that derefs to a `Store`) that is empty.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!(@cases $fresh;
            tenants_create_get_and_unique_names,
            tenants_list_pages_by_cursor,
            invalid_cursor_is_rejected,
            agents_deploy_revisions_and_rollback,
            agents_are_isolated_by_tenant,
            agents_delete_removes_revisions,
            agents_reads_see_every_change,
            packages_are_builds_until_published,
            tasks_follow_the_state_machine,
            tasks_event_log_is_gapless_and_resumable,
            tasks_list_filters,
            tasks_list_newest_first_with_agents_and_short_ids,
            tasks_found_by_id_prefix_in_their_tenant_only,
            tasks_concurrent_transitions_have_one_winner,
            tasks_unfinished_fail_at_recovery,
            tasks_concurrent_writes_keep_every_log_gapless,
            tasks_a_failing_write_fails_alone,
            tasks_queued_creation_comes_before_later_writes,
            tasks_created_ended_in_one_write,
            audit_chain_holds_under_concurrency,
            writes_of_every_kind_interleave,
            state_is_scoped_and_compare_and_swap_is_atomic,
            secrets_deploy_with_the_revision_and_keep_earlier_ones,
            secrets_are_scoped_to_tenant_and_agent,
            tenant_keys_are_stored_once,
            push_configs_put_get_list_delete,
            push_configs_are_scoped_and_go_with_their_task,
            api_keys_create_get_and_list_by_page,
            api_keys_are_found_by_hash_in_any_tenant,
            api_keys_hash_and_id_are_unique_across_tenants,
            api_keys_failed_create_leaves_no_audit_event,
            api_keys_are_isolated_by_tenant,
            api_keys_revoke_keeps_the_first_time,
            api_keys_any_key_only_after_a_create,
            api_keys_writes_are_audited_in_their_tenant,
            api_keys_concurrent_writes_keep_the_chain,
            tenants_create_is_audited_in_the_new_tenant,
            agents_deploy_is_audited_with_its_revision,
            agents_rollback_is_audited_and_a_refused_one_is_not,
            agents_delete_is_audited_and_a_refused_one_is_not,
            packages_put_is_audited_and_a_conflicting_one_is_not,
            audited_writes_race_and_keep_the_chain,
            policies_create_and_list_in_creation_order,
            policies_duplicate_name_is_refused_without_an_event,
            policies_past_the_limit_are_refused_without_an_event,
            policies_are_isolated_by_tenant,
            policies_delete_returns_the_policy_and_is_audited,
            policies_concurrent_creates_keep_the_limit_and_the_chain,
            state_entries_page_across_sessions,
            state_clear_removes_one_session_or_all_and_is_audited,
            tenants_delete_removes_everything_and_is_audited_elsewhere,
            tenant_keys_are_destroyed_on_demand,
            users_join_tenants_and_sessions_follow_their_membership,
            users_listing_pages_by_name_and_refusals_store_nothing,
            teams_give_their_role_and_changes_end_sessions,
            service_accounts_own_their_keys,
            passwords_change_and_end_every_session
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $fresh.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// A tenant named `n`; its chain starts with the `tenant.create` event of its creation.
async fn tenant(store: &dyn Store, n: &str) -> TenantId {
    store
        .create_tenant(
            NewTenant {
                name: name(n),
                display_name: format!("Tenant {n}"),
            },
            audit_event("tenant.create", &format!("tenants/{n}")),
        )
        .await
        .unwrap()
        .id
}

/// The audit event of an audited store write, as the control plane would build it.
fn audit_event(action: &str, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "key:admin".into(),
        action: action.into(),
        target: target.into(),
        details: json!({ "target": target }),
    }
}

/// `tenant`'s audit chain, checked: every event is the tenant's and the chain verifies.
async fn chain(store: &dyn Store, tenant: TenantId) -> Vec<nexus_core::AuditEvent> {
    let events = store.list_audit(tenant, 0, 1000).await.unwrap();
    assert!(events.iter().all(|e| e.tenant_id == tenant), "{events:?}");
    assert_eq!(verify_chain(&events), Ok(()));
    events
}

/// The actions in `tenant`'s audit chain, oldest first, after checking the chain.
async fn audit_actions(store: &dyn Store, tenant: TenantId) -> Vec<String> {
    chain(store, tenant)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn deploy(
    store: &dyn Store,
    t: TenantId,
    new: NewAgentRevision,
    secrets: Vec<SealedSecret>,
) -> Result<(nexus_core::Agent, nexus_core::AgentRevision), StoreError> {
    let target = format!("agents/{}", new.name);
    store
        .deploy_revision_with_secrets(t, new, secrets, audit_event("agent.deploy", &target))
        .await
}

fn revision(agent: &str, version: &str) -> NewAgentRevision {
    NewAgentRevision {
        name: name(agent),
        package: format!("acme/{agent}@{version}").parse().unwrap(),
        package_digest: format!("sha256:{version}"),
        config: BTreeMap::from([("greeting".to_owned(), format!("hello {version}"))]),
        secret_names: vec!["api-key".to_owned()],
        grants: Grants {
            capabilities: vec!["state".into()],
            hosts: vec!["https://api.example.com".into()],
        },
        deployed_by: format!("user:deployer-of-{version}"),
    }
}

async fn agent(store: &dyn Store, t: TenantId, n: &str) -> AgentId {
    store
        .deploy_revision(t, revision(n, "1.0.0"))
        .await
        .unwrap()
        .0
        .id
}

fn new_task(agent_id: AgentId, context: &str) -> NewTask {
    NewTask {
        id: TaskId::new(),
        agent_id,
        agent_revision: 1,
        context_id: context.to_owned(),
        parent_task_id: None,
        started_by: "key:test".into(),
        start_working: false,
    }
}

fn event(kind: TaskEventKind, text: &str) -> NewTaskEvent {
    NewTaskEvent {
        kind,
        payload: json!({ "text": text }),
    }
}

pub async fn tenants_create_get_and_unique_names(store: Arc<dyn Store>) {
    let created = store
        .create_tenant(
            NewTenant {
                name: name("acme"),
                display_name: "Acme Corp".into(),
            },
            audit_event("tenant.create", "tenants/acme"),
        )
        .await
        .unwrap();
    assert_eq!(store.get_tenant(created.id).await.unwrap(), created);
    assert_eq!(
        store.get_tenant_by_name(&name("acme")).await.unwrap(),
        created
    );

    let duplicate = store
        .create_tenant(
            NewTenant {
                name: name("acme"),
                display_name: "Other".into(),
            },
            audit_event("tenant.create", "tenants/acme"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists { .. })),
        "{duplicate:?}"
    );

    // ensure_tenant is idempotent and returns the existing row.
    let ensured = store
        .ensure_tenant(NewTenant {
            name: name("acme"),
            display_name: "ignored".into(),
        })
        .await
        .unwrap();
    assert_eq!(ensured, created);

    assert!(matches!(
        store.get_tenant(TenantId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_tenant_by_name(&name("nobody")).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn tenants_list_pages_by_cursor(store: Arc<dyn Store>) {
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(tenant(&*store, &format!("t{i}")).await);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_tenants(page.clone()).await.unwrap();
        assert!(result.items.len() <= 2);
        seen.extend(result.items.iter().map(|t| t.id));
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(Some(cursor), 2),
            None => break,
        }
    }
    assert_eq!(seen, created, "every tenant once, in creation order");
}

pub async fn invalid_cursor_is_rejected(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let bad = PageRequest::after(Some(Cursor("not-a-cursor".into())), 10);
    assert!(matches!(
        store.list_tenants(bad.clone()).await,
        Err(StoreError::InvalidCursor(_))
    ));
    assert!(matches!(
        store.list_agents(t, bad.clone()).await,
        Err(StoreError::InvalidCursor(_))
    ));
    assert!(matches!(
        store.list_tasks(t, &TaskFilter::default(), bad).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

pub async fn agents_deploy_revisions_and_rollback(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let (agent, first) = store
        .deploy_revision(t, revision("echo", "1.0.0"))
        .await
        .unwrap();
    assert_eq!((agent.current_revision, first.revision), (1, 1));
    assert_eq!(first.config["greeting"], "hello 1.0.0");

    let (agent2, second) = store
        .deploy_revision(t, revision("echo", "1.1.0"))
        .await
        .unwrap();
    assert_eq!(agent2.id, agent.id, "a redeploy updates the same agent");
    assert_eq!((agent2.current_revision, second.revision), (2, 2));
    // The agent belongs to whoever created it; each revision names its own deployer.
    assert_eq!(agent.owner, "user:deployer-of-1.0.0");
    assert_eq!(agent2.owner, "user:deployer-of-1.0.0");
    assert_eq!(
        (first.deployed_by.as_str(), second.deployed_by.as_str()),
        ("user:deployer-of-1.0.0", "user:deployer-of-1.1.0")
    );

    // Old revisions are kept unchanged.
    assert_eq!(store.get_revision(t, agent.id, 1).await.unwrap(), first);
    let all = store.list_revisions(t, agent.id).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![2, 1]
    );

    let rolled_back = store
        .set_current_revision(t, agent.id, 1, audit_event("agent.rollback", "agents/echo"))
        .await
        .unwrap();
    assert_eq!(rolled_back.current_revision, 1);
    assert_eq!(
        store
            .get_agent(t, &name("echo"))
            .await
            .unwrap()
            .current_revision,
        1
    );

    assert!(matches!(
        store
            .set_current_revision(t, agent.id, 9, audit_event("agent.rollback", "agents/echo"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store
            .get_agent_by_id(t, agent.id)
            .await
            .unwrap()
            .current_revision,
        1
    );

    // The next deploy after a rollback still gets a fresh number.
    let (_, third) = store
        .deploy_revision(t, revision("echo", "1.2.0"))
        .await
        .unwrap();
    assert_eq!(third.revision, 3);
}

/// Reading an agent by name right after each kind of agent write sees that write: stores may
/// keep agent rows in memory, and every write must reach what they keep.
pub async fn agents_reads_see_every_change(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let echo = name("echo");
    let by_name = || store.get_agent(t, &echo);
    assert!(matches!(by_name().await, Err(StoreError::NotFound { .. })));
    let first = agent(&*store, t, "echo").await;
    assert_eq!(by_name().await.unwrap().current_revision, 1);
    // Each read returns the row as the write left it (a store may keep what it wrote).
    let (deployed, _) = store
        .deploy_revision(t, revision("echo", "1.1.0"))
        .await
        .unwrap();
    assert_eq!(deployed.current_revision, 2);
    assert_eq!(by_name().await.unwrap(), deployed);
    let rolled_back = store
        .set_current_revision(t, first, 1, audit_event("agent.rollback", "agents/echo"))
        .await
        .unwrap();
    assert_eq!(rolled_back.current_revision, 1);
    assert_eq!(by_name().await.unwrap(), rolled_back);
    let (deployed, _) = deploy(&*store, t, revision("echo", "1.2.0"), Vec::new())
        .await
        .unwrap();
    assert_eq!(deployed.current_revision, 3);
    assert_eq!(by_name().await.unwrap(), deployed);
    store
        .delete_agent(t, first, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();
    assert!(matches!(by_name().await, Err(StoreError::NotFound { .. })));
    let second = agent(&*store, t, "echo").await;
    assert_ne!(second, first);
    let read = by_name().await.unwrap();
    assert_eq!((read.id, read.current_revision), (second, 1));
    // Tenants are read by name and id alike, the same row either way.
    let acme = store.get_tenant_by_name(&name("acme")).await.unwrap();
    assert_eq!(store.get_tenant(t).await.unwrap(), acme);
}

/// Writes queued after `queue_create_task` returns see the task, though nobody awaited its
/// commit: a run may start before its task's creation commits.
pub async fn tasks_created_ended_in_one_write(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    let working = |context: &str| NewTask {
        start_working: true,
        ..new_task(a, context)
    };
    let end = |state| crate::TaskEnd {
        state,
        message: None,
        events: vec![event(TaskEventKind::Message, "hello")],
    };

    let new = working("ctx");
    let id = new.id;
    let ((created, first), (ended, last)) = store
        .create_ended_task(
            t,
            new,
            vec![event(TaskEventKind::Message, "hi")],
            end(TaskState::Completed),
        )
        .await
        .unwrap();
    assert_eq!((created.id, created.state), (id, TaskState::Working));
    assert_eq!(ended.state, TaskState::Completed);
    let written: Vec<_> = first.iter().chain(&last).cloned().collect();
    assert_eq!(
        written.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        [
            (1, TaskEventKind::Status),
            (2, TaskEventKind::Message),
            (3, TaskEventKind::Status),
            (4, TaskEventKind::Message),
            (5, TaskEventKind::Status)
        ]
    );
    assert_eq!(store.task_log(t, id).await.unwrap(), written);
    assert_eq!(store.get_task(t, id).await.unwrap(), ended);

    // Refused whole, leaving nothing: an end the state machine refuses, a missing agent, an
    // id that is taken (the task that has it keeps its state and log).
    let refused = working("refused");
    let refused_id = refused.id;
    assert!(matches!(
        store
            .create_ended_task(t, refused, vec![], end(TaskState::Working))
            .await,
        Err(StoreError::IllegalTransition(_))
    ));
    let orphan = NewTask {
        start_working: true,
        ..new_task(AgentId::new(), "orphan")
    };
    let orphan_id = orphan.id;
    assert!(matches!(
        store
            .create_ended_task(t, orphan, vec![], end(TaskState::Completed))
            .await,
        Err(StoreError::NotFound { kind: "agent", .. })
    ));
    for gone in [refused_id, orphan_id] {
        assert!(matches!(
            store.get_task(t, gone).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    let (running, running_log) = store
        .create_task(t, working("running"), vec![])
        .await
        .unwrap();
    let taken = NewTask {
        id: running.id,
        ..working("taken")
    };
    assert!(matches!(
        store
            .create_ended_task(t, taken, vec![], end(TaskState::Failed))
            .await,
        Err(StoreError::AlreadyExists { kind: "task", .. })
    ));
    assert_eq!(store.get_task(t, running.id).await.unwrap(), running);
    assert_eq!(store.task_log(t, running.id).await.unwrap(), running_log);

    // Many at once, among refused ones: each is stored whole or not at all.
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            let new = if i % 6 == 5 {
                NewTask {
                    start_working: true,
                    ..new_task(AgentId::new(), "orphan")
                }
            } else {
                working(&format!("c{i}"))
            };
            tokio::spawn(async move {
                let id = new.id;
                let written = store
                    .create_ended_task(t, new, vec![], end(TaskState::Completed))
                    .await;
                (id, written.is_ok())
            })
        })
        .collect();
    for handle in handles {
        let (id, stored) = handle.await.unwrap();
        match store.get_task(t, id).await {
            Ok(task) => {
                assert!(stored);
                assert_eq!(task.state, TaskState::Completed);
                assert_eq!(store.task_log(t, id).await.unwrap().len(), 4);
            }
            Err(StoreError::NotFound { .. }) => assert!(!stored),
            Err(e) => panic!("{e}"),
        }
    }
}

pub async fn tasks_queued_creation_comes_before_later_writes(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    let mut new = new_task(a, "ctx");
    new.start_working = true;
    let id = new.id;
    let created = store
        .queue_create_task(t, new, vec![event(TaskEventKind::Message, "hi")])
        .await
        .unwrap();
    let (ended, appended) = store
        .transition_task(
            t,
            id,
            TaskState::Completed,
            None,
            vec![event(TaskEventKind::Message, "hello")],
        )
        .await
        .unwrap();
    let (task, first) = created.await.unwrap();
    assert_eq!((task.id, task.state), (id, TaskState::Working));
    assert_eq!(ended.state, TaskState::Completed);
    let seqs: Vec<u64> = first.iter().chain(&appended).map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let log = store.task_log(t, id).await.unwrap();
    assert_eq!(log.len(), seqs.len());
    assert_eq!(
        store.get_task(t, id).await.unwrap().state,
        TaskState::Completed
    );

    // A refused creation fails, and so does what was queued behind it.
    let gone = AgentId::new();
    let created = store
        .queue_create_task(t, new_task(gone, "ctx"), vec![])
        .await
        .unwrap();
    assert!(matches!(created.await, Err(StoreError::NotFound { .. })));
}

pub async fn agents_are_isolated_by_tenant(store: Arc<dyn Store>) {
    let a = tenant(&*store, "tenant-a").await;
    let b = tenant(&*store, "tenant-b").await;
    let agent_a = agent(&*store, a, "echo").await;

    assert!(matches!(
        store.get_agent(b, &name("echo")).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_agent_by_id(b, agent_a).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_revision(b, agent_a, 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .set_current_revision(b, agent_a, 1, audit_event("agent.rollback", "agents/echo"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .list_agents(b, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The same name is free in another tenant.
    let agent_b = agent(&*store, b, "echo").await;
    assert_ne!(agent_a, agent_b);

    let (task, _) = store
        .create_task(a, new_task(agent_a, "ctx"), vec![])
        .await
        .unwrap();
    assert!(matches!(
        store.get_task(b, task.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .transition_task(b, task.id, TaskState::Working, None, vec![])
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .list_tasks(b, &TaskFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.get_task(a, task.id).await.unwrap().state,
        TaskState::Submitted
    );
}

pub async fn agents_delete_removes_revisions(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let id = agent(&*store, t, "echo").await;
    let (task, _) = store
        .create_task(t, new_task(id, "ctx"), vec![])
        .await
        .unwrap();
    store
        .delete_agent(t, id, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();
    assert!(matches!(
        store.get_agent_by_id(t, id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_revision(t, id, 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_task(t, task.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .delete_agent(t, id, audit_event("agent.delete", "agents/x"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // The name can be deployed again from revision 1.
    let (_, rev) = store
        .deploy_revision(t, revision("echo", "2.0.0"))
        .await
        .unwrap();
    assert_eq!(rev.revision, 1);
}

pub async fn packages_are_builds_until_published(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let reference: PackageRef = "acme/echo@1.0.0".parse().unwrap();
    let new = NewPackage {
        reference: reference.clone(),
        digest: "sha256:aaaa".into(),
        size_bytes: 1234,
        manifest: json!({"name": "echo", "skills": [{"id": "echo"}]}),
    };
    let stored = store
        .put_package(
            t,
            new.clone(),
            audit_event("package.upload", "packages/acme/echo@1.0.0"),
        )
        .await
        .unwrap();
    assert_eq!(stored.size_bytes, 1234);
    assert_eq!(store.get_package(t, &reference).await.unwrap(), stored);
    assert_eq!(
        store.get_package_by_digest(t, "sha256:aaaa").await.unwrap(),
        stored
    );

    // Same bytes again: idempotent.
    assert_eq!(
        store
            .put_package(
                t,
                new.clone(),
                audit_event("package.upload", "packages/acme/echo@1.0.0")
            )
            .await
            .unwrap(),
        stored
    );
    // Different bytes under the same version: another build of it, the newest one by its
    // reference; both stay readable by digest.
    let changed = NewPackage {
        digest: "sha256:bbbb".into(),
        ..new.clone()
    };
    let rebuilt = store
        .put_package(
            t,
            changed.clone(),
            audit_event("package.upload", "packages/acme/echo@1.0.0"),
        )
        .await
        .unwrap();
    assert_ne!(rebuilt.id, stored.id);
    assert!(!rebuilt.published);
    assert_eq!(store.get_package(t, &reference).await.unwrap(), rebuilt);
    assert_eq!(
        store.get_package_by_digest(t, "sha256:aaaa").await.unwrap(),
        stored
    );

    // Once a build is published, its version is immutable: a new digest is refused, while the
    // builds already stored may be uploaded again.
    let published = store
        .publish_package(
            t,
            "sha256:bbbb",
            audit_event("package.publish", "packages/acme/echo@1.0.0"),
        )
        .await
        .unwrap();
    assert!(published.published);
    assert!(matches!(
        store
            .put_package(
                t,
                NewPackage {
                    digest: "sha256:cccc".into(),
                    ..new.clone()
                },
                audit_event("package.upload", "packages/acme/echo@1.0.0")
            )
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    for (again, expected) in [(&changed, &published), (&new, &stored)] {
        let put = store
            .put_package(
                t,
                again.clone(),
                audit_event("package.upload", "packages/acme/echo@1.0.0"),
            )
            .await
            .unwrap();
        assert_eq!(&put, expected);
    }
    assert!(matches!(
        store.get_package_by_digest(t, "sha256:cccc").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .publish_package(
                t,
                "sha256:dddd",
                audit_event("package.publish", "packages/acme/echo@1.0.0"),
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));

    assert!(matches!(
        store.get_package(other, &reference).await,
        Err(StoreError::NotFound { .. })
    ));
    let page = store
        .list_packages(t, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items, vec![stored, published]);
}

pub async fn tasks_follow_the_state_machine(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    let (task, events) = store
        .create_task(
            t,
            new_task(a, "session-1"),
            vec![event(TaskEventKind::Message, "hi")],
        )
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Submitted);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, TaskEventKind::Status);
    assert_eq!(events[1].kind, TaskEventKind::Message);
    // The principal that started it is kept and read back.
    assert_eq!(task.started_by.as_deref(), Some("key:test"));
    assert_eq!(
        store
            .get_task(t, task.id)
            .await
            .unwrap()
            .started_by
            .as_deref(),
        Some("key:test")
    );

    // Illegal: SUBMITTED -> COMPLETED. Nothing changes, nothing is logged.
    let illegal = store
        .transition_task(t, task.id, TaskState::Completed, None, vec![])
        .await;
    assert!(
        matches!(illegal, Err(StoreError::IllegalTransition(_))),
        "{illegal:?}"
    );
    assert_eq!(
        store.get_task(t, task.id).await.unwrap().state,
        TaskState::Submitted
    );
    assert_eq!(
        store
            .list_task_events(t, task.id, 0, 100)
            .await
            .unwrap()
            .len(),
        2
    );

    let (working, _) = store
        .transition_task(t, task.id, TaskState::Working, None, vec![])
        .await
        .unwrap();
    assert_eq!(working.state, TaskState::Working);
    assert!(working.updated_at >= task.updated_at);

    let (done, appended) = store
        .transition_task(
            t,
            task.id,
            TaskState::Completed,
            Some("all good".into()),
            vec![event(TaskEventKind::Artifact, "result")],
        )
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.status_message.as_deref(), Some("all good"));
    assert_eq!(
        appended.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        vec![(4, TaskEventKind::Artifact), (5, TaskEventKind::Status)],
        "the status change comes after the events it ends"
    );
    assert_eq!(store.get_task(t, task.id).await.unwrap(), done);

    // A finished task takes no more transitions or events.
    assert!(matches!(
        store
            .transition_task(t, task.id, TaskState::Working, None, vec![])
            .await,
        Err(StoreError::IllegalTransition(_))
    ));
    assert!(matches!(
        store
            .append_task_events(t, task.id, vec![event(TaskEventKind::Log, "late")])
            .await,
        Err(StoreError::TaskEnded(_))
    ));
    assert!(matches!(
        store.get_task(t, TaskId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn tasks_event_log_is_gapless_and_resumable(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    // Created straight into WORKING: one transaction, the same log as two.
    let (task, created) = store
        .create_task(
            t,
            NewTask {
                start_working: true,
                ..new_task(a, "s")
            },
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Working);
    assert_eq!(
        store.get_task(t, task.id).await.unwrap().state,
        TaskState::Working
    );
    assert_eq!(
        created
            .iter()
            .map(|e| e.payload["state"].clone())
            .collect::<Vec<_>>(),
        [json!("submitted"), json!("working")]
    );
    for i in 0..5 {
        let appended = store
            .append_task_events(
                t,
                task.id,
                vec![
                    event(TaskEventKind::Log, &format!("log {i}")),
                    event(TaskEventKind::Artifact, &format!("chunk {i}")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(appended.len(), 2);
    }
    let all = store.list_task_events(t, task.id, 0, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<u64>>()
    );
    assert_eq!(all[2].payload, json!({"text": "log 0"}));

    // Resume from any point, bounded by the limit.
    let resumed = store.list_task_events(t, task.id, 7, 3).await.unwrap();
    assert_eq!(
        resumed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert!(
        store
            .list_task_events(t, task.id, 12, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The whole log, across pages.
    let many: Vec<_> = (0..crate::TASK_LOG_PAGE)
        .map(|i| event(TaskEventKind::Log, &format!("line {i}")))
        .collect();
    store.append_task_events(t, task.id, many).await.unwrap();
    let log = store.task_log(t, task.id).await.unwrap();
    let total = 12 + u64::from(crate::TASK_LOG_PAGE);
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<u64>>()
    );
}

pub async fn tasks_list_filters(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let echo = agent(&*store, t, "echo").await;
    let other = agent(&*store, t, "other").await;
    let mut ids = Vec::new();
    for (agent_id, ctx) in [(echo, "s1"), (echo, "s2"), (other, "s1"), (echo, "s1")] {
        ids.push(
            store
                .create_task(t, new_task(agent_id, ctx), vec![])
                .await
                .unwrap()
                .0
                .id,
        );
    }
    store
        .transition_task(t, ids[3], TaskState::Working, None, vec![])
        .await
        .unwrap();

    let list = |filter: TaskFilter| {
        let store = store.clone();
        async move {
            store
                .list_tasks(t, &filter, PageRequest::first(100))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|task| task.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(TaskFilter::default()).await, ids);
    assert_eq!(
        list(TaskFilter {
            agent_id: Some(echo),
            ..Default::default()
        })
        .await,
        vec![ids[0], ids[1], ids[3]]
    );
    assert_eq!(
        list(TaskFilter {
            context_id: Some("s1".into()),
            ..Default::default()
        })
        .await,
        vec![ids[0], ids[2], ids[3]]
    );
    assert_eq!(
        list(TaskFilter {
            agent_id: Some(echo),
            context_id: Some("s1".into()),
            state: Some(TaskState::Working),
        })
        .await,
        vec![ids[3]]
    );
}

/// Tasks of `acme` (two agents) and of `beta` with ids chosen to share prefixes: `a` and `b`
/// share 15 hex digits, `c` shares none with them, and beta's task shares 31 with `a`.
async fn tasks_with_chosen_ids(store: &dyn Store) -> (TenantId, [TaskId; 3], AgentId) {
    let acme = tenant(store, "acme").await;
    let beta = tenant(store, "beta").await;
    let echo = agent(store, acme, "echo").await;
    let other = agent(store, acme, "other").await;
    let beta_agent = agent(store, beta, "echo").await;
    let id = |text: &str| text.parse::<TaskId>().unwrap();
    let a = id("0195f3a2-7c1d-7abc-8000-000000000001");
    let b = id("0195f3a2-7c1d-7abd-8000-000000000000");
    let c = id("0295f3a2-0000-7000-8000-000000000000");
    let in_beta = id("0195f3a2-7c1d-7abc-8000-000000000002");
    for (t, task, agent_id) in [
        (acme, a, echo),
        (acme, b, other),
        (acme, c, echo),
        (beta, in_beta, beta_agent),
    ] {
        let new = NewTask {
            id: task,
            ..new_task(agent_id, "s")
        };
        store.create_task(t, new, vec![]).await.unwrap();
    }
    (acme, [a, b, c], echo)
}

pub async fn tasks_list_newest_first_with_agents_and_short_ids(store: Arc<dyn Store>) {
    let (t, [a, b, c], echo) = tasks_with_chosen_ids(&*store).await;
    let rows = |page: nexus_core::Page<crate::ListedTask>| {
        page.items
            .into_iter()
            .map(|l| (l.task.id, l.agent, l.short_id))
            .collect::<Vec<_>>()
    };
    let row = |id: TaskId, agent: &str, short: &str| (id, agent.to_owned(), short.to_owned());

    // Newest first, paged: the second page continues after the first's cursor.
    let first = store
        .list_tasks_newest(t, &TaskFilter::default(), PageRequest::first(2))
        .await
        .unwrap();
    let cursor = first.next_cursor.clone().expect("a second page");
    assert_eq!(
        rows(first),
        vec![
            // Unique from its first digit, shown with the floor of 8 digits.
            row(c, "echo", "0295f3a2"),
            row(b, "other", "0195f3a2-7c1d-7abd"),
        ]
    );
    let second = store
        .list_tasks_newest(
            t,
            &TaskFilter::default(),
            PageRequest::after(Some(cursor), 2),
        )
        .await
        .unwrap();
    assert_eq!(second.next_cursor, None);
    // Beta's task, which shares 31 digits with `a`, does not lengthen acme's short id.
    assert_eq!(rows(second), vec![row(a, "echo", "0195f3a2-7c1d-7abc")]);

    // A filter hides `b`, yet `a`'s short id still tells it from `b`: it is unique in the
    // tenant, not in the page.
    let filtered = store
        .list_tasks_newest(
            t,
            &TaskFilter {
                agent_id: Some(echo),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(
        rows(filtered),
        vec![
            row(c, "echo", "0295f3a2"),
            row(a, "echo", "0195f3a2-7c1d-7abc")
        ]
    );
    let state = store
        .list_tasks_newest(
            t,
            &TaskFilter {
                state: Some(TaskState::Working),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(state.items.is_empty(), "{state:?}");

    let bad = PageRequest::after(Some(Cursor("nope".into())), 10);
    assert!(matches!(
        store
            .list_tasks_newest(t, &TaskFilter::default(), bad)
            .await,
        Err(StoreError::InvalidCursor(_))
    ));
}

pub async fn tasks_found_by_id_prefix_in_their_tenant_only(store: Arc<dyn Store>) {
    let (t, [a, b, c], _) = tasks_with_chosen_ids(&*store).await;
    let cases: [(&str, u32, Vec<TaskId>); 7] = [
        ("0195f3a2-7c1d-7abc", 10, vec![a]),
        ("0195F3A27C1D7ABD", 10, vec![b]),
        ("0195", 10, vec![a, b]),
        ("0", 10, vec![a, b, c]),
        ("0", 2, vec![a, b]),
        ("03", 10, vec![]),
        ("0195f3a2-7c1d-7abc-8000-000000000002", 10, vec![]),
    ];
    for (prefix, limit, expected) in cases {
        let found = store
            .task_ids_with_prefix(t, &prefix.parse().unwrap(), limit)
            .await
            .unwrap();
        assert_eq!(found, expected, "{prefix} (limit {limit})");
    }
    let whole = a.to_string().parse().unwrap();
    assert_eq!(
        store.task_ids_with_prefix(t, &whole, 10).await.unwrap(),
        vec![a]
    );
}

pub async fn tasks_concurrent_transitions_have_one_winner(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    for _ in 0..5 {
        let (task, _) = store
            .create_task(t, new_task(a, "s"), vec![])
            .await
            .unwrap();
        store
            .transition_task(t, task.id, TaskState::Working, None, vec![])
            .await
            .unwrap();
        let outcomes = futures_join(
            store.clone(),
            t,
            task.id,
            [TaskState::Completed, TaskState::Canceled, TaskState::Failed],
        )
        .await;
        let winners: Vec<_> = outcomes.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        for loser in outcomes.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(loser, Err(StoreError::IllegalTransition(_))),
                "{loser:?}"
            );
        }
        let events = store.list_task_events(t, task.id, 0, 100).await.unwrap();
        assert_eq!(events.len(), 3, "exactly one terminal status event");
    }
}

async fn futures_join(
    store: Arc<dyn Store>,
    t: TenantId,
    id: TaskId,
    targets: [TaskState; 3],
) -> Vec<Result<TaskState, StoreError>> {
    let handles: Vec<_> = targets
        .into_iter()
        .map(|to| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transition_task(t, id, to, None, vec![])
                    .await
                    .map(|(task, _)| task.state)
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

pub async fn tasks_unfinished_fail_at_recovery(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    let (submitted, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    let (working, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    store
        .transition_task(t, working.id, TaskState::Working, None, vec![])
        .await
        .unwrap();
    let (done, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    store
        .transition_task(t, done.id, TaskState::Working, None, vec![])
        .await
        .unwrap();
    store
        .transition_task(t, done.id, TaskState::Completed, None, vec![])
        .await
        .unwrap();

    let (waiting, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    store
        .transition_task(t, waiting.id, TaskState::Working, None, vec![])
        .await
        .unwrap();
    store
        .transition_task(t, waiting.id, TaskState::InputRequired, None, vec![])
        .await
        .unwrap();

    let changed = store
        .fail_unfinished_tasks("server restarted")
        .await
        .unwrap();
    assert_eq!(changed, 2);
    for id in [submitted.id, working.id] {
        let task = store.get_task(t, id).await.unwrap();
        assert_eq!(task.state, TaskState::Failed);
        assert_eq!(task.status_message.as_deref(), Some("server restarted"));
        let events = store.list_task_events(t, id, 0, 100).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.kind, TaskEventKind::Status);
        assert_eq!(last.payload["state"], "failed");
    }
    assert_eq!(
        store.get_task(t, done.id).await.unwrap().state,
        TaskState::Completed
    );
    assert_eq!(
        store.get_task(t, waiting.id).await.unwrap().state,
        TaskState::InputRequired,
        "a task waiting for the user is not running"
    );
    assert_eq!(store.fail_unfinished_tasks("again").await.unwrap(), 0);
}

/// Many writers at once, across tasks and on the same task: creates, racing transitions and
/// appends racing the transition that ends the task. Every caller's events are in the log as
/// it was told, logs stay gapless, and each illegal race has exactly one winner.
pub async fn tasks_concurrent_writes_keep_every_log_gapless(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const APPENDS_PER_TASK: usize = 6;
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;

    // Creates in parallel, half of them straight into WORKING.
    let creates: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = NewTask {
                    start_working: i % 2 == 0,
                    ..new_task(a, &format!("s{i}"))
                };
                store
                    .create_task(
                        t,
                        new,
                        vec![event(TaskEventKind::Message, &format!("hi {i}"))],
                    )
                    .await
            })
        })
        .collect();
    let mut tasks = Vec::new();
    for (i, handle) in creates.into_iter().enumerate() {
        let (task, created) = handle.await.unwrap().unwrap();
        let expected = if i % 2 == 0 { 3 } else { 2 };
        assert_eq!(
            created.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=expected).collect::<Vec<u64>>()
        );
        assert_eq!(created[1].payload, json!({ "text": format!("hi {i}") }));
        assert_eq!(store.get_task(t, task.id).await.unwrap(), task);
        assert_eq!(
            store.list_task_events(t, task.id, 0, 100).await.unwrap(),
            created
        );
        tasks.push(task);
    }

    // The SUBMITTED ones: two racing moves to WORKING, one wins.
    let starts: Vec<_> = tasks
        .iter()
        .filter(|task| task.state == TaskState::Submitted)
        .flat_map(|task| [task.id, task.id])
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move {
                let result = store
                    .transition_task(t, id, TaskState::Working, None, vec![])
                    .await;
                (id, result)
            })
        })
        .collect();
    let mut started = BTreeMap::new();
    for handle in starts {
        let (id, result) = handle.await.unwrap();
        match result {
            Ok((task, events)) => {
                assert_eq!(task.state, TaskState::Working);
                assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
                assert!(started.insert(id, ()).is_none(), "two winners for {id}");
            }
            Err(StoreError::IllegalTransition(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(started.len(), TASKS / 2);

    // Every task WORKING: appends of one to three events race three terminal transitions
    // (one of them with a final artifact), all tasks at once.
    enum Outcome {
        Appended(Result<Vec<nexus_core::TaskEvent>, StoreError>),
        Ended(Result<(nexus_core::Task, Vec<nexus_core::TaskEvent>), StoreError>),
    }
    let mut handles = Vec::new();
    for task in &tasks {
        let id = task.id;
        for j in 0..APPENDS_PER_TASK {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let events = (0..=j % 3)
                    .map(|k| event(TaskEventKind::Log, &format!("{id} append {j}.{k}")))
                    .collect();
                (
                    id,
                    Outcome::Appended(store.append_task_events(t, id, events).await),
                )
            }));
        }
        for to in [TaskState::Completed, TaskState::Canceled, TaskState::Failed] {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let events = if to == TaskState::Completed {
                    vec![event(TaskEventKind::Artifact, &format!("{id} result"))]
                } else {
                    vec![]
                };
                let message = Some(format!("{id} {to}"));
                let result = store.transition_task(t, id, to, message, events).await;
                (id, Outcome::Ended(result))
            }));
        }
    }
    let mut told: BTreeMap<TaskId, Vec<nexus_core::TaskEvent>> = BTreeMap::new();
    let mut winners: BTreeMap<TaskId, nexus_core::Task> = BTreeMap::new();
    for handle in handles {
        let (id, outcome) = handle.await.unwrap();
        let events = match outcome {
            Outcome::Appended(Ok(events)) => events,
            Outcome::Appended(Err(StoreError::TaskEnded(ended))) => {
                assert_eq!(ended, id);
                continue;
            }
            Outcome::Ended(Ok((task, events))) => {
                assert!(task.state.is_terminal());
                assert_eq!(task.status_message, Some(format!("{id} {}", task.state)));
                assert!(winners.insert(id, task).is_none(), "two winners for {id}");
                events
            }
            Outcome::Ended(Err(StoreError::IllegalTransition(_))) => continue,
            Outcome::Appended(Err(other)) | Outcome::Ended(Err(other)) => panic!("{other:?}"),
        };
        // A call's events are consecutive in the log.
        for pair in events.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        assert!(events.iter().all(|e| e.task_id == id));
        told.entry(id).or_default().extend(events);
    }
    assert_eq!(winners.len(), TASKS, "every task ended exactly once");

    for task in &tasks {
        let log = store.list_task_events(t, task.id, 0, 1000).await.unwrap();
        assert_eq!(
            log.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=log.len() as u64).collect::<Vec<_>>(),
            "gapless"
        );
        // Every event a caller was told about is in the log, as told; the log holds nothing
        // else past the creation and the start.
        let mut told = told.remove(&task.id).unwrap_or_default();
        told.sort_by_key(|e| e.seq);
        let first_told = log.len() - told.len();
        assert_eq!(log[first_told..], told[..]);
        assert_eq!(
            first_told, 3,
            "the log before the race: created, message, working"
        );
        // The transition that won comes last: nothing was appended after the task ended.
        let last = log.last().unwrap();
        let winner = &winners[&task.id];
        assert_eq!(last.kind, TaskEventKind::Status);
        assert_eq!(last.payload["state"], winner.state.as_str());
        assert_eq!(store.get_task(t, task.id).await.unwrap(), *winner);
    }
}

/// A batch of writes where some are refused (deleted agent, another tenant's agent, a taken
/// id, an unknown task, an illegal transition) while the others go through: only the bad ones
/// fail, each with its own error, and they leave nothing behind.
pub async fn tasks_a_failing_write_fails_alone(store: Arc<dyn Store>) {
    const GOOD_CREATES: usize = 20;
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "globex").await;
    let a = agent(&*store, t, "echo").await;
    let doomed = agent(&*store, t, "doomed").await;
    let (existing, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    store
        .delete_agent(t, doomed, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();

    enum Write {
        Create(NewTask, TenantId),
        Transition(TaskId, TaskState, TenantId),
        Append(TaskId, TenantId),
    }
    let doomed_task = new_task(doomed, "s");
    let mut writes: Vec<Write> = (0..GOOD_CREATES)
        .map(|i| Write::Create(new_task(a, &format!("good {i}")), t))
        .collect();
    writes.extend([
        Write::Create(doomed_task.clone(), t),
        Write::Create(new_task(a, "wrong tenant"), other),
        Write::Create(
            NewTask {
                id: existing.id,
                ..new_task(a, "taken id")
            },
            t,
        ),
        Write::Transition(TaskId::new(), TaskState::Working, t),
        Write::Transition(existing.id, TaskState::Completed, t),
        Write::Append(existing.id, other),
        Write::Append(existing.id, t),
    ]);
    // Started together, so they queue up behind each other.
    let handles: Vec<_> = writes
        .into_iter()
        .map(|write| {
            let store = store.clone();
            tokio::spawn(async move {
                match write {
                    Write::Create(new, tenant) => store
                        .create_task(tenant, new, vec![event(TaskEventKind::Message, "hi")])
                        .await
                        .map(|(task, events)| (Some(task), events)),
                    Write::Transition(id, to, tenant) => store
                        .transition_task(tenant, id, to, None, vec![])
                        .await
                        .map(|(task, events)| (Some(task), events)),
                    Write::Append(id, tenant) => store
                        .append_task_events(tenant, id, vec![event(TaskEventKind::Log, "log")])
                        .await
                        .map(|events| (None, events)),
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    let bad = results.split_off(GOOD_CREATES);
    for result in results {
        let (task, events) = result.unwrap();
        let task = task.unwrap();
        assert_eq!(store.get_task(t, task.id).await.unwrap(), task);
        assert_eq!(
            store.list_task_events(t, task.id, 0, 100).await.unwrap(),
            events
        );
    }
    let mut bad = bad.into_iter();
    let mut next = || bad.next().unwrap();
    let deleted_agent = next();
    assert!(
        matches!(
            &deleted_agent,
            Err(StoreError::NotFound { kind: "agent", .. })
        ),
        "{deleted_agent:?}"
    );
    let wrong_tenant = next();
    assert!(
        matches!(
            &wrong_tenant,
            Err(StoreError::NotFound { kind: "agent", .. })
        ),
        "{wrong_tenant:?}"
    );
    let taken = next();
    assert!(
        matches!(&taken, Err(StoreError::AlreadyExists { kind: "task", .. })),
        "{taken:?}"
    );
    let unknown = next();
    assert!(
        matches!(&unknown, Err(StoreError::NotFound { kind: "task", .. })),
        "{unknown:?}"
    );
    let illegal = next();
    assert!(
        matches!(&illegal, Err(StoreError::IllegalTransition(_))),
        "{illegal:?}"
    );
    let foreign = next();
    assert!(
        matches!(&foreign, Err(StoreError::NotFound { kind: "task", .. })),
        "{foreign:?}"
    );
    let (_, appended) = next().unwrap();
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);

    // The refused writes left nothing: no task for the deleted agent or the other tenant, the
    // taken id still the first task's, its log its own.
    assert!(matches!(
        store.get_task(t, doomed_task.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .list_tasks(other, &TaskFilter::default(), PageRequest::first(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let listed = store
        .list_tasks(t, &TaskFilter::default(), PageRequest::first(100))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), GOOD_CREATES + 1);
    assert_eq!(store.get_task(t, existing.id).await.unwrap(), existing);
    let log = store
        .list_task_events(t, existing.id, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        log.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        [(1, TaskEventKind::Status), (2, TaskEventKind::Log)]
    );
}

pub async fn audit_chain_holds_under_concurrency(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let target_tenant = if i % 4 == 0 { other } else { t };
            tokio::spawn(async move {
                store
                    .append_audit(
                        target_tenant,
                        NewAuditEvent {
                            actor: "system".into(),
                            action: "agent.deploy".into(),
                            target: format!("agents/a{i}"),
                            details: json!({ "i": i }),
                        },
                    )
                    .await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    // Each chain starts with its tenant's creation.
    let events = store.list_audit(t, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1 + 9);
    assert_eq!(verify_chain(&events), Ok(()));
    let others = store.list_audit(other, 0, 100).await.unwrap();
    assert_eq!(others.len(), 1 + 3);
    assert_eq!(verify_chain(&others), Ok(()));

    let tail = store.list_audit(t, 8, 100).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![9, 10]);
}

/// Task writes (group-committed, on SQLite over a connection of their own) racing the other
/// writes, which read before they write: each must wait its turn, none may fail.
pub async fn writes_of_every_kind_interleave(store: Arc<dyn Store>) {
    const ROUNDS: usize = 20;
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "echo").await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let (task, _) = store.create_task(t, new_task(a, "s"), vec![]).await?;
                    store
                        .transition_task(t, task.id, TaskState::Working, None, vec![])
                        .await?;
                    store
                        .transition_task(t, task.id, TaskState::Completed, None, vec![])
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    let audit = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                let event = NewAuditEvent {
                    actor: "system".into(),
                    action: "agent.deploy".into(),
                    target: format!("agents/a{i}"),
                    details: json!({ "i": i }),
                };
                store.append_audit(t, event).await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    let deploys = {
        let store = store.clone();
        tokio::spawn(async move {
            // Plain deployments and audited ones, which lock the tenant's chain first.
            for i in 0..ROUNDS {
                let new = revision("echo", &format!("1.0.{i}"));
                if i % 2 == 0 {
                    store.deploy_revision(t, new).await?;
                } else {
                    deploy(&*store, t, new, Vec::new()).await?;
                }
            }
            Ok::<_, StoreError>(())
        })
    };
    let state = {
        let store = store.clone();
        tokio::spawn(async move {
            let scope = StateScope {
                tenant: t,
                agent: a,
                session: "s".into(),
            };
            for i in 0..ROUNDS {
                let previous = (i > 0).then(|| (i - 1).to_string().into_bytes());
                let swapped = store
                    .state_compare_and_swap(
                        &scope,
                        "n",
                        previous.as_deref(),
                        Some(i.to_string().as_bytes()),
                    )
                    .await?;
                assert!(swapped, "nobody else writes this key");
            }
            Ok::<_, StoreError>(())
        })
    };
    for handle in tasks.into_iter().chain([audit, deploys, state]) {
        handle.await.unwrap().unwrap();
    }
    let done = store
        .list_tasks(t, &TaskFilter::default(), PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(done.items.len(), 4 * ROUNDS);
    assert!(
        done.items
            .iter()
            .all(|task| task.state == TaskState::Completed)
    );
    let events = store.list_audit(t, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 1 + ROUNDS + ROUNDS / 2);
    assert_eq!(verify_chain(&events), Ok(()));
}

pub async fn state_is_scoped_and_compare_and_swap_is_atomic(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other_tenant = tenant(&*store, "other").await;
    let a = agent(&*store, t, "counter").await;
    let b = agent(&*store, t, "other").await;
    let scope = StateScope {
        tenant: t,
        agent: a,
        session: "s1".into(),
    };
    let other_session = StateScope {
        session: "s2".into(),
        ..scope.clone()
    };
    let other_agent = StateScope {
        agent: b,
        ..scope.clone()
    };
    let wrong_tenant = StateScope {
        tenant: other_tenant,
        ..scope.clone()
    };

    assert_eq!(store.state_get(&scope, "k").await.unwrap(), None);
    store.state_put(&scope, "k", b"v1").await.unwrap();
    store.state_put(&scope, "k", b"v2").await.unwrap();
    assert_eq!(
        store.state_get(&scope, "k").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    for isolated in [&other_session, &other_agent, &wrong_tenant] {
        assert_eq!(
            store.state_get(isolated, "k").await.unwrap(),
            None,
            "{isolated:?}"
        );
    }

    // Compare-and-swap, every combination.
    assert!(
        !store
            .state_compare_and_swap(&scope, "k", Some(b"v1"), Some(b"x"))
            .await
            .unwrap()
    );
    assert!(
        store
            .state_compare_and_swap(&scope, "k", Some(b"v2"), Some(b"v3"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .state_compare_and_swap(&scope, "k", None, Some(b"x"))
            .await
            .unwrap()
    );
    assert!(
        store
            .state_compare_and_swap(&scope, "new", None, Some(b"n"))
            .await
            .unwrap()
    );
    assert!(
        store
            .state_compare_and_swap(&scope, "new", Some(b"n"), None)
            .await
            .unwrap()
    );
    assert_eq!(store.state_get(&scope, "new").await.unwrap(), None);
    assert!(
        store
            .state_compare_and_swap(&scope, "absent", None, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .state_compare_and_swap(&scope, "k", None, None)
            .await
            .unwrap()
    );

    // Prefix listing is ordered, bounded, and treats LIKE wildcards literally.
    for key in ["user:2", "user:1", "user:10", "item:1", "user%x", "user_y"] {
        store.state_put(&scope, key, b"1").await.unwrap();
    }
    assert_eq!(
        store.state_list_keys(&scope, "user:", 10).await.unwrap(),
        vec!["user:1", "user:10", "user:2"]
    );
    assert_eq!(
        store
            .state_list_keys(&scope, "user:", 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.state_list_keys(&scope, "user%", 10).await.unwrap(),
        vec!["user%x"]
    );
    assert_eq!(
        store.state_list_keys(&other_session, "", 10).await.unwrap(),
        Vec::<String>::new()
    );

    store.state_delete(&scope, "item:1").await.unwrap();
    store.state_delete(&scope, "item:1").await.unwrap();
    assert_eq!(store.state_get(&scope, "item:1").await.unwrap(), None);

    // Concurrent read-modify-write loops through CAS lose no increment.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let scope = scope.clone();
            tokio::spawn(async move {
                loop {
                    let current = store.state_get(&scope, "count").await.unwrap();
                    let n: u64 = current
                        .as_deref()
                        .map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap());
                    let next = (n + 1).to_string();
                    if store
                        .state_compare_and_swap(
                            &scope,
                            "count",
                            current.as_deref(),
                            Some(next.as_bytes()),
                        )
                        .await
                        .unwrap()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(
        store.state_get(&scope, "count").await.unwrap().as_deref(),
        Some(&b"8"[..])
    );

    // Deleting the agent deletes its state.
    store
        .delete_agent(t, a, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();
    assert_eq!(store.state_get(&scope, "k").await.unwrap(), None);
}

fn sealed(name: &str, ciphertext: &[u8]) -> SealedSecret {
    SealedSecret {
        name: name.to_owned(),
        ciphertext: ciphertext.to_vec(),
    }
}

pub async fn secrets_deploy_with_the_revision_and_keep_earlier_ones(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    // Every byte value survives the round trip.
    let binary: Vec<u8> = (0..=255).collect();

    // The first deployment creates the agent with its secrets; the revision names what the
    // agent has (not what `new` claimed).
    let (agent, first) = deploy(
        &*store,
        t,
        revision("mailer", "1.0.0"),
        vec![sealed("token", b"t1"), sealed("api-key", &binary)],
    )
    .await
    .unwrap();
    assert_eq!((agent.current_revision, first.revision), (1, 1));
    assert_eq!(first.secret_names, vec!["api-key", "token"]);
    assert_eq!(
        store.get_secret(t, agent.id, "api-key").await.unwrap(),
        Some(binary.clone())
    );

    // A redeploy replaces one, adds one and keeps the other.
    let (_, second) = deploy(
        &*store,
        t,
        revision("mailer", "1.1.0"),
        vec![sealed("token", b"t2"), sealed("zeta", b"z")],
    )
    .await
    .unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!(second.secret_names, vec!["api-key", "token", "zeta"]);
    // Without secrets, every earlier one stays.
    let (agent, third) = deploy(&*store, t, revision("mailer", "1.2.0"), Vec::new())
        .await
        .unwrap();
    assert_eq!(agent.current_revision, 3);
    assert_eq!(third.secret_names, second.secret_names);
    assert_eq!(
        store.get_revision(t, agent.id, 3).await.unwrap(),
        third,
        "the revision is stored as returned"
    );
    assert_eq!(
        store.list_secrets(t, agent.id).await.unwrap(),
        vec![
            sealed("api-key", &binary),
            sealed("token", b"t2"),
            sealed("zeta", b"z")
        ]
    );
    // A plain deployment leaves secrets alone.
    store
        .deploy_revision(t, revision("mailer", "1.3.0"))
        .await
        .unwrap();
    assert_eq!(store.list_secrets(t, agent.id).await.unwrap().len(), 3);

    // Single-secret operations.
    store
        .put_secret(t, agent.id, sealed("extra", b"e1"))
        .await
        .unwrap();
    store
        .put_secret(t, agent.id, sealed("extra", b"e2"))
        .await
        .unwrap();
    assert_eq!(
        store.get_secret(t, agent.id, "extra").await.unwrap(),
        Some(b"e2".to_vec())
    );
    let names: Vec<String> = store
        .list_secret_names(t, agent.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["api-key", "extra", "token", "zeta"]);
    // Deleting is audited; deleting what is not there writes nothing, not even the event.
    let before = store.list_audit(t, 0, 1000).await.unwrap().len();
    let event = || audit_event("secret.delete", "agents/mailer/secrets/extra");
    assert!(
        store
            .delete_secret(t, agent.id, "extra", event())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_secret(t, agent.id, "extra", event())
            .await
            .unwrap()
    );
    let events = store.list_audit(t, 0, 1000).await.unwrap();
    assert_eq!(events.len(), before + 1);
    assert_eq!(events.last().unwrap().action, "secret.delete");
    assert_eq!(store.get_secret(t, agent.id, "extra").await.unwrap(), None);
    assert_eq!(store.get_secret(t, agent.id, "absent").await.unwrap(), None);

    // Deploying into a tenant that does not exist changes nothing.
    let missing = deploy(
        &*store,
        TenantId::new(),
        revision("ghost", "1.0.0"),
        vec![sealed("k", b"v")],
    )
    .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // Deleting the agent deletes its secrets.
    store
        .delete_agent(t, agent.id, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();
    assert_eq!(store.get_secret(t, agent.id, "token").await.unwrap(), None);
    assert!(store.list_secrets(t, agent.id).await.unwrap().is_empty());
    let gone = store.put_secret(t, agent.id, sealed("k", b"v")).await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
}

pub async fn secrets_are_scoped_to_tenant_and_agent(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let (a, _) = deploy(
        &*store,
        t,
        revision("a", "1.0.0"),
        vec![sealed("token", b"a")],
    )
    .await
    .unwrap();
    let (b, b_revision) = deploy(
        &*store,
        t,
        revision("b", "1.0.0"),
        vec![sealed("other", b"b")],
    )
    .await
    .unwrap();
    assert_eq!(b_revision.secret_names, vec!["other"]);
    assert_eq!(store.get_secret(t, b.id, "token").await.unwrap(), None);

    // Another tenant neither sees nor changes them, even knowing the agent's id.
    assert_eq!(store.get_secret(other, a.id, "token").await.unwrap(), None);
    assert!(store.list_secrets(other, a.id).await.unwrap().is_empty());
    assert!(
        store
            .list_secret_names(other, a.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .delete_secret(other, a.id, "token", audit_event("secret.delete", "x"))
            .await
            .unwrap()
    );
    let foreign = store
        .put_secret(other, a.id, sealed("token", b"evil"))
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound { .. })),
        "{foreign:?}"
    );
    assert_eq!(
        store.get_secret(t, a.id, "token").await.unwrap(),
        Some(b"a".to_vec())
    );
    let unknown = store
        .put_secret(t, AgentId::new(), sealed("token", b"x"))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    // The same agent name in another tenant is another agent with its own secrets.
    let (twin, twin_revision) = deploy(&*store, other, revision("a", "1.0.0"), Vec::new())
        .await
        .unwrap();
    assert_ne!(twin.id, a.id);
    assert!(twin_revision.secret_names.is_empty());
}

pub async fn tenant_keys_are_stored_once(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    assert_eq!(store.get_tenant_key(t).await.unwrap(), None);
    assert_eq!(store.put_tenant_key(t, b"first").await.unwrap(), b"first");
    // The first key stays: a second one would orphan everything sealed under the first.
    assert_eq!(store.put_tenant_key(t, b"second").await.unwrap(), b"first");
    assert_eq!(
        store.get_tenant_key(t).await.unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(store.get_tenant_key(other).await.unwrap(), None);
    let missing = store.put_tenant_key(TenantId::new(), b"x").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // Racing first uses agree on one key.
    let racers: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_tenant_key(other, &[i; 8]).await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.push(racer.await.unwrap());
    }
    winners.dedup();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.get_tenant_key(other).await.unwrap(),
        Some(winners[0].clone())
    );
}

fn push_config(task: TaskId, id: &str, url: &str) -> PushConfig {
    PushConfig {
        task_id: task,
        id: id.to_owned(),
        protocol_version: "1.0".to_owned(),
        url: url.to_owned(),
        token: Some(b"sealed-token".to_vec()),
        auth_scheme: Some("Bearer".to_owned()),
        auth_credentials: Some(b"sealed-credentials".to_vec()),
        created_at: chrono::Utc::now(),
    }
}

pub async fn push_configs_put_get_list_delete(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "acme").await;
    let a = agent(store.as_ref(), t, "notifier").await;
    let (task, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    let task = task.id;
    const LIMIT: usize = 2;

    let first = store
        .put_push_config(t, push_config(task, "one", "https://a.example/hook"), LIMIT)
        .await
        .unwrap();
    assert_eq!(first.id, "one");
    assert_eq!(first.token.as_deref(), Some(&b"sealed-token"[..]));
    assert_eq!(store.get_push_config(t, task, "one").await.unwrap(), first);

    // Putting the same id replaces the config and keeps its creation time.
    let replaced = store
        .put_push_config(
            t,
            PushConfig {
                token: None,
                auth_scheme: None,
                auth_credentials: None,
                protocol_version: "0.3".to_owned(),
                ..push_config(task, "one", "https://b.example/hook")
            },
            LIMIT,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            replaced.url.as_str(),
            replaced.token.as_ref(),
            replaced.auth_scheme.as_ref()
        ),
        ("https://b.example/hook", None, None)
    );
    assert_eq!(replaced.protocol_version, "0.3");
    assert_eq!(replaced.created_at, first.created_at);

    let second = store
        .put_push_config(t, push_config(task, "two", "https://c.example/hook"), LIMIT)
        .await
        .unwrap();
    let listed = store.list_push_configs(t, task).await.unwrap();
    assert_eq!(listed, vec![replaced.clone(), second.clone()]);

    // The limit counts the task's other configs: a third is refused, a replacement is not.
    let third = store
        .put_push_config(t, push_config(task, "three", "https://d.example/"), LIMIT)
        .await;
    assert!(
        matches!(third, Err(StoreError::TooMany { limit: LIMIT, .. })),
        "{third:?}"
    );
    store
        .put_push_config(t, push_config(task, "two", "https://e.example/"), LIMIT)
        .await
        .unwrap();

    assert!(store.delete_push_config(t, task, "one").await.unwrap());
    assert!(!store.delete_push_config(t, task, "one").await.unwrap());
    let gone = store.get_push_config(t, task, "one").await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
    assert_eq!(store.list_push_configs(t, task).await.unwrap().len(), 1);

    // Concurrent puts of distinct ids stop at the limit.
    let (racy, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let config = push_config(racy.id, &format!("c{i}"), "https://a.example/");
            tokio::spawn(async move { store.put_push_config(t, config, LIMIT).await })
        })
        .collect();
    let mut stored = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::TooMany { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stored, LIMIT);
    assert_eq!(
        store.list_push_configs(t, racy.id).await.unwrap().len(),
        LIMIT
    );

    let missing = store
        .put_push_config(
            t,
            push_config(TaskId::new(), "x", "https://a.example/"),
            LIMIT,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

pub async fn push_configs_are_scoped_and_go_with_their_task(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "acme").await;
    let other = tenant(store.as_ref(), "globex").await;
    let a = agent(store.as_ref(), t, "notifier").await;
    let (task, _) = store
        .create_task(t, new_task(a, "s"), vec![])
        .await
        .unwrap();
    let task = task.id;
    store
        .put_push_config(t, push_config(task, "one", "https://a.example/"), 10)
        .await
        .unwrap();

    // Another tenant sees nothing and changes nothing, even knowing the task id.
    let get = store.get_push_config(other, task, "one").await;
    assert!(matches!(get, Err(StoreError::NotFound { .. })), "{get:?}");
    assert!(
        store
            .list_push_configs(other, task)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.delete_push_config(other, task, "one").await.unwrap());
    let put = store
        .put_push_config(
            other,
            push_config(task, "evil", "https://evil.example/"),
            10,
        )
        .await;
    assert!(matches!(put, Err(StoreError::NotFound { .. })), "{put:?}");
    assert_eq!(store.list_push_configs(t, task).await.unwrap().len(), 1);

    // Deleting the agent deletes its tasks and their configs.
    store
        .delete_agent(t, a, audit_event("agent.delete", "agents/x"))
        .await
        .unwrap();
    let gone = store.get_push_config(t, task, "one").await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
    assert!(store.list_push_configs(t, task).await.unwrap().is_empty());
}

/// A key named `name` whose secret hashes to the hex of `hash_seed` (64 characters, as the
/// sha256 the control plane stores).
fn new_key(name: &str, hash_seed: u8) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        name: name.to_owned(),
        role: Role::Developer,
        platform_admin: false,
        prefix: format!("nxk_{name}"),
        secret_hash: format!("{hash_seed:02x}").repeat(32),
        created_by: "system".to_owned(),
        expires_at: None,
        user_id: None,
        service_account: None,
        teams: Vec::new(),
    }
}

fn key_event(action: &str, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "system".into(),
        action: action.into(),
        target: target.into(),
        details: json!({ "target": target }),
    }
}

async fn create_key(store: &dyn Store, t: TenantId, new: NewApiKey) -> ApiKey {
    let target = format!("api-keys/{}", new.id);
    store
        .create_api_key(t, new, key_event("api_key.create", &target))
        .await
        .unwrap()
}

pub async fn api_keys_create_get_and_list_by_page(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let expires = nexus_core::page::now() + chrono::Duration::days(30);
    let mut created = Vec::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let mut new = new_key(&format!("key{i}"), i as u8);
        new.role = role;
        new.platform_admin = role == Role::Owner;
        new.expires_at = (i % 2 == 0).then_some(expires);
        new.created_by = format!("key:{i}");
        let before = nexus_core::page::now();
        let key = create_key(&*store, t, new.clone()).await;
        assert_eq!(
            key,
            ApiKey {
                created_at: key.created_at,
                ..new.into_key(t)
            }
        );
        assert!(key.created_at >= before);
        assert_eq!(store.get_api_key(t, key.id).await.unwrap(), key);
        created.push(key);
    }
    create_key(&*store, other, new_key("elsewhere", 99)).await;

    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_api_keys(t, page.clone()).await.unwrap();
        assert!(result.items.len() <= 2);
        seen.extend(result.items);
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(Some(cursor), 2),
            None => break,
        }
    }
    assert_eq!(
        seen, created,
        "every key of the tenant once, in creation order"
    );

    assert!(matches!(
        store.get_api_key(t, ApiKeyId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
    let bad = PageRequest::after(Some(Cursor("not-a-cursor".into())), 10);
    assert!(matches!(
        store.list_api_keys(t, bad).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

pub async fn api_keys_are_found_by_hash_in_any_tenant(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let mine = create_key(&*store, t, new_key("mine", 1)).await;
    let theirs = create_key(
        &*store,
        other,
        NewApiKey {
            teams: vec![name("ops"), name("sre")],
            ..new_key("theirs", 2)
        },
    )
    .await;
    assert_eq!(theirs.teams, [name("ops"), name("sre")]);

    let hash = |seed: u8| format!("{seed:02x}").repeat(32);
    assert_eq!(
        store.find_api_key_by_hash(&hash(1)).await.unwrap(),
        Some(mine.clone())
    );
    assert_eq!(
        store.find_api_key_by_hash(&hash(2)).await.unwrap(),
        Some(theirs)
    );
    assert_eq!(store.find_api_key_by_hash(&hash(3)).await.unwrap(), None);
    assert_eq!(store.find_api_key_by_hash("").await.unwrap(), None);

    // A revoked key is still found: refusing it is the caller's decision.
    let revoked = store
        .revoke_api_key(t, mine.id, key_event("api_key.revoke", "api-keys/mine"))
        .await
        .unwrap();
    assert_eq!(
        store.find_api_key_by_hash(&hash(1)).await.unwrap(),
        Some(revoked)
    );
}

pub async fn api_keys_hash_and_id_are_unique_across_tenants(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let first = create_key(&*store, t, new_key("first", 1)).await;

    for target in [t, other] {
        let same_hash = store
            .create_api_key(
                target,
                new_key("again", 1),
                key_event("api_key.create", "x"),
            )
            .await;
        assert!(
            matches!(same_hash, Err(StoreError::AlreadyExists { .. })),
            "{same_hash:?}"
        );
        let mut same_id = new_key("again", 2);
        same_id.id = first.id;
        let same_id = store
            .create_api_key(target, same_id, key_event("api_key.create", "x"))
            .await;
        assert!(
            matches!(same_id, Err(StoreError::AlreadyExists { .. })),
            "{same_id:?}"
        );
    }
    assert_eq!(
        store
            .list_api_keys(t, PageRequest::first(10))
            .await
            .unwrap()
            .items,
        [first]
    );
    assert!(
        store
            .list_api_keys(other, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// The key and its audit event are one write: when the key is refused, so is the event.
pub async fn api_keys_failed_create_leaves_no_audit_event(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    create_key(&*store, t, new_key("first", 1)).await;
    for target in [t, other] {
        let duplicate = store
            .create_api_key(
                target,
                new_key("duplicate", 1),
                key_event("api_key.create", "api-keys/duplicate"),
            )
            .await;
        assert!(
            matches!(duplicate, Err(StoreError::AlreadyExists { .. })),
            "{duplicate:?}"
        );
    }
    let events = store.list_audit(t, 0, 100).await.unwrap();
    assert_eq!(
        events.len(),
        2,
        "the tenant's creation and the key's: {events:?}"
    );
    assert_eq!(
        events[1].target,
        format!(
            "api-keys/{}",
            store
                .list_api_keys(t, PageRequest::first(10))
                .await
                .unwrap()
                .items[0]
                .id
        )
    );
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);

    // The chain goes on from the last event, without a gap where the refused one was.
    store
        .append_audit(t, key_event("tenant.update", "tenants/acme"))
        .await
        .unwrap();
    let events = store.list_audit(t, 0, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(verify_chain(&events), Ok(()));

    // Nor does a key in a tenant that does not exist leave anything behind.
    let missing = store
        .create_api_key(
            TenantId::new(),
            new_key("ghost", 9),
            key_event("api_key.create", "x"),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(
        store
            .find_api_key_by_hash(&format!("{:02x}", 9).repeat(32))
            .await
            .unwrap(),
        None
    );
}

pub async fn api_keys_are_isolated_by_tenant(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let theirs = create_key(&*store, other, new_key("theirs", 1)).await;

    assert!(matches!(
        store.get_api_key(t, theirs.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let revoke = store
        .revoke_api_key(t, theirs.id, key_event("api_key.revoke", "api-keys/theirs"))
        .await;
    assert!(
        matches!(revoke, Err(StoreError::NotFound { .. })),
        "{revoke:?}"
    );
    let unknown = store
        .revoke_api_key(
            other,
            ApiKeyId::new(),
            key_event("api_key.revoke", "api-keys/none"),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );

    // The refused revocations changed nothing and recorded nothing.
    assert_eq!(store.get_api_key(other, theirs.id).await.unwrap(), theirs);
    assert_eq!(audit_actions(&*store, t).await, ["tenant.create"]);
    assert_eq!(
        audit_actions(&*store, other).await,
        ["tenant.create", "api_key.create"]
    );
    assert!(
        store
            .list_api_keys(t, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn api_keys_revoke_keeps_the_first_time(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let key = create_key(&*store, t, new_key("ci", 1)).await;
    let untouched = create_key(&*store, t, new_key("laptop", 2)).await;

    let before = nexus_core::page::now();
    let revoked = store
        .revoke_api_key(t, key.id, key_event("api_key.revoke", "api-keys/ci"))
        .await
        .unwrap();
    let first = revoked.revoked_at.expect("revocation sets revoked_at");
    assert!(first >= before);
    assert_eq!(
        revoked,
        ApiKey {
            revoked_at: Some(first),
            ..key.clone()
        }
    );
    assert!(!revoked.is_active(nexus_core::page::now()));
    assert_eq!(store.get_api_key(t, key.id).await.unwrap(), revoked);

    // Wait for the clock to move past the first revocation (an event, not a guessed delay), so
    // a second revocation that overwrote the time would show.
    while nexus_core::page::now() <= first {
        tokio::task::yield_now().await;
    }
    let again = store
        .revoke_api_key(t, key.id, key_event("api_key.revoke", "api-keys/ci"))
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first),
        "the first revocation time stays"
    );
    assert_eq!(store.get_api_key(t, key.id).await.unwrap(), revoked);
    assert_eq!(store.get_api_key(t, untouched.id).await.unwrap(), untouched);

    // Each revocation is recorded, the repeated one too.
    let events = store.list_audit(t, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        [
            "tenant.create",
            "api_key.create",
            "api_key.create",
            "api_key.revoke",
            "api_key.revoke"
        ]
    );
    assert_eq!(verify_chain(&events), Ok(()));
}

pub async fn api_keys_any_key_only_after_a_create(store: Arc<dyn Store>) {
    assert!(!store.any_api_key().await.unwrap());
    let t = tenant(&*store, "acme").await;
    assert!(!store.any_api_key().await.unwrap(), "a tenant is not a key");
    let key = create_key(&*store, t, new_key("bootstrap", 1)).await;
    assert!(store.any_api_key().await.unwrap());
    store
        .revoke_api_key(t, key.id, key_event("api_key.revoke", "api-keys/bootstrap"))
        .await
        .unwrap();
    assert!(
        store.any_api_key().await.unwrap(),
        "a revoked key still exists"
    );
}

/// Key writes and plain appends share one chain per tenant: each key write adds exactly its
/// own event, in its own tenant, and the chain verifies.
pub async fn api_keys_writes_are_audited_in_their_tenant(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;

    // The chain starts with the tenant's creation.
    let new = new_key("ci", 1);
    let id = new.id;
    let created = store
        .create_api_key(
            t,
            new,
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "api_key.create".into(),
                target: format!("api-keys/{id}"),
                details: json!({ "name": "ci", "role": "developer" }),
            },
        )
        .await
        .unwrap();
    let theirs = create_key(&*store, other, new_key("theirs", 2)).await;
    store
        .revoke_api_key(
            t,
            created.id,
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "api_key.revoke".into(),
                target: format!("api-keys/{id}"),
                details: json!({}),
            },
        )
        .await
        .unwrap();
    store
        .append_audit(t, key_event("agent.deploy", "agents/echo"))
        .await
        .unwrap();

    let events = store.list_audit(t, 0, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.action.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "tenant.create"),
            (2, "api_key.create"),
            (3, "api_key.revoke"),
            (4, "agent.deploy")
        ]
    );
    assert!(events.iter().all(|e| e.tenant_id == t));
    assert_eq!(events[1].actor, "key:admin");
    assert_eq!(events[1].target, format!("api-keys/{id}"));
    assert_eq!(
        events[1].details,
        json!({ "name": "ci", "role": "developer" })
    );
    assert_eq!(events[2].target, format!("api-keys/{id}"));
    assert_eq!(verify_chain(&events), Ok(()));

    let others = store.list_audit(other, 0, 100).await.unwrap();
    assert_eq!(others.len(), 2);
    assert_eq!(others[0].action, "tenant.create");
    assert_eq!(others[1].action, "api_key.create");
    assert_eq!(others[1].target, format!("api-keys/{}", theirs.id));
    assert_eq!(others[1].tenant_id, other);
    assert_eq!(verify_chain(&others), Ok(()));
}

/// Key creations, revocations and plain appends racing in one tenant: none fails or deadlocks,
/// and the chain has one event per write, without gaps.
pub async fn api_keys_concurrent_writes_keep_the_chain(store: Arc<dyn Store>) {
    const WRITERS: u8 = 6;
    let t = tenant(&*store, "acme").await;
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = store
                    .create_api_key(
                        t,
                        new_key(&format!("k{i}"), i),
                        key_event("api_key.create", "k"),
                    )
                    .await?;
                store
                    .append_audit(t, key_event("agent.deploy", "agents/echo"))
                    .await?;
                store
                    .revoke_api_key(t, key.id, key_event("api_key.revoke", "k"))
                    .await?;
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let events = store.list_audit(t, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 1 + 3 * usize::from(WRITERS));
    assert_eq!(verify_chain(&events), Ok(()));
    let keys = store
        .list_api_keys(t, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(keys.items.len(), usize::from(WRITERS));
    assert!(keys.items.iter().all(|k| k.revoked_at.is_some()));
}

/// A tenant's creation is the first event of its own chain; a refused creation records
/// nothing and creates nothing.
pub async fn tenants_create_is_audited_in_the_new_tenant(store: Arc<dyn Store>) {
    let created = store
        .create_tenant(
            NewTenant {
                name: name("acme"),
                display_name: "Acme Corp".into(),
            },
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "tenant.create".into(),
                target: "tenants/acme".into(),
                details: json!({ "display_name": "Acme Corp" }),
            },
        )
        .await
        .unwrap();
    let events = chain(&*store, created.id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let first = &events[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, nexus_core::audit::GENESIS_HASH);
    assert_eq!(
        (
            first.actor.as_str(),
            first.action.as_str(),
            first.target.as_str()
        ),
        ("key:admin", "tenant.create", "tenants/acme")
    );
    assert_eq!(first.details, json!({ "display_name": "Acme Corp" }));

    // Another tenant's creation starts another chain.
    let other = tenant(&*store, "other").await;
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);

    // A taken name: refused, nothing created, nothing recorded in any chain.
    let taken = store
        .create_tenant(
            NewTenant {
                name: name("acme"),
                display_name: "Impostor".into(),
            },
            audit_event("tenant.create", "tenants/acme"),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    assert_eq!(chain(&*store, created.id).await, events);
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);
    let tenants = store.list_tenants(PageRequest::first(10)).await.unwrap();
    assert_eq!(
        tenants.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        [created.id, other]
    );
    assert_eq!(
        store.get_tenant_by_name(&name("acme")).await.unwrap(),
        created
    );
}

/// Each deployment appends one event, whose details the store completes with the revision
/// number it assigned; a refused deployment records nothing.
pub async fn agents_deploy_is_audited_with_its_revision(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let details = json!({ "package": "acme/echo@1.0.0", "grants": { "capabilities": ["state"] } });
    let (agent, first) = store
        .deploy_revision_with_secrets(
            t,
            revision("echo", "1.0.0"),
            vec![sealed("token", b"t")],
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "agent.deploy".into(),
                target: "agents/echo".into(),
                details: details.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.revision, 1);
    let events = chain(&*store, t).await;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["tenant.create", "agent.deploy"]
    );
    assert_eq!(events[1].target, "agents/echo");
    assert_eq!(
        events[1].details,
        json!({
            "package": "acme/echo@1.0.0",
            "grants": { "capabilities": ["state"] },
            "revision": 1
        })
    );

    // The next revision's event names the next number, also after a rollback; a `revision`
    // the caller put in the details is replaced by the one assigned.
    store
        .set_current_revision(t, agent.id, 1, audit_event("agent.rollback", "agents/echo"))
        .await
        .unwrap();
    let mut stale = audit_event("agent.deploy", "agents/echo");
    stale.details = json!({ "revision": 1, "note": "kept" });
    let (_, second) = store
        .deploy_revision_with_secrets(t, revision("echo", "1.1.0"), Vec::new(), stale)
        .await
        .unwrap();
    assert_eq!(second.revision, 2);
    // Details that are not an object are wrapped.
    let mut bare = audit_event("agent.deploy", "agents/echo");
    bare.details = json!("v1.2");
    let (_, third) = store
        .deploy_revision_with_secrets(t, revision("echo", "1.2.0"), Vec::new(), bare)
        .await
        .unwrap();
    assert_eq!(third.revision, 3);
    let events = chain(&*store, t).await;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        [
            "tenant.create",
            "agent.deploy",
            "agent.rollback",
            "agent.deploy",
            "agent.deploy"
        ]
    );
    assert_eq!(events[3].details, json!({ "revision": 2, "note": "kept" }));
    assert_eq!(
        events[4].details,
        json!({ "details": "v1.2", "revision": 3 })
    );
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);

    // A deployment into a tenant that does not exist stores nothing and records nothing.
    let ghost = TenantId::new();
    let missing = deploy(&*store, ghost, revision("echo", "1.0.0"), Vec::new()).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(store.list_audit(ghost, 0, 100).await.unwrap().is_empty());
    assert_eq!(chain(&*store, t).await.len(), 5);
}

/// A rollback appends one event; one the store refuses (no such revision, another tenant's
/// agent) records nothing and changes nothing.
pub async fn agents_rollback_is_audited_and_a_refused_one_is_not(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let (agent, _) = deploy(&*store, t, revision("echo", "1.0.0"), Vec::new())
        .await
        .unwrap();
    deploy(&*store, t, revision("echo", "1.1.0"), Vec::new())
        .await
        .unwrap();
    let before = chain(&*store, t).await;
    assert_eq!(before.len(), 3);

    let rolled = store
        .set_current_revision(
            t,
            agent.id,
            1,
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "agent.rollback".into(),
                target: "agents/echo".into(),
                details: json!({ "from": 2, "to": 1 }),
            },
        )
        .await
        .unwrap();
    assert_eq!(rolled.current_revision, 1);
    let events = chain(&*store, t).await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[..3], before[..]);
    assert_eq!(events[3].action, "agent.rollback");
    assert_eq!(events[3].details, json!({ "from": 2, "to": 1 }));

    // No such revision.
    let unknown = store
        .set_current_revision(t, agent.id, 9, audit_event("agent.rollback", "agents/echo"))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    // Another tenant's agent, by id.
    let foreign = store
        .set_current_revision(
            other,
            agent.id,
            2,
            audit_event("agent.rollback", "agents/echo"),
        )
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound { .. })),
        "{foreign:?}"
    );
    assert_eq!(chain(&*store, t).await, events);
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);
    assert_eq!(
        store.get_agent(t, &name("echo")).await.unwrap(),
        rolled,
        "the refused rollbacks changed nothing"
    );
}

/// Deleting an agent appends one event; a refused deletion (another tenant's agent, an agent
/// already gone) records nothing and deletes nothing.
pub async fn agents_delete_is_audited_and_a_refused_one_is_not(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let (agent, _) = deploy(&*store, t, revision("echo", "1.0.0"), Vec::new())
        .await
        .unwrap();

    // Another tenant deleting it by id: not found there, and the agent stays.
    let foreign = store
        .delete_agent(other, agent.id, audit_event("agent.delete", "agents/echo"))
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound { .. })),
        "{foreign:?}"
    );
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);
    assert_eq!(
        audit_actions(&*store, t).await,
        ["tenant.create", "agent.deploy"]
    );
    assert_eq!(
        store.get_agent_by_id(t, agent.id).await.unwrap().id,
        agent.id
    );

    store
        .delete_agent(
            t,
            agent.id,
            NewAuditEvent {
                actor: "key:admin".into(),
                action: "agent.delete".into(),
                target: "agents/echo".into(),
                details: json!({ "agent_id": agent.id }),
            },
        )
        .await
        .unwrap();
    let events = chain(&*store, t).await;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["tenant.create", "agent.deploy", "agent.delete"]
    );
    assert_eq!(events[2].details, json!({ "agent_id": agent.id }));
    assert!(matches!(
        store.get_agent_by_id(t, agent.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // Gone already: refused, and recorded once only.
    let again = store
        .delete_agent(t, agent.id, audit_event("agent.delete", "agents/echo"))
        .await;
    assert!(
        matches!(again, Err(StoreError::NotFound { .. })),
        "{again:?}"
    );
    assert_eq!(chain(&*store, t).await, events);
}

/// Each upload appends one event, a repeated identical one too; an upload refused for a
/// conflicting digest records nothing.
pub async fn packages_put_is_audited_and_a_conflicting_one_is_not(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let reference: PackageRef = "acme/echo@1.0.0".parse().unwrap();
    let new = NewPackage {
        reference: reference.clone(),
        digest: "sha256:aaaa".into(),
        size_bytes: 10,
        manifest: json!({ "name": "echo" }),
    };
    let upload = || NewAuditEvent {
        actor: "key:admin".into(),
        action: "package.upload".into(),
        target: format!("packages/{reference}"),
        details: json!({ "digest": "sha256:aaaa" }),
    };
    let stored = store.put_package(t, new.clone(), upload()).await.unwrap();
    let events = chain(&*store, t).await;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["tenant.create", "package.upload"]
    );
    assert_eq!(events[1].target, "packages/acme/echo@1.0.0");
    assert_eq!(events[1].details, json!({ "digest": "sha256:aaaa" }));

    // The same package again: stored once, uploaded (and recorded) twice.
    assert_eq!(
        store.put_package(t, new.clone(), upload()).await.unwrap(),
        stored
    );
    assert_eq!(
        audit_actions(&*store, t).await,
        ["tenant.create", "package.upload", "package.upload"]
    );

    // Another digest for the version once it is published: refused, nothing recorded.
    let stored = store
        .publish_package(
            t,
            "sha256:aaaa",
            audit_event("package.publish", "packages/acme/echo@1.0.0"),
        )
        .await
        .unwrap();
    let conflicting = store
        .put_package(
            t,
            NewPackage {
                digest: "sha256:bbbb".into(),
                ..new.clone()
            },
            audit_event("package.upload", "packages/acme/echo@1.0.0"),
        )
        .await;
    assert!(
        matches!(conflicting, Err(StoreError::AlreadyExists { .. })),
        "{conflicting:?}"
    );
    assert_eq!(
        audit_actions(&*store, t).await,
        [
            "tenant.create",
            "package.upload",
            "package.upload",
            "package.publish"
        ]
    );
    assert_eq!(store.get_package(t, &reference).await.unwrap(), stored);

    // Nor does an upload into a tenant that does not exist.
    let ghost = TenantId::new();
    let missing = store.put_package(ghost, new.clone(), upload()).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(store.list_audit(ghost, 0, 100).await.unwrap().is_empty());
    assert_eq!(audit_actions(&*store, other).await, ["tenant.create"]);
}

/// Every kind of audited write racing in one tenant, with plain appends and task writes on
/// the tenant's agents: none fails or deadlocks, and the chain has one event per write,
/// without gaps.
pub async fn audited_writes_race_and_keep_the_chain(store: Arc<dyn Store>) {
    const ROUNDS: usize = 8;
    let t = tenant(&*store, "acme").await;
    let worker = deploy(&*store, t, revision("worker", "1.0.0"), Vec::new())
        .await
        .unwrap()
        .0
        .id;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let agent = format!("a{w}");
                for i in 0..ROUNDS {
                    let (deployed, _) = deploy(
                        &*store,
                        t,
                        revision(&agent, &format!("1.0.{i}")),
                        vec![sealed("token", b"t")],
                    )
                    .await?;
                    store
                        .set_current_revision(
                            t,
                            deployed.id,
                            1,
                            audit_event("agent.rollback", &agent),
                        )
                        .await?;
                    store
                        .put_package(
                            t,
                            NewPackage {
                                reference: format!("acme/{agent}@1.0.{i}").parse().unwrap(),
                                digest: format!("sha256:{w}{i}"),
                                size_bytes: 1,
                                manifest: json!({}),
                            },
                            audit_event("package.upload", &agent),
                        )
                        .await?;
                    store
                        .append_audit(t, audit_event("agent.invoke", &agent))
                        .await?;
                }
                store
                    .delete_agent(
                        t,
                        store.get_agent(t, &name(&agent)).await?.id,
                        audit_event("agent.delete", &agent),
                    )
                    .await
            })
        })
        .collect();
    let tasks = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..ROUNDS * 4 {
                let (task, _) = store.create_task(t, new_task(worker, "s"), vec![]).await?;
                store
                    .transition_task(t, task.id, TaskState::Working, None, vec![])
                    .await?;
                store
                    .transition_task(t, task.id, TaskState::Completed, None, vec![])
                    .await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    tasks.await.unwrap().unwrap();
    let events = chain(&*store, t).await;
    // The tenant, the worker, four writes per round per writer and a deletion per writer.
    assert_eq!(events.len(), 2 + 4 * (4 * ROUNDS + 1));
    assert!(
        store
            .list_agents(t, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .iter()
            .all(|a| a.id == worker)
    );
}

/// A policy named `n`, with text that names it (the store keeps text as written).
fn new_policy(n: &str) -> NewPolicy {
    NewPolicy {
        id: PolicyId::new(),
        name: name(n),
        description: format!("the {n} policy"),
        text: format!("permit(principal, action == Action::\"{n}\", resource);"),
        created_by: "key:admin".to_owned(),
    }
}

async fn create_policy(
    store: &dyn Store,
    t: TenantId,
    new: NewPolicy,
    max_per_tenant: usize,
) -> Result<Policy, StoreError> {
    let target = format!("policies/{}", new.name);
    store
        .create_policy(
            t,
            new,
            max_per_tenant,
            audit_event("policy.create", &target),
        )
        .await
}

async fn delete_policy(store: &dyn Store, t: TenantId, n: &str) -> Result<Policy, StoreError> {
    store
        .delete_policy(
            t,
            &name(n),
            audit_event("policy.delete", &format!("policies/{n}")),
        )
        .await
}

pub async fn policies_create_and_list_in_creation_order(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    assert!(store.list_policies(t).await.unwrap().is_empty());
    let mut created = Vec::new();
    // Names out of alphabetical order: the listing follows creation, not names.
    for n in ["zeta", "alpha", "mid"] {
        let new = new_policy(n);
        let before = nexus_core::page::now();
        let policy = create_policy(&*store, t, new.clone(), 10).await.unwrap();
        assert_eq!(
            policy,
            Policy {
                created_at: policy.created_at,
                ..new.into_policy(t)
            }
        );
        assert!(policy.created_at >= before);
        created.push(policy);
    }
    assert_eq!(store.list_policies(t).await.unwrap(), created);

    let events = chain(&*store, t).await;
    assert_eq!(
        events
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str()))
            .collect::<Vec<_>>(),
        [
            ("tenant.create", "tenants/acme"),
            ("policy.create", "policies/zeta"),
            ("policy.create", "policies/alpha"),
            ("policy.create", "policies/mid")
        ]
    );
    assert_eq!(events[1].actor, "key:admin");
    assert_eq!(events[1].details, json!({ "target": "policies/zeta" }));
}

/// A policy and its audit event are one write: when the policy is refused, so is the event.
pub async fn policies_duplicate_name_is_refused_without_an_event(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let first = create_policy(&*store, t, new_policy("readers"), 10)
        .await
        .unwrap();

    let duplicate = create_policy(&*store, t, new_policy("readers"), 10).await;
    assert!(
        matches!(
            duplicate,
            Err(StoreError::AlreadyExists { kind: "policy", .. })
        ),
        "{duplicate:?}"
    );
    // At the limit too, a taken name is a duplicate, not one policy too many.
    let at_limit = create_policy(&*store, t, new_policy("readers"), 1).await;
    assert!(
        matches!(
            at_limit,
            Err(StoreError::AlreadyExists { kind: "policy", .. })
        ),
        "{at_limit:?}"
    );
    assert_eq!(
        store.list_policies(t).await.unwrap(),
        std::slice::from_ref(&first)
    );
    assert_eq!(
        audit_actions(&*store, t).await,
        ["tenant.create", "policy.create"]
    );

    // The same name in another tenant is another policy.
    let theirs = create_policy(&*store, other, new_policy("readers"), 10)
        .await
        .unwrap();
    assert_eq!(theirs.tenant_id, other);
    assert_eq!(store.list_policies(other).await.unwrap(), [theirs]);
    assert_eq!(store.list_policies(t).await.unwrap(), [first]);

    // Nor does a policy in a tenant that does not exist leave anything behind.
    let ghost = TenantId::new();
    let missing = create_policy(&*store, ghost, new_policy("readers"), 10).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(store.list_policies(ghost).await.unwrap().is_empty());
    assert!(store.list_audit(ghost, 0, 100).await.unwrap().is_empty());

    // The chain goes on from the last event, without a gap where the refused ones were.
    create_policy(&*store, t, new_policy("writers"), 10)
        .await
        .unwrap();
    let events = chain(&*store, t).await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        audit_actions(&*store, other).await,
        ["tenant.create", "policy.create"]
    );
}

pub async fn policies_past_the_limit_are_refused_without_an_event(store: Arc<dyn Store>) {
    const LIMIT: usize = 2;
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let mut created = Vec::new();
    for n in ["one", "two"] {
        created.push(
            create_policy(&*store, t, new_policy(n), LIMIT)
                .await
                .unwrap(),
        );
    }
    let third = create_policy(&*store, t, new_policy("three"), LIMIT).await;
    assert!(
        matches!(
            third,
            Err(StoreError::TooMany {
                kind: "policies",
                limit: LIMIT
            })
        ),
        "{third:?}"
    );
    assert_eq!(store.list_policies(t).await.unwrap(), created);
    assert_eq!(
        audit_actions(&*store, t).await,
        ["tenant.create", "policy.create", "policy.create"]
    );

    // The limit is per tenant: another tenant's policies do not count.
    for n in ["one", "two"] {
        create_policy(&*store, other, new_policy(n), LIMIT)
            .await
            .unwrap();
    }

    // A deletion makes room again.
    delete_policy(&*store, t, "one").await.unwrap();
    let three = create_policy(&*store, t, new_policy("three"), LIMIT)
        .await
        .unwrap();
    assert_eq!(
        store.list_policies(t).await.unwrap(),
        [created[1].clone(), three]
    );
    assert_eq!(
        audit_actions(&*store, t).await,
        [
            "tenant.create",
            "policy.create",
            "policy.create",
            "policy.delete",
            "policy.create"
        ]
    );
    assert_eq!(store.list_policies(other).await.unwrap().len(), LIMIT);
}

pub async fn policies_are_isolated_by_tenant(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let theirs = create_policy(&*store, other, new_policy("secret"), 10)
        .await
        .unwrap();

    assert!(store.list_policies(t).await.unwrap().is_empty());
    let delete = delete_policy(&*store, t, "secret").await;
    assert!(
        matches!(delete, Err(StoreError::NotFound { kind: "policy", .. })),
        "{delete:?}"
    );
    let unknown = delete_policy(&*store, other, "unknown").await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { kind: "policy", .. })),
        "{unknown:?}"
    );

    // The refused deletions changed nothing and recorded nothing.
    assert_eq!(store.list_policies(other).await.unwrap(), [theirs]);
    assert_eq!(audit_actions(&*store, t).await, ["tenant.create"]);
    assert_eq!(
        audit_actions(&*store, other).await,
        ["tenant.create", "policy.create"]
    );
}

pub async fn policies_delete_returns_the_policy_and_is_audited(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let kept = create_policy(&*store, t, new_policy("kept"), 10)
        .await
        .unwrap();
    let doomed = create_policy(&*store, t, new_policy("doomed"), 10)
        .await
        .unwrap();
    let before = chain(&*store, t).await;

    let deleted = delete_policy(&*store, t, "doomed").await.unwrap();
    assert_eq!(deleted, doomed);
    assert_eq!(store.list_policies(t).await.unwrap(), [kept]);

    let after = chain(&*store, t).await;
    assert_eq!(
        after.len(),
        before.len() + 1,
        "exactly one event: {after:?}"
    );
    assert_eq!(after[..before.len()], before[..]);
    let event = &after[before.len()];
    assert_eq!(event.action, "policy.delete");
    assert_eq!(event.target, "policies/doomed");
    assert_eq!(event.tenant_id, t);

    // Deleting it again finds nothing and records nothing.
    let again = delete_policy(&*store, t, "doomed").await;
    assert!(
        matches!(again, Err(StoreError::NotFound { kind: "policy", .. })),
        "{again:?}"
    );
    assert_eq!(chain(&*store, t).await, after);

    // The name is free again.
    let recreated = create_policy(&*store, t, new_policy("doomed"), 10)
        .await
        .unwrap();
    assert_ne!(recreated.id, doomed.id);
    assert_eq!(
        audit_actions(&*store, t).await,
        [
            "tenant.create",
            "policy.create",
            "policy.create",
            "policy.delete",
            "policy.create"
        ]
    );
}

/// Creations racing past the limit in one tenant: exactly the limit's worth succeed, the rest
/// are `TooMany`, and the chain has one event per stored policy, without gaps.
pub async fn policies_concurrent_creates_keep_the_limit_and_the_chain(store: Arc<dyn Store>) {
    const LIMIT: usize = 3;
    const WRITERS: usize = 8;
    let t = tenant(&*store, "acme").await;
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                create_policy(&*store, t, new_policy(&format!("p{i}")), LIMIT).await
            })
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::TooMany {
                kind: "policies",
                limit: LIMIT,
            }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, LIMIT);
    assert_eq!(store.list_policies(t).await.unwrap().len(), LIMIT);
    let events = chain(&*store, t).await;
    assert_eq!(events.len(), 1 + LIMIT);
    assert!(events[1..].iter().all(|e| e.action == "policy.create"));
}

pub async fn state_entries_page_across_sessions(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "counter").await;
    let b = agent(&*store, t, "other").await;
    let scope = |session: &str| StateScope {
        tenant: t,
        agent: a,
        session: session.into(),
    };
    for (session, key) in [("s2", "a"), ("s1", "b"), ("s1", "a"), ("", "z")] {
        store
            .state_put(&scope(session), key, format!("{session}/{key}").as_bytes())
            .await
            .unwrap();
    }
    let elsewhere = StateScope {
        agent: b,
        ..scope("s1")
    };
    store.state_put(&elsewhere, "x", b"not a's").await.unwrap();

    let mut seen = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .state_entries(
                t,
                a,
                after.as_ref().map(|(s, k)| (s.as_str(), k.as_str())),
                2,
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        for entry in page {
            assert_eq!(
                entry.value,
                format!("{}/{}", entry.session, entry.key).into_bytes()
            );
            after = Some((entry.session.clone(), entry.key.clone()));
            seen.push((entry.session, entry.key));
        }
    }
    let expected: Vec<(String, String)> = [("", "z"), ("s1", "a"), ("s1", "b"), ("s2", "a")]
        .iter()
        .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(seen, expected);
    let other_tenant = tenant(&*store, "other").await;
    assert!(
        store
            .state_entries(other_tenant, a, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn tenants_delete_removes_everything_and_is_audited_elsewhere(store: Arc<dyn Store>) {
    let platform = tenant(&*store, "platform").await;
    let doomed = tenant(&*store, "doomed").await;
    let kept = tenant(&*store, "kept").await;
    // Something of every kind in the doomed tenant, and the same agent name in the kept one.
    let (agent_row, _) = deploy(
        &*store,
        doomed,
        revision("mailer", "1.0.0"),
        vec![SealedSecret {
            name: "api-key".into(),
            ciphertext: b"sealed".to_vec(),
        }],
    )
    .await
    .unwrap();
    let kept_agent = agent(&*store, kept, "mailer").await;
    let (task, _) = store
        .create_task(doomed, new_task(agent_row.id, "c"), vec![])
        .await
        .unwrap();
    store
        .put_push_config(
            doomed,
            push_config(task.id, "hook", "https://example.com/h"),
            10,
        )
        .await
        .unwrap();
    store
        .state_put(
            &StateScope {
                tenant: doomed,
                agent: agent_row.id,
                session: "c".into(),
            },
            "k",
            b"v",
        )
        .await
        .unwrap();
    store.put_tenant_key(doomed, b"wrapped").await.unwrap();
    store
        .put_package(
            doomed,
            NewPackage {
                reference: "acme/mailer@1.0.0".parse().unwrap(),
                digest: "sha256:1".into(),
                size_bytes: 1,
                manifest: json!({}),
            },
            audit_event("package.upload", "packages/acme/mailer@1.0.0"),
        )
        .await
        .unwrap();
    let key = new_key("doomed", 0xdd);
    let hash = key.secret_hash.clone();
    create_key(&*store, doomed, key).await;
    store
        .create_policy(
            doomed,
            new_policy("no-prod"),
            100,
            audit_event("policy.create", "policies/no-prod"),
        )
        .await
        .unwrap();

    store
        .delete_tenant(
            doomed,
            platform,
            audit_event("tenant.delete", "tenants/doomed"),
        )
        .await
        .unwrap();

    for result in [
        store.get_tenant(doomed).await.map(|_| ()),
        store.get_tenant_by_name(&name("doomed")).await.map(|_| ()),
        store.get_agent(doomed, &name("mailer")).await.map(|_| ()),
        store.get_task(doomed, task.id).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(StoreError::NotFound { .. })),
            "{result:?}"
        );
    }
    assert_eq!(store.get_tenant_key(doomed).await.unwrap(), None);
    assert!(store.list_audit(doomed, 0, 100).await.unwrap().is_empty());
    assert!(store.list_policies(doomed).await.unwrap().is_empty());
    assert_eq!(store.find_api_key_by_hash(&hash).await.unwrap(), None);
    assert!(
        store
            .state_entries(doomed, agent_row.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_secrets(doomed, agent_row.id)
            .await
            .unwrap()
            .is_empty()
    );
    // The deletion is in the deleter's chain; the other tenant is untouched.
    assert_eq!(
        audit_actions(&*store, platform).await,
        ["tenant.create", "tenant.delete"]
    );
    assert_eq!(
        store.get_agent(kept, &name("mailer")).await.unwrap().id,
        kept_agent
    );
    assert_eq!(audit_actions(&*store, kept).await, ["tenant.create"]);
    // The name is free again.
    let again = tenant(&*store, "doomed").await;
    assert_ne!(again, doomed);

    let missing = store
        .delete_tenant(
            doomed,
            platform,
            audit_event("tenant.delete", "tenants/doomed"),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(
        audit_actions(&*store, platform).await,
        ["tenant.create", "tenant.delete"],
        "a refused deletion leaves no event"
    );
}

pub async fn tenant_keys_are_destroyed_on_demand(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    store.put_tenant_key(t, b"first").await.unwrap();
    store.put_tenant_key(other, b"others").await.unwrap();
    assert!(store.delete_tenant_key(t).await.unwrap());
    assert!(!store.delete_tenant_key(t).await.unwrap());
    assert_eq!(store.get_tenant_key(t).await.unwrap(), None);
    assert_eq!(
        store.get_tenant_key(other).await.unwrap(),
        Some(b"others".to_vec())
    );
}

fn new_user(n: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        name: name(n),
        display_name: format!("User {n}"),
        password_hash: format!("$argon2id$hash-of-{n}"),
    }
}

/// A login session of `user` in `t`.
async fn session(store: &dyn Store, t: TenantId, user: &nexus_core::User, seed: u8) -> ApiKey {
    let mut key = new_key(user.name.as_str(), seed);
    key.user_id = Some(user.id);
    create_key(store, t, key).await
}

pub async fn users_join_tenants_and_sessions_follow_their_membership(store: Arc<dyn Store>) {
    let acme = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let alice = store
        .create_user(
            acme,
            new_user("alice"),
            Role::Developer,
            audit_event("user.create", "users/alice"),
        )
        .await
        .unwrap();
    assert_eq!((alice.tenant_id, alice.role), (acme, Role::Developer));
    let (found, hash) = store.find_user(&name("alice")).await.unwrap().unwrap();
    assert_eq!(
        (found.clone(), hash.as_str()),
        (alice.user.clone(), "$argon2id$hash-of-alice")
    );
    assert_eq!(store.find_user(&name("nobody")).await.unwrap(), None);

    // The same account joins another tenant with another role.
    let elsewhere = store
        .put_membership(
            other,
            &name("alice"),
            Role::Viewer,
            audit_event("member.put", "users/alice"),
        )
        .await
        .unwrap();
    assert_eq!(
        (elsewhere.user.id, elsewhere.role),
        (alice.user.id, Role::Viewer)
    );
    let roles: Vec<(TenantId, Role)> = store
        .user_memberships(alice.user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.tenant_id, m.role))
        .collect();
    assert_eq!(roles, [(acme, Role::Developer), (other, Role::Viewer)]);

    // Sessions name their user; a role change revokes the sessions of that tenant only.
    let in_acme = session(&*store, acme, &alice.user, 1).await;
    let in_other = session(&*store, other, &alice.user, 2).await;
    assert_eq!(in_acme.user_id, Some(alice.user.id));
    store
        .put_membership(
            acme,
            &name("alice"),
            Role::Admin,
            audit_event("member.put", "users/alice"),
        )
        .await
        .unwrap();
    assert!(
        store
            .get_api_key(acme, in_acme.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_api_key(other, in_other.id)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Removal revokes the sessions there, and the keys she made there, and keeps the account.
    let in_other_again = session(&*store, other, &alice.user, 3).await;
    let mut made = new_key("made-by-alice", 7);
    made.created_by = "user:alice".into();
    let made = create_key(&*store, other, made).await;
    let removed = store
        .remove_membership(
            other,
            &name("alice"),
            audit_event("member.remove", "users/alice"),
        )
        .await
        .unwrap();
    assert_eq!(removed.role, Role::Viewer);
    assert!(
        store
            .get_api_key(other, in_other_again.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_api_key(other, made.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        store.user_memberships(alice.user.id).await.unwrap().len(),
        1
    );
    assert_eq!(
        audit_actions(&*store, other).await,
        [
            "tenant.create",
            "member.put",
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "member.remove"
        ]
    );

    // Deleting a tenant ends its memberships, not the account.
    let platform = tenant(&*store, "platform").await;
    store
        .delete_tenant(acme, platform, audit_event("tenant.delete", "tenants/acme"))
        .await
        .unwrap();
    assert!(
        store
            .user_memberships(alice.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.find_user(&name("alice")).await.unwrap().is_some());
}

pub async fn users_listing_pages_by_name_and_refusals_store_nothing(store: Arc<dyn Store>) {
    let acme = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    for n in ["carol", "alice", "bob"] {
        store
            .create_user(
                acme,
                new_user(n),
                Role::Viewer,
                audit_event("user.create", n),
            )
            .await
            .unwrap();
    }
    store
        .create_user(
            other,
            new_user("dave"),
            Role::Owner,
            audit_event("user.create", "dave"),
        )
        .await
        .unwrap();
    let first = store
        .list_members(acme, PageRequest::first(2))
        .await
        .unwrap();
    let names: Vec<String> = first
        .items
        .iter()
        .map(|m| m.user.name.to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let rest = store
        .list_members(acme, PageRequest::after(first.next_cursor, 2))
        .await
        .unwrap();
    let names: Vec<String> = rest.items.iter().map(|m| m.user.name.to_string()).collect();
    assert_eq!(
        (names.as_slice(), rest.next_cursor),
        (&["carol".to_owned()][..], None)
    );

    let before = audit_actions(&*store, acme).await;
    let taken = store
        .create_user(
            acme,
            new_user("dave"),
            Role::Viewer,
            audit_event("user.create", "dave"),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    let unknown = store
        .put_membership(
            acme,
            &name("nobody"),
            Role::Viewer,
            audit_event("member.put", "nobody"),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    let not_member = store
        .remove_membership(acme, &name("dave"), audit_event("member.remove", "dave"))
        .await;
    assert!(
        matches!(not_member, Err(StoreError::NotFound { .. })),
        "{not_member:?}"
    );
    assert_eq!(
        audit_actions(&*store, acme).await,
        before,
        "refusals leave no event"
    );
    assert_eq!(
        store
            .list_members(acme, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

pub async fn teams_give_their_role_and_changes_end_sessions(store: Arc<dyn Store>) {
    let acme = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let alice = store
        .create_user(
            acme,
            new_user("alice"),
            Role::Viewer,
            audit_event("user.create", "alice"),
        )
        .await
        .unwrap();
    store
        .create_user(
            other,
            new_user("olga"),
            Role::Viewer,
            audit_event("user.create", "olga"),
        )
        .await
        .unwrap();
    let sre = store
        .create_team(
            acme,
            TeamId::new(),
            &name("sre"),
            Role::Developer,
            audit_event("team.create", "sre"),
        )
        .await
        .unwrap();
    assert!(sre.members.is_empty());
    let taken = store
        .create_team(
            acme,
            TeamId::new(),
            &name("sre"),
            Role::Viewer,
            audit_event("team.create", "sre"),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );

    let session_before = session(&*store, acme, &alice.user, 1).await;
    let joined = store
        .set_team_member(
            acme,
            &name("sre"),
            &name("alice"),
            true,
            audit_event("team.add", "sre"),
        )
        .await
        .unwrap();
    assert_eq!(joined.members, [name("alice")]);
    assert_eq!(
        store.user_teams(acme, alice.user.id).await.unwrap(),
        [(name("sre"), Role::Developer)]
    );
    assert!(
        store
            .user_teams(other, alice.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_api_key(acme, session_before.id)
            .await
            .unwrap()
            .revoked_at
            .is_some(),
        "joining a team ends the sessions opened with the old role"
    );
    // Only members of the tenant join its teams; unknown teams are not found.
    for (team, user) in [("sre", "olga"), ("sre", "nobody"), ("dba", "alice")] {
        let refused = store
            .set_team_member(
                acme,
                &name(team),
                &name(user),
                true,
                audit_event("team.add", team),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound { .. })),
            "{team}/{user}: {refused:?}"
        );
    }
    assert_eq!(store.list_teams(acme).await.unwrap().len(), 1);
    assert!(store.list_teams(other).await.unwrap().is_empty());

    // Leaving the tenant leaves its teams.
    store
        .remove_membership(acme, &name("alice"), audit_event("member.remove", "alice"))
        .await
        .unwrap();
    assert!(store.list_teams(acme).await.unwrap()[0].members.is_empty());
    store
        .put_membership(
            acme,
            &name("alice"),
            Role::Viewer,
            audit_event("member.put", "alice"),
        )
        .await
        .unwrap();
    store
        .set_team_member(
            acme,
            &name("sre"),
            &name("alice"),
            true,
            audit_event("team.add", "sre"),
        )
        .await
        .unwrap();
    let session_in_team = session(&*store, acme, &alice.user, 2).await;
    let deleted = store
        .delete_team(acme, &name("sre"), audit_event("team.delete", "sre"))
        .await
        .unwrap();
    assert_eq!(deleted.members, [name("alice")]);
    assert!(
        store
            .get_api_key(acme, session_in_team.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .user_teams(acme, alice.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let before = audit_actions(&*store, acme).await;
    let missing = store
        .delete_team(acme, &name("sre"), audit_event("team.delete", "sre"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(audit_actions(&*store, acme).await, before);
}

pub async fn service_accounts_own_their_keys(store: Arc<dyn Store>) {
    let acme = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let account = |t: TenantId, n: &str| nexus_core::ServiceAccount {
        id: nexus_core::ServiceAccountId::new(),
        tenant_id: t,
        name: name(n),
        role: Role::Operator,
        description: "the CI pipeline".into(),
        created_by: "key:admin".into(),
        created_at: nexus_core::page::now(),
    };
    let ci = store
        .create_service_account(
            account(acme, "ci"),
            audit_event("service_account.create", "ci"),
        )
        .await
        .unwrap();
    let taken = store
        .create_service_account(
            account(acme, "ci"),
            audit_event("service_account.create", "ci"),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    // The same name in another tenant is another account.
    store
        .create_service_account(
            account(other, "ci"),
            audit_event("service_account.create", "ci"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_service_account(acme, &name("ci")).await.unwrap(),
        ci
    );
    assert_eq!(
        store.list_service_accounts(acme).await.unwrap(),
        std::slice::from_ref(&ci)
    );

    let mut new = new_key("ci-key", 0x5a);
    new.role = ci.role;
    new.service_account = Some((ci.id, ci.name.clone()));
    let hash = new.secret_hash.clone();
    let key = create_key(&*store, acme, new).await;
    assert_eq!(
        (key.service_account_id, key.service_account.clone()),
        (Some(ci.id), Some(name("ci")))
    );
    let found = store.find_api_key_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(found, key);

    let deleted = store
        .delete_service_account(
            acme,
            &name("ci"),
            audit_event("service_account.delete", "ci"),
        )
        .await
        .unwrap();
    assert_eq!(deleted.id, ci.id);
    assert_eq!(
        store.find_api_key_by_hash(&hash).await.unwrap(),
        None,
        "its keys go with it"
    );
    let before = audit_actions(&*store, acme).await;
    let missing = store
        .delete_service_account(
            acme,
            &name("ci"),
            audit_event("service_account.delete", "ci"),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(audit_actions(&*store, acme).await, before);
    assert_eq!(store.list_service_accounts(other).await.unwrap().len(), 1);
}

pub async fn passwords_change_and_end_every_session(store: Arc<dyn Store>) {
    let acme = tenant(&*store, "acme").await;
    let other = tenant(&*store, "other").await;
    let kim = store
        .create_user(
            acme,
            new_user("kim"),
            Role::Viewer,
            audit_event("user.create", "kim"),
        )
        .await
        .unwrap();
    store
        .put_membership(
            other,
            &name("kim"),
            Role::Viewer,
            audit_event("member.put", "kim"),
        )
        .await
        .unwrap();
    let here = session(&*store, acme, &kim.user, 1).await;
    let there = session(&*store, other, &kim.user, 2).await;
    let mut made = new_key("made-by-kim", 3);
    made.created_by = "user:kim".into();
    let made = create_key(&*store, acme, made).await;
    // Changed by a platform admin acting in a tenant kim is not in: every chain concerned
    // records it once.
    let admins = tenant(&*store, "admins").await;
    let count = |actions: Vec<String>| actions.iter().filter(|a| *a == "user.password").count();
    store
        .set_password(
            kim.user.id,
            "$argon2id$new",
            admins,
            audit_event("user.password", "kim"),
        )
        .await
        .unwrap();
    for chain in [acme, other, admins] {
        assert_eq!(count(audit_actions(&*store, chain).await), 1);
    }
    assert_eq!(
        store.find_user(&name("kim")).await.unwrap().unwrap().1,
        "$argon2id$new"
    );
    assert!(
        store
            .get_api_key(acme, here.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_api_key(other, there.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_api_key(acme, made.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    let before = audit_actions(&*store, acme).await;
    let missing = store
        .set_password(
            UserId::new(),
            "$argon2id$x",
            acme,
            audit_event("user.password", "x"),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(audit_actions(&*store, acme).await, before);
}

pub async fn state_clear_removes_one_session_or_all_and_is_audited(store: Arc<dyn Store>) {
    let t = tenant(&*store, "acme").await;
    let a = agent(&*store, t, "counter").await;
    let b = agent(&*store, t, "other").await;
    let scope = |agent: AgentId, session: &str| StateScope {
        tenant: t,
        agent,
        session: session.into(),
    };
    for (agent, session, key) in [
        (a, "s1", "x"),
        (a, "s1", "y"),
        (a, "s2", "x"),
        (b, "s1", "x"),
    ] {
        store
            .state_put(&scope(agent, session), key, b"v")
            .await
            .unwrap();
    }
    let clear = |agent: AgentId, session: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .state_clear(
                    t,
                    agent,
                    session,
                    audit_event("state.clear", "agents/x/state"),
                )
                .await
                .unwrap()
        }
    };
    // Another tenant's clear reaches nothing.
    let other = tenant(&*store, "other").await;
    let foreign = store
        .state_clear(other, a, None, audit_event("state.clear", "agents/x/state"))
        .await
        .unwrap();
    assert_eq!(foreign, 0);

    let before = store.list_audit(t, 0, 1000).await.unwrap().len();
    assert_eq!(clear(a, Some("s1")).await, 2);
    assert_eq!(
        store.state_get(&scope(a, "s2"), "x").await.unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(clear(a, None).await, 1);
    assert!(
        store
            .state_entries(t, a, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The other agent's state is untouched.
    assert_eq!(
        store.state_get(&scope(b, "s1"), "x").await.unwrap(),
        Some(b"v".to_vec())
    );
    let events = store.list_audit(t, 0, 1000).await.unwrap();
    assert_eq!(events.len(), before + 2);
    assert!(events[before..].iter().all(|e| e.action == "state.clear"));
}
