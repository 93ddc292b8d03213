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

    /// The component for `bytes`: loaded from the cache, or compiled in memory. A freshly
    /// compiled component is written to the cache only by [`Uncached::keep`], once the caller
    /// has accepted it, so a component that is refused leaves no file behind.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<Loaded, RuntimeError> {
        let Some(dir) = &self.dir else {
            return Ok(Loaded::Fresh(Uncached {
                component: compile(engine, bytes)?,
                target: None,
            }));
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok(Loaded::Cached(component)),
                Err(e) => {
                    // A truncated or stale file: recompile, and overwrite it if kept.
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component");
                }
            }
        }
        Ok(Loaded::Fresh(Uncached {
            component: compile(engine, bytes)?,
            target: Some((dir.clone(), path)),
        }))
    }
}

/// A component as [`ComponentCache::load`] found it.
pub enum Loaded {
    /// Read from the cache.
    Cached(Component),
    /// Compiled now, not written to the cache yet.
    Fresh(Uncached),
}

impl Loaded {
    /// The component itself.
    pub fn component(&self) -> &Component {
        match self {
            Self::Cached(component) | Self::Fresh(Uncached { component, .. }) => component,
        }
    }
}

/// A component compiled in memory whose machine code is not in the cache (yet).
pub struct Uncached {
    component: Component,
    /// The cache directory and file it belongs in; `None` without a cache.
    target: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cached(_) => f.write_str("Cached"),
            Self::Fresh(uncached) => f.debug_tuple("Fresh").field(uncached).finish(),
        }
    }
}

impl std::fmt::Debug for Uncached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uncached")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Uncached {
    /// Writes the component's machine code to the cache, so later loads skip compilation.
    pub fn keep(&self) -> Result<(), RuntimeError> {
        let Some((dir, path)) = &self.target else {
            return Ok(());
        };
        let compiled = self
            .component
            .serialize()
            .map_err(|e| RuntimeError::Cache(format!("cannot serialize a component: {e:#}")))?;
        write_atomically(dir, path, &compiled)
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
