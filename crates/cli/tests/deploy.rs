//! Deploying through the `nexus` binary as a new user meets it (issue 14): redeploying edited
//! code under the same version, grants that follow the manifest once confirmed, config that
//! carries over, and rollback errors that name the agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

fn code_and_stderr(output: &Output) -> (Option<i32>, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// stdout of a command that must succeed.
fn text(output: &Output) -> String {
    assert!(output.status.success(), "{:?}", code_and_stderr(output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Builds the example `name` into `dir/<name>.ncpkg`; returns its path and digest.
fn build(server: &Server, dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.ncpkg"));
    let example = repo().join("examples").join(name);
    let built = stdout_json(&server.cli_building(&[
        "--json",
        "build",
        example.to_str().unwrap(),
        "-o",
        path.to_str().unwrap(),
    ]));
    (path, built["digest"].as_str().unwrap().to_owned())
}

/// The example `code`'s component packed under the example `manifest`'s `nexus.toml`: an
/// edited build of that agent at the same version.
fn repack(dir: &Path, code: &Path, manifest: &str) -> (PathBuf, String) {
    let built = nexus_package::unpack(&std::fs::read(code).unwrap()).unwrap();
    let text =
        std::fs::read_to_string(repo().join("examples").join(manifest).join("nexus.toml")).unwrap();
    let package = nexus_package::pack(&text, &built.wasm, None).unwrap();
    let path = dir.join(format!("{manifest}-edited.ncpkg"));
    std::fs::write(&path, &package.bytes).unwrap();
    (path, package.digest.to_string())
}

/// The first 12 hex digits of a digest, as `nexus agents get` shows them.
fn short(digest: &str) -> &str {
    &digest[..19]
}

#[test]
fn an_edited_build_of_the_same_version_is_a_new_revision_and_rollback_names_revisions() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (echo, echo_digest) = build(&server, data.path(), "echo");
    let (streamer, _) = build(&server, data.path(), "streamer");
    // Other code under echo's manifest (examples/echo@0.1.0): what editing the source makes.
    let (edited, edited_digest) = repack(data.path(), &streamer, "echo");
    assert_ne!(echo_digest, edited_digest);

    text(&server.cli(&["deploy", echo.to_str().unwrap()]));
    let deployed = text(&server.cli(&["deploy", edited.to_str().unwrap()]));
    assert!(deployed.contains("revision 2"), "{deployed}");
    assert!(deployed.contains(short(&edited_digest)), "{deployed}");
    assert_eq!(
        text(&server.cli(&["invoke", "echo", "one two"])),
        "one two",
        "the edited code runs"
    );

    // Both builds of 0.1.0 are listed, told apart by their digests; the current one marked.
    let shown = text(&server.cli(&["agents", "get", "echo"]));
    for (mark, revision, digest) in [("*", 2, &edited_digest), (" ", 1, &echo_digest)] {
        let row = format!(
            "{mark} rev {revision:<4} examples/echo@0.1.0  {}",
            short(digest)
        );
        assert!(shown.contains(&row), "no `{row}` in:\n{shown}");
    }

    // Rollback moves between the builds.
    text(&server.cli(&["rollback", "echo"]));
    assert_eq!(
        text(&server.cli(&["invoke", "echo", "one two"])),
        "echo: one two"
    );
    text(&server.cli(&["rollback", "echo", "--to", "2"]));
    assert_eq!(text(&server.cli(&["invoke", "echo", "x"])), "x");

    // Rollback errors name the agent and its revisions, never internal ids.
    let agent_id = stdout_json(&server.cli(&["--json", "agents", "get", "echo"]))["agent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    text(&server.cli(&["deploy", streamer.to_str().unwrap()]));
    let cases = [
        (
            &["rollback", "echo", "--to", "9"][..],
            "agent `echo` has no revision 9; it has revisions 1 to 2 (not_found)",
        ),
        (
            &["rollback", "streamer"],
            "agent `streamer` is at revision 1, and it has no earlier revision to roll back to \
             (conflict)",
        ),
    ];
    for (args, message) in cases {
        let (code, stderr) = code_and_stderr(&server.cli(args));
        assert_eq!(code, Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains(&agent_id), "{args:?}: {stderr}");
    }
    server.stop();
}

#[test]
fn grants_follow_the_manifest_once_confirmed_and_config_carries_over() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (counter, _) = build(&server, data.path(), "counter");
    let counter = counter.to_str().unwrap();
    let (delegate, _) = build(&server, data.path(), "delegate");
    let delegate = delegate.to_str().unwrap();

    // Off a terminal, requested grants are neither given silently nor asked for: the error
    // names them and the flags, and nothing is deployed.
    let (code, stderr) = code_and_stderr(&server.cli(&["deploy", counter]));
    assert_eq!(code, Some(2), "{stderr}");
    for needle in [
        "the package requests grants agent `counter` does not have yet: state",
        "--yes",
        "--grant state",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let (code, _) = code_and_stderr(&server.cli(&["agents", "get", "counter"]));
    assert_eq!(code, Some(4), "nothing was deployed");

    // --yes grants what the manifest requests, and says so.
    let deployed = server.cli(&["deploy", counter, "--yes"]);
    let (_, stderr) = code_and_stderr(&deployed);
    assert!(stderr.contains("granted: state"), "{stderr}");
    assert_eq!(
        text(&server.cli(&["invoke", "counter", "tick", "--session", "s"])),
        "count: 1"
    );
    // A redeploy keeps them without asking; --grant still narrows, and cannot widen.
    let (_, stderr) = code_and_stderr(&server.cli(&["deploy", counter]));
    assert!(stderr.contains("granted: state"), "{stderr}");
    let (code, stderr) = code_and_stderr(&server.cli(&["deploy", counter, "--grant", "llm"]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("grant_refused"), "{stderr}");

    // Config carries over a redeploy, is replaced when given again and removed on request.
    let current_config = |name: &str| -> Value {
        let detail = stdout_json(&server.cli(&["--json", "agents", "get", name]));
        let current = detail["agent"]["current_revision"].clone();
        let revisions = detail["revisions"].as_array().unwrap();
        let revision = revisions.iter().find(|r| r["revision"] == current).unwrap();
        json!({"config": revision["config"], "grants": revision["grants"]["capabilities"]})
    };
    text(&server.cli(&[
        "deploy",
        delegate,
        "--yes",
        "--config",
        "target=counter",
        "--config",
        "style=plain",
        "--secret",
        "token=t0k",
    ]));
    text(&server.cli(&["deploy", delegate, "--config", "style=loud"]));
    assert_eq!(
        current_config("delegate"),
        json!({"config": {"target": "counter", "style": "loud"}, "grants": ["agents"]})
    );
    // (Without `target` it would call `echo`.)
    assert_eq!(
        text(&server.cli(&["invoke", "delegate", "tick"])),
        "counter says: count: 1"
    );
    let shown = text(&server.cli(&["agents", "get", "delegate"]));
    for line in [
        "grants:   agents",
        "config:   style=loud, target=counter",
        "secrets:  token",
    ] {
        assert!(shown.contains(line), "no `{line}` in:\n{shown}");
    }
    assert!(!shown.contains("t0k"), "{shown}");
    text(&server.cli(&["deploy", delegate, "--unset-config", "style"]));
    assert_eq!(
        current_config("delegate"),
        json!({"config": {"target": "counter"}, "grants": ["agents"]})
    );
    let (code, stderr) =
        code_and_stderr(&server.cli(&["deploy", delegate, "--unset-config", "styel"]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("agent `delegate` has no config `styel` to unset"),
        "{stderr}"
    );
    server.stop();
}

/// The REST API holds the rule itself: a deployment without grants gets the manifest's only
/// when the client confirms them; listed grants are exactly what the revision gets.
#[test]
fn the_api_grants_requested_capabilities_only_when_confirmed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (counter, _) = build(&server, data.path(), "counter");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = server.http();
        let base = format!("{}/v1/tenants/default", server.url);
        let package: Value = http
            .put(format!("{base}/packages"))
            .header("content-type", "application/octet-stream")
            .body(std::fs::read(&counter).unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let digest = &package["digest"];
        let cases = [
            (json!({"package_digest": digest}), 422, None),
            (
                json!({"package_digest": digest, "grants": {"capabilities": []}}),
                201,
                Some(json!([])),
            ),
            (
                json!({"package_digest": digest, "name": "second", "accept_requested_grants": true}),
                201,
                Some(json!(["state"])),
            ),
        ];
        for (body, status, granted) in cases {
            let answer = http
                .post(format!("{base}/agents"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), status, "{body}");
            let answer: Value = answer.json().await.unwrap();
            match granted {
                Some(granted) => {
                    assert_eq!(answer["revision"]["grants"]["capabilities"], granted);
                }
                None => {
                    assert_eq!(answer["code"], "grants_unconfirmed", "{answer}");
                    assert!(
                        answer["detail"].as_str().unwrap().contains(": state;"),
                        "{answer}"
                    );
                }
            }
        }
    });
    server.stop();
}

/// `nexus deploy` run on a terminal (a pseudo-terminal here) with `answer` typed after its
/// question; returns the exit code and everything the terminal showed.
fn deploy_on_terminal(server: &Server, package: &Path, answer: &str) -> (Option<i32>, String) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let child = Command::new(NEXUS)
        .args(["--server", &server.url, "deploy"])
        .arg(package)
        .env_remove("NEXUS_SERVER")
        .env("NEXUS_API_KEY", API_KEY)
        .stdin(terminal.try_clone().unwrap())
        .stderr(terminal)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let mut shown = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut answered = false;
    // Reads until the child's end closes the terminal (EIO on Linux).
    while let Ok(n @ 1..) = master.read(&mut buffer) {
        shown.extend_from_slice(&buffer[..n]);
        if !answered && String::from_utf8_lossy(&shown).contains("[y/N]") {
            master.write_all(answer.as_bytes()).unwrap();
            answered = true;
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(answered, "{}", String::from_utf8_lossy(&shown));
    (
        output.status.code(),
        String::from_utf8_lossy(&shown).into_owned(),
    )
}

#[test]
fn on_a_terminal_requested_grants_are_asked_for() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (counter, _) = build(&server, data.path(), "counter");

    let (code, shown) = deploy_on_terminal(&server, &counter, "n\n");
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("does not have yet: state") && shown.contains("not deployed"),
        "{shown}"
    );
    let (code, _) = code_and_stderr(&server.cli(&["agents", "get", "counter"]));
    assert_eq!(code, Some(4), "declined: nothing deployed");

    let (code, shown) = deploy_on_terminal(&server, &counter, "y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("granted: state"), "{shown}");
    assert_eq!(
        text(&server.cli(&["invoke", "counter", "tick"])),
        "count: 1"
    );
    server.stop();
}
