//! [`NameCache`]: tenant and agent rows kept in memory, so resolving `/a2a/{tenant}/{agent}` on
//! every request costs no database round trip.
//!
//! **Tenants** never change once created (there is no rename), so a tenant row read once is
//! right until the tenant is deleted; both backends cache them. Deleting a tenant forgets it
//! here; other nodes sharing a PostgreSQL database keep their cached row until they restart,
//! which only matters if the name is taken again by a new tenant (its requests would resolve
//! to the old id on those nodes and be "not found").
//!
//! **Agents** change on deploy, rollback and delete. Their rows are cached only when this store
//! is the database's only writer ([`AgentCaching::Exclusive`]: an SQLite file, which its store
//! locks against a second process), and every agent write through the store drops the cached
//! agents. A PostgreSQL database is shared by the nodes of a cluster, whose writes this store
//! does not see, so there agents are always read from the database.
//!
//! A read that races an agent write must not cache the row the write replaced: each agent
//! write bumps a generation under the cache's lock after it commits, and a row read is only
//! cached if the generation is the same as before the read began. A write caches the agent it
//! leaves (so a freshly deployed agent's first task reads nothing) only if its own bump is the
//! only one since it began: a write that committed in between may be the newer one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nexus_core::{Agent, Name, Tenant, TenantId};

/// Rows cached of each kind before the cache starts over: far more tenants and agents than a
/// deployment serves at once, at a few hundred bytes each (~ a few MB at most).
pub const MAX_CACHED_NAMES: usize = 10_000;

/// Whether agent rows may be cached (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCaching {
    /// This store is the only writer of its database: agent rows are cached.
    Exclusive,
    /// Other processes write the database too: agent rows are always read.
    Shared,
}

/// Tenant and agent rows by name (see the [module docs](self)).
#[derive(Debug)]
pub struct NameCache {
    agent_caching: AgentCaching,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tenants_by_name: HashMap<String, Tenant>,
    tenants_by_id: HashMap<TenantId, Tenant>,
    agents: HashMap<(TenantId, String), Agent>,
    /// Bumped by every agent write, after it commits.
    agent_generation: u64,
    /// Bumped by every tenant deletion, after it commits.
    tenant_generation: u64,
}

/// The tenant rows a read started from, for [`NameCache::put_tenant_read`].
#[derive(Debug, Clone, Copy)]
pub struct TenantGeneration(u64);

/// The agent rows an operation started from, for [`NameCache::put_agent`] and
/// [`NameCache::agents_written`].
#[derive(Debug, Clone, Copy)]
pub struct AgentGeneration(u64);

