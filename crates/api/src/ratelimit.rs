//! Rate limits at the gateway: GCRA (`governor`) per API key or OIDC user, at its role's rate,
//! and per tenant, all its keys and users together. Checked right after authentication, before
//! any work; over either limit the answer is `429 rate_limited` with `Retry-After` and
//! `RateLimit-*` headers, the same on `/v1`, A2A and MCP.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use nexus_config::{Rate, RateLimitConfig};
use nexus_core::identity::Role;
use nexus_core::{Caller, ErrorCode, Principal, TenantId};

use crate::error::ApiError;

/// One limiter per role (a keyed limiter has one quota) and one for tenants.
#[derive(Debug)]
pub struct RateLimits {
    by_role: [(Rate, DefaultKeyedRateLimiter<u128>); Role::ALL.len()],
    tenants: (Rate, DefaultKeyedRateLimiter<TenantId>),
    /// Requests admitted, to run the upkeep every [`UPKEEP_EVERY`].
    admitted: AtomicU64,
}

/// Requests between two upkeeps of the limiters' state (a scan of every key seen).
const UPKEEP_EVERY: u64 = 1 << 16;

/// Why a request was refused: the rate it went over and when to retry.
#[derive(Debug, Clone, Copy)]
pub struct Exceeded {
    scope: &'static str,
    rate: Rate,
    retry_after: Duration,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: Rate) -> DefaultKeyedRateLimiter<K> {
    let per_second = NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

impl RateLimits {
    /// The limiters `config` describes; `None` when rate limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let rate_of = |role: Role| {
            let own = match role {
                Role::Viewer => config.viewer,
                Role::Operator => config.operator,
                Role::Developer => config.developer,
                Role::Admin => config.admin,
                Role::Owner => config.owner,
            };
            let rate = own.unwrap_or(config.key);
            (rate, limiter(rate))
        };
        Some(Self {
            by_role: Role::ALL.map(rate_of),
            tenants: (config.tenant, limiter(config.tenant)),
            admitted: AtomicU64::new(0),
        })
    }

    /// Counts one request of `caller` against its key's and its tenant's rates.
    pub fn admit(&self, caller: &Caller) -> Result<(), Exceeded> {
        if self.admitted.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.forget_idle();
        }
        let own = match &caller.principal {
            Principal::ApiKey { id, .. } => Some((id.as_uuid().as_u128(), "key")),
            Principal::User { subject } => Some((user_key(subject), "user")),
            Principal::Account { id, .. } => Some((id.as_uuid().as_u128(), "user")),
            Principal::Service { id, .. } => Some((id.as_uuid().as_u128(), "service")),
            Principal::Agent { .. } | Principal::System => None,
        };
        if let Some((key, scope)) = own {
            let (rate, limiter) = &self.by_role[caller.role as usize];
            check(limiter, &key, scope, *rate)?;
        }
        let (rate, limiter) = &self.tenants;
        check(limiter, &caller.tenant, "tenant", *rate)
    }

    /// Drops the state of keys and tenants that are back to a full burst (memory upkeep).
    fn forget_idle(&self) {
        for (_, limiter) in &self.by_role {
            limiter.retain_recent();
        }
        self.tenants.1.retain_recent();
    }
}

/// The limiter key of an OIDC user: the first 128 bits of its subject's sha256, in the same
/// key space as API key ids (a collision between the two is as likely as one of the hashes).
fn user_key(subject: &str) -> u128 {
    let hash = nexus_auth::hash_key(subject);
    hash.get(..32)
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .unwrap_or_default()
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    scope: &'static str,
    rate: Rate,
) -> Result<(), Exceeded> {
    limiter.check_key(key).map_err(|not_until| Exceeded {
        scope,
        rate,
        retry_after: not_until.wait_time_from(DefaultClock::default().now()),
    })
}

impl IntoResponse for Exceeded {
    fn into_response(self) -> Response {
        // Whole seconds, at least one: what `Retry-After` can say.
        let seconds = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        let mut response = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "this {} sent more than {} requests a second (burst {}); retry in {seconds} s",
                self.scope, self.rate.per_second, self.rate.burst
            ),
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        headers.insert("ratelimit-limit", HeaderValue::from(self.rate.burst));
        headers.insert("ratelimit-remaining", HeaderValue::from(0));
        headers.insert("ratelimit-reset", HeaderValue::from(seconds));
        if let Ok(policy) = HeaderValue::from_str(&format!(
            "{};w=1;burst={};scope={}",
            self.rate.per_second, self.rate.burst, self.scope
        )) {
            headers.insert("ratelimit-policy", policy);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_limited_by_subject_at_their_roles_rate() {
        let slow = Rate {
            per_second: 1,
            burst: 2,
        };
        let config = RateLimitConfig {
            key: slow,
            tenant: Rate {
                per_second: 1_000,
                burst: 1_000,
            },
            ..RateLimitConfig::default()
        };
        let Some(limits) = RateLimits::new(&config) else {
            panic!("rate limits are on by default");
        };
        let tenant = TenantId::new();
        let alice = Caller::for_user(tenant, "alice".into(), Role::Viewer);
        let bob = Caller::for_user(tenant, "bob".into(), Role::Viewer);
        assert!(limits.admit(&alice).is_ok());
        assert!(limits.admit(&alice).is_ok());
        let refused = limits.admit(&alice).err().map(|e| e.scope);
        assert_eq!(refused, Some("user"));
        assert!(
            limits.admit(&bob).is_ok(),
            "another subject has its own rate"
        );
        assert_ne!(user_key("alice"), user_key("bob"));
    }
}
