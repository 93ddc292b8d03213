//! A hostile agent for the runtime's containment tests. The message text picks the attack:
//!
//! | message | behaviour |
//! |---|---|
//! | `loop` | spins forever |
//! | `memory` | allocates until memory runs out |
//! | `recurse` | recurses without end |
//! | `flood` | streams 12.5 MiB, ignoring the limit error |
//! | `big-reply` | returns a 4 MiB reply |
//! | `log-flood` | logs 3 MiB |
//! | `panic` | panics |
//! | `fetch URL` | GETs URL and replies with the status, or fails with the error |
//! | `state [VALUE]` | stores VALUE reversed under `k` (so the stored bytes appear in no message), reads it back and replies `stored` with it reversed again (to see a denial, or sealing at rest) |
//! | `traceparent` | replies with the task's W3C `traceparent` (to see the trace it joined) |
//! | anything else | replies `ok` |

use std::hint::black_box;

use nexus_agent_sdk::{Agent, AgentError, Response, Task, emit, http, log, state};

struct Hostile;

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    black_box(below) + 1
}

impl Agent for Hostile {
    fn handle(task: Task) -> Result<Response, AgentError> {
        let text = task.text();
        match text.split_once(' ').map_or(text.as_str(), |(verb, _)| verb) {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1024 * 1024]));
                }
            }
            "recurse" => Ok(Response::text(recurse(0).to_string())),
            "flood" => {
                // 12.5 MiB, ignoring the limit error: the runtime must still end the task.
                let chunk = "x".repeat(64 * 1024);
                for _ in 0..200 {
                    let _ = emit::partial_text(&chunk);
                }
                Ok(Response::text("flooded"))
            }
            "big-reply" => Ok(Response::text("y".repeat(4 * 1024 * 1024))),
            "log-flood" => {
                // 3 MiB of logs.
                let line = "z".repeat(16 * 1024);
                for _ in 0..200 {
                    log::info(&line);
                }
                Ok(Response::text("logged"))
            }
            "panic" => panic!("the hostile agent panicked on purpose"),
            "fetch" => {
                let url = text.split_once(' ').map_or("", |(_, url)| url);
                match http::get(url) {
                    Ok(response) => Ok(Response::text(format!("status {}", response.status))),
                    Err(e) => Err(AgentError::Failed(e.to_string())),
                }
            }
            "state" => {
                let value = text.split_once(' ').map_or("v", |(_, value)| value);
                let failed = |e: state::StateError| AgentError::Failed(format!("{e:?}"));
                let reversed: String = value.chars().rev().collect();
                state::set_string("k", &reversed).map_err(failed)?;
                let read = state::get_string("k").map_err(failed)?.unwrap_or_default();
                Ok(Response::text(format!(
                    "stored {}",
                    read.chars().rev().collect::<String>()
                )))
            }
            "traceparent" => Ok(Response::text(
                task.metadata("traceparent").unwrap_or("none"),
            )),
            _ => Ok(Response::text("ok")),
        }
    }
}

nexus_agent_sdk::export_agent!(Hostile);
