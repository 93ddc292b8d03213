//! Agent packages: the authoring manifest `nexus.toml` and the `.ncpkg` archive format.
//!
//! Pure: no network, no database, no files. Everything works on bytes in memory; callers read
//! and write files (DESIGN.md §11).
//!
//! # Manifest
//!
//! [`parse_manifest`] reads `nexus.toml` into a [`Manifest`] and validates it. Unknown keys are
//! errors, and a [`ManifestError`] lists every problem at once, each naming the file, the
//! 1-based line and the field (`agent.name`, `skills[0].id`), e.g. `nexus.toml:3: agent.name:
//! name `Bad` may only contain ...`. [`fields`] describes every field; `docs/manifest.md` is
//! rendered from it.
//!
//! # The `.ncpkg` format
//!
//! A tar archive compressed with zstd. The tar holds regular files only, at the root, with
//! these exact names (`./nexus.toml` or `dir/README.md` are refused):
//!
//! | entry | |
//! |---|---|
//! | `nexus.toml` | required: the manifest text exactly as written by the author |
//! | `agent.wasm` | required: the agent, a WebAssembly component (not a core module) |
//! | `README.md` | optional, UTF-8 |
//! | `signature` | reserved for the publisher signature (DESIGN.md §7); read and ignored for now |
//!
//! [`pack`] is deterministic: entries sorted by name (bytewise), ustar headers with mtime 0,
//! uid/gid 0, empty user and group names, mode `0o644`, no directory entries, then one zstd
//! frame at a fixed level ([`COMPRESSION_LEVEL`]) with the content size and checksum. The same
//! inputs give byte-identical archives with the same build of this crate (another zstd
//! library version may compress differently). The package digest is `sha256:<hex>` of the
//! compressed archive bytes ([`digest_of`]).
//!
//! [`unpack`] treats its input as hostile: the compressed size, the uncompressed size (counted
//! while decompressing, so a zstd or tar bomb stops early, and checked first against the sizes
//! the tar headers declare, so most bombs stop before any contents are read) and the number of
//! entries are bounded ([`MAX_COMPRESSED_BYTES`], [`MAX_UNCOMPRESSED_BYTES`], [`MAX_ENTRIES`]);
//! past [`EXPANSION_GRACE_BYTES`] the contents may be at most [`MAX_EXPANSION_RATIO`] times the
//! archive, so what an archive makes its reader hold stays in proportion to its size; names must be
//! exactly one of the names above (no paths, no `..`), only regular files are accepted (no
//! links, directories, devices, GNU or PAX extension headers), duplicates are refused, the zstd
//! window is capped ([`MAX_WINDOW_LOG`]) and only zero padding may follow the end of the tar.
//! Each failure is one [`PackageError`] variant.
//!
//! [`unpack_within`] does the same, asking the caller's [`Reserve`] for every allocation that
//! grows with the input (the archive copy, the decoder, each entry by its declared size) before
//! making it: a server bounds what all the uploads it unpacks at once hold together.

mod archive;
mod manifest;

pub use archive::{
    COMPRESSION_LEVEL, DECODER_OVERHEAD_BYTES, EXPANSION_GRACE_BYTES, MAX_COMPRESSED_BYTES,
    MAX_ENTRIES, MAX_EXPANSION_RATIO, MAX_UNCOMPRESSED_BYTES, MAX_WINDOW_LOG, PACKAGE_EXTENSION,
    Package, PackageError, README_ENTRY, Reserve, SIGNATURE_ENTRY, Unmetered, WASM_ENTRY,
    check_component, digest_of, pack, unpack, unpack_within,
};
pub use manifest::{
    AgentSection, Capabilities, DEFAULT_MODE, FieldKind, FieldSpec, Limits, MANIFEST_FILE,
    MAX_DESCRIPTION_CHARS, MAX_EXAMPLE_CHARS, MAX_EXAMPLES, MAX_HOSTS, MAX_MANIFEST_BYTES,
    MAX_MODES, MAX_SKILL_ID_LEN, MAX_SKILL_NAME_CHARS, MAX_SKILLS, MAX_TAG_CHARS, MAX_TAGS,
    MEMORY_MIB_RANGE, MODES, Manifest, ManifestError, ManifestProblem, Mode, Skill,
    TIMEOUT_SECS_RANGE, fields, parse_manifest, reference_table,
};
