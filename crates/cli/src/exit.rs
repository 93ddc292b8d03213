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
//! | 6 | the agent's task did not complete (rejected, canceled, or failed: limit, trap, agent error) |
//!
//! The table is also in `docs/cli.md`. A verb whose result is a task (`nexus invoke`, `nexus run`)
//! takes its code from [`CliError::for_task`] in every output mode (plain, `--json`, `--stream`,
//! `--json --stream`): the output is printed first, then a task that did not complete exits 6.

use std::process::ExitCode;

use nexus_core::TaskState;

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

    /// How a verb ends whose result is a task now in `state`, whatever the output mode: `Ok` when
    /// the agent answered (completed, or asks for more input), otherwise [`Self::TASK_FAILED`]
    /// with `message()`, which says why.
    pub fn for_task(state: TaskState, message: impl FnOnce() -> String) -> Result<(), Self> {
        match Self::task_code(state) {
            0 => Ok(()),
            code => Err(Self {
                code,
                message: message(),
            }),
        }
    }

    /// The exit code for a task in `state`. Exhaustive, so a new state needs a decision here.
    fn task_code(state: TaskState) -> u8 {
        match state {
            TaskState::Completed | TaskState::InputRequired => 0,
            TaskState::Failed | TaskState::Rejected | TaskState::Canceled => Self::TASK_FAILED,
            // The answer ended before the task did (a stream cut short): not a completed task.
            TaskState::Submitted | TaskState::Working | TaskState::AuthRequired => {
                Self::TASK_FAILED
            }
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
