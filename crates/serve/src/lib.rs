//! Serving the API's connections: HTTP/1.1 on hyper, with the limits a public endpoint needs.
//!
//! - **A connection cap** below the file limit ([`connection_cap`]): at the cap, the connection
//!   idle the longest is closed to make room, so idle or slow connections cannot lock new
//!   clients (or `/healthz`) out; with every connection busy, a new one gets `503` and is
//!   closed.
//! - **A header timeout**: a request head must arrive whole within it, and a kept-alive
//!   connection may wait that long for its next request (hyper starts the same timer when a
//!   connection goes idle), so slow-header and idle connections end.
//! - **Problem answers throughout**: what hyper answers on its own (a head too large, a
//!   malformed request) is rewritten as problem+json ([`answers`]).
//! - **Graceful shutdown**: no new connections, idle ones closed, requests in flight finish
//!   within a grace period.
//!
//! Requests carry `ConnectInfo<L::Addr>` (the peer address, or over TLS the `TlsPeer`), as with
//! `axum::serve`'s `into_make_service_with_connect_info`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tower::ServiceExt;

mod answers;
mod connections;
mod files;

pub use files::{FILE_RESERVE, connection_cap, raise_file_limit};

/// Largest request head (request line and headers) read, in bytes; a larger one is answered
/// `431 headers_too_large`. Real heads (a long JWT, cookies) stay under 16 KiB; hyper's own
/// default (about 400 KiB) is a soft bound: its buffer can grow past it within one read and
/// then parse a head somewhat larger, so a head was refused or served depending on how it
/// arrived. Far below that, the bound holds whatever the reads.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

use connections::{Admission, Registry, Slot};

/// How long a refused connection's `503` may take to write before it is dropped anyway.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The answer to a connection refused at the cap, written before closing it.
fn full_response() -> Vec<u8> {
    answers::problem_response(
        503,
        "Service Unavailable",
        "overloaded",
        "too many open connections; retry shortly",
        "retry-after: 1\r\n",
    )
}

/// How a server treats its connections.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Most open connections (see [`connection_cap`] for a value that fits the file limit).
    pub max_connections: usize,
    /// Longest a request head may take to arrive, and a kept-alive connection may sit idle.
    pub header_timeout: Duration,
    /// After shutdown begins, how long requests in flight may take to finish.
    pub grace: Duration,
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection closed within the grace period.
    Drained,
    /// Requests were still in flight when the grace period ran out; they were dropped.
    GraceExpired { open_connections: usize },
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see [`ServeConfig`]).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Stopped
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let registry = Arc::new(Registry::new(config.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .keep_alive(true);
    let (stopping_tx, stopping) = watch::channel(false);

    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match registry.open() {
            Admission::Serve(slot) => {
                tokio::spawn(run_connection(
                    http.clone(),
                    io,
                    peer,
                    app.clone(),
                    slot,
                    stopping.clone(),
                ));
            }
            Admission::Full => {
                tokio::spawn(refuse(io));
            }
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let open = registry.len();
    if open > 0 {
        tracing::info!(open_connections = open, "finishing in-flight requests");
    }
    match tokio::time::timeout(config.grace, registry.all_closed()).await {
        Ok(()) => Stopped::Drained,
        Err(_) => Stopped::GraceExpired {
            open_connections: registry.len(),
        },
    }
}

/// Serves one connection until it ends, is evicted to make room, or shutdown closes it.
async fn run_connection<I, A>(
    http: hyper::server::conn::http1::Builder,
    io: I,
    peer: A,
    app: Router,
    slot: Slot,
    mut stopping: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    A: Clone + Send + Sync + 'static,
{
    let slot = Arc::new(slot);
    let requests = slot.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer.clone()));
        let guard = requests.begin_request();
        let response = app.clone().oneshot(request.map(Body::new));
        async move {
            let response = response.await?;
            // The request counts as in flight until its body has been sent.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_flight = &guard;
                    frame
                }))
            }))
        }
    });
    let connection = http.serve_connection(TokioIo::new(answers::ProblemAnswers::new(io)), service);
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = slot.connection.evict.notified() => {
                // Chosen because it was idle; if a request began meanwhile, let it finish.
                if slot.connection.is_idle() {
                    break;
                }
                connection.as_mut().graceful_shutdown();
            }
            changed = stopping.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answers `503` on a connection refused at the cap, then closes it.
async fn refuse<I>(mut io: I)
where
    I: tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        io.write_all(&full_response()).await?;
        io.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests;
