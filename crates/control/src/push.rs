//! A2A push notifications: tasks' webhook configs, and the watchers that deliver a task's
//! updates to them.
//!
//! A config is checked (URL, limits, and that its host is an address the server may reach, see
//! [`nexus_push`]) and stored with its token and `Authorization` credentials sealed under the
//! tenant's data key, bound to tenant, task, config id and field
//! ([`nexus_secrets::WebhookSlot`]). Responses never show them again.
//!
//! While the task runs, each config has a watcher: it follows the task's event log
//! ([`ControlPlane::follow`]) and queues notifications on the config's [`Outbox`], which
//! delivers them in order with retries:
//!
//! - configs created in A2A 1.0 get each `StreamResponse` of the task, rendered by
//!   [`StreamRenderer`] exactly as the SSE stream renders it;
//! - configs created in A2A 0.3 get the 0.3 `Task` when the task ends or waits for input.
//!
//! A watcher starts when a config is created on a running task (from the events after it), for
//! a config sent with a message (from the A2A send methods), and for every config of the task
//! when a message continues it, through any API ([`ControlPlane::watch_push`], called by
//! [`ControlPlane::start_agent`]): a 1.0 config then gets the task as it stands first, as a
//! streaming send would. A watcher ends with the task's run (it ended or
//! waits for input) once its queue is delivered. A config of a task that has ended can be
//! created and read, but nothing is sent for it.
//!
//! **Restarts.** Watchers and their queues live in memory: a restart loses the notifications
//! not yet delivered, and is not re-driven. Tasks that were running are failed at start-up
//! without a notification. The configs stay stored and apply again when the task gets its next
//! message (a waiting task can; a failed one cannot).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nexus_core::{Caller, Task, TaskEvent, TaskEventKind, TaskId, TaskState, TenantId};
use nexus_protocol::a2a::{TaskView, Version};
use nexus_protocol::stream::{StreamRenderer, ends_stream};
use nexus_push::{Notifier, Outbox, Url, Webhook};
use nexus_secrets::{DataKey, WebhookField, WebhookSlot};
use nexus_store::{PushConfig, StoreError};
use serde_json::Value;

use crate::{Action, ControlError, ControlPlane, secrets};

/// Most webhook configs per task: a task has a few interested parties, not an audience; each
/// config is one watcher following the task.
pub const MAX_PUSH_CONFIGS_PER_TASK: usize = 10;
/// Longest config id: room for a UUID or a descriptive name.
pub const MAX_PUSH_CONFIG_ID_LEN: usize = 128;
/// Longest webhook URL.
pub const MAX_PUSH_URL_LEN: usize = nexus_push::MAX_URL_LEN;
/// Longest token: any random token or signed value fits.
pub const MAX_PUSH_TOKEN_LEN: usize = 1024;
/// Longest `Authorization` scheme (`Bearer`, `Basic`, vendor names).
pub const MAX_PUSH_SCHEME_LEN: usize = 64;
/// Longest credentials: room for a large JWT; bounded because they ride on every request.
pub const MAX_PUSH_CREDENTIALS_LEN: usize = 8 * 1024;

/// A webhook to register, with its secrets in the clear. `Debug` hides them.
#[derive(Clone)]
pub struct NewPushConfig {
    /// Defaults to the task id, as in the A2A SDKs.
    pub id: Option<String>,
    pub url: String,
    /// Sent as `X-A2A-Notification-Token`.
    pub token: Option<String>,
    /// `Authorization` scheme; with `auth_credentials`, sent as `<scheme> <credentials>`.
    pub auth_scheme: Option<String>,
    pub auth_credentials: Option<String>,
    /// The A2A version that renders the notifications.
    pub version: Version,
}

impl std::fmt::Debug for NewPushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPushConfig")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("auth_scheme", &self.auth_scheme)
            .field(
                "auth_credentials",
                &self.auth_credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("version", &self.version)
            .finish()
    }
}

/// A config that passed [`ControlPlane::check_push_config`].
#[derive(Debug, Clone)]
pub struct CheckedPushConfig {
    new: NewPushConfig,
    url: Url,
}

/// The stored form of a version.
pub fn version_name(version: Version) -> &'static str {
    match version {
        Version::V1 => "1.0",
        Version::V0_3 => "0.3",
    }
}

