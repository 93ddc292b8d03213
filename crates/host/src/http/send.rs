//! Sends an agent's outgoing request to an address the policy checked, never resolving the
//! host name again: between a check and a connection that resolves the name itself, a DNS
//! answer that changes (rebinding) could point an agent at a private address.
//!
//! One HTTP/1.1 connection per request, as `wasmtime_wasi_http::default_send_request` makes,
//! with the guest's timeouts (or ours when it sets none). TLS verifies the certificate against
//! the request's host name, whatever address the connection went to.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Longest wait for a connection (per address tried) when the guest sets none: a reachable
/// host answers in well under this; an unreachable one should fail the call, not the task.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the response head, and between two pieces of its body, when the guest
/// sets none: as long as a task's default deadline, which bounds the call anyway.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The TLS client of every agent: Mozilla's root certificates, built once.
static TLS: LazyLock<TlsConnector> = LazyLock::new(|| TlsConnector::from(Arc::new(tls_config())));

/// A TLS client configuration on ring with Mozilla's root certificates (also the LLM
/// provider's, through reqwest).
pub(crate) fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    // ring's default protocol versions are always available, so the fallback never runs; it
    // keeps a provider mismatch from being a panic.
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| rustls::ClientConfig::builder())
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What `send_request` returns: the response, and the connection's I/O to drive to its end.
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `request` over a new connection to the first of `addresses` that accepts one.
pub(crate) async fn send_to(
    mut request: http::Request<WasiBody>,
    addresses: &[SocketAddr],
    options: Option<RequestOptions>,
) -> Result<Sent, HttpError> {
    let uri = request.uri();
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let authority = uri
        .authority()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .as_str()
        .to_owned();
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_READ_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_READ_TIMEOUT)
        // A zero interval would never let a body through.
        .max(Duration::from_millis(1));

    let tcp = connect(addresses, connect_timeout).await?;
    let stream: Box<dyn Stream> = if tls {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host).map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let handshake = TLS.connect(name, tcp);
        match tokio::time::timeout(connect_timeout, handshake).await {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(e)) => return Err(HttpError::Tls(e)),
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    } else {
        Box::new(tcp)
    };
    let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream));
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, handshake)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries the path only (the full URI is for proxies); the host goes in
    // `Host`, which the guest may have set itself.
    let path = uri_path(request.uri())?;
    *request.uri_mut() = path;
    if !request.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(&authority)
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, host);
    }

    // The connection's I/O runs beside the request until the response head is in.
    let mut connection = Box::pin(connection);
    let mut connection_ended = false;
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
    tokio::pin!(response);
    let response = loop {
        tokio::select! {
            response = &mut response => {
                break response.map_err(|_| HttpError::ConnectionReadTimeout)??;
            }
            ended = &mut connection, if !connection_ended => {
                connection_ended = true;
                ended?;
            }
        }
    };
    let response = response.map(|incoming| {
        ReadTimeout {
            incoming,
            interval: between_bytes_timeout,
            timer: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        }
        .boxed_unsync()
    });
    let io = async move {
        if connection_ended {
            return Ok(());
        }
        connection.await.map_err(|e| {
            if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }
        })
    };
    Ok((response, Box::new(io)))
}

/// A TCP connection to the first of `addresses` that accepts within `timeout`.
async fn connect(addresses: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => {
                // Requests are written whole; Nagle's algorithm would only delay them.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

fn uri_path(uri: &http::Uri) -> Result<http::Uri, HttpError> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)
}

/// A response body that fails when no piece of it arrives for `interval`.
struct ReadTimeout {
    incoming: Incoming,
    interval: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for ReadTimeout {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.interval;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::routing::get;
    use http_body_util::Empty;

    use super::*;

    /// A local server answering `GET /echo` with the `Host` it got and the request target.
    async fn server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/echo",
            get(|headers: http::HeaderMap, uri: http::Uri| async move {
                let host = headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                format!("{host} {uri}")
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    fn get_request(url: &str) -> http::Request<WasiBody> {
        http::Request::get(url)
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    async fn text(sent: Sent) -> (http::StatusCode, String) {
        let (response, io) = sent;
        tokio::spawn(Box::into_pin(io));
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_request_goes_to_the_given_address_without_resolving_its_host() {
        let address = server().await;
        let port = address.port();
        // `.invalid` never resolves: only the given address can have answered.
        let url = format!("http://pinned.invalid:{port}/echo?x=1");
        let refused: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let sent = send_to(get_request(&url), &[refused, address], None)
            .await
            .unwrap();
        assert_eq!(
            text(sent).await,
            (
                http::StatusCode::OK,
                format!("pinned.invalid:{port} /echo?x=1")
            )
        );
    }

    #[tokio::test]
    async fn tls_checks_the_host_name_and_nothing_listening_is_a_connection_error() {
        let address = server().await;
        // A plain HTTP server cannot complete a TLS handshake for the name.
        let url = format!("https://pinned.invalid:{}/echo", address.port());
        let tls = send_to(get_request(&url), &[address], None).await;
        assert!(matches!(tls, Err(HttpError::Tls(_))), "{:?}", tls.err());

        let refused: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let none = send_to(get_request("http://pinned.invalid:1/"), &[refused], None).await;
        assert!(
            matches!(none, Err(HttpError::Connect(_))),
            "{:?}",
            none.err()
        );
    }
}
