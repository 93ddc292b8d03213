//! Rate limits at the gateway: GCRA (`governor`) per API key or OIDC user, at its role's rate,
//! and per tenant, all its keys and users together. Checked right after authentication, before
//! any work; over either limit the answer is `429 rate_limited` with `Retry-After` and
//! `RateLimit-*` headers, the same on `/v1`, A2A and MCP. Password logins, which come without
//! credentials, are limited per client address instead (per minute).

use std::net::IpAddr;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use nexus_config::{LoginRate, Rate, RateLimitConfig};
use nexus_core::identity::Role;
use nexus_core::{Caller, ErrorCode, Principal, TenantId};

use crate::error::ApiError;

/// One limiter per role (a keyed limiter has one quota) and one for tenants.
#[derive(Debug)]
pub struct RateLimits {
    by_role: [(Rate, DefaultKeyedRateLimiter<u128>); Role::ALL.len()],
    tenants: (Rate, DefaultKeyedRateLimiter<TenantId>),
    logins: (LoginRate, DefaultKeyedRateLimiter<IpAddr>),
    /// Requests admitted, to run the upkeep every [`UPKEEP_EVERY`].
    admitted: AtomicU64,
}

/// Requests between two upkeeps of the limiters' state (a scan of every key seen).
const UPKEEP_EVERY: u64 = 1 << 16;

/// Why a request was refused: the rate it went over and when to retry.
#[derive(Debug, Clone, Copy)]
pub struct Exceeded {
    scope: &'static str,
    /// Requests allowed per `window` on average.
    sustained: u32,
    burst: u32,
    window: Window,
    retry_after: Duration,
}

/// The unit of a sustained rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Second,
    Minute,
}

impl Window {
    fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
        }
    }

    fn seconds(self) -> u32 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
        }
    }
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
            logins: (config.login, login_limiter(config.login)),
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

    /// Counts one password login from `client` against the per-address login rate.
    pub fn admit_login(&self, client: IpAddr) -> Result<(), Exceeded> {
        if self.admitted.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.forget_idle();
        }
        let (rate, limiter) = &self.logins;
        limiter
            .check_key(&client_key(client))
            .map_err(|not_until| Exceeded {
                scope: "client address",
                sustained: rate.per_minute,
                burst: rate.burst,
                window: Window::Minute,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Drops the state of keys, tenants and addresses that are back to a full burst (memory
    /// upkeep).
    fn forget_idle(&self) {
        for (_, limiter) in &self.by_role {
            limiter.retain_recent();
        }
        self.tenants.1.retain_recent();
        self.logins.1.retain_recent();
    }
}

/// The limiter key of an OIDC user: the first 128 bits of its subject's sha256, in the same
/// key space as API key ids (a collision between the two is as likely as one of the hashes).
/// The client an address stands for: IPv6 clients usually hold a whole /64, so the prefix,
/// not each address of it; an IPv4-mapped address is its IPv4 address.
pub(crate) fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        IpAddr::V4(_) => client,
    }
}

fn user_key(subject: &str) -> u128 {
    let hash = nexus_auth::hash_key(subject);
    hash.get(..32)
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .unwrap_or_default()
}

fn login_limiter(rate: LoginRate) -> DefaultKeyedRateLimiter<IpAddr> {
    let per_minute = NonZeroU32::new(rate.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    scope: &'static str,
    rate: Rate,
) -> Result<(), Exceeded> {
    limiter.check_key(key).map_err(|not_until| Exceeded {
        scope,
        sustained: rate.per_second,
        burst: rate.burst,
        window: Window::Second,
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
                "this {} sent more than {} requests a {} (burst {}); retry in {seconds} s",
                self.scope,
                self.sustained,
                self.window.name(),
                self.burst
            ),
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        headers.insert("ratelimit-limit", HeaderValue::from(self.burst));
        headers.insert("ratelimit-remaining", HeaderValue::from(0));
        headers.insert("ratelimit-reset", HeaderValue::from(seconds));
        if let Ok(policy) = HeaderValue::from_str(&format!(
            "{};w={};burst={};scope={}",
            self.sustained,
            self.window.seconds(),
            self.burst,
            self.scope
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

    #[test]
    fn logins_are_limited_per_address_and_ipv6_per_64() {
        let config = RateLimitConfig {
            login: LoginRate {
                per_minute: 1,
                burst: 2,
            },
            ..RateLimitConfig::default()
        };
        let Some(limits) = RateLimits::new(&config) else {
            panic!("rate limits are on by default");
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let cases = [
            ("10.0.0.1", "10.0.0.1", "10.0.0.2"),
            // One /64 is one client; another /64 is another.
            ("2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:3::1"),
            // An IPv4-mapped address is its IPv4 address.
            ("192.0.2.7", "::ffff:192.0.2.7", "192.0.2.8"),
        ];
        for (first, same, other) in cases {
            assert!(limits.admit_login(ip(first)).is_ok(), "{first}");
            assert!(limits.admit_login(ip(same)).is_ok(), "{same}");
            let refused = limits.admit_login(ip(first)).err();
            assert_eq!(
                refused.map(|e| (e.scope, e.window)),
                Some(("client address", Window::Minute)),
                "{first}"
            );
            assert!(limits.admit_login(ip(other)).is_ok(), "{other}");
        }
    }
}
