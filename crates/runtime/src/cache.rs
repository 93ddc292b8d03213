//! The compiled-component cache: Cranelift output on disk, keyed by (component digest, engine
//! configuration), so a component is compiled once per node and every later start loads
//! machine code.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::RuntimeError;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// Caches in `dir` (created when first written); `None` compiles in memory every time.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The component for `bytes`: loaded from the cache, or compiled and then cached.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<Component, RuntimeError> {
        let Some(dir) = &self.dir else {
            return compile(engine, bytes);
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok(component),
                Err(e) => {
                    // A truncated or stale file: recompile and overwrite it.
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component");
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
        write_atomically(dir, &path, &compiled)?;
        deserialize(engine, &path)
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, RuntimeError> {
    Component::new(engine, bytes).map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))
}

/// `sha256(component)-hash(engine configuration)`: a file compiled by another wasmtime version
/// or with other settings is never loaded.
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{}-{:016x}",
        hex::encode(Sha256::digest(bytes)),
        hasher.finish()
    )
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Cache(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a cached component into memory. Not `deserialize_file`: that maps the file, and a
/// file truncated or rewritten in place under a running node would then crash it (SIGBUS).
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Result<Component, RuntimeError> {
    let bytes =
        std::fs::read(path).map_err(|e| RuntimeError::Cache(format!("{}: {e}", path.display())))?;
    // SAFETY: wasmtime requires that the bytes are machine code produced by
    // `Engine::precompile_component` for a compatible engine. Only this cache writes into its
    // directory (atomically, by rename), and the file name carries the engine's compatibility
    // hash; wasmtime also checks the header and rejects files from other versions or settings.
    unsafe { Component::deserialize(engine, &bytes) }
        .map_err(|e| RuntimeError::Cache(format!("{}: {e:#}", path.display())))
}
