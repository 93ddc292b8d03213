//! Hostile packages: every one refused as `invalid_package`, nothing stored, the node serving.

use std::io::{Read, Write};

use reqwest::Method;

use crate::support::Target;

/// A tar entry with a raw `name` (no path checks, so `../` and absolute names get through),
/// of `kind`, holding `data`.
fn entry(archive: &mut tar::Builder<impl Write>, name: &[u8], kind: tar::EntryType, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    archive.append(&header, data).unwrap();
}

/// A zstd-compressed tar of `entries`.
fn package(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        entry(&mut archive, name, *kind, data);
    }
    zstd::encode_all(&archive.into_inner().unwrap()[..], 3).unwrap()
}

/// A package whose component decompresses to `size` zeros (a few KiB compressed).
fn bomb(size: u64) -> Vec<u8> {
    let encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let mut archive = tar::Builder::new(encoder);
    let mut header = tar::Header::new_ustar();
    header.set_path("agent.wasm").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append(&header, std::io::repeat(0).take(size))
        .unwrap();
    archive.into_inner().unwrap().finish().unwrap()
}

const MANIFEST: &[u8] = b"[agent]\nname = \"evil\"\nversion = \"0.1.0\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_packages_are_refused_and_store_nothing() {
    use tar::EntryType as T;
    let target = Target::start().await;
    let before = target.stored().await;
    let wasm: &[u8] = b"\0asm\x0d\x00\x01\x00";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not zstd", b"PK\x03\x04 a zip file".to_vec()),
        (
            "zstd of no tar",
            zstd::encode_all(&b"hello world"[..], 3).unwrap(),
        ),
        (
            "truncated",
            package(&[(b"nexus.toml", T::Regular, MANIFEST)])[..20].to_vec(),
        ),
        (
            "traversal",
            package(&[(b"../../etc/cron.d/evil", T::Regular, b"* * * * * root sh")]),
        ),
        (
            "absolute path",
            package(&[(b"/etc/passwd", T::Regular, b"root::0:0")]),
        ),
        (
            "symbolic link",
            package(&[(b"nexus.toml", T::Symlink, b"")]),
        ),
        ("directory", package(&[(b"agent.wasm", T::Directory, b"")])),
        (
            "unexpected entry",
            package(&[
                (b"nexus.toml", T::Regular, MANIFEST),
                (b"run.sh", T::Regular, b"#!/bin/sh"),
            ]),
        ),
        (
            "duplicate entries",
            package(&[
                (b"nexus.toml", T::Regular, MANIFEST),
                (b"nexus.toml", T::Regular, MANIFEST),
            ]),
        ),
        (
            "no component",
            package(&[(b"nexus.toml", T::Regular, MANIFEST)]),
        ),
        (
            "not a component",
            package(&[
                (b"nexus.toml", T::Regular, MANIFEST),
                (b"agent.wasm", T::Regular, b"\x7fELF"),
            ]),
        ),
        (
            "an empty component",
            package(&[
                (b"nexus.toml", T::Regular, MANIFEST),
                (b"agent.wasm", T::Regular, wasm),
            ]),
        ),
        ("a bomb", bomb(200 * 1024 * 1024)),
    ];
    for (name, body) in cases {
        let answer = target
            .send(
                Some(&target.attacker),
                Method::PUT,
                "/v1/tenants/attacker/packages",
                &[("content-type", "application/octet-stream")],
                body,
            )
            .await;
        answer.assert_problem(422, "invalid_package", name);
        target.assert_alive(name).await;
    }
    assert_eq!(target.stored().await, before, "nothing stored");
}
