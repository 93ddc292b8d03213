//! `scripts/quickstart`, run for real with the suite's debug binary (`NEXUS_BIN`): it starts its
//! own server, deploys `echo` and shows it answering, again on the same data directory, stops
//! its server when it is stopped, and refuses to go on when its server is not the one answering.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::{NEXUS, repo};

/// What the quickstart asks the agent, and what it answers.
const REPLY: &str = "echo: Hello, NexusCore!";
/// How long a run may take to show the reply: it may build the echo agent first.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn quickstart(port: u16, data_dir: &Path) -> Command {
    let mut command = Command::new(repo().join("scripts/quickstart"));
    command
        .env("NEXUS_BIN", NEXUS)
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_DATA_DIR", data_dir)
        // Share the guest build with the rest of the test suite.
        .env("CARGO_TARGET_DIR", repo().join("target/wasm"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("NEXUS_SERVER")
        .env_remove("NEXUS_API_KEY")
        .env_remove("NEXUS_LISTEN")
        .env_remove("NEXUS_TENANT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A quickstart run in progress, its output lines as they come.
struct Run {
    child: Child,
    lines: mpsc::Receiver<(&'static str, String)>,
    seen: Vec<String>,
}

impl Run {
    fn start(port: u16, data_dir: &Path) -> Self {
        let mut child = quickstart(port, data_dir).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, reader) in [
            ("stdout", Box::new(stdout) as Box<dyn Read + Send>),
            ("stderr", Box::new(stderr)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line on `stream` for which `matches` holds; panics with the output so far if
    /// the script ends first.
    fn wait_for(&mut self, stream: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(RUN_TIMEOUT) {
                Ok((from, line)) => {
                    self.seen.push(format!("{from}: {line}"));
                    if from == stream && matches(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "quickstart ended or stalled ({e}), exit {:?}:\n{}",
                    self.child.try_wait(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the reply and the server's pid, stops the script with SIGTERM as Ctrl-C would
    /// with SIGINT, and checks that the server it started is gone.
    fn answers_then_stops(mut self, port: u16) {
        self.wait_for("stdout", |line| line == REPLY);
        let running = self.wait_for("stderr", |line| line.contains("server pid"));
        let pid: u32 = running
            .split("server pid ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {running:?}"));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert_eq!(exit.code(), Some(143), "{}", self.seen.join("\n"));
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the quickstart's server {pid} outlived it"
        );
        assert!(!port_open(port), "something still listens on {port}");
    }
}

impl Drop for Run {
    /// A failed test still stops the script the way a person would, so it stops its server.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_quickstart_shows_echo_answering_and_runs_again_on_the_same_data() {
    let data = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let port = free_port();
        Run::start(port, data.path()).answers_then_stops(port);
    }
}

/// Another server on the port: answers every request with 200 and keeps what it was sent.
fn impostor() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut head = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) {}
            if !head.is_empty() {
                seen.lock().unwrap().push(head);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
            }
        }
    });
    (port, requests)
}

#[test]
fn the_quickstart_fails_clearly_when_its_own_server_is_not_the_one_answering() {
    let (taken, requests) = impostor();
    let bad_config = tempfile::tempdir().unwrap();
    std::fs::write(bad_config.path().join("nexus.toml"), "[server\n").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let unused = fresh.path().join("data");
    let cases: &[(u16, &Path, &str)] = &[
        (
            taken,
            &unused,
            &format!("127.0.0.1:{taken} is already in use"),
        ),
        // Its own server exits at once (a configuration it refuses).
        (free_port(), bad_config.path(), "the server did not start"),
    ];
    for (port, data_dir, message) in cases {
        let output = quickstart(*port, data_dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{message}: {stderr}");
        assert!(!stderr.contains("deploying"), "{stderr}");
        assert!(output.stdout.is_empty(), "{stderr}");
    }
    assert!(
        requests.lock().unwrap().is_empty(),
        "the quickstart talked to a server not its own: {:?}",
        requests.lock().unwrap()
    );
    assert!(!unused.exists(), "the quickstart used its data directory");
}
