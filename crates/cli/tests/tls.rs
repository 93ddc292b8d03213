//! `nexus server --tls-cert --tls-key` end to end: client verbs over HTTPS with `--ca-cert`, a
//! clear refusal without it, reload on SIGHUP, bad TLS settings refused at start, and client
//! certificates naming service accounts (mutual TLS with SPIFFE ids).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A self-signed certificate for localhost and 127.0.0.1 (what a quickstart would make),
/// written to `<dir>/<name>.pem` and `<dir>/<name>-key.pem`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// Replaces `to` with a copy of `from` through a rename, as certificate tools do.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn client_verbs_work_over_https_with_the_ca_and_reloads_follow_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (first, first_key) = self_signed(certs.path(), "first");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    replace(&first, &cert);
    replace(&first_key, &key);
    let cert_arg = cert.to_str().unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--tls-cert", cert_arg, "--tls-key", key.to_str().unwrap()],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // With the certificate as the CA: served.
    let first_arg = first.to_str().unwrap();
    let listed = stdout_json(&server.cli(&["--ca-cert", first_arg, "--json", "tenants", "list"]));
    assert_eq!(listed["items"][0]["name"], "default");
    let keys = Command::new(NEXUS)
        .args(["--server", &server.url, "--json", "keys", "list"])
        .env("NEXUS_CA_CERT", &first)
        .env("NEXUS_API_KEY", API_KEY)
        .output()
        .unwrap();
    assert!(stdout_json(&keys)["items"].is_array());

    // Without it: the public roots do not know this certificate; exit 3 and what to do.
    let refused = server.cli(&["tenants", "list"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("UnknownIssuer") && message.contains("--ca-cert"),
        "{message}"
    );
    // Plain HTTP to the HTTPS port: exit 3 and a hint.
    let plain = Command::new(NEXUS)
        .args([
            "--server",
            &server.url.replace("https://", "http://"),
            "tenants",
            "list",
        ])
        .env("NEXUS_API_KEY", API_KEY)
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(3), "{}", stderr(&plain));
    assert!(
        stderr(&plain).contains("use an https:// URL"),
        "{}",
        stderr(&plain)
    );
    // A CA file that is not there is a usage error.
    let missing = server.cli(&["--ca-cert", "/nonexistent/ca.pem", "tenants", "list"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("/nonexistent/ca.pem"));

    // A broken certificate file and SIGHUP: the reload fails, the old certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    signal(&server, "HUP");
    server.wait_for_log("TLS reload failed");
    assert!(
        server
            .cli(&["--ca-cert", first_arg, "tenants", "list"])
            .status
            .success()
    );

    // A new certificate and SIGHUP: new connections get it.
    let (second, second_key) = self_signed(certs.path(), "second");
    replace(&second, &cert);
    replace(&second_key, &key);
    signal(&server, "HUP");
    server.wait_for_log("reloaded the TLS certificate");
    let second_arg = second.to_str().unwrap();
    assert!(
        server
            .cli(&["--ca-cert", second_arg, "tenants", "list"])
            .status
            .success()
    );
    let old = server.cli(&["--ca-cert", first_arg, "tenants", "list"]);
    assert_eq!(old.status.code(), Some(3), "{}", stderr(&old));
    server.stop();
}

#[test]
fn bad_tls_settings_stop_the_server_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "server");
    let (_other, other_key) = self_signed(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--tls-cert".into(), path(&cert)], "--tls-key"),
        (vec!["--tls-key".into(), path(&key)], "--tls-cert"),
        (
            vec![
                "--tls-cert".into(),
                path(&dir.path().join("missing.pem")),
                "--tls-key".into(),
                path(&key),
            ],
            "cannot read the certificate",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&cert),
                "--tls-key".into(),
                path(&other_key),
            ],
            "does not belong to the certificate",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&garbage),
                "--tls-key".into(),
                path(&key),
            ],
            "contains no certificate",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&cert),
                "--tls-key".into(),
                path(&key),
                "--tls-min-version".into(),
                "1.1".into(),
            ],
            "1.1",
        ),
    ];
    for (args, expected) in cases {
        let output = Command::new(NEXUS)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&args)
            .env_remove("NEXUS_TLS_CERT")
            .env_remove("NEXUS_TLS_KEY")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the TLS files are checked"
    );
}

