//! The Cedar side of authorization: the built-in roles as Cedar policies, a tenant's own
//! policies on top, and one evaluation per decision.
//!
//! Entities (namespace `Nexus`):
//! - principals: `Nexus::Key::"<key id>"`, `Nexus::Account::"<user name>"` (a user logged in
//!   with a password), `Nexus::ServiceAccount::"<name>"` (a key of a service account),
//!   `Nexus::User::"<subject>"` (a holder of an OIDC
//!   token; its `name` is the subject too) and `Nexus::Agent::"<agent id>"` (an agent calling
//!   another), with `id` (the principal id audit events record: `user:alice`, `key:<uuid>`,
//!   `service:ci`, `oidc:<subject>`, `agent:<uuid>`), `role`, `tenant` (its tenant's id), `name`
//!   and `platform_admin`, and member of the `Nexus::Team::"<name>"` entities of its teams (so
//!   `principal in Nexus::Team::"sre"` holds for the team's members);
//! - resources: `Nexus::Tenant::"<id>"` with `tenant`, or `Nexus::Agent::"<name>"` with
//!   `tenant`, `name`, `tags` (the agent's manifest tags) and `owner` (the id of the principal
//!   that created it, so `resource.owner == principal.id` means "its own agents");
//! - actions: `Nexus::Action::"agent.deploy"` and the other names of [`Action`];
//! - context: `now` (Unix seconds), `hour` and `weekday` (UTC, 0 = Monday), and `ip`, the
//!   client's address as a Cedar `ipaddr` (`0.0.0.0` when the call did not come over the
//!   network, e.g. an agent calling another, so an allow-list of networks refuses it).
//!
//! Cedar's rules decide: a `forbid` that matches wins over any `permit`; without a matching
//! `permit` the answer is no. So a tenant's `forbid` narrows what a role allows, and its
//! `permit` widens it (never to platform-only actions, nor above the key-minting rules, which
//! are checked before Cedar).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression,
};
use chrono::{Datelike, Timelike};
use nexus_core::identity::Role;
use nexus_core::{Caller, Principal, TenantId};

use super::Action;

/// The resource an action is about.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// The tenant itself (its lists, keys, policies, tasks).
    Tenant,
    /// One agent, by name, with its manifest's tags and its owner's principal id (empty when
    /// unknown).
    Agent {
        name: &'a str,
        tags: &'a [String],
        owner: &'a str,
    },
}

/// Why Cedar said what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, or the forbids that denied (empty
    /// when nothing permitted).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (e.g. an attribute that is absent); they are skipped.
    pub errors: Vec<String>,
}

/// A policy text that cannot be used as a tenant policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyTextError {
    #[error("not a Cedar policy: {0}")]
    Parse(String),
    #[error("a tenant policy is one `permit` or `forbid` without template slots")]
    NotOne,
    #[error("`{0}` is not an action; actions are Nexus::Action::\"<name>\" with one of: {1}")]
    UnknownAction(String, String),
}

/// Refuses a new policy whose scope names an action that does not exist (a typo would
/// otherwise make a `forbid` forbid nothing). Policies stored earlier are not re-checked.
pub fn check_actions(policy: &Policy) -> Result<(), PolicyTextError> {
    let actions = match policy.action_constraint() {
        ActionConstraint::Any => Vec::new(),
        ActionConstraint::Eq(action) => vec![action],
        ActionConstraint::In(actions) => actions,
    };
    for action in actions {
        let known = action.type_name().to_string() == "Nexus::Action"
            && Action::ALL
                .iter()
                .any(|known| known.name() == action.id().unescaped());
        if !known {
            return Err(PolicyTextError::UnknownAction(
                action.to_string(),
                Action::ALL.map(Action::name).join(", "),
            ));
        }
    }
    Ok(())
}

/// The id built-in policies carry, `role:<role>` or `platform-admin`; tenant policies are
/// `tenant:<name>`.
pub fn tenant_policy_id(name: &str) -> String {
    format!("tenant:{name}")
}

