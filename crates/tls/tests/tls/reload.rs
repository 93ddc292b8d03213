//! Certificate reloads: new connections get the new certificate, established ones keep working,
//! and a reload from broken files keeps the old certificate.

use nexus_tls::{HandshakeLimits, TlsError};

use crate::support::*;

#[tokio::test]
async fn a_reload_serves_new_connections_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let old = ca.server("old");
    let (tls, addr) = serve(settings(dir.path(), &old), HandshakeLimits::default()).await;
    let old_sha256 = tls.certificate_sha256();
    let client = client13(&[ca.der()]);

    let stream = connect(&client, addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), old.der());
    let mut established = http(stream).await.unwrap();
    assert_eq!(healthz(&mut established).await.unwrap(), "ok");

    let new = ca.server("new");
    new.write(dir.path());
    tls.reload().unwrap();
    assert_ne!(tls.certificate_sha256(), old_sha256);

    let stream = connect(&client, addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), new.der());
    assert_eq!(
        healthz(&mut http(stream).await.unwrap()).await.unwrap(),
        "ok"
    );
    assert_eq!(
        healthz(&mut established).await.unwrap(),
        "ok",
        "a connection made before the reload keeps working"
    );
    assert_eq!(tls.stats().reloads, 1);
    assert!(
        !tls.reload_if_changed().unwrap(),
        "nothing changed since the reload"
    );
}

#[tokio::test]
async fn a_reload_from_broken_files_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let old = ca.server("old");
    let settings = settings(dir.path(), &old);
    let (cert, key) = (settings.cert.clone(), settings.key.clone());
    let (tls, addr) = serve(settings, HandshakeLimits::default()).await;
    let client = client13(&[ca.der()]);

    // Garbage where the certificate was.
    write_atomic(&cert, "not a certificate\n");
    let error = tls.reload().unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    let stream = connect(&client, addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), old.der());

    // Mid-rotation: the new certificate is there, its key is not yet.
    let new = ca.server("new");
    write_atomic(&cert, &new.cert.pem());
    let error = tls.reload_if_changed().unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    let stream = connect(&client, addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), old.der());
    assert!(
        !tls.reload_if_changed().unwrap(),
        "a broken state is tried once, not at every look"
    );

    // The key arrives: the change is noticed and the new pair served.
    write_atomic(&key, &new.key.serialize_pem());
    assert!(tls.reload_if_changed().unwrap());
    let stream = connect(&client, addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), new.der());
    let stats = tls.stats();
    assert_eq!((stats.reloads, stats.reload_failures), (1, 2), "{stats:?}");
}

/// cert-manager and certbot rotate by pointing a symbolic link elsewhere: that is a change.
#[cfg(unix)]
#[tokio::test]
async fn a_relinked_file_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (first, second) = (dir.path().join("v1"), dir.path().join("v2"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let old = ca.server("old");
    let mut settings = settings(&first, &old);
    let live = dir.path().join("live");
    std::os::unix::fs::symlink(&first, &live).unwrap();
    settings.cert = live.join("cert.pem");
    settings.key = live.join("key.pem");
    let (tls, addr) = serve(settings, HandshakeLimits::default()).await;

    let new = ca.server("new");
    new.write(&second);
    let next = dir.path().join("live.next");
    std::os::unix::fs::symlink(&second, &next).unwrap();
    std::fs::rename(&next, &live).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    let stream = connect(&client13(&[ca.der()]), addr).await.unwrap();
    assert_eq!(peer_certificate(&stream), new.der());
}
