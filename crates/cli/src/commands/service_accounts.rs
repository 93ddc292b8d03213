//! `nexus service-accounts create|list|delete`.

use clap::Subcommand;
use nexus_api_model::CreateServiceAccount;
use nexus_core::ServiceAccount;
use nexus_core::identity::Role;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account; then `nexus keys create KEY --service-account NAME`.
    Create {
        name: String,
        #[arg(long)]
        role: Role,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// List the tenant's service accounts.
    List {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Delete a service account and all its keys.
    Delete {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

pub async fn run(
    cmd: ServiceAccountsCommand,
    client: &Client,
    output: Output,
) -> Result<(), CliError> {
    match cmd {
        ServiceAccountsCommand::Create {
            name,
            role,
            description,
            tenant,
        } => {
            let account: ServiceAccount = client
                .post(
                    &["v1", "tenants", &tenant, "service-accounts"],
                    &CreateServiceAccount {
                        name,
                        role,
                        description,
                    },
                )
                .await?;
            if output.json {
                return output.print_json(&account);
            }
            eprintln!(
                "created service account {} ({}) in {tenant}; give it keys with \
                 `nexus keys create KEY --service-account {}`",
                account.name, account.role, account.name
            );
            Ok(())
        }
        ServiceAccountsCommand::List { tenant } => {
            let accounts: Vec<ServiceAccount> = client
                .get(&["v1", "tenants", &tenant, "service-accounts"], &[])
                .await?;
            if output.json {
                return output.print_json(&accounts);
            }
            println!(
                "{:<24} {:<10} {:<20} DESCRIPTION",
                "NAME", "ROLE", "CREATED BY"
            );
            for a in &accounts {
                println!(
                    "{:<24} {:<10} {:<20} {}",
                    a.name, a.role, a.created_by, a.description
                );
            }
            Ok(())
        }
        ServiceAccountsCommand::Delete { name, tenant } => {
            let deleted: ServiceAccount = client
                .delete_json(&["v1", "tenants", &tenant, "service-accounts", &name])
                .await?;
            if output.json {
                return output.print_json(&deleted);
            }
            eprintln!("deleted service account {} and its keys", deleted.name);
            Ok(())
        }
    }
}
