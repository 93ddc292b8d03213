//! Typed configuration for `nexus server`.
//!
//! Layers, later wins: built-in defaults → the config file (`nexus.toml` in the data directory,
//! or `--config FILE`) → environment variables `NEXUS__SECTION__KEY` → command-line flags.
//! Unknown keys are errors in every layer, and [`Config::validate`] names the key at fault.
//!
//! The config file lives in the data directory rather than the working directory because a
//! project's `nexus.toml` is its agent manifest (DESIGN.md §7).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod cors;
mod hosts;
mod tls;

pub use cors::{CorsConfig, DEFAULT_CORS_MAX_AGE_SECS, MAX_CORS_ORIGINS};
pub use hosts::{ANY_HOST, MAX_ALLOWED_HOSTS, MAX_HOST_NAME_LEN, is_dns_name};
pub use tls::{
    ClientAuth, MAX_TRUST_DOMAIN_LEN, TlsConfig, TlsOverrides, TlsVersion, is_trust_domain,
};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// File name of the server config inside the data directory.
pub const CONFIG_FILE_NAME: &str = "nexus.toml";
/// Prefix of configuration environment variables; `__` separates the path.
pub const ENV_PREFIX: &str = "NEXUS__";
/// Default listen address: loopback only, so a fresh install is not exposed on the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".nexus";

/// Largest request body by default. Control-plane JSON is small; packages are uploaded through
/// their own route with its own limit.
pub const DEFAULT_BODY_LIMIT_BYTES: u64 = 1024 * 1024;
/// Hard ceiling for the body limit: anything larger must stream, not buffer.
pub const MAX_BODY_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// A request that takes longer than this ends with 503 `timeout`.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Requests processed at once before new ones are shed with 503 `overloaded`; bounds memory
/// and keeps latency flat under overload instead of queueing without end.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// How long shutdown waits for in-flight requests before closing anyway.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// Open client connections at most (the server also stays 256 below its file limit). At the
/// cap the connection idle the longest is closed to make room.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// A request head must arrive within this, and a kept-alive connection is closed after idling
/// this long: slow-header and idle connections cannot hold the server's sockets.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Longest header timeout accepted: beyond it, slow-header floods hold sockets for minutes.
pub const MAX_HEADER_TIMEOUT_SECS: u64 = 300;

/// The whole server configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub push: PushConfig,
    pub runtime: RuntimeConfig,
    pub rate_limit: RateLimitConfig,
    /// OIDC bearer tokens; off (API keys only) when absent.
    pub oidc: Option<OidcConfig>,
}

/// `[server]`: the HTTP listener and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// Where the SQLite database, blobs and compiled components live.
    pub data_dir: PathBuf,
    pub body_limit_bytes: u64,
    pub request_timeout_secs: u64,
    pub max_in_flight: usize,
    /// Requests of one tenant in flight at most; default a quarter of `max_in_flight`, so one
    /// tenant's flood (slow bodies, slow agents) leaves the rest of the node to the others.
    pub max_in_flight_per_tenant: Option<usize>,
    /// Requests of one principal (key, user, service account) in flight at most; default half
    /// the tenant's share.
    pub max_in_flight_per_principal: Option<usize>,
    /// Open client connections at most; the file limit may lower it.
    pub max_connections: usize,
    /// Seconds a request head may take to arrive, and a kept-alive connection may idle.
    pub header_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// HTTPS; plain HTTP unless a certificate and key are set.
    pub tls: TlsConfig,
    /// Cross-origin requests from browsers; none allowed unless origins are listed.
    pub cors: CorsConfig,
    /// Host names the server answers to besides IP literals and `localhost` (always served):
    /// a request whose `Host` names anything else is refused, which defeats DNS rebinding.
    /// `*.example.com` allows the names below `example.com`; `*` allows every name (behind a
    /// proxy that rewrites `Host`). Empty by default: the server's own addresses only.
    pub allowed_hosts: Vec<String>,
}

