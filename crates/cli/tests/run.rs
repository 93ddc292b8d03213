//! `nexus run`: builds agents from source and runs tasks locally with persistent state.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NEXUS: &str = env!("CARGO_BIN_EXE_nexus");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nexus_run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(NEXUS)
        .arg("run")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        // Share the guest build with the rest of the test suite.
        .env("CARGO_TARGET_DIR", repo().join("target/wasm"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
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
