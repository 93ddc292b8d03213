//! `nexus build`, `nexus deploy`, `nexus agents list|get|delete`, `nexus rollback`,
//! `nexus invoke`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nexus_api_model::{
    AgentDetail, DeployBody, Deployment, GrantsBody, Invocation, InvokeBody, RollbackBody,
    TaskResult,
};
use nexus_core::message::text_of;
use nexus_core::{Agent, Grants, Package, Page, Task, TaskEvent, TaskEventKind, TaskState};
use serde_json::{Value, json};

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The agent project (a cargo project with a nexus.toml manifest).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the package (default: target/<name>-<version>.ncpkg in the project).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

/// Builds the component and packs it with the manifest and README into a `.ncpkg`.
pub async fn build(args: BuildArgs, output: Output) -> Result<(), CliError> {
    let (path, package) = build_package(&args.dir, args.out.as_deref(), output).await?;
    if output.json {
        return output.print_json(&json!({
            "path": path,
            "digest": package.digest,
            "package": package.package_ref().to_string(),
            "size_bytes": package.bytes.len(),
        }));
    }
    eprintln!(
        "built {} ({} bytes)",
        package.package_ref(),
        package.bytes.len()
    );
    println!("{}", path.display());
    println!("{}", package.digest);
    Ok(())
}

async fn build_package(
    dir: &Path,
    out: Option<&Path>,
    output: Output,
) -> Result<(PathBuf, nexus_package::Package), CliError> {
    let manifest_path = dir.join(nexus_package::MANIFEST_FILE);
    let manifest_text = tokio::fs::read_to_string(&manifest_path)
        .await
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", manifest_path.display())))?;
    // Check the manifest before spending a build on it.
    nexus_package::parse_manifest(&manifest_path.display().to_string(), &manifest_text)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let (_, wasm) = super::run::build(dir, output).await?;
    let readme = tokio::fs::read_to_string(dir.join("README.md")).await.ok();
    let package = nexus_package::pack(&manifest_text, &wasm, readme.as_deref())
        .map_err(|e| CliError::usage(format!("{}: {e}", dir.display())))?;
    let reference = package.package_ref();
    let path = match out {
        Some(out) => out.to_owned(),
        None => dir.join("target").join(format!(
            "{}-{}.{}",
            reference.name,
            reference.version,
            nexus_package::PACKAGE_EXTENSION
        )),
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| CliError::internal(format!("cannot create {}: {e}", parent.display())))?;
    }
    tokio::fs::write(&path, &package.bytes)
        .await
        .map_err(|e| CliError::internal(format!("cannot write {}: {e}", path.display())))?;
    Ok((path, package))
}

#[derive(Args)]
pub struct DeployArgs {
    /// An agent project directory (built and packed first) or a .ncpkg file.
    target: PathBuf,
    /// Agent name (default: the package's name).
    #[arg(long)]
    name: Option<String>,
    /// Tenant to deploy into.
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
    /// Configuration value, KEY=VALUE (repeatable). A redeploy keeps the agent's other keys.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = super::run::parse_pair)]
    config: Vec<(String, String)>,
    /// Remove a configuration key the agent has (repeatable).
    #[arg(long = "unset-config", value_name = "KEY")]
    unset_config: Vec<String>,
    /// Secret for the agent, NAME=VALUE (repeatable), stored encrypted. A redeploy keeps the
    /// agent's earlier secrets; naming one again replaces its value.
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse_secret)]
    secrets: Vec<SecretArg>,
    /// Grant a capability the manifest declares: state, llm, agents, bus (repeatable). With
    /// --grant or --allow-host the agent gets exactly what they list; without either, what the
    /// manifest requests (new requests confirmed first).
    #[arg(long = "grant", value_name = "CAPABILITY")]
    grants: Vec<String>,
    /// Grant an outbound host the manifest declares (repeatable).
    #[arg(long = "allow-host", value_name = "URL")]
    allow_hosts: Vec<String>,
    /// Grant what the manifest newly requests without asking (needed off a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

impl std::fmt::Debug for DeployArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployArgs")
            .field("target", &self.target)
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("config", &self.config)
            .field("unset_config", &self.unset_config)
            .field("secrets", &self.secrets)
            .field("grants", &self.grants)
            .field("allow_hosts", &self.allow_hosts)
            .field("yes", &self.yes)
            .finish()
    }
}