/// The version a stored config renders in.
pub fn parse_version(name: &str) -> Option<Version> {
    match name {
        "1.0" => Some(Version::V1),
        "0.3" => Some(Version::V0_3),
        _ => None,
    }
}

/// Running watchers by task and config id, with the generation that tells a watcher's own
/// entry from its successor's.
type Watchers = HashMap<(TaskId, String), (u64, tokio::task::JoinHandle<()>)>;

/// The push side of a control plane: the notifier and the watchers running on this node.
pub(crate) struct PushState {
    notifier: Arc<Notifier>,
    watchers: std::sync::Mutex<Watchers>,
    generation: AtomicU64,
}

impl std::fmt::Debug for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushState")
            .field("notifier", &self.notifier)
            .field("watchers", &self.lock().len())
            .finish()
    }
}

impl PushState {
    pub(crate) fn new(settings: nexus_push::Settings) -> Self {
        Self {
            notifier: Arc::new(Notifier::new(settings)),
            watchers: std::sync::Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watchers> {
        // Every operation is one insert or remove, so a poisoned map is still consistent.
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the config's watcher, dropping what it has not delivered.
    fn stop(&self, task: TaskId, id: &str) {
        if let Some((_, watcher)) = self.lock().remove(&(task, id.to_owned())) {
            watcher.abort();
        }
    }
}

/// What happens to a config's running watcher when a new one starts.
enum Previous {
    /// The config was replaced: the old watcher's queue no longer matters.
    Abort,
    /// The task got a new message: the old watcher may still be delivering the last run's
    /// notifications, which must arrive first.
    Wait,
}

/// How a watcher turns events into notifications.
enum Render {
    V1(Box<StreamRenderer>),
    V0_3,
}

impl ControlPlane {
    /// Replaces the push-notification settings (the defaults refuse private addresses).
    pub fn with_push(mut self, settings: nexus_push::Settings) -> Self {
        self.push = PushState::new(settings);
        self
    }

    /// Validates a config and checks that its URL's host resolves to addresses the server may
    /// reach. Errors are `Invalid`, naming the field.
    pub async fn check_push_config(
        &self,
        new: NewPushConfig,
    ) -> Result<CheckedPushConfig, ControlError> {
        let invalid = |why: String| ControlError::Invalid(why);
        if let Some(id) = &new.id
            && (id.len() > MAX_PUSH_CONFIG_ID_LEN || id.chars().any(char::is_control))
        {
            return Err(invalid(format!(
                "the config id must be at most {MAX_PUSH_CONFIG_ID_LEN} bytes without control \
                 characters"
            )));
        }
        let url = nexus_push::parse_url(&new.url).map_err(|e| invalid(format!("`url`: {e}")))?;
        header_text("token", new.token.as_deref(), MAX_PUSH_TOKEN_LEN, true)?;
        header_text(
            "authentication scheme",
            new.auth_scheme.as_deref(),
            MAX_PUSH_SCHEME_LEN,
            false,
        )?;
        header_text(
            "authentication credentials",
            new.auth_credentials.as_deref(),
            MAX_PUSH_CREDENTIALS_LEN,
            true,
        )?;
        if new.auth_credentials.is_some() && new.auth_scheme.is_none() {
            return Err(invalid(
                "authentication credentials need a scheme (e.g. `Bearer`)".into(),
            ));
        }
        self.push
            .notifier
            .check(&url)
            .await
            .map_err(|e| invalid(format!("`url`: {e}")))?;
        Ok(CheckedPushConfig { new, url })
    }

    /// Creates or replaces a config of a task (in this tenant). If the task is running, its
    /// updates from now on are delivered to the config.
    pub async fn put_push_config(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        task: TaskId,
        config: CheckedPushConfig,
    ) -> Result<PushConfig, ControlError> {
        self.authorize(caller, tenant, Action::PushConfigWrite)
            .await?;
        let task = self.store.get_task(tenant, task).await?;
        // Read the log before storing, so no event after the config exists is missed.
        let running = matches!(task.state, TaskState::Submitted | TaskState::Working);
        let log = if running {
            self.store.task_log(tenant, task.id).await?
        } else {
            Vec::new()
        };
        let (stored, webhook) = self.store_push_config(tenant, &task, config).await?;
        if running {
            let after = log.last().map_or(0, |e| e.seq);
            let (render, _) = renderer(&stored, &task, &log)?;
            self.start_watcher(
                tenant,
                &task,
                &stored.id,
                render,
                webhook,
                after,
                None,
                Previous::Abort,
            );
        } else {
            self.push.stop(task.id, &stored.id);
        }
        Ok(stored)
    }

    /// A config of a task; `NotFound` if there is none.
    pub async fn get_push_config(
        &self,
        caller: &Caller,
        tenant: TenantId,
        task: TaskId,
        id: &str,
    ) -> Result<PushConfig, ControlError> {
        self.authorize(caller, tenant, Action::PushConfigRead)
            .await?;
        Ok(self.store.get_push_config(tenant, task, id).await?)
    }

    /// A task's configs, oldest first.
    pub async fn list_push_configs(
        &self,
        caller: &Caller,
        tenant: TenantId,
        task: TaskId,
    ) -> Result<Vec<PushConfig>, ControlError> {
        self.authorize(caller, tenant, Action::PushConfigRead)
            .await?;
        Ok(self.store.list_push_configs(tenant, task).await?)
    }

    /// Deletes a config and stops its deliveries; returns whether there was one.
    pub async fn delete_push_config(
        &self,
        caller: &Caller,
        tenant: TenantId,
        task: TaskId,
        id: &str,
    ) -> Result<bool, ControlError> {
        self.authorize(caller, tenant, Action::PushConfigWrite)
            .await?;
        let deleted = self.store.delete_push_config(tenant, task, id).await?;
        self.push.stop(task, id);
        Ok(deleted)
    }

    /// Called once a message has started or continued `task`, whose log so far is `log`, to
    /// deliver the task's updates from here on, a 1.0 config getting the task as it stands
    /// first: with `inline` (the config sent with the message), stores it and delivers to it;
    /// without, delivers to each of the task's stored configs (the control plane does so itself
    /// when a message continues a task, whichever API sent it). Returns the stored inline
    /// config.
    pub async fn watch_push(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        task: &Task,
        log: &[TaskEvent],
        inline: Option<CheckedPushConfig>,
    ) -> Result<Option<PushConfig>, ControlError> {
        if inline.is_some() {
            self.authorize(caller, tenant, Action::PushConfigWrite)
                .await?;
        }
        self.arm_push(tenant, task, log, inline).await
    }

    /// [`watch_push`](Self::watch_push) once the caller is authorized.
    pub(crate) async fn arm_push(
        self: &Arc<Self>,
        tenant: TenantId,
        task: &Task,
        log: &[TaskEvent],
        inline: Option<CheckedPushConfig>,
    ) -> Result<Option<PushConfig>, ControlError> {
        let mut webhooks = HashMap::new();
        let inline = match inline {
            Some(config) => {
                let (stored, webhook) = self.store_push_config(tenant, task, config).await?;
                webhooks.insert(stored.id.clone(), webhook);
                Some(stored)
            }
            None => None,
        };
        let configs = match &inline {
            Some(stored) => vec![stored.clone()],
            None => self.store.list_push_configs(tenant, task.id).await?,
        };
        if configs.is_empty() {
            return Ok(inline);
        }
        let needs_key = configs.iter().any(|c| {
            !webhooks.contains_key(&c.id) && (c.token.is_some() || c.auth_credentials.is_some())
        });
        let key = if needs_key {
            secrets::tenant_key(self.store.as_ref(), self.kms.as_ref(), tenant, false).await?
        } else {
            None
        };
        let after = log.last().map_or(0, |e| e.seq);
        // A config sent with the message replaces any watcher its id had; the stored configs'
        // watchers may still be delivering the last run's notifications, which go first.
        let replaces = inline.is_some();
        for config in &configs {
            let webhook = match webhooks.remove(&config.id) {
                Some(webhook) => webhook,
                None => match open_webhook(tenant, key.as_ref(), config) {
                    Ok(webhook) => webhook,
                    Err(e) => {
                        tracing::warn!(task = %task.id, config = %config.id, error = %e,
                            "cannot use a push notification config; skipping it");
                        continue;
                    }
                },
            };
            let (render, first) = renderer(config, task, log)?;
            self.start_watcher(
                tenant,
                task,
                &config.id,
                render,
                webhook,
                after,
                first,
                if replaces {
                    Previous::Abort
                } else {
                    Previous::Wait
                },
            );
        }
        Ok(inline)
    }

    /// Seals and stores a checked config for `task`; returns it with its webhook.
    async fn store_push_config(
        &self,
        tenant: TenantId,
        task: &Task,
        config: CheckedPushConfig,
    ) -> Result<(PushConfig, Webhook), ControlError> {
        let CheckedPushConfig { new, url } = config;
        let id = new.id.clone().unwrap_or_else(|| task.id.to_string());
        let has_secrets = new.token.is_some() || new.auth_credentials.is_some();
        let key = if has_secrets {
            secrets::tenant_key(self.store.as_ref(), self.kms.as_ref(), tenant, true).await?
        } else {
            None
        };
        let seal = |field, value: &Option<String>| -> Result<Option<Vec<u8>>, ControlError> {
            let (Some(value), Some(key)) = (value, &key) else {
                return Ok(None);
            };
            let slot = WebhookSlot {
                tenant,
                task: task.id,
                config: &id,
                field,
            };
            key.seal(&slot, value.as_bytes())
                .map(Some)
                .map_err(secrets::internal)
        };
        let sealed = PushConfig {
            task_id: task.id,
            id: id.clone(),
            protocol_version: version_name(new.version).to_owned(),
            url: url.to_string(),
            token: seal(WebhookField::Token, &new.token)?,
            auth_scheme: new.auth_scheme.clone(),
            auth_credentials: seal(WebhookField::Credentials, &new.auth_credentials)?,
            // The store keeps the time of first creation.
            created_at: nexus_core::page::now(),
        };
        let stored = self
            .store
            .put_push_config(tenant, sealed, MAX_PUSH_CONFIGS_PER_TASK)
            .await
            .map_err(|e| match e {
                StoreError::TooMany { limit, .. } => ControlError::Invalid(format!(
                    "task `{}` has {limit} push notification configs, the most it may have; \
                     delete one first",
                    task.id
                )),
                other => other.into(),
            })?;
        let webhook = Webhook {
            url,
            token: new.token,
            authorization: authorization(new.auth_scheme.as_deref(), new.auth_credentials),
            label: format!("{}/{}", task.id, id),
        };
        Ok((stored, webhook))
    }

    /// Starts the watcher of config `id` of `task`, replacing (see `previous`) a running one.
    #[allow(clippy::too_many_arguments)]
    fn start_watcher(
        self: &Arc<Self>,
        tenant: TenantId,
        task: &Task,
        id: &str,
        render: Render,
        webhook: Webhook,
        after: u64,
        first: Option<Value>,
        previous: Previous,
    ) {
        let key = (task.id, id.to_owned());
        let generation = self.push.generation.fetch_add(1, Ordering::Relaxed);
        let mut watchers = self.push.lock();
        let earlier = match (watchers.remove(&key), previous) {
            (Some((_, running)), Previous::Abort) => {
                running.abort();
                None
            }
            (earlier, _) => earlier.map(|(_, running)| running),
        };
        let this = self.clone();
        let task_id = task.id;
        let handle = tokio::spawn(async move {
            if let Some(earlier) = earlier {
                // Aborted or finished, either way it no longer delivers.
                let _ = earlier.await;
            }
            let outbox = this.push.notifier.outbox(webhook);
            this.watch(tenant, task_id, render, &outbox, after, first)
                .await;
            outbox.close().await;
            let mut watchers = this.push.lock();
            if watchers.get(&key).is_some_and(|(g, _)| *g == generation) {
                watchers.remove(&key);
            }
        });
        watchers.insert((task.id, id.to_owned()), (generation, handle));
    }

    /// Follows the task from `after` and queues its notifications until its run ends.
    async fn watch(
        self: &Arc<Self>,
        tenant: TenantId,
        task: TaskId,
        mut render: Render,
        outbox: &Outbox,
        after: u64,
        first: Option<Value>,
    ) {
        if let Some(first) = first {
            outbox.send(first).await;
        }
        let mut events = self.follow_as(None, tenant, task, after);
        while let Some(event) = events.recv().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(task = %task, error = %e,
                        "push notifications stop: the task log cannot be read");
                    return;
                }
            };
            let (body, ends) = match &mut render {
                Render::V1(renderer) => match renderer.event(&event) {
                    Some(update) => update,
                    None => continue,
                },
                Render::V0_3 => {
                    let Some(state) = status_of(&event).filter(|s| ends_stream(*s)) else {
                        continue;
                    };
                    match self.task_json(tenant, task, Version::V0_3).await {
                        Ok(body) => (body, true),
                        Err(e) => {
                            tracing::warn!(task = %task, state = %state, error = %e,
                                "cannot render the task for a push notification");
                            return;
                        }
                    }
                }
            };
            outbox.send(body).await;
            if ends {
                return;
            }
        }
    }

