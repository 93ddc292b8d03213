//! `nexus policies create|list|delete|explain`: a tenant's Cedar policies.

use std::path::PathBuf;

use clap::Subcommand;
use nexus_api_model::{CreatePolicy, ExplainBody, Explanation, PolicyList};
use nexus_core::Policy;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Add a Cedar policy (one `permit` or `forbid`) to the tenant.
    Create {
        /// Lowercase letters, digits and '-'.
        name: String,
        /// A file holding the policy; `-` for standard input.
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        file: Option<PathBuf>,
        /// The policy itself.
        #[arg(long)]
        text: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// List the tenant's policies (`--builtin` also prints the built-in role policies).
    List {
        #[arg(long)]
        builtin: bool,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Remove a policy.
    Delete {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Say whether a key may do an action, and which policy decided.
    Explain {
        /// An action such as `agent.deploy` or `task.send`.
        action: String,
        /// The key asked about (default: your own).
        #[arg(long)]
        key: Option<String>,
        /// The agent the action is about (default: the tenant).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

/// Longest policy file read; the server takes at most 16 KiB.
const MAX_POLICY_FILE_BYTES: u64 = 64 * 1024;

fn read_policy(file: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_POLICY_FILE_BYTES)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_POLICY_FILE_BYTES).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(text)
}

pub async fn run(cmd: PoliciesCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        PoliciesCommand::Create {
            name,
            file,
            text,
            description,
            tenant,
        } => {
            let text = match (file, text) {
                (Some(file), _) => read_policy(&file)?,
                (None, Some(text)) => text,
                (None, None) => return Err(CliError::usage("give --file or --text")),
            };
            let policy: Policy = client
                .post(
                    &["v1", "tenants", &tenant, "policies"],
                    &CreatePolicy {
                        name,
                        description,
                        text,
                    },
                )
                .await?;
            if output.json {
                return output.print_json(&policy);
            }
            eprintln!(
                "created policy {} in {tenant}; it applies from the next request",
                policy.name
            );
            Ok(())
        }
        PoliciesCommand::List { builtin, tenant } => {
            let list: PolicyList = client
                .get(&["v1", "tenants", &tenant, "policies"], &[])
                .await?;
            if output.json {
                return output.print_json(&list);
            }
            if builtin {
                println!("// built-in\n{}", list.builtin);
            }
            for policy in &list.policies {
                println!(
                    "// {} (by {}, {}) {}\n{}\n",
                    policy.name,
                    policy.created_by,
                    policy
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    policy.description,
                    policy.text
                );
            }
            Ok(())
        }
        PoliciesCommand::Delete { name, tenant } => {
            let policy: Policy = client
                .delete_json(&["v1", "tenants", &tenant, "policies", &name])
                .await?;
            if output.json {
                return output.print_json(&policy);
            }
            eprintln!("deleted policy {}", policy.name);
            Ok(())
        }
        PoliciesCommand::Explain {
            action,
            key,
            agent,
            tenant,
        } => {
            let explained: Explanation = client
                .post(
                    &["v1", "tenants", &tenant, "policies", "explain"],
                    &ExplainBody { action, key, agent },
                )
                .await?;
            if output.json {
                return output.print_json(&explained);
            }
            let allowed = explained.allowed;
            println!(
                "{}: {} ({}) may {}do {} on {}",
                if allowed { "ALLOW" } else { "DENY" },
                explained.principal,
                explained.role,
                if allowed { "" } else { "not " },
                explained.action,
                explained.resource
            );
            println!("because {}", explained.reason);
            for error in &explained.errors {
                println!("skipped: {error}");
            }
            Ok(())
        }
    }
}
