//! The `.ncpkg` archive: deterministic packing and defensive unpacking.

use std::fmt;
use std::io::{self, Read, Write};

use nexus_core::{NewPackage, PackageRef};
use sha2::{Digest as _, Sha256};

use crate::manifest::{MANIFEST_FILE, Manifest, ManifestError, parse_manifest};

/// File extension of packages.
pub const PACKAGE_EXTENSION: &str = "ncpkg";
/// Entry holding the agent component.
pub const WASM_ENTRY: &str = "agent.wasm";
/// Optional entry holding the README (UTF-8 Markdown).
pub const README_ENTRY: &str = "README.md";
/// Reserved for the publisher's signature (DESIGN.md §7). [`pack`] never writes it; [`unpack`]
/// accepts it (once) and ignores it until signatures are implemented.
pub const SIGNATURE_ENTRY: &str = "signature";

/// Largest archive accepted, compressed. Equal to the largest request body the server can be
/// configured to buffer (`nexus-config`), and far above any real agent.
pub const MAX_COMPRESSED_BYTES: u64 = 64 * 1024 * 1024;
/// Largest total of the decompressed tar stream (headers, contents, padding). Counted while
/// decompressing, so a zstd or tar bomb stops here instead of exhausting memory; twice the
/// compressed limit, since components compress roughly 2-4x.
pub const MAX_UNCOMPRESSED_BYTES: u64 = 128 * 1024 * 1024;
/// Most the contents (the decompressed tar stream) may expand over the archive, past
/// [`EXPANSION_GRACE_BYTES`]. Components compress 2-5x at [`COMPRESSION_LEVEL`]; an archive
/// that expands 1,000x or more is a bomb, and this ratio keeps what an upload can make the
/// server hold in proportion to what was sent (the rule of zip readers such as Apache POI's
/// minimum inflate ratio). It lets a bomb be refused from its tar headers, before it is read.
pub const MAX_EXPANSION_RATIO: u64 = 32;
/// Contents up to this size are accepted whatever their ratio: small packages (a manifest and a
/// component of a few MiB) may compress as well as they like.
pub const EXPANSION_GRACE_BYTES: u64 = 16 * 1024 * 1024;
/// Memory the zstd decoder takes besides its window buffer: its context (~160 KiB) and an
/// input block (128 KiB), rounded up. Reserved with the window before decompressing.
pub const DECODER_OVERHEAD_BYTES: u64 = 512 * 1024;
/// Most tar entries read. A package has at most four known entries today; the headroom is for
/// assets, and the cap bounds work on archives made of many tiny entries.
pub const MAX_ENTRIES: usize = 16;
/// Largest zstd window (log2 bytes) the decoder accepts: 8 MiB, enough for every standard
/// compression level (1-19); a frame asking for more is refused instead of allocating it.
pub const MAX_WINDOW_LOG: u32 = 23;
/// zstd level used by [`pack`]. Fixed, so packing is reproducible; 9 compresses components
/// well while staying fast in debug builds.
pub const COMPRESSION_LEVEL: i32 = 9;

/// Regular-file mode of every entry.
const ENTRY_MODE: u32 = 0o644;
/// The largest zstd block: the decoder's output buffer is its window plus one block.
const ZSTD_BLOCK_BYTES: u64 = 128 * 1024;
/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Version and layer of a component (component-model binary format).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
/// Version and layer of a core module.
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// A package: its parts and its archive.
#[derive(Clone, PartialEq, Eq)]
pub struct Package {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The manifest exactly as written (`nexus.toml` in the archive).
    pub manifest_text: String,
    /// The agent component (`agent.wasm`).
    pub wasm: Vec<u8>,
    /// The README, if any.
    pub readme: Option<String>,
    /// The `.ncpkg` archive.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of [`Package::bytes`].
    pub digest: String,
}

impl Package {
    /// `namespace/name@version` from the manifest.
    pub fn package_ref(&self) -> PackageRef {
        self.manifest.package_ref()
    }

    /// Size of the archive in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The metadata to record for this package version.
    pub fn new_package(&self) -> NewPackage {
        NewPackage {
            reference: self.package_ref(),
            digest: self.digest.clone(),
            size_bytes: self.size_bytes(),
            manifest: self.manifest.to_json(),
        }
    }
}

