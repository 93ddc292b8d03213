//! The gate against cross-site requests and DNS rebinding, in front of every route: `Host`
//! must name an address the server answers to, and a request from a browser page (one that
//! carries `Origin`) must come from the server's own origin or one `[server.cors]` lists.
//! Listed origins get their CORS headers here (see [`crate::cors`]).
//!
//! - **Host.** A DNS rebinding page gets the victim's browser to send the attacker's name as
//!   `Host`. Served: IP literals, `localhost`, and the names of `[server] allowed_hosts`
//!   (`*.example.com` for the names below one, `*` for any). A missing, repeated or malformed
//!   `Host`, or one that disagrees with the request target's authority, is refused too
//!   (`400 host_refused`). A request without any (HTTP/1.0, or a test) passes: browsers always
//!   send one. The probes `/healthz` and `/readyz` answer whatever the name, so load balancers
//!   that send their own never see a healthy node as down; they reveal nothing.
//! - **Origin.** Browsers send `Origin` with every cross-origin request and every same-origin
//!   one but `GET`/`HEAD`; programs (the CLI, SDKs, curl) send none and are unaffected. A
//!   present `Origin` must be the request's own (same host and port as `Host`; the scheme is
//!   not compared, as the server cannot always know it behind TLS termination) or a listed
//!   one; anything else, `null` included, is `403 origin_refused` on every method, before
//!   authentication or any handler runs. Preflights are answered for listed origins only.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nexus_core::ErrorCode;

use crate::cors::{self, Cors};
use crate::error::ApiError;

/// Paths served whatever the `Host`: the probes, which load balancers call by their own names.
const ANY_HOST_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Longest part of a refused `Host` or `Origin` echoed in the problem's detail.
const MAX_ECHOED_CHARS: usize = 100;

/// A host as `Host` or `Origin` carry it: an IP literal or a DNS name (lowercase, without the
/// trailing dot of the fully qualified form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    Name(String),
}

/// A host and its port, if written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    pub host: Host,
    pub port: Option<u16>,
}

/// An `Origin` header's value, parsed: a scheme (`http` or `https`) and an authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub https: bool,
    pub authority: Authority,
}

impl Origin {
    /// The port the origin is on: the one written, or its scheme's.
    fn port(&self) -> u16 {
        self.authority
            .port
            .unwrap_or(if self.https { 443 } else { 80 })
    }

    /// Whether the origin is the one of a request to `target`: the same host, and the same
    /// port, a `Host` without a port meaning the default port of the origin's own scheme.
    fn is_same_as(&self, target: &Authority) -> bool {
        self.authority.host == target.host
            && self.port() == target.port.unwrap_or(if self.https { 443 } else { 80 })
    }
}

/// Parses an authority as `Host` carries it: `name`, `1.2.3.4` or `[v6]`, then optionally
/// `:port`. No user information, no path, no IPv6 zone, nothing else.
pub(crate) fn parse_authority(value: &str) -> Option<Authority> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (literal, rest) = rest.split_once(']')?;
        let ip: Ipv6Addr = literal.parse().ok()?;
        (Host::Ip(IpAddr::V6(ip)), rest)
    } else {
        // A name or an IPv4 literal holds no `:`; an unbracketed IPv6 literal is refused.
        let (host, port) = value.split_at(value.find(':').unwrap_or(value.len()));
        let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if nexus_config::is_dns_name(host) {
            let name = host.strip_suffix('.').unwrap_or(host);
            Host::Name(name.to_ascii_lowercase())
        } else {
            return None;
        };
        (host, port)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(digits) => {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    Some(Authority { host, port })
}

/// Parses an `Origin` value: `http://` or `https://` and an authority, as browsers serialize
/// it (lowercase scheme, no path). `null` and anything else is `None`.
pub(crate) fn parse_origin(value: &str) -> Option<Origin> {
    let (https, rest) = if let Some(rest) = value.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, value.strip_prefix("http://")?)
    };
    Some(Origin {
        https,
        authority: parse_authority(rest)?,
    })
}

/// Which names the server answers to, from `[server] allowed_hosts`.
#[derive(Debug, Clone)]
pub(crate) enum AllowedHosts {
    /// `*`: every name.
    Any,
    /// IP literals, `localhost`, these names, and the names below these suffixes (each
    /// starting with its `.`).
    Names {
        names: HashSet<String>,
        suffixes: Vec<String>,
    },
}

impl AllowedHosts {
    /// The policy of `allowed_hosts` (entries the configuration would refuse are left out).
    pub(crate) fn new(allowed_hosts: &[String]) -> Self {
        if allowed_hosts.iter().any(|h| h == nexus_config::ANY_HOST) {
            return Self::Any;
        }
        let mut names = HashSet::new();
        let mut suffixes = Vec::new();
        for entry in allowed_hosts {
            let entry = entry
                .strip_suffix('.')
                .unwrap_or(entry)
                .to_ascii_lowercase();
            match entry.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => suffixes.push(suffix.to_owned()),
                Some(_) => {}
                None => {
                    names.insert(entry);
                }
            }
        }
        Self::Names { names, suffixes }
    }

    /// Whether the server answers to `host`.
    pub(crate) fn allows(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) | (_, Host::Ip(_)) => true,
            (Self::Names { names, suffixes }, Host::Name(name)) => {
                name == "localhost"
                    || names.contains(name)
                    || suffixes
                        .iter()
                        .any(|suffix| name.ends_with(suffix.as_str()))
            }
        }
    }
}

