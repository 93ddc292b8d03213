//! `nexus server`: open storage, bootstrap the data directory and serve the API until SIGINT or
//! SIGTERM, finishing in-flight requests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use clap::Args;
use nexus_api::{AppState, Limits};
use nexus_config::{Config, DatabaseBackend, LogFormat, Overrides, TlsOverrides};
use nexus_core::tenant::DEFAULT_TENANT;
use nexus_core::{Name, NewTenant};
use nexus_store::Store;
use nexus_telemetry::LogStyle;
use tokio::net::TcpListener;

use crate::exit::CliError;

/// Why tasks that were running when the server stopped end up FAILED.
const INTERRUPTED_TASK_REASON: &str =
    "the server stopped while this task was running; send the message again to retry";

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, env = "NEXUS_LISTEN")]
    listen: Option<String>,
    /// Data directory: SQLite database, blobs, compiled components.
    #[arg(long, env = "NEXUS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long)]
    database_url: Option<String>,
    /// Config file (default: nexus.toml in the data directory, if present).
    #[arg(long, env = "NEXUS_CONFIG")]
    config: Option<PathBuf>,
    /// On a fresh data directory, the admin API key to create instead of a random one (for
    /// automation; at least 22 characters).
    #[arg(long, env = "NEXUS_BOOTSTRAP_API_KEY", hide_env_values = true)]
    bootstrap_api_key: Option<String>,
    /// Serve without authentication, rate limits or authorization: every request acts as the
    /// platform. Refused unless the server listens on a loopback address. For measuring the
    /// gateway's cost (scripts/bench-gateway) or a laptop no one else reaches.
    #[arg(long, env = "NEXUS_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
    /// --tls-key. Re-read on SIGHUP and when the file changes.
    #[arg(long, env = "NEXUS_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "NEXUS_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign client certificates: clients must present one
    /// (mutual TLS; see --tls-client-auth).
    #[arg(long, env = "NEXUS_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Whether clients must present a certificate signed by --tls-client-ca (default with a
    /// client CA: required).
    #[arg(long, env = "NEXUS_TLS_CLIENT_AUTH", value_parser = ["none", "optional", "required"])]
    tls_client_auth: Option<String>,
    /// Oldest TLS version accepted (default 1.3).
    #[arg(long, env = "NEXUS_TLS_MIN_VERSION", value_parser = ["1.2", "1.3"])]
    tls_min_version: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
}

pub async fn run(args: ServerArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        tls: TlsOverrides {
            cert: args.tls_cert,
            key: args.tls_key,
            client_ca: args.tls_client_ca,
            client_auth: args.tls_client_auth,
            min_version: args.tls_min_version,
        },
    };
    let config = Config::load(args.config.as_deref(), &overrides)
        .map_err(|e| CliError::usage(format!("configuration: {e}")))?;
    if args.print_config {
        print!("{}", config.to_redacted_toml());
        return Ok(());
    }
    let style = match config.log.format {
        LogFormat::Auto => LogStyle::Auto,
        LogFormat::Json => LogStyle::Json,
        LogFormat::Human => LogStyle::Human,
    };
    nexus_telemetry::init_logging(style, &config.log.level)
        .map_err(|e| CliError::usage(e.to_string()))?;
    // Before anything is created: a bad certificate is a usage error, found at once.
    let tls = server_tls(&config.server.tls)?;
    // Reloads on SIGHUP and when the files change, from now on.
    let watching = tls
        .as_ref()
        .map(|tls| tls.watch(nexus_tls::RELOAD_POLL_INTERVAL));

    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| {
        CliError::internal(format!(
            "cannot create data directory {}: {e}",
            config.server.data_dir.display()
        ))
    })?;
    let store = open_store(&config).await?;
    let default_tenant = bootstrap(store.as_ref()).await?;

    let metrics = nexus_telemetry::init_metrics().map_err(|e| CliError::internal(e.to_string()))?;
    let limits = Limits {
        body_limit_bytes: usize::try_from(config.server.body_limit_bytes).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        max_in_flight: config.server.max_in_flight,
        rate_limit: config.rate_limit,
        authentication: authentication(&config, args.insecure_no_auth, default_tenant)?,
        cors: config.server.cors.clone(),
    };
    let control = control_plane(&config, store.clone())?;
    bootstrap_key(&control, default_tenant, args.bootstrap_api_key.as_deref()).await?;
    // The OIDC issuer's keys, fetched while the listener comes up (logged if unreachable).
    tokio::spawn({
        let control = control.clone();
        async move { control.prefetch_oidc_keys().await }
    });
    let app = nexus_api::router(AppState { control, metrics }, limits);

    let addr = config
        .listen_addr()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::internal(e.to_string()))?;
    let certificate_sha256 = tls.as_ref().map(|t| t.certificate_sha256());
    tracing::info!(
        address = %local,
        url = %format!("{}://{local}", if tls.is_some() { "https" } else { "http" }),
        tls_min_version = tls.as_ref().map(|t| t.settings().min_version.as_str()),
        tls_client_auth = tls.as_ref().map(|t| t.settings().client_auth.as_str()),
        certificate_sha256 = certificate_sha256.as_deref(),
        database = store.backend(),
        data_dir = %config.server.data_dir.display(),
        "listening"
    );

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let outcome = match tls {
        Some(tls) => match nexus_tls::TlsListener::new(listener, tls) {
            Ok(listener) => serve(listener, app, grace).await,
            Err(e) => Err(CliError::internal(format!(
                "cannot start the TLS listener: {e}"
            ))),
        },
        None => {
            // Small request/response exchanges must not wait for Nagle's algorithm (the TLS
            // listener does the same).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            serve(listener, app, grace).await
        }
    };
    if let Some(watching) = watching {
        watching.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    outcome
}