/// The built-in roles as Cedar text: one `permit` per role, listing the actions it may do in
/// its own tenant, plus one for platform admins.
pub fn builtin_policies_text() -> String {
    let mut text = String::new();
    for role in Role::ALL {
        let actions: Vec<String> = Action::ALL
            .iter()
            .filter(|action| !action.platform_only() && action.least_role() <= role)
            .map(|action| format!("    Nexus::Action::\"{}\"", action.name()))
            .collect();
        text.push_str(&format!(
            "@id(\"role:{role}\")\npermit (\n  principal,\n  action in [\n{}\n  ],\n  resource\n)\nwhen {{ principal.role == \"{role}\" && principal.tenant == resource.tenant }};\n\n",
            actions.join(",\n")
        ));
    }
    text.push_str(
        "@id(\"platform-admin\")\npermit (principal, action, resource)\nwhen { principal.platform_admin };\n",
    );
    text
}

/// The built-in policy set, parsed once.
pub fn builtin_policies() -> PolicySet {
    let mut set = PolicySet::new();
    // The text is ours and covered by a test; a failure here would be a bug, and it would
    // leave the set without permits, i.e. deny everything.
    if let Ok(parsed) = PolicySet::from_str(&builtin_policies_text()) {
        for policy in parsed.policies() {
            let id = policy.annotation("id").unwrap_or("builtin").to_owned();
            let _ = set.add(policy.new_id(PolicyId::new(id)));
        }
    }
    set
}

/// Parses one tenant policy, named `name`.
pub fn parse_tenant_policy(name: &str, text: &str) -> Result<Policy, PolicyTextError> {
    let parsed = PolicySet::from_str(text).map_err(|e| PolicyTextError::Parse(e.to_string()))?;
    let mut policies = parsed.policies();
    match (policies.next(), policies.next(), parsed.templates().next()) {
        (Some(policy), None, None) => Ok(policy.new_id(PolicyId::new(tenant_policy_id(name)))),
        _ => Err(PolicyTextError::NotOne),
    }
}

/// The built-in policies followed by a tenant's. A tenant policy that no longer parses (it
/// was stored by another version) is left out and logged.
pub fn policy_set<'a>(tenant: impl IntoIterator<Item = (&'a str, &'a str)>) -> PolicySet {
    let mut set = builtin_policies();
    for (name, text) in tenant {
        let added = match parse_tenant_policy(name, text) {
            Ok(policy) => set.add(policy).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = added {
            tracing::warn!(policy = name, error = %e, "tenant policy left out");
        }
    }
    set
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let kind = EntityTypeName::from_str(kind).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(kind, EntityId::new(id)))
}

fn text(value: impl Into<String>) -> RestrictedExpression {
    RestrictedExpression::new_string(value.into())
}

