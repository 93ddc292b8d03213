//! Logging and metrics set-up shared by every NexusCore process.
//!
//! Logs are JSON lines in production and human-readable on a terminal; metrics are recorded
//! through the `metrics` facade and rendered in the Prometheus text format.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub use metrics_exporter_prometheus::PrometheusHandle as MetricsHandle;

/// Histogram of HTTP request durations in seconds, labelled by method, route and status.
pub const HTTP_REQUEST_DURATION: &str = "nexus_http_request_duration_seconds";
/// Counter of HTTP requests, labelled by method, route and status.
pub const HTTP_REQUESTS: &str = "nexus_http_requests_total";
/// Gauge of requests being processed.
pub const HTTP_IN_FLIGHT: &str = "nexus_http_requests_in_flight";
/// Gauge of open client connections.
pub const HTTP_CONNECTIONS: &str = "nexus_http_connections";
/// Counter of client connections closed by the server to make room (idle ones, at the cap) or
/// refused (at the cap with none idle), labelled by `reason`: `evicted` or `refused`.
pub const HTTP_CONNECTIONS_SHED: &str = "nexus_http_connections_shed_total";
/// Gauge of requests admitted and not yet answered (the node's share in use).
pub const HTTP_REQUESTS_ADMITTED: &str = "nexus_http_requests_admitted";
/// Counter of requests refused by admission control (too many in flight), labelled by `scope`:
/// `node`, `tenant` or `principal`.
pub const HTTP_REQUESTS_SHED: &str = "nexus_http_requests_shed_total";

/// Histogram buckets for request latency: from 100 µs (a cached read) to 30 s (the default
/// request timeout).
const LATENCY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    30.0,
];

/// How often the metrics recorder drains the samples histograms have recorded into their
/// summaries. Until drained, every sample stays in memory (at 10,000 requests a second, ~300 MB
/// an hour if nobody scrapes `/metrics`); the exporter's own default period.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human-readable when stderr is a terminal, JSON otherwise.
    Auto,
    Json,
    Human,
}

/// Logging or metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
}

/// Installs the global `tracing` subscriber, writing to stderr (stdout carries data).
pub fn init_logging(style: LogStyle, filter: &str) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let json = match style {
        LogStyle::Json => true,
        LogStyle::Human => false,
        LogStyle::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(BoxMakeWriter::new(std::io::stderr));
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}

/// The process-wide metrics recorder, installed on first use; renders `/metrics`.
///
/// Idempotent, so every server in a process (tests start several) shares one recorder. The first
/// call also starts the recorder's upkeep on a thread of its own (see [`UPKEEP_INTERVAL`]).
pub fn init_metrics() -> Result<PrometheusHandle, TelemetryError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
            &LATENCY_BUCKETS,
        )
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    let mut first = false;
    let handle = HANDLE.get_or_init(|| {
        first = true;
        handle
    });
    if first {
        let upkept = handle.clone();
        std::thread::Builder::new()
            .name("nexus-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkept.run_upkeep();
                }
            })
            .map_err(|e| TelemetryError::Metrics(format!("cannot start metrics upkeep: {e}")))?;
    }
    Ok(handle.clone())
}
