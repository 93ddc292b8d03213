#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)] // figment::Jail returns its own large error type

use figment::Jail;

use super::*;

/// Loads with the given flags inside a jail (isolated cwd and environment).
fn load_in(jail: &Jail, overrides: &Overrides) -> Result<Config, ConfigError> {
    let _ = jail;
    Config::load(None, overrides)
}

#[test]
fn defaults_without_any_layer() {
    Jail::expect_with(|jail| {
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen_addr().unwrap().to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_url(), "sqlite://.nexus/nexus.db");
        Ok(())
    });
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    Jail::expect_with(|jail| {
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            r#"
            [server]
            listen = "127.0.0.1:1111"
            request_timeout_secs = 5
            [log]
            level = "debug"
            "#,
        )?;
        // File only.
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:1111");
        assert_eq!(config.server.request_timeout_secs, 5);

        // Environment beats the file.
        jail.set_env("NEXUS__SERVER__LISTEN", "127.0.0.1:2222");
        jail.set_env("NEXUS__LOG__LEVEL", "warn");
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:2222");
        assert_eq!(config.log.level, "warn");
        assert_eq!(
            config.server.request_timeout_secs, 5,
            "untouched keys keep the file value"
        );

        // Flags beat the environment.
        let flags = Overrides {
            listen: Some("127.0.0.1:3333".into()),
            database_url: Some("postgres://u:secret@db/nexus".into()),
            ..Overrides::default()
        };
        let config = load_in(jail, &flags).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:3333");
        assert_eq!(
            config.database_backend().unwrap(),
            DatabaseBackend::Postgres
        );
        Ok(())
    });
}

#[test]
fn config_file_is_found_in_the_data_dir_given_by_flag() {
    Jail::expect_with(|jail| {
        jail.create_dir("elsewhere")?;
        jail.create_file("elsewhere/nexus.toml", "[server]\nmax_in_flight = 7\n")?;
        let flags = Overrides {
            data_dir: Some("elsewhere".into()),
            ..Overrides::default()
        };
        let config = load_in(jail, &flags).unwrap();
        assert_eq!(config.server.max_in_flight, 7);
        // The shares follow: a quarter for a tenant, half of that for a principal, never 0.
        assert_eq!(config.server.in_flight_per_tenant(), 1);
        assert_eq!(config.server.in_flight_per_principal(), 1);
        assert_eq!(Config::default().server.in_flight_per_tenant(), 256);
        assert_eq!(Config::default().server.in_flight_per_principal(), 128);
        assert_eq!(config.database_url(), "sqlite://elsewhere/nexus.db");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.create_dir(".nexus")?;
        jail.create_file(".nexus/nexus.toml", "[server]\nlisten_port = 80\n")?;
        let err = load_in(jail, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_port"), "{err}");

        jail.create_file(".nexus/nexus.toml", "")?;
        jail.set_env("NEXUS__SERVR__LISTEN", "x");
        let err = load_in(jail, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("servr"), "{err}");
        Ok(())
    });
}

#[test]
fn invalid_values_name_the_key_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("NEXUS__SERVER__LISTEN", "nonsense", "server.listen"),
        (
            "NEXUS__SERVER__BODY_LIMIT_BYTES",
            "0",
            "server.body_limit_bytes",
        ),
        (
            "NEXUS__SERVER__REQUEST_TIMEOUT_SECS",
            "100000",
            "server.request_timeout_secs",
        ),
        ("NEXUS__SERVER__MAX_IN_FLIGHT", "0", "server.max_in_flight"),
        (
            "NEXUS__SERVER__MAX_IN_FLIGHT_PER_TENANT",
            "2000",
            "server.max_in_flight_per_tenant",
        ),
        (
            "NEXUS__SERVER__MAX_IN_FLIGHT_PER_PRINCIPAL",
            "300",
            "server.max_in_flight_per_principal",
        ),
        (
            "NEXUS__SERVER__MAX_CONNECTIONS",
            "0",
            "server.max_connections",
        ),
        (
            "NEXUS__SERVER__HEADER_TIMEOUT_SECS",
            "0",
            "server.header_timeout_secs",
        ),
        ("NEXUS__DATABASE__URL", "mysql://x", "database.url"),
        ("NEXUS__LOG__LEVEL", "nexus=loud", "log.level"),
        // Wrong type: figment names the key.
        ("NEXUS__SERVER__MAX_IN_FLIGHT", "many", "max_in_flight"),
    ];
    for (var, value, key) in cases {
        Jail::expect_with(|jail| {
            jail.set_env(var, value);
            let err = load_in(jail, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains(key), "{var}={value}: {err}");
            Ok(())
        });
    }
}