/// `[database]`: which store backend to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:password@host/db`; empty means
    /// `sqlite://<data_dir>/nexus.db`.
    pub url: String,
    /// Connection pool size (PostgreSQL) or reader pool size (SQLite).
    pub max_connections: u32,
}

/// `[log]`: what the server logs and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (human on a terminal, JSON otherwise), `json` or `human`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `nexus=debug,sqlx=warn`.
    pub level: String,
}

/// `[push]`: A2A push notifications (webhooks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Allow webhooks whose host is or resolves to a loopback, private, link-local or other
    /// non-public address. Off by default: callers choose webhook URLs, and the server must not
    /// become their way into its own network. Turn on for receivers on the same host or LAN.
    pub allow_private_addresses: bool,
}

/// `[runtime]`: the agent runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Allow agents' outbound HTTP to loopback, private, link-local, unspecified and other
    /// non-public addresses, for grants that name the host exactly. Off by default: deployers
    /// choose grants, and an agent must not become their way into the node's own API or the
    /// services beside it. Turn on for agents that call services on the same host or LAN.
    pub allow_private_addresses: bool,
}

/// A GCRA rate: a sustained number of requests per second and the burst allowed on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// `[rate_limit]`: requests per API key and per tenant, checked at the gateway after
/// authentication; over it, `429` with `Retry-After`. A key's rate is `key`, or its role's
/// (`[rate_limit.viewer]`, …) when one is set; every tenant's keys together share `tenant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Per API key, unless its role has a rate of its own.
    pub key: Rate,
    /// Per tenant, all its keys together: one tenant cannot take the node from the others.
    pub tenant: Rate,
    pub viewer: Option<Rate>,
    pub operator: Option<Rate>,
    pub developer: Option<Rate>,
    pub admin: Option<Rate>,
    pub owner: Option<Rate>,
    /// Password logins (`POST /v1/login`) per client address, before any password is checked.
    pub login: LoginRate,
}

/// `[rate_limit.login]`: a GCRA rate in logins per minute, and the burst allowed on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRate {
    pub per_minute: u32,
    pub burst: u32,
}

/// Default login rate per client address: a person mistyping a few times, or a team behind
/// one NAT logging in at 9 am, gets through; guessing passwords from one address gets 10 a
/// minute (each also costs an argon2 check, at most 2 at once per node).
pub const DEFAULT_LOGIN_RATE: LoginRate = LoginRate {
    per_minute: 10,
    burst: 10,
};

/// Default rate per key: far above what a person or a CI job sends, low enough that one
/// runaway client cannot starve a node (which serves ~15,000 tasks/s, docs/BENCHMARKS.md).
pub const DEFAULT_KEY_RATE: Rate = Rate {
    per_second: 500,
    burst: 1_000,
};
/// Default rate per tenant: a few busy keys' worth.
pub const DEFAULT_TENANT_RATE: Rate = Rate {
    per_second: 2_000,
    burst: 4_000,
};

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key: DEFAULT_KEY_RATE,
            tenant: DEFAULT_TENANT_RATE,
            viewer: None,
            operator: None,
            developer: None,
            admin: None,
            owner: None,
            login: DEFAULT_LOGIN_RATE,
        }
    }
}

/// Default claim holding the tenant's name.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant";
/// Default claim holding the role.
pub const DEFAULT_ROLE_CLAIM: &str = "role";
/// Default claim naming the user.
pub const DEFAULT_SUBJECT_CLAIM: &str = "sub";
/// Default claim listing the user's teams (the usual name for group membership).
pub const DEFAULT_TEAMS_CLAIM: &str = "groups";
/// Role of a token without a role claim: the least one.
pub const DEFAULT_OIDC_ROLE: &str = "viewer";
/// Clock skew allowed on `exp` and `nbf` by default.
pub const DEFAULT_OIDC_LEEWAY_SECS: u64 = 60;
/// Most clock skew allowed: beyond this an expired token lives on for too long.
pub const MAX_OIDC_LEEWAY_SECS: u64 = 600;
/// How often the issuer's keys are fetched again by default (besides when a token names a
/// key not seen yet).
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
/// Range of `jwks_refresh_secs`: no more often than unknown keys may trigger a fetch (10 s), at
/// least daily.
pub const JWKS_REFRESH_SECS: std::ops::RangeInclusive<u64> = 10..=86_400;
/// The built-in roles, as `role_claim` values and `default_role` name them (`nexus_core::Role`).
pub const ROLES: [&str; 5] = ["viewer", "operator", "developer", "admin", "owner"];

