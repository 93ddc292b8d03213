//! `nexus run`: build an agent if needed and run one task locally, printing the reply and the
//! events the agent streams. State persists in the data directory between runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use nexus_core::message::{Part, text_of};
use nexus_core::{Grants, Name, NewAgentRevision, NewTenant, TaskState};
use nexus_host::emit::{AgentEvent, EventSink};
use nexus_host::http::OutboundPolicy;
use nexus_host::llm::{EchoProvider, LlmCapability, LlmProvider, OpenAiProvider};
use nexus_runtime::{Runtime, RuntimeConfig, TaskEnv, TaskInput, TaskOutcome, TaskResult};
use nexus_store::{StateScope, Store, StoreError};
use nexus_store_sqlite::SqliteStore;
use serde::Serialize;

use super::Output;
/// Where `nexus build` and `nexus deploy` find the build as well.
pub(crate) use super::build::build;
use crate::exit::CliError;

/// Tenant that owns locally run agents in the run database.
const LOCAL_TENANT: &str = "local";
/// Instances a local run may need (one task at a time).
const LOCAL_INSTANCES: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmChoice {
    /// Deterministic and offline: answers `echo: <last user message>`.
    Echo,
    /// An OpenAI-compatible endpoint: OPENAI_BASE_URL (default https://api.openai.com/v1),
    /// OPENAI_API_KEY, NEXUS_LLM_MODEL (default gpt-4o-mini).
    Openai,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An agent project directory (built with cargo for wasm32-wasip2) or a .wasm component.
    target: PathBuf,
    /// The message to send.
    #[arg(long, short = 'i')]
    input: String,
    /// Session (A2A contextId); state is kept per session.
    #[arg(long, default_value = "local")]
    session: String,
    /// Configuration value for the agent, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_pair)]
    config: Vec<(String, String)>,
    /// Secret for the agent, NAME=VALUE (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse_pair)]
    secrets: Vec<(String, String)>,
    /// Allow outbound HTTP to scheme://host[:port] (repeatable; `*` wildcards as in
    /// `https://*.example.com`). Private addresses need the exact host.
    #[arg(long = "allow-host", value_name = "URL")]
    allow_hosts: Vec<String>,
    /// Model provider for the `llm` capability.
    #[arg(long, value_enum, default_value_t = LlmChoice::Echo)]
    llm: LlmChoice,
    /// Where local state and compiled components are kept.
    #[arg(long, env = "NEXUS_DATA_DIR", default_value = ".nexus")]
    data_dir: PathBuf,
    /// CPU budget in fuel units (about one per wasm instruction); off by default.
    #[arg(long)]
    fuel: Option<u64>,
}

pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

/// The `--json` result.
#[derive(Debug, Serialize)]
struct RunReport<'a> {
    agent: &'a str,
    session: &'a str,
    outcome: &'a TaskOutcome,
    events: &'a [AgentEvent],
}

