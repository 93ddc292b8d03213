//! Real sockets on loopback against [`serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use super::*;

/// Longest any test waits for an event the server must cause; a failure, never a pass.
const PATIENCE: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    stopped: tokio::task::JoinHandle<Stopped>,
    /// Releases requests to `/slow`.
    release: Arc<Notify>,
    /// Signalled when a request to `/slow` has begun.
    slow_started: Arc<Notify>,
}

async fn start(max_connections: usize, header_timeout: Duration) -> Server {
    let release = Arc::new(Notify::new());
    let slow_started = Arc::new(Notify::new());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get({
                let release = release.clone();
                let started = slow_started.clone();
                move || async move {
                    started.notify_one();
                    release.notified().await;
                    "released"
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopping) = oneshot::channel::<()>();
    let config = ServeConfig {
        max_connections,
        header_timeout,
        grace: Duration::from_secs(10),
    };
    let stopped = tokio::spawn(serve(listener, app, config, async move {
        let _ = stopping.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        stopped,
        release,
        slow_started,
    }
}

/// Sends a GET on `stream` and reads the whole response (the server closes or the body ends).
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if n == 0 || complete(&text) {
            return text.into_owned();
        }
    }
}

/// Whether `text` holds a whole response with a `content-length`.
fn complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|length| body.len() >= length)
}

/// Waits until the server closes `stream` (a read returns end of file or a reset).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the server closes the connection in time")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let server = start(16, Duration::from_millis(200)).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .expect("write");
    closed_by_server(&mut slow).await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = start(16, Duration::from_millis(200)).await;
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let response = get_on(&mut client, "/").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !response.contains("connection: close"),
        "kept alive: {response}"
    );
    closed_by_server(&mut client).await;
}

#[tokio::test]
async fn requests_see_the_peer_address() {
    let server = start(16, Duration::from_secs(10)).await;
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let local = client.local_addr().expect("local address");
    let response = get_on(&mut client, "/peer").await;
    assert!(response.ends_with(&local.to_string()), "{response}");
}

#[tokio::test]
async fn at_the_cap_idle_connections_make_room_for_new_clients() {
    let server = start(4, Duration::from_secs(60)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // A fifth client is served: the connection idle the longest (the first) made room.
    let mut fresh = TcpStream::connect(server.addr).await.expect("connect");
    let response = get_on(&mut fresh, "/").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    closed_by_server(&mut idle[0]).await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_gets_503() {
    let server = start(1, Duration::from_secs(60)).await;
    let mut busy = TcpStream::connect(server.addr).await.expect("connect");
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    server.slow_started.notified().await;

    let mut refused = TcpStream::connect(server.addr).await.expect("connect");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, refused.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON problem");
    assert_eq!(problem["code"], "overloaded");
    assert!(complete(&response), "content-length matches: {response}");

    // The busy request was not disturbed.
    server.release.notify_one();
    let mut rest = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&rest).contains("released") {
        let n = tokio::time::timeout(PATIENCE, busy.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_ne!(n, 0, "the busy connection was closed");
        rest.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_closes_idle_connections() {
    let mut server = start(16, Duration::from_secs(60)).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let _ = get_on(&mut idle, "/").await;
    let mut busy = TcpStream::connect(server.addr).await.expect("connect");
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    server.slow_started.notified().await;

    let _ = server.stop.take().map(|stop| stop.send(()));
    closed_by_server(&mut idle).await;
    assert!(
        !server.stopped.is_finished(),
        "a request is still in flight"
    );
    server.release.notify_one();
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, busy.read_to_string(&mut response))
        .await
        .expect("in time")
        .expect("read");
    assert!(response.contains("released"), "{response}");
    let stopped = tokio::time::timeout(PATIENCE, server.stopped)
        .await
        .expect("serve returns")
        .expect("no panic");
    assert_eq!(stopped, Stopped::Drained);
}

#[tokio::test]
async fn what_hyper_cannot_parse_is_answered_with_problems() {
    let server = start(16, Duration::from_secs(10)).await;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    for (request, status, code) in [
        (huge.into_bytes(), "431", "headers_too_large"),
        (
            b"GET /he\x01lthz HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(),
            "400",
            "malformed_request",
        ),
        (
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            "400",
            "malformed_request",
        ),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        // The server may answer and close before the whole request is written.
        let _ = stream.write_all(&request).await;
        let mut response = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
            .await
            .expect("an answer in time");
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{response}"
        );
        assert!(complete(&response), "content-length matches: {response}");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON problem");
        assert_eq!(problem["code"], code, "{response}");
    }
    // Ordinary answers are untouched.
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let response = get_on(&mut client, "/").await;
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("ok"),
        "{response}"
    );
}
