//! Agent-to-agent calls: an agent's `agents.call` becomes a child task of its own task, in the
//! same tenant, carrying the chain of callers (to bound depth and refuse cycles) and the trace.

use std::sync::Arc;

use async_trait::async_trait;
use nexus_core::message::Part;
use nexus_core::{AgentId, Caller, Name, TaskId, TaskState, TenantId};
use nexus_host::agents::{AgentCallError, AgentCaller};
use nexus_store::StoreError;

use crate::{ControlError, ControlPlane, InvokeRequest};

/// Most agents in one chain of calls, the outermost caller included. Each link holds an
/// instance slot while it waits, so the bound also caps what one request can occupy.
pub const MAX_CALL_DEPTH: usize = 8;

/// Where a task sits in a chain of agent-to-agent calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallChain {
    /// The task whose agent made this call; `None` for a task a client started.
    pub parent: Option<TaskId>,
    /// The agents above this task, outermost first.
    pub callers: Vec<AgentId>,
    /// The W3C trace id (32 hex digits) shared by every task of one request.
    pub trace_id: Option<String>,
}

impl CallChain {
    /// The W3C `traceparent` of the task `task` in this chain.
    pub fn traceparent(&self, task: TaskId) -> String {
        let span = task.as_uuid().simple().to_string();
        format!(
            "00-{}-{}-01",
            self.trace_id.as_deref().unwrap_or(&span),
            &span[16..]
        )
    }
}

/// Accepts a W3C `traceparent` header value and returns its trace id.
pub fn trace_id_from_traceparent(value: &str) -> Option<String> {
    let mut fields = value.trim().split('-');
    let (version, trace, span, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(span, 16)
        && hex(flags, 2);
    valid.then(|| trace.to_ascii_lowercase())
}

/// The `agents` capability of one running task.
#[derive(Debug)]
pub(crate) struct ChildCaller {
    pub(crate) control: Arc<ControlPlane>,
    /// The calling agent, as a principal of its own: policies decide what it may call.
    pub(crate) caller: Caller,
    pub(crate) tenant: TenantId,
    pub(crate) context_id: String,
    /// The chain as seen by the called agent: this task is its parent.
    pub(crate) chain: CallChain,
}

#[async_trait]
impl AgentCaller for ChildCaller {
    async fn call(&self, target: &str, message: Vec<Part>) -> Result<Vec<Part>, AgentCallError> {
        let name = match target.split_once('/') {
            Some((tenant, name)) => {
                let owner = match Name::parse(tenant) {
                    Ok(tenant) => self.control.store().get_tenant_by_name(&tenant).await,
                    Err(_) => Err(StoreError::not_found("tenant", tenant)),
                };
                match owner {
                    Ok(owner) if owner.id == self.tenant => name,
                    Ok(_) => {
                        return Err(AgentCallError::Denied(format!(
                            "`{target}` belongs to another tenant"
                        )));
                    }
                    Err(StoreError::NotFound { .. }) => {
                        return Err(AgentCallError::NotFound(target.to_owned()));
                    }
                    Err(e) => return Err(AgentCallError::Unavailable(e.to_string())),
                }
            }
            None => target,
        };
        let name = Name::parse(name).map_err(|_| AgentCallError::NotFound(target.to_owned()))?;
        if self.chain.callers.len() >= MAX_CALL_DEPTH {
            return Err(AgentCallError::DepthExceeded(format!(
                "a chain of calls may hold at most {MAX_CALL_DEPTH} agents"
            )));
        }
        let agent = match self.control.store().get_agent(self.tenant, &name).await {
            Ok(agent) => agent,
            Err(StoreError::NotFound { .. }) => {
                return Err(AgentCallError::NotFound(target.to_owned()));
            }
            Err(e) => return Err(AgentCallError::Unavailable(e.to_string())),
        };
        if self.chain.callers.contains(&agent.id) {
            return Err(AgentCallError::DepthExceeded(format!(
                "`{name}` is already in this chain of calls (a cycle)"
            )));
        }
        let request = InvokeRequest {
            message_id: None,
            message,
            context_id: Some(self.context_id.clone()),
            task_id: None,
            chain: self.chain.clone(),
        };
        // Started on a worker thread's own stack: this call runs on the calling guest's fiber,
        // whose small stack Cedar's evaluation (it guards its recursion) must not run on.
        let (control, caller, tenant) = (self.control.clone(), self.caller.clone(), self.tenant);
        let started =
            tokio::spawn(async move { control.start_agent(&caller, tenant, agent, request).await })
                .await
                .map_err(|e| AgentCallError::Unavailable(format!("starting the call failed: {e}")))?
                .map_err(call_error)?;
        // If the caller's task ends first (canceled, timed out), its child is canceled too.
        let mut orphan = CancelOnDrop {
            control: self.control.clone(),
            caller: self.caller.clone(),
            tenant: self.tenant,
            task: Some(started.task.id),
        };
        let invocation = started.finished().await.map_err(call_error)?;
        orphan.task = None;
        let task = &invocation.task;
        match (task.state, &invocation.result) {
            (TaskState::Completed, Some(nexus_runtime::TaskResult::Completed { reply })) => {
                Ok(reply.message.clone())
            }
            (TaskState::InputRequired, _) => Err(AgentCallError::Failed(format!(
                "`{name}` asked for more input (task {}); agent calls are single-turn",
                task.id
            ))),
            _ => Err(AgentCallError::Failed(format!(
                "task {} of `{name}` ended {}: {}",
                task.id,
                task.state,
                task.status_message.as_deref().unwrap_or("no reason given")
            ))),
        }
    }
}

/// Cancels a child task whose caller stopped waiting for it.
struct CancelOnDrop {
    control: Arc<ControlPlane>,
    caller: Caller,
    tenant: TenantId,
    task: Option<TaskId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let (control, caller, tenant) =
                (self.control.clone(), self.caller.clone(), self.tenant);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    // It may have just ended on its own; then there is nothing to cancel.
                    let _ = control.cancel(&caller, tenant, task).await;
                });
            }
        }
    }
}

fn call_error(error: ControlError) -> AgentCallError {
    match error {
        ControlError::Invalid(why) => AgentCallError::Failed(why),
        ControlError::Denied(why) => AgentCallError::Denied(why),
        ControlError::Store(StoreError::NotFound { kind, key }) => {
            AgentCallError::NotFound(format!("{kind} `{key}`"))
        }
        other => AgentCallError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_strictly() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let cases = [
            (format!("00-{trace}-00f067aa0ba902b7-01"), Some(trace)),
            (
                format!(" 00-{}-00f067aa0ba902b7-00 ", trace.to_uppercase()),
                Some(trace),
            ),
            (format!("ff-{trace}-00f067aa0ba902b7-01"), None),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
                None,
            ),
            (format!("00-{trace}-00f067aa0ba902b7"), None),
            (format!("00-{trace}x-00f067aa0ba902b7-01"), None),
            ("garbage".into(), None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                trace_id_from_traceparent(&header).as_deref(),
                expected,
                "{header}"
            );
        }
    }

    #[test]
    fn a_chain_keeps_its_trace_and_names_each_task() {
        let task = TaskId::new();
        let own = CallChain::default().traceparent(task);
        assert_eq!(trace_id_from_traceparent(&own).map(|t| t.len()), Some(32));
        let chain = CallChain {
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            ..CallChain::default()
        };
        let child = chain.traceparent(task);
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{child}"
        );
    }
}
