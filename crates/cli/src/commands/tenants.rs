//! `nexus tenants list|get|create|delete|export`.

use clap::Subcommand;
use nexus_api_model::CreateTenant;
use nexus_core::{Page, Tenant};

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants, oldest first.
    List {
        /// Page size (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one tenant by name or id.
    Get { tenant: String },
    /// Create a tenant.
    Create {
        /// Lowercase letters, digits and '-'.
        name: String,
        /// Name for people (defaults to NAME).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Delete a tenant and all its data, for good (platform admins). Its data key is
    /// destroyed first: nothing of it decrypts afterwards, not even from a backup.
    Delete {
        tenant: String,
        /// Confirms that everything of the tenant is to be destroyed (without it, the command
        /// asks on a terminal and refuses elsewhere).
        #[arg(long)]
        yes: bool,
    },
    /// Write all of a tenant's data as JSON lines (owners): agents, revisions, state,
    /// tasks and their events, keys, policies, audit chain. Secret values are not included.
    Export {
        tenant: String,
        /// File to write (default: standard output). Written as FILE.partial and renamed
        /// once complete, so FILE is never a truncated export.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

pub async fn run(cmd: TenantsCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        TenantsCommand::List { limit, after } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(after.map(|after| ("after", after)));
            let page: Page<Tenant> = client.get(&["v1", "tenants"], &query).await?;
            if output.json {
                return output.print_json(&page);
            }
            println!("{:<24} {:<36} {:<30} CREATED", "NAME", "ID", "DISPLAY NAME");
            for tenant in &page.items {
                print_row(tenant);
            }
            if let Some(cursor) = page.next_cursor {
                eprintln!("more: nexus tenants list --after {}", cursor.0);
            }
            Ok(())
        }
        TenantsCommand::Get { tenant } => {
            let tenant: Tenant = client.get(&["v1", "tenants", &tenant], &[]).await?;
            show(&tenant, output)
        }
        TenantsCommand::Create { name, display_name } => {
            let tenant: Tenant = client
                .post(&["v1", "tenants"], &CreateTenant { name, display_name })
                .await?;
            if !output.json {
                eprintln!("created tenant {}", tenant.name);
            }
            show(&tenant, output)
        }
        TenantsCommand::Delete { tenant, yes } => {
            super::confirm(
                &format!("this destroys tenant `{tenant}` and all its data for good"),
                yes,
            )?;
            client.delete(&["v1", "tenants", &tenant]).await?;
            eprintln!("deleted tenant {tenant}; its data key is destroyed");
            Ok(())
        }
        TenantsCommand::Export {
            tenant,
            output: file,
        } => super::export::run(client, &tenant, file.as_deref()).await,
    }
}

fn show(tenant: &Tenant, output: Output) -> Result<(), CliError> {
    if output.json {
        return output.print_json(tenant);
    }
    println!("name:         {}", tenant.name);
    println!("id:           {}", tenant.id);
    println!("display name: {}", tenant.display_name);
    println!("created:      {}", tenant.created_at.to_rfc3339());
    Ok(())
}

fn print_row(tenant: &Tenant) {
    println!(
        "{:<24} {:<36} {:<30} {}",
        tenant.name,
        tenant.id,
        tenant.display_name.chars().take(30).collect::<String>(),
        tenant.created_at.format("%Y-%m-%d %H:%M:%S")
    );
}
