//! OpenID Connect bearer tokens: a bearer credential shaped like a JWT is verified against the
//! configured issuer's published keys and becomes a [`Caller`] of the tenant and role its
//! claims name ([`ControlPlane::authenticate`] sends it here when `[oidc]` is configured).
//!
//! Keys: discovery (`{issuer}/.well-known/openid-configuration`, whose `issuer` must be the
//! configured one) names `jwks_uri`, whose keys are cached by key id. A token naming a key id
//! that is not cached makes the keys be fetched again at once — that is how a rotation reaches
//! us — but at most once per [`MIN_REFETCH_INTERVAL`], so tokens with made-up key ids cannot
//! turn the server into a load generator against the issuer; and the keys are fetched again in
//! the background every `jwks_refresh` anyway, so a key the issuer withdrew stops working. A
//! failed fetch keeps the keys already cached. Fetches are plain GETs over HTTP/1.1 (TLS by
//! rustls with the Mozilla roots, like webhooks), no redirects, each bounded to
//! [`MAX_ISSUER_BODY_BYTES`] and [`ISSUER_TIMEOUT`]. The issuer is the operator's choice, not a
//! caller's, so its address is not checked against private ranges.
//!
//! Claims: the tenant by name from `tenant_claim` (else `default_tenant`; an unknown tenant is
//! refused), the role from `role_claim` (else `default_role`), the user from `subject_claim`
//! (`Principal::User`, `oidc:<subject>` in audit), its teams from `teams_claim` (an array of
//! names, at most [`MAX_TOKEN_TEAMS`]; entries that are not names are ignored). Never a
//! platform admin.
//!
//! Every refusal is `Unauthenticated` with a short reason that never repeats the token, and
//! counts in `nexus_auth_failures_total{reason="oidc_…"}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use nexus_auth::jwt::{self, Expected, KeyRef, KeySet, Refusal};
use nexus_core::identity::{MAX_SUBJECT_LEN, Role};
use nexus_core::{Caller, Name};
use nexus_store::{Store, StoreError};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, rustls};
use url::Url;

use crate::{ControlError, ControlPlane};

/// Where discovery lives under the issuer (OpenID Connect Discovery 1.0 §4).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Largest discovery document or JWKS read from the issuer: real ones are a few KiB.
pub const MAX_ISSUER_BODY_BYTES: usize = 1024 * 1024;
/// How long fetching the issuer's keys (discovery, then the JWKS) may take, first connection
/// to last byte. A request that triggers a fetch (unknown key id) waits at most this long.
pub const ISSUER_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetches of the issuer's keys at most this often, whatever tokens ask for.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Most entries a token's teams claim may have: a caller carries its teams on every request
/// and each is an entity in every policy decision.
pub const MAX_TOKEN_TEAMS: usize = 256;
/// Sent as `User-Agent`.
const AGENT: &str = concat!("nexus/", env!("CARGO_PKG_VERSION"));

/// How OIDC tokens are verified and mapped to callers (`[oidc]` in the server config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer, compared byte for byte with tokens' `iss` and discovery's `issuer`.
    pub issuer: String,
    /// What tokens' `aud` must contain.
    pub audience: String,
    /// The claim with the tenant's name.
    pub tenant_claim: String,
    /// The tenant of tokens without `tenant_claim`; without one they are refused.
    pub default_tenant: Option<Name>,
    /// The claim with the role.
    pub role_claim: String,
    /// The role of tokens without `role_claim`.
    pub default_role: Role,
    /// The claim naming the user.
    pub subject_claim: String,
    /// The claim listing the user's teams.
    pub teams_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the keys are fetched again in the background.
    pub jwks_refresh: Duration,
    /// Fetches triggered by unknown key ids at most this often ([`MIN_REFETCH_INTERVAL`]).
    pub refetch_interval: Duration,
}

impl OidcSettings {
    /// Settings for `issuer` and `audience` with the defaults `nexus-config` also has: claims
    /// `tenant`, `role` and `sub`, role `viewer`, 60 s leeway, keys refreshed every 5 minutes.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            tenant_claim: "tenant".into(),
            default_tenant: None,
            role_claim: "role".into(),
            default_role: Role::Viewer,
            subject_claim: "sub".into(),
            teams_claim: "groups".into(),
            leeway: Duration::from_secs(60),
            jwks_refresh: Duration::from_secs(300),
            refetch_interval: MIN_REFETCH_INTERVAL,
        }
    }
}

