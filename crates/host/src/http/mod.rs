//! Outbound HTTP policy for `wasi:http/outgoing-handler`: only granted destinations, and never
//! private, loopback, link-local or otherwise non-public addresses unless the node allows them
//! at all ([`OutboundPolicy::allow_private_addresses`]) and a grant names that host explicitly.
//!
//! Grants are patterns in the style of Spin's `allowed_outbound_hosts`:
//! `scheme://host[:port]`, where scheme is `http`, `https` or `*`, host is a name, an IP
//! literal, `*.domain` or `*`, and port is a number or `*` (omitted: the scheme's default).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use http::uri::Scheme;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

mod send;

pub(crate) use send::tls_config;

/// An outbound grant that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid outbound host `{pattern}`: {reason}")]
pub struct InvalidHostPattern {
    pub pattern: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com`: any subdomain, stored as `.example.com`.
    Subdomain(String),
    /// One name or IP literal (lowercase; IPv6 without brackets).
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Any,
    Exact(u16),
    /// The default port of the request's scheme (80 for http, 443 for https).
    SchemeDefault,
}

/// One granted destination pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// `None` matches both http and https.
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

impl HostPattern {
    /// Parses `scheme://host[:port]`.
    pub fn parse(pattern: &str) -> Result<Self, InvalidHostPattern> {
        let invalid = |reason| InvalidHostPattern {
            pattern: pattern.chars().take(200).collect(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host[:port]"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_owned()),
            _ => return Err(invalid("scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(invalid("only scheme, host and port are allowed"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed ["))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid("expected :port after ]"))?,
                ),
            };
            (addr.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (rest.to_owned(), None),
            }
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(invalid("wildcards are `*` or `*.domain`"));
            }
            HostMatch::Subdomain(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(invalid("wildcards are `*` or `*.domain`"));
        } else {
            HostMatch::Exact(host)
        };
        let port = match port {
            None => PortMatch::SchemeDefault,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(
                p.parse()
                    .map_err(|_| invalid("port must be 1-65535 or *"))?,
            ),
        };
        if port == PortMatch::Exact(0) {
            return Err(invalid("port must be 1-65535 or *"));
        }
        Ok(Self { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` matches.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostMatch::Exact(exact) => *exact == host,
        };
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::SchemeDefault => port == default_port(scheme),
        };
        scheme_ok && host_ok && port_ok
    }

    /// Whether the pattern names one host, which is what it takes to reach a private address.
    pub fn is_explicit(&self) -> bool {
        matches!(self.host, HostMatch::Exact(_))
    }

    /// Whether every host the pattern matches is non-public whatever DNS says: an IP literal
    /// that is not public ([`is_public`]), or `localhost` and its subdomains, which resolve to
    /// loopback (RFC 6761). A name that merely resolves to a private address today is not.
    pub fn is_private_only(&self) -> bool {
        let loopback_name = |name: &str| name == "localhost" || name.ends_with(".localhost");
        match &self.host {
            HostMatch::Any => false,
            HostMatch::Subdomain(suffix) => loopback_name(suffix.trim_start_matches('.')),
            HostMatch::Exact(host) => host.parse::<IpAddr>().map_or_else(
                |_| loopback_name(host.trim_end_matches('.')),
                |ip| !is_public(ip),
            ),
        }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" { 80 } else { 443 }
}

/// Whether `ip` is a public unicast address; anything else needs an explicit grant.
pub use nexus_core::net::is_public;

/// The outbound HTTP policy of one task; plugs into wasmtime-wasi-http as its hooks.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<HostPattern>,
    /// Whether non-public addresses may be reached at all (by an explicit grant).
    private: bool,
}

impl OutboundPolicy {
    /// A policy allowing `grants` (each `scheme://host[:port]`), at public addresses only.
    pub fn new<S: AsRef<str>>(grants: &[S]) -> Result<Self, InvalidHostPattern> {
        Ok(Self {
            allowed: grants
                .iter()
                .map(|g| HostPattern::parse(g.as_ref()))
                .collect::<Result<_, _>>()?,
            private: false,
        })
    }

    /// Whether a grant that names a host explicitly may reach it at a private, loopback,
    /// link-local or other non-public address. An operator's decision for the whole node
    /// (`[runtime] allow_private_addresses`); otherwise agents could reach the node's own API
    /// and the services beside it.
    #[must_use]
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.private = allow;
        self
    }

    /// Decides a request to `scheme://host:port` resolving to `addresses`.
    pub fn check(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        addresses: &[IpAddr],
    ) -> Result<(), HttpError> {
        let matching: Vec<&HostPattern> = self
            .allowed
            .iter()
            .filter(|pattern| pattern.matches(scheme, host, port))
            .collect();
        if matching.is_empty() {
            return Err(HttpError::HttpRequestDenied);
        }
        let private = addresses.iter().any(|ip| !is_public(*ip));
        if private && !(self.private && matching.iter().any(|pattern| pattern.is_explicit())) {
            return Err(HttpError::DestinationIpProhibited);
        }
        Ok(())
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let _ = fut;
        let policy = self.clone();
        Box::new(async move {
            let uri = request.uri();
            let scheme = if uri.scheme() == Some(&Scheme::HTTP) {
                "http"
            } else {
                "https"
            };
            let host = uri
                .host()
                .ok_or(HttpError::HttpRequestUriInvalid)?
                .to_owned();
            let port = uri.port_u16().unwrap_or_else(|| default_port(scheme));
            // Refuse before resolving when no grant matches, so denied names are not even looked up.
            policy.check(scheme, &host, port, &[])?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((bare, port))
                    .await
                    .map_err(|e| HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    })?
                    .map(|addr| addr.ip())
                    .collect(),
            };
            policy.check(scheme, &host, port, &addresses)?;
            // To the addresses just checked: resolving the name again when connecting would
            // let a DNS answer that changed in between (rebinding) choose the destination.
            let addresses: Vec<SocketAddr> = addresses
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect();
            send::send_to(request, &addresses, options).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let cases: &[(&str, &str, &str, u16, bool)] = &[
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                "https://api.example.com",
                "http",
                "api.example.com",
                80,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                8443,
                false,
            ),
            (
                "https://api.example.com:8443",
                "https",
                "api.example.com",
                8443,
                true,
            ),
            ("*://api.example.com", "http", "api.example.com", 80, true),
            (
                "https://*.example.com",
                "https",
                "a.b.example.com",
                443,
                true,
            ),
            ("https://*.example.com", "https", "example.com", 443, false),
            (
                "https://*.example.com",
                "https",
                "evilexample.com",
                443,
                false,
            ),
            ("https://*", "https", "anything.org", 443, true),
            ("http://127.0.0.1:*", "http", "127.0.0.1", 9999, true),
            ("http://[::1]:8080", "http", "[::1]", 8080, true),
            (
                "HTTPS://API.EXAMPLE.COM",
                "https",
                "api.example.com",
                443,
                false,
            ),
        ];
        for (pattern, scheme, host, port, expected) in cases {
            let parsed = HostPattern::parse(pattern);
            let matched = parsed
                .as_ref()
                .is_ok_and(|p| p.matches(scheme, host, *port));
            assert_eq!(
                matched, *expected,
                "{pattern} vs {scheme}://{host}:{port} ({parsed:?})"
            );
        }
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https://exa*mple.com",
            "https://*.",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example.com/path",
            "https://user@example.com",
            "http://[::1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_public_addresses_need_an_explicit_grant() {
        let wildcard = OutboundPolicy::new(&["http://*:*"]).unwrap_or_default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.0.1",
            "172.16.0.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::from([8, 8, 8, 8]));
            assert!(
                matches!(
                    wildcard.check("http", "h", 80, &[ip]),
                    Err(HttpError::DestinationIpProhibited)
                ),
                "{ip}"
            );
        }
        assert!(
            wildcard
                .check(
                    "http",
                    "h",
                    80,
                    &["93.184.216.34"
                        .parse()
                        .unwrap_or(IpAddr::from([0, 0, 0, 0]))]
                )
                .is_ok()
        );

        let explicit = OutboundPolicy::new(&["http://127.0.0.1:8080"])
            .unwrap_or_default()
            .allow_private_addresses(true);
        let loopback: IpAddr = IpAddr::from([127, 0, 0, 1]);
        assert!(
            explicit
                .check("http", "127.0.0.1", 8080, &[loopback])
                .is_ok()
        );
        assert!(matches!(
            explicit.check("http", "127.0.0.1", 8081, &[loopback]),
            Err(HttpError::HttpRequestDenied)
        ));
        let none = OutboundPolicy::default();
        assert!(matches!(
            none.check("https", "example.com", 443, &[]),
            Err(HttpError::HttpRequestDenied)
        ));
    }

    /// With private addresses off for the node, no grant reaches one, however it names it:
    /// an IP literal, `localhost`, or a name that resolves to a private address (the check
    /// is on the resolved addresses, which are the ones connected to).
    #[test]
    fn private_addresses_are_unreachable_unless_the_node_allows_them() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let public = IpAddr::from([93, 184, 216, 34]);
        // (grant, host, address, allowed with the setting off, allowed with it on)
        let cases: &[(&str, &str, IpAddr, bool, bool)] = &[
            ("http://127.0.0.1:*", "127.0.0.1", loopback, false, true),
            ("http://localhost:*", "localhost", loopback, false, true),
            (
                "http://db.internal",
                "db.internal",
                IpAddr::from([10, 0, 0, 5]),
                false,
                true,
            ),
            (
                "http://0.0.0.0:*",
                "0.0.0.0",
                IpAddr::from([0, 0, 0, 0]),
                false,
                true,
            ),
            (
                "http://[::1]:*",
                "[::1]",
                "::1".parse().unwrap_or(loopback),
                false,
                true,
            ),
            ("http://*:*", "localhost", loopback, false, false),
            ("https://example.com", "example.com", public, true, true),
        ];
        for (grant, host, ip, off, on) in cases {
            let policy = OutboundPolicy::new(&[grant]).unwrap_or_default();
            let port = if grant.starts_with("https") { 443 } else { 80 };
            let scheme = if grant.starts_with("https") {
                "https"
            } else {
                "http"
            };
            for (allow, expected) in [(false, off), (true, on)] {
                let result =
                    policy
                        .clone()
                        .allow_private_addresses(allow)
                        .check(scheme, host, port, &[*ip]);
                assert_eq!(result.is_ok(), *expected, "{grant} → {ip}, private {allow}");
                if !expected {
                    assert!(matches!(result, Err(HttpError::DestinationIpProhibited)));
                }
            }
        }
    }

    #[test]
    fn grants_that_only_name_private_hosts_are_recognised() {
        let cases = [
            ("http://127.0.0.1:*", true),
            ("http://10.1.2.3", true),
            ("http://[::1]:8080", true),
            ("http://[fd00::1]", true),
            ("http://0.0.0.0:*", true),
            ("http://169.254.169.254", true),
            ("http://localhost:*", true),
            ("http://LOCALHOST", true),
            ("http://api.localhost", true),
            ("http://*.localhost", true),
            ("http://localhost.", true),
            ("https://example.com", false),
            ("https://93.184.216.34", false),
            ("http://*:*", false),
            ("https://*.example.com", false),
            ("http://db.internal", false),
            ("http://notlocalhost", false),
        ];
        for (grant, expected) in cases {
            let pattern = HostPattern::parse(grant);
            assert_eq!(
                pattern.as_ref().is_ok_and(HostPattern::is_private_only),
                expected,
                "{grant}: {pattern:?}"
            );
        }
    }
}