/// One `--secret NAME=VALUE`. `Debug` shows the name only.
#[derive(Clone)]
pub struct SecretArg {
    name: String,
    value: String,
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretArg({:?})", self.name)
    }
}

/// Splits NAME=VALUE; an empty value is refused here rather than stored. Errors never repeat
/// the value.
fn parse_secret(text: &str) -> Result<SecretArg, String> {
    match text.split_once('=') {
        Some(("", _)) => Err("expected NAME=VALUE; the name is empty".into()),
        Some((name, "")) => Err(format!(
            "secret `{name}` is empty; give it a value (NAME=VALUE)"
        )),
        Some((name, value)) => Ok(SecretArg {
            name: name.to_owned(),
            value: value.to_owned(),
        }),
        None => Err("expected NAME=VALUE".into()),
    }
}

/// Uploads the package and deploys it. Grants: see [`confirm_grants`] and `docs/agents.md`.
pub async fn deploy(args: DeployArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let bytes = if args.target.is_dir() {
        build_package(&args.target, None, output).await?.1.bytes
    } else {
        tokio::fs::read(&args.target)
            .await
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.target.display())))?
    };
    let package: Package = client
        .put_bytes(&["v1", "tenants", &args.tenant, "packages"], bytes)
        .await?;
    let listed = !args.grants.is_empty() || !args.allow_hosts.is_empty();
    let mut body = DeployBody {
        package_digest: package.digest.clone(),
        name: args.name,
        config: args.config.into_iter().collect(),
        unset_config: args.unset_config,
        secrets: args
            .secrets
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect(),
        grants: listed.then_some(GrantsBody {
            capabilities: args.grants,
            hosts: args.allow_hosts,
        }),
        accept_requested_grants: args.yes,
    };
    let segments = ["v1", "tenants", &args.tenant, "agents"];
    let deployment: Deployment = match client.post(&segments, &body).await {
        Err(refused) if refused.message.ends_with(UNCONFIRMED) => {
            confirm_grants(&refused.message, &package)?;
            body.accept_requested_grants = true;
            client.post(&segments, &body).await?
        }
        result => result?,
    };
    let revision = &deployment.revision;
    eprintln!("granted: {}", describe_grants(&revision.grants));
    if output.json {
        return output.print_json(&deployment);
    }
    println!(
        "deployed {}/{} revision {} ({} {})",
        args.tenant,
        deployment.agent.name,
        revision.revision,
        revision.package,
        short_digest(&revision.package_digest)
    );
    Ok(())
}

/// How the server's problem message ends when a deployment needs its grants confirmed.
const UNCONFIRMED: &str = "(grants_unconfirmed)";

/// Asks whether to grant what the server says the package newly requests: a y/N question on
/// a terminal; elsewhere an error naming the flags that decide without asking.
fn confirm_grants(refusal: &str, package: &Package) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};

    let why = refusal
        .trim_end_matches(UNCONFIRMED)
        .trim_end()
        .trim_start_matches("grants not confirmed: ");
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::usage(format!(
            "{why}.\nNot on a terminal, so nothing was asked: pass --yes to grant what the \
             package requests, or list the grants to give{}",
            requested_flags(package)
                .map(|flags| format!(" ({flags})"))
                .unwrap_or_default()
        )));
    }
    eprint!("{why}.\nGrant them? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::usage(format!("cannot read from the terminal: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::usage(
            "not deployed: the requested grants were not confirmed",
        )),
    }
}

/// The `--grant`/`--allow-host` flags that grant everything the package's manifest requests.
fn requested_flags(package: &Package) -> Option<String> {
    let manifest: nexus_package::Manifest =
        serde_json::from_value(package.manifest.clone()).ok()?;
    let requested = nexus_control::requested_grants(&manifest);
    let flags: Vec<String> = requested
        .capabilities
        .iter()
        .map(|c| format!("--grant {c}"))
        .chain(requested.hosts.iter().map(|h| format!("--allow-host {h}")))
        .collect();
    (!flags.is_empty()).then(|| flags.join(" "))
}

