//! `export`: everything a tenant has, as a stream of self-describing records (tagged `record`) (GDPR data
//! portability), read page by page so a tenant of any size streams in bounded memory.
//!
//! Agent state is exported in the clear (it is the tenant's own data); secret values and webhook
//! credentials are not (only their names), and API keys only as their public metadata.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use futures::Stream;
use nexus_core::page::{Cursor, MAX_PAGE_SIZE};
use nexus_core::{
    Agent, AgentId, AgentRevision, ApiKey, AuditEvent, Caller, Membership, Package, PageRequest,
    Policy, ServiceAccount, Task, TaskEvent, TaskId, Team, Tenant, TenantId,
};
use nexus_store::{StateStore, TaskFilter};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::state::SealedState;
use crate::{Action, ControlError, ControlPlane, TenantRef};

/// Records buffered between the reader and a slow consumer: enough to keep the database busy,
/// few enough that an export holds at most a few pages in memory.
const EXPORT_BUFFER: usize = 256;
/// Rows read per query.
const EXPORT_PAGE: u32 = MAX_PAGE_SIZE;
/// Task events and audit events read per query (they are small and numerous).
const EXPORT_EVENTS_PAGE: u32 = 1_000;

/// One record of an export. The first is always the tenant; the rest follow their owners
/// (an agent's revisions, secrets and state after it; a task's events and webhooks after it).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ExportRecord {
    Tenant(Tenant),
    Package(Package),
    Agent(Agent),
    Revision(AgentRevision),
    /// A secret's name only: values never leave the platform.
    Secret {
        agent_id: AgentId,
        name: String,
    },
    /// One value of an agent's state, decrypted, base64-encoded.
    State {
        agent_id: AgentId,
        session: String,
        key: String,
        value_base64: String,
    },
    Task(Task),
    TaskEvent(TaskEvent),
    /// A task's push-notification webhook, without its token or credentials.
    PushConfig {
        task_id: TaskId,
        id: String,
        url: String,
        protocol_version: String,
        auth_scheme: Option<String>,
        created_at: DateTime<Utc>,
    },
    ApiKey(ApiKey),
    /// A user's membership (the account's name and display name, never its password).
    Member(Membership),
    Team(Team),
    ServiceAccount(ServiceAccount),
    Policy(Policy),
    AuditEvent(AuditEvent),
}

/// A stream of an export's records; an error ends it.
pub type ExportStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<ExportRecord, ControlError>> + Send>>;

impl ControlPlane {
    /// Everything of the tenant, streamed (owners only). The export is audited before it
    /// starts; records are read while the consumer takes them.
    pub async fn export_tenant(
        self: &Arc<Self>,
        caller: &Caller,
        reference: &TenantRef,
    ) -> Result<(Tenant, ExportStream), ControlError> {
        let tenant = self.tenant(caller, reference).await?;
        self.authorize(caller, tenant.id, Action::TenantExport)
            .await?;
        self.store
            .append_audit(
                tenant.id,
                crate::audit::event(
                    caller,
                    "tenant.export",
                    format!("tenants/{}", tenant.name),
                    serde_json::json!({}),
                ),
            )
            .await?;
        let (sender, receiver) = mpsc::channel(EXPORT_BUFFER);
        let exporter = Exporter {
            control: self.clone(),
            tenant: tenant.id,
            out: sender,
        };
        let first = ExportRecord::Tenant(tenant.clone());
        let reading = tokio::spawn(async move {
            if let Err(e) = exporter.run(first).await {
                // The consumer may be gone already; then there is no one to tell.
                let _ = exporter.out.send(Err(e)).await;
            }
        });
        // When the records stop, the reader either finished or crashed: a crash must end the
        // stream with an error, never look like a complete export.
        let stream = futures::stream::unfold(
            (receiver, Some(reading)),
            |(mut receiver, reading)| async move {
                if let Some(item) = receiver.recv().await {
                    return Some((item, (receiver, reading)));
                }
                match reading?.await {
                    Ok(()) => None,
                    Err(crashed) => Some((
                        Err(ControlError::Internal(format!(
                            "the export stopped part-way: {crashed}"
                        ))),
                        (receiver, None),
                    )),
                }
            },
        );
        Ok((tenant, Box::pin(stream)))
    }
}

/// Where a paged read is: the request for the next page, until the last one was read.
#[derive(Default)]
struct Pages {
    after: Option<Cursor>,
    done: bool,
}

impl Pages {
    fn next_request(&mut self) -> Option<PageRequest> {
        (!self.done).then(|| PageRequest::after(self.after.take(), EXPORT_PAGE))
    }

    /// The page's items; remembers where the next page starts, or that there is none.
    fn items<T>(&mut self, page: nexus_core::Page<T>) -> Vec<T> {
        self.done = page.next_cursor.is_none();
        self.after = page.next_cursor;
        page.items
    }
}

/// Reads a tenant's rows and sends them as records.
struct Exporter {
    control: Arc<ControlPlane>,
    tenant: TenantId,
    out: mpsc::Sender<Result<ExportRecord, ControlError>>,
}

