//! Content-addressed blob storage.
//!
//! Bytes are stored under their sha256 digest (`sha256/ab/abcdef…`) through the `object_store`
//! crate: a local directory today, S3-compatible storage later, with no change to callers.
//! Writing the same bytes twice is a no-op, and reads verify the digest so corruption on disk
//! is reported instead of served.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest as _, Sha256};

/// The `sha256:<64 hex>` digest of a blob.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest of the form sha256:<64 lowercase hex digits>")]
pub struct InvalidDigest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest as text, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    fn path(&self) -> Path {
        let hex = self.hex();
        Path::from_iter(["sha256", &hex[..2], hex])
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidDigest(s.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// What can go wrong with blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob {expected} is corrupt: its bytes hash to {actual}")]
    Corrupt { expected: Digest, actual: Digest },
    #[error("blob storage error: {0}")]
    Storage(#[from] object_store::Error),
    #[error("cannot prepare blob directory {path}: {source}")]
    Directory {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Content-addressed bytes over any `object_store` backend.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Blobs in a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|source| BlobError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self::new(Arc::new(store)))
    }

    /// Blobs in any object store (S3, GCS, Azure, memory).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Stores `bytes` and returns their digest. Storing bytes that are already present is a
    /// no-op; object stores write atomically, so readers never see a partial blob.
    pub async fn put(&self, bytes: Bytes) -> Result<Digest, BlobError> {
        let digest = Digest::of(&bytes);
        if !self.contains(&digest).await? {
            self.inner
                .put(&digest.path(), PutPayload::from_bytes(bytes))
                .await?;
        }
        Ok(digest)
    }

    /// The bytes stored under `digest`, verified.
    pub async fn get(&self, digest: &Digest) -> Result<Bytes, BlobError> {
        let bytes = match self.inner.get(&digest.path()).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(digest.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(BlobError::Corrupt {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Whether a blob with this digest is stored.
    pub async fn contains(&self, digest: &Digest) -> Result<bool, BlobError> {
        match self.inner.head(&digest.path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a blob; removing an absent blob is not an error.
    pub async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match self.inner.delete(&digest.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_dedup_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let digest = blobs.put(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(
            digest.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            blobs.put(Bytes::from_static(b"hello")).await.unwrap(),
            digest
        );
        assert_eq!(
            blobs.get(&digest).await.unwrap(),
            Bytes::from_static(b"hello")
        );

        let absent = Digest::of(b"absent");
        assert!(!blobs.contains(&absent).await.unwrap());
        assert!(matches!(
            blobs.get(&absent).await,
            Err(BlobError::NotFound(_))
        ));

        blobs.delete(&digest).await.unwrap();
        assert!(!blobs.contains(&digest).await.unwrap());
        blobs.delete(&digest).await.unwrap();
    }

    #[tokio::test]
    async fn corruption_on_disk_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let digest = blobs.put(Bytes::from_static(b"original")).await.unwrap();
        let hex = digest.hex();
        let file = dir.path().join("sha256").join(&hex[..2]).join(hex);
        std::fs::write(&file, b"tampered").unwrap();
        assert!(matches!(
            blobs.get(&digest).await,
            Err(BlobError::Corrupt { .. })
        ));
    }

    #[test]
    fn digest_parsing() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(good.parse::<Digest>().is_ok());
        for bad in [
            "",
            "sha256:",
            "md5:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha256:{}/../x", "a".repeat(60)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }
}
