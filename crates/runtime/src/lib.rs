//! NCRE, the NexusCore Runtime Environment: runs untrusted agent components fast and safely.
//!
//! - One wasmtime [`Engine`] per node: component model, async, the pooling allocator with
//!   copy-on-write memory images, epoch interruption, optional fuel.
//! - Components are compiled once and cached on disk ([`cache`]) once linked ([`Runtime::prepare`]
//!   leaves caching to the caller); [`Runtime::load`] returns an
//!   [`AgentComponent`] holding an `InstancePre`, so every task starts with a cheap
//!   instantiation.
//! - [`Runtime::run`] runs one task in a fresh instance under [`Limits`]: memory, wall-clock
//!   deadline, optional fuel, output and log caps, and a cap on live instances. A breach ends
//!   that task with a specific [`TaskError`]; the node carries on.
//! - Host capabilities come from `nexus-host`; the caller decides what is granted
//!   ([`TaskEnv`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nexus_core::message::{Message, Part};
use nexus_host::bindings::AgentPre;
use nexus_host::bindings::exports::nexus::agent::handler as wit;
use nexus_host::convert::{artifact_from_wit, message_to_wit, part_from_wit, part_to_wit};
use nexus_host::emit::{EmitCapability, EventSink};
use nexus_host::http::OutboundPolicy;
use nexus_host::log::LogCapability;
use nexus_host::{Capabilities, CapabilityView};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline, WasmBacktrace,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub mod bench;
pub mod cache;
pub mod limits;
pub mod outcome;

pub use limits::{LimitOverrides, Limits};
pub use outcome::{Reply, TaskError, TaskOutcome, TaskResult, Usage};

/// The runtime could not be set up, or a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    #[error("invalid agent component: {0}")]
    InvalidComponent(String),
    #[error("component cache: {0}")]
    Cache(String),
}

/// Node-wide runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` keeps them in memory only.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Instances alive at once (pool slots).
    pub max_instances: u32,
    /// Per-task limits.
    pub limits: Limits,
    /// Whether agents' outbound HTTP may reach private, loopback, link-local and other
    /// non-public addresses (with a grant naming the host). Off by default: an agent could
    /// otherwise reach the node's own API and the services beside it.
    pub allow_private_addresses: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: limits::DEFAULT_MAX_INSTANCES,
            limits: Limits::default(),
            allow_private_addresses: false,
        }
    }
}

/// One node's runtime: the engine, the linker with every host capability, and the limits.
pub struct Runtime {
    engine: Engine,
    linker: Linker<TaskData>,
    cache: cache::ComponentCache,
    limits: Limits,
    allow_private_addresses: bool,
    slots: Arc<Semaphore>,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// A loaded agent: compiled, linked, ready to instantiate.
#[derive(Clone)]
pub struct AgentComponent {
    pre: AgentPre<TaskData>,
}

/// A component compiled and linked by [`Runtime::prepare`], its machine code not cached yet
/// unless it was loaded from the cache.
pub struct Prepared {
    component: AgentComponent,
    uncached: Option<cache::Uncached>,
}

impl Prepared {
    /// Writes newly compiled machine code to the cache (nothing if it came from there).
    pub fn keep(&self) -> Result<(), RuntimeError> {
        self.uncached.as_ref().map_or(Ok(()), cache::Uncached::keep)
    }

    /// The loaded agent.
    pub fn component(&self) -> &AgentComponent {
        &self.component
    }

    /// The loaded agent, owned.
    pub fn into_component(self) -> AgentComponent {
        self.component
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("cached", &self.uncached.is_none())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AgentComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentComponent").finish_non_exhaustive()
    }
}

/// What one task is allowed to use, decided by the caller from the deployment's grants.
#[derive(Debug)]
pub struct TaskEnv {
    pub state: nexus_host::state::StateCapability,
    pub config: nexus_host::config::ConfigCapability,
    pub llm: nexus_host::llm::LlmCapability,
    pub agents: nexus_host::agents::AgentsCapability,
    pub bus: nexus_host::bus::BusCapability,
    pub outbound: OutboundPolicy,
    /// Where streamed events and logs go.
    pub events: EventSink,
    /// The deployment's own limits (its manifest's `[limits]`), applied within the node's.
    pub limits: LimitOverrides,
}

impl TaskEnv {
    /// Nothing granted: only config-free, pure computation works.
    pub fn deny_all() -> Self {
        Self {
            state: nexus_host::state::StateCapability::denied(),
            config: nexus_host::config::ConfigCapability::default(),
            llm: nexus_host::llm::LlmCapability::denied(),
            agents: nexus_host::agents::AgentsCapability::new(false),
            bus: nexus_host::bus::BusCapability::new(false),
            outbound: OutboundPolicy::default(),
            events: EventSink::discard(),
            limits: LimitOverrides::default(),
        }
    }
}

/// The task to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInput {
    pub task_id: String,
    pub context_id: String,
    pub message: Vec<Part>,
    pub history: Vec<Message>,
    pub metadata: Vec<(String, String)>,
}

