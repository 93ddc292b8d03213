//! The CLI's stored login sessions: `credentials.json` in the user's config directory
//! (`$NEXUS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/nexus`, else `~/.config/nexus`), one session
//! per server URL, readable by its owner only (0600, in a 0700 directory). Written whole to a
//! temporary file and renamed, so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The file's name inside the config directory.
const FILE_NAME: &str = "credentials.json";
/// Largest credentials file read: a few sessions take a few KiB; anything bigger is not ours.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One server's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    pub token: String,
    pub user: String,
    pub tenant: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// By server URL, as given to `--server`.
    sessions: BTreeMap<String, StoredSession>,
}

/// The directory the CLI keeps its credentials in, if one can be found.
pub fn config_dir() -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("NEXUS_CONFIG_DIR")
        .or_else(|| from_env("XDG_CONFIG_HOME").map(|dir| dir.join("nexus")))
        .or_else(|| from_env("HOME").map(|home| home.join(".config").join("nexus")))
}

fn path() -> Result<PathBuf, CliError> {
    config_dir().map(|dir| dir.join(FILE_NAME)).ok_or_else(|| {
        CliError::usage("no config directory: set HOME, XDG_CONFIG_HOME or NEXUS_CONFIG_DIR")
    })
}

fn read(path: &Path) -> Result<File, CliError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(CliError::usage(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes; it is not a credentials file (delete it)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "{} is not a credentials file ({e}); delete it and log in again",
            path.display()
        ))
    })
}

/// The stored session for `server` that has not expired yet.
pub fn session_for(server: &str) -> Result<Option<StoredSession>, CliError> {
    let Some(dir) = config_dir() else {
        return Ok(None);
    };
    let file = read(&dir.join(FILE_NAME))?;
    Ok(file
        .sessions
        .get(server)
        .filter(|s| s.expires_at > Utc::now())
        .cloned())
}

/// Stores `session` for `server`, replacing any earlier one. Returns the file's path.
pub fn save(server: &str, session: StoredSession) -> Result<PathBuf, CliError> {
    let path = path()?;
    let mut file = read(&path)?;
    file.sessions.insert(server.to_owned(), session);
    write(&path, &file)?;
    Ok(path)
}

/// Forgets the session for `server`; returns it if there was one.
pub fn remove(server: &str) -> Result<Option<StoredSession>, CliError> {
    let path = path()?;
    let mut file = read(&path)?;
    let removed = file.sessions.remove(server);
    if removed.is_some() {
        write(&path, &file)?;
    }
    Ok(removed)
}

fn write(path: &Path, file: &File) -> Result<(), CliError> {
    let failed =
        |e: std::io::Error| CliError::internal(format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .ok_or_else(|| CliError::internal("the credentials file has no directory"))?;
    create_private_dir(dir).map_err(failed)?;
    let text = serde_json::to_vec_pretty(file)
        .map_err(|e| CliError::internal(format!("cannot render credentials: {e}")))?;
    let temporary = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    // Whatever is there (a stale file, a planted symlink) goes; the new file is made fresh.
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut out = private_file(&temporary).map_err(failed)?;
    out.write_all(&text).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    drop(out);
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}
