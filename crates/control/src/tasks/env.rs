//! The capabilities of one task, from its revision's grants.

use std::sync::Arc;

use nexus_core::{Agent, AgentRevision, Caller, TenantId};
use nexus_host::capability;
use nexus_host::emit::EventSink;
use nexus_host::http::OutboundPolicy;
use nexus_host::llm::LlmCapability;
use nexus_host::state::StateCapability;
use nexus_runtime::TaskEnv;
use nexus_store::{StateScope, StoreError};

use crate::state::SealedState;
use crate::{CallChain, ControlError, ControlPlane, calls, secrets};

impl ControlPlane {
    /// The capabilities of one task, from the revision's grants, with its secrets decrypted.
    pub(crate) async fn task_env(
        self: &Arc<Self>,
        tenant: TenantId,
        agent: &Agent,
        revision: &AgentRevision,
        context_id: &str,
        events: EventSink,
        calls: CallChain,
    ) -> Result<TaskEnv, ControlError> {
        let granted = |name: &str| revision.grants.capabilities.iter().any(|c| c == name);
        let secrets = secrets::open(
            self.store.as_ref(),
            self.kms.as_ref(),
            tenant,
            agent,
            revision,
        )
        .await?;
        Ok(TaskEnv {
            state: if granted(capability::STATE) {
                StateCapability::granted(
                    Arc::new(SealedState::new(
                        self.store.clone(),
                        self.kms.clone(),
                        tenant,
                    )),
                    StateScope {
                        tenant,
                        agent: agent.id,
                        session: context_id.to_owned(),
                    },
                )
            } else {
                StateCapability::denied()
            },
            config: nexus_host::config::ConfigCapability::new(revision.config.clone(), secrets),
            llm: if granted(capability::LLM) {
                LlmCapability::granted(self.llm.clone())
            } else {
                LlmCapability::denied()
            },
            agents: if granted(capability::AGENTS) {
                nexus_host::agents::AgentsCapability::granted(Arc::new(calls::ChildCaller {
                    control: self.clone(),
                    caller: Caller::for_agent(tenant, agent, calls.trace_id.clone()),
                    tenant,
                    context_id: context_id.to_owned(),
                    chain: calls,
                }))
            } else {
                nexus_host::agents::AgentsCapability::new(false)
            },
            bus: nexus_host::bus::BusCapability::new(granted(capability::BUS)),
            outbound: OutboundPolicy::new(&revision.grants.hosts)
                .map_err(|e| StoreError::Corrupt(format!("stored grant: {e}")))?,
            events,
            limits: nexus_runtime::LimitOverrides::default(),
        })
    }
}
