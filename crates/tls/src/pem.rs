//! Reading PEM files with errors that say which file and what is wrong with it, and the client
//! configuration built from them.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, RootCertStore};

use crate::{ALPN_PROTOCOLS, MAX_PEM_FILE_BYTES, TlsError};

/// The crypto provider of every configuration built here.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads `path` whole, refusing files larger than [`MAX_PEM_FILE_BYTES`].
fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_PEM_FILE_BYTES {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn not_pem(path: &Path, what: &'static str, error: &pem::Error) -> TlsError {
    TlsError::NotPem {
        what,
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Whether the PEM text has a block whose label contains `label` (for hints only).
fn has_block(bytes: &[u8], label: &str) -> bool {
    String::from_utf8_lossy(bytes)
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.contains(label))
}

/// Every certificate in the PEM file `path`, in order; at least one.
pub(crate) fn certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, what, &e))?;
    if certs.is_empty() {
        let hint = if has_block(&bytes, "PRIVATE KEY") {
            ": it holds a private key; are the certificate and the key swapped?"
        } else if bytes.starts_with(&[0x30]) {
            ": it looks like DER; convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else {
            ""
        };
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
            hint,
        });
    }
    Ok(certs)
}

/// The first private key in the PEM file `path`.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "private key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if has_block(&bytes, "ENCRYPTED PRIVATE KEY") {
                ": it is encrypted; write it out unencrypted (`openssl pkey -in FILE -out FILE`)"
            } else if has_block(&bytes, "CERTIFICATE") {
                ": it holds a certificate; are the certificate and the key swapped?"
            } else {
                ""
            };
            Err(TlsError::NoPrivateKey {
                path: path.to_owned(),
                hint,
            })
        }
        Err(e) => Err(not_pem(path, "private key", &e)),
    }
}

/// A store of the CA certificates in the PEM bundle `path`; every one must parse.
pub(crate) fn roots(path: &Path, what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, what)? {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The TLS configuration of a client of a NexusCore server: servers are trusted if their
/// certificate chains to the CAs in the PEM bundle `ca` (a private CA, or a self-signed server
/// certificate), or, without one, to the Mozilla roots. TLS 1.2 and 1.3; ALPN `http/1.1`.
pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    client_config_with_identity(ca, None)
}

/// [`client_config`], presenting the client certificate chain and key in the PEM files
/// `identity` (`(certificate, key)`) to servers that ask for one (mutual TLS).
pub fn client_config_with_identity(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match ca {
        Some(path) => roots(path, "CA certificate")?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        },
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert, "client certificate")?, private_key(key)?)
            .map_err(|e| TlsError::Config(format!("{}: {e}", key.display())))?,
    };
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
