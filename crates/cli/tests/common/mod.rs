//! Shared by the binary's black-box tests: a `nexus server` process on a free port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;

pub const NEXUS: &str = env!("CARGO_BIN_EXE_nexus");
/// The platform admin key every test server is bootstrapped with (`NEXUS_BOOTSTRAP_API_KEY`).
pub const API_KEY: &str = "test-admin-key-0123456789abcdef";

/// A running `nexus server` on a free loopback port.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The log lines written before (and including) `listening`.
    pub start_log: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(data_dir, extra, &[], None)
    }

    /// Starts a server listening on `listen` (host:port) instead of a loopback port.
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::spawn(data_dir, listen, extra, &[], None)
    }

    /// Starts a server with `env` set and, with `file_limit`, that many file descriptors at
    /// most (soft and hard, through the shell's `ulimit`).
    pub fn start_with(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        file_limit: Option<u64>,
    ) -> Self {
        Self::spawn(data_dir, "127.0.0.1:0", extra, env, file_limit)
    }

    fn spawn(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        file_limit: Option<u64>,
    ) -> Self {
        let mut command = match file_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(NEXUS);
                shell
            }
            None => Command::new(NEXUS),
        };
        let mut child = command
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("NEXUS_LISTEN")
            .env("NEXUS__LOG__FORMAT", "json")
            .env("NEXUS_BOOTSTRAP_API_KEY", API_KEY)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, log) = mpsc::channel();
        // Forward every log line; the channel tells us when the server is listening.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            start_log: Vec::new(),
            log,
        };
        loop {
            let line = server.wait_for_log("");
            server.start_log.push(line.clone());
            if line.contains("listening") {
                let entry: Value = serde_json::from_str(&line).unwrap();
                server.url = entry["url"].as_str().unwrap().to_owned();
                return server;
            }
        }
    }

    /// An HTTP client that sends the admin key.
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {API_KEY}").parse().unwrap(),
        );
        reqwest_client().default_headers(headers).build().unwrap()
    }

    /// Blocks until a log line containing `needle` arrives (or the server exits).
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        for line in self.log.iter() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "server exited before logging `{needle}`: {:?}",
            self.child.try_wait()
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for_log("stopped");
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "server exited with {exit}");
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(NEXUS)
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env_remove("NEXUS_SERVER")
            .env("NEXUS_API_KEY", API_KEY)
            .output()
            .unwrap()
    }
}

impl Server {
    /// Runs a client verb with no API key, keeping login sessions in `config_dir`, with
    /// `stdin` piped in.
    pub fn cli_logged_in(&self, config_dir: &Path, args: &[&str], stdin: &str) -> Output {
        self.cli_with_stdin(None, Some(config_dir), args, stdin)
    }

    /// Runs a client verb as the platform admin with `stdin` piped in.
    pub fn cli_logged_in_as_admin(&self, args: &[&str], stdin: &str) -> Output {
        self.cli_with_stdin(Some(API_KEY), None, args, stdin)
    }

    fn cli_with_stdin(
        &self,
        api_key: Option<&str>,
        config_dir: Option<&Path>,
        args: &[&str],
        stdin: &str,
    ) -> Output {
        use std::io::Write;
        let mut command = Command::new(NEXUS);
        command
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env_remove("NEXUS_SERVER")
            .env_remove("NEXUS_API_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(key) = api_key {
            command.env("NEXUS_API_KEY", key);
        }
        if let Some(dir) = config_dir {
            command.env("NEXUS_CONFIG_DIR", dir);
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reqwest client builder: reqwest is built without a crypto provider of its own, so every
/// client gets rustls on ring explicitly (a plain `reqwest::Client::new()` would panic).
pub fn reqwest_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(nexus_tls::client_config(None).unwrap())
}

pub fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

pub fn postgres_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/nexus_test".to_owned())
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Server {
    /// Runs a client verb that may build agents: cargo shares the suite's guest build.
    pub fn cli_building(&self, args: &[&str]) -> Output {
        Command::new(NEXUS)
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env_remove("NEXUS_SERVER")
            .env("NEXUS_API_KEY", API_KEY)
            .env("CARGO_TARGET_DIR", repo().join("target/wasm"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap()
    }

    /// Kills the server without letting it shut down (a crash).
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The resident memory of process `pid`, in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}
