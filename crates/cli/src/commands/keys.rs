//! `nexus keys create|list|revoke` and `nexus audit list|export|verify`.

use std::io::Write;

use clap::Subcommand;
use nexus_api_model::{CreateKey, CreatedKeyBody};
use nexus_core::identity::Role;
use nexus_core::{ApiKey, AuditEvent, Page};
use serde_json::json;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; its secret is printed once, on stdout.
    Create {
        /// A label for people, e.g. `ci`.
        name: String,
        /// viewer, operator, developer, admin or owner (default developer).
        #[arg(long, conflicts_with = "service_account")]
        role: Option<Role>,
        /// Make it a key of this service account: it acts as the account, with its role.
        #[arg(long, conflicts_with = "platform_admin")]
        service_account: Option<String>,
        /// Expire the key after this long: `30d`, `12h`, `90m`.
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<chrono::Duration>,
        /// Let the key manage tenants and act in all of them (platform admins only).
        #[arg(long)]
        platform_admin: bool,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        after: Option<String>,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Revoke a key by id: refused from the next request on.
    Revoke {
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the audit log, oldest first.
    List {
        /// Events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Write the whole audit log as JSON lines on stdout.
    Export {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Check the hash chain; names the first broken link.
    Verify {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

/// Audit events read per request while exporting or verifying.
const AUDIT_PAGE: u32 = 1_000;

/// `30d`, `12h`, `90m` or `45s`.
fn parse_lifetime(value: &str) -> Result<chrono::Duration, String> {
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let number: i64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{value}`: expected a positive number and d, h, m or s"))?;
    let duration = match unit {
        "d" => chrono::Duration::try_days(number),
        "h" => chrono::Duration::try_hours(number),
        "m" => chrono::Duration::try_minutes(number),
        "s" => chrono::Duration::try_seconds(number),
        _ => None,
    };
    duration.ok_or_else(|| format!("`{value}`: expected a positive number and d, h, m or s"))
}

pub async fn keys(cmd: KeysCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        KeysCommand::Create {
            name,
            role,
            service_account,
            expires_in,
            platform_admin,
            tenant,
        } => {
            let expires_at = expires_in.map(|d| chrono::Utc::now() + d);
            let role = match (&service_account, role) {
                (None, role) => Some(role.unwrap_or(Role::Developer)),
                (Some(_), _) => None,
            };
            let created: CreatedKeyBody = client
                .post(
                    &["v1", "tenants", &tenant, "keys"],
                    &CreateKey {
                        name,
                        role,
                        service_account,
                        platform_admin,
                        expires_at,
                    },
                )
                .await?;
            if output.json {
                return output.print_json(&created);
            }
            eprintln!(
                "created key {} ({}) in {tenant}; this is the only time its secret is shown:",
                created.key.id, created.key.role
            );
            println!("{}", created.secret);
            Ok(())
        }
        KeysCommand::List {
            limit,
            after,
            tenant,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(after.map(|after| ("after", after)));
            let page: Page<ApiKey> = client
                .get(&["v1", "tenants", &tenant, "keys"], &query)
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            println!(
                "{:<36} {:<16} {:<10} {:<13} {:<8} EXPIRES",
                "ID", "NAME", "ROLE", "PREFIX", "STATE"
            );
            let now = chrono::Utc::now();
            for key in &page.items {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if key.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                let role = if key.platform_admin {
                    format!("{}+", key.role)
                } else {
                    key.role.to_string()
                };
                println!(
                    "{:<36} {:<16} {:<10} {:<13} {:<8} {}",
                    key.id,
                    key.name,
                    role,
                    key.prefix,
                    state,
                    key.expires_at
                        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
                );
            }
            if let Some(cursor) = page.next_cursor {
                eprintln!("more: nexus keys list --after {}", cursor.0);
            }
            Ok(())
        }
        KeysCommand::Revoke { id, tenant } => {
            let key: ApiKey = client
                .delete_json(&["v1", "tenants", &tenant, "keys", &id])
                .await?;
            if output.json {
                return output.print_json(&key);
            }
            eprintln!("revoked key {} ({})", key.id, key.name);
            Ok(())
        }
    }
}

pub async fn audit(cmd: AuditCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        AuditCommand::List {
            after,
            limit,
            tenant,
        } => {
            let events = page(client, &tenant, after, limit).await?;
            if output.json {
                return output.print_json(&events);
            }
            println!(
                "{:<6} {:<25} {:<44} {:<18} TARGET",
                "SEQ", "AT", "ACTOR", "ACTION"
            );
            for event in &events {
                println!(
                    "{:<6} {:<25} {:<44} {:<18} {}",
                    event.seq,
                    event.at.format("%Y-%m-%dT%H:%M:%SZ"),
                    event.actor,
                    event.action,
                    event.target
                );
            }
            Ok(())
        }
        AuditCommand::Export { tenant } => {
            let mut stdout = std::io::stdout().lock();
            let mut after = 0;
            loop {
                let events = page(client, &tenant, after, AUDIT_PAGE).await?;
                for event in &events {
                    let line = serde_json::to_string(event)
                        .map_err(|e| CliError::internal(format!("cannot render an event: {e}")))?;
                    writeln!(stdout, "{line}")
                        .map_err(|e| CliError::internal(format!("cannot write: {e}")))?;
                    after = event.seq;
                }
                if events.len() < AUDIT_PAGE as usize {
                    return Ok(());
                }
            }
        }
        AuditCommand::Verify { tenant } => {
            let mut previous: Option<AuditEvent> = None;
            let mut checked = 0u64;
            loop {
                let after = previous.as_ref().map_or(0, |e| e.seq);
                let events = page(client, &tenant, after, AUDIT_PAGE).await?;
                for event in events.iter().cloned() {
                    if let Err(broken) = nexus_core::audit::verify_link(previous.as_ref(), &event) {
                        let report = json!({ "valid": false, "checked": checked,
                            "first_broken_seq": event.seq, "reason": broken.to_string() });
                        if output.json {
                            output.print_json(&report)?;
                        }
                        return Err(CliError {
                            code: CliError::REJECTED,
                            message: format!(
                                "the audit chain of {tenant} is broken at event {}: {broken}",
                                event.seq
                            ),
                        });
                    }
                    checked += 1;
                    previous = Some(event);
                }
                if events.len() < AUDIT_PAGE as usize {
                    break;
                }
            }
            if output.json {
                return output.print_json(&json!({ "valid": true, "checked": checked }));
            }
            eprintln!("the audit chain of {tenant} is intact: {checked} events");
            Ok(())
        }
    }
}

async fn page(
    client: &Client,
    tenant: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<AuditEvent>, CliError> {
    client
        .get(
            &["v1", "tenants", tenant, "audit"],
            &[("after", after.to_string()), ("limit", limit.to_string())],
        )
        .await
}