/// The data of one task's store.
pub struct TaskData {
    capabilities: Capabilities,
    outbound: OutboundPolicy,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    memory: limits::MemoryLimiter,
    deadline: Instant,
    events: EventSink,
}

impl std::fmt::Debug for TaskData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskData")
            .field("capabilities", &self.capabilities)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl WasiView for TaskData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for TaskData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl CapabilityView for TaskData {
    fn capabilities(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine_error = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let limits = config.limits.clone();
        let instances = config.max_instances.max(1);

        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            // A Rust component is a handful of core instances (the program, adapters, shims).
            .max_core_instances_per_component(16)
            .total_core_instances(instances.saturating_mul(8))
            .max_memories_per_component(2)
            .total_memories(instances.saturating_mul(2))
            .max_tables_per_component(8)
            .total_tables(instances.saturating_mul(8))
            .total_stacks(instances)
            .max_memory_size(limits.memory_bytes)
            .table_elements(limits::MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(limits::KEEP_RESIDENT_MEMORY_BYTES)
            .table_keep_resident(limits::KEEP_RESIDENT_TABLE_BYTES)
            // Where Linux has PAGEMAP_SCAN (6.7+), reset only the pages a task dirtied.
            .pagemap_scan(wasmtime::Enabled::Auto);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(limits.fuel.is_some())
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
            .memory_init_cow(true)
            // Reserve only what the limit allows, so thousands of slots fit the address space.
            .memory_reservation(limits.memory_bytes as u64)
            .memory_guard_size(64 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(engine_error)?;

        let mut linker = Linker::<TaskData>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
        nexus_host::add_to_linker(&mut linker).map_err(engine_error)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(limits::EPOCH_TICK);
                    engine.increment_epoch();
                }
            }
        };
        std::thread::Builder::new()
            .name("nexus-epoch".into())
            .spawn(ticker)
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        Ok(Self {
            engine,
            linker,
            cache: cache::ComponentCache::new(config.cache_dir),
            limits,
            allow_private_addresses: config.allow_private_addresses,
            slots: Arc::new(Semaphore::new(instances as usize)),
            ticker_stop,
        })
    }

    /// The limits applied to tasks.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether agents may reach non-public addresses ([`RuntimeConfig::allow_private_addresses`]).
    pub fn allows_private_addresses(&self) -> bool {
        self.allow_private_addresses
    }

    /// The limits of a task with `overrides`: the deployment's timeout replaces the node's
    /// default; memory can only go down (the pool's slots are sized to the node's limit); fuel
    /// applies only when the node meters fuel (metering is an engine-wide setting).
    pub fn limits_for(&self, overrides: &LimitOverrides) -> Limits {
        let node = &self.limits;
        Limits {
            memory_bytes: overrides
                .memory_bytes
                .map_or(node.memory_bytes, |bytes| bytes.min(node.memory_bytes)),
            deadline: overrides.deadline.unwrap_or(node.deadline),
            fuel: node.fuel.map(|fuel| overrides.fuel.unwrap_or(fuel)),
            ..node.clone()
        }
    }

    /// Compiles (or loads from the cache) and links a component, and caches what it compiled.
    /// Fails if the bytes are not a component, or if it imports something the platform does
    /// not provide; then nothing is cached.
    pub fn load(&self, bytes: &[u8]) -> Result<AgentComponent, RuntimeError> {
        let prepared = self.prepare(bytes)?;
        prepared.keep()?;
        Ok(prepared.into_component())
    }

    /// Like [`load`](Self::load), but leaves writing newly compiled machine code to the cache
    /// to [`Prepared::keep`]: for callers that may still refuse the component (an upload whose
    /// package is not stored must leave nothing behind).
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, RuntimeError> {
        let loaded = self.cache.load(&self.engine, bytes)?;
        let instance_pre = self
            .linker
            .instantiate_pre(loaded.component())
            .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
        let pre = AgentPre::new(instance_pre)
            .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
        Ok(Prepared {
            component: AgentComponent { pre },
            uncached: match loaded {
                cache::Loaded::Cached(_) => None,
                cache::Loaded::Fresh(uncached) => Some(uncached),
            },
        })
    }

    /// Runs one task in a fresh instance and reports how it ended and what it used.
    pub async fn run(&self, agent: &AgentComponent, input: TaskInput, env: TaskEnv) -> TaskOutcome {
        let started = Instant::now();
        match self.instantiate(agent, env).await {
            Ok(mut instance) => instance.call(input).await,
            Err(error) => TaskOutcome {
                result: TaskResult::Failed { error },
                usage: Usage {
                    wall_time: started.elapsed(),
                    ..Usage::default()
                },
            },
        }
    }

    /// Creates a live instance of `agent` with the capabilities in `env`. It holds one of the
    /// node's instance slots until dropped (waiting for a slot if none is free).
    pub async fn instantiate(
        &self,
        agent: &AgentComponent,
        env: TaskEnv,
    ) -> Result<LiveInstance, TaskError> {
        let limits = self.limits_for(&env.limits);
        // Bounded by the task's deadline: slots held by tasks that wait on tasks they called
        // could otherwise leave their callees waiting for ever.
        let slot =
            match tokio::time::timeout(limits.deadline, self.slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                Ok(Err(_closed)) => {
                    return Err(TaskError::Instantiation {
                        message: "the runtime is shutting down".into(),
                    });
                }
                Err(_elapsed) => {
                    return Err(TaskError::AtCapacity {
                        limit_ms: u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
                    });
                }
            };
        let stderr = MemoryOutputPipe::new(limits::STDERR_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let data = TaskData {
            capabilities: Capabilities {
                state: env.state,
                config: env.config,
                log: LogCapability::new(env.events.clone(), String::new(), limits.log_bytes),
                emit: EmitCapability::new(env.events.clone(), limits.output_bytes),
                llm: env.llm,
                agents: env.agents,
                bus: env.bus,
            },
            events: env.events,
            // The node's setting, whatever the caller built the policy with.
            outbound: env
                .outbound
                .allow_private_addresses(self.allow_private_addresses),
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            memory: limits::MemoryLimiter::new(limits.memory_bytes),
            deadline: Instant::now() + limits.deadline,
        };
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| &mut data.memory);
        let slice_ticks = limits.slice_ticks.max(1);
        store.set_epoch_deadline(slice_ticks + 1);
        store.epoch_deadline_callback(move |store| {
            if Instant::now() >= store.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(slice_ticks))
            }
        });
        let instantiation = |e: wasmtime::Error| TaskError::Instantiation {
            message: format!("{e:#}"),
        };
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(instantiation)?;
            store
                .fuel_async_yield_interval(Some(limits::FUEL_YIELD_INTERVAL))
                .map_err(instantiation)?;
        }
        let instantiated =
            tokio::time::timeout(limits.deadline, agent.pre.instantiate_async(&mut store)).await;
        let agent = match instantiated {
            Ok(Ok(agent)) => agent,
            Ok(Err(e)) => return Err(instantiation(e)),
            Err(_) => return Err(timeout_error(&limits)),
        };
        Ok(LiveInstance {
            store,
            agent,
            stderr,
            limits,
            _slot: slot,
        })
    }
}

