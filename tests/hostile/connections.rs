//! Connection floods: slow headers, idle connections past the file limit, memory after a flood.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, Target};

/// Waits until the server closes `stream`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_cut_off_and_the_node_keeps_serving() {
    let target = Target::start_with(&[("NEXUS__SERVER__HEADER_TIMEOUT_SECS", "1")], None).await;
    let before = target.stored().await;
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(target.addr).await.unwrap();
        // A head that never ends, one header line at a time.
        stream
            .write_all(
                format!("POST /v1/tenants HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: 1\r\n").as_bytes(),
            )
            .await
            .unwrap();
        slow.push(stream);
    }
    target.assert_alive("a slow-header flood").await;
    for stream in &mut slow {
        closed_by_server(stream).await;
    }
    assert_eq!(target.stored().await, before, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_file_limit_do_not_lock_anyone_out() {
    // 512 descriptors: the server holds at most 256 connections and keeps the rest for itself.
    let target = Target::start_with(&[], Some(512)).await;
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(TcpStream::connect(target.addr).await.unwrap());
    }
    target
        .assert_alive("600 idle connections under a 512-file limit")
        .await;
    let open = target.metric("nexus_http_connections").await;
    assert!(open <= 256.0, "{open} connections open");
    // The oldest idle connections made room.
    closed_by_server(&mut idle[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_held_by_connection_floods_is_reused_not_accumulated() {
    const CONNECTIONS: usize = 1500;
    const FLOODS: usize = 3;
    // This test process holds the flood's client ends: more than a default soft limit of 1,024.
    let limit = nexus_serve::raise_file_limit();
    assert!(
        limit.is_none_or(|limit| limit > CONNECTIONS as u64 + 256),
        "file limit {limit:?}"
    );
    let target = Target::start().await;
    target.assert_alive("warm-up").await;
    let idle_rss = target.resident_bytes();
    let mut after = Vec::new();
    for _ in 0..FLOODS {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut stream = TcpStream::connect(target.addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .unwrap();
            clients.push(stream);
        }
        // Every connection answered once and stays open, kept alive.
        for stream in &mut clients {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        let flooded_rss = target.resident_bytes();
        drop(clients);
        // The server notices the closes; only the metrics request's own connection stays.
        target
            .wait_for_metric("nexus_http_connections", |open| open <= 1.0)
            .await;
        after.push(target.resident_bytes());
        println!(
            "idle {idle_rss} B; with {CONNECTIONS} connections {flooded_rss} B; after {} B",
            after[after.len() - 1]
        );
    }
    // What a flood takes is reused by the next one (mimalloc keeps freed pages for a while):
    // were it kept per connection, each flood would add as much again.
    let first = after[0];
    let last = after[FLOODS - 1];
    let per_flood = first.saturating_sub(idle_rss);
    assert!(
        last <= first + per_flood / 2 + 2 * 1024 * 1024,
        "after {FLOODS} floods {last} B, after the first {first} B (idle {idle_rss} B)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_get_problems() {
    let target = Target::start().await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    for (name, request, status, code) in [
        (
            "huge headers",
            huge.into_bytes(),
            "431",
            "headers_too_large",
        ),
        (
            "a control byte in the path",
            b"GET /v1/ten\x01ants HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
            "400",
            "malformed_request",
        ),
    ] {
        let mut stream = TcpStream::connect(target.addr).await.unwrap();
        let _ = stream.write_all(&request).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
            .await
            .expect("an answer in time");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {answer}"
        );
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{name}: {answer}"
        );
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON problem");
        assert_eq!(problem["code"], code, "{name}");
        target.assert_alive(name).await;
    }
}
