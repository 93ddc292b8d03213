//! `nexus teams create|list|delete|add|remove`.

use clap::Subcommand;
use nexus_api_model::{AddTeamMember, CreateTeam};
use nexus_core::Team;
use nexus_core::identity::Role;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Create a team whose members get at least ROLE.
    Create {
        name: String,
        #[arg(long)]
        role: Role,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// List the tenant's teams and their members.
    List {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Delete a team (its members stay in the tenant with their own role).
    Delete {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Add a member of the tenant to a team.
    Add {
        team: String,
        user: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Remove someone from a team.
    Remove {
        team: String,
        user: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

pub async fn run(cmd: TeamsCommand, client: &Client, output: Output) -> Result<(), CliError> {
    let team: Team = match cmd {
        TeamsCommand::List { tenant } => {
            let teams: Vec<Team> = client
                .get(&["v1", "tenants", &tenant, "teams"], &[])
                .await?;
            if output.json {
                return output.print_json(&teams);
            }
            println!("{:<24} {:<10} MEMBERS", "NAME", "ROLE");
            for team in &teams {
                let members: Vec<&str> = team.members.iter().map(|m| m.as_str()).collect();
                println!("{:<24} {:<10} {}", team.name, team.role, members.join(", "));
            }
            return Ok(());
        }
        TeamsCommand::Create { name, role, tenant } => {
            client
                .post(
                    &["v1", "tenants", &tenant, "teams"],
                    &CreateTeam { name, role },
                )
                .await?
        }
        TeamsCommand::Delete { name, tenant } => {
            client
                .delete_json(&["v1", "tenants", &tenant, "teams", &name])
                .await?
        }
        TeamsCommand::Add { team, user, tenant } => {
            client
                .post(
                    &["v1", "tenants", &tenant, "teams", &team, "members"],
                    &AddTeamMember { name: user },
                )
                .await?
        }
        TeamsCommand::Remove { team, user, tenant } => {
            client
                .delete_json(&["v1", "tenants", &tenant, "teams", &team, "members", &user])
                .await?
        }
    };
    if output.json {
        return output.print_json(&team);
    }
    let members: Vec<&str> = team.members.iter().map(|m| m.as_str()).collect();
    eprintln!(
        "team {} ({}): {}",
        team.name,
        team.role,
        if members.is_empty() {
            "no members".to_owned()
        } else {
            members.join(", ")
        }
    );
    Ok(())
}
