//! `nexus bench`: a loopback load generator.
//!
//! `nexus bench http URL --rate R` sends requests on a fixed schedule (open loop) and measures
//! each latency from the moment the request was *due* whenever the generator is behind
//! schedule, so a stalled server cannot hide its stall by slowing the generator (coordinated
//! omission). With
//! `--rate 0` it runs closed loop: `--connections` workers send back to back, to find the
//! ceiling throughput.

use std::time::Duration;

use clap::{Args, Subcommand};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use super::Output;
use crate::exit::CliError;

mod auth;
mod load;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load an HTTP endpoint (GET, or POST with --post JSON) and report latency percentiles.
    Http(HttpArgs),
    /// Measure the gateway's per-request checks in process: API key, Cedar decision, both.
    Auth {
        /// Measured rounds (after a tenth as many for warm-up).
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Measure the agent runtime: compile time, cold start, warm call, throughput, memory per
    /// live instance, beside a bare wasmtime instantiate-and-call.
    Runtime(RuntimeArgs),
}

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Agent components (.wasm); compile time is measured for each, the rest with the first.
    #[arg(long = "component", required = true)]
    components: Vec<std::path::PathBuf>,
    /// Samples for cold start, warm call and the bare baseline.
    #[arg(long, default_value_t = 2000)]
    runs: usize,
    /// Compilations per component.
    #[arg(long, default_value_t = 3)]
    compile_runs: usize,
    /// Tasks in flight for the throughput run.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Live instance counts for the memory measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    instances: Vec<u32>,
    /// Memory limit per instance for the memory measurement, MiB (sizes the address-space reservation).
    #[arg(long, default_value_t = 64)]
    memory_limit_mib: usize,
}

/// Percentiles of a latency sample, in microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Self {
            samples: samples.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// The result of `nexus bench runtime`.
