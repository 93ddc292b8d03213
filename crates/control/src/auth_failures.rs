//! Failed authentications that name no tenant (an unknown API key, a refused OIDC token):
//! recorded as `auth.fail` events in the chain of the platform's own tenant (`default`), at
//! most one event per [`AUTH_FAILURE_AUDIT_INTERVAL`] per node, counting the failures by reason
//! since the previous one. A flood of guesses costs one write a second, not one per guess;
//! failures of known keys (expired, revoked) are audited in their own tenant, one by one.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use nexus_core::tenant::DEFAULT_TENANT;
use nexus_core::{Name, NewAuditEvent};

use crate::ControlPlane;

/// How often failed authentications are written at most, per node.
pub const AUTH_FAILURE_AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// Failures counted since the last event.
#[derive(Debug)]
pub(crate) struct AuthFailures {
    interval: Duration,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    last_written: Option<Instant>,
    counts: BTreeMap<&'static str, u64>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new(AUTH_FAILURE_AUDIT_INTERVAL)
    }
}

impl AuthFailures {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Counts one failure at `now`; returns the counts to write if an event is due.
    fn note(&self, reason: &'static str, now: Instant) -> Option<BTreeMap<&'static str, u64>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        *pending.counts.entry(reason).or_default() += 1;
        let due = pending
            .last_written
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        pending.last_written = Some(now);
        Some(std::mem::take(&mut pending.counts))
    }
}

impl ControlPlane {
    /// Counts a failed authentication that names no tenant, and writes the counts when due.
    pub(crate) async fn record_auth_failure(&self, reason: &'static str) {
        let Some(counts) = self.auth_failures.note(reason, Instant::now()) else {
            return;
        };
        let tenant = match Name::parse(DEFAULT_TENANT) {
            Ok(name) => self.store.get_tenant_by_name(&name).await,
            Err(e) => {
                tracing::warn!(error = %e, "the default tenant's name does not parse");
                return;
            }
        };
        let event = NewAuditEvent {
            actor: "anonymous".into(),
            action: "auth.fail".into(),
            target: "credentials".into(),
            details: serde_json::json!({ "failures": counts }),
        };
        let written = match tenant {
            Ok(tenant) => self.store.append_audit(tenant.id, event).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "failed authentications could not be audited");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn failures_are_written_at_most_once_per_interval_with_their_counts() {
        let failures = AuthFailures::new(Duration::from_secs(1));
        let start = Instant::now();
        let first = failures.note("unknown_key", start).unwrap();
        assert_eq!(first, BTreeMap::from([("unknown_key", 1)]));
        // Within the interval: counted, not written.
        assert_eq!(
            failures.note("unknown_key", start + Duration::from_millis(300)),
            None
        );
        assert_eq!(
            failures.note("oidc_token", start + Duration::from_millis(600)),
            None
        );
        // The next one after the interval carries everything since.
        let next = failures
            .note("unknown_key", start + Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            next,
            BTreeMap::from([("oidc_token", 1), ("unknown_key", 2)])
        );
        assert_eq!(
            failures.note("unknown_key", start + Duration::from_millis(1500)),
            None
        );
    }
}