/// Serves `app` on `listener` until SIGINT or SIGTERM, then lets in-flight requests finish
/// for up to `grace`.
async fn serve<L>(listener: L, app: axum::Router, grace: Duration) -> Result<(), CliError>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(());
    });
    // On a worker thread, not on the thread that blocks on `main`'s future: there, every
    // accepted connection would wake a thread of its own before a worker got the connection.
    let mut serving = tokio::spawn(server.into_future());
    tokio::select! {
        result = &mut serving => match result {
            Ok(served) => served.map_err(|e| CliError::internal(format!("server error: {e}"))),
            Err(e) => Err(CliError::internal(format!("the server's accept loop failed: {e}"))),
        },
        () = async {
            // Only counts down once shutdown has begun.
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            serving.abort();
            Ok(())
        }
    }
}

/// The server's TLS from `[server.tls]` (validated when the config was loaded), with every
/// file read and checked; `None` for plain HTTP.
fn server_tls(
    config: &nexus_config::TlsConfig,
) -> Result<Option<Arc<nexus_tls::ServerTls>>, CliError> {
    let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
        return Ok(None);
    };
    let ca = || {
        config.client_ca.clone().ok_or_else(|| {
            CliError::usage("server.tls.client_auth: client certificates need server.tls.client_ca")
        })
    };
    let client_auth = match config.effective_client_auth() {
        nexus_config::ClientAuth::None => nexus_tls::ClientAuth::None,
        nexus_config::ClientAuth::Optional => nexus_tls::ClientAuth::Optional { ca: ca()? },
        nexus_config::ClientAuth::Required => nexus_tls::ClientAuth::Required { ca: ca()? },
    };
    let settings = nexus_tls::TlsSettings {
        cert: cert.clone(),
        key: key.clone(),
        client_auth,
        min_version: match config.min_version {
            nexus_config::TlsVersion::Tls12 => nexus_tls::MinVersion::Tls12,
            nexus_config::TlsVersion::Tls13 => nexus_tls::MinVersion::Tls13,
        },
    };
    nexus_tls::ServerTls::load(settings)
        .map(|tls| Some(Arc::new(tls)))
        .map_err(|e| CliError::usage(format!("TLS: {e}")))
}

/// The control plane: packages in `<data-dir>/blobs`, compiled components cached in
/// `<data-dir>/cache`, the deterministic `echo` model provider, push notifications as `[push]`
/// says, OIDC tokens accepted as `[oidc]` says.
pub(crate) fn control_plane(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<Arc<nexus_control::ControlPlane>, CliError> {
    let data_dir = &config.server.data_dir;
    let blobs = nexus_blob::BlobStore::local(&data_dir.join("blobs"))
        .map_err(|e| CliError::internal(e.to_string()))?;
    let runtime = nexus_runtime::Runtime::new(nexus_runtime::RuntimeConfig {
        cache_dir: Some(data_dir.join("cache")),
        ..nexus_runtime::RuntimeConfig::default()
    })
    .map_err(|e| CliError::internal(e.to_string()))?;
    let mut control = nexus_control::ControlPlane::new(
        store,
        blobs,
        Arc::new(runtime),
        Arc::new(nexus_host::llm::EchoProvider),
        Arc::new(master_key(data_dir)?),
    )
    .with_push(nexus_push::Settings {
        allow_private_addresses: config.push.allow_private_addresses,
        ..nexus_push::Settings::default()
    });
    if let Some(oidc) = &config.oidc {
        control = control
            .with_oidc(oidc_settings(oidc)?)
            .map_err(|e| CliError::usage(e.to_string()))?;
    }
    Ok(Arc::new(control))
}

/// The control plane's OIDC settings from `[oidc]` (validated when the config was loaded).
fn oidc_settings(
    config: &nexus_config::OidcConfig,
) -> Result<nexus_control::OidcSettings, CliError> {
    let usage = |key: &str, e: &dyn std::fmt::Display| CliError::usage(format!("{key}: {e}"));
    let default_tenant = config
        .default_tenant
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| usage("oidc.default_tenant", &e))?;
    let default_role = config
        .default_role
        .parse()
        .map_err(|e| usage("oidc.default_role", &e))?;
    Ok(nexus_control::OidcSettings {
        issuer: config.issuer.clone(),
        audience: config.audience.clone(),
        tenant_claim: config.tenant_claim.clone(),
        default_tenant,
        role_claim: config.role_claim.clone(),
        default_role,
        subject_claim: config.subject_claim.clone(),
        leeway: Duration::from_secs(config.leeway_secs),
        jwks_refresh: Duration::from_secs(config.jwks_refresh_secs),
        refetch_interval: nexus_control::MIN_REFETCH_INTERVAL,
    })
}