impl fmt::Debug for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("reference", &self.package_ref().to_string())
            .field("digest", &self.digest)
            .field("size_bytes", &self.bytes.len())
            .field("wasm_bytes", &self.wasm.len())
            .field("readme", &self.readme.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a package could not be built or read. Each variant is one stable kind of failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// `nexus.toml` does not parse or validate; the inner error names line and field.
    #[error("invalid manifest: {0}")]
    InvalidManifest(#[from] ManifestError),
    /// `agent.wasm` is not a WebAssembly component (too short, wrong magic, a core module).
    #[error("invalid {WASM_ENTRY}: {0}")]
    InvalidWasm(String),
    /// The archive, its contents or one entry is over a size limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The contents are larger than [`MAX_EXPANSION_RATIO`] times the archive (and than
    /// [`EXPANSION_GRACE_BYTES`]): a compression bomb, refused from its tar headers where they
    /// say so.
    #[error(
        "the package contents (uncompressed) are larger than {limit} bytes, {MAX_EXPANSION_RATIO} times the {compressed}-byte archive; real components compress 2-5x"
    )]
    TooCompressed {
        /// The archive's size, in bytes.
        compressed: u64,
        /// What its contents may take, in bytes.
        limit: u64,
    },
    /// The caller's [`Reserve`] refused memory the archive needs: the node is busy with other
    /// archives. Not a fault of the package; the same bytes may be accepted later.
    #[error("{0}")]
    OverBudget(String),
    /// The archive has more than [`MAX_ENTRIES`] entries.
    #[error("the package has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a zstd-compressed tar archive, or it is corrupt or truncated.
    #[error("not a valid .ncpkg archive: {0}")]
    InvalidArchive(String),
    /// A required entry (`nexus.toml`, `agent.wasm`) is missing.
    #[error("the package has no `{0}` entry")]
    MissingEntry(&'static str),
    /// An entry has a name other than the known ones: a path, `..`, an absolute path, an
    /// unknown file. The name is shown lossily decoded and shortened.
    #[error(
        "unexpected entry {0:?}: a package holds only `nexus.toml`, `agent.wasm` and `README.md` at its root"
    )]
    UnexpectedEntry(String),
    /// An entry is not a regular file (a link, a directory, a device, a tar extension header).
    #[error("entry {name:?} is {kind}; a package holds only regular files")]
    NotRegularFile {
        /// The entry's name, lossily decoded and shortened.
        name: String,
        /// What it is instead, e.g. `a symbolic link`.
        kind: String,
    },
    /// The same entry appears twice.
    #[error("entry {0:?} appears more than once")]
    DuplicateEntry(String),
    /// A text entry (`nexus.toml`, `README.md`) is not UTF-8.
    #[error("entry `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    /// Building the archive failed (the compressor refused its parameters or ran out of
    /// memory); not caused by the inputs.
    #[error("could not build the archive: {0}")]
    Build(String),
}

/// `sha256:<hex>` of `bytes`: the digest of a package archive.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `wasm` starts like a WebAssembly component (magic `\0asm`, then version
/// `0d 00 01 00`). Only the 8-byte header is checked; compiling checks the rest.
pub fn check_component(wasm: &[u8]) -> Result<(), PackageError> {
    let invalid = |message: String| Err(PackageError::InvalidWasm(message));
    let Some((magic, version)) = wasm
        .get(..8)
        .map(|header| header.split_at(WASM_MAGIC.len()))
    else {
        return invalid(format!(
            "{} bytes is too short for a WebAssembly component (the header alone is 8 bytes)",
            wasm.len()
        ));
    };
    if magic != WASM_MAGIC {
        return invalid("not WebAssembly: it does not start with `\\0asm`".to_owned());
    }
    if version == CORE_MODULE_VERSION {
        return invalid(
            "this is a core WebAssembly module, but NexusCore runs components: build for \
             wasm32-wasip2 or wrap the module with `wasm-tools component new`"
                .to_owned(),
        );
    }
    if version != COMPONENT_VERSION {
        return invalid(format!(
            "unknown WebAssembly version/layer {version:02x?}; a component has {COMPONENT_VERSION:02x?}"
        ));
    }
    Ok(())
}

