//! `nexus state list|get|clear`: inspecting and clearing an agent's state (values are sealed
//! at rest; the server opens them for callers allowed to read them).

use std::io::Write;

use base64::Engine;
use clap::Subcommand;
use nexus_api_model::{StateCleared, StateEncoding, StateKeys, StateValue};

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the keys of an agent's state (all sessions, or one); no values.
    List {
        agent: String,
        /// Only this session (the context id of the tasks that wrote it).
        #[arg(long)]
        session: Option<String>,
        /// Most keys to list (1 to 1000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Print one value of an agent's state (its bytes as they are; with --json, an object).
    Get {
        agent: String,
        key: String,
        /// The session the key belongs to (`nexus state list` shows them).
        #[arg(long)]
        session: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Delete an agent's state: one session's, or all of it.
    Clear {
        agent: String,
        /// Only this session's state.
        #[arg(long)]
        session: Option<String>,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
        /// Confirms the deletion (without it, the command asks on a terminal and refuses
        /// elsewhere).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: StateCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        StateCommand::List {
            agent,
            session,
            limit,
            tenant,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(session.map(|s| ("session", s)));
            let keys: StateKeys = client
                .get(
                    &["v1", "tenants", &tenant, "agents", &agent, "state"],
                    &query,
                )
                .await?;
            if output.json {
                return output.print_json(&keys);
            }
            println!("{:<40} KEY", "SESSION");
            for key in &keys.items {
                println!("{:<40} {}", key.session, key.key);
            }
            if keys.more {
                eprintln!("more keys were left out: pass --session, or a higher --limit");
            }
            Ok(())
        }
        StateCommand::Get {
            agent,
            key,
            session,
            tenant,
        } => {
            let value: StateValue = client
                .get(
                    &[
                        "v1", "tenants", &tenant, "agents", &agent, "sessions", &session, "state",
                        &key,
                    ],
                    &[],
                )
                .await?;
            if output.json {
                return output.print_json(&value);
            }
            let bytes = match value.encoding {
                StateEncoding::Utf8 => value.value.into_bytes(),
                StateEncoding::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(&value.value)
                    .map_err(|e| CliError::internal(format!("the server's base64: {e}")))?,
            };
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::internal(format!("cannot write the value: {e}")))
        }
        StateCommand::Clear {
            agent,
            session,
            tenant,
            yes,
        } => {
            let what = match &session {
                Some(session) => {
                    format!(
                        "this deletes the state of session `{session}` of agent `{tenant}/{agent}`"
                    )
                }
                None => format!("this deletes all the state of agent `{tenant}/{agent}`"),
            };
            super::confirm(&what, yes)?;
            let query: Vec<(&str, String)> = session.map(|s| ("session", s)).into_iter().collect();
            let cleared: StateCleared = client
                .delete_json_query(
                    &["v1", "tenants", &tenant, "agents", &agent, "state"],
                    &query,
                )
                .await?;
            if output.json {
                return output.print_json(&cleared);
            }
            eprintln!(
                "deleted {} state values of {tenant}/{agent}",
                cleared.deleted
            );
            Ok(())
        }
    }
}