/// Why a token did not become a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Token(Refusal),
    /// The issuer's keys could not be fetched and none are cached.
    Unreachable,
    NoTenant,
    UnknownTenant,
    Role,
    Subject,
    Teams,
}

impl Failure {
    /// The `reason` label of `nexus_auth_failures_total`.
    fn reason(self) -> &'static str {
        match self {
            Self::Token(refusal) => match refusal {
                Refusal::Malformed => "oidc_malformed",
                Refusal::Algorithm => "oidc_algorithm",
                Refusal::UnknownKey => "oidc_unknown_key",
                Refusal::Signature => "oidc_signature",
                Refusal::Issuer => "oidc_issuer",
                Refusal::Audience => "oidc_audience",
                Refusal::Expired => "oidc_expired",
                Refusal::NotYetValid => "oidc_not_yet_valid",
                Refusal::Claims => "oidc_claims",
            },
            Self::Unreachable => "oidc_issuer_unreachable",
            Self::NoTenant => "oidc_no_tenant",
            Self::UnknownTenant => "oidc_unknown_tenant",
            Self::Role => "oidc_role",
            Self::Subject => "oidc_subject",
            Self::Teams => "oidc_teams",
        }
    }

    fn message(self, settings: &OidcSettings) -> String {
        match self {
            Self::Token(refusal) => refusal.to_string(),
            Self::Unreachable => "the bearer token cannot be verified now: the OIDC issuer's \
                                  keys are unavailable"
                .into(),
            Self::NoTenant => format!(
                "the bearer token has no `{}` claim naming a tenant",
                settings.tenant_claim
            ),
            Self::UnknownTenant => "the bearer token's tenant does not exist".into(),
            Self::Role => format!(
                "the bearer token's `{}` claim is not one of viewer, operator, developer, \
                 admin, owner",
                settings.role_claim
            ),
            Self::Subject => format!(
                "the bearer token's `{}` claim is missing, empty, longer than \
                 {MAX_SUBJECT_LEN} bytes or not printable",
                settings.subject_claim
            ),
            Self::Teams => format!(
                "the bearer token's `{}` claim is not an array of at most {MAX_TOKEN_TEAMS} \
                 strings",
                settings.teams_claim
            ),
        }
    }
}

/// The issuer's keys as last fetched.
#[derive(Debug)]
struct Keys {
    set: KeySet,
    fetched: Instant,
}

