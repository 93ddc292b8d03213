//! `nexus bench`: a loopback load generator.
//!
//! `nexus bench http URL --rate R` sends requests on a fixed schedule (open loop) and measures
//! each latency from the moment the request was *due* whenever the generator is behind
//! schedule, so a stalled server cannot hide its stall by slowing the generator (coordinated
//! omission). With
//! `--rate 0` it runs closed loop: `--connections` workers send back to back, to find the
//! ceiling throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Mutex;

use super::Output;
use crate::exit::CliError;

/// Largest latency the histogram records; anything slower is clamped and counted there.
const MAX_RECORDED_LATENCY_US: u64 = 60_000_000;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load an HTTP endpoint with GET requests and report latency percentiles.
    Http(HttpArgs),
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// The URL to GET, e.g. http://127.0.0.1:7700/v1/tenants/default.
    url: String,
    /// Requests per second (open loop); 0 sends as fast as the connections allow.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds (same load, not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
}

/// The result of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub mode: &'static str,
    pub target_rate: u32,
    pub connections: usize,
    pub duration_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub async fn run(cmd: BenchCommand, output: Output) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Http(args) => {
            let report = http(&args).await?;
            if output.json {
                return output.print_json(&report);
            }
            println!(
                "{} {} rps target, {} connections, {:.1}s: {} requests ({} errors), {:.0} req/s",
                report.mode,
                report.target_rate,
                report.connections,
                report.duration_secs,
                report.requests,
                report.errors,
                report.throughput_rps
            );
            println!(
                "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                report.p50_ms, report.p90_ms, report.p99_ms, report.p999_ms, report.max_ms
            );
            Ok(())
        }
    }
}

#[derive(Debug)]
struct Tally {
    histogram: Histogram<u64>,
    errors: u64,
}

async fn http(args: &HttpArgs) -> Result<Report, CliError> {
    if args.connections == 0 {
        return Err(CliError::usage("--connections must be at least 1"));
    }
    if args.duration == 0 {
        return Err(CliError::usage("--duration must be at least 1 second"));
    }
    let url = reqwest::Url::parse(&args.url)
        .map_err(|e| CliError::usage(format!("invalid URL `{}`: {e}", args.url)))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .map_err(|e| CliError::internal(e.to_string()))?;
    // Fail fast if the target is down, rather than reporting a run of errors.
    client.get(url.clone()).send().await.map_err(|e| CliError {
        code: CliError::UNREACHABLE,
        message: format!("cannot reach {url}: {e}"),
    })?;

    if args.warmup > 0 {
        drive(&client, &url, args, Duration::from_secs(args.warmup)).await?;
    }
    let measured = Duration::from_secs(args.duration);
    let started = Instant::now();
    let tally = drive(&client, &url, args, measured).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let h = &tally.histogram;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Report {
        url: url.to_string(),
        mode: if args.rate == 0 {
            "closed-loop"
        } else {
            "open-loop"
        },
        target_rate: args.rate,
        connections: args.connections,
        duration_secs: elapsed,
        requests: h.len() + tally.errors,
        errors: tally.errors,
        throughput_rps: h.len() as f64 / elapsed,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    })
}

/// Runs the load for `length` and returns what it measured.
async fn drive(
    client: &reqwest::Client,
    url: &reqwest::Url,
    args: &HttpArgs,
    length: Duration,
) -> Result<Tally, CliError> {
    let histogram = Histogram::new_with_max(MAX_RECORDED_LATENCY_US, 3)
        .map_err(|e| CliError::internal(e.to_string()))?;
    let tally = Arc::new(Mutex::new(Tally {
        histogram,
        errors: 0,
    }));
    let start = Instant::now();
    let deadline = start + length;
    let mut workers = Vec::with_capacity(args.connections);
    for worker in 0..args.connections {
        let client = client.clone();
        let url = url.clone();
        let tally = tally.clone();
        let rate = args.rate;
        let connections = args.connections as u64;
        workers.push(tokio::spawn(async move {
            // Open loop: worker w owns the requests w, w+C, w+2C, … of the global schedule.
            let interval =
                (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / f64::from(rate)));
            let offset = interval.map(|i| i.mul_f64(worker as f64 / connections as f64));
            let mut n: u32 = 0;
            loop {
                let due = match (interval, offset) {
                    (Some(interval), Some(offset)) => start + offset + interval * n,
                    _ => Instant::now(),
                };
                if due >= deadline {
                    break;
                }
                // Latency is measured from when the request was due. If the worker is behind
                // (the previous response was slow), that includes the wait: the server's fault.
                // If it is early, it sleeps; tokio's timer may wake it up to a millisecond late,
                // which is the generator's fault, so the clock starts at the wake-up instead.
                let measured_from = if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    due
                };
                let ok = match client.get(url.clone()).send().await {
                    Ok(response) => {
                        let success = response.status().is_success();
                        success && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                let latency =
                    u64::try_from(measured_from.elapsed().as_micros()).unwrap_or(u64::MAX);
                let mut tally = tally.lock().await;
                if ok {
                    tally
                        .histogram
                        .saturating_record(latency.min(MAX_RECORDED_LATENCY_US));
                } else {
                    tally.errors += 1;
                }
                n = n.saturating_add(1);
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| CliError::internal(format!("load worker failed: {e}")))?;
    }
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| CliError::internal("load workers still running"))?
        .into_inner();
    Ok(tally)
}
