//! [`LocalKeyFile`]: the default KMS, a master key in a file beside the data.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::Generate;
use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::{DataKey, KEY_LEN, Kms, Result, SecretsError, open_with, random_error, seal_with};

/// Name of the master key file in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Largest key file read: a hex key with a line ending fits many times over, and anything
/// bigger is certainly not a key file, so it is refused before it is read.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Permission bits of a new key file: read and write for the owner only.
#[cfg(unix)]
const KEY_FILE_MODE: u32 = 0o600;

/// A master key kept in a file (64 hex digits), wrapping data keys with AES-256-GCM.
///
/// Losing the file loses every secret it protects: back it up with the database, and keep
/// the two apart. On Unix the file must be accessible by its owner only.
pub struct LocalKeyFile {
    path: PathBuf,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for LocalKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalKeyFile {
    /// Loads `<dir>/master.key`, first creating it with a fresh random key (mode 0600) if it
    /// does not exist. Returns the key file and whether it was created.
    pub fn open_or_create(dir: &Path) -> Result<(Self, bool)> {
        let path = dir.join(MASTER_KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok((Self::open(&path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match Self::create(&path) {
                Ok(created) => Ok((created, true)),
                // Another process created it first: use theirs.
                Err(SecretsError::KeyFileIo { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    Ok((Self::open(&path)?, false))
                }
                Err(e) => Err(e),
            },
            Err(source) => Err(SecretsError::KeyFileIo { path, source }),
        }
    }

    /// Loads an existing key file. Refuses one that others may access, that is not 64 hex
    /// digits (a line ending after them is fine), or that is not a regular file.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| SecretsError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(io)?;
        if !metadata.is_file() {
            return Err(SecretsError::KeyFileMalformed {
                path: path.to_owned(),
                reason: "not a regular file".into(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::KeyFilePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if metadata.len() > MAX_KEY_FILE_BYTES {
            return Err(SecretsError::KeyFileLength {
                path: path.to_owned(),
                digits: metadata.len(),
            });
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let digits = text.trim_ascii_end();
        if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(SecretsError::KeyFileMalformed {
                path: path.to_owned(),
                reason: if bad.is_ascii_graphic() || *bad == b' ' {
                    format!("`{}` is not a hex digit", char::from(*bad))
                } else {
                    format!("byte 0x{bad:02x} is not a hex digit")
                },
            });
        }
        if digits.len() != 2 * KEY_LEN {
            return Err(SecretsError::KeyFileLength {
                path: path.to_owned(),
                digits: digits.len() as u64,
            });
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(digits, key.as_mut_slice()).map_err(|e| {
            SecretsError::KeyFileMalformed {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    /// Writes a fresh key to `path`, which must not exist.
    fn create(path: &Path) -> Result<Self> {
        let io = |source| SecretsError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let key = Zeroizing::new(<[u8; KEY_LEN]>::try_generate().map_err(random_error)?);
        let mut text = Zeroizing::new(hex::encode(key.as_slice()));
        text.push('\n');
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(KEY_FILE_MODE);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        // Make the new directory entry durable too.
        #[cfg(unix)]
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(Self {
            path: path.to_owned(),
            key,
        })
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Kms for LocalKeyFile {
    fn name(&self) -> &'static str {
        "local-file"
    }

    async fn wrap_key(&self, key: &DataKey, context: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.key, context, key.expose())
    }

    async fn unwrap_key(&self, wrapped: &[u8], context: &[u8]) -> Result<DataKey> {
        let bytes = open_with(&self.key, context, wrapped)?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            SecretsError::Malformed(format!("a wrapped key of {} bytes", bytes.len()))
        })?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use nexus_core::TenantId;

    use super::*;
    use crate::{SecretSlot, new_tenant_key, open_tenant_key};

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn created_once_with_owner_only_mode_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = LocalKeyFile::open_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(first.path(), dir.path().join(MASTER_KEY_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim_end().len(), 64);
        let (second, created) = LocalKeyFile::open_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(*first.key, *second.key);
        assert!(!format!("{first:?}").contains(text.trim_end()));
    }

    #[tokio::test]
    async fn wraps_per_tenant_and_per_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let (kms, _) = LocalKeyFile::open_or_create(dir.path()).unwrap();
        let tenant = TenantId::new();
        let (key, wrapped) = new_tenant_key(&kms, tenant).await.unwrap();
        let reopened = open_tenant_key(&kms, tenant, &wrapped).await.unwrap();
        assert_eq!(key.expose(), reopened.expose());
        assert!(!wrapped.windows(KEY_LEN).any(|w| w == key.expose()));

        // A wrapped key moved to another tenant does not open.
        assert!(matches!(
            open_tenant_key(&kms, TenantId::new(), &wrapped).await,
            Err(SecretsError::Decrypt)
        ));

        // Nor under another master key: values sealed before cannot be recovered.
        let slot = SecretSlot {
            tenant,
            agent: "greeter",
            name: "token",
        };
        let sealed = key.seal(&slot, b"s3cret").unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let (other_kms, _) = LocalKeyFile::open_or_create(other_dir.path()).unwrap();
        assert!(matches!(
            open_tenant_key(&other_kms, tenant, &wrapped).await,
            Err(SecretsError::Decrypt)
        ));
        assert_eq!(reopened.open(&slot, &sealed).unwrap().as_slice(), b"s3cret");
    }

    #[test]
    fn bad_key_files_are_refused_clearly() {
        let good = "ab".repeat(KEY_LEN);
        // (case, file contents, mode, expected error, text the message must contain)
        let cases: Vec<(&str, Vec<u8>, u32, &str, &str)> = vec![
            ("empty", Vec::new(), 0o600, "length", "has 0 hex digits"),
            (
                "only a line ending",
                b"\n".to_vec(),
                0o600,
                "length",
                "has 0 hex digits",
            ),
            (
                "short",
                "ab".repeat(31).into_bytes(),
                0o600,
                "length",
                "has 62 hex digits",
            ),
            (
                "long",
                "ab".repeat(33).into_bytes(),
                0o600,
                "length",
                "has 66 hex digits",
            ),
            (
                "odd digit count",
                format!("{good}a").into_bytes(),
                0o600,
                "length",
                "has 65 hex digits",
            ),
            (
                "not hex",
                format!("{}zz", &good[2..]).into_bytes(),
                0o600,
                "malformed",
                "`z` is not a hex digit",
            ),
            (
                "raw binary key",
                vec![0x00; KEY_LEN],
                0o600,
                "malformed",
                "0x00",
            ),
            (
                "inner whitespace",
                format!("{} {}", &good[..32], &good[32..]).into_bytes(),
                0o600,
                "malformed",
                "not a hex digit",
            ),
            (
                "huge",
                vec![b'a'; 1 << 20],
                0o600,
                "length",
                "a master key is 64 hex digits",
            ),
            #[cfg(unix)]
            (
                "world readable",
                good.clone().into_bytes(),
                0o644,
                "permissions",
                "chmod 600",
            ),
            #[cfg(unix)]
            (
                "group readable",
                good.clone().into_bytes(),
                0o640,
                "permissions",
                "mode 0640",
            ),
            #[cfg(unix)]
            (
                "group writable",
                good.clone().into_bytes(),
                0o620,
                "permissions",
                "owner only",
            ),
        ];
        for (case, contents, mode, expected, message) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(MASTER_KEY_FILE);
            std::fs::write(&path, &contents).unwrap();
            #[cfg(unix)]
            set_mode(&path, mode);
            let _ = mode;
            let err = LocalKeyFile::open_or_create(dir.path()).unwrap_err();
            let kind = match &err {
                SecretsError::KeyFileLength { .. } => "length",
                SecretsError::KeyFileMalformed { .. } => "malformed",
                SecretsError::KeyFilePermissions { .. } => "permissions",
                other => panic!("{case}: unexpected {other:?}"),
            };
            assert_eq!(kind, expected, "{case}: {err}");
            let shown = err.to_string();
            assert!(shown.contains(message), "{case}: {shown}");
            assert!(shown.contains(MASTER_KEY_FILE), "{case}: {shown}");
            // Refusing never replaces the file.
            assert_eq!(std::fs::read(&path).unwrap(), contents, "{case}");
        }
    }

    #[test]
    fn accepted_key_file_forms() {
        let good = "0123456789abcdefABCDEF".repeat(3)[..64].to_owned();
        for contents in [good.clone(), format!("{good}\n"), format!("{good}\r\n")] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(MASTER_KEY_FILE);
            std::fs::write(&path, &contents).unwrap();
            #[cfg(unix)]
            set_mode(&path, 0o400);
            let (kms, created) = LocalKeyFile::open_or_create(dir.path()).unwrap();
            assert!(!created);
            assert_eq!(hex::encode(*kms.key), good.to_lowercase());
        }
    }

    #[test]
    fn a_directory_is_not_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert!(matches!(
            LocalKeyFile::open_or_create(dir.path()),
            Err(SecretsError::KeyFileMalformed { .. })
        ));
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            LocalKeyFile::open_or_create(&dir.path().join("absent")),
            Err(SecretsError::KeyFileIo { .. })
        ));
    }
}
