//! Webhook delivery for A2A push notifications.
//!
//! [`Notifier::deliver`] POSTs one JSON body to a [`Webhook`], with `X-A2A-Notification-Token`
//! and `Authorization: <scheme> <credentials>` when the webhook has them (what the reference
//! `a2a-sdk` sender sends). Each attempt has a timeout; connection failures, timeouts, `429`
//! and `5xx` are retried with exponential backoff (honouring `Retry-After`), other answers are
//! final; after [`Settings::max_attempts`] the notification is dropped with a warning.
//! [`Outbox`] queues one webhook's notifications and delivers them in order.
//!
//! Destinations are checked on every attempt, not only when a webhook is registered: the host
//! is resolved here, every address must be public unless [`Settings::allow_private_addresses`]
//! (see [`nexus_core::net::is_public`]), and the connection goes to an address that was checked
//! — no second lookup that DNS rebinding could answer differently, no proxy, no redirects.
//! That is why this crate opens its own sockets and speaks HTTP/1.1 through `hyper`, with TLS
//! from `rustls` and the Mozilla roots (the stack `wasmtime-wasi-http` uses for agents).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
pub use url::Url;

/// The header carrying a webhook's token, as A2A names it.
pub const TOKEN_HEADER: &str = "x-a2a-notification-token";
/// Longest webhook URL accepted: longer ones are not webhooks but payloads.
pub const MAX_URL_LEN: usize = 2048;
/// How long one attempt may take, from resolving to the response status: a receiver should
/// acknowledge a notification at once and do its work afterwards.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per notification: with the default delays the last one comes about 15 s after the
/// first (1 + 2 + 4 + 8), enough to ride out a restart of the receiver.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Wait before the first retry; each later retry waits twice as long.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between attempts, whatever the backoff or `Retry-After` asks for, so a queue
/// behind a struggling receiver still moves.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Notifications queued for one webhook before the producer waits: a task's burst of streamed
/// updates fits, a receiver that is down holds back only its own queue.
pub const OUTBOX_CAPACITY: usize = 256;
/// Sent as `User-Agent`.
const AGENT: &str = concat!("nexus/", env!("CARGO_PKG_VERSION"));

/// How the notifier delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Allow webhooks on loopback, private, link-local and other non-public addresses (for
    /// receivers on the same host or network; off by default, since a webhook URL is chosen by
    /// the caller and could otherwise reach the platform's own network).
    pub allow_private_addresses: bool,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Attempts per notification, at least 1.
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub base_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
        }
    }
}

/// Why a notification was not delivered, or a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Not an absolute `http(s)` URL with a host, too long, or with a user name or password.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// The host is or resolves to an address that is not public. The message leaves the
    /// address out: callers must not learn how internal names resolve.
    #[error(
        "webhook host `{host}` is not a public address or resolves to one that is not \
         (set [push] allow_private_addresses to allow it)"
    )]
    PrivateAddress { host: String, address: IpAddr },
    /// The host name does not resolve.
    #[error("webhook host `{host}` does not resolve: {reason}")]
    Resolve { host: String, reason: String },
    /// A header value (token or credentials) is not valid in HTTP.
    #[error("webhook {0} is not a valid HTTP header value")]
    InvalidHeader(&'static str),
    /// Connecting, the TLS handshake or the exchange failed.
    #[error("webhook connection failed: {0}")]
    Connect(String),
    /// The attempt took longer than [`Settings::timeout`].
    #[error("the webhook did not answer within {0:?}")]
    Timeout(Duration),
    /// The receiver answered with something other than 2xx.
    #[error("the webhook answered {status}")]
    Status {
        status: StatusCode,
        /// What `Retry-After` asked for, in seconds.
        retry_after: Option<Duration>,
    },
    /// Every attempt failed (or one failed for good); `last` is why the last one did.
    #[error("gave up after {attempts} attempt(s): {last}")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<PushError>,
    },
}

impl PushError {
    /// Whether another attempt may succeed: the receiver or the network may recover.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Resolve { .. } | Self::Connect(_) | Self::Timeout(_) => true,
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::InvalidUrl(_)
            | Self::PrivateAddress { .. }
            | Self::InvalidHeader(_)
            | Self::GaveUp { .. } => false,
        }
    }
}

