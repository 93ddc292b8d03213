//! The HTTP load of `nexus bench http`: HTTP/1.1 keep-alive connections on `hyper`'s client
//! connection API, each driving its own requests, spread over a few threads that each run a
//! single-threaded tokio runtime.
//!
//! On a loopback benchmark the generator shares the machine's cores with the server, so every
//! microsecond it spends per request is taken from the server. A pooled general-purpose client
//! (reqwest) cost ~37 µs of CPU per request here; this costs a fraction of that: no pool, no
//! URL or header parsing per request, no lock per sample (each connection keeps its own
//! histogram), no hand-off between threads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest latency the histogram records; anything slower is clamped and counted there.
const MAX_RECORDED_LATENCY_US: u64 = 60_000_000;
/// Pause before reconnecting a connection the server closed, so a server that refuses every
/// connection is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// What every request looks like, built once.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    authority: String,
    /// Path and query of every request.
    path: Uri,
    /// `POST` with this body, else `GET`.
    body: Option<Bytes>,
    /// Every header of a request: the caller's, `Host`, and `Content-Type` on a POST.
    headers: HeaderMap,
}

impl Target {
    /// Requests to `url` (`http://` only), a POST of the JSON `body` if there is one, with
    /// `headers` besides `Host` and `Content-Type`.
    pub fn new(url: &str, body: Option<String>, mut headers: HeaderMap) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("`{url}`: only http:// URLs can be loaded"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{url}` names no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("invalid host in `{url}`: {e}"))?;
        headers.insert(HOST, host);
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let path = uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
            path,
            body: body.map(Bytes::from),
            headers,
        })
    }
}

/// The shape of one run: how many connections on how many threads, at what rate, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub threads: usize,
    /// Requests per second over all connections (open loop); 0 for closed loop.
    pub rate: u32,
    pub warmup: Duration,
    pub measured: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub struct Tally {
    /// Latencies of the successful requests that were due in the measured window, in µs.
    pub histogram: Histogram<u64>,
    /// Failed requests (connection errors, non-2xx statuses) due in the measured window.
    pub errors: u64,
    /// From the start of the measured window to the last response.
    pub elapsed: Duration,
}

impl Tally {
    fn new() -> Result<Self, String> {
        Ok(Self {
            histogram: Histogram::new_with_max(MAX_RECORDED_LATENCY_US, 3)
                .map_err(|e| e.to_string())?,
            errors: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: &Self) -> Result<(), String> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| e.to_string())?;
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
        Ok(())
    }
}

/// Sends one request on a fresh connection and reads the whole response: whether the target
/// answers at all.
pub async fn probe(target: &Target) -> Result<(), String> {
    let mut sender = connect(target).await?;
    let response = sender
        .send_request(request(target))
        .await
        .map_err(|e| e.to_string())?;
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs the plan on its own threads and returns once every connection has finished.
pub fn run(target: &Target, plan: Plan) -> Result<Tally, String> {
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let start = Instant::now();
    let window = Window {
        start,
        measured_from: start + plan.warmup,
        deadline: start + plan.warmup + plan.measured,
    };
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                // Connection c runs on thread c % threads.
                let connections: Vec<usize> = (thread..plan.connections).step_by(threads).collect();
                std::thread::Builder::new()
                    .name(format!("nexus-load-{thread}"))
                    .spawn_scoped(scope, move || {
                        load_thread(target, plan, window, &connections)
                    })
                    .map_err(|e| format!("cannot start a load thread: {e}"))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle?
                    .join()
                    .map_err(|_| "a load thread panicked".to_owned())?
            })
            .collect::<Result<Vec<Tally>, String>>()
    })?;
    let mut total = Tally::new()?;
    for tally in &tallies {
        total.merge(tally)?;
    }
    Ok(total)
}

/// When the run starts, when measuring starts, when sending stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measured_from: Instant,
    deadline: Instant,
}

fn load_thread(
    target: &Target,
    plan: Plan,
    window: Window,
    connections: &[usize],
) -> Result<Tally, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a load thread's runtime: {e}"))?;
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for &index in connections {
            let target = target.clone();
            set.spawn(async move { connection(&target, plan, window, index).await });
        }
        let mut total = Tally::new()?;
        while let Some(tally) = set.join_next().await {
            total.merge(&tally.map_err(|e| format!("a load connection failed: {e}"))??)?;
        }
        Ok(total)
    })
}

/// One connection's requests: back to back (closed loop), or its slice of the global schedule
/// (open loop: connection `index` owns requests `index`, `index + C`, `index + 2C`, …).
async fn connection(
    target: &Target,
    plan: Plan,
    window: Window,
    index: usize,
) -> Result<Tally, String> {
    let mut tally = Tally::new()?;
    let connections = plan.connections.max(1) as u32;
    let interval = (plan.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(connections) / f64::from(plan.rate)));
    let offset = interval.map(|i| i.mul_f64(index as f64 / f64::from(connections)));
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let mut n: u32 = 0;
    loop {
        let due = match (interval, offset) {
            (Some(interval), Some(offset)) => window.start + offset + interval * n,
            _ => Instant::now(),
        };
        if due >= window.deadline {
            break;
        }
        // Latency is measured from when the request was due. If the connection is behind (the
        // previous response was slow), that includes the wait: the server's fault. If it is
        // early, it sleeps; the timer may wake it late, which is the generator's fault, so the
        // clock starts at the wake-up instead.
        let measured_from = if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        let ok = match exchange(target, &mut sender).await {
            Ok(ok) => ok,
            Err(_) => {
                sender = None;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                false
            }
        };
        let done = Instant::now();
        if measured_from >= window.measured_from {
            if ok {
                let latency = u64::try_from(done.duration_since(measured_from).as_micros())
                    .unwrap_or(u64::MAX);
                tally
                    .histogram
                    .saturating_record(latency.min(MAX_RECORDED_LATENCY_US));
            } else {
                tally.errors += 1;
            }
            tally.elapsed = done.duration_since(window.measured_from);
        }
        n = n.saturating_add(1);
    }
    Ok(tally)
}

/// One request and its whole response on the connection, opening it first if needed; whether
/// the status was a success.
async fn exchange(
    target: &Target,
    sender: &mut Option<http1::SendRequest<Full<Bytes>>>,
) -> Result<bool, String> {
    let open = match sender {
        Some(open) => open,
        None => sender.insert(connect(target).await?),
    };
    open.ready().await.map_err(|e| e.to_string())?;
    let response = open
        .send_request(request(target))
        .await
        .map_err(|e| e.to_string())?;
    let success = response.status().is_success();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(success)
}

async fn connect(target: &Target) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.authority))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Ends when the sender is dropped or the server closes the connection.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(target: &Target) -> Request<Full<Bytes>> {
    let (method, body) = match &target.body {
        Some(body) => (Method::POST, body.clone()),
        None => (Method::GET, Bytes::new()),
    };
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = target.path.clone();
    request.headers_mut().clone_from(&target.headers);
    request
}