/// The key that protects deployment secrets, `<data-dir>/master.key`, created on first start.
/// A key file that is malformed or readable by others stops the server.
fn master_key(data_dir: &std::path::Path) -> Result<nexus_secrets::LocalKeyFile, CliError> {
    use nexus_secrets::SecretsError;
    match nexus_secrets::LocalKeyFile::open_or_create(data_dir) {
        Ok((key, created)) => {
            if created {
                tracing::warn!(
                    path = %key.path().display(),
                    "created the master key that encrypts secrets; back it up apart from the \
                     database: without it stored secrets cannot be recovered"
                );
            }
            Ok(key)
        }
        Err(
            e @ (SecretsError::KeyFileMalformed { .. }
            | SecretsError::KeyFileLength { .. }
            | SecretsError::KeyFilePermissions { .. }),
        ) => Err(CliError::usage(e.to_string())),
        Err(e) => Err(CliError::internal(e.to_string())),
    }
}

pub(crate) async fn open_store(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    let url = config.database_url();
    let backend = config
        .database_backend()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let store: Arc<dyn Store> = match backend {
        DatabaseBackend::Sqlite => Arc::new(
            nexus_store_sqlite::SqliteStore::open(&url, config.database.max_connections)
                .await
                .map_err(|e| CliError::internal(format!("opening the database: {e}")))?,
        ),
        DatabaseBackend::Postgres => Arc::new(
            nexus_store_postgres::PgStore::open(&url, config.database.max_connections, None)
                .await
                .map_err(|e| CliError::internal(format!("opening the database: {e}")))?,
        ),
    };
    Ok(store)
}

/// Makes a fresh data directory usable and cleans up after a crash: the `default` tenant
/// exists, and no task is left running. Returns the `default` tenant's id.
pub(crate) async fn bootstrap(store: &dyn Store) -> Result<nexus_core::TenantId, CliError> {
    let name = Name::parse(DEFAULT_TENANT).map_err(|e| CliError::internal(e.to_string()))?;
    let tenant = store
        .ensure_tenant(NewTenant {
            name,
            display_name: "Default".into(),
        })
        .await
        .map_err(|e| CliError::internal(format!("creating the default tenant: {e}")))?;
    let failed = store
        .fail_unfinished_tasks(INTERRUPTED_TASK_REASON)
        .await
        .map_err(|e| CliError::internal(format!("recovering interrupted tasks: {e}")))?;
    if failed > 0 {
        tracing::warn!(
            tasks = failed,
            "marked tasks interrupted by the last stop as failed"
        );
    }
    Ok(tenant.id)
}

/// Whether requests must authenticate: always, unless `--insecure-no-auth` on loopback.
fn authentication(
    config: &Config,
    insecure_no_auth: bool,
    tenant: nexus_core::TenantId,
) -> Result<nexus_api::Authentication, CliError> {
    if !insecure_no_auth {
        return Ok(nexus_api::Authentication::Required);
    }
    let addr = config
        .listen_addr()
        .map_err(|e| CliError::usage(e.to_string()))?;
    if !addr.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "--insecure-no-auth serves everyone as the platform admin; it is refused on {addr}, \
             which is not a loopback address"
        )));
    }
    tracing::warn!(
        address = %addr,
        "serving WITHOUT authentication: every request acts as the platform admin"
    );
    Ok(nexus_api::Authentication::InsecureNone { tenant })
}

/// Gives a platform without keys its first one: `chosen` (`NEXUS_BOOTSTRAP_API_KEY`), or a
/// random key printed once on stderr, the only place it ever appears.
async fn bootstrap_key(
    control: &nexus_control::ControlPlane,
    tenant: nexus_core::TenantId,
    chosen: Option<&str>,
) -> Result<(), CliError> {
    let created = control
        .bootstrap_key(tenant, chosen)
        .await
        .map_err(|e| match e {
            nexus_control::ControlError::Invalid(why) => CliError::usage(why),
            other => CliError::internal(format!("creating the bootstrap API key: {other}")),
        })?;
    if let Some(secret) = created {
        eprintln!(
            "\nCreated the platform's first API key (owner of `default`, platform admin). It is \
             shown only now; keep it safe:\n\n    export NEXUS_API_KEY={secret}\n"
        );
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
