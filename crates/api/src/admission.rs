//! Admission control: how many requests are in flight on the node, per tenant and per
//! principal. A request over any of the three shares is shed at once with `503 overloaded` and
//! `Retry-After`, before its body is read, so one tenant's flood (slow bodies, slow agents, a
//! runaway client) fills its own share and leaves the rest of the node to the others. The same
//! check runs for `/v1`, A2A and MCP: it sits in the authentication layer, the one place every
//! route passes once the caller is known.
//!
//! A request counts from admission until its response head is ready (a stream's body, which
//! may last minutes, does not hold a share).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use nexus_core::{ErrorCode, TenantId};

use crate::error::ApiError;

/// Who a request counts against: its tenant and principal once authenticated; for public
/// routes no tenant, and the client's address as the principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Requester {
    pub tenant: Option<TenantId>,
    pub principal: String,
}

/// The three shares and what is in flight against them.
#[derive(Debug)]
pub(crate) struct Admission {
    node_cap: usize,
    tenant_cap: usize,
    principal_cap: usize,
    in_flight: Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    node: usize,
    /// Only tenants and principals with requests in flight have entries.
    tenants: HashMap<TenantId, usize>,
    principals: HashMap<Requester, usize>,
}

/// Which share a shed request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    Node,
    Tenant,
    Principal,
}

impl Share {
    fn label(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Tenant => "tenant",
            Self::Principal => "principal",
        }
    }
}

impl From<Share> for ApiError {
    fn from(share: Share) -> Self {
        let detail = match share {
            Share::Node => "the server has too many requests in flight; retry shortly",
            Share::Tenant => "this tenant has too many requests in flight; retry shortly",
            Share::Principal => "you have too many requests in flight; retry shortly",
        };
        ApiError::new(ErrorCode::Overloaded, detail)
    }
}

impl Admission {
    /// Shares of `node` requests in all, `tenant` per tenant and `principal` per principal.
    pub(crate) fn new(node: usize, tenant: usize, principal: usize) -> Self {
        Self {
            node_cap: node.max(1),
            tenant_cap: tenant.max(1),
            principal_cap: principal.max(1),
            in_flight: Mutex::new(InFlight::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        // Every change under the lock is a whole increment or decrement.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request in, or says which share it would go over. The request counts until
    /// the returned guard is dropped.
    pub(crate) fn admit(self: &Arc<Self>, requester: Requester) -> Result<Admitted, Share> {
        let mut in_flight = self.lock();
        let shed = if in_flight.node >= self.node_cap {
            Some(Share::Node)
        } else if requester
            .tenant
            .is_some_and(|t| in_flight.tenants.get(&t).copied().unwrap_or(0) >= self.tenant_cap)
        {
            Some(Share::Tenant)
        } else if in_flight.principals.get(&requester).copied().unwrap_or(0) >= self.principal_cap {
            Some(Share::Principal)
        } else {
            None
        };
        if let Some(share) = shed {
            drop(in_flight);
            metrics::counter!(nexus_telemetry::HTTP_REQUESTS_SHED, "scope" => share.label())
                .increment(1);
            return Err(share);
        }
        in_flight.node += 1;
        metrics::gauge!(nexus_telemetry::HTTP_REQUESTS_ADMITTED).set(in_flight.node as f64);
        if let Some(tenant) = requester.tenant {
            *in_flight.tenants.entry(tenant).or_default() += 1;
        }
        *in_flight.principals.entry(requester.clone()).or_default() += 1;
        Ok(Admitted {
            admission: self.clone(),
            requester,
        })
    }
}

/// A request counted in; dropping it counts it out.
#[derive(Debug)]
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    requester: Requester,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut in_flight = self.admission.lock();
        in_flight.node = in_flight.node.saturating_sub(1);
        metrics::gauge!(nexus_telemetry::HTTP_REQUESTS_ADMITTED).set(in_flight.node as f64);
        if let Some(tenant) = self.requester.tenant {
            decrement(&mut in_flight.tenants, &tenant);
        }
        decrement(&mut in_flight.principals, &self.requester);
    }
}

/// Counts one out of `key`'s entry, removing it at zero (so the maps hold only the active).
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester(tenant: Option<TenantId>, principal: &str) -> Requester {
        Requester {
            tenant,
            principal: principal.to_owned(),
        }
    }

    #[test]
    fn each_share_is_enforced_and_a_flooding_tenant_leaves_room_for_others() {
        let admission = Arc::new(Admission::new(5, 3, 2));
        let (a, b) = (TenantId::new(), TenantId::new());
        let mut held = Vec::new();
        held.push(admission.admit(requester(Some(a), "key:1")).expect("1st"));
        held.push(admission.admit(requester(Some(a), "key:1")).expect("2nd"));
        assert_eq!(
            admission.admit(requester(Some(a), "key:1")).err(),
            Some(Share::Principal)
        );
        held.push(
            admission
                .admit(requester(Some(a), "key:2"))
                .expect("another key of a"),
        );
        assert_eq!(
            admission.admit(requester(Some(a), "key:3")).err(),
            Some(Share::Tenant)
        );
        // Tenant a is at its share; b still gets in, up to the node's.
        held.push(admission.admit(requester(Some(b), "key:9")).expect("b"));
        held.push(
            admission
                .admit(requester(None, "ip:10.0.0.1"))
                .expect("public"),
        );
        assert_eq!(
            admission.admit(requester(Some(b), "key:8")).err(),
            Some(Share::Node)
        );
        // Finished requests give their places back, to the last entry.
        held.clear();
        assert_eq!(admission.lock().node, 0);
        assert!(admission.lock().tenants.is_empty());
        assert!(admission.lock().principals.is_empty());
        admission
            .admit(requester(Some(a), "key:1"))
            .expect("room again");
    }

    #[test]
    fn public_requests_count_per_client_address_not_against_a_tenant() {
        let admission = Arc::new(Admission::new(10, 1, 1));
        let _one = admission
            .admit(requester(None, "ip:10.0.0.1"))
            .expect("first");
        assert_eq!(
            admission.admit(requester(None, "ip:10.0.0.1")).err(),
            Some(Share::Principal)
        );
        let _other = admission
            .admit(requester(None, "ip:10.0.0.2"))
            .expect("another address");
    }
}
