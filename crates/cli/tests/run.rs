//! `nexus run`: builds agents from source and runs tasks locally with persistent state.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{NEXUS, repo};

fn nexus_run(data_dir: &Path, args: &[&str]) -> Output {
    let data_dir = data_dir.to_str().unwrap();
    nexus_building(&[], &[&["run"], args, &["--data-dir", data_dir]].concat())
}

/// Runs `nexus ARGS…` with `env` set, sharing the guest build with the rest of the test suite.
fn nexus_building(env: &[(&str, &Path)], args: &[&str]) -> Output {
    Command::new(NEXUS)
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("target/wasm"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_stateful_agent_keeps_its_count_between_runs_per_session() {
    let data = tempfile::tempdir().unwrap();
    let counter = repo().join("examples/counter");
    let counter = counter.to_str().unwrap();
    assert_eq!(
        stdout(&nexus_run(data.path(), &[counter, "-i", "tick"])),
        "count: 1"
    );
    assert_eq!(
        stdout(&nexus_run(data.path(), &[counter, "-i", "tick"])),
        "count: 2"
    );
    assert_eq!(
        stdout(&nexus_run(
            data.path(),
            &[counter, "-i", "tick", "--session", "other"]
        )),
        "count: 1"
    );

    let json: serde_json::Value = serde_json::from_str(&stdout(&nexus_run(
        data.path(),
        &["--json", counter, "-i", "tick"],
    )))
    .unwrap();
    assert_eq!(json["outcome"]["result"]["status"], "completed");
    assert_eq!(
        json["outcome"]["result"]["reply"]["message"][0]["text"],
        "count: 3"
    );
    assert!(
        json["outcome"]["usage"]["peak_memory_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn bad_input_is_a_clear_error_with_an_exit_code() {
    let data = tempfile::tempdir().unwrap();
    let junk = data.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let echo = repo().join("examples/echo");
    let echo = echo.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["/no/such/agent.wasm", "-i", "x"], 2, "cannot read"),
        (
            &[junk.to_str().unwrap(), "-i", "x"],
            2,
            "invalid agent component",
        ),
        (
            &[data.path().to_str().unwrap(), "-i", "x"],
            2,
            "not an agent project",
        ),
        (
            &[echo, "-i", "x", "--allow-host", "example.com"],
            2,
            "invalid outbound host",
        ),
        (&[echo, "-i", "x", "--config", "novalue"], 2, "KEY=VALUE"),
        (&[echo, "-i", ""], 6, "rejected"),
    ];
    for (args, code, message) in cases {
        let output = nexus_run(data.path(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// An agent whose line 9 does not compile.
const BROKEN_LIB: &str = r#"//! Does not compile.

use nexus_agent_sdk::{Agent, AgentError, Response, Task};

struct Broken;

impl Agent for Broken {
    fn handle(_task: Task) -> Result<Response, AgentError> {
        let count: u32 = "not a number";
        Ok(Response::text(format!("{count}")))
    }
}

nexus_agent_sdk::export_agent!(Broken);
"#;

/// An agent project outside the examples whose code does not compile: the error is on line 9
/// of src/lib.rs. Its release profile is the examples' own, so it reuses their built SDK.
fn broken_project() -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let examples = std::fs::read_to_string(repo().join("examples/Cargo.toml")).unwrap();
    let profile = &examples[examples.find("[profile.release]").unwrap()..];
    let sdk = repo().join("sdk/rust").canonicalize().unwrap();
    let manifest = format!(
        r#"[package]
name = "broken"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
nexus-agent-sdk = {{ path = {sdk:?} }}

[workspace]

{profile}"#,
        sdk = sdk.display().to_string()
    );
    std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(
        repo().join("examples/Cargo.lock"),
        project.path().join("Cargo.lock"),
    )
    .unwrap();
    let agent = std::fs::read_to_string(repo().join("examples/echo/nexus.toml")).unwrap();
    std::fs::write(
        project.path().join("nexus.toml"),
        agent.replace("name = \"echo\"", "name = \"broken\""),
    )
    .unwrap();
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("src/lib.rs"), BROKEN_LIB).unwrap();
    project
}

#[test]
fn a_compile_error_shows_the_compilers_diagnostic_and_keeps_stdout_clean() {
    let data = tempfile::tempdir().unwrap();
    let project = broken_project();
    let dir = project.path().to_str().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let verbs: &[&[&str]] = &[
        &["--json", "run", dir, "-i", "x", "--data-dir", data_dir],
        &["--json", "build", dir],
        &["build", dir],
    ];
    for args in verbs {
        let output = nexus_building(&[], args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error[E0308]") && stderr.contains("src/lib.rs:9:"),
            "{args:?}: rustc's diagnostic is missing: {stderr}"
        );
        assert!(
            stderr.contains("cargo could not build"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("rustup target add"), "{args:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: stdout {:?}",
            output.stdout
        );
    }
}

#[test]
fn a_missing_wasm_target_is_named_with_the_command_that_adds_it() {
    let data = tempfile::tempdir().unwrap();
    // A compiler whose sysroot has only the host's standard library: what `rustc --print
    // sysroot` shows on a toolchain without the target. Cargo honours `RUSTC`, so does the check.
    let sysroot = data.path().join("sysroot");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
    let rustc = data.path().join("rustc");
    std::fs::write(&rustc, format!("#!/bin/sh\necho '{}'\n", sysroot.display())).unwrap();
    let mut permissions = std::fs::metadata(&rustc).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&rustc, permissions).unwrap();

    let echo = repo().join("examples/echo");
    let echo = echo.to_str().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let verbs: &[&[&str]] = &[
        &["run", echo, "-i", "x", "--data-dir", data_dir],
        &["--json", "build", echo],
    ];
    for args in verbs {
        // Not on a terminal (stdin is not one): nothing is asked, the command is printed.
        let output = nexus_building(&[("RUSTC", &rustc)], args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the wasm32-wasip2 target is not installed")
                && stderr.contains(&sysroot.display().to_string())
                && stderr.contains("`rustup target add wasm32-wasip2`"),
            "{args:?}: {stderr}"
        );
        // Refused before cargo started.
        assert!(!stderr.contains("Compiling"), "{args:?}: {stderr}");
        assert!(!stderr.contains("[Y/n]"), "{args:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: stdout {:?}",
            output.stdout
        );
    }
}
