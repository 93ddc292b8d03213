use std::io::Write as _;

use tar::EntryType;

use super::*;

/// The smallest thing `pack` accepts as a component: the 8-byte header.
const WASM: &[u8] = b"\0asm\x0d\x00\x01\x00";
const CORE_MODULE: &[u8] = b"\0asm\x01\x00\x00\x00";
const MANIFEST: &str = r#"[agent]
name = "echo"
namespace = "examples"
version = "0.1.0"
description = "Replies with what you said."

[[skills]]
id = "echo"
name = "Echo"
description = "Repeats the message."
"#;
const README: &str = "# echo\n\nReplies with what you said.\n";
const MIB: u64 = 1024 * 1024;

fn packed(readme: Option<&str>) -> Package {
    pack(MANIFEST, WASM, readme).unwrap_or_else(|e| panic!("{e}"))
}

fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap_or_else(|e| panic!("{e}"))
}

fn decompress(bytes: &[u8]) -> Vec<u8> {
    zstd::decode_all(bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// A ustar header with `name` written verbatim (tar-rs refuses to write `..` or absolute
/// paths, which is exactly what these tests need).
fn header(name: &[u8], kind: EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.as_mut_bytes()[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    header
}

fn push_entry(tar: &mut Vec<u8>, header: &tar::Header, data: &[u8]) {
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// A tar of regular files (or other kinds) with raw names, ending with the two zero blocks.
fn raw_tar(entries: &[(&[u8], EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, kind, data) in entries {
        push_entry(&mut tar, &header(name, *kind, data.len() as u64), data);
    }
    tar.extend_from_slice(&[0; 1024]);
    tar
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> (&'a [u8], EntryType, &'a [u8]) {
    (name.as_bytes(), EntryType::Regular, data)
}

fn valid_plus(extra: &[(&[u8], EntryType, &[u8])]) -> Vec<u8> {
    let mut entries = vec![
        file("nexus.toml", MANIFEST.as_bytes()),
        file("agent.wasm", WASM),
    ];
    entries.extend_from_slice(extra);
    zstd(&raw_tar(&entries))
}

fn unpack_err(bytes: &[u8]) -> PackageError {
    match unpack(bytes) {
        Ok(package) => panic!("accepted: {package:?}"),
        Err(e) => e,
    }
}

#[test]
fn round_trip() {
    for readme in [None, Some(README)] {
        let package = packed(readme);
        let back = unpack(&package.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, package);
        assert_eq!(back.readme.as_deref(), readme);
        assert_eq!(back.manifest_text, MANIFEST);
        assert_eq!(back.wasm, WASM);
    }
}

#[test]
fn packing_is_deterministic() {
    let a = packed(Some(README));
    let b = packed(Some(README));
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.digest, b.digest);
    assert_ne!(packed(None).digest, a.digest);

    let tar = decompress(&a.bytes);
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let h = entry.header();
        names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        assert_eq!(h.entry_type(), EntryType::Regular);
        assert_eq!(h.mtime().ok(), Some(0));
        assert_eq!(h.uid().ok(), Some(0));
        assert_eq!(h.gid().ok(), Some(0));
        assert_eq!(h.mode().ok(), Some(0o644));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
    }
    assert_eq!(names, ["README.md", "agent.wasm", "nexus.toml"]);
}

#[test]
fn digest_and_metadata() {
    let package = packed(None);
    let hex = package.digest.strip_prefix("sha256:").unwrap_or_default();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(package.digest, digest_of(&package.bytes));
    assert_eq!(
        digest_of(b"hello"),
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );

    let meta = package.new_package();
    assert_eq!(meta.reference.to_string(), "examples/echo@0.1.0");
    assert_eq!(meta.digest, package.digest);
    assert_eq!(meta.size_bytes, package.bytes.len() as u64);
    assert_eq!(meta.manifest, package.manifest.to_json());
    let shown = format!("{package:?}");
    assert!(
        shown.contains("examples/echo@0.1.0") && !shown.contains("bytes: ["),
        "{shown}"
    );
}

#[test]
fn pack_validates_its_inputs() {
    let bad = MANIFEST.replace(r#"name = "echo""#, r#"name = "Echo""#);
    match pack(&bad, WASM, None) {
        Err(PackageError::InvalidManifest(e)) => {
            let first = e.first().map(|p| (p.line, p.field.as_str()));
            assert_eq!(
                (e.file.as_str(), first),
                ("nexus.toml", Some((2, "agent.name")))
            );
        }
        other => panic!("{other:?}"),
    }

    let wasm_cases: [(&[u8], &str); 4] = [
        (CORE_MODULE, "core WebAssembly module"),
        (b"\0asm\x0d\x00", "too short"),
        (b"\x7fELF\x02\x01\x01\x00", "does not start with"),
        (b"\0asm\x0e\x00\x01\x00", "unknown WebAssembly version"),
    ];
    for (wasm, expected) in wasm_cases {
        match pack(MANIFEST, wasm, None) {
            Err(PackageError::InvalidWasm(message)) => {
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
    assert!(check_component(WASM).is_ok());
}

#[test]
fn hand_made_archives_are_accepted() {
    // Order does not matter when reading, and the reserved signature entry is ignored.
    let tar = raw_tar(&[
        file("signature", b"reserved"),
        file("agent.wasm", WASM),
        file("README.md", README.as_bytes()),
        file("nexus.toml", MANIFEST.as_bytes()),
    ]);
    let package = unpack(&zstd(&tar)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(package.readme.as_deref(), Some(README));
    assert_eq!(package.wasm, WASM);
    // Padding the tar to a 10 KiB record, as GNU tar does, is fine too.
    let mut padded = tar;
    padded.resize(10240, 0);
    assert!(unpack(&zstd(&padded)).is_ok());
}

#[test]
fn hostile_names_and_kinds_are_refused() {
    type Expect = fn(&PackageError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "path traversal",
            valid_plus(&[file("../x", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(n) if n == "../x"),
        ),
        (
            "traversal to a known name",
            valid_plus(&[file("../nexus.toml", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(n) if n == "../nexus.toml"),
        ),
        (
            "absolute path",
            valid_plus(&[file("/etc/passwd", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(n) if n == "/etc/passwd"),
        ),
        (
            "nested path",
            valid_plus(&[file("dir/README.md", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(_)),
        ),
        (
            "dot-slash prefix",
            valid_plus(&[file("./README.md", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(_)),
        ),
        (
            "unknown file",
            valid_plus(&[file("notes.txt", b"x")]),
            |e| matches!(e, PackageError::UnexpectedEntry(_)),
        ),
        (
            "symlink",
            zstd(&{
                let mut tar = Vec::new();
                push_entry(
                    &mut tar,
                    &header(b"nexus.toml", EntryType::Regular, MANIFEST.len() as u64),
                    MANIFEST.as_bytes(),
                );
                let mut link = header(b"agent.wasm", EntryType::Symlink, 0);
                link.set_link_name("/etc/passwd")
                    .unwrap_or_else(|e| panic!("{e}"));
                link.set_cksum();
                push_entry(&mut tar, &link, b"");
                tar.extend_from_slice(&[0; 1024]);
                tar
            }),
            |e| matches!(e, PackageError::NotRegularFile { name, kind } if name == "agent.wasm" && kind.contains("symbolic link")),
        ),
        (
            "hard link",
            valid_plus(&[(b"README.md", EntryType::Link, b"")]),
            |e| matches!(e, PackageError::NotRegularFile { kind, .. } if kind.contains("hard link")),
        ),
        (
            "directory",
            valid_plus(&[(b"assets/", EntryType::Directory, b"")]),
            |e| matches!(e, PackageError::NotRegularFile { kind, .. } if kind.contains("directory")),
        ),
        (
            "device",
            valid_plus(&[(b"README.md", EntryType::Char, b"")]),
            |e| matches!(e, PackageError::NotRegularFile { kind, .. } if kind.contains("character device")),
        ),
        (
            "GNU long name",
            valid_plus(&[(b"././@LongLink", EntryType::GNULongName, b"README.md\0")]),
            |e| matches!(e, PackageError::NotRegularFile { kind, .. } if kind.contains("extension header")),
        ),
        (
            "PAX header",
            valid_plus(&[(b"PaxHeader/x", EntryType::XHeader, b"20 path=README.md\n")]),
            |e| matches!(e, PackageError::NotRegularFile { kind, .. } if kind.contains("extension header")),
        ),
        (
            "duplicate manifest",
            valid_plus(&[file("nexus.toml", MANIFEST.as_bytes())]),
            |e| matches!(e, PackageError::DuplicateEntry(n) if n == "nexus.toml"),
        ),
        (
            "duplicate signature",
            valid_plus(&[file("signature", b"a"), file("signature", b"b")]),
            |e| matches!(e, PackageError::DuplicateEntry(n) if n == "signature"),
        ),
        (
            "missing agent.wasm",
            zstd(&raw_tar(&[file("nexus.toml", MANIFEST.as_bytes())])),
            |e| *e == PackageError::MissingEntry("agent.wasm"),
        ),
        (
            "missing manifest",
            zstd(&raw_tar(&[file("agent.wasm", WASM)])),
            |e| *e == PackageError::MissingEntry("nexus.toml"),
        ),
        ("empty tar", zstd(&[0; 1024]), |e| {
            *e == PackageError::MissingEntry("nexus.toml")
        }),
        (
            "core module",
            zstd(&raw_tar(&[
                file("nexus.toml", MANIFEST.as_bytes()),
                file("agent.wasm", CORE_MODULE),
            ])),
            |e| matches!(e, PackageError::InvalidWasm(m) if m.contains("component")),
        ),
        (
            "invalid manifest",
            zstd(&raw_tar(&[
                file("nexus.toml", b"[agent]\nname = 1\n"),
                file("agent.wasm", WASM),
            ])),
            |e| matches!(e, PackageError::InvalidManifest(m) if m.problems.iter().any(|p| p.line == 2 && p.field == "agent.name")),
        ),
        (
            "manifest not UTF-8",
            zstd(&raw_tar(&[
                file("nexus.toml", b"[agent]\nname = \"\xff\"\n"),
                file("agent.wasm", WASM),
            ])),
            |e| matches!(e, PackageError::InvalidManifest(m) if m.first().is_some_and(|p| p.line == 2 && p.message.contains("UTF-8"))),
        ),
        (
            "README not UTF-8",
            valid_plus(&[file("README.md", b"\xc3\x28")]),
            |e| *e == PackageError::NotUtf8("README.md"),
        ),
    ];
    for (what, bytes, expected) in cases {
        let err = unpack_err(&bytes);
        assert!(expected(&err), "{what}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn too_many_entries() {
    // Seventeen entries: with four known names, the first extra one is already refused.
    let names: Vec<String> = (0..MAX_ENTRIES + 1).map(|i| format!("asset-{i}")).collect();
    let extra: Vec<_> = names.iter().map(|n| file(n, b"x")).collect();
    assert!(unpack(&valid_plus(&extra)).is_err());

    // The count guard itself, with a lower limit.
    let limits = ReadLimits {
        entries: 2,
        ..ReadLimits::DEFAULT
    };
    let three = valid_plus(&[file("README.md", README.as_bytes())]);
    assert_eq!(
        unpack_with(&three, &limits, &mut Unmetered).err(),
        Some(PackageError::TooManyEntries { limit: 2 })
    );
    assert!(unpack(&three).is_ok());
}

/// 200 MiB of zeros, streamed through the encoder: a few KiB compressed. To tar they read as
/// an end-of-archive marker followed by padding, which is drained against the budget.
fn zeros_bomb() -> Vec<u8> {
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap_or_else(|e| panic!("{e}"));
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..200 {
        encoder.write_all(&chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    encoder.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn zstd_bomb_stops_at_the_expansion_limit() {
    let bomb = zeros_bomb();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    assert_eq!(
        unpack_err(&bomb),
        PackageError::TooCompressed {
            compressed: bomb.len() as u64,
            limit: EXPANSION_GRACE_BYTES
        }
    );
}

#[test]
fn zstd_bomb_stops_at_the_uncompressed_limit() {
    // Without the ratio, the absolute limit still holds.
    let bomb = zeros_bomb();
    let limits = ReadLimits {
        expansion: u64::MAX,
        ..ReadLimits::DEFAULT
    };
    assert_eq!(
        unpack_with(&bomb, &limits, &mut Unmetered).err(),
        Some(PackageError::TooLarge {
            what: "the package contents (uncompressed)",
            limit: MAX_UNCOMPRESSED_BYTES
        })
    );
}

#[test]
fn tar_bomb_is_refused_from_its_header() {
    // An entry declaring 200 MiB: refused before any of it is read or allocated.
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    push_entry(
        &mut head,
        &header(b"nexus.toml", EntryType::Regular, MANIFEST.len() as u64),
        MANIFEST.as_bytes(),
    );
    head.extend_from_slice(header(b"agent.wasm", EntryType::Regular, 200 * MIB).as_bytes());
    encoder.write_all(&head).unwrap_or_else(|e| panic!("{e}"));
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..200 {
        encoder.write_all(&chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    let bomb = encoder.finish().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        unpack_err(&bomb),
        PackageError::TooLarge { limit, .. } if limit == MAX_UNCOMPRESSED_BYTES
    ));
}

#[test]
fn uncompressed_limit_counts_every_entry() {
    // Entries each under the limit but together over it: their declared sizes stop them.
    let limits = ReadLimits {
        uncompressed: 64 * 1024,
        ..ReadLimits::DEFAULT
    };
    let big = vec![b'#'; 40 * 1024];
    let bytes = valid_plus(&[file("README.md", &big), file("signature", &big)]);
    assert_eq!(
        unpack_with(&bytes, &limits, &mut Unmetered).err(),
        Some(PackageError::TooLarge {
            what: "the package contents (uncompressed)",
            limit: 64 * 1024
        })
    );
    assert!(matches!(unpack(&bytes), Ok(p) if p.readme.is_some()));
}

#[test]
fn compressed_limit() {
    let package = packed(Some(README));
    let limits = ReadLimits {
        compressed: package.bytes.len() as u64 - 1,
        ..ReadLimits::DEFAULT
    };
    assert_eq!(
        unpack_with(&package.bytes, &limits, &mut Unmetered).err(),
        Some(PackageError::TooLarge {
            what: "the package archive",
            limit: package.bytes.len() as u64 - 1
        })
    );
}

#[test]
fn large_packages_stay_within_the_decoder_window() {
    // More than the largest window the decoder accepts, so a compression level whose window
    // is too large for `MAX_WINDOW_LOG` would fail here.
    let mut wasm = WASM.to_vec();
    let mut x: u32 = 1;
    wasm.extend((0..(1usize << MAX_WINDOW_LOG) + MIB as usize).map(|i| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        if i % 3 == 0 { (x >> 24) as u8 } else { b'a' }
    }));
    let package = pack(MANIFEST, &wasm, None).unwrap_or_else(|e| panic!("{e}"));
    let back = unpack(&package.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.wasm.len(), wasm.len());
}

#[test]
fn oversized_zstd_window_is_refused() {
    let tar = raw_tar(&[
        file("nexus.toml", MANIFEST.as_bytes()),
        file("agent.wasm", WASM),
    ]);
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap_or_else(|e| panic!("{e}"));
    encoder
        .window_log(MAX_WINDOW_LOG + 4)
        .unwrap_or_else(|e| panic!("{e}"));
    encoder.write_all(&tar).unwrap_or_else(|e| panic!("{e}"));
    let bytes = encoder.finish().unwrap_or_else(|e| panic!("{e}"));
    let err = unpack_err(&bytes);
    assert!(matches!(err, PackageError::InvalidArchive(_)));
}

#[test]
fn garbage_and_corruption_are_invalid_archives() {
    let package = packed(Some(README));
    let tar = decompress(&package.bytes);

    let mut bad_checksum = tar.clone();
    bad_checksum[0] ^= 0x01; // first byte of the first entry's name
    let mut trailing = tar.clone();
    trailing.extend_from_slice(b"hidden payload");
    let mut data_flip = package.bytes.clone();
    let middle = data_flip.len() / 2;
    data_flip[middle] ^= 0xff;

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty input".into(), Vec::new()),
        ("garbage".into(), b"this is not a package at all".to_vec()),
        (
            "random-looking bytes".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("zstd magic only".into(), vec![0x28, 0xb5, 0x2f, 0xfd]),
        ("uncompressed tar".into(), tar.clone()),
        ("tar header checksum".into(), zstd(&bad_checksum)),
        ("data after the archive".into(), zstd(&trailing)),
        ("corrupted compressed byte".into(), data_flip),
    ];
    for cut in [
        1,
        8,
        package.bytes.len() / 2,
        package.bytes.len() - 4,
        package.bytes.len() - 1,
    ] {
        cases.push((
            format!("truncated to {cut} bytes"),
            package.bytes[..cut].to_vec(),
        ));
    }
    // A tar cut off in the middle of an entry, then properly compressed.
    cases.push(("truncated tar".into(), zstd(&tar[..700])));

    for (what, bytes) in cases {
        let err = unpack_err(&bytes);
        assert!(
            matches!(err, PackageError::InvalidArchive(_)),
            "{what}: {err:?}"
        );
    }
}

/// A [`Reserve`] that records what is asked and grants up to `cap` bytes in all.
struct Ledger {
    asked: Vec<u64>,
    granted: u64,
    cap: u64,
}

impl Ledger {
    fn new(cap: u64) -> Self {
        Self {
            asked: Vec::new(),
            granted: 0,
            cap,
        }
    }
}

impl Reserve for Ledger {
    fn reserve(&mut self, bytes: u64) -> Result<(), String> {
        self.asked.push(bytes);
        if self.granted + bytes > self.cap {
            return Err(format!("no room for {bytes} bytes"));
        }
        self.granted += bytes;
        Ok(())
    }
}

/// An archive of a manifest and an `agent.wasm` declaring `wasm_size` bytes (a component
/// header, then `zeros` zeros): a 4 KiB bomb for 120 MiB.
fn header_bomb(wasm_size: u64, zeros: u64) -> Vec<u8> {
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    push_entry(
        &mut head,
        &header(b"nexus.toml", EntryType::Regular, MANIFEST.len() as u64),
        MANIFEST.as_bytes(),
    );
    head.extend_from_slice(header(b"agent.wasm", EntryType::Regular, wasm_size).as_bytes());
    head.extend_from_slice(WASM);
    encoder.write_all(&head).unwrap_or_else(|e| panic!("{e}"));
    let chunk = vec![0u8; MIB as usize];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(MIB);
        encoder
            .write_all(&chunk[..n as usize])
            .unwrap_or_else(|e| panic!("{e}"));
        left -= n;
    }
    encoder.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_bomb_is_refused_from_its_headers_before_its_contents_are_reserved() {
    let bomb = header_bomb(120 * MIB, 120 * MIB);
    assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
    let mut ledger = Ledger::new(u64::MAX);
    let err = unpack_within(&bomb, &mut ledger).err();
    assert_eq!(
        err,
        Some(PackageError::TooCompressed {
            compressed: bomb.len() as u64,
            limit: EXPANSION_GRACE_BYTES
        })
    );
    // The archive copy, the decoder (its window, the frame being larger) and the manifest;
    // nothing for the 120 MiB entry.
    assert_eq!(
        ledger.asked,
        [
            bomb.len() as u64,
            (1 << MAX_WINDOW_LOG) + 128 * 1024 + DECODER_OVERHEAD_BYTES,
            MANIFEST.len() as u64
        ]
    );
}

#[test]
fn a_declared_size_over_the_limit_is_refused_before_anything_is_reserved_for_it() {
    // Over the absolute limit: refused whatever the ratio allows.
    let bomb = header_bomb(MAX_UNCOMPRESSED_BYTES + 1, 0);
    let limits = ReadLimits {
        expansion: u64::MAX,
        ..ReadLimits::DEFAULT
    };
    let mut ledger = Ledger::new(u64::MAX);
    assert_eq!(
        unpack_with(&bomb, &limits, &mut ledger).err(),
        Some(PackageError::TooLarge {
            what: "an entry of the package",
            limit: MAX_UNCOMPRESSED_BYTES
        })
    );
    assert!(
        ledger.asked.iter().all(|n| *n < 16 * MIB),
        "{:?}",
        ledger.asked
    );
}

#[test]
fn reservations_cover_the_archive_the_decoder_and_each_entry() {
    let package = packed(Some(README));
    let mut ledger = Ledger::new(u64::MAX);
    let back = unpack_within(&package.bytes, &mut ledger).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, package);
    let tar_len = decompress(&package.bytes).len() as u64;
    // Entries in archive order: README.md, agent.wasm, nexus.toml. A one-frame archive that
    // declares its content size needs no larger decoder buffer than that.
    assert_eq!(
        ledger.asked,
        [
            package.bytes.len() as u64,
            tar_len + DECODER_OVERHEAD_BYTES,
            README.len() as u64,
            WASM.len() as u64,
            MANIFEST.len() as u64,
        ]
    );
}

#[test]
fn a_refused_reservation_stops_unpacking_before_the_entry_is_read() {
    let mut wasm = WASM.to_vec();
    wasm.extend(std::iter::repeat_n(7u8, 100_000));
    let package = pack(MANIFEST, &wasm, None).unwrap_or_else(|e| panic!("{e}"));
    let up_front = package.bytes.len() as u64 + 200_000 + DECODER_OVERHEAD_BYTES;
    // Room for the archive and the decoder, not for the component.
    let mut ledger = Ledger::new(up_front);
    let err = unpack_within(&package.bytes, &mut ledger).err();
    assert!(
        matches!(&err, Some(PackageError::OverBudget(m)) if m.contains("no room")),
        "{err:?}"
    );
    assert_eq!(ledger.asked.last(), Some(&(wasm.len() as u64)));
    // Refused up front: nothing is decompressed.
    let mut ledger = Ledger::new(0);
    assert!(matches!(
        unpack_within(&package.bytes, &mut ledger),
        Err(PackageError::OverBudget(_))
    ));
    assert_eq!(ledger.asked, [package.bytes.len() as u64]);
}

#[test]
fn pack_refuses_contents_that_compress_too_well() {
    let mut wasm = WASM.to_vec();
    wasm.resize(EXPANSION_GRACE_BYTES as usize + 1, 0);
    assert!(matches!(
        pack(MANIFEST, &wasm, None),
        Err(PackageError::TooCompressed { limit, .. }) if limit == EXPANSION_GRACE_BYTES
    ));
    // Under the grace, any ratio goes.
    wasm.truncate(EXPANSION_GRACE_BYTES as usize - 64 * 1024);
    let package = pack(MANIFEST, &wasm, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(unpack(&package.bytes).is_ok());
}
