//! The everyday verbs a new user reaches for in the first hour, through the `nexus` binary:
//! destructive verbs that confirm, an agent's secrets and state, `--verbose`, what to do when
//! nothing listens, and the server's warnings and start-up on a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        stderr(output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts a refusal: exit `code`, nothing on stdout, and `needle` on stderr.
fn assert_refused(output: &Output, code: i32, needle: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr(output).contains(needle),
        "{needle}: {}",
        stderr(output)
    );
}

/// The actions of the tenant's audit events, oldest first.
fn audit_actions(server: &Server) -> Vec<String> {
    let events = stdout_json(&server.cli(&["--json", "audit", "list", "--limit", "500"]));
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs a client verb on a terminal (a pseudo-terminal of util-linux's `script`) that types
/// `answer`; stdout and stderr both come out on the terminal, that is in `stdout`.
fn on_terminal(server: &Server, args: &[&str], answer: &str) -> Output {
    use std::io::Write;
    let line = [NEXUS, "--server", &server.url]
        .iter()
        .chain(args)
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NEXUS_SERVER")
        .env("NEXUS_API_KEY", API_KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn agents_delete_asks_for_confirmation_and_deletes_nothing_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let echo = repo().join("examples/echo");
    stdout(&server.cli_building(&["deploy", echo.to_str().unwrap()]));

    // No terminal to ask on (stdin is not one here), and no --yes: refused, nothing deleted.
    let unconfirmed = server.cli(&["agents", "delete", "echo"]);
    assert_refused(&unconfirmed, 2, "--yes");
    stdout(&server.cli(&["agents", "get", "echo"]));
    // A "yes" piped in is not a terminal's answer either.
    let piped = server.cli_logged_in_as_admin(&["agents", "delete", "echo"], "y\n");
    assert_refused(&piped, 2, "--yes");
    stdout(&server.cli(&["agents", "get", "echo"]));

    // On a terminal it asks; anything but yes keeps the agent.
    for answer in ["n\n", "\n", "whatever\n"] {
        let declined = on_terminal(&server, &["agents", "delete", "echo"], answer);
        let text = String::from_utf8_lossy(&declined.stdout).into_owned();
        assert_eq!(declined.status.code(), Some(2), "{answer:?}: {text}");
        assert!(text.contains("Continue? [y/N]"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        stdout(&server.cli(&["agents", "get", "echo"]));
    }
    let confirmed = on_terminal(&server, &["agents", "delete", "echo"], "y\n");
    let text = String::from_utf8_lossy(&confirmed.stdout).into_owned();
    assert!(confirmed.status.success(), "{text}");
    assert!(text.contains("deleted default/echo"), "{text}");
    assert_refused(&server.cli(&["agents", "get", "echo"]), 4, "not_found");

    // --yes goes ahead without asking.
    stdout(&server.cli_building(&["deploy", echo.to_str().unwrap()]));
    let deleted = server.cli(&["agents", "delete", "echo", "--yes"]);
    assert!(
        stderr(&deleted).contains("deleted default/echo"),
        "{}",
        stderr(&deleted)
    );
    let gone = server.cli(&["agents", "get", "echo"]);
    assert_refused(&gone, 4, "not_found");
    assert_refused(
        &server.cli(&["agents", "delete", "echo", "--yes"]),
        4,
        "not_found",
    );
    server.stop();
}

#[test]
fn secrets_are_listed_by_name_and_deleted_with_authorization_and_audit() {
    const VALUE: &str = "sk-live-NEVER-SHOWN";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let echo = repo().join("examples/echo");
    let secret = format!("api-key={VALUE}");
    stdout(&server.cli_building(&[
        "deploy",
        echo.to_str().unwrap(),
        "--secret",
        &secret,
        "--secret",
        "token=t0k",
    ]));

    let listed = stdout_json(&server.cli(&["--json", "secrets", "list", "echo"]));
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-key", "token"]);
    assert!(listed["items"][0]["updated_at"].is_string(), "{listed}");
    let table = stdout(&server.cli(&["secrets", "list", "echo"]));
    assert!(
        table.contains("api-key") && table.contains("UPDATED"),
        "{table}"
    );
    assert!(!listed.to_string().contains(VALUE) && !table.contains(VALUE));

    // A viewer sees the names but may not delete; nobody deletes without confirming.
    let viewer = stdout(&server.cli(&["keys", "create", "look", "--role", "viewer"]));
    let viewer = viewer.trim();
    stdout(&server.cli(&["--api-key", viewer, "secrets", "list", "echo"]));
    assert_refused(
        &server.cli(&[
            "--api-key",
            viewer,
            "secrets",
            "delete",
            "echo",
            "token",
            "--yes",
        ]),
        4,
        "forbidden",
    );
    assert_refused(
        &server.cli(&["secrets", "delete", "echo", "token"]),
        2,
        "--yes",
    );
    for (args, code) in [
        (
            &["secrets", "delete", "echo", "nope", "--yes"][..],
            "not_found",
        ),
        (
            &["secrets", "delete", "ghost", "token", "--yes"],
            "not_found",
        ),
        (
            &["secrets", "delete", "echo", "bad name", "--yes"],
            "invalid",
        ),
        (&["secrets", "list", "ghost"], "not_found"),
    ] {
        assert_refused(&server.cli(args), 4, code);
    }

    let deleted = server.cli(&["secrets", "delete", "echo", "token", "--yes"]);
    assert!(
        stderr(&deleted).contains("deleted secret token"),
        "{}",
        stderr(&deleted)
    );
    let listed = stdout_json(&server.cli(&["--json", "secrets", "list", "echo"]));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "api-key");
    // Tasks run without it.
    assert_eq!(
        stdout(&server.cli(&["invoke", "echo", "hi"])).trim(),
        "echo: hi"
    );

    let actions = audit_actions(&server);
    assert_eq!(
        actions.iter().filter(|a| *a == "secret.delete").count(),
        1,
        "only the deletion that happened is audited: {actions:?}"
    );
    server.stop();
}

#[test]
fn state_is_listed_read_and_cleared_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let counter = repo().join("examples/counter");
    stdout(&server.cli_building(&["deploy", counter.to_str().unwrap(), "--grant", "state"]));
    for session in ["s1", "s1", "s2"] {
        stdout(&server.cli(&["invoke", "counter", "tick", "--session", session]));
    }

    let listed = stdout_json(&server.cli(&["--json", "state", "list", "counter"]));
    assert_eq!(
        listed,
        serde_json::json!({"items": [
            {"session": "s1", "key": "count"},
            {"session": "s2", "key": "count"},
        ], "more": false})
    );
    let one = stdout_json(&server.cli(&["--json", "state", "list", "counter", "--session", "s2"]));
    assert_eq!(one["items"].as_array().unwrap().len(), 1, "{one}");
    let capped = stdout_json(&server.cli(&["--json", "state", "list", "counter", "--limit", "1"]));
    assert_eq!(capped["more"], true, "{capped}");

    // Values come out opened (they are sealed at rest), as the bytes the agent stored.
    let value = server.cli(&["state", "get", "counter", "count", "--session", "s1"]);
    assert_eq!(stdout(&value), "2");
    let json = stdout_json(&server.cli(&[
        "--json",
        "state",
        "get",
        "counter",
        "count",
        "--session",
        "s2",
    ]));
    assert_eq!(
        json,
        serde_json::json!({"session": "s2", "key": "count", "encoding": "utf8", "value": "1"})
    );

    // Bad paths: an unknown key, session or agent; a viewer; no confirmation.
    for args in [
        &["state", "get", "counter", "nope", "--session", "s1"][..],
        &["state", "get", "counter", "count", "--session", "s9"],
        &["state", "list", "ghost"],
        &["state", "clear", "ghost", "--yes"],
    ] {
        assert_refused(&server.cli(args), 4, "not_found");
    }
    let viewer = stdout(&server.cli(&["keys", "create", "look", "--role", "viewer"]));
    let viewer = viewer.trim();
    for args in [
        &["state", "get", "counter", "count", "--session", "s1"][..],
        &["state", "clear", "counter", "--yes"],
    ] {
        let as_viewer: Vec<&str> = ["--api-key", viewer].iter().chain(args).copied().collect();
        assert_refused(&server.cli(&as_viewer), 4, "forbidden");
    }
    assert_refused(
        &server.cli(&["state", "clear", "counter", "--session", "s1"]),
        2,
        "--yes",
    );
    assert_eq!(
        stdout_json(&server.cli(&["--json", "state", "list", "counter"]))["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing was cleared without confirmation"
    );

    // One session, then the rest; the agent starts over.
    let cleared = stdout_json(&server.cli(&[
        "--json",
        "state",
        "clear",
        "counter",
        "--session",
        "s1",
        "--yes",
    ]));
    assert_eq!(cleared["deleted"], 1);
    let left = stdout_json(&server.cli(&["--json", "state", "list", "counter"]));
    assert_eq!(left["items"][0]["session"], "s2", "{left}");
    assert_eq!(left["items"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(
        stdout(&server.cli(&["invoke", "counter", "tick", "--session", "s1"])).trim(),
        "count: 1"
    );
    let all = server.cli(&["state", "clear", "counter", "--yes"]);
    assert!(
        stderr(&all).contains("deleted 2 state values"),
        "{}",
        stderr(&all)
    );
    let empty = stdout_json(&server.cli(&["--json", "state", "list", "counter"]));
    assert_eq!(empty["items"], serde_json::json!([]));

    let actions = audit_actions(&server);
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(
        (count("state.read"), count("state.clear")),
        (2, 2),
        "{actions:?}"
    );
    server.stop();
}

#[test]
fn verbose_prints_each_request_and_problems_but_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let ok = server.cli(&["--verbose", "tenants", "get", "default"]);
    let log = stderr(&ok);
    assert!(ok.status.success(), "{log}");
    let expected = format!("GET {}/v1/tenants/default -> 200 OK (", server.url);
    assert!(log.contains(&expected), "{log}");
    assert!(log.contains(" ms)"), "{log}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("name:"),
        "data stays on stdout"
    );

    let refused = server.cli(&["-v", "tenants", "get", "nobody"]);
    assert_refused(&refused, 4, "-> 404 Not Found");
    let log = stderr(&refused);
    assert!(
        log.contains(r#""code":"not_found""#),
        "the problem body: {log}"
    );

    let quiet = server.cli(&["tenants", "get", "nobody"]);
    assert!(!stderr(&quiet).contains("GET "), "{}", stderr(&quiet));
    for output in [&ok, &refused] {
        assert!(!stderr(output).contains(API_KEY), "{}", stderr(output));
    }
    server.stop();
}

#[test]
fn an_unreachable_server_says_what_to_do() {
    // Port 9 (discard) has no listener here: the connection is refused.
    let output = Command::new(NEXUS)
        .args(["--server", "http://127.0.0.1:9", "agents", "list"])
        .env_remove("NEXUS_SERVER")
        .output()
        .unwrap();
    assert_refused(&output, 3, "cannot reach the server at http://127.0.0.1:9/");
    let message = stderr(&output);
    for hint in [
        "nexus server",
        "scripts/quickstart",
        "--server",
        "NEXUS_SERVER",
    ] {
        assert!(message.contains(hint), "{hint}: {message}");
    }
}

#[test]
fn the_server_warns_before_listening_where_other_machines_reach_it() {
    for (listen, warned) in [("127.0.0.1:0", false), ("0.0.0.0:0", true)] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_on(dir.path(), listen, &[]);
        let warning = server
            .start_log
            .iter()
            .find(|line| line.contains("non-loopback"));
        assert_eq!(
            warning.is_some(),
            warned,
            "{listen}: {:?}",
            server.start_log
        );
        if let Some(warning) = warning {
            let entry: Value = serde_json::from_str(warning).unwrap();
            assert_eq!(entry["level"], "WARN", "{warning}");
            assert!(
                warning.contains("TLS") && warning.contains("API key"),
                "{warning}"
            );
        }
        // It serves as usual (and kept running after its start-up log was read).
        stdout_json(&server.cli(&["--json", "tenants", "get", "default"]));
        server.stop();
    }
}

/// The README's PostgreSQL line works on a server where its database does not exist yet:
/// the server creates it, says so once, and uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_postgres_line_creates_its_database() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|line| line.starts_with("nexus server --database-url postgres://"))
        .expect("the README's PostgreSQL line");
    let url = line.split_whitespace().nth(3).unwrap();
    let (server_part, database) = url.rsplit_once('/').unwrap();
    assert!(!database.is_empty(), "{url}");
    // The README's database, under a name of its own (tests share the PostgreSQL server), on
    // the test's PostgreSQL server.
    let test_server = postgres_url().rsplit_once('/').unwrap().0.to_owned();
    assert!(server_part.starts_with("postgres://"), "{url}");
    let name = format!(
        "{database}_{}",
        nexus_core::TaskId::new().to_string().replace('-', "")
    );
    let url = format!("{test_server}/{name}");

    let dir = tempfile::tempdir().unwrap();
    let run = {
        let url = url.clone();
        move || {
            let server = Server::start(dir.path(), &["--database-url", &url]);
            let created = server
                .start_log
                .iter()
                .filter(|line| line.contains("created the PostgreSQL database"))
                .count();
            stdout_json(&server.cli(&["--json", "tenants", "get", "default"]));
            server.stop();
            let again = Server::start(dir.path(), &["--database-url", &url]);
            let created_again = again
                .start_log
                .iter()
                .any(|line| line.contains("created the PostgreSQL database"));
            again.stop();
            (created, created_again)
        }
    };
    let outcome = tokio::task::spawn_blocking(run).await;
    nexus_store_postgres::PgStore::drop_database(&postgres_url(), &name)
        .await
        .unwrap();
    let (created, created_again) = outcome.unwrap();
    assert_eq!(created, 1, "one line says the database was created");
    assert!(!created_again, "the second start finds it");
}

/// The `curl` examples of docs/a2a.md, run as written (the server's address and key put in)
/// against a server with the quickstart's `echo` agent.
#[test]
fn the_a2a_curl_examples_work_as_written() {
    let doc = std::fs::read_to_string(repo().join("docs/a2a.md")).unwrap();
    let section = doc
        .split("## Trying it with curl")
        .nth(1)
        .expect("docs/a2a.md has a curl section")
        .split("\n## ")
        .next()
        .unwrap();
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 3, "send, get, stream: {blocks:?}");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let echo = repo().join("examples/echo");
    stdout(&server.cli_building(&["deploy", echo.to_str().unwrap()]));
    let run = |block: &str, task_id: &str| {
        let script = block.replace("http://127.0.0.1:7700", &server.url);
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("NEXUS_API_KEY", API_KEY)
            .env("TASK_ID", task_id)
            .output()
            .unwrap();
        stdout(&output)
    };

    let sent: Value = serde_json::from_str(&run(blocks[0], "")).unwrap();
    let task = &sent["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
    assert!(sent.to_string().contains("echo: hello"), "{sent}");
    let id = task["id"].as_str().unwrap();

    let got: Value = serde_json::from_str(&run(blocks[1], id)).unwrap();
    assert_eq!(got["result"]["id"], id, "{got}");
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");

    let stream = run(blocks[2], "");
    let events: Vec<Value> = stream
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect();
    assert!(events.len() >= 2, "the task, then its updates: {stream}");
    let last = events.last().unwrap().to_string();
    assert!(
        last.contains("TASK_STATE_COMPLETED") && last.contains("echo: streamed"),
        "{stream}"
    );
    server.stop();
}
