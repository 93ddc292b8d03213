//! A2A push notification configs: the 1.0 methods `CreateTaskPushNotificationConfig`,
//! `GetTaskPushNotificationConfig`, `ListTaskPushNotificationConfigs` and
//! `DeleteTaskPushNotificationConfig`, the 0.3 methods `tasks/pushNotificationConfig/set|get|
//! list|delete`, and the config a message may carry (`configuration.taskPushNotificationConfig`
//! in 1.0, `configuration.pushNotificationConfig` in 0.3). Delivery is the control plane's
//! (`nexus_control` `push` module).
//!
//! Token and credentials are write-only: stored sealed, used for delivery, never shown again;
//! responses carry the id, task, URL and authentication scheme. A config id defaults to the
//! task id, and creating an existing id replaces that config (as in the A2A SDKs).

use nexus_control::{CheckedPushConfig, ControlError, NewPushConfig, Started};
use nexus_core::{Agent, TaskId, Tenant};
use nexus_protocol::a2a::Version;
use nexus_protocol::jsonrpc::{RpcError, code};
use nexus_store::{PushConfig, StoreError};
use serde_json::{Value, json};

use super::a2a::{internal, invalid_params, own_task};
use crate::Scope;

/// `CreateTaskPushNotificationConfig` (1.0: the config itself, with `taskId`) and
/// `tasks/pushNotificationConfig/set` (0.3: `taskId` and `pushNotificationConfig`).
pub(crate) async fn create(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let task = task_param(&params, "taskId")?;
    let config = match version {
        Version::V1 => &params,
        Version::V0_3 => params
            .get("pushNotificationConfig")
            .ok_or_else(|| invalid_params("`pushNotificationConfig` is required"))?,
    };
    let new = new_config(version, config)?;
    let task = own_task(state, tenant, agent, task).await?;
    let checked = state
        .control
        .check_push_config(new)
        .await
        .map_err(control_error)?;
    let stored = state
        .control
        .put_push_config(&state.caller, tenant.id, task.id, checked)
        .await
        .map_err(control_error)?;
    Ok(config_json(version, &stored))
}

/// `GetTaskPushNotificationConfig` (`taskId`, `id`; the id defaults to the task id) and
/// `tasks/pushNotificationConfig/get` (`id` is the task, `pushNotificationConfigId` optional:
/// without it, the task's first config).
pub(crate) async fn get(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let (task, id) = task_and_config_id(state, tenant, agent, version, &params).await?;
    let config = match (version, id) {
        (Version::V0_3, None) => state
            .control
            .list_push_configs(&state.caller, tenant.id, task.id)
            .await
            .map_err(control_error)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                RpcError::new(
                    code::TASK_NOT_FOUND,
                    format!("task `{}` has no push notification config", task.id),
                )
            })?,
        (_, id) => {
            let id = id.unwrap_or_else(|| task.id.to_string());
            state
                .control
                .get_push_config(&state.caller, tenant.id, task.id, &id)
                .await
                .map_err(|e| match e {
                    ControlError::Store(StoreError::NotFound { .. }) => RpcError::new(
                        code::TASK_NOT_FOUND,
                        format!(
                            "task `{}` has no push notification config `{}`",
                            task.id,
                            id.chars().take(64).collect::<String>()
                        ),
                    ),
                    other => control_error(other),
                })?
        }
    };
    Ok(config_json(version, &config))
}

/// `ListTaskPushNotificationConfigs` (`taskId`; one page holds them all) and
/// `tasks/pushNotificationConfig/list` (`id`: the task).
pub(crate) async fn list(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let task = match version {
        Version::V1 => task_param(&params, "taskId")?,
        Version::V0_3 => task_param(&params, "id")?,
    };
    let task = own_task(state, tenant, agent, task).await?;
    let configs: Vec<Value> = state
        .control
        .list_push_configs(&state.caller, tenant.id, task.id)
        .await
        .map_err(control_error)?
        .iter()
        .map(|config| config_json(version, config))
        .collect();
    Ok(match version {
        Version::V1 => json!({ "configs": configs, "nextPageToken": "" }),
        Version::V0_3 => Value::Array(configs),
    })
}

/// `DeleteTaskPushNotificationConfig` (`taskId`, `id`) and `tasks/pushNotificationConfig/delete`
/// (`id`: the task, `pushNotificationConfigId`). Deleting stops deliveries; deleting a config
/// that does not exist succeeds, as in the A2A SDKs.
pub(crate) async fn delete(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: Value,
) -> Result<Value, RpcError> {
    let (task, id) = task_and_config_id(state, tenant, agent, version, &params).await?;
    let id = match (version, id) {
        (_, Some(id)) => id,
        (Version::V1, None) => task.id.to_string(),
        (Version::V0_3, None) => {
            return Err(invalid_params("`pushNotificationConfigId` is required"));
        }
    };
    state
        .control
        .delete_push_config(&state.caller, tenant.id, task.id, &id)
        .await
        .map_err(control_error)?;
    Ok(Value::Null)
}