/// An instantiated agent. Each [`call`](LiveInstance::call) runs one task under fresh
/// deadline, output and log budgets; memory persists between calls. A trap poisons the
/// instance: drop it and instantiate again.
pub struct LiveInstance {
    store: Store<TaskData>,
    agent: nexus_host::bindings::Agent,
    stderr: MemoryOutputPipe,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for LiveInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveInstance")
            .field("data", self.store.data())
            .finish_non_exhaustive()
    }
}

fn timeout_error(limits: &Limits) -> TaskError {
    TaskError::Timeout {
        limit_ms: u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
    }
}

impl LiveInstance {
    /// Runs one task in this instance.
    pub async fn call(&mut self, input: TaskInput) -> TaskOutcome {
        let started = Instant::now();
        let limits = self.limits.clone();
        {
            let data = self.store.data_mut();
            data.deadline = started + limits.deadline;
            let events = data.events.clone();
            data.capabilities.log =
                LogCapability::new(events.clone(), input.task_id.clone(), limits.log_bytes);
            data.capabilities.emit = EmitCapability::new(events, limits.output_bytes);
            data.capabilities.llm.usage = Default::default();
        }
        // Each task gets the whole CPU budget.
        if let Some(fuel) = limits.fuel
            && let Err(e) = self.store.set_fuel(fuel)
        {
            return TaskOutcome {
                result: TaskResult::Failed {
                    error: TaskError::Instantiation {
                        message: format!("{e:#}"),
                    },
                },
                usage: Usage::default(),
            };
        }
        let task = wit::Task {
            task_id: input.task_id,
            context_id: input.context_id,
            message: input.message.iter().map(part_to_wit).collect(),
            history: input.history.iter().map(message_to_wit).collect(),
            metadata: input.metadata,
        };
        // The epoch callback stops guest code at the deadline; this outer timeout also bounds
        // time spent in host calls (a slow model or website).
        let call = self
            .agent
            .nexus_agent_handler()
            .call_handle(&mut self.store, &task);
        let returned = tokio::time::timeout(limits.deadline + limits::EPOCH_TICK * 5, call).await;
        let result = match returned {
            Err(_elapsed) => TaskResult::Failed {
                error: timeout_error(&limits),
            },
            Ok(Err(trap)) => TaskResult::Failed {
                error: self.classify_trap(&trap),
            },
            Ok(Ok(returned)) => self.finish(returned),
        };
        let data = self.store.data();
        let usage = Usage {
            wall_time: started.elapsed(),
            fuel_consumed: limits
                .fuel
                .map(|budget| budget.saturating_sub(self.store.get_fuel().unwrap_or(0))),
            peak_memory_bytes: data.memory.peak(),
            output_bytes: data.capabilities.emit.meter.used(),
            log_bytes: data.capabilities.log.meter.used(),
            llm: data.capabilities.llm.usage,
        };
        TaskOutcome { result, usage }
    }