/// Checks that `text` is a webhook URL: absolute `http` or `https` with a host, at most
/// [`MAX_URL_LEN`] bytes, no user name or password (credentials go in the authentication, where
/// they are kept sealed). The fragment, never sent, is dropped.
pub fn parse_url(text: &str) -> Result<Url, PushError> {
    if text.len() > MAX_URL_LEN {
        return Err(PushError::InvalidUrl(format!(
            "{} bytes; the limit is {MAX_URL_LEN}",
            text.len()
        )));
    }
    let mut url = Url::parse(text).map_err(|e| PushError::InvalidUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PushError::InvalidUrl(format!(
            "scheme `{}`; use http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(PushError::InvalidUrl("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PushError::InvalidUrl(
            "a user name or password in the URL; use the authentication field".into(),
        ));
    }
    url.set_fragment(None);
    Ok(url)
}

/// Where one notification goes and how it authenticates. `Debug` hides the secrets.
#[derive(Clone)]
pub struct Webhook {
    /// From [`parse_url`].
    pub url: Url,
    /// Sent as `X-A2A-Notification-Token`.
    pub token: Option<String>,
    /// The whole `Authorization` value, `<scheme> <credentials>`.
    pub authorization: Option<String>,
    /// Names the webhook in logs (e.g. task and config id); never a secret.
    pub label: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("label", &self.label)
            .finish()
    }
}

