//! HTTPS for `nexus server`.
//!
//! - [`ServerTls`] builds a rustls server configuration from PEM files ([`TlsSettings`]): TLS 1.3
//!   only unless 1.2 is opted into, ALPN `http/1.1` (the server speaks HTTP/1.1 only), and, with a
//!   client CA, client certificates checked by rustls' `WebPkiClientVerifier` ([`ClientAuth`]).
//!   Every file is checked when it is loaded, with an error that names the file and what is wrong
//!   with it ([`TlsError`]).
//! - The configuration can be replaced while the server runs: [`ServerTls::reload`] re-reads the
//!   files (on SIGHUP, and when their modification time changes: [`ServerTls::watch`]). New
//!   connections get the new certificate; established ones keep theirs. A reload that fails
//!   leaves the previous configuration in place.
//! - [`TlsListener`] is an [`axum::serve::Listener`]: it accepts TCP connections and runs each
//!   handshake in a task of its own, under [`HANDSHAKE_TIMEOUT`], handing finished streams to
//!   axum through a channel, so a client that connects and stays silent delays nobody else.
//! - [`client_config`] is the client side the CLI uses: the Mozilla roots, or a private CA.
//!
//! Cryptography is rustls' `ring` provider, the one every other TLS user in the workspace has.

mod listener;
mod peer;
mod pem;
mod server;

use std::path::PathBuf;
use std::time::Duration;

pub use listener::{HandshakeLimits, TlsListener};
pub use peer::{MAX_CLIENT_URI_LEN, MAX_CLIENT_URIS, TlsPeer, subject_alt_uris};
pub use pem::{client_config, client_config_with_identity};
pub use server::{HANDSHAKES_METRIC, RELOADS_METRIC, ServerTls, TlsStats};
pub use tokio_rustls::rustls;

/// How long a client has to finish its handshake once its connection is accepted. A real
/// client needs a few round trips (milliseconds, or a second on a bad mobile link); a client
/// that takes longer is gone or is holding a socket on purpose.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most handshakes in progress at once; a connection accepted beyond this is closed at once.
/// Each pending handshake holds a socket and a few tens of KiB of buffers until it finishes or
/// times out, so this bounds what clients that connect and never finish can take (a file
/// descriptor each, out of the process's limit). Real handshakes finish in milliseconds, so
/// a busy node has a few dozen in progress.
pub const MAX_PENDING_HANDSHAKES: usize = 512;

/// How often [`ServerTls::watch`] looks at the files' modification times, so a certificate
/// renewed by cert-manager or certbot is picked up without a signal. Certificates are renewed
/// days before they expire; half a minute is prompt and costs three `stat` calls.
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Largest PEM file read (certificate chain, key, client CA bundle). Chains are a few KiB and a
/// bundle of every public root is ~200 KiB; a larger file is the wrong file (or `/dev/zero`).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// The ALPN protocols the server offers: HTTP/1.1 only, because axum is built without HTTP/2
/// here (a client offering only `h2` is refused during the handshake rather than misunderstood).
pub const ALPN_PROTOCOLS: [&[u8]; 1] = [b"http/1.1"];

/// The files and policies of the server's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Whether clients must present a certificate, and the CA that signs them.
    pub client_auth: ClientAuth,
    /// Oldest protocol version accepted.
    pub min_version: MinVersion,
}

/// Client certificates (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A client may present a certificate; one that does must present a valid one, signed by
    /// a CA in `ca`. Clients without a certificate are served too.
    Optional {
        /// PEM bundle of the CAs that sign client certificates.
        ca: PathBuf,
    },
    /// Every client must present a valid certificate signed by a CA in `ca`; others fail the
    /// handshake.
    Required {
        /// PEM bundle of the CAs that sign client certificates.
        ca: PathBuf,
    },
}

impl ClientAuth {
    /// The CA bundle, if client certificates are asked for.
    pub fn ca(&self) -> Option<&PathBuf> {
        match self {
            Self::None => None,
            Self::Optional { ca } | Self::Required { ca } => Some(ca),
        }
    }

    /// `none`, `optional` or `required`, as the configuration spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional { .. } => "optional",
            Self::Required { .. } => "required",
        }
    }
}

/// Oldest TLS version the server accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3: for clients that cannot do 1.3 yet; only when asked for.
    Tls12,
    /// TLS 1.3 only (the default).
    #[default]
    Tls13,
}

impl MinVersion {
    /// `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// Why a TLS configuration could not be loaded. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_PEM_FILE_BYTES`].
    #[error("the {what} {path} is larger than {MAX_PEM_FILE_BYTES} bytes; is it the right file?")]
    TooLarge { what: &'static str, path: PathBuf },
    /// The file has a PEM block that does not decode.
    #[error("the {what} {path} is not valid PEM: {reason}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The file has no PEM certificate.
    #[error(
        "the {what} {path} contains no certificate (expected `-----BEGIN CERTIFICATE-----`){hint}"
    )]
    NoCertificate {
        what: &'static str,
        path: PathBuf,
        /// A guess at the mistake, e.g. a key file given as the certificate.
        hint: &'static str,
    },
    /// The key file has no PEM private key.
    #[error(
        "the private key {path} contains no private key (expected `-----BEGIN PRIVATE KEY-----`, \
         `RSA PRIVATE KEY` or `EC PRIVATE KEY`){hint}"
    )]
    NoPrivateKey {
        path: PathBuf,
        /// A guess at the mistake, e.g. a certificate given as the key.
        hint: &'static str,
    },
    /// A certificate does not parse as X.509.
    #[error("the {what} {path} holds a certificate that cannot be used: {reason}")]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The private key is not one rustls can sign with (RSA, ECDSA P-256/P-384, Ed25519).
    #[error("the private key {path} cannot be used: {reason}")]
    BadKey { path: PathBuf, reason: String },
    /// The private key is not the key of the certificate.
    #[error("the private key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// rustls refused the configuration for another reason.
    #[error("cannot configure TLS: {0}")]
    Config(String),
}