/// `[oidc]`: bearer tokens that are JWTs from this OpenID Connect issuer are verified against
/// its published keys (discovery, then `jwks_uri`) and become callers of the tenant and role
/// their claims name. Absent: only API keys authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL, exactly as tokens' `iss` says it: `https://…`, or `http://` for a
    /// loopback host only. Discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// What tokens' `aud` must contain (the client id registered for NexusCore).
    pub audience: String,
    /// The claim holding the tenant's name.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The tenant of tokens without the tenant claim; without one, such tokens are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tenant: Option<String>,
    /// The claim holding the role (`viewer`, `operator`, `developer`, `admin` or `owner`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The role of tokens without the role claim.
    #[serde(default = "default_oidc_role")]
    pub default_role: String,
    /// The claim naming the user (audit events and policies see `oidc:<value>`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// The claim listing the user's teams, an array of names; policies match them as
    /// `principal in Nexus::Team::"<name>"`. Entries that are not valid names are ignored.
    #[serde(default = "default_teams_claim")]
    pub teams_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 600).
    #[serde(default = "default_oidc_leeway_secs")]
    pub leeway_secs: u64,
    /// How often the issuer's keys are fetched again, in seconds.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
}

fn default_tenant_claim() -> String {
    DEFAULT_TENANT_CLAIM.to_owned()
}
fn default_role_claim() -> String {
    DEFAULT_ROLE_CLAIM.to_owned()
}
fn default_subject_claim() -> String {
    DEFAULT_SUBJECT_CLAIM.to_owned()
}
fn default_teams_claim() -> String {
    DEFAULT_TEAMS_CLAIM.to_owned()
}
fn default_oidc_role() -> String {
    DEFAULT_OIDC_ROLE.to_owned()
}
fn default_oidc_leeway_secs() -> u64 {
    DEFAULT_OIDC_LEEWAY_SECS
}
fn default_jwks_refresh_secs() -> u64 {
    DEFAULT_JWKS_REFRESH_SECS
}

impl OidcConfig {
    /// Settings for `issuer` and `audience`, every other key at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            tenant_claim: default_tenant_claim(),
            default_tenant: None,
            role_claim: default_role_claim(),
            default_role: default_oidc_role(),
            subject_claim: default_subject_claim(),
            teams_claim: default_teams_claim(),
            leeway_secs: DEFAULT_OIDC_LEEWAY_SECS,
            jwks_refresh_secs: DEFAULT_JWKS_REFRESH_SECS,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Err(reason) = check_issuer(&self.issuer) {
            return invalid("oidc.issuer", reason);
        }
        if self.audience.trim().is_empty() {
            return invalid("oidc.audience", "must not be empty".into());
        }
        for (key, claim) in [
            ("oidc.tenant_claim", &self.tenant_claim),
            ("oidc.role_claim", &self.role_claim),
            ("oidc.subject_claim", &self.subject_claim),
            ("oidc.teams_claim", &self.teams_claim),
        ] {
            if claim.trim().is_empty() {
                return invalid(key, "must name a claim".into());
            }
        }
        if self
            .default_tenant
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return invalid(
                "oidc.default_tenant",
                "must name a tenant (or be left out)".into(),
            );
        }
        if !ROLES.contains(&self.default_role.as_str()) {
            return invalid(
                "oidc.default_role",
                format!(
                    "`{}` is not a role: expected one of {}",
                    self.default_role,
                    ROLES.join(", ")
                ),
            );
        }
        if self.leeway_secs > MAX_OIDC_LEEWAY_SECS {
            return invalid(
                "oidc.leeway_secs",
                format!("{} is above {MAX_OIDC_LEEWAY_SECS}", self.leeway_secs),
            );
        }
        if !JWKS_REFRESH_SECS.contains(&self.jwks_refresh_secs) {
            return invalid(
                "oidc.jwks_refresh_secs",
                format!(
                    "{} is outside {}..={}",
                    self.jwks_refresh_secs,
                    JWKS_REFRESH_SECS.start(),
                    JWKS_REFRESH_SECS.end()
                ),
            );
        }
        Ok(())
    }
}

