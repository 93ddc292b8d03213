//! `nexus build`, `nexus deploy`, `nexus agents list|get|delete`, `nexus rollback`,
//! `nexus invoke`, `nexus tasks list|get|cancel`, `nexus logs`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nexus_core::message::text_of;
use nexus_core::{Agent, Package, Page, Task, TaskEvent};
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

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// An agent project directory (built and packed first) or a .ncpkg file.
    target: PathBuf,
    /// Agent name (default: the package's name).
    #[arg(long)]
    name: Option<String>,
    /// Tenant to deploy into.
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
    /// Configuration value, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = super::run::parse_pair)]
    config: Vec<(String, String)>,
    /// Grant a capability the manifest declares: state, llm, agents, bus (repeatable).
    #[arg(long = "grant", value_name = "CAPABILITY")]
    grants: Vec<String>,
    /// Grant an outbound host the manifest declares (repeatable).
    #[arg(long = "allow-host", value_name = "URL")]
    allow_hosts: Vec<String>,
}

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
    let deployment: Value = client
        .post(
            &["v1", "tenants", &args.tenant, "agents"],
            &json!({
                "package_digest": package.digest,
                "name": args.name,
                "config": args.config.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "grants": {"capabilities": args.grants, "hosts": args.allow_hosts},
            }),
        )
        .await?;
    if output.json {
        return output.print_json(&deployment);
    }
    println!(
        "deployed {}/{} revision {} ({})",
        args.tenant,
        deployment["agent"]["name"].as_str().unwrap_or("?"),
        deployment["revision"]["revision"],
        package.reference
    );
    Ok(())
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
    /// Delete an agent with its revisions, tasks and state.
    Delete {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
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
            let detail: Value = client
                .get(&["v1", "tenants", &tenant, "agents", &name], &[])
                .await?;
            if output.json {
                return output.print_json(&detail);
            }
            println!(
                "agent:    {}/{}",
                tenant,
                detail["agent"]["name"].as_str().unwrap_or("?")
            );
            println!("current:  revision {}", detail["agent"]["current_revision"]);
            for revision in detail["revisions"].as_array().into_iter().flatten() {
                println!(
                    "  rev {:<4} {}  {}",
                    revision["revision"],
                    revision["package"].as_str().unwrap_or("?"),
                    revision["created_at"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        AgentsCommand::Delete { name, tenant } => {
            client
                .delete(&["v1", "tenants", &tenant, "agents", &name])
                .await?;
            eprintln!("deleted {tenant}/{name}");
            Ok(())
        }
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
            &json!({ "revision": args.to }),
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
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
}

pub async fn invoke(args: InvokeArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let invocation: Value = client
        .post(
            &["v1", "tenants", &args.tenant, "agents", &args.name, "tasks"],
            &json!({ "text": args.text, "context_id": args.session }),
        )
        .await?;
    if output.json {
        return output.print_json(&invocation);
    }
    let result = &invocation["result"];
    match result["status"].as_str() {
        Some("completed") | Some("input_required") => {
            let parts: Vec<nexus_core::message::Part> =
                serde_json::from_value(result["reply"]["message"].clone()).unwrap_or_default();
            println!("{}", text_of(&parts));
            eprintln!(
                "task {} {}",
                invocation["task"]["id"].as_str().unwrap_or("?"),
                result["status"].as_str().unwrap_or("")
            );
            Ok(())
        }
        Some("rejected") => Err(CliError {
            code: CliError::TASK_FAILED,
            message: format!(
                "the agent rejected the input: {}",
                result["reason"].as_str().unwrap_or("")
            ),
        }),
        _ => Err(CliError {
            code: CliError::TASK_FAILED,
            message: format!(
                "task {} failed: {}",
                invocation["task"]["id"].as_str().unwrap_or("?"),
                invocation["task"]["status_message"]
                    .as_str()
                    .unwrap_or("unknown error")
            ),
        }),
    }
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, oldest first.
    List {
        /// Only this agent's tasks.
        #[arg(long)]
        agent: Option<String>,
        /// Only tasks in this state.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Show a task.
    Get {
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Cancel a task that has not ended.
    Cancel {
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

pub async fn tasks(cmd: TasksCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        TasksCommand::List {
            agent,
            state,
            limit,
            tenant,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(agent.map(|a| ("agent", a)));
            query.extend(state.map(|s| ("state", s)));
            let page: Page<Task> = client
                .get(&["v1", "tenants", &tenant, "tasks"], &query)
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            println!("{:<36} {:<15} {:<20} CREATED", "ID", "STATE", "SESSION");
            for task in &page.items {
                println!(
                    "{:<36} {:<15} {:<20} {}",
                    task.id,
                    task.state.as_str(),
                    task.context_id.chars().take(20).collect::<String>(),
                    task.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Ok(())
        }
        TasksCommand::Get { id, tenant } => {
            let task: Task = client
                .get(&["v1", "tenants", &tenant, "tasks", &id], &[])
                .await?;
            if output.json {
                return output.print_json(&task);
            }
            println!("id:       {}", task.id);
            println!("state:    {}", task.state);
            println!("session:  {}", task.context_id);
            if let Some(message) = &task.status_message {
                println!("message:  {message}");
            }
            println!("created:  {}", task.created_at.to_rfc3339());
            Ok(())
        }
        TasksCommand::Cancel { id, tenant } => {
            let task: Task = client
                .post(
                    &["v1", "tenants", &tenant, "tasks", &id, "cancel"],
                    &json!({}),
                )
                .await?;
            if output.json {
                return output.print_json(&task);
            }
            eprintln!("task {} {}", task.id, task.state);
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task.
    id: String,
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
}

/// Prints a task's event log: status changes, messages, streamed output, artifacts, logs.
pub async fn logs(args: LogsArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let events: Vec<TaskEvent> = client
        .get(
            &["v1", "tenants", &args.tenant, "tasks", &args.id, "events"],
            &[],
        )
        .await?;
    if output.json {
        return output.print_json(&events);
    }
    for event in &events {
        println!(
            "{:>4} {} {:<8} {}",
            event.seq,
            event.created_at.format("%H:%M:%S%.3f"),
            event.kind.as_str(),
            event.payload
        );
    }
    Ok(())
}
