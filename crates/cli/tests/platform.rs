//! The platform end to end, through the `nexus` binary: build and deploy agents, invoke them
//! as durable tasks, roll back, and survive restarts and crashes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn code_and_stderr(output: &std::process::Output) -> (Option<i32>, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn text(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{:?}", code_and_stderr(output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn deploy_invoke_rollback_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let echo = repo().join("examples/echo");
    let counter = repo().join("examples/counter");
    let (echo, counter) = (echo.to_str().unwrap(), counter.to_str().unwrap());

    text(&server.cli_building(&["deploy", echo]));
    assert_eq!(
        text(&server.cli(&["invoke", "echo", "hello platform"])),
        "echo: hello platform"
    );

    // Grants: what the manifest declares, and nothing more.
    text(&server.cli_building(&["deploy", counter, "--grant", "state"]));
    for (args, expected) in [
        (&["deploy", counter, "--grant", "llm"][..], "grant_refused"),
        (
            &[
                "deploy",
                counter,
                "--grant",
                "state",
                "--allow-host",
                "https://evil.example",
            ],
            "grant_refused",
        ),
        (&["deploy", counter, "--grant", "teleport"], "grant_refused"),
    ] {
        let (code, stderr) = code_and_stderr(&server.cli_building(args));
        assert_eq!(code, Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(
        text(&server.cli(&["invoke", "counter", "tick", "--session", "s"])),
        "count: 1"
    );
    assert_eq!(
        text(&server.cli(&["invoke", "counter", "tick", "--session", "s"])),
        "count: 2"
    );

    // A second deploy is revision 2; rollback returns to 1.
    text(&server.cli_building(&["deploy", echo]));
    let agent = stdout_json(&server.cli(&["--json", "agents", "get", "echo"]));
    assert_eq!(agent["agent"]["current_revision"], 2);
    text(&server.cli(&["rollback", "echo"]));
    let agent = stdout_json(&server.cli(&["--json", "agents", "get", "echo"]));
    assert_eq!(agent["agent"]["current_revision"], 1);
    let (code, _) = code_and_stderr(&server.cli(&["rollback", "echo", "--to", "9"]));
    assert_eq!(code, Some(4));

    // Every invocation is a durable task with its event log.
    let tasks = stdout_json(&server.cli(&["--json", "tasks", "list", "--agent", "counter"]));
    // Newest first: the last tick.
    let last = tasks["items"].as_array().unwrap().first().unwrap().clone();
    assert_eq!(last["state"], "completed");
    let task_id = last["id"].as_str().unwrap().to_owned();
    let events: Value = stdout_json(&server.cli(&["--json", "logs", &task_id]));
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["status", "message", "status", "message", "usage", "status"]
    );
    server.stop();

    // After a restart: the tasks, their logs, the agents and their state are all there.
    let server = Server::start(data.path(), &[]);
    let task = stdout_json(&server.cli(&["--json", "tasks", "get", &task_id]));
    assert_eq!(task["state"], "completed");
    assert_eq!(
        stdout_json(&server.cli(&["--json", "logs", &task_id])),
        events
    );
    assert_eq!(
        text(&server.cli(&["invoke", "counter", "tick", "--session", "s"])),
        "count: 3"
    );

    text(&server.cli(&["agents", "delete", "echo", "--yes"]));
    let (code, stderr) = code_and_stderr(&server.cli(&["invoke", "echo", "anyone?"]));
    assert_eq!(code, Some(4), "{stderr}");
    server.stop();
}

#[test]
fn invoke_streams_and_logs_follow() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let streamer = repo().join("examples/streamer");
    text(&server.cli_building(&["deploy", streamer.to_str().unwrap()]));

    // Partial text on stdout as it comes, progress and the outcome on stderr.
    let streamed = server.cli(&["invoke", "--stream", "streamer", "one two three"]);
    let (code, stderr) = code_and_stderr(&streamed);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&streamed.stdout),
        "one two three \n"
    );
    assert!(stderr.contains("… thinking"), "{stderr}");
    assert!(stderr.contains("completed"), "{stderr}");

    // With --json: the task first, then one event per line, ending with the final status.
    let lines: Vec<Value> = String::from_utf8_lossy(
        &server
            .cli(&["--json", "invoke", "--stream", "streamer", "x"])
            .stdout,
    )
    .lines()
    .map(|line| serde_json::from_str(line).unwrap())
    .collect();
    assert_eq!(lines[0]["state"], "working");
    let task_id = lines[0]["id"].as_str().unwrap().to_owned();
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["kind"], &last["payload"]["state"]),
        (&"status".into(), &"completed".into())
    );

    // Following an ended task prints its whole log and returns.
    let followed = server.cli(&["--json", "logs", "-f", &task_id]);
    let followed: Vec<Value> = String::from_utf8_lossy(&followed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // The stream began once the task was working (after event 3); the log has it all.
    assert_eq!(followed[0]["seq"], 1);
    assert_eq!(followed[3..].to_vec(), lines[1..].to_vec());
    let (code, stderr) = code_and_stderr(&server.cli(&["logs", "-f", "not-a-task"]));
    assert_eq!(code, Some(4), "{stderr}");
    server.stop();
}

