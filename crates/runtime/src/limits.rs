//! Resource limits of agent tasks: named defaults with their reasons, and the memory limiter.

use std::time::Duration;

/// Linear memory per instance. Enough for an agent holding a few large documents; small
/// enough that 10,000 live instances fit in a node's address-space budget.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 128 * 1024 * 1024;
/// Wall-clock deadline of one task. Agents wait on models and the network; CPU-bound work past
/// this is a runaway loop.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Bytes of reply, streamed text and artifacts per task: bounds what the platform stores and
/// streams for one task.
pub const DEFAULT_OUTPUT_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of log text per task.
pub const DEFAULT_LOG_LIMIT_BYTES: usize = 1024 * 1024;
/// Instances alive at once on this node (pool slots). Tasks beyond it wait for a slot.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
/// Table elements per table; Rust and wit-bindgen components use a few hundred.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// How often the epoch advances. Each tick a running guest yields to the scheduler (so a
/// CPU-bound guest never starves others) and its deadline is checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// Epoch ticks a guest runs between yields to the scheduler: one, so a CPU-bound guest holds
/// a worker thread for at most a tick (two for a task's first slice, see [`Limits::slice_ticks`]).
pub const DEFAULT_SLICE_TICKS: u64 = 1;
/// Guest stderr kept per task (Rust panics print their message there).
pub const STDERR_CAPTURE_BYTES: usize = 16 * 1024;
/// Linear memory a freed instance slot keeps mapped, reset in place, instead of handing it back
/// to the kernel. Unmapping on every task cost `madvise` calls and TLB-shootdown interrupts
/// between the cores (13% of server CPU under load); 1 MiB covers a small agent's working set,
/// and only unused warm slots hold it. Where Linux has `PAGEMAP_SCAN` (6.7+) only the pages a
/// task dirtied are reset, instead of `memset` over the whole 1 MiB (+28% tasks/s under load;
/// a larger region measured no better).
pub const KEEP_RESIDENT_MEMORY_BYTES: usize = 1024 * 1024;
/// Table bytes a freed slot keeps resident, for the same reason.
pub const KEEP_RESIDENT_TABLE_BYTES: usize = 64 * 1024;
/// Fuel consumed between yields when fuel metering is on.
pub const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// One deployment's own limits, from its manifest; `None` keeps the node's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub memory_bytes: Option<usize>,
    pub deadline: Option<Duration>,
    pub fuel: Option<u64>,
}

/// Limits applied to every task.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: usize,
    pub deadline: Duration,
    /// CPU budget in fuel units (about one per wasm instruction); `None` disables metering.
    pub fuel: Option<u64>,
    pub output_bytes: usize,
    pub log_bytes: usize,
    /// Epoch ticks a running guest keeps its thread before it yields. A task's first slice
    /// gets one tick more, so it lasts at least `slice_ticks` whole ticks however close to a
    /// tick it started: a short task is not cut by a tick that happens to fall just after its
    /// start (the control plane writes a task that ends within its first slice once).
    pub slice_ticks: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            deadline: DEFAULT_DEADLINE,
            fuel: None,
            output_bytes: DEFAULT_OUTPUT_LIMIT_BYTES,
            log_bytes: DEFAULT_LOG_LIMIT_BYTES,
            slice_ticks: DEFAULT_SLICE_TICKS,
        }
    }
}

/// Enforces the memory limit and records the peak, so a failed allocation can be reported as
/// `memory_limit` rather than as the trap it turns into inside the guest.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    peak: usize,
    refused: bool,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            peak: 0,
            refused: false,
        }
    }

    /// Largest linear memory size reached, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Whether a growth past the limit was refused.
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
