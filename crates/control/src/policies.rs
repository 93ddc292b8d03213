//! Tenant policies: Cedar policies a tenant adds to the built-in roles, and `explain`, which
//! says what a principal may do and which policy decided.

use nexus_core::policy::{MAX_POLICIES_PER_TENANT, MAX_POLICY_TEXT_BYTES};
use nexus_core::{ApiKeyId, Caller, Name, NewPolicy, Policy, PolicyId, TenantId};
use serde::Serialize;

use crate::authz::{Decided, Resource, cedar};
use crate::{Action, ControlError, ControlPlane, audit};

/// Longest policy description, in characters.
pub const MAX_POLICY_DESCRIPTION_LEN: usize = 500;

/// A question for [`ControlPlane::explain`]: may this principal do this?
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// Whose rights: a key of the tenant; the caller itself when absent.
    pub key: Option<ApiKeyId>,
    /// An action name, e.g. `agent.deploy`.
    pub action: String,
    /// The agent the action is about; the tenant itself when absent.
    pub agent: Option<Name>,
}

/// The answer of [`ControlPlane::explain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    /// The principal asked about (`key:<id>`).
    pub principal: String,
    pub role: String,
    pub action: String,
    pub resource: String,
    /// The policies that decided: the permits that allowed, or the forbids that denied.
    pub policies: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Policies that could not be evaluated for this request (and so did not apply).
    pub errors: Vec<String>,
}

impl ControlPlane {
    /// Adds a policy to the tenant, parsed and checked first; it applies from the next request.
    pub async fn create_policy(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: Name,
        description: String,
        text: String,
    ) -> Result<Policy, ControlError> {
        self.authorize(caller, tenant, Action::PolicyWrite).await?;
        if text.len() > MAX_POLICY_TEXT_BYTES {
            return Err(ControlError::Invalid(format!(
                "text: at most {MAX_POLICY_TEXT_BYTES} bytes"
            )));
        }
        if description.chars().count() > MAX_POLICY_DESCRIPTION_LEN
            || description.chars().any(char::is_control)
        {
            return Err(ControlError::Invalid(format!(
                "description: at most {MAX_POLICY_DESCRIPTION_LEN} characters, no control \
                 characters"
            )));
        }
        cedar::parse_tenant_policy(name.as_str(), &text)
            .and_then(|policy| cedar::check_actions(&policy))
            .map_err(|e| ControlError::Invalid(format!("text: {e}")))?;
        let new = NewPolicy {
            id: PolicyId::new(),
            name,
            description,
            text,
            created_by: caller.principal.id(),
        };
        let event = audit::event(
            caller,
            "policy.create",
            format!("policies/{}", new.name),
            serde_json::json!({ "text": new.text, "description": new.description }),
        );
        let policy = self
            .store
            .create_policy(tenant, new, MAX_POLICIES_PER_TENANT, event)
            .await?;
        self.policies.forget(tenant);
        Ok(policy)
    }

    /// The tenant's own policies, in creation order.
    pub async fn list_policies(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> Result<Vec<Policy>, ControlError> {
        self.authorize(caller, tenant, Action::PolicyRead).await?;
        Ok(self.store.list_policies(tenant).await?)
    }

    /// The built-in role policies, as Cedar text.
    pub fn builtin_policies(&self) -> String {
        cedar::builtin_policies_text()
    }

    /// Removes a policy; it stops applying from the next request.
    pub async fn delete_policy(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Policy, ControlError> {
        self.authorize(caller, tenant, Action::PolicyWrite).await?;
        let event = audit::event(
            caller,
            "policy.delete",
            format!("policies/{name}"),
            serde_json::Value::Null,
        );
        let deleted = self.store.delete_policy(tenant, name, event).await?;
        self.policies.forget(tenant);
        Ok(deleted)
    }

    /// Says whether a key of the tenant (or the caller) may do an action, and which policy
    /// decided, without doing it.
    pub async fn explain(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: ExplainRequest,
    ) -> Result<Explanation, ControlError> {
        self.authorize(caller, tenant, Action::PolicyRead).await?;
        let action = Action::from_name(&request.action).ok_or_else(|| {
            ControlError::Invalid(format!(
                "action: unknown `{}`; one of {}",
                request.action.chars().take(64).collect::<String>(),
                Action::ALL.map(Action::name).join(", ")
            ))
        })?;
        let subject = match request.key {
            Some(id) => Caller::for_key(&self.store.get_api_key(tenant, id).await?),
            None => caller.clone(),
        };
        let (resource_name, tags, owner) = match &request.agent {
            Some(name) => {
                let agent = self.store.get_agent(tenant, name).await?;
                (
                    format!("agent {name}"),
                    self.agent_tags(tenant, &agent).await?,
                    agent.owner,
                )
            }
            None => ("the tenant".to_owned(), Vec::new().into(), String::new()),
        };
        let resource = match &request.agent {
            Some(name) => Resource::Agent {
                name: name.as_str(),
                tags: &tags,
                owner: &owner,
            },
            None => Resource::Tenant,
        };
        let decided =
            if subject.can_reach(tenant) && (subject.platform_admin || !action.platform_only()) {
                let policies = self.policy_set(tenant).await?;
                cedar::decide(&policies.set, &subject, tenant, action, resource)
            } else {
                Decided {
                    allowed: false,
                    policies: Vec::new(),
                    errors: Vec::new(),
                }
            };
        let reason = if action.platform_only() && !subject.platform_admin {
            "only platform admins may do this, whatever the policies say".to_owned()
        } else if decided.allowed {
            format!("permitted by {}", decided.policies.join(", "))
        } else if decided.policies.is_empty() {
            format!(
                "no policy permits it (the built-in roles allow it from `{}` up)",
                action.least_role()
            )
        } else {
            format!("forbidden by {}", decided.policies.join(", "))
        };
        Ok(Explanation {
            allowed: decided.allowed,
            principal: subject.principal.id(),
            role: subject.role.to_string(),
            action: action.name().to_owned(),
            resource: resource_name,
            policies: decided.policies,
            reason,
            errors: decided.errors,
        })
    }
}