pub async fn run(args: RunArgs, output: Output) -> Result<(), CliError> {
    let outbound =
        OutboundPolicy::new(&args.allow_hosts).map_err(|e| CliError::usage(e.to_string()))?;
    let (name, bytes) = component(&args.target, output).await?;
    let agent_name = Name::parse(&sanitize(&name))
        .map_err(|e| CliError::usage(format!("cannot name the agent `{name}`: {e}")))?;

    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        CliError::internal(format!("cannot create {}: {e}", args.data_dir.display()))
    })?;
    let limits = nexus_runtime::Limits {
        fuel: args.fuel,
        ..nexus_runtime::Limits::default()
    };
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(args.data_dir.join("cache")),
        max_instances: LOCAL_INSTANCES,
        limits,
        // A local run on the developer's own machine: whoever passes `--allow-host` with a
        // private host is the operator, so the exact grant is enough, as it always was.
        allow_private_addresses: true,
    })
    .map_err(|e| CliError::internal(e.to_string()))?;
    let agent = runtime
        .load(&bytes)
        .map_err(|e| CliError::usage(format!("{}: {e}", args.target.display())))?;

    let store = open_local_store(&args.data_dir).await?;
    let scope = local_scope(store.as_ref(), &agent_name, &args.session).await?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let env = TaskEnv {
        state: nexus_host::state::StateCapability::granted(store.clone(), scope),
        config: nexus_host::config::ConfigCapability::new(
            args.config.into_iter().collect::<BTreeMap<_, _>>(),
            args.secrets.into_iter().collect::<BTreeMap<_, _>>(),
        ),
        llm: LlmCapability::granted(provider(args.llm)?),
        agents: nexus_host::agents::AgentsCapability::new(true),
        bus: nexus_host::bus::BusCapability::new(true),
        outbound,
        events: EventSink::new(sender),
        // Local runs use the default limits (and `--fuel`), not the manifest's.
        limits: nexus_runtime::LimitOverrides::default(),
    };
    let input = TaskInput {
        task_id: nexus_core::TaskId::new().to_string(),
        context_id: args.session.clone(),
        message: vec![Part::text(args.input)],
        history: Vec::new(),
        metadata: Vec::new(),
    };

    let task = runtime.run(&agent, input, env);
    tokio::pin!(task);
    let mut events = Vec::new();
    let mut streamed_text = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut task => break outcome,
            Some(event) = receiver.recv() => {
                if !output.json {
                    streamed_text |= print_event(&event);
                }
                events.push(event);
            }
        }
    };
    // Events sent just before the task returned.
    while let Ok(event) = receiver.try_recv() {
        if !output.json {
            streamed_text |= print_event(&event);
        }
        events.push(event);
    }
    store.close().await;

    if output.json {
        output.print_json(&RunReport {
            agent: agent_name.as_str(),
            session: &args.session,
            outcome: &outcome,
            events: &events,
        })?;
    } else {
        print_outcome(&outcome, streamed_text);
    }
    let state = match &outcome.result {
        TaskResult::Completed { .. } => TaskState::Completed,
        TaskResult::InputRequired { .. } => TaskState::InputRequired,
        TaskResult::Rejected { .. } => TaskState::Rejected,
        TaskResult::Failed { .. } => TaskState::Failed,
    };
    CliError::for_task(state, || match &outcome.result {
        TaskResult::Rejected { reason } => format!("the agent rejected the input: {reason}"),
        TaskResult::Failed { error } => format!("task failed ({}): {error}", error.code()),
        TaskResult::Completed { .. } | TaskResult::InputRequired { .. } => {
            format!("task {state}")
        }
    })
}

/// Reads a component file, or builds a project directory and reads what it produced.
async fn component(target: &Path, output: Output) -> Result<(String, Vec<u8>), CliError> {
    if target.is_dir() {
        return build(target, output).await;
    }
    let bytes = tokio::fs::read(target)
        .await
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", target.display())))?;
    let name = target
        .file_stem()
        .map_or_else(|| "agent".to_owned(), |s| s.to_string_lossy().into_owned());
    Ok((name, bytes))
}