/// Builds a package from a manifest text, a component and an optional README.
///
/// Validates the manifest (as `nexus.toml`) and the component header, then writes the
/// deterministic archive described in the crate documentation. Fails with
/// [`PackageError::TooLarge`] when the result would exceed what [`unpack`] accepts.
pub fn pack(
    manifest_text: &str,
    wasm: &[u8],
    readme: Option<&str>,
) -> Result<Package, PackageError> {
    let manifest = parse_manifest(MANIFEST_FILE, manifest_text)?;
    check_component(wasm)?;
    let too_large = PackageError::TooLarge {
        what: "the package contents (uncompressed)",
        limit: MAX_UNCOMPRESSED_BYTES,
    };
    let contents_len =
        manifest_text.len() as u64 + wasm.len() as u64 + readme.map_or(0, |r| r.len() as u64);
    if contents_len > MAX_UNCOMPRESSED_BYTES {
        return Err(too_large);
    }

    let mut entries: Vec<(&str, &[u8])> = vec![
        (MANIFEST_FILE, manifest_text.as_bytes()),
        (WASM_ENTRY, wasm),
    ];
    if let Some(readme) = readme {
        entries.push((README_ENTRY, readme.as_bytes()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let build = |e: io::Error| PackageError::Build(e.to_string());
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(ENTRY_MODE);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("").map_err(build)?;
        header.set_groupname("").map_err(build)?;
        tar.append_data(&mut header, name, data).map_err(build)?;
    }
    let tar = tar.into_inner().map_err(build)?;
    if tar.len() as u64 > MAX_UNCOMPRESSED_BYTES {
        return Err(too_large);
    }

    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), COMPRESSION_LEVEL).map_err(build)?;
    encoder.include_checksum(true).map_err(build)?;
    encoder.include_contentsize(true).map_err(build)?;
    encoder
        .set_pledged_src_size(Some(tar.len() as u64))
        .map_err(build)?;
    encoder.write_all(&tar).map_err(build)?;
    let bytes = encoder.finish().map_err(build)?;
    if bytes.len() as u64 > MAX_COMPRESSED_BYTES {
        return Err(PackageError::TooLarge {
            what: "the package archive",
            limit: MAX_COMPRESSED_BYTES,
        });
    }
    // What `unpack` would refuse: contents that compress too well.
    let limit = ReadLimits::DEFAULT.contents(bytes.len() as u64);
    if tar.len() as u64 > limit {
        return Err(PackageError::TooCompressed {
            compressed: bytes.len() as u64,
            limit,
        });
    }

    Ok(Package {
        digest: digest_of(&bytes),
        manifest,
        manifest_text: manifest_text.to_owned(),
        wasm: wasm.to_vec(),
        readme: readme.map(str::to_owned),
        bytes,
    })
}

/// Reads a package archive, treating it as hostile (see the crate documentation for the
/// rules), and validates its manifest and component header. The digest is computed from
/// `bytes`; comparing it with an expected one is the caller's business. Takes memory without
/// asking anyone: see [`unpack_within`] for a server.
pub fn unpack(bytes: &[u8]) -> Result<Package, PackageError> {
    unpack_within(bytes, &mut Unmetered)
}

/// Like [`unpack`], asking `budget` for memory before taking it: the copy of the archive the
/// [`Package`] keeps, the decoder's window and buffers, and each entry's contents, reserved by
/// the size its tar header declares (which bounds what is read) once that size has been
/// checked against the limits. If `budget` refuses, unpacking stops with
/// [`PackageError::OverBudget`] before the memory is taken. Everything reserved is still in
/// use when this returns (the package holds it) or was freed (on an error); releasing the
/// reservation once the package is dropped is the caller's business.
///
/// Apart from transient buffers of a few KiB, what is reserved bounds what is allocated: at
/// most the archive's size, plus [`DECODER_OVERHEAD_BYTES`] and an 8 MiB window, plus
/// [`MAX_UNCOMPRESSED_BYTES`] (or less, see [`MAX_EXPANSION_RATIO`]).
pub fn unpack_within(bytes: &[u8], budget: &mut dyn Reserve) -> Result<Package, PackageError> {
    unpack_with(bytes, &ReadLimits::DEFAULT, budget)
}

/// Memory asked for before it is taken, so a caller can bound what all the archives it
/// unpacks at once hold together (see [`unpack_within`]).
pub trait Reserve {
    /// Takes `bytes` more from the budget, or refuses with a message for the client (why, and
    /// that it may retry). May wait for memory to be released; it runs on the unpacking
    /// thread.
    fn reserve(&mut self, bytes: u64) -> Result<(), String>;
}

/// A [`Reserve`] that grants everything: [`unpack`]'s, for tools that read one package.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

impl Reserve for Unmetered {
    fn reserve(&mut self, _bytes: u64) -> Result<(), String> {
        Ok(())
    }
}

/// The limits [`unpack`] enforces; lowered in tests to exercise each guard cheaply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
    pub(crate) expansion: u64,
    pub(crate) grace: u64,
    pub(crate) entries: usize,
}