/// The exit code `docs/cli.md` gives a task that did not complete, checked against every other
/// place the document states it.
fn documented_task_exit_code() -> i32 {
    let docs = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let table = &docs[docs
        .find("## Exit codes")
        .expect("docs/cli.md has no exit code table")..];
    let code: i32 = table
        .lines()
        .find(|line| line.contains("task did not complete"))
        .and_then(|line| line.trim_start_matches('|').split('|').next())
        .expect("the exit code table has no row for a task that did not complete")
        .trim()
        .parse()
        .unwrap();
    for verb in ["| `nexus invoke ", "| `nexus run "] {
        let row = docs.lines().find(|line| line.starts_with(verb)).unwrap();
        assert!(
            row.contains(&format!("Exit {code} when the task fails")),
            "{row}"
        );
    }
    code
}

/// One rule for every output mode: a task that ends failed or rejected exits with the documented
/// code after its output (the JSON still on stdout), and a completed one exits 0.
#[test]
fn a_task_that_does_not_complete_exits_non_zero_in_every_output_mode() {
    let task_failed = documented_task_exit_code();
    assert_eq!(task_failed, 6);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let echo = repo().join("examples/echo");
    let delegate = repo().join("examples/delegate");
    text(&server.cli_building(&["deploy", echo.to_str().unwrap()]));
    // Delegating to an agent that does not exist fails the task (the agent's own error).
    text(&server.cli_building(&[
        "deploy",
        delegate.to_str().unwrap(),
        "--grant",
        "agents",
        "--config",
        "target=nobody-here",
    ]));

    // (agent, input, the state the task ends in, the exit code)
    let cases = [
        ("echo", "hello", "completed", 0),
        ("echo", "   ", "rejected", task_failed),
        ("delegate", "hello", "failed", task_failed),
    ];
    let modes: [&[&str]; 4] = [&[], &["--json"], &["--stream"], &["--json", "--stream"]];
    for (agent, input, state, expected) in cases {
        for mode in modes {
            let mut args: Vec<&str> = Vec::new();
            if mode.contains(&"--json") {
                args.push("--json");
            }
            args.push("invoke");
            if mode.contains(&"--stream") {
                args.push("--stream");
            }
            args.extend([agent, input]);
            let output = server.cli(&args);
            let (code, stderr) = code_and_stderr(&output);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(code, Some(expected), "{args:?}: {stderr}");
            // The output comes first whatever the outcome: the state is in it.
            let ended_in = match mode {
                [] | ["--stream"] => {
                    assert!(stderr.contains(state), "{args:?}: {stderr}");
                    state.to_owned()
                }
                ["--json"] => {
                    let invocation: Value = serde_json::from_str(&stdout).unwrap();
                    invocation["task"]["state"].as_str().unwrap().to_owned()
                }
                _ => {
                    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
                    assert_eq!(last["kind"], "status", "{args:?}: {stdout}");
                    last["payload"]["state"].as_str().unwrap().to_owned()
                }
            };
            assert_eq!(ended_in, state, "{args:?}: {stdout}");
        }
    }
    server.stop();
}