impl Exporter {
    async fn send(&self, record: ExportRecord) -> Result<(), ControlError> {
        self.out
            .send(Ok(record))
            .await
            .map_err(|_| ControlError::Internal("the export's reader went away".into()))
    }

    async fn run(&self, first: ExportRecord) -> Result<(), ControlError> {
        self.send(first).await?;
        let store = self.control.store.as_ref();
        let tenant = self.tenant;

        let mut pages = Pages::default();
        while let Some(request) = pages.next_request() {
            let page = store.list_packages(tenant, request).await?;
            for package in pages.items(page) {
                self.send(ExportRecord::Package(package)).await?;
            }
        }

        let state = SealedState::new(self.control.store.clone(), self.control.kms.clone(), tenant);
        let mut pages = Pages::default();
        while let Some(request) = pages.next_request() {
            let page = store.list_agents(tenant, request).await?;
            for agent in pages.items(page) {
                self.agent(&state, agent).await?;
            }
        }

        let mut pages = Pages::default();
        while let Some(request) = pages.next_request() {
            let page = store
                .list_tasks(tenant, &TaskFilter::default(), request)
                .await?;
            for task in pages.items(page) {
                self.task(task).await?;
            }
        }

        let mut pages = Pages::default();
        while let Some(request) = pages.next_request() {
            let page = store.list_api_keys(tenant, request).await?;
            for key in pages.items(page) {
                self.send(ExportRecord::ApiKey(key)).await?;
            }
        }

        let mut pages = Pages::default();
        while let Some(request) = pages.next_request() {
            let page = store.list_members(tenant, request).await?;
            for member in pages.items(page) {
                self.send(ExportRecord::Member(member)).await?;
            }
        }
        for team in store.list_teams(tenant).await? {
            self.send(ExportRecord::Team(team)).await?;
        }
        for account in store.list_service_accounts(tenant).await? {
            self.send(ExportRecord::ServiceAccount(account)).await?;
        }

        for policy in store.list_policies(tenant).await? {
            self.send(ExportRecord::Policy(policy)).await?;
        }

        let mut after_seq = 0;
        loop {
            let events = store
                .list_audit(tenant, after_seq, EXPORT_EVENTS_PAGE)
                .await?;
            let full = events.len() == EXPORT_EVENTS_PAGE as usize;
            for event in events {
                after_seq = event.seq;
                self.send(ExportRecord::AuditEvent(event)).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn agent(&self, state: &SealedState, agent: Agent) -> Result<(), ControlError> {
        let store = self.control.store.as_ref();
        let id = agent.id;
        self.send(ExportRecord::Agent(agent)).await?;
        let mut revisions = store.list_revisions(self.tenant, id).await?;
        revisions.reverse();
        for revision in revisions {
            self.send(ExportRecord::Revision(revision)).await?;
        }
        for secret in store.list_secrets(self.tenant, id).await? {
            self.send(ExportRecord::Secret {
                agent_id: id,
                name: secret.name,
            })
            .await?;
        }
        let mut after: Option<(String, String)> = None;
        loop {
            let entries = state
                .state_entries(
                    self.tenant,
                    id,
                    after.as_ref().map(|(s, k)| (s.as_str(), k.as_str())),
                    EXPORT_PAGE,
                )
                .await?;
            let full = entries.len() == EXPORT_PAGE as usize;
            for entry in entries {
                after = Some((entry.session.clone(), entry.key.clone()));
                self.send(ExportRecord::State {
                    agent_id: id,
                    session: entry.session,
                    key: entry.key,
                    value_base64: base64::engine::general_purpose::STANDARD.encode(&entry.value),
                })
                .await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn task(&self, task: Task) -> Result<(), ControlError> {
        let store = self.control.store.as_ref();
        let id = task.id;
        self.send(ExportRecord::Task(task)).await?;
        let mut after_seq = 0;
        loop {
            let events = store
                .list_task_events(self.tenant, id, after_seq, EXPORT_EVENTS_PAGE)
                .await?;
            let full = events.len() == EXPORT_EVENTS_PAGE as usize;
            for event in events {
                after_seq = event.seq;
                self.send(ExportRecord::TaskEvent(event)).await?;
            }
            if !full {
                break;
            }
        }
        for config in store.list_push_configs(self.tenant, id).await? {
            self.send(ExportRecord::PushConfig {
                task_id: config.task_id,
                id: config.id,
                url: config.url,
                protocol_version: config.protocol_version,
                auth_scheme: config.auth_scheme,
                created_at: config.created_at,
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use nexus_core::{Cursor, Page};

    use super::Pages;

    #[test]
    fn pages_follow_the_cursor_until_the_last_page() {
        let mut pages = Pages::default();
        let first = pages.next_request().expect("a first page");
        assert!(first.after.is_none());
        let items = pages.items(Page {
            items: vec![1, 2],
            next_cursor: Some(Cursor("c2".into())),
        });
        assert_eq!(items, [1, 2]);
        let second = pages.next_request().expect("a second page");
        assert_eq!(second.after, Some(Cursor("c2".into())));
        assert_eq!(
            pages.items(Page {
                items: vec![3],
                next_cursor: None
            }),
            [3]
        );
        assert!(pages.next_request().is_none(), "the last page ends it");
    }
}