    /// Turns what the handler returned into a result, charging the reply to the output budget.
    fn finish(&mut self, returned: Result<wit::Response, wit::AgentError>) -> TaskResult {
        let capabilities = &mut self.store.data_mut().capabilities;
        let result = match returned {
            Ok(response) => {
                let reply = Reply {
                    message: response.message.into_iter().map(part_from_wit).collect(),
                    artifacts: response
                        .artifacts
                        .into_iter()
                        .map(artifact_from_wit)
                        .collect(),
                };
                let size = reply.message.iter().map(Part::size).sum::<usize>()
                    + reply.artifacts.iter().map(|a| a.size()).sum::<usize>();
                capabilities.emit.meter.charge(size);
                match response.outcome {
                    wit::Outcome::Completed => TaskResult::Completed { reply },
                    wit::Outcome::InputRequired => TaskResult::InputRequired { reply },
                }
            }
            Err(wit::AgentError::InvalidInput(reason)) => TaskResult::Rejected { reason },
            Err(wit::AgentError::Failed(message)) => TaskResult::Failed {
                error: TaskError::Agent { message },
            },
        };
        // A breached budget wins over whatever the agent returned after the breach.
        if capabilities.emit.meter.exceeded() {
            return TaskResult::Failed {
                error: TaskError::OutputLimit {
                    limit_bytes: capabilities.emit.meter.limit(),
                },
            };
        }
        if capabilities.log.meter.exceeded() {
            return TaskResult::Failed {
                error: TaskError::LogLimit {
                    limit_bytes: capabilities.log.meter.limit(),
                },
            };
        }
        result
    }

    fn classify_trap(&self, error: &wasmtime::Error) -> TaskError {
        let data = self.store.data();
        let trap = error.downcast_ref::<Trap>().copied();
        match trap {
            Some(Trap::Interrupt) => return timeout_error(&self.limits),
            Some(Trap::StackOverflow) => return TaskError::StackOverflow,
            Some(Trap::OutOfFuel) => {
                return TaskError::FuelExhausted {
                    limit: self.limits.fuel.unwrap_or(0),
                };
            }
            _ => {}
        }
        if data.memory.refused() {
            return TaskError::MemoryLimit {
                limit_bytes: self.limits.memory_bytes,
            };
        }
        let backtrace = error
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| {
                bt.frames()
                    .iter()
                    .map(|frame| match frame.func_name() {
                        // `{:#}` drops the hash suffix: `std::panicking::begin_panic`.
                        Some(name) => format!("{:#}", rustc_demangle::demangle(name)),
                        None => format!("<function {}>", frame.func_index()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let panic_output = String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned();
        let message = match (trap, panic_output.is_empty()) {
            (Some(trap), true) => trap.to_string(),
            (Some(trap), false) => format!("{trap}: {panic_output}"),
            (None, _) => format!("{error:#}"),
        };
        TaskError::Trap { message, backtrace }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
