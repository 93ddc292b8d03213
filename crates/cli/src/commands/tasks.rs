//! `nexus tasks list|get|cancel`, `nexus logs`. Every task id may be given as a prefix of it
//! that no other task of the tenant starts with (the server resolves it).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use nexus_api_model::ListedTask;
use nexus_core::message::{Artifact, Message, Role, text_of};
use nexus_core::page::DEFAULT_PAGE_SIZE;
use nexus_core::{Page, Task, TaskEvent, TaskEventKind, TaskState};
use serde_json::{Value, json};

use super::Output;
use crate::client::Client;
use crate::exit::CliError;

/// Events read per request when `tasks get` reads a task's log for its reply: the server's
/// largest page of events.
const EVENTS_PER_REQUEST: u32 = 1000;

/// `--state`: one of the task states, which clap lists when the value is not one.
fn state_parser() -> impl TypedValueParser<Value = TaskState> {
    PossibleValuesParser::new(TaskState::ALL.map(TaskState::as_str))
        .try_map(|s| s.parse::<TaskState>())
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, newest first, with a short id to type for each.
    List {
        /// Only this agent's tasks.
        #[arg(long)]
        agent: Option<String>,
        /// Only tasks in this state.
        #[arg(long, value_parser = state_parser())]
        state: Option<TaskState>,
        /// Page size (1 to 500).
        #[arg(long, default_value_t = DEFAULT_PAGE_SIZE)]
        limit: u32,
        /// Continue with older tasks after this cursor (printed at the end of the previous
        /// page).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Show a task with the agent's reply and what the task used.
    Get {
        /// The task id, or a prefix of it (the short id `tasks list` shows).
        id: String,
        #[arg(long, env = "NEXUS_TENANT", default_value = "default")]
        tenant: String,
    },
    /// Cancel a task that has not ended.
    Cancel {
        /// The task id, or a prefix of it (the short id `tasks list` shows).
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
            after,
            tenant,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(agent.clone().map(|a| ("agent", a)));
            query.extend(state.map(|s| ("state", s.as_str().to_owned())));
            query.extend(after.map(|a| ("after", a)));
            let page: Page<ListedTask> = client
                .get(&["v1", "tenants", &tenant, "tasks"], &query)
                .await?;
            if output.json {
                return output.print_json(&page);
            }
            print_list(&page.items);
            if let Some(cursor) = page.next_cursor {
                let mut more = format!("more: nexus tasks list --after {}", cursor.0);
                if let Some(agent) = agent {
                    more.push_str(&format!(" --agent {agent}"));
                }
                if let Some(state) = state {
                    more.push_str(&format!(" --state {state}"));
                }
                if limit != DEFAULT_PAGE_SIZE {
                    more.push_str(&format!(" --limit {limit}"));
                }
                if tenant != "default" {
                    more.push_str(&format!(" --tenant {tenant}"));
                }
                eprintln!("{more}");
            }
            Ok(())
        }
        TasksCommand::Get { id, tenant } => {
            let task: Task = client
                .get(&["v1", "tenants", &tenant, "tasks", &id], &[])
                .await?;
            let log = read_log(client, &tenant, &task).await?;
            let outcome = Outcome::of(&log);
            if output.json {
                // The task's fields, with the reply and the usage beside them.
                let mut value = json!(task);
                if let Value::Object(fields) = &mut value {
                    fields.insert(
                        "reply".into(),
                        outcome.reply.as_ref().map_or(
                            Value::Null,
                            |reply| json!({"message": reply.parts, "artifacts": outcome.artifacts}),
                        ),
                    );
                    fields.insert("usage".into(), outcome.usage.clone().unwrap_or(Value::Null));
                }
                return output.print_json(&value);
            }
            print_task(&task, &outcome);
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

fn print_list(tasks: &[ListedTask]) {
    let width = tasks
        .iter()
        .map(|t| t.short_id.len())
        .max()
        .unwrap_or(0)
        .max(2);
    println!(
        "{:<width$} {:<20} {:<15} {:<20} CREATED",
        "ID", "AGENT", "STATE", "SESSION"
    );
    for listed in tasks {
        let task = &listed.task;
        println!(
            "{:<width$} {:<20} {:<15} {:<20} {}",
            listed.short_id,
            listed.agent,
            task.state.as_str(),
            task.context_id.chars().take(20).collect::<String>(),
            task.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
}

/// A task's whole log, read page by page.
async fn read_log(client: &Client, tenant: &str, task: &Task) -> Result<Vec<TaskEvent>, CliError> {
    let id = task.id.to_string();
    let segments = ["v1", "tenants", tenant, "tasks", &id, "events"];
    let mut log: Vec<TaskEvent> = Vec::new();
    loop {
        let after = log.last().map_or(0, |event| event.seq);
        let page: Vec<TaskEvent> = client
            .get(
                &segments,
                &[
                    ("after", after.to_string()),
                    ("limit", EVENTS_PER_REQUEST.to_string()),
                ],
            )
            .await?;
        let full = page.len() == EVENTS_PER_REQUEST as usize;
        log.extend(page);
        if !full {
            return Ok(log);
        }
    }
}

/// What a task's log says of its last turn: the agent's last message, the artifacts that came
/// with it, and the usage.
#[derive(Debug, Default)]
struct Outcome {
    reply: Option<Message>,
    artifacts: Vec<Artifact>,
    usage: Option<Value>,
}

impl Outcome {
    fn of(log: &[TaskEvent]) -> Self {
        let mut outcome = Self::default();
        for event in log {
            match event.kind {
                // Streamed chunks and progress carry an `event` field; messages do not.
                TaskEventKind::Message if event.payload.get("event").is_none() => {
                    if let Ok(message) = serde_json::from_value::<Message>(event.payload.clone())
                        && message.role == Role::Agent
                    {
                        outcome.reply = Some(message);
                        outcome.artifacts.clear();
                    }
                }
                TaskEventKind::Artifact => {
                    if let Ok(artifact) = serde_json::from_value(event.payload.clone()) {
                        outcome.artifacts.push(artifact);
                    }
                }
                TaskEventKind::Usage => outcome.usage = Some(event.payload.clone()),
                _ => {}
            }
        }
        outcome
    }
}

fn print_task(task: &Task, outcome: &Outcome) {
    println!("id:        {}", task.id);
    println!("state:     {}", task.state);
    println!("session:   {}", task.context_id);
    if let Some(message) = &task.status_message {
        println!("message:   {message}");
    }
    println!("created:   {}", task.created_at.to_rfc3339());
    if let Some(reply) = &outcome.reply {
        println!("reply:     {}", text_of(&reply.parts));
    }
    for artifact in &outcome.artifacts {
        let text = text_of(&artifact.parts);
        let brief: String = text.chars().take(60).collect();
        let more = if brief.len() < text.len() { "…" } else { "" };
        println!(
            "artifact:  {} ({} part{}) {brief}{more}",
            artifact.name.as_deref().unwrap_or(&artifact.id),
            artifact.parts.len(),
            if artifact.parts.len() == 1 { "" } else { "s" },
        );
    }
    if let Some(usage) = &outcome.usage {
        println!("usage:     {}", usage_line(usage));
    }
}

/// The usage event of a task's log, for people, each number with its unit.
fn usage_line(usage: &Value) -> String {
    let number = |key: &str| usage.get(key).and_then(Value::as_u64);
    let mut parts = Vec::new();
    if let Some(us) = number("wall_time_us") {
        parts.push(format!("wall time {:.3} ms", us as f64 / 1000.0));
    }
    if let Some(fuel) = number("fuel_consumed") {
        parts.push(format!("fuel {fuel}"));
    }
    if let Some(bytes) = number("peak_memory_bytes") {
        parts.push(format!("peak memory {} KiB", bytes / 1024));
    }
    if let Some(bytes) = number("output_bytes") {
        parts.push(format!("output {bytes} B"));
    }
    if let Some(calls) = usage["llm"].get("calls").and_then(Value::as_u64)
        && calls > 0
    {
        parts.push(format!("llm calls {calls}"));
    }
    parts.join(", ")
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task id, or a prefix of it (the short id `tasks list` shows).
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