/// The task (this agent's) and the optional config id that get and delete name: 1.0 `taskId`
/// and `id`, 0.3 `id` (the task) and `pushNotificationConfigId`.
async fn task_and_config_id(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    version: Version,
    params: &Value,
) -> Result<(nexus_core::Task, Option<String>), RpcError> {
    let (task, id) = match version {
        Version::V1 => (task_param(params, "taskId")?, text(params, "id")?),
        Version::V0_3 => (
            task_param(params, "id")?,
            text(params, "pushNotificationConfigId")?,
        ),
    };
    Ok((own_task(state, tenant, agent, task).await?, id))
}

/// The push config a message carries, checked. Call it before the task starts, so a bad config
/// refuses the message instead of leaving a task behind.
pub(crate) async fn from_message(
    state: &Scope,
    version: Version,
    params: &Value,
) -> Result<Option<CheckedPushConfig>, RpcError> {
    let key = match version {
        Version::V1 => "taskPushNotificationConfig",
        Version::V0_3 => "pushNotificationConfig",
    };
    let Some(config) = params
        .get("configuration")
        .and_then(|c| c.get(key))
        .filter(|c| !c.is_null())
    else {
        return Ok(None);
    };
    let new = new_config(version, config)
        .map_err(|e| invalid_params(format!("`configuration.{key}`: {}", e.message)))?;
    let checked = state
        .control
        .check_push_config(new)
        .await
        .map_err(|e| match e {
            ControlError::Invalid(why) => invalid_params(format!("`configuration.{key}`: {why}")),
            other => control_error(other),
        })?;
    Ok(Some(checked))
}

/// After a message started or continued a task: stores the message's push config, if it has
/// one, and delivers the task's updates to it (the control plane itself delivers them to the
/// configs a continued task had already).
pub(crate) async fn after_start(
    state: &Scope,
    tenant: &Tenant,
    config: Option<CheckedPushConfig>,
    started: &Started,
) -> Result<(), RpcError> {
    if config.is_none() {
        return Ok(());
    }
    state
        .control
        .watch_push(
            &state.caller,
            tenant.id,
            &started.task,
            &started.log,
            config,
        )
        .await
        .map_err(control_error)?;
    Ok(())
}

fn control_error(error: ControlError) -> RpcError {
    match error {
        ControlError::Invalid(why) => invalid_params(why),
        ControlError::Store(StoreError::NotFound { kind: "task", key }) => {
            RpcError::new(code::TASK_NOT_FOUND, format!("no task `{key}`"))
        }
        other => internal(other),
    }
}

/// A task id parameter: missing is bad params, malformed is an unknown task.
fn task_param(params: &Value, key: &str) -> Result<TaskId, RpcError> {
    let id = text(params, key)?.ok_or_else(|| invalid_params(format!("`{key}` is required")))?;
    id.parse().map_err(|_| {
        RpcError::new(
            code::TASK_NOT_FOUND,
            format!("no task `{}`", id.chars().take(64).collect::<String>()),
        )
    })
}

/// A string field; absent, null and empty (ProtoJSON's default) are all `None`.
fn text(object: &Value, key: &str) -> Result<Option<String>, RpcError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_params(format!("`{key}` must be a string"))),
    }
}

/// A config in `version`'s shape: 1.0 `{url, token, authentication: {scheme, credentials}}`,
/// 0.3 `{url, token, authentication: {schemes: [..], credentials}}` (the first scheme is used).
fn new_config(version: Version, config: &Value) -> Result<NewPushConfig, RpcError> {
    if !config.is_object() {
        return Err(invalid_params(
            "the push notification config must be an object",
        ));
    }
    let url = text(config, "url")?.ok_or_else(|| invalid_params("`url` is required"))?;
    let (auth_scheme, auth_credentials) = match config.get("authentication") {
        None | Some(Value::Null) => (None, None),
        Some(auth) if auth.is_object() => {
            let scheme = match version {
                Version::V1 => text(auth, "scheme")?,
                Version::V0_3 => match auth.get("schemes") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(schemes)) => schemes
                        .iter()
                        .map(|s| {
                            s.as_str().map(str::to_owned).ok_or_else(|| {
                                invalid_params("`authentication.schemes` must be strings")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter()
                        .find(|s| !s.is_empty()),
                    Some(_) => {
                        return Err(invalid_params("`authentication.schemes` must be an array"));
                    }
                },
            };
            (scheme, text(auth, "credentials")?)
        }
        Some(_) => return Err(invalid_params("`authentication` must be an object")),
    };
    Ok(NewPushConfig {
        id: text(config, "id")?,
        url,
        token: text(config, "token")?,
        auth_scheme,
        auth_credentials,
        version,
    })
}

/// A stored config as `version` shows it, without its token or credentials.
fn config_json(version: Version, config: &PushConfig) -> Value {
    let task_id = config.task_id.to_string();
    match version {
        Version::V1 => {
            let mut out = json!({ "taskId": task_id, "id": config.id, "url": config.url });
            if let Some(scheme) = &config.auth_scheme {
                out["authentication"] = json!({ "scheme": scheme });
            }
            out
        }
        Version::V0_3 => {
            let mut inner = json!({ "id": config.id, "url": config.url });
            if let Some(scheme) = &config.auth_scheme {
                inner["authentication"] = json!({ "schemes": [scheme] });
            }
            json!({ "taskId": task_id, "pushNotificationConfig": inner })
        }
    }
}
