//! Handshakes: TLS 1.3 by default, 1.2 by opt-in, ALPN, client certificates, slow clients.

use std::time::Duration;

use nexus_tls::rustls::{self, ProtocolVersion};
use nexus_tls::{ClientAuth, HandshakeLimits, MinVersion};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::*;

/// Longest a test waits for something that takes milliseconds when it works, so a regression
/// fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn tls13_handshake_serves_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let leaf = ca.server("server");
    let (tls, addr) = serve(settings(dir.path(), &leaf), HandshakeLimits::default()).await;

    let stream = connect(&client13(&[ca.der()]), addr).await.unwrap();
    let session = stream.get_ref().1;
    assert_eq!(session.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(peer_certificate(&stream), leaf.der());
    let mut http = http(stream).await.unwrap();
    assert_eq!(healthz(&mut http).await.unwrap(), "ok");
    assert_eq!(healthz(&mut http).await.unwrap(), "ok", "keep-alive");
    assert_eq!(tls.stats().handshakes, 1);
}

#[tokio::test]
async fn tls12_is_refused_unless_opted_into() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let tls12_only = client(&[ca.der()], &[&rustls::version::TLS12], None);

    let (tls, addr) = serve(
        settings(dir.path(), &ca.server("server")),
        HandshakeLimits::default(),
    )
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let (error, mut tcp) = tls12_only
        .connect(name, tcp)
        .into_fallible()
        .await
        .expect_err("a TLS 1.2 client is refused by default");
    assert!(error.to_string().contains("ProtocolVersion"), "{error}");
    // The server counts the failure before it closes the connection.
    let _ = tcp.read_to_end(&mut Vec::new()).await;
    assert_eq!(tls.stats().handshake_failures, 1);
    assert_eq!(tls.stats().handshakes, 0);

    let mut opted_in = settings(dir.path(), &ca.server("server"));
    opted_in.min_version = MinVersion::Tls12;
    let (_tls, addr) = serve(opted_in, HandshakeLimits::default()).await;
    let stream = connect(&tls12_only, addr).await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        healthz(&mut http(stream).await.unwrap()).await.unwrap(),
        "ok"
    );
    // TLS 1.3 clients still get 1.3.
    let stream = connect(&client13(&[ca.der()]), addr).await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn a_client_offering_only_h2_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (_tls, addr) = serve(
        settings(dir.path(), &ca.server("server")),
        HandshakeLimits::default(),
    )
    .await;
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        roots
    })
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let h2_only = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let error = connect(&h2_only, addr).await.unwrap_err();
    assert!(error.contains("NoApplicationProtocol"), "{error}");
}

/// Whether a request failed because the server refused the client's certificate: its alert
/// (`alert`), or, when the client's request reached a socket the server had just closed, a
/// reset that overtook the alert.
fn refused(error: &str, alert: &str) -> bool {
    error.contains(alert) || error.contains("reset")
}

/// mTLS `required`: no certificate, or one from another CA, fails; a valid one is served.
#[tokio::test]
async fn required_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let clients_ca = Ca::new("clients CA");
    let rogue_ca = Ca::new("rogue CA");
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let mut settings = settings(dir.path(), &ca.server("server"));
    settings.client_auth = ClientAuth::Required { ca: ca_file };
    let (_tls, addr) = serve(settings, HandshakeLimits::default()).await;

    let anonymous = client13(&[ca.der()]);
    let error = get_healthz(&anonymous, addr).await.unwrap_err();
    assert!(refused(&error, "CertificateRequired"), "{error}");

    let alice = clients_ca.client("alice");
    let valid = client(&[ca.der()], &[&rustls::version::TLS13], Some(&alice));
    assert_eq!(get_healthz(&valid, addr).await.unwrap(), "ok");
    // The identity a verified certificate names reaches the request.
    let spiffe = "spiffe://nexus.test/tenants/acme/service-accounts/ci";
    let workload = clients_ca.workload("ci", spiffe);
    let valid = client(&[ca.der()], &[&rustls::version::TLS13], Some(&workload));
    assert_eq!(
        get_healthz(&valid, addr).await.unwrap(),
        format!("ok {spiffe}")
    );

    let mallory = rogue_ca.client("mallory");
    let rogue = client(&[ca.der()], &[&rustls::version::TLS13], Some(&mallory));
    let error = get_healthz(&rogue, addr).await.unwrap_err();
    assert!(refused(&error, "UnknownCA"), "{error}");
}

/// mTLS `optional`: clients without a certificate are served; a bad certificate still fails.
#[tokio::test]
async fn optional_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let clients_ca = Ca::new("clients CA");
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let mut settings = settings(dir.path(), &ca.server("server"));
    settings.client_auth = ClientAuth::Optional { ca: ca_file };
    let (_tls, addr) = serve(settings, HandshakeLimits::default()).await;

    assert_eq!(
        get_healthz(&client13(&[ca.der()]), addr).await.unwrap(),
        "ok"
    );
    let alice = clients_ca.client("alice");
    let valid = client(&[ca.der()], &[&rustls::version::TLS13], Some(&alice));
    assert_eq!(get_healthz(&valid, addr).await.unwrap(), "ok");
    let mallory = Ca::new("rogue CA").client("mallory");
    let rogue = client(&[ca.der()], &[&rustls::version::TLS13], Some(&mallory));
    assert!(get_healthz(&rogue, addr).await.is_err());
}

/// A client that connects and never sends its ClientHello does not hold up the next one.
#[tokio::test]
async fn a_silent_client_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let limits = HandshakeLimits {
        // Far longer than the test waits: a listener that handshakes in its accept loop
        // would keep the second client waiting past PATIENCE.
        timeout: Duration::from_secs(600),
        ..HandshakeLimits::default()
    };
    let (tls, addr) = serve(settings(dir.path(), &ca.server("server")), limits).await;

    // The kernel queues connections in order: this one is accepted before the next.
    let silent = TcpStream::connect(addr).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, get_healthz(&client13(&[ca.der()]), addr))
        .await
        .expect("the second client is not held up by the silent one");
    assert_eq!(answer.unwrap(), "ok");
    let stats = tls.stats();
    assert_eq!((stats.handshakes, stats.in_progress), (1, 1), "{stats:?}");
    drop(silent);
}

/// A silent client is disconnected when the handshake timeout expires, and counted.
#[tokio::test]
async fn a_silent_client_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let limits = HandshakeLimits {
        timeout: Duration::from_millis(50),
        ..HandshakeLimits::default()
    };
    let (tls, addr) = serve(settings(dir.path(), &ca.server("server")), limits).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut [0; 16]))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let stats = tls.stats();
    assert_eq!(
        (stats.handshake_timeouts, stats.in_progress),
        (1, 0),
        "{stats:?}"
    );
}

/// Beyond `max_pending` handshakes in progress, new connections are closed at once.
#[tokio::test]
async fn handshakes_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let limits = HandshakeLimits {
        timeout: Duration::from_secs(600),
        max_pending: 1,
    };
    let (tls, addr) = serve(settings(dir.path(), &ca.server("server")), limits).await;
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let read = tokio::time::timeout(PATIENCE, refused.read(&mut [0; 16]))
        .await
        .expect("the second connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let stats = tls.stats();
    assert_eq!((stats.refused, stats.in_progress), (1, 1), "{stats:?}");
}
