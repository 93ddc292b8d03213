//! `nexus tasks`, `nexus logs` and `nexus invoke --task` as a new user meets them: the newest
//! tasks first, page by page, with their agent and a short id to type; a task's reply; how to
//! answer an agent that asks for input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use common::*;
use serde_json::Value;

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The rows of a `tasks list` table: (short id, agent, state), after checking its header.
fn rows(table: &str) -> Vec<(String, String, String)> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "AGENT", "STATE", "SESSION", "CREATED"]);
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].into(), cells[1].into(), cells[2].into())
        })
        .collect()
}

#[test]
fn tasks_list_newest_first_by_page_with_short_ids_that_every_verb_takes() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    for example in ["echo", "greeter"] {
        let dir = repo().join("examples").join(example);
        stdout(&server.cli_building(&["deploy", dir.to_str().unwrap()]));
    }
    stdout(&server.cli(&["invoke", "echo", "one"]));
    stdout(&server.cli(&["invoke", "echo", "two"]));

    // An agent that asks for input: the reply, then the exact command that answers it.
    let asked = server.cli(&["invoke", "greeter", "hi"]);
    assert_eq!(stdout(&asked).trim(), "Hello! What is your name?");
    let hint = stderr(&asked);
    let command = hint
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("nexus invoke greeter \"YOUR ANSWER\" --task ")
        })
        .unwrap_or_else(|| panic!("no answer hint in: {hint}"));
    let greeter_id = command.trim().to_owned();
    assert_eq!(greeter_id.len(), 36, "{hint}");

    // Two per page, newest first, with the next page's command on stderr.
    let first = server.cli(&["tasks", "list", "--limit", "2"]);
    let page = rows(&stdout(&first));
    assert_eq!(
        page.iter()
            .map(|(_, agent, state)| (agent.as_str(), state.as_str()))
            .collect::<Vec<_>>(),
        [("greeter", "input_required"), ("echo", "completed")]
    );
    let more = stderr(&first);
    let next: Vec<&str> = more
        .trim()
        .strip_prefix("more: nexus ")
        .unwrap_or_else(|| panic!("no next-page hint in: {more}"))
        .split_whitespace()
        .collect();
    assert!(next.contains(&"--limit"), "{more}");
    let last = server.cli(&next);
    let last_page = rows(&stdout(&last));
    assert_eq!(last_page.len(), 1, "{last_page:?}");
    assert_eq!(last_page[0].1, "echo");
    assert_eq!(stderr(&last), "", "the last page has no next page");

    // The short ids are prefixes of the ids, and unique: each names its own task.
    let listed = stdout_json(&server.cli(&["--json", "tasks", "list"]));
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for item in items {
        let (id, short) = (
            item["id"].as_str().unwrap(),
            item["short_id"].as_str().unwrap(),
        );
        assert!(id.starts_with(short) && short.len() < id.len(), "{item}");
        let task = stdout_json(&server.cli(&["--json", "tasks", "get", short]));
        assert_eq!(task["id"], id);
    }
    assert_eq!(items[0]["id"], greeter_id.as_str());
    let (greeter_short, one_short) = (
        items[0]["short_id"].as_str().unwrap(),
        items[2]["short_id"].as_str().unwrap(),
    );

    // `tasks get` shows the reply and the usage, with units.
    let shown = stdout(&server.cli(&["tasks", "get", one_short]));
    assert!(shown.contains("reply:     echo: one\n"), "{shown}");
    let usage = shown
        .lines()
        .find_map(|line| line.strip_prefix("usage:     wall time "))
        .unwrap_or_else(|| panic!("no usage in: {shown}"));
    assert!(usage.split(',').next().unwrap().ends_with(" ms"), "{shown}");
    let json = stdout_json(&server.cli(&["--json", "tasks", "get", one_short]));
    assert_eq!(json["reply"]["message"][0]["text"], "echo: one");
    assert!(json["usage"]["wall_time_us"].as_u64().is_some(), "{json}");
    assert!(json["usage"].get("wall_time").is_none(), "{json}");

    // Short ids wherever a task id is taken: logs, and the answer to the waiting task.
    let events: Value = stdout_json(&server.cli(&["--json", "logs", one_short]));
    assert_eq!(events[0]["task_id"], items[2]["id"]);
    let answered = server.cli(&["invoke", "greeter", "Ada", "--task", greeter_short]);
    assert!(stdout(&answered).contains("Ada"), "{}", stderr(&answered));
    assert!(
        !stderr(&answered).contains("--task"),
        "{}",
        stderr(&answered)
    );
    let done = stdout_json(&server.cli(&["--json", "tasks", "get", greeter_short]));
    assert_eq!(done["state"], "completed");

    // Bad ids: ambiguous (every id here starts with 0), unknown, malformed; each a clear
    // refusal (exit 4) from every verb that takes an id.
    let cases: [(&[&str], &str); 7] = [
        (&["tasks", "get", "0"], "ambiguous: 3 tasks start with it"),
        (
            &["tasks", "cancel", "0"],
            "ambiguous: 3 tasks start with it",
        ),
        (&["logs", "0"], "ambiguous: 3 tasks start with it"),
        (
            &["invoke", "echo", "x", "--task", "0"],
            "ambiguous: 3 tasks",
        ),
        (&["tasks", "get", "fffff"], "not_found"),
        (&["logs", "fffff"], "not_found"),
        (&["tasks", "get", "not-hex"], "invalid_parameter"),
    ];
    for (args, expected) in cases {
        let output = server.cli(args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    // Nothing was canceled or started by the refused requests.
    assert_eq!(
        stdout_json(&server.cli(&["--json", "tasks", "list"]))["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    server.stop();
}

#[tokio::test]
async fn a_state_filter_names_the_valid_states() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let output = server.cli(&["tasks", "list", "--state", "done"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    let listed = server.cli(&["tasks", "list", "--state", "input_required"]);
    assert_eq!(rows(&stdout(&listed)), []);

    // The REST API names them too.
    let response = server
        .http()
        .get(format!(
            "{}/v1/tenants/default/tasks?state=done",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_parameter");
    let detail = problem["detail"].as_str().unwrap().to_owned();
    for state in [
        "submitted",
        "working",
        "input_required",
        "completed",
        "failed",
        "canceled",
    ] {
        assert!(message.contains(state), "{state} missing: {message}");
        assert!(detail.contains(state), "{state} missing: {detail}");
    }
    server.stop();
}
