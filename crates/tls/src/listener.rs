//! A TLS listener for `axum::serve`: TCP connections are accepted in a loop of their own and
//! each handshake runs in a task of its own, so a slow or silent client holds up no one else.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::TlsPeer;
use crate::server::HANDSHAKES_METRIC;
use crate::{HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES, ServerTls};

/// Finished handshakes waiting for axum to take them. axum takes each at once (it spawns a
/// task per connection), so this only absorbs bursts; when full, handshake tasks wait.
const HANDOFF_QUEUE: usize = 64;

/// How long to wait after an accept error that is not about one connection (out of file
/// descriptors, most likely) before accepting again: retrying at once would spin; a second
/// lets connections close. axum's own listener does the same.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Bounds on handshakes in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Longest a handshake may take from accept ([`HANDSHAKE_TIMEOUT`]).
    pub timeout: Duration,
    /// Most handshakes in progress; more connections are closed ([`MAX_PENDING_HANDSHAKES`]).
    pub max_pending: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            timeout: HANDSHAKE_TIMEOUT,
            max_pending: MAX_PENDING_HANDSHAKES,
        }
    }
}

/// Accepts TLS connections with the configuration [`ServerTls`] holds at each accept, and
/// hands the finished ones to axum (it is an [`axum::serve::Listener`]). TCP_NODELAY is set on
/// every connection: small request/response exchanges must not wait for Nagle's algorithm.
/// Dropping it stops accepting; handshakes in progress finish or time out on their own.
#[derive(Debug)]
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local_addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with the default [`HandshakeLimits`]. Must be called within a
    /// Tokio runtime, which runs the accept loop and the handshakes.
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>) -> io::Result<Self> {
        Self::with_limits(tcp, tls, HandshakeLimits::default())
    }

    /// Starts accepting on `tcp` with the given limits.
    pub fn with_limits(
        tcp: TcpListener,
        tls: Arc<ServerTls>,
        limits: HandshakeLimits,
    ) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (handoff, incoming) = mpsc::channel(HANDOFF_QUEUE);
        let accepting = runtime.spawn(accept_loop(tcp, tls, handoff, limits));
        Ok(Self {
            incoming,
            local_addr,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    /// The client's address and the identity its certificate names.
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(connection) = self.incoming.recv().await {
            return connection;
        }
        // The accept loop only ends when this listener is dropped (or if it panicked).
        tracing::error!("the TLS accept loop stopped; no new connections are accepted");
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(TlsPeer::new(self.local_addr, None))
    }
}

/// Lets handlers see who connected (`ConnectInfo<TlsPeer>`), when the app is served with
/// `into_make_service_with_connect_info::<TlsPeer>()`.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Arc<ServerTls>,
    handoff: mpsc::Sender<(TlsStream<TcpStream>, TlsPeer)>,
    limits: HandshakeLimits,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(connection) => connection,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept connections; retrying in a second");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(pending) = Pending::admit(&tls, limits.max_pending) else {
            tls.counters.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(HANDSHAKES_METRIC, "outcome" => "refused").increment(1);
            tracing::debug!(
                peer = %peer,
                limit = limits.max_pending,
                "too many TLS handshakes in progress; closing the connection"
            );
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = TlsAcceptor::from(tls.config());
        let handoff = handoff.clone();
        tokio::spawn(async move {
            let mut handshake = acceptor.accept(stream).into_fallible();
            let outcome = tokio::time::timeout(limits.timeout, &mut handshake).await;
            // Counted before the socket is closed (when `handshake` or the error's stream
            // drops), so whoever sees the close sees the count.
            let counters = &pending.0.counters;
            match outcome {
                Ok(Ok(stream)) => {
                    counters.handshakes.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(HANDSHAKES_METRIC, "outcome" => "ok").increment(1);
                    drop(pending);
                    let peer = TlsPeer::new(peer, stream.get_ref().1.peer_certificates());
                    // Fails only when the server has stopped taking connections.
                    let _ = handoff.send((stream, peer)).await;
                }
                Ok(Err((e, _stream))) => {
                    counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(HANDSHAKES_METRIC, "outcome" => "failed").increment(1);
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                }
                Err(_elapsed) => {
                    counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(HANDSHAKES_METRIC, "outcome" => "timeout").increment(1);
                    tracing::debug!(
                        peer = %peer,
                        timeout_ms = limits.timeout.as_millis(),
                        "TLS handshake timed out"
                    );
                }
            }
        });
    }
}

/// A handshake in progress, counted in [`crate::TlsStats::in_progress`] until dropped.
struct Pending(Arc<ServerTls>);

impl Pending {
    /// Counts one more handshake in progress, unless `max` already are.
    fn admit(tls: &Arc<ServerTls>, max: usize) -> Option<Self> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        tls.counters
            .in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(tls.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.counters.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Errors about one connection (it went away before it was accepted), not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
