//! `nexus tasks list|get|cancel`, `nexus logs`.

use clap::{Args, Subcommand};
use nexus_core::{Page, Task, TaskEvent};
use serde_json::json;

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, oldest first.
    List {
        /// Only this agent's tasks.
        #[arg(long)]
        agent: Option<String>,
        /// Only tasks in this state.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Show a task.
    Get {
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Cancel a task that has not ended.
    Cancel {
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
}

pub async fn tasks(cmd: TasksCommand, client: &Client, output: Output) -> Result<(), CliError> {
    match cmd {
        TasksCommand::List {
            agent,
            state,
            limit,
            tenant,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(agent.map(|a| ("agent", a)));
            query.extend(state.map(|s| ("state", s)));
            let page: Page<Task> = client
                .get(&["v1", "tenants", &tenant, "tasks"], &query)
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            println!("{:<36} {:<15} {:<20} CREATED", "ID", "STATE", "SESSION");
            for task in &page.items {
                println!(
                    "{:<36} {:<15} {:<20} {}",
                    task.id,
                    task.state.as_str(),
                    task.context_id.chars().take(20).collect::<String>(),
                    task.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Ok(())
        }
        TasksCommand::Get { id, tenant } => {
            let task: Task = client
                .get(&["v1", "tenants", &tenant, "tasks", &id], &[])
                .await?;
            if output.json {
                return output.print_json(&task);
            }
            println!("id:       {}", task.id);
            println!("state:    {}", task.state);
            println!("session:  {}", task.context_id);
            if let Some(message) = &task.status_message {
                println!("message:  {message}");
            }
            println!("created:  {}", task.created_at.to_rfc3339());
            Ok(())
        }
        TasksCommand::Cancel { id, tenant } => {
            let task: Task = client
                .post(
                    &["v1", "tenants", &tenant, "tasks", &id, "cancel"],
                    &json!({}),
                )
                .await?;
            if output.json {
                return output.print_json(&task);
            }
            eprintln!("task {} {}", task.id, task.state);
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task.
    id: String,
    /// Keep printing new events until the task stops running.
    #[arg(long, short = 'f')]
    follow: bool,
    #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
    tenant: String,
}

/// Prints a task's event log: status changes, messages, streamed output, artifacts, logs.
pub async fn logs(args: LogsArgs, client: &Client, output: Output) -> Result<(), CliError> {
    let segments = ["v1", "tenants", &args.tenant, "tasks", &args.id, "events"];
    if args.follow {
        let request = client.get_request(&segments, &[("follow", "true".to_owned())]);
        let mut events = std::pin::pin!(client.events(request).await?);
        while let Some(event) = futures::StreamExt::next(&mut events).await {
            let event = event?;
            let data = event.data.unwrap_or_default();
            if event.event.as_deref() == Some("error") {
                return Err(stream_error(&data));
            }
            if output.json {
                println!("{data}");
            } else if let Ok(event) = serde_json::from_str::<TaskEvent>(&data) {
                print_event(&event);
            }
        }
        return Ok(());
    }
    let events: Vec<TaskEvent> = client.get(&segments, &[]).await?;
    if output.json {
        return output.print_json(&events);
    }
    events.iter().for_each(print_event);
    Ok(())
}

fn print_event(event: &TaskEvent) {
    println!(
        "{:>4} {} {:<8} {}",
        event.seq,
        event.created_at.format("%H:%M:%S%.3f"),
        event.kind.as_str(),
        event.payload
    );
}

/// The error an event stream ended with: its problem, or its raw text.
pub(super) fn stream_error(data: &str) -> CliError {
    #[derive(serde::Deserialize)]
    struct Problem {
        code: String,
        detail: String,
    }
    match serde_json::from_str::<Problem>(data) {
        Ok(problem) => CliError {
            code: CliError::SERVER_FAILED,
            message: format!("{} ({})", problem.detail, problem.code),
        },
        Err(_) => CliError::internal(format!("the server sent an error: {data}")),
    }
}