/// The gate's configuration: which hosts, which cross-origin pages.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    hosts: AllowedHosts,
    cors: Option<Cors>,
}

impl Gate {
    pub(crate) fn new(allowed_hosts: &[String], cors: &nexus_config::CorsConfig) -> Self {
        Self {
            hosts: AllowedHosts::new(allowed_hosts),
            cors: Cors::new(cors),
        }
    }
}

/// Up to [`MAX_ECHOED_CHARS`] of a refused header, visible ASCII only, for the detail.
fn echo(value: &HeaderValue) -> String {
    value
        .as_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .take(MAX_ECHOED_CHARS)
        .map(|b| char::from(*b))
        .collect()
}

fn host_refused(detail: String) -> ApiError {
    ApiError::new(ErrorCode::HostRefused, detail)
}

/// The authority the request is addressed to: its `Host`, and the request target's own
/// (an absolute-form target, or HTTP/2's `:authority`), which must agree. `None` when the
/// request names none (HTTP/1.0).
fn target(request: &Request) -> Result<Option<Authority>, ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let from_header = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(host_refused("`Host` is given more than once".into())),
        (Some(value), None) => Some(
            value
                .to_str()
                .ok()
                .and_then(parse_authority)
                .ok_or_else(|| host_refused(format!("`Host: {}` is malformed", echo(value))))?,
        ),
    };
    let from_target = match request.uri().authority() {
        None => None,
        Some(authority) => Some(parse_authority(authority.as_str()).ok_or_else(|| {
            host_refused("the request target's authority is malformed".to_owned())
        })?),
    };
    match (from_header, from_target) {
        (Some(header), Some(target)) if header != target => Err(host_refused(
            "`Host` and the request target name different hosts".into(),
        )),
        (header, target) => Ok(target.or(header)),
    }
}

/// Tells a client whose refused request has an unread body that the connection closes (the
/// server closes it rather than read the body), so it does not send its next request there.
fn refuse(request: &Request, error: ApiError) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let mut response = error.into_response();
    if has_body {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The gate: refuses a `Host` the server does not answer to and an `Origin` it does not
/// serve, answers listed origins' preflights, and lets listed origins read the response.
pub(crate) async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let target = match target(&request) {
        Ok(target) => target,
        Err(error) => return refuse(&request, error),
    };
    if let Some(target) = &target
        && !gate.hosts.allows(&target.host)
        && !ANY_HOST_PATHS.contains(&request.uri().path())
    {
        let shown = request
            .headers()
            .get(header::HOST)
            .map(echo)
            .unwrap_or_default();
        return refuse(
            &request,
            host_refused(format!(
                "this server does not answer to `{shown}`; its operator lists the names it \
                 serves in `[server] allowed_hosts`"
            )),
        );
    }
    let origin = match origin_of(request.headers()) {
        Ok(None) => {
            let mut response = next.run(request).await;
            if gate.cors.is_some() {
                Cors::vary(&mut response);
            }
            return response;
        }
        Ok(Some(origin)) => origin,
        Err(error) => return refuse(&request, error),
    };
    let listed = gate.cors.as_ref().filter(|cors| cors.allows(&origin));
    if let Some(cors) = listed {
        if cors::is_preflight(request.method(), request.headers()) {
            return cors.preflight(&origin);
        }
        let mut response = next.run(request).await;
        Cors::allow(&origin, &mut response);
        Cors::vary(&mut response);
        return response;
    }
    let same_origin = origin
        .to_str()
        .ok()
        .and_then(parse_origin)
        .zip(target.as_ref())
        .is_some_and(|(origin, target)| origin.is_same_as(target));
    // A page never preflights its own origin: a preflight not from a listed origin is
    // refused, so it learns no method or header list.
    if !same_origin || cors::is_preflight(request.method(), request.headers()) {
        let detail = format!(
            "requests from the web page at `{}` are not served; its operator lists the \
             origins that may call the API in `[server.cors] allowed_origins`",
            echo(&origin)
        );
        return refuse(&request, ApiError::new(ErrorCode::OriginRefused, detail));
    }
    let mut response = next.run(request).await;
    if gate.cors.is_some() {
        Cors::vary(&mut response);
    }
    response
}

/// The request's `Origin`, if it has one; given twice, it is refused.
fn origin_of(headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => Ok(None),
        (Some(origin), None) => Ok(Some(origin.clone())),
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorCode::OriginRefused,
            "`Origin` is given more than once",
        )),
    }
}

#[cfg(test)]
mod tests;