/// A CA for client certificates, written to `<dir>/clients-ca.pem`.
struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: PathBuf,
}

impl ClientCa {
    fn new(dir: &Path, name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A client certificate naming `uri`, written to `<dir>/<name>.pem` and `<name>-key.pem`.
    fn workload(&self, dir: &Path, name: &str, uri: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

#[test]
fn a_client_certificate_naming_a_service_account_authenticates_as_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "server");
    let clients = ClientCa::new(certs.path(), "clients-ca");
    std::fs::write(
        dir.path().join("nexus.toml"),
        "[server.tls]\ntrust_domain = \"nexus.test\"\n",
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            clients.pem.to_str().unwrap(),
            "--tls-client-auth",
            "optional",
        ],
    );
    let ca = cert.to_str().unwrap();
    let created = server.cli(&[
        "--ca-cert",
        ca,
        "service-accounts",
        "create",
        "ci",
        "--role",
        "viewer",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));

    let workload = |name: &str, uri: &str| clients.workload(certs.path(), name, uri);
    let ci = workload(
        "ci",
        "spiffe://nexus.test/tenants/default/service-accounts/ci",
    );
    let as_workload = |(cert, key): &(PathBuf, PathBuf), args: &[&str], api_key: Option<&str>| {
        let mut command = Command::new(NEXUS);
        command
            .args(["--server", &server.url, "--ca-cert", ca, "--client-cert"])
            .arg(cert)
            .arg("--client-key")
            .arg(key)
            .args(args)
            .env_remove("NEXUS_API_KEY")
            .env("NEXUS_CONFIG_DIR", dir.path().join("no-sessions"));
        if let Some(api_key) = api_key {
            command.env("NEXUS_API_KEY", api_key);
        }
        command.output().unwrap()
    };

    // No bearer token: the certificate's SPIFFE id is the service account, with its role.
    let me = stdout_json(&as_workload(&ci, &["--json", "whoami"], None));
    assert_eq!(
        (&me["principal"], &me["role"], &me["tenant"]["name"]),
        (&"service:ci".into(), &"viewer".into(), &"default".into())
    );
    let refused = as_workload(&ci, &["keys", "create", "more", "--role", "viewer"], None);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    // A bearer credential wins over the certificate.
    let me = stdout_json(&as_workload(&ci, &["--json", "whoami"], Some(API_KEY)));
    assert_ne!(me["principal"], "service:ci");

    // Verified certificates that name nothing of ours are 401, with the reason.
    for (name, uri, reason) in [
        (
            "ghost",
            "spiffe://nexus.test/tenants/default/service-accounts/ghost",
            "does not exist",
        ),
        (
            "elsewhere",
            "spiffe://other.test/tenants/default/service-accounts/ci",
            "trust domain",
        ),
        ("plain", "https://ci.example.com/", "trust domain"),
    ] {
        let output = as_workload(&workload(name, uri), &["whoami"], None);
        assert_eq!(output.status.code(), Some(4), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(reason),
            "{name}: {}",
            stderr(&output)
        );
    }
    // A certificate from another CA does not even connect.
    let rogue = ClientCa::new(certs.path(), "rogue-ca");
    let forged = rogue.workload(
        certs.path(),
        "forged",
        "spiffe://nexus.test/tenants/default/service-accounts/ci",
    );
    let output = as_workload(&forged, &["whoami"], None);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // Half an identity is a usage error that names the missing flag.
    let output = Command::new(NEXUS)
        .args(["--server", &server.url, "--ca-cert", ca, "--client-cert"])
        .arg(&ci.0)
        .arg("whoami")
        .env_remove("NEXUS_CLIENT_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--client-key"),
        "{}",
        stderr(&output)
    );
}
