//! Building an agent project into a component, for `nexus run`, `nexus build` and
//! `nexus deploy`: `cargo build --release --target wasm32-wasip2`, with cargo's progress and the
//! compiler's diagnostics shown on stderr as they come (stdout stays for data), after checking
//! that the toolchain has the target.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::Output;
use crate::exit::CliError;

/// The target agents are built for.
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

/// `cargo build --release --target wasm32-wasip2` in `dir`; returns the crate's name and the
/// component it produced. Cargo's own output (progress, the compiler's errors and warnings)
/// goes to stderr while it builds; its JSON messages on stdout name the artifact.
pub(crate) async fn build(dir: &Path, output: Output) -> Result<(String, Vec<u8>), CliError> {
    if !dir.join("Cargo.toml").exists() {
        return Err(CliError::usage(format!(
            "{} is not an agent project (no Cargo.toml) — pass a project directory or a .wasm file",
            dir.display()
        )));
    }
    ensure_target(dir).await?;
    if !output.json {
        eprintln!("building {} for {WASM_TARGET}", dir.display());
    }
    let started = Instant::now();
    let mut cargo = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            CliError::usage(format!(
                "cannot run cargo: {e} (is Rust installed? see https://rustup.rs)"
            ))
        })?;
    // Read the messages as cargo writes them, so it never blocks on a full pipe.
    let mut artifact = None;
    if let Some(stdout) = cargo.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| CliError::internal(format!("reading cargo's output: {e}")))?
        {
            if let Some(found) = component_artifact(&line) {
                artifact = Some(found);
            }
        }
    }
    let status = cargo
        .wait()
        .await
        .map_err(|e| CliError::internal(format!("waiting for cargo: {e}")))?;
    if !status.success() {
        return Err(CliError::usage(format!(
            "cargo could not build {} (its errors are above)",
            dir.display()
        )));
    }
    // The last cdylib artifact whose file is a .wasm is the agent.
    let (name, file) = artifact.ok_or_else(|| {
        CliError::usage(format!(
            "{} built no component: an agent crate needs `crate-type = [\"cdylib\"]`",
            dir.display()
        ))
    })?;
    let bytes = tokio::fs::read(&file)
        .await
        .map_err(|e| CliError::internal(format!("cannot read {file}: {e}")))?;
    if !output.json {
        eprintln!(
            "built {name} ({} KiB) in {:.1} s",
            bytes.len() / 1024,
            started.elapsed().as_secs_f64()
        );
    }
    Ok((name, bytes))
}

/// The crate name and .wasm file of a `compiler-artifact` message for a cdylib, if `line` is one.
fn component_artifact(line: &str) -> Option<(String, String)> {
    let message = serde_json::from_str::<serde_json::Value>(line).ok()?;
    if message["reason"] != "compiler-artifact"
        || !message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
    {
        return None;
    }
    let name = message["target"]["name"].as_str()?.to_owned();
    let file = message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))?
        .to_owned();
    Some((name, file))
}

/// Makes sure the toolchain that builds `dir` has the wasm target: when it is missing, asks to
/// add it on a terminal, and otherwise fails with the command that adds it. When the toolchain
/// cannot be asked, cargo is left to report what is wrong.
async fn ensure_target(dir: &Path) -> Result<(), CliError> {
    let Some(sysroot) = sysroot(dir).await else {
        return Ok(());
    };
    if target_installed(&sysroot, WASM_TARGET) {
        return Ok(());
    }
    let add = format!("rustup target add {WASM_TARGET}");
    let missing = format!(
        "the {WASM_TARGET} target is not installed for the Rust toolchain at {}",
        sysroot.display()
    );
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive || !confirm(&format!("{missing}. Add it now (`{add}`)? [Y/n] ")) {
        return Err(CliError::usage(format!(
            "{missing}: agents are built for it; add it with `{add}`"
        )));
    }
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(dir)
        .status()
        .await
        .map_err(|e| CliError::usage(format!("cannot run rustup: {e}; {missing}")))?;
    if !status.success() {
        return Err(CliError::usage(format!("`{add}` failed ({status})")));
    }
    Ok(())
}

/// The sysroot of the compiler cargo would use in `dir` (`$RUSTC`, as cargo honours it, or
/// `rustc`, which rustup resolves per directory), or `None` if it cannot be asked.
async fn sysroot(dir: &Path) -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let answer = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8(answer.stdout).ok()?;
    let path = text.trim();
    (answer.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// Whether the toolchain at `sysroot` has the standard library for `target`.
fn target_installed(sysroot: &Path, target: &str) -> bool {
    sysroot
        .join("lib")
        .join("rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

/// Asks `question` on stderr; yes unless the answer starts with `n`.
fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => false,
        Ok(_) => !answer.trim().to_ascii_lowercase().starts_with('n'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_found_in_the_sysroot_only_when_its_library_is_there() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["lib/rustlib/x86_64-unknown-linux-gnu/lib"], false),
            // A target directory without its library (rustup leaves `bin` for some).
            (&["lib/rustlib/wasm32-wasip2"], false),
            (&["lib/rustlib/wasm32-wasip2/lib"], true),
        ];
        for (dirs, installed) in cases {
            let sysroot = tempfile::tempdir().unwrap();
            for dir in *dirs {
                std::fs::create_dir_all(sysroot.path().join(dir)).unwrap();
            }
            assert_eq!(
                target_installed(sysroot.path(), WASM_TARGET),
                *installed,
                "{dirs:?}"
            );
        }
    }

    #[test]
    fn only_cdylib_artifacts_with_a_wasm_file_name_the_component() {
        let cases = [
            (
                r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"],"name":"echo"},"filenames":["/t/echo.wasm"]}"#,
                Some(("echo".to_owned(), "/t/echo.wasm".to_owned())),
            ),
            (
                r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"sdk"},"filenames":["/t/libsdk.rlib"]}"#,
                None,
            ),
            (
                r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"],"name":"x"},"filenames":["/t/libx.so"]}"#,
                None,
            ),
            (r#"{"reason":"build-finished","success":false}"#, None),
            ("   Compiling echo v0.1.0", None),
        ];
        for (line, expected) in cases {
            assert_eq!(component_artifact(line), expected, "{line}");
        }
    }
}
