//! `[server.tls]`: HTTPS for the listener.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

/// `[server.tls]`: serve HTTPS with this certificate and key (both, or neither: plain HTTP).
/// Files are checked when the server starts and re-read when they change or on SIGHUP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign client certificates (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Whether clients must present a certificate; `required` when `client_ca` is set and
    /// this is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// Oldest protocol version accepted: `1.3` (default) or `1.2`.
    pub min_version: TlsVersion,
    /// SPIFFE trust domain of workload certificates: a client certificate (signed by
    /// `client_ca`) whose subjectAltName URI is
    /// `spiffe://<trust_domain>/tenants/<tenant>/service-accounts/<name>` authenticates a
    /// request without a bearer token as that service account. Absent: certificates only
    /// admit connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
}

/// Longest trust domain (a DNS name's limit, which SPIFFE trust domains usually are).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Whether `domain` is a SPIFFE trust domain: lowercase letters, digits, `.`, `-` and `_`.
pub fn is_trust_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_TRUST_DOMAIN_LEN
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// `server.tls.client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// Clients may present a certificate signed by `client_ca`; those without one are served.
    Optional,
    /// Clients must present a certificate signed by `client_ca`.
    Required,
}

/// `server.tls.min_version`: `"1.2"` or `"1.3"` (a bare number is accepted too, as the
/// environment layer reads `NEXUS__SERVER__TLS__MIN_VERSION=1.2` as one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    #[default]
    Tls13,
}

impl TlsVersion {
    /// `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        };
        match text.trim() {
            "1.2" => Ok(Self::Tls12),
            "1.3" => Ok(Self::Tls13),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not a TLS version this server accepts as its minimum: expected \
                 \"1.2\" or \"1.3\""
            ))),
        }
    }
}

impl TlsConfig {
    /// Whether the server serves HTTPS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }

    /// The client-certificate policy in effect: as set, or `required` when only `client_ca`
    /// is.
    pub fn effective_client_auth(&self) -> ClientAuth {
        match (self.client_auth, &self.client_ca) {
            (Some(auth), _) => auth,
            (None, Some(_)) => ClientAuth::Required,
            (None, None) => ClientAuth::None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        for (key, path) in [
            ("server.tls.cert", &self.cert),
            ("server.tls.key", &self.key),
            ("server.tls.client_ca", &self.client_ca),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return invalid(key, "must name a file (or be left out)");
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                return invalid(
                    "server.tls.key",
                    "a certificate (server.tls.cert, --tls-cert) needs its private key: set \
                     server.tls.key, --tls-key or NEXUS_TLS_KEY",
                );
            }
            (None, Some(_)) => {
                return invalid(
                    "server.tls.cert",
                    "a private key (server.tls.key, --tls-key) needs its certificate: set \
                     server.tls.cert, --tls-cert or NEXUS_TLS_CERT",
                );
            }
            _ => {}
        }
        let auth = self.effective_client_auth();
        match (auth, &self.client_ca) {
            (ClientAuth::Optional | ClientAuth::Required, None) => {
                return invalid(
                    "server.tls.client_ca",
                    "client certificates need the CA that signs them: set server.tls.client_ca \
                     or --tls-client-ca",
                );
            }
            (ClientAuth::None, Some(_)) => {
                return invalid(
                    "server.tls.client_auth",
                    "is \"none\" but server.tls.client_ca is set; say \"optional\" or \
                     \"required\", or remove client_ca",
                );
            }
            _ => {}
        }
        if let Some(domain) = &self.trust_domain {
            if !is_trust_domain(domain) {
                return invalid(
                    "server.tls.trust_domain",
                    "must be a SPIFFE trust domain: lowercase letters, digits, `.`, `-`, `_`, \
                     at most 255 bytes (e.g. \"nexus.example.com\")",
                );
            }
            if self.client_ca.is_none() {
                return invalid(
                    "server.tls.trust_domain",
                    "workload certificates need the CA that signs them: set \
                     server.tls.client_ca (or --tls-client-ca)",
                );
            }
        }
        if !self.enabled() && self.client_ca.is_some() {
            return invalid(
                "server.tls.client_ca",
                "client certificates need HTTPS: set server.tls.cert and server.tls.key \
                 (--tls-cert, --tls-key)",
            );
        }
        Ok(())
    }
}

/// TLS values given as command-line flags (`--tls-*`); `None` leaves the value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// `none`, `optional` or `required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
    /// `1.2` or `1.3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
}

impl TlsOverrides {
    /// Whether no TLS flag was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests;