/// Checks an issuer URL: absolute, `https` (or `http` on a loopback host: a local issuer for
/// development and tests), with a host, without credentials, query or fragment.
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{issuer}` has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "`{issuer}` must be https (http is allowed for loopback hosts only)"
        )),
        other => Err(format!("scheme `{other}` is not https")),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Human,
}

impl ServerConfig {
    /// Requests of one tenant in flight at most (`max_in_flight_per_tenant`, or a quarter of
    /// `max_in_flight`).
    pub fn in_flight_per_tenant(&self) -> usize {
        self.max_in_flight_per_tenant
            .unwrap_or(self.max_in_flight / 4)
            .max(1)
    }

    /// Requests of one principal in flight at most (`max_in_flight_per_principal`, or half
    /// the tenant's share).
    pub fn in_flight_per_principal(&self) -> usize {
        self.max_in_flight_per_principal
            .unwrap_or(self.in_flight_per_tenant() / 2)
            .max(1)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_tenant: None,
            max_in_flight_per_principal: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            tls: TlsConfig::default(),
            cors: CorsConfig::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer has an unknown key, a wrong type or bad syntax. figment's message names the key
    /// and the layer (file or environment variable) it came from.
    #[error("{0}")]
    Load(Box<figment::Error>),
    /// The explicitly given config file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value has the right type but is not acceptable.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Values given as command-line flags (the last layer). `None` leaves the value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--tls-*` flags: `[server.tls]` keys.
    pub tls: TlsOverrides,
}

#[derive(Serialize)]
struct OverrideLayer<'a> {
    server: ServerOverride<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<DatabaseOverride<'a>>,
}

#[derive(Serialize)]
struct ServerOverride<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<&'a Path>,
    #[serde(skip_serializing_if = "TlsOverrides::is_empty")]
    tls: &'a TlsOverrides,
}

#[derive(Serialize)]
struct DatabaseOverride<'a> {
    url: &'a str,
}