impl NameCache {
    /// An empty cache.
    pub fn new(agent_caching: AgentCaching) -> Self {
        Self {
            agent_caching,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps stay consistent whatever panicked while holding the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant named `name`, if it was read before.
    pub fn tenant_by_name(&self, name: &Name) -> Option<Tenant> {
        self.lock().tenants_by_name.get(name.as_str()).cloned()
    }

    /// The tenant `id`, if it was read before.
    pub fn tenant_by_id(&self, id: TenantId) -> Option<Tenant> {
        self.lock().tenants_by_id.get(&id).cloned()
    }

    /// Remembers a tenant row as read from (or written to) the database.
    pub fn put_tenant(&self, tenant: &Tenant) {
        let mut inner = self.lock();
        if inner.tenants_by_id.len() >= MAX_CACHED_NAMES {
            inner.tenants_by_id.clear();
            inner.tenants_by_name.clear();
        }
        inner
            .tenants_by_name
            .insert(tenant.name.as_str().to_owned(), tenant.clone());
        inner.tenants_by_id.insert(tenant.id, tenant.clone());
    }

    /// Where a read of a tenant row starts.
    pub fn tenant_generation(&self) -> TenantGeneration {
        TenantGeneration(self.lock().tenant_generation)
    }

    /// Remembers a tenant row read since `start`, unless a tenant was deleted meanwhile (the
    /// row read may be the deleted one).
    pub fn put_tenant_read(&self, start: TenantGeneration, tenant: &Tenant) {
        if self.lock().tenant_generation == start.0 {
            self.put_tenant(tenant);
        }
    }

    /// Forgets a deleted tenant and its agents.
    pub fn forget_tenant(&self, id: TenantId) {
        let mut inner = self.lock();
        inner.tenant_generation += 1;
        if let Some(tenant) = inner.tenants_by_id.remove(&id) {
            inner.tenants_by_name.remove(tenant.name.as_str());
        }
        inner.agents.retain(|(tenant, _), _| *tenant != id);
    }

    /// The agent named `name` in `tenant` if it is cached, or else where a read of it starts.
    pub fn agent(&self, tenant: TenantId, name: &Name) -> Result<Agent, AgentGeneration> {
        let inner = self.lock();
        if self.agent_caching == AgentCaching::Exclusive
            && let Some(agent) = inner.agents.get(&(tenant, name.as_str().to_owned()))
        {
            return Ok(agent.clone());
        }
        Err(AgentGeneration(inner.agent_generation))
    }

    /// Remembers an agent row read since `start`, unless an agent write committed meanwhile.
    pub fn put_agent(&self, start: AgentGeneration, agent: &Agent) {
        if self.agent_caching == AgentCaching::Shared {
            return;
        }
        let mut inner = self.lock();
        if inner.agent_generation != start.0 {
            return;
        }
        if inner.agents.len() >= MAX_CACHED_NAMES {
            inner.agents.clear();
        }
        inner.agents.insert(
            (agent.tenant_id, agent.name.as_str().to_owned()),
            agent.clone(),
        );
    }

    /// Where an agent write starts; taken before its transaction begins.
    pub fn agent_generation(&self) -> AgentGeneration {
        AgentGeneration(self.lock().agent_generation)
    }

    /// Forgets every agent row; called after each agent write (deploy, rollback, delete)
    /// commits, or fails, since a failed commit may still have landed. `written` is the agent
    /// as a write that committed left it; it is cached unless another agent write finished
    /// since `start`.
    pub fn agents_written(&self, start: AgentGeneration, written: Option<&Agent>) {
        let mut inner = self.lock();
        inner.agent_generation += 1;
        inner.agents.clear();
        if let Some(agent) = written
            && self.agent_caching == AgentCaching::Exclusive
            && inner.agent_generation == start.0 + 1
        {
            inner.agents.insert(
                (agent.tenant_id, agent.name.as_str().to_owned()),
                agent.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_core::Tenant;
    use nexus_core::{AgentId, page::now};

    fn agent(tenant: TenantId, name: &str, revision: u32) -> Agent {
        Agent {
            id: AgentId::new(),
            tenant_id: tenant,
            name: Name::parse(name).unwrap(),
            current_revision: revision,
            owner: String::new(),
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let cache = NameCache::new(AgentCaching::Exclusive);
        let tenant = TenantId::new();
        let name = Name::parse("echo").unwrap();
        let Err(start) = cache.agent(tenant, &name) else {
            panic!("nothing is cached yet");
        };
        // A deploy commits while the read is in flight: the row read may be the old one.
        cache.agents_written(cache.agent_generation(), None);
        cache.put_agent(start, &agent(tenant, "echo", 1));
        assert!(cache.agent(tenant, &name).is_err());

        let Err(start) = cache.agent(tenant, &name) else {
            panic!("still nothing cached");
        };
        cache.put_agent(start, &agent(tenant, "echo", 2));
        assert_eq!(cache.agent(tenant, &name).unwrap().current_revision, 2);
        cache.agents_written(cache.agent_generation(), None);
        assert!(cache.agent(tenant, &name).is_err(), "a write drops it");
    }

    #[test]
    fn a_write_caches_what_it_wrote_unless_another_finished_meanwhile() {
        let cache = NameCache::new(AgentCaching::Exclusive);
        let tenant = TenantId::new();
        let name = Name::parse("echo").unwrap();
        let start = cache.agent_generation();
        cache.agents_written(start, Some(&agent(tenant, "echo", 1)));
        assert_eq!(cache.agent(tenant, &name).unwrap().current_revision, 1);

        // Two deploys overlap; either may have committed last, so neither row is cached.
        let first = cache.agent_generation();
        let second = cache.agent_generation();
        cache.agents_written(second, Some(&agent(tenant, "echo", 3)));
        cache.agents_written(first, Some(&agent(tenant, "echo", 2)));
        assert!(cache.agent(tenant, &name).is_err());
    }

    #[test]
    fn a_tenant_read_that_raced_its_deletion_is_not_cached() {
        let cache = NameCache::new(AgentCaching::Exclusive);
        let tenant = Tenant {
            id: TenantId::new(),
            name: Name::parse("acme").unwrap(),
            display_name: "Acme".into(),
            created_at: now(),
        };
        let start = cache.tenant_generation();
        // The tenant is deleted while the read is in flight: the row read is the deleted one.
        cache.forget_tenant(tenant.id);
        cache.put_tenant_read(start, &tenant);
        assert_eq!(cache.tenant_by_id(tenant.id), None);
        assert_eq!(cache.tenant_by_name(&tenant.name), None);
        // A read that raced nothing is cached.
        cache.put_tenant_read(cache.tenant_generation(), &tenant);
        assert_eq!(cache.tenant_by_id(tenant.id), Some(tenant.clone()));
        cache.forget_tenant(tenant.id);
        assert_eq!(cache.tenant_by_name(&tenant.name), None);
    }

    #[test]
    fn agents_of_a_shared_database_are_never_cached() {
        let cache = NameCache::new(AgentCaching::Shared);
        let tenant = TenantId::new();
        let name = Name::parse("echo").unwrap();
        let Err(start) = cache.agent(tenant, &name) else {
            panic!("nothing is cached yet");
        };
        cache.put_agent(start, &agent(tenant, "echo", 1));
        cache.agents_written(cache.agent_generation(), Some(&agent(tenant, "echo", 1)));
        assert!(cache.agent(tenant, &name).is_err());
    }
}
