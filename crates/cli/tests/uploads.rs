//! Hostile uploads through the `nexus` binary: compression bombs are refused with a coded
//! error, store nothing and leave the server's resident memory where it was (issue 12).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// Bombs sent at once, as in the issue.
const CONCURRENT_BOMBS: usize = 16;
/// How much the server's resident memory may grow while they are refused: twice the goal
/// (64 MB), far under what they took before the fix (2.17 GB for 16).
const MAX_GROWTH_BYTES: u64 = 128 * MIB;

const MANIFEST: &str = r#"[agent]
name = "hostile"
namespace = "tests"
version = "0.1.0"
description = "Misbehaves on request."

[[skills]]
id = "misbehave"
name = "Misbehave"
description = "Loops, floods or panics."
"#;

/// A ustar header for a regular file of `size` bytes.
fn header(name: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

/// Streams `len` zeros into `encoder`.
fn zeros(encoder: &mut impl std::io::Write, len: u64) {
    let chunk = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        encoder.write_all(&chunk[..n as usize]).unwrap();
        left -= n;
    }
}

/// The issue's bomb: ~4 KB that decompress to a valid manifest and a 120 MiB `agent.wasm`
/// (a component header, then zeros).
fn wasm_bomb() -> Vec<u8> {
    let size = 120 * MIB;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let mut head = header("nexus.toml", MANIFEST.len() as u64)
        .as_bytes()
        .to_vec();
    head.extend_from_slice(MANIFEST.as_bytes());
    head.resize(head.len().next_multiple_of(512), 0);
    head.extend_from_slice(header("agent.wasm", size).as_bytes());
    head.extend_from_slice(b"\0asm\x0d\x00\x01\x00");
    encoder.write_all(&head).unwrap();
    zeros(&mut encoder, size - 8 + 1024);
    encoder.finish().unwrap()
}

/// A bomb of 24 MiB of zeros with the largest window the server accepts (8 MiB): to tar an
/// end-of-archive marker and padding, drained through the decoder until the expansion limit
/// (16 MiB for so small an archive), so it costs the server a whole decoder window.
fn padding_bomb() -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.window_log(23).unwrap();
    zeros(&mut encoder, 24 * MIB);
    encoder.finish().unwrap()
}

/// The hostile test guest packed with its manifest: a package that uploads.
fn real_package() -> Vec<u8> {
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
    nexus_package::pack(MANIFEST, &wasm, None).unwrap().bytes
}

/// Samples a process's resident memory until dropped, keeping the peak.
struct PeakSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(resident_bytes(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            // A measurement, not synchronisation: a sample every 2 ms while the uploads run.
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak seen.
    fn finish(mut self, pid: u32) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }
}

/// PUTs `body` as a package; the status and the JSON answer.
async fn upload(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = http
        .put(format!("{url}/v1/tenants/default/packages"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Sends `bomb` `count` times at once; every answer must be the coded refusal.
async fn send_bombs(http: &reqwest::Client, url: &str, bomb: &[u8], count: usize) {
    let uploads = (0..count).map(|_| upload(http, url, bomb.to_vec()));
    for (status, problem) in futures::future::join_all(uploads).await {
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["code"], "invalid_package", "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("times the"),
            "{problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bombs_are_refused_without_raising_resident_memory() {
    let wasm_bomb = wasm_bomb();
    let padding_bomb = padding_bomb();
    assert!(wasm_bomb.len() < 8 * 1024, "{}", wasm_bomb.len());
    assert!(padding_bomb.len() < 16 * 1024, "{}", padding_bomb.len());
    let package = real_package();

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let pid = server.child.id();
    let http = server.http();
    let url = server.url.clone();
    let packages = format!("{url}/v1/tenants/default/packages");
    // Warm up the paths the uploads take (authentication, the tenant, a refusal).
    let (status, _) = upload(&http, &url, b"not a package".to_vec()).await;
    assert_eq!(status, 422);
    let idle = resident_bytes(pid);

    // The issue's bomb, 16 at once.
    let sampler = PeakSampler::start(pid);
    send_bombs(&http, &url, &wasm_bomb, CONCURRENT_BOMBS).await;
    let peak = sampler.finish(pid);
    eprintln!(
        "resident memory: idle {} MiB, peak under {CONCURRENT_BOMBS} bombs {} MiB",
        idle / MIB,
        peak / MIB
    );
    assert!(
        peak.saturating_sub(idle) < MAX_GROWTH_BYTES,
        "resident memory grew from {idle} to {peak} bytes"
    );
    let listed: Value = http
        .get(&packages)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");

    // Bombs that each take a whole decoder window, and a real package among them: the bombs
    // hold part of the node's unpacking memory while it uploads.
    let sampler = PeakSampler::start(pid);
    let (stored, ()) = tokio::join!(
        upload(&http, &url, package),
        send_bombs(&http, &url, &padding_bomb, CONCURRENT_BOMBS),
    );
    let peak = sampler.finish(pid);
    eprintln!(
        "resident memory: peak under window bombs and an upload {} MiB",
        peak / MIB
    );
    assert_eq!(stored.0, 201, "{}", stored.1);
    let listed: Value = http
        .get(&packages)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["reference"], "tests/hostile@0.1.0", "{listed}");

    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    server.stop();
}