/// The verifier of one issuer's tokens, with its cached keys.
pub(crate) struct Oidc {
    settings: OidcSettings,
    expected: Expected,
    discovery: Url,
    fetcher: Fetcher,
    keys: RwLock<Option<Arc<Keys>>>,
    /// When the keys were last fetched (or tried); held during a fetch, so concurrent requests
    /// wait for it rather than fetch again.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    pub(crate) fn new(settings: OidcSettings) -> Result<Self, String> {
        check_url(&settings.issuer)?;
        let discovery = format!("{}{DISCOVERY_PATH}", settings.issuer.trim_end_matches('/'));
        let discovery = Url::parse(&discovery).map_err(|e| e.to_string())?;
        let expected = Expected {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway.as_secs(),
        };
        Ok(Self {
            settings,
            expected,
            discovery,
            fetcher: Fetcher::new(),
            keys: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The caller `token` stands for.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        store: &dyn Store,
        token: &str,
    ) -> Result<Caller, ControlError> {
        let failure = match self.verify(token).await {
            Ok(claims) => match self.caller(store, &claims).await {
                Ok(caller) => return Ok(caller),
                Err(Mapped::Store(e)) => return Err(e.into()),
                Err(Mapped::Refused(failure)) => failure,
            },
            Err(failure) => failure,
        };
        metrics::counter!("nexus_auth_failures_total", "reason" => failure.reason()).increment(1);
        tracing::debug!(reason = failure.reason(), "OIDC token refused");
        Err(ControlError::Unauthenticated(
            failure.message(&self.settings),
        ))
    }

    /// The claims of `token` once its signature and registered claims check out.
    async fn verify(self: &Arc<Self>, token: &str) -> Result<Map<String, Value>, Failure> {
        let key = jwt::key_ref(token).map_err(Failure::Token)?;
        let keys = self.keys_for(&key).await?;
        jwt::verify(token, &keys.set, &self.expected).map_err(Failure::Token)
    }

    fn current(&self) -> Option<Arc<Keys>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keys that include the one `key` names, fetching them again if it is not cached.
    async fn keys_for(self: &Arc<Self>, key: &KeyRef) -> Result<Arc<Keys>, Failure> {
        if let Some(keys) = self.current()
            && keys.set.has(key)
        {
            if keys.fetched.elapsed() >= self.settings.jwks_refresh {
                self.refresh_in_background();
            }
            return Ok(keys);
        }
        self.refetch().await
    }

    /// Fetches the keys unless they were fetched (or tried) within the refetch interval;
    /// returns what is cached afterwards.
    async fn refetch(&self) -> Result<Arc<Keys>, Failure> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.settings.refetch_interval) {
            return self.current().ok_or(Failure::Unreachable);
        }
        *last = Some(Instant::now());
        let fetched = tokio::time::timeout(ISSUER_TIMEOUT, self.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", ISSUER_TIMEOUT.as_secs())));
        match fetched {
            Ok(set) => {
                tracing::info!(
                    issuer = %self.settings.issuer,
                    keys = set.len(),
                    key_ids = ?set.key_ids().collect::<Vec<_>>(),
                    "fetched the OIDC issuer's keys"
                );
                let keys = Arc::new(Keys {
                    set,
                    fetched: Instant::now(),
                });
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(keys.clone());
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    error = %e,
                    "cannot fetch the OIDC issuer's keys; keeping those cached"
                );
                Err(Failure::Unreachable)
            }
        }
    }

    /// Starts a refresh of stale keys unless one is under way; requests go on with the keys
    /// they have.
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // A failure is logged, and the keys kept, by `refetch`.
            let _ = this.refetch().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the keys now, whatever the interval (the server's start).
    pub(crate) async fn prefetch(&self) {
        let mut last = self.last_fetch.lock().await;
        *last = None;
        drop(last);
        let _ = self.refetch().await;
    }

    /// Discovery, then the JWKS it names.
    async fn fetch(&self) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let body = self.fetcher.get(&self.discovery).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{} is not a discovery document: {e}", self.discovery))?;
        if discovery.issuer != self.settings.issuer {
            return Err(format!(
                "the discovery document names the issuer `{}`, not `{}`",
                discovery.issuer, self.settings.issuer
            ));
        }
        check_url(&discovery.jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
        let jwks_uri = Url::parse(&discovery.jwks_uri).map_err(|e| e.to_string())?;
        let body = self.fetcher.get(&jwks_uri).await?;
        let set = KeySet::from_jwks(&body).map_err(|e| format!("{jwks_uri}: {e}"))?;
        if set.is_empty() {
            return Err(format!("{jwks_uri} has no RS256 or ES256 signing key"));
        }
        Ok(set)
    }

    /// The caller the verified `claims` describe.
    async fn caller(
        &self,
        store: &dyn Store,
        claims: &Map<String, Value>,
    ) -> Result<Caller, Mapped> {
        let settings = &self.settings;
        let subject = match claims.get(&settings.subject_claim) {
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= MAX_SUBJECT_LEN
                    && !s.chars().any(char::is_control) =>
            {
                s.clone()
            }
            _ => return Err(Mapped::Refused(Failure::Subject)),
        };
        let role = match claims.get(&settings.role_claim) {
            None | Some(Value::Null) => settings.default_role,
            Some(Value::String(s)) => s
                .parse::<Role>()
                .map_err(|_| Mapped::Refused(Failure::Role))?,
            Some(_) => return Err(Mapped::Refused(Failure::Role)),
        };
        let tenant = match claims.get(&settings.tenant_claim) {
            None | Some(Value::Null) => settings
                .default_tenant
                .clone()
                .ok_or(Mapped::Refused(Failure::NoTenant))?,
            Some(Value::String(s)) => {
                Name::parse(s).map_err(|_| Mapped::Refused(Failure::UnknownTenant))?
            }
            Some(_) => return Err(Mapped::Refused(Failure::UnknownTenant)),
        };
        let tenant = match store.get_tenant_by_name(&tenant).await {
            Ok(tenant) => tenant,
            Err(StoreError::NotFound { .. }) => {
                return Err(Mapped::Refused(Failure::UnknownTenant));
            }
            Err(e) => return Err(Mapped::Store(e)),
        };
        let teams = match claims.get(&settings.teams_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) if entries.len() <= MAX_TOKEN_TEAMS => {
                let mut teams = Vec::with_capacity(entries.len());
                for entry in entries {
                    let Value::String(entry) = entry else {
                        return Err(Mapped::Refused(Failure::Teams));
                    };
                    // Issuers' group names need not be ours (`/eng/sre`, GUIDs): a policy
                    // could not name those anyway.
                    if let Ok(team) = Name::parse(entry)
                        && !teams.contains(&team)
                    {
                        teams.push(team);
                    }
                }
                teams
            }
            Some(_) => return Err(Mapped::Refused(Failure::Teams)),
        };
        Ok(Caller::for_user(tenant.id, subject, role).with_teams(teams))
    }
}

