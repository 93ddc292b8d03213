//! CLI errors and their exit codes.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | unexpected failure (a bug, or an IO error on this machine) |
//! | 2 | usage error: bad flags, arguments or configuration |
//! | 3 | the server could not be reached |
//! | 4 | the server rejected the request (4xx: not found, invalid input, conflict) |
//! | 5 | the server failed (5xx) |
//! | 6 | the agent's task did not complete (rejected, or failed: limit, trap, agent error) |

use std::process::ExitCode;

/// A failure that ends the command with a message on stderr and a documented exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const REJECTED: u8 = 4;
    pub const SERVER_FAILED: u8 = 5;
    pub const TASK_FAILED: u8 = 6;

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: Self::INTERNAL,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: Self::USAGE,
            message: message.into(),
        }
    }

    /// Prints the message to stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format!("{err:#}"))
    }
}
