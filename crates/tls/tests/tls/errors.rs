//! Bad files are refused at load with an error naming the file and the mistake.

use std::path::Path;

use nexus_tls::{ClientAuth, ServerTls, TlsError, TlsSettings};

use crate::support::*;

/// A certificate block whose contents are not a certificate.
const NOT_X509: &str = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";

#[test]
fn bad_files_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let leaf = ca.server("server");
    let good = settings(dir.path(), &leaf);
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, ca.server("other").key.serialize_pem()).unwrap();
    let file = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let missing = dir.path().join("missing.pem");
    let garbage = file("garbage.pem", "hello, I am not PEM\n");
    let unterminated = file("unterminated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    let empty = file("empty.pem", "");
    let not_x509 = file("not-x509.pem", NOT_X509);

    let with = |cert: &Path, key: &Path| TlsSettings {
        cert: cert.to_owned(),
        key: key.to_owned(),
        ..good.clone()
    };
    let cases: Vec<(&str, TlsSettings, &str)> = vec![
        (
            "missing certificate",
            with(&missing, &good.key),
            "cannot read the certificate",
        ),
        (
            "missing key",
            with(&good.cert, &missing),
            "cannot read the private key",
        ),
        (
            "key of another certificate",
            with(&good.cert, &other_key),
            "does not belong to the certificate",
        ),
        (
            "garbage certificate",
            with(&garbage, &good.key),
            "contains no certificate",
        ),
        (
            "garbage key",
            with(&good.cert, &garbage),
            "contains no private key",
        ),
        (
            "empty key",
            with(&good.cert, &empty),
            "contains no private key",
        ),
        (
            "unterminated PEM",
            with(&unterminated, &good.key),
            "is not valid PEM",
        ),
        (
            "not X.509",
            with(&not_x509, &good.key),
            "holds a certificate that cannot be used",
        ),
        (
            "certificate and key swapped",
            with(&good.key, &good.cert),
            "swapped",
        ),
        (
            "a directory",
            with(dir.path(), &good.key),
            "cannot read the certificate",
        ),
        (
            "missing client CA",
            TlsSettings {
                client_auth: ClientAuth::Required {
                    ca: missing.clone(),
                },
                ..good.clone()
            },
            "cannot read the client CA",
        ),
        (
            "client CA without a certificate",
            TlsSettings {
                client_auth: ClientAuth::Optional {
                    ca: garbage.clone(),
                },
                ..good.clone()
            },
            "the client CA",
        ),
    ];
    for (case, settings, expected) in cases {
        let error = ServerTls::load(settings).expect_err(case).to_string();
        assert!(error.contains(expected), "{case}: {error}");
    }
    assert!(ServerTls::load(good).is_ok());
}

#[test]
fn an_oversized_file_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Ca::new("test CA").server("server");
    let mut settings = settings(dir.path(), &leaf);
    settings.cert = dir.path().join("huge.pem");
    let huge = "x".repeat(usize::try_from(nexus_tls::MAX_PEM_FILE_BYTES).unwrap() + 1);
    std::fs::write(&settings.cert, huge).unwrap();
    let error = ServerTls::load(settings).unwrap_err();
    assert!(matches!(error, TlsError::TooLarge { .. }), "{error}");
}

#[test]
fn the_client_side_trusts_the_given_ca_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    let config = nexus_tls::client_config(Some(&path)).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(nexus_tls::client_config(None).is_ok(), "the Mozilla roots");
    let error = nexus_tls::client_config(Some(&dir.path().join("nope.pem"))).unwrap_err();
    assert!(
        error.to_string().contains("cannot read the CA certificate"),
        "{error}"
    );
}
