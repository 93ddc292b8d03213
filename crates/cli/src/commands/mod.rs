//! One module per noun; each verb is a function.

pub mod agents;
pub mod bench;
mod build;
mod export;
pub mod keys;
pub mod policies;
pub mod run;
pub mod secrets;
pub mod server;
pub mod service_accounts;
pub mod state;
pub mod tasks;
pub mod teams;
pub mod tenants;
pub mod users;

/// How client verbs print results.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON on stdout instead of a table.
    pub json: bool,
}

impl Output {
    /// Prints `value` as pretty JSON on stdout.
    pub fn print_json<T: serde::Serialize>(&self, value: &T) -> Result<(), crate::exit::CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| crate::exit::CliError::internal(format!("cannot render JSON: {e}")))?;
        println!("{text}");
        Ok(())
    }
}

/// Lets a verb that destroys data go ahead: at once with `--yes` (`yes`); otherwise it asks on
/// the terminal, and without one (a script, a pipe) it refuses, so nothing is lost by accident.
/// `what` says what will be destroyed, e.g. "this deletes agent `echo` with its tasks".
pub fn confirm(what: &str, yes: bool) -> Result<(), crate::exit::CliError> {
    use crate::exit::CliError;
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{what}; run again with --yes to confirm (there is no terminal to ask on)"
        )));
    }
    eprint!("{what}. Continue? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::usage(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::usage("not confirmed; nothing was changed"))
    }
}
