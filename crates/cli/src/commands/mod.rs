//! One module per noun; each verb is a function.

pub mod agents;
pub mod bench;
mod build;
mod export;
pub mod keys;
pub mod policies;
pub mod run;
pub mod server;
pub mod service_accounts;
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
