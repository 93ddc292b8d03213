//! `nexus secrets list|delete`: an agent's secrets, by name. Values are set with
//! `nexus deploy --secret` and never shown.

use clap::Subcommand;
use nexus_api_model::SecretList;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List an agent's secrets: names and when each was set, never values.
    List {
        agent: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Delete one secret of an agent; its tasks no longer see it.
    Delete {
        agent: String,
        /// The secret's name.
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
        /// Confirms the deletion (without it, the command asks on a terminal and refuses
        /// elsewhere).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: SecretsCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        SecretsCommand::List { agent, tenant } => {
            let list: SecretList = client
                .get(
                    &["v1", "tenants", &tenant, "agents", &agent, "secrets"],
                    &[],
                )
                .await?;
            if output.json {
                return output.print_json(&list);
            }
            println!("{:<40} UPDATED", "NAME");
            for secret in &list.items {
                println!(
                    "{:<40} {}",
                    secret.name,
                    secret.updated_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Ok(())
        }
        SecretsCommand::Delete {
            agent,
            name,
            tenant,
            yes,
        } => {
            super::confirm(
                &format!("this deletes secret `{name}` of agent `{tenant}/{agent}` for good"),
                yes,
            )?;
            client
                .delete(&["v1", "tenants", &tenant, "agents", &agent, "secrets", &name])
                .await?;
            eprintln!("deleted secret {name} of {tenant}/{agent}");
            Ok(())
        }
    }
}
