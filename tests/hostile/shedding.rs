//! One tenant's slow request bodies fill its own share of the node, not the others'.

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, Target};

/// Opens a request as `key` that declares a body and sends 16 bytes of it, then stalls.
async fn slow_body(target: &Target, key: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(target.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{{\"jsonrpc\":\"2.0\",",
        target.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Makes another developer key in the attacking tenant.
async fn another_key(target: &Target, name: &str) -> String {
    let key = target
        .json(
            Some(crate::common::API_KEY),
            Method::POST,
            "/v1/tenants/attacker/keys",
            serde_json::json!({"name": name, "role": "developer"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    key.body["secret"].as_str().unwrap().to_owned()
}

/// Reads the answer the server gives a stalled request, up to the end of its head.
async fn answer_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_ne!(n, 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_of_one_tenant_leave_the_others_served() {
    // Node 64, tenant 16, principal 8 requests in flight; slow requests end after 15 s
    // (long enough for the deploys below to compile on a busy machine).
    let target = Target::start_with(
        &[
            ("NEXUS__SERVER__MAX_IN_FLIGHT", "64"),
            ("NEXUS__SERVER__REQUEST_TIMEOUT_SECS", "15"),
        ],
        None,
    )
    .await;
    target.deploy_echo();
    let second_key = another_key(&target, "second").await;
    let third_key = another_key(&target, "third").await;
    let before = target.stored().await;

    let mut slow = Vec::new();
    for _ in 0..8 {
        slow.push(slow_body(&target, &target.attacker, "/a2a/attacker/echo").await);
    }
    // Admitted (the metrics request itself is one more).
    target
        .wait_for_metric("nexus_http_requests_admitted", |n| n >= 9.0)
        .await;
    // The first key's share is full (its requests are admitted before their bodies are read,
    // so the ninth is answered at once).
    let mut ninth = slow_body(&target, &target.attacker, "/a2a/attacker/echo").await;
    let head = answer_head(&mut ninth).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    for _ in 0..8 {
        slow.push(slow_body(&target, &second_key, "/mcp/attacker").await);
    }
    target
        .wait_for_metric("nexus_http_requests_admitted", |n| n >= 17.0)
        .await;
    // Now the tenant's share is full: a third key of it is shed, on any route.
    let mut third = slow_body(&target, &third_key, "/v1/tenants/attacker/keys").await;
    let head = answer_head(&mut third).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    target
        .assert_alive("a slow-body flood of another tenant")
        .await;

    // The slow requests end with 504 once the request timeout passes, and free their places.
    for stream in &mut slow {
        let head = answer_head(stream).await;
        assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    }
    assert_eq!(target.stored().await, before, "nothing stored");
    let served = target
        .send(
            Some(&target.attacker),
            Method::GET,
            "/v1/tenants/attacker/agents",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(served.status, 200, "{}", served.text);
}