/// Decides whether `caller` may do `action` to `resource` of `tenant` under `policies`.
pub fn decide(
    policies: &PolicySet,
    caller: &Caller,
    tenant: TenantId,
    action: Action,
    resource: Resource<'_>,
) -> Decided {
    let deny = |error: String| Decided {
        allowed: false,
        policies: Vec::new(),
        errors: vec![error],
    };
    let (principal_uid, name) = match &caller.principal {
        Principal::ApiKey { id, name } => (uid("Nexus::Key", &id.to_string()), name.clone()),
        Principal::Agent { id, name } => (uid("Nexus::Agent", &id.to_string()), name.to_string()),
        Principal::User { subject } => (uid("Nexus::User", subject), subject.clone()),
        Principal::Account { name, .. } => (uid("Nexus::Account", name.as_str()), name.to_string()),
        Principal::Service { name, .. } => (
            uid("Nexus::ServiceAccount", name.as_str()),
            name.to_string(),
        ),
        Principal::System => (uid("Nexus::System", "system"), "system".to_owned()),
    };
    let tenant_text = tenant.to_string();
    let resource_uid = match resource {
        Resource::Tenant => uid("Nexus::Tenant", &tenant_text),
        Resource::Agent { name, .. } => uid("Nexus::Agent", name),
    };
    let (principal_uid, resource_uid, action_uid) = match (
        principal_uid,
        resource_uid,
        uid("Nexus::Action", action.name()),
    ) {
        (Ok(p), Ok(r), Ok(a)) => (p, r, a),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return deny(e),
    };
    let principal_attrs = HashMap::from([
        ("id".to_owned(), text(caller.principal.id())),
        ("role".to_owned(), text(caller.role.as_str())),
        ("tenant".to_owned(), text(caller.tenant.to_string())),
        ("name".to_owned(), text(name)),
        (
            "platform_admin".to_owned(),
            RestrictedExpression::new_bool(caller.platform_admin),
        ),
    ]);
    let resource_attrs = match resource {
        Resource::Tenant => HashMap::from([("tenant".to_owned(), text(tenant_text.clone()))]),
        Resource::Agent { name, tags, owner } => HashMap::from([
            ("tenant".to_owned(), text(tenant_text.clone())),
            ("name".to_owned(), text(name)),
            (
                "tags".to_owned(),
                RestrictedExpression::new_set(tags.iter().map(|t| text(t.clone()))),
            ),
            ("owner".to_owned(), text(owner)),
        ]),
    };
    let mut teams = Vec::with_capacity(caller.teams.len());
    for team in &caller.teams {
        match uid("Nexus::Team", team.as_str()) {
            Ok(team) => teams.push(team),
            Err(e) => return deny(e),
        }
    }
    let parents: HashSet<EntityUid> = teams.iter().cloned().collect();
    let entities = match (
        Entity::new(principal_uid.clone(), principal_attrs, parents),
        Entity::new(resource_uid.clone(), resource_attrs, HashSet::new()),
    ) {
        (Ok(principal), Ok(resource)) => {
            let resource = (principal_uid != resource_uid).then_some(resource);
            let teams = teams.into_iter().map(Entity::with_uid);
            Entities::from_entities(
                std::iter::once(principal).chain(resource).chain(teams),
                None,
            )
        }
        (Err(e), _) | (_, Err(e)) => return deny(e.to_string()),
    };
    let entities = match entities {
        Ok(entities) => entities,
        Err(e) => return deny(e.to_string()),
    };
    let now = nexus_core::page::now();
    let context = Context::from_pairs([
        (
            "now".to_owned(),
            RestrictedExpression::new_long(now.timestamp()),
        ),
        (
            "hour".to_owned(),
            RestrictedExpression::new_long(i64::from(now.hour())),
        ),
        (
            "weekday".to_owned(),
            RestrictedExpression::new_long(i64::from(now.weekday().num_days_from_monday())),
        ),
        (
            "ip".to_owned(),
            RestrictedExpression::new_ip(
                caller
                    .client_ip
                    .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
                    .to_string(),
            ),
        ),
    ]);
    let context = match context {
        Ok(context) => context,
        Err(e) => return deny(e.to_string()),
    };
    let request = match Request::new(principal_uid, action_uid, resource_uid, context, None) {
        Ok(request) => request,
        Err(e) => return deny(e.to_string()),
    };
    let response = Authorizer::new().is_authorized(&request, policies, &entities);
    Decided {
        allowed: response.decision() == Decision::Allow,
        policies: response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect(),
        errors: response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_core::ApiKeyId;

    fn key(role: Role, tenant: TenantId) -> Caller {
        Caller {
            tenant,
            principal: Principal::ApiKey {
                id: ApiKeyId::new(),
                name: "ci".into(),
            },
            role,
            platform_admin: false,
            trace_id: None,
            teams: Vec::new(),
            client_ip: None,
        }
    }

    #[test]
    fn the_builtin_roles_parse_and_follow_the_role_table() {
        let set = builtin_policies();
        assert_eq!(set.policies().count(), Role::ALL.len() + 1);
        let tenant = TenantId::new();
        for role in Role::ALL {
            for action in Action::ALL {
                let decided = decide(&set, &key(role, tenant), tenant, action, Resource::Tenant);
                let expected = !action.platform_only() && action.least_role() <= role;
                assert_eq!(decided.allowed, expected, "{role} {}", action.name());
                assert!(decided.errors.is_empty(), "{:?}", decided.errors);
                if expected {
                    assert_eq!(decided.policies, [format!("role:{role}")]);
                }
            }
        }
    }

    #[test]
    fn roles_do_not_reach_other_tenants_but_platform_admins_do() {
        let set = builtin_policies();
        let (home, other) = (TenantId::new(), TenantId::new());
        let owner = key(Role::Owner, home);
        assert!(!decide(&set, &owner, other, Action::AgentRead, Resource::Tenant).allowed);
        let admin = Caller::system(home);
        let decided = decide(&set, &admin, other, Action::TenantCreate, Resource::Tenant);
        assert!(decided.allowed);
        assert_eq!(decided.policies, ["platform-admin"]);
    }

    #[test]
    fn a_tenant_forbid_narrows_a_role_and_names_itself() {
        let tenant = TenantId::new();
        let forbid = r#"forbid (principal, action == Nexus::Action::"task.send", resource)
            when { resource has tags && resource.tags.contains("prod") && principal.role != "admin" };"#;
        let set = policy_set([("no-prod", forbid)]);
        let tags = ["prod".to_owned()];
        let decided = decide(
            &set,
            &key(Role::Developer, tenant),
            tenant,
            Action::TaskSend,
            Resource::Agent {
                name: "billing",
                tags: &tags,
                owner: "",
            },
        );
        assert!(!decided.allowed);
        assert_eq!(decided.policies, ["tenant:no-prod"]);
        let untagged = decide(
            &set,
            &key(Role::Developer, tenant),
            tenant,
            Action::TaskSend,
            Resource::Agent {
                name: "echo",
                tags: &[],
                owner: "",
            },
        );
        assert!(untagged.allowed);
        let admin = decide(
            &set,
            &key(Role::Admin, tenant),
            tenant,
            Action::TaskSend,
            Resource::Agent {
                name: "billing",
                tags: &tags,
                owner: "",
            },
        );
        assert!(admin.allowed);
    }

    #[test]
    fn tenant_policy_text_is_one_static_policy() {
        assert!(parse_tenant_policy("ok", "permit(principal, action, resource);").is_ok());
        for bad in [
            "",
            "permit(principal, action, resource)",
            "permit(principal, action, resource); forbid(principal, action, resource);",
            "permit(principal == ?principal, action, resource);",
            "allow everything",
        ] {
            assert!(parse_tenant_policy("bad", bad).is_err(), "{bad}");
        }
        let actions = |text: &str| {
            parse_tenant_policy("p", text)
                .and_then(|policy| check_actions(&policy))
                .map_err(|e| e.to_string())
        };
        assert!(
            actions(r#"forbid(principal, action == Nexus::Action::"task.send", resource);"#)
                .is_ok()
        );
        assert!(actions(r#"permit(principal, action in [Nexus::Action::"agent.read", Nexus::Action::"agent.list"], resource);"#).is_ok());
        for typo in [
            r#"forbid(principal, action == Nexus::Action::"policy.list", resource);"#,
            r#"forbid(principal, action in [Nexus::Action::"agent.read", Nexus::Action::"agent.raed"], resource);"#,
            r#"forbid(principal, action == Other::Action::"task.send", resource);"#,
        ] {
            let refused = actions(typo).unwrap_err();
            assert!(
                refused.contains("is not an action") && refused.contains("policy.read"),
                "{refused}"
            );
        }
    }

    #[test]
    fn users_follow_the_role_table_and_tenant_policies_name_them() {
        let tenant = TenantId::new();
        let user = Caller::for_user(tenant, "alice".into(), Role::Developer);
        let set = builtin_policies();
        for action in Action::ALL {
            let decided = decide(&set, &user, tenant, action, Resource::Tenant);
            let expected = !action.platform_only() && action.least_role() <= Role::Developer;
            assert_eq!(decided.allowed, expected, "{}", action.name());
            assert!(decided.errors.is_empty(), "{:?}", decided.errors);
        }
        assert!(
            !decide(
                &set,
                &user,
                TenantId::new(),
                Action::AgentRead,
                Resource::Tenant
            )
            .allowed
        );
        let forbid = r#"forbid (principal == Nexus::User::"alice",
            action == Nexus::Action::"agent.deploy", resource);"#;
        let set = policy_set([("no-alice", forbid)]);
        let decided = decide(&set, &user, tenant, Action::AgentDeploy, Resource::Tenant);
        assert!(!decided.allowed);
        assert_eq!(decided.policies, ["tenant:no-alice"]);
        let bob = Caller::for_user(tenant, "bob".into(), Role::Developer);
        assert!(decide(&set, &bob, tenant, Action::AgentDeploy, Resource::Tenant).allowed);
    }

    #[test]
    fn tenant_policies_name_teams_and_owners() {
        let tenant = TenantId::new();
        let sre = nexus_core::Name::parse("sre").unwrap();
        let alice = Caller::for_user(tenant, "alice".into(), Role::Developer)
            .with_teams(vec![nexus_core::Name::parse("ops").unwrap(), sre.clone()]);
        let bob = Caller::for_user(tenant, "bob".into(), Role::Developer);
        // Only the SRE team deploys; developers may change only the agents they made.
        let set = policy_set([
            (
                "deploy-is-sre",
                r#"forbid (principal, action == Nexus::Action::"agent.deploy", resource)
                    unless { principal in Nexus::Team::"sre" };"#,
            ),
            (
                "own-agents",
                r#"forbid (principal, action == Nexus::Action::"agent.delete", resource)
                    when { resource has owner && resource.owner != principal.id };"#,
            ),
        ]);
        let agent = |owner| Resource::Agent {
            name: "billing",
            tags: &[],
            owner,
        };
        let deploy = |caller: &Caller| {
            decide(&set, caller, tenant, Action::AgentDeploy, agent("oidc:bob")).allowed
        };
        assert!(deploy(&alice));
        assert!(!deploy(&bob));
        let delete = |caller: &Caller, owner| {
            let decided = decide(&set, caller, tenant, Action::AgentDelete, agent(owner));
            assert!(decided.errors.is_empty(), "{:?}", decided.errors);
            decided
        };
        assert!(delete(&bob, "oidc:bob").allowed);
        let theirs = delete(&alice, "oidc:bob");
        assert!(!theirs.allowed);
        assert_eq!(theirs.policies, ["tenant:own-agents"]);
        // Another tenant's team of the same name is not this one: teams come with the caller.
        let outsider =
            Caller::for_user(TenantId::new(), "eve".into(), Role::Developer).with_teams(vec![sre]);
        assert!(!deploy(&outsider));
    }

    #[test]
    fn tenant_policies_name_networks() {
        let tenant = TenantId::new();
        let set = policy_set([(
            "office-only",
            r#"forbid (principal, action == Nexus::Action::"agent.deploy", resource)
                unless { context.ip.isInRange(ip("10.0.0.0/8")) };"#,
        )]);
        let from = |ip: Option<&str>| {
            let caller =
                key(Role::Developer, tenant).with_client_ip(ip.map(|ip| ip.parse().unwrap()));
            let decided = decide(&set, &caller, tenant, Action::AgentDeploy, Resource::Tenant);
            assert!(decided.errors.is_empty(), "{:?}", decided.errors);
            decided.allowed
        };
        assert!(from(Some("10.1.2.3")));
        assert!(!from(Some("192.0.2.1")));
        assert!(!from(Some("2001:db8::1")));
        assert!(!from(None), "no address: outside every network");
    }

    #[test]
    fn an_agent_may_send_tasks_to_agents_of_its_tenant() {
        let tenant = TenantId::new();
        let agent = nexus_core::Agent {
            id: nexus_core::AgentId::new(),
            tenant_id: tenant,
            name: nexus_core::Name::parse("relay").unwrap(),
            current_revision: 1,
            owner: String::new(),
            created_at: nexus_core::page::now(),
            updated_at: nexus_core::page::now(),
        };
        let caller = Caller::for_agent(tenant, &agent, None);
        let decided = decide(
            &builtin_policies(),
            &caller,
            tenant,
            Action::TaskSend,
            Resource::Agent {
                name: "echo",
                tags: &[],
                owner: "",
            },
        );
        assert!(decided.allowed, "{decided:?}");
    }
}