/// Agent names are URL-safe slugs; crate names may use `_`.
fn sanitize(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn provider(choice: LlmChoice) -> Result<Arc<dyn LlmProvider>, CliError> {
    Ok(match choice {
        LlmChoice::Echo => Arc::new(EchoProvider),
        LlmChoice::Openai => {
            let base = std::env::var("OPENAI_BASE_URL")
                .unwrap_or_else(|_| "https://api.openai.com/v1".into());
            let model = std::env::var("NEXUS_LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
            let key = std::env::var("OPENAI_API_KEY").ok();
            Arc::new(
                OpenAiProvider::new(&base, key, &model)
                    .map_err(|e| CliError::usage(e.to_string()))?,
            )
        }
    })
}

async fn open_local_store(data_dir: &Path) -> Result<Arc<dyn Store>, CliError> {
    let url = format!("sqlite://{}", data_dir.join("run.db").display());
    let store = SqliteStore::open(&url, 2)
        .await
        .map_err(|e| CliError::internal(format!("opening {url}: {e}")))?;
    Ok(Arc::new(store))
}

/// The state scope of `agent` in the local run database, creating the records on first use.
async fn local_scope(
    store: &dyn Store,
    agent: &Name,
    session: &str,
) -> Result<StateScope, CliError> {
    let internal = |e: StoreError| CliError::internal(format!("local run database: {e}"));
    let tenant = store
        .ensure_tenant(NewTenant {
            name: Name::parse(LOCAL_TENANT).map_err(|e| CliError::internal(e.to_string()))?,
            display_name: "Local runs".into(),
        })
        .await
        .map_err(internal)?;
    let agent_id = match store.get_agent(tenant.id, agent).await {
        Ok(existing) => existing.id,
        Err(StoreError::NotFound { .. }) => {
            store
                .deploy_revision(
                    tenant.id,
                    NewAgentRevision {
                        name: agent.clone(),
                        package: format!("local/{agent}@0.0.0").parse().map_err(
                            |e: nexus_core::PackageRefError| CliError::internal(e.to_string()),
                        )?,
                        package_digest: "local".into(),
                        config: BTreeMap::new(),
                        secret_names: Vec::new(),
                        grants: Grants::default(),
                        deployed_by: String::new(),
                    },
                )
                .await
                .map_err(internal)?
                .0
                .id
        }
        Err(e) => return Err(internal(e)),
    };
    Ok(StateScope {
        tenant: tenant.id,
        agent: agent_id,
        session: session.to_owned(),
    })
}

/// Prints a streamed event; returns whether it was reply text (printed on stdout).
fn print_event(event: &AgentEvent) -> bool {
    match event {
        AgentEvent::PartialText { text } => {
            print!("{text}");
            let _ = std::io::stdout().flush();
            true
        }
        AgentEvent::Progress { text } => {
            eprintln!("… {text}");
            false
        }
        AgentEvent::Artifact {
            artifact,
            last_chunk,
        } => {
            let size: usize = artifact.parts.iter().map(Part::size).sum();
            let end = if *last_chunk { " (last chunk)" } else { "" };
            eprintln!("artifact {} +{size} bytes{end}", artifact.id);
            false
        }
        AgentEvent::Log { level, message, .. } => {
            eprintln!("[{level}] {message}");
            false
        }
    }
}

fn print_outcome(outcome: &TaskOutcome, streamed_text: bool) {
    match &outcome.result {
        TaskResult::Completed { reply } | TaskResult::InputRequired { reply } => {
            if streamed_text {
                // The reply was already streamed; end the line.
                println!();
            } else {
                println!("{}", text_of(&reply.message));
            }
            for artifact in &reply.artifacts {
                eprintln!("artifact {}: {}", artifact.id, text_of(&artifact.parts));
            }
            if matches!(outcome.result, TaskResult::InputRequired { .. }) {
                eprintln!("the agent needs more input: run again with the same --session");
            }
        }
        TaskResult::Failed {
            error: nexus_runtime::TaskError::Trap { backtrace, .. },
        } if !backtrace.is_empty() => {
            eprintln!("guest backtrace:");
            for frame in backtrace {
                eprintln!("  {frame}");
            }
        }
        TaskResult::Rejected { .. } | TaskResult::Failed { .. } => {}
    }
    let usage = &outcome.usage;
    eprintln!(
        "({:.1} ms, peak memory {} KiB, output {} B{})",
        usage.wall_time.as_secs_f64() * 1000.0,
        usage.peak_memory_bytes / 1024,
        usage.output_bytes,
        if usage.llm.calls > 0 {
            format!(
                ", llm {} calls {}+{} tokens",
                usage.llm.calls, usage.llm.prompt_tokens, usage.llm.completion_tokens
            )
        } else {
            String::new()
        }
    );
}