impl Config {
    /// Loads the layered configuration.
    ///
    /// `config_file` is an explicit `--config` path (it must exist); without one, the file
    /// `nexus.toml` in the data directory is read if present. The data directory used for that
    /// look-up comes from the flags, then `NEXUS__SERVER__DATA_DIR`, then the default.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match config_file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => path.to_owned(),
            None => {
                let data_dir = overrides
                    .data_dir
                    .clone()
                    .or_else(|| std::env::var_os("NEXUS__SERVER__DATA_DIR").map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
                data_dir.join(CONFIG_FILE_NAME)
            }
        };
        let layer = OverrideLayer {
            server: ServerOverride {
                listen: overrides.listen.as_deref(),
                data_dir: overrides.data_dir.as_deref(),
                tls: &overrides.tls,
            },
            database: overrides
                .database_url
                .as_deref()
                .map(|url| DatabaseOverride { url }),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if file.exists() {
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(Serialized::defaults(layer))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that have the right type but may still be wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let limit = self.server.body_limit_bytes;
        if limit == 0 || limit > MAX_BODY_LIMIT_BYTES {
            return Err(ConfigError::Invalid {
                key: "server.body_limit_bytes",
                reason: format!("{limit} is outside 1..={MAX_BODY_LIMIT_BYTES}"),
            });
        }
        if !(1..=3600).contains(&self.server.request_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "server.request_timeout_secs",
                reason: format!("{} is outside 1..=3600", self.server.request_timeout_secs),
            });
        }
        if self.server.max_in_flight == 0 {
            return Err(ConfigError::Invalid {
                key: "server.max_in_flight",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(per_tenant) = self.server.max_in_flight_per_tenant
            && !(1..=self.server.max_in_flight).contains(&per_tenant)
        {
            return Err(ConfigError::Invalid {
                key: "server.max_in_flight_per_tenant",
                reason: format!(
                    "{per_tenant} is outside 1..={} (server.max_in_flight)",
                    self.server.max_in_flight
                ),
            });
        }
        if let Some(per_principal) = self.server.max_in_flight_per_principal
            && !(1..=self.server.in_flight_per_tenant()).contains(&per_principal)
        {
            return Err(ConfigError::Invalid {
                key: "server.max_in_flight_per_principal",
                reason: format!(
                    "{per_principal} is outside 1..={} (the tenant's share)",
                    self.server.in_flight_per_tenant()
                ),
            });
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "server.max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if !(1..=MAX_HEADER_TIMEOUT_SECS).contains(&self.server.header_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "server.header_timeout_secs",
                reason: format!(
                    "{} is outside 1..={MAX_HEADER_TIMEOUT_SECS}",
                    self.server.header_timeout_secs
                ),
            });
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "server.data_dir",
                reason: "must not be empty".into(),
            });
        }
        let rates = [
            ("rate_limit.key", Some(self.rate_limit.key)),
            ("rate_limit.tenant", Some(self.rate_limit.tenant)),
            ("rate_limit.viewer", self.rate_limit.viewer),
            ("rate_limit.operator", self.rate_limit.operator),
            ("rate_limit.developer", self.rate_limit.developer),
            ("rate_limit.admin", self.rate_limit.admin),
            ("rate_limit.owner", self.rate_limit.owner),
        ];
        for (key, rate) in rates {
            if let Some(rate) = rate
                && (rate.per_second == 0 || rate.burst == 0)
            {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "per_second and burst must be at least 1".into(),
                });
            }
        }
        let login = self.rate_limit.login;
        if login.per_minute == 0 || login.burst == 0 {
            return Err(ConfigError::Invalid {
                key: "rate_limit.login",
                reason: "per_minute and burst must be at least 1".into(),
            });
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "database.max_connections",
                reason: "must be at least 1".into(),
            });
        }
        self.database_backend()?;
        self.server.tls.validate()?;
        self.server.cors.validate()?;
        hosts::validate(&self.server.allowed_hosts)?;
        if let Some(oidc) = &self.oidc {
            oidc.validate()?;
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid {
                key: "log.level",
                reason: format!("`{}` is not a tracing filter: {e}", self.log.level),
            });
        }
        Ok(())
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .parse()
            .map_err(|e| ConfigError::Invalid {
                key: "server.listen",
                reason: format!("`{}` is not a host:port address ({e})", self.server.listen),
            })
    }

    /// The database URL, defaulting to an SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("nexus.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// Which backend the database URL selects.
    pub fn database_backend(&self) -> Result<DatabaseBackend, ConfigError> {
        DatabaseBackend::of_url(&self.database_url())
    }

    /// The effective configuration as TOML, with secrets (database passwords) redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&self.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The store backend chosen by the database URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

impl DatabaseBackend {
    /// The backend a database URL names: `sqlite:` or `postgres://` (`postgresql://`).
    pub fn of_url(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(ConfigError::Invalid {
                key: "database.url",
                reason: format!(
                    "`{}` must start with sqlite:// or postgres://",
                    redact_url(url)
                ),
            })
        }
    }
}

/// Replaces the password in `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
