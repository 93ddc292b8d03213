//! `nexus`: the NexusCore server and command-line client in one binary.
//!
//! stdout carries data (tables, or JSON with `--json`); stderr carries messages for people.
//! Exit codes are listed in [`exit`] and in `docs/cli.md`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod commands;
mod credentials;
mod exit;

use exit::CliError;

/// Default server for client verbs.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// NexusCore: build, deploy and run AI agents.
#[derive(Debug, Parser)]
#[command(name = "nexus", version, about, propagate_version = true)]
struct Cli {
    /// Server URL for client commands.
    #[arg(long, global = true, env = "NEXUS_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// API key for client commands (`Authorization: Bearer`); without one, the session of
    /// `nexus login` for this server is used.
    #[arg(long, global = true, env = "NEXUS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM file of the CA (or the self-signed certificate) an https:// server's certificate
    /// must chain to, instead of the public roots.
    #[arg(long, global = true, env = "NEXUS_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate (chain) to present to an https:// server that asks for one
    /// (mutual TLS); one naming a service account by its SPIFFE id authenticates as it.
    #[arg(long, global = true, env = "NEXUS_CLIENT_CERT", value_name = "FILE")]
    client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "NEXUS_CLIENT_KEY", value_name = "FILE")]
    client_key: Option<std::path::PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Print each request's method, URL, status and time on stderr, and the server's problem
    /// body on errors (never the API key or secret values).
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the NexusCore server.
    Server(commands::server::ServerArgs),
    /// Build an agent if needed and run one task locally.
    Run(commands::run::RunArgs),
    /// Build an agent project into a .ncpkg package.
    Build(commands::agents::BuildArgs),
    /// Upload a package and deploy it as an agent (a new revision if it exists).
    Deploy(commands::agents::DeployArgs),
    /// List, show and delete agents.
    #[command(subcommand)]
    Agents(commands::agents::AgentsCommand),
    /// List and delete an agent's secrets (names only; values are never shown).
    #[command(subcommand)]
    Secrets(commands::secrets::SecretsCommand),
    /// Inspect and clear an agent's state.
    #[command(subcommand)]
    State(commands::state::StateCommand),
    /// Make an earlier revision of an agent current.
    Rollback(commands::agents::RollbackArgs),
    /// Send a message to a deployed agent and print its reply.
    Invoke(commands::agents::InvokeArgs),
    /// List, show and cancel tasks.
    #[command(subcommand)]
    Tasks(commands::tasks::TasksCommand),
    /// Print a task's event log.
    Logs(commands::tasks::LogsArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(commands::tenants::TenantsCommand),
    /// Log in with your user name and password; the session is kept for this server.
    Login(commands::users::LoginArgs),
    /// End this server's login session.
    Logout,
    /// Show who your credentials stand for.
    Whoami,
    /// Change your password, or (platform admins) set someone's with --user.
    Passwd(commands::users::PasswdArgs),
    /// Add, list and remove a tenant's members (user accounts with a role).
    #[command(subcommand)]
    Members(commands::users::MembersCommand),
    /// Create and delete teams, and add and remove their members.
    #[command(subcommand)]
    Teams(commands::teams::TeamsCommand),
    /// Create, list and delete service accounts (machine identities with keys).
    #[command(subcommand)]
    ServiceAccounts(commands::service_accounts::ServiceAccountsCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Manage a tenant's Cedar policies and explain decisions.
    #[command(subcommand)]
    Policies(commands::policies::PoliciesCommand),
    /// List and export a tenant's audit log.
    #[command(subcommand)]
    Audit(commands::keys::AuditCommand),
    /// Measure performance (load generator).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

/// A client for `server` with the API key given, or else the stored login session for that
/// server, if any.
fn connect(
    server: &str,
    api_key: Option<&str>,
    tls: &client::TlsFiles,
    verbose: bool,
) -> Result<client::Client, CliError> {
    let client = match api_key {
        Some(key) => client::Client::new(server, Some(key), tls)?,
        None => {
            let session = credentials::session_for(server)?;
            client::Client::new(server, session.as_ref().map(|s| s.token.as_str()), tls)?
        }
    };
    Ok(client.verbose(verbose))
}

/// mimalloc rather than the system allocator: the server allocates per request from two
/// worker threads, where glibc's malloc spent 17% of server CPU (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return CliError::internal(format!("cannot start the async runtime: {e}")).report();
        }
    };
    let output = commands::Output { json: cli.json };
    let result = runtime.block_on(async move {
        let tls = client::TlsFiles {
            ca_cert: cli.ca_cert,
            client_cert: cli.client_cert,
            client_key: cli.client_key,
        };
        let client = || connect(&cli.server, cli.api_key.as_deref(), &tls, cli.verbose);
        match cli.command {
            Command::Server(args) => commands::server::run(args).await,
            Command::Login(args) => {
                commands::users::login(args, &cli.server, &tls, output, cli.verbose).await
            }
            Command::Logout => commands::users::logout(&cli.server, &tls, cli.verbose).await,
            Command::Whoami => commands::users::whoami(&client()?, output).await,
            Command::Passwd(args) => commands::users::passwd(args, &client()?, &cli.server).await,
            Command::Members(cmd) => commands::users::members(cmd, &client()?, output).await,
            Command::Teams(cmd) => commands::teams::run(cmd, &client()?, output).await,
            Command::ServiceAccounts(cmd) => {
                commands::service_accounts::run(cmd, &client()?, output).await
            }
            Command::Tenants(cmd) => {
                let client = client()?;
                commands::tenants::run(cmd, &client, output).await
            }
            Command::Keys(cmd) => {
                let client = client()?;
                commands::keys::keys(cmd, &client, output).await
            }
            Command::Policies(cmd) => {
                let client = client()?;
                commands::policies::run(cmd, &client, output).await
            }
            Command::Audit(cmd) => {
                let client = client()?;
                commands::keys::audit(cmd, &client, output).await
            }
            Command::Run(args) => commands::run::run(args, output).await,
            Command::Build(args) => commands::agents::build(args, output).await,
            Command::Deploy(args) => commands::agents::deploy(args, &client()?, output).await,
            Command::Agents(cmd) => commands::agents::agents(cmd, &client()?, output).await,
            Command::Secrets(cmd) => commands::secrets::run(cmd, &client()?, output).await,
            Command::State(cmd) => commands::state::run(cmd, &client()?, output).await,
            Command::Rollback(args) => commands::agents::rollback(args, &client()?, output).await,
            Command::Invoke(args) => commands::agents::invoke(args, &client()?, output).await,
            Command::Tasks(cmd) => commands::tasks::tasks(cmd, &client()?, output).await,
            Command::Logs(args) => commands::tasks::logs(args, &client()?, output).await,
            Command::Bench(cmd) => commands::bench::run(cmd, output).await,
            Command::Completions { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "nexus", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => err.report(),
    }
}