    /// The task as A2A `version` shows it, with its whole history.
    async fn task_json(
        &self,
        tenant: TenantId,
        task: TaskId,
        version: Version,
    ) -> Result<Value, ControlError> {
        let task = self.store.get_task(tenant, task).await?;
        let log = self.store.task_log(tenant, task.id).await?;
        Ok(TaskView::new(task, &log).to_json(version, None))
    }
}

/// Refuses a header value that is too long or not printable ASCII (`spaces`: whether inner
/// spaces are allowed). Errors name the field, never the value.
fn header_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    spaces: bool,
) -> Result<(), ControlError> {
    let Some(value) = value else {
        return Ok(());
    };
    let printable = value
        .bytes()
        .all(|b| b.is_ascii_graphic() || (spaces && b == b' '));
    if value.is_empty() || value.len() > max || !printable {
        return Err(ControlError::Invalid(format!(
            "the {field} must be 1 to {max} printable ASCII characters{}",
            if spaces { "" } else { " without spaces" }
        )));
    }
    Ok(())
}

fn authorization(scheme: Option<&str>, credentials: Option<String>) -> Option<String> {
    // A scheme without credentials sends nothing, as the reference sender does.
    Some(format!("{} {}", scheme?, credentials?))
}

/// The webhook of a stored config, its secrets opened with the tenant's data key.
fn open_webhook(
    tenant: TenantId,
    key: Option<&DataKey>,
    config: &PushConfig,
) -> Result<Webhook, ControlError> {
    let open = |field, sealed: &Option<Vec<u8>>| -> Result<Option<String>, ControlError> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let key = key.ok_or_else(|| {
            ControlError::Internal("the config has secrets but the tenant has no data key".into())
        })?;
        let slot = WebhookSlot {
            tenant,
            task: config.task_id,
            config: &config.id,
            field,
        };
        let plain = key.open(&slot, sealed).map_err(secrets::internal)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| ControlError::Internal("a sealed webhook secret is not UTF-8".into()))
    };
    let url = nexus_push::parse_url(&config.url)
        .map_err(|e| StoreError::Corrupt(format!("task_push_configs.url: {e}")))?;
    Ok(Webhook {
        url,
        token: open(WebhookField::Token, &config.token)?,
        authorization: authorization(
            config.auth_scheme.as_deref(),
            open(WebhookField::Credentials, &config.auth_credentials)?,
        ),
        label: format!("{}/{}", config.task_id, config.id),
    })
}

/// How `config` renders, seeded with the task as `log` shows it (so artifacts already sent
/// continue as appends), and the 1.0 snapshot of the task.
fn renderer(
    config: &PushConfig,
    task: &Task,
    log: &[TaskEvent],
) -> Result<(Render, Option<Value>), ControlError> {
    match parse_version(&config.protocol_version) {
        Some(Version::V1) => {
            let mut renderer = StreamRenderer::new(Version::V1, task);
            let first = renderer.snapshot(&TaskView::new(task.clone(), log), None);
            Ok((Render::V1(Box::new(renderer)), Some(first)))
        }
        Some(Version::V0_3) => Ok((Render::V0_3, None)),
        None => Err(StoreError::Corrupt(format!(
            "task_push_configs.protocol_version = `{}`",
            config.protocol_version
        ))
        .into()),
    }
}

/// The state a `status` event records.
fn status_of(event: &TaskEvent) -> Option<TaskState> {
    if event.kind != TaskEventKind::Status {
        return None;
    }
    event.payload.get("state")?.as_str()?.parse().ok()
}