/// The hostile test guest, packed with a manifest, as a `.ncpkg` file.
fn hostile_package(dir: &std::path::Path) -> std::path::PathBuf {
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
        .current_dir(repo().join("tests/guests"))
        .env("CARGO_TARGET_DIR", repo().join("target/wasm"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(status.success());
    let wasm =
        std::fs::read(repo().join("target/wasm/wasm32-wasip2/release/hostile.wasm")).unwrap();
    let manifest = r#"
        [agent]
        name = "hostile"
        namespace = "tests"
        version = "0.1.0"
        description = "Misbehaves on request."
        [[skills]]
        id = "misbehave"
        name = "Misbehave"
        description = "Loops, floods or panics."
    "#;
    let package = nexus_package::pack(manifest, &wasm, None).unwrap();
    let path = dir.join("hostile.ncpkg");
    std::fs::write(&path, &package.bytes).unwrap();
    path
}

#[test]
fn a_task_running_at_a_crash_ends_failed_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let package = hostile_package(data.path());
    let server = Server::start(data.path(), &[]);
    text(&server.cli(&["deploy", package.to_str().unwrap()]));

    // A task that spins until its 60 s deadline, invoked in the background.
    let mut spinning = Command::new(NEXUS)
        .args(["--server", &server.url, "invoke", "hostile", "loop"])
        .env("NEXUS_API_KEY", API_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the server reports it working (a condition, polled; bounded).
    let mut working = None;
    for _ in 0..200 {
        let tasks = stdout_json(&server.cli(&["--json", "tasks", "list", "--state", "working"]));
        if let Some(task) = tasks["items"].as_array().and_then(|items| items.first()) {
            working = Some(task["id"].as_str().unwrap().to_owned());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let task_id = working.expect("the task started");
    server.crash();
    let _ = spinning.wait();

    let server = Server::start(data.path(), &[]);
    let task = stdout_json(&server.cli(&["--json", "tasks", "get", &task_id]));
    assert_eq!(task["state"], "failed");
    assert!(
        task["status_message"]
            .as_str()
            .unwrap()
            .contains("server stopped"),
        "{task}"
    );
    // The node still serves the same agent.
    assert_eq!(text(&server.cli(&["invoke", "hostile", "hi"])), "ok");
    server.stop();
}

#[test]
fn build_writes_a_package_and_reports_manifest_errors_with_their_line() {
    let out = tempfile::tempdir().unwrap();
    let package = out.path().join("echo.ncpkg");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    text(&server.cli_building(&[
        "build",
        repo().join("examples/echo").to_str().unwrap(),
        "-o",
        package.to_str().unwrap(),
    ]));
    let unpacked = nexus_package::unpack(&std::fs::read(&package).unwrap()).unwrap();
    assert_eq!(unpacked.package_ref().to_string(), "examples/echo@0.1.0");
    assert!(unpacked.readme.is_some());

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("nexus.toml"),
        "[agent]\nname = \"echo\"\nnamespace = \"Bad Namespace\"\nversion = \"0.1.0\"\ndescription = \"d\"\n",
    )
    .unwrap();
    let (code, stderr) = code_and_stderr(&server.cli(&["build", broken.path().to_str().unwrap()]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("nexus.toml:3") && stderr.contains("agent.namespace"),
        "{stderr}"
    );
    server.stop();
}

/// Every A2A error code the platform produces, through raw JSON-RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_errors_have_their_spec_codes() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    text(&server.cli_building(&["deploy", repo().join("examples/echo").to_str().unwrap()]));
    let url = format!("{}/a2a/default/echo", server.url);
    let http = server.http();
    let call = |version: Option<&'static str>, body: String| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(version) = version {
            request = request.header("A2A-Version", version);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let message = |parts: Value| {
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": parts}}})
        .to_string()
    };
    let done = call(Some("1.0"), message(serde_json::json!([{"text": "hi"}]))).await;
    let task_id = done["result"]["task"]["id"].as_str().unwrap().to_owned();
    let rpc = |method: &str, params: Value| {
        serde_json::json!({"jsonrpc": "2.0", "id": "x", "method": method, "params": params})
            .to_string()
    };
    let cases: Vec<(Option<&'static str>, String, i64)> = vec![
        (Some("1.0"), "{not json".into(), -32700),
        (
            Some("1.0"),
            r#"{"jsonrpc": "1.0", "id": 1, "method": "GetTask"}"#.into(),
            -32600,
        ),
        (
            Some("1.0"),
            r#"{"jsonrpc": "2.0", "id": {"no": 1}, "method": "GetTask"}"#.into(),
            -32600,
        ),
        (Some("1.0"), rpc("DoSomething", Value::Null), -32601),
        (None, rpc("SendMessage", Value::Null), -32601),
        (
            Some("1.0"),
            rpc("SendMessage", serde_json::json!({})),
            -32602,
        ),
        (Some("1.0"), message(serde_json::json!([])), -32602),
        (
            Some("1.0"),
            rpc(
                "GetTask",
                serde_json::json!({"id": nexus_core::TaskId::new().to_string()}),
            ),
            -32001,
        ),
        (
            Some("1.0"),
            rpc("GetTask", serde_json::json!({"id": "../../etc"})),
            -32001,
        ),
        (
            Some("1.0"),
            rpc("CancelTask", serde_json::json!({"id": task_id})),
            -32002,
        ),
        // Push notification configs: bad params, unknown tasks and configs, and webhooks on
        // addresses the server must not reach (private addresses are not allowed by default).
        (
            Some("1.0"),
            rpc("CreateTaskPushNotificationConfig", serde_json::json!({})),
            -32602,
        ),
        (
            Some("1.0"),
            rpc(
                "CreateTaskPushNotificationConfig",
                serde_json::json!({"taskId": task_id, "url": "ftp://example.com/hook"}),
            ),
            -32602,
        ),
        (
            Some("1.0"),
            rpc(
                "CreateTaskPushNotificationConfig",
                serde_json::json!({"taskId": task_id, "url": "http://169.254.169.254/latest"}),
            ),
            -32602,
        ),
        (
            Some("1.0"),
            rpc(
                "CreateTaskPushNotificationConfig",
                serde_json::json!({"taskId": nexus_core::TaskId::new().to_string(),
                    "url": "https://example.com/hook"}),
            ),
            -32001,
        ),
        (
            Some("1.0"),
            rpc(
                "GetTaskPushNotificationConfig",
                serde_json::json!({"taskId": task_id, "id": "nope"}),
            ),
            -32001,
        ),
        (
            Some("1.0"),
            rpc(
                "ListTaskPushNotificationConfigs",
                serde_json::json!({"taskId": "x"}),
            ),
            -32001,
        ),
        (
            Some("1.0"),
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                "params": {"message": {"messageId": "m2", "role": "ROLE_USER",
                    "parts": [{"text": "hi"}]},
                    "configuration": {"taskPushNotificationConfig":
                        {"url": "http://127.0.0.1:9/hook"}}}})
            .to_string(),
            -32602,
        ),
        (
            None,
            rpc("tasks/pushNotificationConfig/set", serde_json::json!({})),
            -32602,
        ),
        (
            None,
            rpc(
                "tasks/pushNotificationConfig/set",
                serde_json::json!({"taskId": task_id, "pushNotificationConfig": {}}),
            ),
            -32602,
        ),
        (
            None,
            rpc(
                "tasks/pushNotificationConfig/get",
                serde_json::json!({"id": nexus_core::TaskId::new().to_string()}),
            ),
            -32001,
        ),
        (
            None,
            rpc(
                "tasks/pushNotificationConfig/delete",
                serde_json::json!({"id": task_id}),
            ),
            -32602,
        ),
        // Streaming methods refuse bad requests with a plain JSON-RPC error, before any SSE.
        (
            Some("1.0"),
            rpc("SendStreamingMessage", serde_json::json!({})),
            -32602,
        ),
        (None, rpc("message/stream", serde_json::json!({})), -32602),
        (
            Some("1.0"),
            rpc("SubscribeToTask", serde_json::json!({"id": task_id})),
            -32004,
        ),
        (
            None,
            rpc(
                "tasks/resubscribe",
                serde_json::json!({"id": nexus_core::TaskId::new().to_string()}),
            ),
            -32001,
        ),
        (
            Some("1.0"),
            message(serde_json::json!([{"url": "https://example.com/f.pdf"}])),
            -32005,
        ),
        (
            Some("1.0"),
            rpc("GetExtendedAgentCard", serde_json::json!({})),
            -32007,
        ),
        (Some("9.9"), rpc("GetTask", serde_json::json!({})), -32009),
    ];
    for (version, body, code) in cases {
        let reply = call(version, body.clone()).await;
        assert_eq!(reply["error"]["code"], code, "{body}: {reply}");
        assert_eq!(reply["jsonrpc"], "2.0");
    }
    // An unknown agent is an HTTP 404 problem, not a JSON-RPC answer.
    let missing = http
        .post(format!("{}/a2a/default/nobody", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop();
}

#[test]
fn deploy_secrets_are_encrypted_at_rest_and_shown_by_name() {
    const VALUE: &str = "sk-live-DO-NOT-LEAK";
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    // The first start created the master key, readable by its owner only.
    let key_file = data.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let echo = repo().join("examples/echo");
    let echo = echo.to_str().unwrap();

    let secret = format!("api-key={VALUE}");
    let deployed = stdout_json(&server.cli_building(&[
        "--json",
        "deploy",
        echo,
        "--secret",
        &secret,
        "--secret",
        "token=t0k",
    ]));
    assert_eq!(
        deployed["revision"]["secret_names"],
        serde_json::json!(["api-key", "token"])
    );
    assert!(!deployed.to_string().contains(VALUE), "{deployed}");

    // An empty secret is refused before anything is sent.
    let (code, stderr) = code_and_stderr(&server.cli(&["deploy", echo, "--secret", "token="]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`token` is empty"), "{stderr}");

    // A redeploy without --secret keeps them; `agents get` names them.
    text(&server.cli_building(&["deploy", echo]));
    let shown = text(&server.cli(&["agents", "get", "echo"]));
    assert!(shown.contains("secrets:  api-key, token"), "{shown}");
    assert!(shown.contains("revision 2"), "{shown}");
    assert!(!shown.contains(VALUE));
    // Tasks open the secrets and run as before.
    assert_eq!(text(&server.cli(&["invoke", "echo", "hi"])), "echo: hi");
    server.stop();

    // No database file holds the value.
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
                "{} holds a secret value",
                path.display()
            );
        }
    }

    // A key file that others can read stops the server at start, saying what to do.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = Command::new(NEXUS)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .output()
            .unwrap();
        let (code, stderr) = code_and_stderr(&output);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }
}

/// A `traceparent` header on a request joins the tasks it starts to the caller's trace, on
/// every API that starts tasks; a malformed one is ignored (the task starts a trace of its own).
#[tokio::test]
async fn tasks_join_the_trace_of_the_request_that_starts_them() {
    let data = tempfile::tempdir().unwrap();
    let package = hostile_package(data.path());
    let server = Server::start(data.path(), &[]);
    text(&server.cli(&["deploy", package.to_str().unwrap()]));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let http = server.http();
    let a2a = format!("{}/a2a/default/hostile", server.url);
    let send_1_0 = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
        "params": {"message": {"messageId": "m", "role": "ROLE_USER",
            "parts": [{"text": "traceparent"}]}}});
    let send_0_3 = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "message/send",
        "params": {"message": {"messageId": "m", "role": "user", "kind": "message",
            "parts": [{"kind": "text", "text": "traceparent"}]}}});
    let rest_send = serde_json::json!({"message": {"messageId": "m", "role": "ROLE_USER",
        "parts": [{"text": "traceparent"}]}});
    let mcp_call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "hostile", "arguments": {"message": "traceparent"}}});
    struct Case {
        what: &'static str,
        url: String,
        headers: Vec<(&'static str, &'static str)>,
        body: Value,
        /// Where the reply's text is.
        at: &'static [&'static str],
    }
    let case = |what, url, headers, body, at| Case {
        what,
        url,
        headers,
        body,
        at,
    };
    let cases = [
        case(
            "/v1 invoke",
            format!("{}/v1/tenants/default/agents/hostile/tasks", server.url),
            vec![],
            serde_json::json!({"text": "traceparent"}),
            &["result", "reply", "message", "0", "text"],
        ),
        case(
            "A2A 1.0 JSON-RPC",
            a2a.clone(),
            vec![("a2a-version", "1.0")],
            send_1_0,
            &["result", "task", "status", "message", "parts", "0", "text"],
        ),
        case(
            "A2A 0.3 JSON-RPC",
            a2a.clone(),
            vec![],
            send_0_3,
            &["result", "status", "message", "parts", "0", "text"],
        ),
        case(
            "A2A HTTP+JSON",
            format!("{a2a}/message:send"),
            vec![("a2a-version", "1.0")],
            rest_send,
            &["task", "status", "message", "parts", "0", "text"],
        ),
        case(
            "MCP",
            format!("{}/mcp/default", server.url),
            vec![
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            mcp_call,
            &["result", "content", "0", "text"],
        ),
    ];
    for Case {
        what,
        url,
        headers,
        body,
        at,
    } in cases
    {
        let reply = |traceparent: String| {
            let mut request = http
                .post(&url)
                .header("content-type", "application/json")
                .header("traceparent", traceparent)
                .body(body.to_string());
            for (name, value) in &headers {
                request = request.header(*name, *value);
            }
            async move {
                let response = request.send().await.unwrap();
                assert!(
                    response.status().is_success(),
                    "{what}: {}",
                    response.status()
                );
                let mut value: Value = response.json().await.unwrap();
                for key in at {
                    value = match key.parse::<usize>() {
                        Ok(index) => value[index].take(),
                        Err(_) => value[*key].take(),
                    };
                }
                value.as_str().unwrap_or_default().to_owned()
            }
        };
        let joined = reply(traceparent.clone()).await;
        assert!(
            joined.starts_with(&format!("00-{trace}-")),
            "{what}: {joined}"
        );
        let own = reply("00-not-a-trace".into()).await;
        assert!(
            own.starts_with("00-") && !own.contains(trace),
            "{what}: {own}"
        );
    }
    server.stop();
}