/// Grants for people: capabilities, then hosts; `none` when there are none.
fn describe_grants(grants: &Grants) -> String {
    let all: Vec<&str> = grants
        .capabilities
        .iter()
        .chain(&grants.hosts)
        .map(String::as_str)
        .collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

/// The first 12 hex digits of a `sha256:` digest: enough to tell builds apart.
fn short_digest(digest: &str) -> &str {
    const SHOWN: usize = "sha256:".len() + 12;
    digest.get(..SHOWN).unwrap_or(digest)
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List agents.
    List {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Show an agent and its revisions.
    Get {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Delete an agent with its revisions, tasks, state and secrets, for good.
    Delete {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
        /// Confirms the deletion (without it, the command asks on a terminal and refuses
        /// elsewhere).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn agents(cmd: AgentsCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        AgentsCommand::List { tenant } => {
            let page: Page<Agent> = client
                .get(
                    &["v1", "tenants", &tenant, "agents"],
                    &[("limit", "500".into())],
                )
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            println!("{:<24} {:<9} UPDATED", "NAME", "REVISION");
            for agent in &page.items {
                println!(
                    "{:<24} {:<9} {}",
                    agent.name,
                    agent.current_revision,
                    agent.updated_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Ok(())
        }
        AgentsCommand::Get { name, tenant } => {
            let detail: AgentDetail = client
                .get(&["v1", "tenants", &tenant, "agents", &name], &[])
                .await?;
            if output.json {
                return output.print_json(&detail);
            }
            print_agent(&tenant, &detail);
            Ok(())
        }
        AgentsCommand::Delete { name, tenant, yes } => {
            super::confirm(
                &format!(
                    "this deletes agent `{tenant}/{name}` with its revisions, tasks, state and \
                     secrets, for good"
                ),
                yes,
            )?;
            client
                .delete(&["v1", "tenants", &tenant, "agents", &name])
                .await?;
            eprintln!("deleted {tenant}/{name}");
            Ok(())
        }
    }
}

/// An agent for people: its current revision's package, grants, config (values) and secrets
/// (names only: the API never returns their values), then every revision, the current one
/// marked `*`.
fn print_agent(tenant: &str, detail: &AgentDetail) {
    let current_number = detail.agent.current_revision;
    println!("agent:    {}/{}", tenant, detail.agent.name);
    let Some(current) = detail
        .revisions
        .iter()
        .find(|r| r.revision == current_number)
    else {
        println!("current:  revision {current_number}");
        return;
    };
    println!(
        "current:  revision {current_number} ({} {})",
        current.package,
        short_digest(&current.package_digest)
    );
    println!("grants:   {}", describe_grants(&current.grants));
    let config: Vec<String> = current
        .config
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    println!(
        "config:   {}",
        if config.is_empty() {
            "none".to_owned()
        } else {
            config.join(", ")
        }
    );
    if !current.secret_names.is_empty() {
        println!("secrets:  {}", current.secret_names.join(", "));
    }
    println!("revisions:");
    for revision in &detail.revisions {
        println!(
            "{} rev {:<4} {}  {}  {}",
            if revision.revision == current_number {
                '*'
            } else {
                ' '
            },
            revision.revision,
            revision.package,
            short_digest(&revision.package_digest),
            revision
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        );
    }
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The agent.
    name: String,
    /// Revision to make current (default: the one before the current revision).
    #[arg(long)]
    to: Option<u32>,
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
}

pub async fn rollback(args: RollbackArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let agent: Agent = client
        .post(
            &[
                "v1",
                "tenants",
                &args.tenant,
                "agents",
                &args.name,
                "rollback",
            ],
            &RollbackBody { revision: args.to },
        )
        .await?;
    if output.json {
        return output.print_json(&agent);
    }
    println!(
        "{}/{} is now at revision {}",
        args.tenant, agent.name, agent.current_revision
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The agent.
    name: String,
    /// The message text.
    text: String,
    /// Session (A2A contextId): state and conversation are per session.
    #[arg(long)]
    session: Option<String>,
    /// Answer a task that waits for input (`input_required`) instead of starting one: its
    /// id, or a prefix of it (the short id `tasks list` shows).
    #[arg(long)]
    task: Option<String>,
    /// Print the agent's output as it streams (with --json: one event per line).
    #[arg(long)]
    stream: bool,
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
}

pub async fn invoke(args: InvokeArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let segments = ["v1", "tenants", &args.tenant, "agents", &args.name, "tasks"];
    let body = InvokeBody {
        text: Some(args.text),
        parts: Vec::new(),
        context_id: args.session,
        task_id: args.task,
        stream: args.stream,
    };
    let answer = |task: &Task| answer_hint(&args.name, &args.tenant, task);
    if args.stream {
        let request = client.post_request(&segments, &body);
        return invoke_streaming(request, client, output, answer).await;
    }
    let invocation: Invocation = client.post(&segments, &body).await?;
    if output.json {
        // The JSON is the answer either way; the exit code still says how the task ended.
        output.print_json(&invocation)?;
        answer(&invocation.task);
        return ended(&invocation.task);
    }
    let (status, reply) = match &invocation.result {
        Some(TaskResult::Completed { reply }) => ("completed", reply),
        Some(TaskResult::InputRequired { reply }) => ("input_required", reply),
        _ => return ended(&invocation.task),
    };
    println!("{}", text_of(&reply.message));
    eprintln!("task {} {status}", invocation.task.id);
    answer(&invocation.task);
    Ok(())
}

/// For a task that waits for input, tells on stderr how to answer it: the exact command.
fn answer_hint(agent: &str, tenant: &str, task: &Task) {
    if task.state != TaskState::InputRequired {
        return;
    }
    let tenant = if tenant == "default" {
        String::new()
    } else {
        format!(" --tenant {tenant}")
    };
    eprintln!("the agent waits for your answer; send it with:");
    eprintln!(
        "  nexus invoke {agent} \"YOUR ANSWER\" --task {}{tenant}",
        task.id
    );
}

/// How `nexus invoke` ends for `task`, in every output mode: see [`CliError::for_task`].
fn ended(task: &Task) -> Result<(), CliError> {
    CliError::for_task(task.state, || {
        let why = task.status_message.as_deref().unwrap_or("no reason given");
        match task.state {
            TaskState::Rejected => format!("the agent rejected the input: {why}"),
            TaskState::Canceled => format!("task {} was canceled: {why}", task.id),
            _ => format!("task {} {}: {why}", task.id, task.state),
        }
    })
}

/// Prints a streamed invocation: partial text on stdout as it comes, progress on stderr, the
/// reply at the end (unless it was streamed already), and the outcome.
async fn invoke_streaming(
    request: reqwest::RequestBuilder,
    client: &Client,
    output: Output,
    answer: impl Fn(&Task),
) -> Result<(), CliError> {
    use std::io::Write;

    let mut events = std::pin::pin!(client.events(request).await?);
    let mut task: Option<Task> = None;
    let mut streamed_text = false;
    let mut reply = String::new();
    while let Some(event) = futures::StreamExt::next(&mut events).await {
        let event = event?;
        let data = event.data.unwrap_or_default();
        if event.event.as_deref() == Some("error") {
            return Err(super::tasks::stream_error(&data));
        }
        if output.json {
            println!("{data}");
        }
        if event.event.as_deref() == Some("task") {
            task = serde_json::from_str(&data).ok();
            continue;
        }
        let Ok(event) = serde_json::from_str::<TaskEvent>(&data) else {
            continue;
        };
        match (
            event.kind,
            event.payload.get("event").and_then(Value::as_str),
        ) {
            (TaskEventKind::Message, Some("partial_text")) if !output.json => {
                print!("{}", event.payload["text"].as_str().unwrap_or(""));
                let _ = std::io::stdout().flush();
                streamed_text = true;
            }
            (TaskEventKind::Message, Some("progress")) if !output.json => {
                eprintln!("… {}", event.payload["text"].as_str().unwrap_or(""));
            }
            (TaskEventKind::Message, None) => {
                if let Ok(message) =
                    serde_json::from_value::<nexus_core::message::Message>(event.payload)
                    && message.role == nexus_core::message::Role::Agent
                {
                    reply = text_of(&message.parts);
                }
            }
            (TaskEventKind::Status, _) => {
                if let (Some(task), Some(state)) = (
                    task.as_mut(),
                    event.payload["state"]
                        .as_str()
                        .and_then(|s| s.parse::<TaskState>().ok()),
                ) {
                    task.state = state;
                    task.status_message = event.payload["message"].as_str().map(str::to_owned);
                }
            }
            _ => {}
        }
    }
    let task = task.ok_or_else(|| CliError::internal("the stream ended before the task began"))?;
    if !output.json {
        if streamed_text {
            println!();
        } else if !reply.is_empty() {
            println!("{reply}");
        }
        eprintln!("task {} {}", task.id, task.state);
    }
    answer(&task);
    ended(&task)
}