#[test]
fn explicit_config_file_must_exist() {
    Jail::expect_with(|_jail| {
        let err = Config::load(Some(Path::new("missing.toml")), &Overrides::default());
        assert!(matches!(err, Err(ConfigError::MissingFile(_))));
        Ok(())
    });
}

#[test]
fn printed_config_redacts_passwords() {
    let mut config = Config::default();
    config.database.url = "postgres://nexus:hunter2@db:5432/nexus".into();
    let printed = config.to_redacted_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("postgres://nexus:***@db:5432/nexus"),
        "{printed}"
    );
    // The printed form is itself a valid config file.
    let reparsed: Config = toml::from_str(&printed).unwrap();
    assert_eq!(reparsed.server, config.server);
}

#[test]
fn push_private_addresses_are_refused_unless_enabled() {
    Jail::expect_with(|jail| {
        assert!(
            !load_in(jail, &Overrides::default())
                .unwrap()
                .push
                .allow_private_addresses
        );
        jail.set_env("NEXUS__PUSH__ALLOW_PRIVATE_ADDRESSES", "true");
        assert!(
            load_in(jail, &Overrides::default())
                .unwrap()
                .push
                .allow_private_addresses
        );
        jail.set_env("NEXUS__PUSH__ALLOW_PRIVATE_ADDRESSES", "maybe");
        let err = load_in(jail, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.to_ascii_lowercase()
                .contains("push.allow_private_addresses"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn agents_private_addresses_are_refused_unless_enabled() {
    Jail::expect_with(|jail| {
        assert!(
            !load_in(jail, &Overrides::default())
                .unwrap()
                .runtime
                .allow_private_addresses
        );
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            "[runtime]\nallow_private_addresses = true\n",
        )?;
        assert!(
            load_in(jail, &Overrides::default())
                .unwrap()
                .runtime
                .allow_private_addresses
        );
        jail.set_env("NEXUS__RUNTIME__ALLOW_PRIVATE_ADDRESSES", "false");
        assert!(
            !load_in(jail, &Overrides::default())
                .unwrap()
                .runtime
                .allow_private_addresses
        );
        jail.set_env("NEXUS__RUNTIME__ALLOW_PRIVATE_ADDRESSES", "maybe");
        let err = load_in(jail, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.to_ascii_lowercase()
                .contains("runtime.allow_private_addresses"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn rate_limits_come_from_file_and_env_and_refuse_zero() {
    Jail::expect_with(|jail| {
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            r#"
            [rate_limit.viewer]
            per_second = 5
            burst = 10
            "#,
        )?;
        jail.set_env("NEXUS__RATE_LIMIT__KEY__PER_SECOND", "50");
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert!(config.rate_limit.enabled);
        assert_eq!(
            config.rate_limit.viewer,
            Some(Rate {
                per_second: 5,
                burst: 10
            })
        );
        assert_eq!(config.rate_limit.key.per_second, 50);
        assert_eq!(config.rate_limit.key.burst, DEFAULT_KEY_RATE.burst);
        assert_eq!(config.rate_limit.tenant, DEFAULT_TENANT_RATE);

        jail.set_env("NEXUS__RATE_LIMIT__TENANT__BURST", "0");
        let refused = load_in(jail, &Overrides::default()).unwrap_err();
        assert!(
            refused.to_string().contains("rate_limit.tenant"),
            "{refused}"
        );
        Ok(())
    });
}

#[test]
fn oidc_is_off_by_default_and_takes_defaults_from_env() {
    Jail::expect_with(|jail| {
        assert_eq!(load_in(jail, &Overrides::default()).unwrap().oidc, None);
        jail.set_env(
            "NEXUS__OIDC__ISSUER",
            "https://login.example.com/realms/acme",
        );
        jail.set_env("NEXUS__OIDC__AUDIENCE", "nexus");
        let oidc = load_in(jail, &Overrides::default()).unwrap().oidc.unwrap();
        assert_eq!(
            oidc,
            OidcConfig::new("https://login.example.com/realms/acme", "nexus")
        );
        assert_eq!(oidc.tenant_claim, "tenant");
        assert_eq!(oidc.role_claim, "role");
        assert_eq!(oidc.default_role, "viewer");
        assert_eq!(oidc.subject_claim, "sub");
        assert_eq!(oidc.default_tenant, None);
        assert_eq!(oidc.leeway_secs, 60);
        assert_eq!(oidc.jwks_refresh_secs, 300);
        Ok(())
    });
}

#[test]
fn oidc_comes_from_the_file_and_prints_back() {
    Jail::expect_with(|jail| {
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            r#"
            [oidc]
            issuer = "http://127.0.0.1:8080"
            audience = "nexus-api"
            tenant_claim = "org"
            default_tenant = "default"
            role_claim = "nexus_role"
            default_role = "operator"
            subject_claim = "email"
            leeway_secs = 600
            jwks_refresh_secs = 10
            "#,
        )?;
        let config = load_in(jail, &Overrides::default()).unwrap();
        let oidc = config.oidc.clone().unwrap();
        assert_eq!(oidc.tenant_claim, "org");
        assert_eq!(oidc.default_tenant.as_deref(), Some("default"));
        assert_eq!(oidc.default_role, "operator");
        assert_eq!(oidc.subject_claim, "email");
        assert_eq!(oidc.leeway_secs, 600);
        let reparsed: Config = toml::from_str(&config.to_redacted_toml()).unwrap();
        assert_eq!(reparsed.oidc, config.oidc);
        Ok(())
    });
}

#[test]
fn oidc_values_are_checked_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("ISSUER", "http://login.example.com", "oidc.issuer"),
        ("ISSUER", "not a url", "oidc.issuer"),
        ("ISSUER", "ftp://localhost/x", "oidc.issuer"),
        ("ISSUER", "https://user:pw@login.example.com", "oidc.issuer"),
        ("AUDIENCE", " ", "oidc.audience"),
        ("TENANT_CLAIM", " ", "oidc.tenant_claim"),
        ("DEFAULT_ROLE", "root", "oidc.default_role"),
        ("LEEWAY_SECS", "601", "oidc.leeway_secs"),
        ("JWKS_REFRESH_SECS", "5", "oidc.jwks_refresh_secs"),
        ("UNKNOWN_KEY", "x", "unknown_key"),
    ];
    for (key, value, named) in cases {
        Jail::expect_with(|jail| {
            jail.set_env("NEXUS__OIDC__ISSUER", "http://localhost:9000/idp");
            jail.set_env("NEXUS__OIDC__AUDIENCE", "nexus");
            assert!(load_in(jail, &Overrides::default()).is_ok());
            jail.set_env(format!("NEXUS__OIDC__{key}"), value);
            let err = load_in(jail, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains(named), "{key}={value}: {err}");
            Ok(())
        });
    }
    // Without an audience the section is incomplete.
    Jail::expect_with(|jail| {
        jail.set_env("NEXUS__OIDC__ISSUER", "https://login.example.com");
        let err = load_in(jail, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("audience"), "{err}");
        Ok(())
    });
}

#[test]
fn allowed_hosts_come_from_file_and_env_and_are_checked() {
    Jail::expect_with(|jail| {
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert!(
            config.server.allowed_hosts.is_empty(),
            "the server's own addresses only by default"
        );
        jail.create_dir(".nexus")?;
        jail.create_file(
            ".nexus/nexus.toml",
            r#"
            [server]
            allowed_hosts = ["nexus.example.com", "*.nexus.example.com"]
            "#,
        )?;
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert_eq!(
            config.server.allowed_hosts,
            ["nexus.example.com", "*.nexus.example.com"]
        );
        jail.set_env("NEXUS__SERVER__ALLOWED_HOSTS", r#"["*"]"#);
        let config = load_in(jail, &Overrides::default()).unwrap();
        assert_eq!(config.server.allowed_hosts, [ANY_HOST]);

        jail.set_env(
            "NEXUS__SERVER__ALLOWED_HOSTS",
            r#"["nexus.example.com:7700"]"#,
        );
        let refused = load_in(jail, &Overrides::default()).unwrap_err();
        assert!(
            refused.to_string().contains("server.allowed_hosts"),
            "{refused}"
        );
        Ok(())
    });
}