enum Mapped {
    Refused(Failure),
    Store(StoreError),
}

/// Checks an issuer or JWKS URL: `https`, or `http` on a loopback host, with a host.
fn check_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{text}` has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "`{text}` must be https (http only on a loopback host)"
        )),
    }
}

/// GETs small JSON documents from the issuer.
struct Fetcher {
    tls: TlsConnector,
}

impl Fetcher {
    fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        // ring's default protocol versions (TLS 1.2 and 1.3) are always available, so the
        // fallback never runs; it keeps a provider mismatch from being a panic.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| rustls::ClientConfig::builder())
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            tls: TlsConnector::from(Arc::new(tls)),
        }
    }

    /// The body of a `200` answer to a GET of `url`, at most [`MAX_ISSUER_BODY_BYTES`] (the
    /// caller bounds the time).
    async fn get(&self, url: &Url) -> Result<Bytes, String> {
        self.exchange(url)
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }

    async fn exchange(&self, url: &Url) -> Result<Bytes, String> {
        let port = url.port_or_known_default().ok_or("no port")?;
        let tcp = match url.host() {
            Some(url::Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await,
            Some(url::Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await,
            Some(url::Host::Domain(name)) => TcpStream::connect((name, port)).await,
            None => return Err("no host".into()),
        }
        .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let request = Request::get(if target.is_empty() { "/" } else { target })
            .header(HOST, host)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        if url.scheme() == "https" {
            let name = match url.host() {
                Some(url::Host::Ipv4(ip)) => rustls::pki_types::ServerName::from(ip),
                Some(url::Host::Ipv6(ip)) => rustls::pki_types::ServerName::from(ip),
                Some(url::Host::Domain(name)) => {
                    rustls::pki_types::ServerName::try_from(name.to_owned())
                        .map_err(|e| e.to_string())?
                }
                None => return Err("no host".into()),
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        }
    }
}

/// Sends `request` over a fresh HTTP/1.1 connection on `stream` and reads the body of a `200`
/// answer, at most [`MAX_ISSUER_BODY_BYTES`].
async fn exchange<S>(stream: S, request: Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_ISSUER_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                format!("reading the body (at most {MAX_ISSUER_BODY_BYTES} bytes): {e}")
            })?;
        Ok(body.to_bytes())
    }
    .await;
    driver.abort();
    result
}

impl ControlPlane {
    /// Accepts bearer tokens from the OIDC issuer `settings` describes, besides API keys.
    /// `Invalid` if the issuer is not an `https` URL (or `http` on a loopback host).
    pub fn with_oidc(mut self, settings: OidcSettings) -> Result<Self, ControlError> {
        let oidc =
            Oidc::new(settings).map_err(|e| ControlError::Invalid(format!("oidc.issuer: {e}")))?;
        self.oidc = Some(Arc::new(oidc));
        Ok(self)
    }

    /// Fetches the OIDC issuer's keys now, so the first token does not wait for them and a
    /// misconfigured issuer shows in the log at start (a failure is logged, not returned: the
    /// issuer may come up later). Does nothing without `[oidc]`.
    pub async fn prefetch_oidc_keys(&self) {
        if let Some(oidc) = &self.oidc {
            oidc.prefetch().await;
        }
    }

    /// The OIDC issuer whose tokens are accepted, if one is configured (public: clients are
    /// told where to get a token).
    pub fn oidc_issuer(&self) -> Option<&str> {
        self.oidc.as_ref().map(|oidc| oidc.settings.issuer.as_str())
    }
}