/// Delivers notifications to webhooks.
pub struct Notifier {
    settings: Settings,
    tls: TlsConnector,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with `settings`; TLS trusts the Mozilla root certificates.
    pub fn new(settings: Settings) -> Self {
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
            settings,
            tls: TlsConnector::from(Arc::new(tls)),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Checks that `url`'s host resolves, and only to addresses this notifier may reach.
    pub async fn check(&self, url: &Url) -> Result<(), PushError> {
        self.resolve(url).await.map(|_| ())
    }

    /// Delivers `body`, retrying as the settings say. On failure the error says why the last
    /// attempt failed; a warning with the webhook's label has been logged.
    pub async fn deliver(&self, webhook: &Webhook, body: &Value) -> Result<(), PushError> {
        let body = Bytes::from(body.to_string());
        let max_attempts = self.settings.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(
                self.settings.timeout,
                self.attempt(webhook, body.clone()),
            )
            .await
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) => error,
                Err(_) => PushError::Timeout(self.settings.timeout),
            };
            if !error.is_retryable() || attempt >= max_attempts {
                tracing::warn!(
                    webhook = %webhook.label,
                    host = webhook.url.host_str().unwrap_or(""),
                    attempts = attempt,
                    error = %error,
                    "giving up on a push notification"
                );
                return Err(PushError::GaveUp {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = self.delay(attempt, &error);
            tracing::debug!(
                webhook = %webhook.label,
                attempt,
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "push notification failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// A queue for `webhook` whose notifications are delivered one after another, in order.
    pub fn outbox(self: &Arc<Self>, webhook: Webhook) -> Outbox {
        let (queue, mut pending) = mpsc::channel::<Value>(OUTBOX_CAPACITY);
        let notifier = self.clone();
        let worker = tokio::spawn(async move {
            while let Some(body) = pending.recv().await {
                // A failure is logged by `deliver`; the next notification still goes out.
                let _ = notifier.deliver(&webhook, &body).await;
            }
        });
        Outbox {
            queue: Some(queue),
            worker: Some(worker),
        }
    }

    /// Backoff before attempt `attempt + 1`: `base_delay · 2^(attempt-1)`, at least what
    /// `Retry-After` asked for, at most [`MAX_DELAY`].
    fn delay(&self, attempt: u32, error: &PushError) -> Duration {
        let backoff = self
            .settings
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let asked = match error {
            PushError::Status { retry_after, .. } => retry_after.unwrap_or_default(),
            _ => Duration::ZERO,
        };
        backoff.max(asked).min(MAX_DELAY)
    }

    /// The addresses to connect to for `url`, all of them allowed.
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, PushError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| PushError::InvalidUrl("no port".into()))?;
        let (host, addresses): (String, Vec<SocketAddr>) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![(IpAddr::V4(ip), port).into()]),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![(IpAddr::V6(ip), port).into()]),
            Some(url::Host::Domain(name)) => {
                let found = tokio::net::lookup_host((name, port)).await.map_err(|e| {
                    PushError::Resolve {
                        host: name.to_owned(),
                        reason: e.to_string(),
                    }
                })?;
                (name.to_owned(), found.collect())
            }
            None => return Err(PushError::InvalidUrl("no host".into())),
        };
        if addresses.is_empty() {
            return Err(PushError::Resolve {
                host,
                reason: "no addresses".into(),
            });
        }
        if !self.settings.allow_private_addresses
            && let Some(bad) = addresses
                .iter()
                .find(|a| !nexus_core::net::is_public(a.ip()))
        {
            return Err(PushError::PrivateAddress {
                host,
                address: bad.ip(),
            });
        }
        Ok(addresses)
    }

    /// One attempt: resolve, check, connect, POST, read the status.
    async fn attempt(&self, webhook: &Webhook, body: Bytes) -> Result<(), PushError> {
        let url = &webhook.url;
        let addresses = self.resolve(url).await?;
        let request = request(webhook, body)?;
        let mut last = None;
        let mut connected = None;
        for address in &addresses {
            match TcpStream::connect(address).await {
                Ok(tcp) => {
                    connected = Some(tcp);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = connected.ok_or_else(|| {
            PushError::Connect(last.map_or_else(|| "no address".into(), |e| e.to_string()))
        })?;
        // Small request/response exchanges must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let (status, retry_after) = if url.scheme() == "https" {
            let name = match url.host() {
                Some(url::Host::Ipv4(ip)) => rustls::pki_types::ServerName::from(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => rustls::pki_types::ServerName::from(IpAddr::V6(ip)),
                Some(url::Host::Domain(name)) => {
                    rustls::pki_types::ServerName::try_from(name.to_owned())
                        .map_err(|e| PushError::InvalidUrl(e.to_string()))?
                }
                None => return Err(PushError::InvalidUrl("no host".into())),
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| PushError::Connect(format!("TLS: {e}")))?;
            exchange(tls, request).await?
        } else {
            exchange(tcp, request).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(PushError::Status {
                status,
                retry_after,
            })
        }
    }
}

/// The POST request for `webhook`, in origin form with a `Host` header.
fn request(webhook: &Webhook, body: Bytes) -> Result<Request<Full<Bytes>>, PushError> {
    let url = &webhook.url;
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let mut request = Request::post(if target.is_empty() { "/" } else { target })
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, AGENT)
        .body(Full::new(body))
        .map_err(|e| PushError::InvalidUrl(e.to_string()))?;
    let headers = request.headers_mut();
    if let Some(token) = &webhook.token {
        let value = HeaderValue::from_str(token).map_err(|_| PushError::InvalidHeader("token"))?;
        headers.insert(TOKEN_HEADER, value);
    }
    if let Some(authorization) = &webhook.authorization {
        let mut value = HeaderValue::from_str(authorization)
            .map_err(|_| PushError::InvalidHeader("authorization"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(request)
}

/// Sends `request` over a fresh HTTP/1.1 connection on `stream`; returns the status and what
/// `Retry-After` asked for. The response body is not read.
async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<Duration>), PushError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connect = |e: hyper::Error| PushError::Connect(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(connect)?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(connect);
    driver.abort();
    let response = response?;
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok((response.status(), retry_after))
}

/// One webhook's queue: notifications go out one after another, in the order sent.
///
/// [`close`](Self::close) waits until everything queued has been delivered (or given up on);
/// dropping the outbox instead abandons what is still queued or in flight.
#[derive(Debug)]
pub struct Outbox {
    queue: Option<mpsc::Sender<Value>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Outbox {
    /// Queues `body`, waiting while the queue is full.
    pub async fn send(&self, body: Value) {
        if let Some(queue) = &self.queue {
            // The worker only stops once the queue is closed, so this cannot fail.
            let _ = queue.send(body).await;
        }
    }

    /// Waits until every queued notification has been delivered or given up on.
    pub async fn close(mut self) {
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_userinfo() {
        for good in [
            "http://127.0.0.1:9/hook",
            "https://example.com",
            "https://[::1]/x?y=1#frag",
        ] {
            let url = parse_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(url.fragment(), None);
        }
        for bad in [
            "",
            "not a url",
            "/relative",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "unix:/var/run/socket",
        ] {
            assert!(
                matches!(parse_url(bad), Err(PushError::InvalidUrl(_))),
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse_url(&long).is_err());
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let notifier = Notifier::new(Settings {
            base_delay: Duration::from_millis(100),
            ..Settings::default()
        });
        let connect = PushError::Connect("refused".into());
        let delays: Vec<u128> = (1..=4)
            .map(|n| notifier.delay(n, &connect).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(notifier.delay(30, &connect), MAX_DELAY);
        let busy = PushError::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(notifier.delay(1, &busy), Duration::from_secs(3));
        let forever = PushError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(notifier.delay(1, &forever), MAX_DELAY);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |code: u16| PushError::Status {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
            retry_after: None,
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(301).is_retryable());
        assert!(PushError::Timeout(DEFAULT_TIMEOUT).is_retryable());
        assert!(
            !PushError::PrivateAddress {
                host: "x".into(),
                address: IpAddr::from([127, 0, 0, 1]),
            }
            .is_retryable()
        );
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        let strict = Notifier::new(Settings::default());
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://localhost:1/",
        ] {
            let url = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let checked = strict.check(&url).await;
            assert!(
                matches!(checked, Err(PushError::PrivateAddress { .. })),
                "{url}: {checked:?}"
            );
        }
        let lenient = Notifier::new(Settings {
            allow_private_addresses: true,
            ..Settings::default()
        });
        let url = parse_url("http://127.0.0.1:1/").unwrap_or_else(|e| panic!("{e}"));
        assert!(lenient.check(&url).await.is_ok());
    }
}
