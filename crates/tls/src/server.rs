//! The server's TLS configuration: built from the files, replaced when they change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};

use crate::pem::{certificates, private_key, provider, roots};
use crate::{ALPN_PROTOCOLS, ClientAuth, MinVersion, TlsError, TlsSettings};

/// Counter of TLS handshakes, labelled by `outcome`: `ok`, `failed` (a client that is not
/// speaking TLS, offers nothing we accept, or has no valid client certificate), `timeout`,
/// `refused` (too many in progress, [`crate::MAX_PENDING_HANDSHAKES`]).
pub const HANDSHAKES_METRIC: &str = "nexus_tls_handshakes_total";
/// Counter of configuration reloads, labelled by `outcome`: `ok` or `failed`.
pub const RELOADS_METRIC: &str = "nexus_tls_reloads_total";

/// The server's TLS: the configuration new connections get, which [`reload`](Self::reload)
/// replaces, and counters of what happened. Shared (in an `Arc`) by the listener and the
/// watcher.
#[derive(Debug)]
pub struct ServerTls {
    settings: TlsSettings,
    current: RwLock<Loaded>,
    /// The files as they were when last read; also serialises reloads.
    stamps: Mutex<Stamps>,
    pub(crate) counters: Counters,
}

/// A configuration and what identifies its certificate.
#[derive(Debug, Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    certificate_sha256: String,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) handshakes: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) in_progress: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

/// What the listener and reloads have done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes that completed.
    pub handshakes: u64,
    /// Handshakes that failed (not TLS, nothing in common, no or a bad client certificate).
    pub handshake_failures: u64,
    /// Handshakes that did not finish within the timeout.
    pub handshake_timeouts: u64,
    /// Connections closed unanswered because too many handshakes were in progress.
    pub refused: u64,
    /// Handshakes in progress now.
    pub in_progress: u64,
    /// Reloads that replaced the configuration.
    pub reloads: u64,
    /// Reloads that failed and left the previous configuration in place.
    pub reload_failures: u64,
}

impl ServerTls {
    /// Reads and checks the files of `settings` and builds the configuration.
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let stamps = Stamps::of(&settings);
        let loaded = build(&settings)?;
        Ok(Self {
            settings,
            current: RwLock::new(loaded),
            stamps: Mutex::new(stamps),
            counters: Counters::default(),
        })
    }

    /// The settings this was loaded from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .clone()
    }

    /// SHA-256 of the server certificate being served (hex), as `openssl x509 -fingerprint
    /// -sha256` shows it without colons: what tells an operator which certificate is live.
    pub fn certificate_sha256(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .certificate_sha256
            .clone()
    }

    /// Re-reads every file and, if they make a valid configuration, serves it to connections
    /// accepted from now on; established connections keep the one they started with. On
    /// error the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        // Taken before reading: a change made while reading shows up at the next look.
        // Recorded even if the files are bad, so a broken state is reported once, not at
        // every poll, and the next change is tried.
        *stamps = Stamps::of(&self.settings);
        match build(&self.settings) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                self.counters.reloads.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(RELOADS_METRIC, "outcome" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                self.counters
                    .reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!(RELOADS_METRIC, "outcome" => "failed").increment(1);
                Err(e)
            }
        }
    }

    /// [`reload`](Self::reload)s if a file's modification time, size or identity (the file a
    /// symbolic link leads to, its inode) changed since the last read. Returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = Stamps::of(&self.settings);
        if *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The counters.
    pub fn stats(&self) -> TlsStats {
        let c = &self.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        TlsStats {
            handshakes: get(&c.handshakes),
            handshake_failures: get(&c.handshake_failures),
            handshake_timeouts: get(&c.handshake_timeouts),
            refused: get(&c.refused),
            in_progress: get(&c.in_progress),
            reloads: get(&c.reloads),
            reload_failures: get(&c.reload_failures),
        }
    }

    /// Reloads on SIGHUP, and when the files change (looked at every `interval`, see
    /// [`crate::RELOAD_POLL_INTERVAL`]); logs each reload, and each failure as an error. Ends
    /// once nothing else holds this `ServerTls`. SIGHUP is handled from the moment this
    /// returns (it no longer ends the process). Must be called within a Tokio runtime.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let mut hangup = hangup_signal();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is now: the files were just read
            loop {
                let forced = tokio::select! {
                    _ = ticks.tick() => false,
                    () = hangup_received(&mut hangup) => true,
                };
                let Some(tls) = weak.upgrade() else { break };
                let outcome = tokio::task::spawn_blocking(move || {
                    let reloaded = if forced {
                        tls.reload().map(|()| true)
                    } else {
                        tls.reload_if_changed()
                    };
                    reloaded.map(|done| done.then(|| tls.certificate_sha256()))
                })
                .await;
                match outcome {
                    Ok(Ok(Some(sha256))) => tracing::info!(
                        certificate_sha256 = %sha256,
                        trigger = if forced { "SIGHUP" } else { "file change" },
                        "reloaded the TLS certificate"
                    ),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(
                        error = %e,
                        "TLS reload failed; still serving the previous certificate"
                    ),
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        })
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are still watched");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

/// Resolves at the next SIGHUP; never, where there is none to wait for.
#[cfg(unix)]
async fn hangup_received(signal: &mut Hangup) {
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

#[cfg(not(unix))]
async fn hangup_received(_: &mut Hangup) {
    std::future::pending().await
}

/// The rustls configuration of `settings`, with every file checked.
fn build(settings: &TlsSettings) -> Result<Loaded, TlsError> {
    let provider = provider();
    let chain = certificates(&settings.cert, "certificate")?;
    let key = private_key(&settings.key)?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: settings.key.clone(),
                reason: e.to_string(),
            })?;
    let certificate_sha256 = chain
        .first()
        .map(|leaf| hex::encode(Sha256::digest(leaf.as_ref())))
        .unwrap_or_default();
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; rustls serves it all the same.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: settings.cert.clone(),
                key: settings.key.clone(),
            });
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                what: "certificate",
                path: settings.cert.clone(),
                reason: e.to_string(),
            });
        }
    }

    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        MinVersion::Tls13 => &[&rustls::version::TLS13],
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional { ca } | ClientAuth::Required { ca } => {
            let roots = Arc::new(roots(ca, "client CA")?);
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if matches!(settings.client_auth, ClientAuth::Optional { .. }) {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Loaded {
        config: Arc::new(config),
        certificate_sha256,
    })
}

/// What identifies the files' contents without reading them.
#[derive(Debug, PartialEq, Eq)]
struct Stamps(Vec<Option<Stamp>>);

#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    /// Where symbolic links lead (cert-manager and certbot rotate by re-pointing them).
    target: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    /// Device and inode: a file replaced by a rename is another file, even within the
    /// resolution of the modification time.
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamps {
    fn of(settings: &TlsSettings) -> Self {
        let mut paths = vec![&settings.cert, &settings.key];
        paths.extend(settings.client_auth.ca());
        Self(paths.into_iter().map(|path| stamp(path)).collect())
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let target = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&target).ok()?;
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    };
    Some(Stamp {
        target,
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode,
    })
}
