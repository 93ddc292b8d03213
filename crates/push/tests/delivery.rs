//! Delivery against a real HTTP receiver on loopback: headers, retries, order, giving up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use nexus_push::{Notifier, PushError, Settings, Webhook, parse_url};
use serde_json::{Value, json};

/// What the receiver saw, and how many of the coming requests it fails (with `fail_with`).
#[derive(Default)]
struct Receiver {
    seen: Vec<(HeaderMap, Value)>,
    attempts: u32,
    failures_left: u32,
    fail_with: Option<StatusCode>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(State(shared): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let mut receiver = shared.lock().unwrap();
    receiver.attempts += 1;
    if receiver.failures_left > 0 {
        receiver.failures_left -= 1;
        return receiver
            .fail_with
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    receiver
        .seen
        .push((headers, serde_json::from_str(&body).unwrap()));
    StatusCode::OK
}

/// A receiver on a free loopback port; returns its state and `http://127.0.0.1:port/hook`.
async fn receiver() -> (Shared, String) {
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, format!("http://{address}/hook"))
}

fn notifier(max_attempts: u32) -> Arc<Notifier> {
    Arc::new(Notifier::new(Settings {
        allow_private_addresses: true,
        timeout: Duration::from_secs(5),
        max_attempts,
        base_delay: Duration::from_millis(10),
    }))
}

fn webhook(url: &str) -> Webhook {
    Webhook {
        url: parse_url(url).unwrap(),
        token: Some("tok-123".into()),
        authorization: Some("Bearer secret-credentials".into()),
        label: "test".into(),
    }
}

#[tokio::test]
async fn retries_until_delivered_with_the_headers() {
    let (shared, url) = receiver().await;
    shared.lock().unwrap().failures_left = 2;
    notifier(5)
        .deliver(&webhook(&url), &json!({"statusUpdate": {"taskId": "t1"}}))
        .await
        .unwrap();
    let receiver = shared.lock().unwrap();
    assert_eq!(receiver.attempts, 3);
    let (headers, body) = &receiver.seen[0];
    assert_eq!(body["statusUpdate"]["taskId"], "t1");
    assert_eq!(headers["x-a2a-notification-token"], "tok-123");
    assert_eq!(headers["authorization"], "Bearer secret-credentials");
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn an_outbox_delivers_in_order_through_failures() {
    let (shared, url) = receiver().await;
    // The first notification needs three attempts; the later ones must still come after it.
    shared.lock().unwrap().failures_left = 2;
    let outbox = notifier(5).outbox(webhook(&url));
    for n in 0..5 {
        outbox.send(json!({ "n": n })).await;
    }
    outbox.close().await;
    let receiver = shared.lock().unwrap();
    let order: Vec<i64> = receiver
        .seen
        .iter()
        .map(|(_, body)| body["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
    assert_eq!(receiver.attempts, 7);
}

#[tokio::test]
async fn gives_up_after_the_last_attempt_and_on_final_answers() {
    let (shared, url) = receiver().await;
    shared.lock().unwrap().failures_left = 10;
    let failed = notifier(3)
        .deliver(&webhook(&url), &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(failed, PushError::GaveUp { attempts: 3, .. }),
        "{failed:?}"
    );
    assert_eq!(shared.lock().unwrap().attempts, 3);

    // A client error is final: no retry.
    {
        let mut receiver = shared.lock().unwrap();
        receiver.attempts = 0;
        receiver.fail_with = Some(StatusCode::UNAUTHORIZED);
    }
    let refused = notifier(3)
        .deliver(&webhook(&url), &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, PushError::GaveUp { attempts: 1, .. }),
        "{refused:?}"
    );
    assert_eq!(shared.lock().unwrap().attempts, 1);
    assert!(shared.lock().unwrap().seen.is_empty());
}

#[tokio::test]
async fn connection_failures_are_retried() {
    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let failed = notifier(2)
        .deliver(&webhook(&url), &json!({}))
        .await
        .unwrap_err();
    let PushError::GaveUp { attempts, last } = failed else {
        panic!("{failed:?}");
    };
    assert_eq!(attempts, 2);
    assert!(matches!(*last, PushError::Connect(_)), "{last:?}");
}

#[tokio::test]
async fn private_addresses_are_refused_at_send_time_without_retrying() {
    let (shared, url) = receiver().await;
    let strict = Arc::new(Notifier::new(Settings {
        base_delay: Duration::from_millis(10),
        ..Settings::default()
    }));
    let refused = strict
        .deliver(&webhook(&url), &json!({}))
        .await
        .unwrap_err();
    let PushError::GaveUp { attempts, last } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(attempts, 1);
    assert!(
        matches!(*last, PushError::PrivateAddress { .. }),
        "{last:?}"
    );
    assert_eq!(shared.lock().unwrap().attempts, 0);
}

#[test]
fn debug_hides_the_secrets() {
    let shown = format!("{:?}", webhook("https://example.com/hook"));
    assert!(!shown.contains("tok-123") && !shown.contains("secret-credentials"));
    assert!(shown.contains("example.com"));
}

#[tokio::test]
async fn https_speaks_tls() {
    // A plain-HTTP receiver cannot complete a TLS handshake: the attempt fails in TLS, which
    // shows the https path runs rustls (and does not fall back to plain text).
    let (shared, url) = receiver().await;
    let url = url.replace("http://", "https://");
    let failed = notifier(1)
        .deliver(&webhook(&url), &json!({}))
        .await
        .unwrap_err();
    let PushError::GaveUp { last, .. } = failed else {
        panic!("{failed:?}");
    };
    assert!(
        matches!(&*last, PushError::Connect(why) if why.starts_with("TLS")),
        "{last:?}"
    );
    assert!(shared.lock().unwrap().seen.is_empty());
}
