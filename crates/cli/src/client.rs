//! The HTTP client used by client verbs: JSON in and out, problem+json errors turned into
//! CLI errors with the right exit code.

use std::path::PathBuf;

use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit::CliError;

/// The TLS files of client verbs: the CA to trust instead of the public roots, and the client
/// certificate and key to present to servers that ask for one (mutual TLS).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    fn client_config(&self) -> Result<nexus_tls::rustls::ClientConfig, CliError> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(CliError::usage(
                    "--client-cert needs its private key: add --client-key FILE (or NEXUS_CLIENT_KEY)",
                ));
            }
            (None, Some(_)) => {
                return Err(CliError::usage(
                    "--client-key needs its certificate: add --client-cert FILE (or NEXUS_CLIENT_CERT)",
                ));
            }
        };
        nexus_tls::client_config_with_identity(self.ca_cert.as_deref(), identity).map_err(|e| {
            // Name the flag whose file the error is about (errors name their file).
            let message = e.to_string();
            let flag = [
                (&self.ca_cert, "--ca-cert"),
                (&self.client_cert, "--client-cert"),
                (&self.client_key, "--client-key"),
            ]
            .into_iter()
            .find(|(path, _)| {
                path.as_ref()
                    .is_some_and(|p| message.contains(&p.display().to_string()))
            })
            .map_or("TLS", |(_, flag)| flag);
            CliError::usage(format!("{flag}: {message}"))
        })
    }
}

/// A NexusCore API client.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
    /// Print each request's method, URL, status and time on stderr, and the problem body of
    /// an error (`--verbose`); never headers, so never the API key.
    verbose: bool,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7700`) that authenticates
    /// with `api_key` (sent as `Authorization: Bearer`). An `https://` server's certificate
    /// must chain to the CAs `tls` names, or, without one, to the Mozilla roots; `tls` also
    /// names the client certificate to present, if any.
    pub fn new(base: &str, api_key: Option<&str>, tls: &TlsFiles) -> Result<Self, CliError> {
        let base = Url::parse(base)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--server must be an http:// or https:// URL, not `{base}`"
                ))
            })?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim())).map_err(
                    |_| CliError::usage("the API key must be printable ASCII without spaces"),
                )?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let tls = tls.client_config()?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .default_headers(headers)
            .user_agent(concat!("nexus-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::internal(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            base,
            http,
            verbose: false,
        })
    }

    /// This client, printing each request on stderr when `verbose` (`--verbose`).
    pub fn verbose(self, verbose: bool) -> Self {
        Self { verbose, ..self }
    }

    /// GETs the resource at `segments` (each percent-encoded) with `query` parameters.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.send(self.http.get(self.url(segments)).query(query))
            .await
    }

    /// POSTs `body` as JSON to `segments`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, CliError> {
        self.send(self.http.post(self.url(segments)).json(body))
            .await
    }

    /// PUTs raw bytes (`application/octet-stream`) to `segments`.
    pub async fn put_bytes<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Vec<u8>,
    ) -> Result<T, CliError> {
        self.send(
            self.http
                .put(self.url(segments))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
        )
        .await
    }

    /// DELETEs the resource at `segments`.
    pub async fn delete(&self, segments: &[&str]) -> Result<(), CliError> {
        self.send::<serde::de::IgnoredAny>(self.http.delete(self.url(segments)))
            .await
            .map(|_| ())
    }

    /// DELETEs the resource at `segments` and reads the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, CliError> {
        self.send(self.http.delete(self.url(segments))).await
    }

    /// DELETEs the resource at `segments` with `query` parameters and reads the JSON answer.
    pub async fn delete_json_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.send(self.http.delete(self.url(segments)).query(query))
            .await
    }

    /// Sends a request answered with `text/event-stream` and yields its events as they come.
    /// An error response is turned into a CLI error before any event.
    pub async fn events(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<impl futures::Stream<Item = Result<sse_stream::Sse, CliError>> + use<>, CliError>
    {
        let response = self
            .execute(request.header(reqwest::header::ACCEPT, "text/event-stream"))
            .await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.problem(status, &bytes));
        }
        let base = self.base.clone();
        Ok(futures::StreamExt::map(
            sse_stream::SseStream::from_bytes_stream(response.bytes_stream()),
            move |event| {
                event.map_err(|e| CliError {
                    code: CliError::UNREACHABLE,
                    message: format!("the event stream from {base} broke: {e}"),
                })
            },
        ))
    }

    /// GETs `segments` and yields the response body as it arrives (for downloads such as
    /// exports). An error response is turned into a CLI error before any byte.
    pub async fn download(
        &self,
        segments: &[&str],
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, CliError>> + use<>, CliError> {
        let response = self.execute(self.http.get(self.url(segments))).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.problem(status, &bytes));
        }
        let base = self.base.clone();
        Ok(futures::StreamExt::map(
            response.bytes_stream(),
            move |chunk| {
                chunk.map_err(|e| CliError {
                    code: CliError::UNREACHABLE,
                    message: format!("the download from {base} broke: {e}"),
                })
            },
        ))
    }

    /// A POST request with a JSON body, for [`events`](Self::events).
    pub fn post_request<B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> reqwest::RequestBuilder {
        self.http.post(self.url(segments)).json(body)
    }

    /// A GET request, for [`events`](Self::events).
    pub fn get_request(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        self.http.get(self.url(segments)).query(query)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
        let response = self.execute(request).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| CliError {
            code: CliError::UNREACHABLE,
            message: format!("the connection to {} broke: {e}", self.base),
        })?;
        if status.is_success() {
            // 204 No Content has no body; an empty JSON document stands in for it.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes).map_err(|e| {
                CliError::internal(format!("unexpected response from the server: {e}"))
            });
        }
        Err(self.problem(status, &bytes))
    }

    /// Sends `request`; with `--verbose`, prints its method, URL, status and time on stderr.
    async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CliError> {
        let request = request
            .build()
            .map_err(|e| CliError::internal(format!("cannot build the request: {e}")))?;
        let line = self
            .verbose
            .then(|| format!("{} {}", request.method(), request.url()));
        let started = std::time::Instant::now();
        let sent = self.http.execute(request).await;
        if let Some(line) = line {
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            match &sent {
                Ok(response) => eprintln!("{line} -> {} ({elapsed:.1} ms)", response.status()),
                Err(_) => eprintln!("{line} -> no answer ({elapsed:.1} ms)"),
            }
        }
        sent.map_err(|e| self.unreachable(&e))
    }

    /// The CLI error of an error response; with `--verbose`, its body is printed first.
    fn problem(&self, status: StatusCode, body: &[u8]) -> CliError {
        if self.verbose {
            eprintln!("{}", String::from_utf8_lossy(body));
        }
        problem_error(status, body)
    }

    /// The error of a request that got no answer: every cause (reqwest's own message leaves
    /// them out), and what to do about the usual TLS mistakes.
    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        let mut message = format!("cannot reach the server at {}: {error}", self.base);
        let mut hint = None;
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            hint = hint
                .or_else(|| tls_hint(cause, self.base.scheme()))
                .or_else(|| refused_hint(cause));
            source = cause.source();
        }
        if let Some(hint) = hint {
            message.push('\n');
            message.push_str(hint);
        }
        CliError {
            code: CliError::UNREACHABLE,
            message,
        }
    }
}

