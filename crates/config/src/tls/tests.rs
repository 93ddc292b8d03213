#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)] // figment::Jail returns its own large error type

use figment::Jail;

use crate::{ClientAuth, Config, Overrides, TlsOverrides, TlsVersion};

fn load(overrides: &Overrides) -> Result<Config, String> {
    Config::load(None, overrides).map_err(|e| e.to_string())
}

fn flags(tls: TlsOverrides) -> Overrides {
    Overrides {
        tls,
        ..Overrides::default()
    }
}

#[test]
fn tls_is_off_by_default_and_prints_nothing_for_it() {
    Jail::expect_with(|_jail| {
        let config = load(&Overrides::default()).unwrap();
        assert!(!config.server.tls.enabled());
        assert_eq!(config.server.tls.min_version, TlsVersion::Tls13);
        let printed = config.to_redacted_toml();
        assert!(!printed.contains("cert"), "{printed}");
        Ok(())
    });
}

#[test]
fn tls_comes_from_file_env_and_flags() {
    Jail::expect_with(|jail| {
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            r#"
            [server.tls]
            cert = "/etc/nexus/cert.pem"
            key = "/etc/nexus/key.pem"
            client_ca = "/etc/nexus/clients.pem"
            client_auth = "optional"
            min_version = "1.2"
            "#,
        )?;
        let config = load(&Overrides::default()).unwrap();
        let tls = &config.server.tls;
        assert!(tls.enabled());
        assert_eq!(tls.effective_client_auth(), ClientAuth::Optional);
        assert_eq!(tls.min_version, TlsVersion::Tls12);
        // It prints back as a valid file.
        let reparsed: Config = toml::from_str(&config.to_redacted_toml()).unwrap();
        assert_eq!(reparsed.server.tls, *tls);

        // The environment reads `1.3` as a number; it is accepted all the same.
        jail.set_env("NEXUS__SERVER__TLS__MIN_VERSION", "1.3");
        jail.set_env("NEXUS__SERVER__TLS__CERT", "/env/cert.pem");
        let config = load(&Overrides::default()).unwrap();
        assert_eq!(config.server.tls.min_version, TlsVersion::Tls13);
        assert_eq!(
            config.server.tls.cert.unwrap().to_str(),
            Some("/env/cert.pem")
        );

        // Flags win, key by key.
        let config = load(&flags(TlsOverrides {
            cert: Some("/flag/cert.pem".into()),
            client_auth: Some("required".into()),
            min_version: Some("1.2".into()),
            ..TlsOverrides::default()
        }))
        .unwrap();
        let tls = &config.server.tls;
        assert_eq!(
            tls.cert.as_deref().unwrap().to_str(),
            Some("/flag/cert.pem")
        );
        assert_eq!(
            tls.key.as_deref().unwrap().to_str(),
            Some("/etc/nexus/key.pem")
        );
        assert_eq!(tls.effective_client_auth(), ClientAuth::Required);
        assert_eq!(tls.min_version, TlsVersion::Tls12);
        Ok(())
    });
}

#[test]
fn a_client_ca_alone_means_required() {
    Jail::expect_with(|_jail| {
        let config = load(&flags(TlsOverrides {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            client_ca: Some("ca.pem".into()),
            ..TlsOverrides::default()
        }))
        .unwrap();
        assert_eq!(
            config.server.tls.effective_client_auth(),
            ClientAuth::Required
        );
        Ok(())
    });
}

#[test]
fn inconsistent_tls_settings_name_the_key() {
    let cases: &[(TlsOverrides, &str, &str)] = &[
        (
            TlsOverrides {
                cert: Some("c.pem".into()),
                ..TlsOverrides::default()
            },
            "server.tls.key",
            "--tls-key",
        ),
        (
            TlsOverrides {
                key: Some("k.pem".into()),
                ..TlsOverrides::default()
            },
            "server.tls.cert",
            "--tls-cert",
        ),
        (
            TlsOverrides {
                cert: Some("c.pem".into()),
                key: Some("k.pem".into()),
                client_auth: Some("required".into()),
                ..TlsOverrides::default()
            },
            "server.tls.client_ca",
            "CA that signs them",
        ),
        (
            TlsOverrides {
                cert: Some("c.pem".into()),
                key: Some("k.pem".into()),
                client_ca: Some("ca.pem".into()),
                client_auth: Some("none".into()),
                ..TlsOverrides::default()
            },
            "server.tls.client_auth",
            "\"none\"",
        ),
        (
            TlsOverrides {
                client_ca: Some("ca.pem".into()),
                ..TlsOverrides::default()
            },
            "server.tls.client_ca",
            "need HTTPS",
        ),
        (
            TlsOverrides {
                cert: Some("".into()),
                key: Some("k.pem".into()),
                ..TlsOverrides::default()
            },
            "server.tls.cert",
            "must name a file",
        ),
        (
            TlsOverrides {
                min_version: Some("1.1".into()),
                ..TlsOverrides::default()
            },
            "min_version",
            "\"1.2\" or \"1.3\"",
        ),
        (
            TlsOverrides {
                client_auth: Some("sometimes".into()),
                ..TlsOverrides::default()
            },
            "client_auth",
            "sometimes",
        ),
    ];
    for (tls, key, reason) in cases {
        Jail::expect_with(|_jail| {
            let err = load(&flags(tls.clone())).unwrap_err();
            assert!(err.contains(key) && err.contains(reason), "{tls:?}: {err}");
            Ok(())
        });
    }
}

#[test]
fn a_trust_domain_needs_client_certificates_and_its_own_syntax() {
    Jail::expect_with(|jail| {
        jail.set_env("NEXUS__SERVER__TLS__CERT", "c.pem");
        jail.set_env("NEXUS__SERVER__TLS__KEY", "k.pem");
        jail.set_env("NEXUS__SERVER__TLS__TRUST_DOMAIN", "nexus.example.com");
        let error = load(&Overrides::default()).unwrap_err();
        assert!(
            error.contains("server.tls.trust_domain") && error.contains("client_ca"),
            "{error}"
        );
        jail.set_env("NEXUS__SERVER__TLS__CLIENT_CA", "ca.pem");
        let config = load(&Overrides::default()).unwrap();
        assert_eq!(
            config.server.tls.trust_domain.as_deref(),
            Some("nexus.example.com")
        );
        for bad in ["Nexus.Example", "spiffe://nexus", "a b"] {
            jail.set_env("NEXUS__SERVER__TLS__TRUST_DOMAIN", bad);
            let error = load(&Overrides::default()).unwrap_err();
            assert!(
                error.contains("server.tls.trust_domain") && error.contains("SPIFFE"),
                "{bad}: {error}"
            );
        }
        Ok(())
    });
}