impl ReadLimits {
    pub(crate) const DEFAULT: Self = Self {
        compressed: MAX_COMPRESSED_BYTES,
        uncompressed: MAX_UNCOMPRESSED_BYTES,
        expansion: MAX_EXPANSION_RATIO,
        grace: EXPANSION_GRACE_BYTES,
        entries: MAX_ENTRIES,
    };

    /// What the contents of an archive of `compressed` bytes may take.
    pub(crate) fn contents(&self, compressed: u64) -> u64 {
        self.expansion
            .saturating_mul(compressed)
            .max(self.grace)
            .min(self.uncompressed)
    }

    /// The error for contents over [`contents`](Self::contents).
    fn contents_error(&self, compressed: u64) -> PackageError {
        let limit = self.contents(compressed);
        if limit < self.uncompressed {
            PackageError::TooCompressed { compressed, limit }
        } else {
            PackageError::TooLarge {
                what: "the package contents (uncompressed)",
                limit,
            }
        }
    }
}

/// What the zstd decoder allocates for `bytes`: its output buffer (the window plus a block,
/// or the content size if the archive is one frame that declares a smaller one: the decoder
/// refuses output beyond it) and [`DECODER_OVERHEAD_BYTES`].
fn decoder_bytes(bytes: &[u8]) -> u64 {
    let window = (1u64 << MAX_WINDOW_LOG) + ZSTD_BLOCK_BYTES;
    let one_frame =
        zstd::zstd_safe::find_frame_compressed_size(bytes).is_ok_and(|n| n == bytes.len());
    let buffer = match zstd::zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(size)) if one_frame => window.min(size),
        _ => window,
    };
    buffer + DECODER_OVERHEAD_BYTES
}

pub(crate) fn unpack_with(
    bytes: &[u8],
    limits: &ReadLimits,
    budget: &mut dyn Reserve,
) -> Result<Package, PackageError> {
    let compressed = bytes.len() as u64;
    if compressed > limits.compressed {
        return Err(PackageError::TooLarge {
            what: "the package archive",
            limit: limits.compressed,
        });
    }
    if bytes.is_empty() {
        return Err(PackageError::InvalidArchive(
            "the package is empty".to_owned(),
        ));
    }
    // The copy the package keeps, then the decoder.
    budget
        .reserve(compressed)
        .map_err(PackageError::OverBudget)?;
    budget
        .reserve(decoder_bytes(bytes))
        .map_err(PackageError::OverBudget)?;
    let mut decoder = zstd::stream::read::Decoder::with_buffer(bytes)
        .map_err(|e| PackageError::InvalidArchive(format!("cannot start decompressing: {e}")))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|e| PackageError::InvalidArchive(format!("cannot start decompressing: {e}")))?;
    let contents_limit = limits.contents(compressed);
    let mut reader = Budget {
        inner: decoder,
        remaining: contents_limit,
        exceeded: false,
    };
    let contents = match read_entries(&mut reader, limits, contents_limit, budget) {
        Err(_) if reader.exceeded => return Err(limits.contents_error(compressed)),
        Err(ContentsError::OverLimit) => return Err(limits.contents_error(compressed)),
        Err(ContentsError::Package(e)) => return Err(e),
        Ok(contents) => contents,
    };
    drop(reader);

    let manifest_bytes = contents
        .manifest
        .ok_or(PackageError::MissingEntry(MANIFEST_FILE))?;
    let wasm = contents
        .wasm
        .ok_or(PackageError::MissingEntry(WASM_ENTRY))?;
    let manifest_text = String::from_utf8(manifest_bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ManifestError::single(
            MANIFEST_FILE,
            valid.iter().filter(|b| **b == b'\n').count() + 1,
            "",
            "the file is not valid UTF-8",
        )
    })?;
    let manifest = parse_manifest(MANIFEST_FILE, &manifest_text)?;
    check_component(&wasm)?;
    let readme = contents
        .readme
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| PackageError::NotUtf8(README_ENTRY))?;
    Ok(Package {
        manifest,
        manifest_text,
        wasm,
        readme,
        bytes: bytes.to_vec(),
        digest: digest_of(bytes),
    })
}

/// Entries found in an archive, before their contents are checked.
#[derive(Default)]
struct Contents {
    manifest: Option<Vec<u8>>,
    wasm: Option<Vec<u8>>,
    readme: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
}

impl Contents {
    /// The slot of a known entry name.
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Vec<u8>>> {
        if name == MANIFEST_FILE.as_bytes() {
            Some(&mut self.manifest)
        } else if name == WASM_ENTRY.as_bytes() {
            Some(&mut self.wasm)
        } else if name == README_ENTRY.as_bytes() {
            Some(&mut self.readme)
        } else if name == SIGNATURE_ENTRY.as_bytes() {
            Some(&mut self.signature)
        } else {
            None
        }
    }
}