/// What to do when `error` (a cause of a failed request) is a refused connection: nothing
/// listens there, so either no server runs or the client looks in the wrong place.
fn refused_hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let refused = error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    refused.then_some(
        "Nothing listens there. Start a server (`nexus server`, or `scripts/quickstart` in a \
         checkout), or point --server or NEXUS_SERVER at the one you use.",
    )
}

/// What to do when `error` (a cause of a failed request to a `scheme` URL) is one of the usual
/// TLS mistakes.
fn tls_hint(mut error: &(dyn std::error::Error + 'static), scheme: &str) -> Option<&'static str> {
    use nexus_tls::rustls::{CertificateError, Error};
    if scheme == "http"
        && error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
    {
        return Some(
            "The answer was not HTTP: if the server serves HTTPS, use an https:// URL in \
             --server or NEXUS_SERVER.",
        );
    }
    // rustls' error travels inside io::Errors (hyper-rustls wraps tokio-rustls' in another),
    // whose `source` skips what they wrap.
    while let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        error = inner;
    }
    match error.downcast_ref::<Error>()? {
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => Some(
            "The server's certificate is not signed by a CA this client trusts. If it comes \
                 from a private CA or is self-signed, pass that CA's certificate (or the \
                 server's own) with --ca-cert FILE or NEXUS_CA_CERT.",
        ),
        Error::InvalidCertificate(CertificateError::Other(other))
            if format!("{other:?}").contains("CaUsedAsEndEntity") =>
        {
            Some(
                "The server's certificate is marked as a CA (basicConstraints CA:TRUE, what \
                 `openssl req -x509` makes by default); rustls accepts only end-entity \
                 certificates from servers. Make one with CA:FALSE (see docs/cli.md, TLS).",
            )
        }
        _ => None,
    }
}

/// Turns an error response into a CLI error, using the problem's code and detail if present.
fn problem_error(status: StatusCode, body: &[u8]) -> CliError {
    #[derive(serde::Deserialize)]
    struct Problem {
        code: String,
        detail: String,
    }
    let message = match serde_json::from_slice::<Problem>(body) {
        Ok(problem) if problem.code == "unauthenticated" => format!(
            "{} ({}); run `nexus login`, or set NEXUS_API_KEY or pass --api-key (the server \
             prints an admin key on its first start; `nexus keys create` makes more)",
            problem.detail, problem.code
        ),
        Ok(problem) => format!("{} ({})", problem.detail, problem.code),
        Err(_) => format!("the server answered {status}"),
    };
    CliError {
        code: if status.is_server_error() {
            CliError::SERVER_FAILED
        } else {
            CliError::REJECTED
        },
        message,
    }
}