#[derive(Debug, Serialize)]
pub struct RuntimeReport {
    pub component: String,
    pub compile_ms: Vec<(String, f64)>,
    pub cold_start: Latency,
    pub warm_call: Latency,
    pub bare_wasmtime: Latency,
    pub cold_start_vs_bare_p50: f64,
    pub throughput_tasks_per_s: f64,
    pub concurrency: usize,
    /// (live instances, resident bytes per instance, total resident bytes added)
    pub memory: Vec<(u32, u64, u64)>,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// The URL, e.g. http://127.0.0.1:7700/v1/tenants/default.
    url: String,
    /// Send this JSON body with POST instead of a GET.
    #[arg(long, value_name = "JSON")]
    post: Option<String>,
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
    /// Threads sending the load, each with its share of the connections. One is enough for
    /// tens of thousands of requests per second, and leaves the most CPU to a server on the
    /// same machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Send this header with every request (`Name: value`; repeatable), e.g.
    /// `A2A-Version: 1.0`.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
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
        BenchCommand::Auth { iterations } => {
            let report = auth::auth(iterations.max(10)).await?;
            if output.json {
                return output.print_json(&report);
            }
            for (label, l) in [
                ("API key check", &report.api_key_check),
                ("Cedar decision, remembered", &report.cedar_decision),
                ("Cedar decision, evaluated", &report.cedar_evaluation),
                ("credential check (both)", &report.credential_check),
            ] {
                println!(
                    "{label:<28} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs  (n={})",
                    l.p50_us, l.p90_us, l.p99_us, l.max_us, l.samples
                );
            }
            Ok(())
        }
        BenchCommand::Runtime(args) => {
            let report = runtime(&args).await?;
            if output.json {
                return output.print_json(&report);
            }
            for (name, ms) in &report.compile_ms {
                println!("compile (Cranelift, median) {name}: {ms:.1} ms");
            }
            let line = |label: &str, l: &Latency| {
                println!(
                    "{label:<28} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs  (n={})",
                    l.p50_us, l.p90_us, l.p99_us, l.max_us, l.samples
                );
            };
            line("cold start (run a task)", &report.cold_start);
            line("warm call (live instance)", &report.warm_call);
            line("bare wasmtime inst.+call", &report.bare_wasmtime);
            println!(
                "cold start / bare wasmtime (p50): {:.1}x",
                report.cold_start_vs_bare_p50
            );
            println!(
                "throughput: {:.0} tasks/s with {} in flight",
                report.throughput_tasks_per_s, report.concurrency
            );
            for (count, per, total) in &report.memory {
                println!(
                    "memory: {count} live idle instances: {:.1} KiB each, {:.1} MiB total",
                    *per as f64 / 1024.0,
                    *total as f64 / (1024.0 * 1024.0)
                );
            }
            Ok(())
        }
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

async fn runtime(args: &RuntimeArgs) -> Result<RuntimeReport, CliError> {
    use nexus_runtime::bench;
    let internal = |e: nexus_runtime::RuntimeError| CliError::internal(e.to_string());
    let mut components = Vec::new();
    for path in &args.components {
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        components.push((
            path.file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            bytes,
        ));
    }
    let mut compile_ms = Vec::new();
    for (name, bytes) in &components {
        let mut times = bench::compile_times(bytes, args.compile_runs.max(1)).map_err(internal)?;
        times.sort_unstable();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        compile_ms.push((name.clone(), median.as_secs_f64() * 1000.0));
    }
    let (name, bytes) = components
        .first()
        .ok_or_else(|| CliError::usage("give at least one --component"))?;
    let runtime = std::sync::Arc::new(
        nexus_runtime::Runtime::new(nexus_runtime::RuntimeConfig {
            max_instances: u32::try_from(args.concurrency.max(1)).unwrap_or(u32::MAX),
            ..nexus_runtime::RuntimeConfig::default()
        })
        .map_err(internal)?,
    );
    // Warm up code paths and caches before measuring.
    bench::cold_starts(&runtime, bytes, 200)
        .await
        .map_err(internal)?;
    bench::bare_wasmtime(200).await.map_err(internal)?;
    let cold_start = Latency::of(
        bench::cold_starts(&runtime, bytes, args.runs)
            .await
            .map_err(internal)?,
    );
    let warm_call = Latency::of(
        bench::warm_calls(&runtime, bytes, args.runs)
            .await
            .map_err(internal)?,
    );
    let bare = Latency::of(bench::bare_wasmtime(args.runs).await.map_err(internal)?);
    let throughput = bench::throughput(
        runtime.clone(),
        bytes,
        args.concurrency.max(1),
        Duration::from_secs(args.duration.max(1)),
    )
    .await
    .map_err(internal)?;
    drop(runtime);
    let mut memory = Vec::new();
    for &count in &args.instances {
        let (per, total) =
            bench::memory_per_instance(bytes, count, args.memory_limit_mib * 1024 * 1024)
                .await
                .map_err(internal)?;
        memory.push((count, per, total));
    }
    Ok(RuntimeReport {
        component: name.clone(),
        compile_ms,
        cold_start_vs_bare_p50: if bare.p50_us > 0.0 {
            cold_start.p50_us / bare.p50_us
        } else {
            0.0
        },
        cold_start,
        warm_call,
        bare_wasmtime: bare,
        throughput_tasks_per_s: throughput,
        concurrency: args.concurrency,
        memory,
    })
}

async fn http(args: &HttpArgs) -> Result<Report, CliError> {
    if args.connections == 0 {
        return Err(CliError::usage("--connections must be at least 1"));
    }
    if args.threads == 0 {
        return Err(CliError::usage("--threads must be at least 1"));
    }
    if args.duration == 0 {
        return Err(CliError::usage("--duration must be at least 1 second"));
    }
    let mut headers = HeaderMap::new();
    for header in &args.headers {
        let parsed = header.split_once(':').and_then(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(value.trim()).ok()?,
            ))
        });
        let (name, value) = parsed.ok_or_else(|| {
            CliError::usage(format!("--header must be `Name: value`, not `{header}`"))
        })?;
        headers.insert(name, value);
    }
    if let Some(body) = &args.post {
        serde_json::from_str::<serde_json::Value>(body)
            .map_err(|e| CliError::usage(format!("--post must be JSON: {e}")))?;
    }
    let target =
        load::Target::new(&args.url, args.post.clone(), headers).map_err(CliError::usage)?;
    // Fail fast if the target is down, rather than reporting a run of errors.
    load::probe(&target).await.map_err(|e| CliError {
        code: CliError::UNREACHABLE,
        message: format!("cannot reach {}: {e}", args.url),
    })?;

    let plan = load::Plan {
        connections: args.connections,
        threads: args.threads,
        rate: args.rate,
        warmup: Duration::from_secs(args.warmup),
        measured: Duration::from_secs(args.duration),
    };
    let tally = tokio::task::spawn_blocking(move || load::run(&target, plan))
        .await
        .map_err(|e| CliError::internal(format!("the load generator failed: {e}")))?
        .map_err(CliError::internal)?;
    let elapsed = tally.elapsed.as_secs_f64().max(f64::EPSILON);
    let h = &tally.histogram;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Report {
        url: args.url.clone(),
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
