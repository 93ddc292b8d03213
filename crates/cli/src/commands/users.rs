//! `nexus login|logout|whoami|passwd` and `nexus members add|list|remove`.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, Subcommand};
use nexus_api_model::{AddMember, ChangePassword, Login, ResetPassword, Session, WhoAmI};
use nexus_core::identity::Role;
use nexus_core::{Membership, Page};
use serde_json::json;

use super::Output;
use crate::client::{Client, TlsFiles};
use crate::credentials::{self, StoredSession};
use crate::exit::CliError;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your user name (asked for when absent).
    #[arg(long, short)]
    user: Option<String>,
    /// The tenant to act in; needed when you belong to several.
    #[arg(long, env = "NEXUS_TENANT")]
    tenant: Option<String>,
    /// Read the password from the first line of standard input instead of asking.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Set this user's password instead of your own (platform admins).
    #[arg(long, short)]
    user: Option<String>,
    /// Read the passwords from standard input, one per line (yours: current, then new).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add someone to the tenant: a new account (you are asked for its first password) or,
    /// with --existing, an account that already exists. For a member, changes the role.
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// The account exists already: add it without setting a password.
        #[arg(long)]
        existing: bool,
        /// Name for people (new accounts).
        #[arg(long)]
        display_name: Option<String>,
        /// Read the new account's password from standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// List the tenant's members.
    List {
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Remove someone from the tenant and end their sessions there.
    Remove {
        name: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

/// Logs in and stores the session for this server.
pub async fn login(
    args: LoginArgs,
    server: &str,
    tls: &TlsFiles,
    output: Output,
    verbose: bool,
) -> Result<(), CliError> {
    let client = Client::new(server, None, tls)?.verbose(verbose);
    let user = match args.user {
        Some(user) => user,
        None => prompt_line("user: ")?,
    };
    let password = read_password(args.password_stdin, "password: ")?;
    let session: Session = client
        .post(
            &["v1", "login"],
            &Login {
                name: user,
                password,
                tenant: args.tenant,
            },
        )
        .await?;
    let path = credentials::save(
        server,
        StoredSession {
            token: session.token,
            user: session.user.name.to_string(),
            tenant: session.tenant.name.to_string(),
            expires_at: session.expires_at,
        },
    )?;
    if output.json {
        return output.print_json(&json!({
            "user": session.user.name, "tenant": session.tenant.name,
            "role": session.role, "expires_at": session.expires_at,
        }));
    }
    eprintln!(
        "logged in to {server} as {} ({} in tenant {}) until {}; session kept in {}",
        session.user.name,
        session.role,
        session.tenant.name,
        session.expires_at.format("%Y-%m-%d %H:%M UTC"),
        path.display()
    );
    Ok(())
}

/// Ends this server's session, on the server and on disk.
pub async fn logout(server: &str, tls: &TlsFiles, verbose: bool) -> Result<(), CliError> {
    let Some(session) = credentials::session_for(server)? else {
        credentials::remove(server)?;
        eprintln!("not logged in to {server}");
        return Ok(());
    };
    let client = Client::new(server, Some(&session.token), tls)?.verbose(verbose);
    let ended = client
        .post::<_, serde::de::IgnoredAny>(&["v1", "logout"], &json!({}))
        .await;
    credentials::remove(server)?;
    match ended {
        Ok(_) => {
            eprintln!("logged out of {server}");
            Ok(())
        }
        // Already over on the server (expired, revoked, membership changed): gone here too.
        Err(e) if e.code == CliError::REJECTED => {
            eprintln!("logged out of {server} (the session had already ended there)");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Changes your password (ending your sessions) or, with `--user`, resets someone's.
pub async fn passwd(args: PasswdArgs, client: &Client, server: &str) -> Result<(), CliError> {
    let mut lines = PasswordSource::new(args.password_stdin);
    match args.user {
        Some(user) => {
            let new = lines.next(&format!("new password for {user}: "))?;
            client
                .post::<_, serde::de::IgnoredAny>(
                    &["v1", "users", &user, "password"],
                    &ResetPassword { new_password: new },
                )
                .await?;
            eprintln!("set the password of {user}; their sessions are over");
        }
        None => {
            let current = lines.next("current password: ")?;
            let new = lines.next("new password: ")?;
            if !args.password_stdin && lines.next("new password again: ")? != new {
                return Err(CliError::usage("the new passwords differ; nothing changed"));
            }
            client
                .post::<_, serde::de::IgnoredAny>(
                    &["v1", "password"],
                    &ChangePassword {
                        current_password: current,
                        new_password: new,
                    },
                )
                .await?;
            credentials::remove(server)?;
            eprintln!("password changed; every session has ended: run `nexus login` again");
        }
    }
    Ok(())
}

/// Passwords from standard input's lines, or typed at the terminal without echo.
struct PasswordSource {
    from_stdin: bool,
}

impl PasswordSource {
    fn new(from_stdin: bool) -> Self {
        Self { from_stdin }
    }

    fn next(&mut self, prompt: &str) -> Result<String, CliError> {
        read_password(self.from_stdin, prompt)
    }
}

/// Prints who the credentials stand for.
pub async fn whoami(client: &Client, output: Output) -> Result<(), CliError> {
    let me: WhoAmI = client.get(&["v1", "whoami"], &[]).await?;
    if output.json {
        return output.print_json(&me);
    }
    println!("principal:      {}", me.principal);
    println!("tenant:         {}", me.tenant.name);
    println!("role:           {}", me.role);
    println!("platform admin: {}", me.platform_admin);
    if !me.teams.is_empty() {
        let teams: Vec<&str> = me.teams.iter().map(nexus_core::Name::as_str).collect();
        println!("teams:          {}", teams.join(", "));
    }
    Ok(())
}

pub async fn members(cmd: MembersCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        MembersCommand::Add {
            name,
            role,
            existing,
            display_name,
            password_stdin,
            tenant,
        } => {
            let password = if existing {
                None
            } else {
                Some(read_password(
                    password_stdin,
                    &format!("password for {name}: "),
                )?)
            };
            let membership: Membership = client
                .post(
                    &["v1", "tenants", &tenant, "members"],
                    &AddMember {
                        name,
                        role,
                        password,
                        display_name,
                    },
                )
                .await?;
            if output.json {
                return output.print_json(&membership);
            }
            eprintln!(
                "{} is {} in tenant {tenant}",
                membership.user.name, membership.role
            );
            Ok(())
        }
        MembersCommand::List { tenant } => {
            let page: Page<Membership> = client
                .get(
                    &["v1", "tenants", &tenant, "members"],
                    &[("limit", "500".into())],
                )
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            println!("{:<24} {:<10} {:<30} SINCE", "NAME", "ROLE", "DISPLAY NAME");
            for m in &page.items {
                println!(
                    "{:<24} {:<10} {:<30} {}",
                    m.user.name,
                    m.role,
                    m.user.display_name.chars().take(30).collect::<String>(),
                    m.created_at.format("%Y-%m-%d")
                );
            }
            Ok(())
        }
        MembersCommand::Remove { name, tenant } => {
            let removed: Membership = client
                .delete_json(&["v1", "tenants", &tenant, "members", &name])
                .await?;
            if output.json {
                return output.print_json(&removed);
            }
            eprintln!("removed {} from tenant {tenant}", removed.user.name);
            Ok(())
        }
    }
}

/// A password from standard input's first line (`from_stdin`) or typed at the terminal
/// without echo.
fn read_password(from_stdin: bool, prompt: &str) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| CliError::usage(format!("cannot read the password: {e}")))?
    } else {
        return Err(CliError::usage(
            "no terminal to ask for a password on; pass --password-stdin and pipe it in",
        ));
    };
    if password.is_empty() {
        return Err(CliError::usage("the password is empty"));
    }
    Ok(password)
}

fn prompt_line(prompt: &str) -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage("no terminal to ask on; pass --user NAME"));
    }
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("cannot read from the terminal: {e}")))?;
    Ok(line.trim().to_owned())
}
