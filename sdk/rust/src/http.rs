//! Outbound HTTP over `wasi:http`. Only hosts granted to the deployment are reachable; others
//! fail with [`HttpError::Refused`].

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;

/// Bytes written or read per stream call; wasi streams accept at most 4 KiB per blocking write.
const CHUNK: usize = 4096;
/// Largest response body read, so a huge response cannot exhaust the agent's memory.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A response with its whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an absolute http(s) URL.
    InvalidUrl(String),
    /// The platform refused the destination (not granted, or a private address).
    Refused(String),
    /// The request failed on the way (DNS, connection, timeout, protocol).
    Failed(String),
    /// The response body is larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Self::Refused(why) => write!(f, "request refused: {why}"),
            Self::Failed(why) => write!(f, "request failed: {why}"),
            Self::TooLarge => write!(f, "response larger than {MAX_RESPONSE_BYTES} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

/// `GET url`.
pub fn get(url: &str) -> Result<HttpResponse, HttpError> {
    request("GET", url, &[], None)
}

/// Sends a request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, HttpError> {
    let parsed = url::Url::parse(url).map_err(|e| HttpError::InvalidUrl(e.to_string()))?;
    let scheme = match parsed.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(HttpError::InvalidUrl(format!(
                "unsupported scheme `{other}`"
            )));
        }
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| HttpError::InvalidUrl("no host".into()))?;
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };

    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| HttpError::Failed(format!("invalid header {name}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        _ => Method::Other(method.to_owned()),
    };
    let invalid = |what: &str| HttpError::InvalidUrl(format!("invalid {what}"));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;

    let outgoing_body = outgoing
        .body()
        .map_err(|()| HttpError::Failed("request body unavailable".into()))?;
    let future = outgoing_handler::handle(outgoing, None).map_err(classify)?;
    if let Some(bytes) = body {
        let stream = outgoing_body
            .write()
            .map_err(|()| HttpError::Failed("request body stream unavailable".into()))?;
        for chunk in bytes.chunks(CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Failed(format!("writing the body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing_body, None).map_err(classify)?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(classify(code)),
        Some(Err(())) | None => return Err(HttpError::Failed("no response".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Failed("response body unavailable".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Failed("response body stream unavailable".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Failed(e.to_debug_string()));
            }
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn classify(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Refused("destination not granted".into()),
        ErrorCode::DestinationIpProhibited => HttpError::Refused(
            "private or reserved address: reachable only on a node that allows private \
                 addresses, with a grant naming the host"
                .into(),
        ),
        other => HttpError::Failed(format!("{other:?}")),
    }
}
