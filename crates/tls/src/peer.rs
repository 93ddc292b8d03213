//! Who is on the other end of a TLS connection: its address and, when it presented a client
//! certificate (which rustls has verified against the client CA by then), the URIs the
//! certificate names in its subjectAltName, such as a SPIFFE id.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Most subjectAltName URIs kept from one certificate: workload certificates carry one (SPIFFE
/// allows exactly one); more is a certificate made for something else.
pub const MAX_CLIENT_URIS: usize = 8;

/// Longest URI kept (SPIFFE ids are at most 2,048 bytes).
pub const MAX_CLIENT_URI_LEN: usize = 2048;

/// The remote end of an accepted TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The URIs of the verified client certificate's subjectAltName, in its order; empty when
    /// the client presented none, or its certificate names none.
    pub client_uris: Arc<[String]>,
}

impl TlsPeer {
    /// The peer at `addr` that presented `chain` (the end-entity certificate first).
    pub fn new(addr: SocketAddr, chain: Option<&[CertificateDer<'_>]>) -> Self {
        let client_uris = chain
            .and_then(<[CertificateDer<'_>]>::first)
            .map(|leaf| subject_alt_uris(leaf.as_ref()))
            .unwrap_or_default();
        Self {
            addr,
            client_uris: client_uris.into(),
        }
    }
}

/// The URIs in the subjectAltName of the DER certificate `der`, at most [`MAX_CLIENT_URIS`],
/// each at most [`MAX_CLIENT_URI_LEN`] bytes (longer ones are skipped). A certificate that
/// does not parse names none: rustls accepted it, so this only happens to exotic encodings,
/// and such a client is then known by its bearer token only.
pub fn subject_alt_uris(der: &[u8]) -> Vec<String> {
    let Ok((_, certificate)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.len() <= MAX_CLIENT_URI_LEN => Some((*uri).to_owned()),
            _ => None,
        })
        .take(MAX_CLIENT_URIS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[rcgen::SanType]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names.to_vec();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(text: &str) -> rcgen::SanType {
        rcgen::SanType::URI(text.try_into().unwrap())
    }

    #[test]
    fn uris_come_from_the_subject_alt_name_in_order_and_bounded() {
        let spiffe = "spiffe://nexus.example/tenants/acme/service-accounts/ci";
        let dns = rcgen::SanType::DnsName("ci.example".try_into().unwrap());
        let cases: Vec<(&str, Vec<rcgen::SanType>, Vec<String>)> = vec![
            ("none", vec![], vec![]),
            ("dns only", vec![dns.clone()], vec![]),
            (
                "a spiffe id among dns names",
                vec![dns.clone(), uri(spiffe), dns],
                vec![spiffe.to_owned()],
            ),
            (
                "too many",
                (0..12).map(|i| uri(&format!("urn:x:{i}"))).collect(),
                (0..MAX_CLIENT_URIS).map(|i| format!("urn:x:{i}")).collect(),
            ),
            (
                "too long",
                vec![
                    uri(&format!("urn:{}", "x".repeat(MAX_CLIENT_URI_LEN))),
                    uri(spiffe),
                ],
                vec![spiffe.to_owned()],
            ),
        ];
        for (name, sans, expected) in cases {
            assert_eq!(subject_alt_uris(&certificate(&sans)), expected, "{name}");
        }
        assert!(subject_alt_uris(b"not a certificate").is_empty());
        let peer = TlsPeer::new("127.0.0.1:1".parse().unwrap(), None);
        assert!(peer.client_uris.is_empty());
    }
}
