//! A broken `nexus.toml` stops `nexus build` and `nexus deploy` before anything is compiled,
//! with every problem of the manifest listed at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::process::Command;

const NEXUS: &str = env!("CARGO_BIN_EXE_nexus");

#[test]
fn every_manifest_problem_is_reported_before_building() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("nexus.toml"),
        "[agent]\nname = \"broken\"\nversion = \"0.1\"\ncolour = \"red\"\n",
    )
    .unwrap();
    for verb in [&["build"][..], &["deploy"][..]] {
        let output = Command::new(NEXUS)
            .args(verb)
            .arg(project.path())
            // Nothing may be sent: a server here would be a bug in the test.
            .args(["--server", "http://127.0.0.1:9"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{verb:?}: {stderr}");
        for expected in [
            "nexus.toml:1: agent.namespace: missing field `namespace`",
            "nexus.toml:1: agent.description: missing field `description`",
            "nexus.toml:1: skills: at least one [[skills]] entry is required",
            "nexus.toml:3: agent.version: version `0.1` is not a semantic version",
            "nexus.toml:4: agent.colour: unknown field `colour`",
        ] {
            assert!(
                stderr.contains(expected),
                "{verb:?}: want `{expected}` in\n{stderr}"
            );
        }
        assert!(
            !project.path().join("target").exists(),
            "{verb:?}: cargo ran on a broken manifest"
        );
    }
}
