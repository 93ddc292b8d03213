//! Measurements behind `nexus bench runtime`: cold start, warm call, throughput, memory per
//! live instance, compile time, and a bare-wasmtime baseline measured the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::message::Part;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::{LiveInstance, Runtime, RuntimeConfig, RuntimeError, TaskEnv, TaskInput};

/// A trivial component: one exported function returning a constant. Instantiating and calling
/// it is the floor any wasmtime embedding pays.
const TRIVIAL_COMPONENT: &str = r#"
(component
  (core module $m (func (export "run") (result i32) i32.const 42))
  (core instance $i (instantiate $m))
  (func (export "run") (result u32) (canon lift (core func $i "run")))
)
"#;

fn task(text: &str) -> TaskInput {
    TaskInput {
        task_id: "bench".into(),
        context_id: "bench".into(),
        message: vec![Part::text(text)],
        history: Vec::new(),
        metadata: Vec::new(),
    }
}

/// Time to compile `bytes` with Cranelift, `runs` times, on a fresh runtime each time.
pub fn compile_times(bytes: &[u8], runs: usize) -> Result<Vec<Duration>, RuntimeError> {
    (0..runs)
        .map(|_| {
            let runtime = Runtime::new(RuntimeConfig {
                max_instances: 1,
                ..RuntimeConfig::default()
            })?;
            let start = Instant::now();
            runtime.load(bytes)?;
            Ok(start.elapsed())
        })
        .collect()
}

/// Cold starts: a fresh instance per task (instantiate, call the handler, tear down),
/// sequentially.
pub async fn cold_starts(
    runtime: &Runtime,
    bytes: &[u8],
    runs: usize,
) -> Result<Vec<Duration>, RuntimeError> {
    let agent = runtime.load(bytes)?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let outcome = runtime.run(&agent, task("hi"), TaskEnv::deny_all()).await;
        samples.push(start.elapsed());
        if !matches!(outcome.result, crate::TaskResult::Completed { .. }) {
            return Err(RuntimeError::InvalidComponent(format!(
                "benchmark task failed: {outcome:?}"
            )));
        }
    }
    Ok(samples)
}

/// Warm calls: the handler called again on one live instance.
pub async fn warm_calls(
    runtime: &Runtime,
    bytes: &[u8],
    runs: usize,
) -> Result<Vec<Duration>, RuntimeError> {
    let agent = runtime.load(bytes)?;
    let mut instance = runtime
        .instantiate(&agent, TaskEnv::deny_all())
        .await
        .map_err(|e| RuntimeError::InvalidComponent(e.to_string()))?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        instance.call(task("hi")).await;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Tasks completed per second with `concurrency` tasks in flight for `length`.
pub async fn throughput(
    runtime: Arc<Runtime>,
    bytes: &[u8],
    concurrency: usize,
    length: Duration,
) -> Result<f64, RuntimeError> {
    let agent = runtime.load(bytes)?;
    let deadline = Instant::now() + length;
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let runtime = runtime.clone();
            let agent = agent.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    runtime.run(&agent, task("hi"), TaskEnv::deny_all()).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap_or(0);
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Resident memory added per live, idle instance (instantiated and called once), with
/// `count` instances alive at once. Returns (bytes per instance, total bytes added).
pub async fn memory_per_instance(
    bytes: &[u8],
    count: u32,
    memory_limit: usize,
) -> Result<(u64, u64), RuntimeError> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        max_instances: count,
        limits: crate::Limits {
            memory_bytes: memory_limit,
            ..crate::Limits::default()
        },
        allow_private_addresses: false,
    })?;
    let agent = runtime.load(bytes)?;
    // Warm the allocator with one instance so one-time costs are not counted per instance.
    drop(runtime.instantiate(&agent, TaskEnv::deny_all()).await);
    let before = resident_bytes();
    let mut live: Vec<LiveInstance> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut instance = runtime
            .instantiate(&agent, TaskEnv::deny_all())
            .await
            .map_err(|e| RuntimeError::InvalidComponent(e.to_string()))?;
        instance.call(task("hi")).await;
        live.push(instance);
    }
    let after = resident_bytes();
    let added = after.saturating_sub(before);
    drop(live);
    Ok((added / u64::from(count.max(1)), added))
}

/// The process's resident set size, from `/proc/self/statm` (0 where unavailable).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| {
            statm
                .split_whitespace()
                .nth(1)
                .and_then(|pages| pages.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Bare wasmtime: instantiate-and-call of a trivial component through `InstancePre` on a
/// pooled engine, no WASI and no host capabilities.
pub async fn bare_wasmtime(runs: usize) -> Result<Vec<Duration>, RuntimeError> {
    let error = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(16)
        .total_core_instances(16)
        .total_memories(16);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(error)?;
    let component = Component::new(&engine, TRIVIAL_COMPONENT).map_err(error)?;
    let linker = Linker::<()>::new(&engine);
    let pre = linker.instantiate_pre(&component).map_err(error)?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut store = Store::new(&engine, ());
        let instance = pre.instantiate_async(&mut store).await.map_err(error)?;
        let run = instance
            .get_typed_func::<(), (u32,)>(&mut store, "run")
            .map_err(error)?;
        let (answer,) = run.call_async(&mut store, ()).await.map_err(error)?;
        samples.push(start.elapsed());
        if answer != 42 {
            return Err(RuntimeError::Engine(
                "the trivial component answered wrongly".into(),
            ));
        }
    }
    Ok(samples)
}
