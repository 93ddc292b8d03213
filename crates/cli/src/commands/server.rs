//! `nexus server`: open storage, bootstrap the data directory and serve the API until SIGINT or
//! SIGTERM, finishing in-flight requests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use clap::Args;
use nexus_api::{AppState, Limits};
use nexus_config::{Config, LogFormat, Overrides, TlsOverrides};
use nexus_telemetry::LogStyle;
use tokio::net::TcpListener;

use crate::exit::CliError;

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

    let nexus_server::Platform {
        store,
        control,
        default_tenant,
    } = platform(&config).await?;

    let metrics = nexus_telemetry::init_metrics().map_err(|e| CliError::internal(e.to_string()))?;
    let limits = Limits {
        body_limit_bytes: usize::try_from(config.server.body_limit_bytes).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        max_in_flight: config.server.max_in_flight,
        max_in_flight_per_tenant: config.server.in_flight_per_tenant(),
        max_in_flight_per_principal: config.server.in_flight_per_principal(),
        rate_limit: config.rate_limit,
        authentication: authentication(&config, args.insecure_no_auth, default_tenant)?,
        cors: config.server.cors.clone(),
        allowed_hosts: config.server.allowed_hosts.clone(),
    };
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
    let file_limit = nexus_serve::raise_file_limit();
    let serving = nexus_serve::ServeConfig {
        max_connections: nexus_serve::connection_cap(config.server.max_connections, file_limit),
        header_timeout: Duration::from_secs(config.server.header_timeout_secs),
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
    };
    let certificate_sha256 = tls.as_ref().map(|t| t.certificate_sha256());
    // Before `listening` (and without that word): whoever reads the log up to that line sees
    // it.
    if !local.ip().is_loopback() {
        tracing::warn!(
            address = %local,
            tls = tls.is_some(),
            "bound to a non-loopback address: other machines can reach this server; every \
             request must carry an API key or token, so keep the keys secret, {}",
            if tls.is_some() {
                "and serve only behind this TLS"
            } else {
                "and serve it over TLS (--tls-cert/--tls-key, or a TLS proxy in front): \
                 without it keys cross the network in the clear"
            }
        );
    }
    // Registered before `listening`: a signal sent as soon as that line appears stops the
    // server gracefully instead of killing it.
    let shutdown = shutdown_signal();
    tracing::info!(
        address = %local,
        url = %format!("{}://{local}", if tls.is_some() { "https" } else { "http" }),
        tls_min_version = tls.as_ref().map(|t| t.settings().min_version.as_str()),
        tls_client_auth = tls.as_ref().map(|t| t.settings().client_auth.as_str()),
        certificate_sha256 = certificate_sha256.as_deref(),
        database = store.backend(),
        data_dir = %config.server.data_dir.display(),
        max_connections = serving.max_connections,
        file_limit,
        "listening"
    );

    let outcome = match tls {
        Some(tls) => match nexus_tls::TlsListener::new(listener, tls) {
            Ok(listener) => serve(listener, app, serving, shutdown).await,
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
            serve(listener, app, serving, shutdown).await
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
/// for up to the grace period. Requests carry `ConnectInfo` of the listener's address type: the
/// client's address (and over TLS the identity its certificate names), for authentication and
/// per-client limits.
async fn serve<L>(
    listener: L,
    app: axum::Router,
    config: nexus_serve::ServeConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError>
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let grace = config.grace;
    let shutdown = async {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    // On a worker thread, not on the thread that blocks on `main`'s future: there, every
    // accepted connection would wake a thread of its own before a worker got the connection.
    match tokio::spawn(nexus_serve::serve(listener, app, config, shutdown)).await {
        Ok(nexus_serve::Stopped::Drained) => Ok(()),
        Ok(nexus_serve::Stopped::GraceExpired { open_connections }) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                open_connections,
                "in-flight requests did not finish in time"
            );
            Ok(())
        }
        Err(e) => Err(CliError::internal(format!(
            "the server's accept loop failed: {e}"
        ))),
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

/// The platform `config` describes, from the composition root.
pub(crate) async fn platform(config: &Config) -> Result<nexus_server::Platform, CliError> {
    let built = match nexus_server::PlatformBuilder::from_config(config) {
        Ok(builder) => builder.build().await,
        Err(e) => Err(e),
    };
    built.map_err(|e| match e {
        nexus_server::ServerError::Usage(why) => CliError::usage(why),
        nexus_server::ServerError::Internal(why) => CliError::internal(why),
    })
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are registered when this is called,
/// not when the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn received(signal: std::io::Result<Signal>) {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                // Without a handler this signal cannot stop the server gracefully; the other can.
                Err(_) => std::future::pending::<()>().await,
            }
        }
        let interrupt = received(signal(SignalKind::interrupt()));
        let terminate = received(signal(SignalKind::terminate()));
        async move {
            tokio::select! {
                () = interrupt => {},
                () = terminate => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