/// Why [`read_entries`] stopped.
enum ContentsError {
    /// The declared entry sizes add up to more than the contents may take.
    OverLimit,
    /// Anything else.
    Package(PackageError),
}

impl From<PackageError> for ContentsError {
    fn from(e: PackageError) -> Self {
        Self::Package(e)
    }
}

/// Reads the tar stream: every entry's header is checked before its contents are read (its
/// declared size against the limits, then reserved from `budget`), and everything after the
/// end-of-archive marker must be zero padding.
fn read_entries<R: Read>(
    reader: &mut R,
    limits: &ReadLimits,
    contents_limit: u64,
    budget: &mut dyn Reserve,
) -> Result<Contents, ContentsError> {
    let corrupt = |e: io::Error| PackageError::InvalidArchive(e.to_string());
    let mut contents = Contents::default();
    let mut declared: u64 = 0;
    let mut archive = tar::Archive::new(&mut *reader);
    // Raw: no GNU long-name or PAX processing (which would buffer extension data); such
    // headers show up as entries of their own and are refused below.
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(corrupt)?;
        if index >= limits.entries {
            return Err(PackageError::TooManyEntries {
                limit: limits.entries,
            }
            .into());
        }
        let name = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(PackageError::NotRegularFile {
                name: shown(&name),
                kind: describe(kind),
            }
            .into());
        }
        let Some(slot) = contents.slot(&name) else {
            return Err(PackageError::UnexpectedEntry(shown(&name)).into());
        };
        if slot.is_some() {
            return Err(PackageError::DuplicateEntry(shown(&name)).into());
        }
        let size = entry.size();
        if size > limits.uncompressed {
            return Err(PackageError::TooLarge {
                what: "an entry of the package",
                limit: limits.uncompressed,
            }
            .into());
        }
        // Whether the contents fit, from the headers alone: a bomb stops here, unread.
        declared = declared.saturating_add(size);
        if declared > contents_limit {
            return Err(ContentsError::OverLimit);
        }
        budget.reserve(size).map_err(PackageError::OverBudget)?;
        let len = usize::try_from(size).map_err(|_| PackageError::TooLarge {
            what: "an entry of the package",
            limit: usize::MAX as u64,
        })?;
        // Exactly the declared size, allocated once: what was reserved, and no doubling while
        // growing (the entry yields at most `size` bytes).
        let mut data = Vec::new();
        data.try_reserve_exact(len).map_err(|e| {
            PackageError::OverBudget(format!("cannot allocate {size} bytes for an entry: {e}"))
        })?;
        entry.read_to_end(&mut data).map_err(corrupt)?;
        if data.len() as u64 != size {
            return Err(PackageError::InvalidArchive(format!(
                "entry {:?} is truncated",
                shown(&name)
            ))
            .into());
        }
        *slot = Some(data);
    }

    // Drain the rest (tar padding) so the zstd checksum is verified and nothing hides after
    // the end-of-archive marker; the budget still applies.
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).map_err(corrupt)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(PackageError::InvalidArchive(
                "data after the end of the tar archive".to_owned(),
            )
            .into());
        }
    }
    Ok(contents)
}

/// An entry name as shown in errors: lossily decoded, at most 100 characters.
fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).chars().take(100).collect()
}

fn describe(kind: tar::EntryType) -> String {
    use tar::EntryType as T;
    match kind {
        T::Symlink => "a symbolic link".to_owned(),
        T::Link => "a hard link".to_owned(),
        T::Directory => "a directory".to_owned(),
        T::Char => "a character device".to_owned(),
        T::Block => "a block device".to_owned(),
        T::Fifo => "a FIFO".to_owned(),
        T::GNUSparse => "a sparse file".to_owned(),
        T::GNULongName | T::GNULongLink | T::XHeader | T::XGlobalHeader => {
            "a tar extension header (packages use plain ustar headers)".to_owned()
        }
        other => format!("an entry of type {:?}", char::from(other.as_byte())),
    }
}

/// Counts decompressed bytes and fails once more than the budget has been produced. Also
/// labels decompression errors, so they read apart from tar errors.
struct Budget<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("size limit exceeded"));
        }
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("decompression failed: {e}")))?;
        match self.remaining.checked_sub(n as u64) {
            Some(rest) => {
                self.remaining = rest;
                Ok(n)
            }
            None => {
                self.exceeded = true;
                Err(io::Error::other("size limit exceeded"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
