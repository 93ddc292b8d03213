//! Package references and stored package metadata.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Name, NameError, PackageId, TenantId};

/// Why a `namespace/name@version` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageRefError {
    #[error("package reference `{0}` must look like `namespace/name@version`")]
    Shape(String),
    #[error("invalid package namespace: {0}")]
    Namespace(NameError),
    #[error("invalid package name: {0}")]
    Name(NameError),
    #[error("invalid package version `{version}`: {reason}")]
    Version { version: String, reason: String },
}

/// `namespace/name@version`, e.g. `acme/summarizer@1.2.0`. The version is semver.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PackageRef {
    pub namespace: Name,
    pub name: Name,
    pub version: semver::Version,
}

impl FromStr for PackageRef {
    type Err = PackageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || PackageRefError::Shape(s.chars().take(200).collect());
        let (path, version) = s.split_once('@').ok_or_else(shape)?;
        let (namespace, name) = path.split_once('/').ok_or_else(shape)?;
        Ok(Self {
            namespace: Name::parse(namespace).map_err(PackageRefError::Namespace)?,
            name: Name::parse(name).map_err(PackageRefError::Name)?,
            version: version
                .parse()
                .map_err(|e: semver::Error| PackageRefError::Version {
                    version: version.chars().take(64).collect(),
                    reason: e.to_string(),
                })?,
        })
    }
}

impl TryFrom<String> for PackageRef {
    type Error = PackageRefError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<PackageRef> for String {
    fn from(r: PackageRef) -> Self {
        r.to_string()
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.namespace, self.name, self.version)
    }
}

impl fmt::Debug for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageRef({self})")
    }
}

/// A build of a package version stored in a tenant: metadata only; the bytes live in the blob
/// store under `digest`, which identifies the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Package {
    pub id: PackageId,
    pub tenant_id: TenantId,
    #[schema(value_type = String, example = "acme/summarizer@1.2.0")]
    pub reference: PackageRef,
    /// `sha256:<hex>` of the package archive.
    pub digest: String,
    pub size_bytes: u64,
    /// The package manifest as parsed JSON.
    pub manifest: serde_json::Value,
    /// Set by publishing: a published version is immutable, so no other build (digest) of it
    /// is accepted. Unpublished versions may be uploaded again with changed contents, each
    /// digest a build of its own.
    #[serde(default)]
    pub published: bool,
    pub created_at: DateTime<Utc>,
}

/// What it takes to record a package version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPackage {
    pub reference: PackageRef,
    pub digest: String,
    pub size_bytes: u64,
    pub manifest: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok: PackageRef = "acme/summarizer@1.2.0-beta.1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.to_string(), "acme/summarizer@1.2.0-beta.1");
        for bad in [
            "acme/summarizer",
            "summarizer@1.0.0",
            "Acme/x@1.0.0",
            "acme/x@1",
            "acme/x@",
            "/x@1.0.0",
        ] {
            assert!(bad.parse::<PackageRef>().is_err(), "{bad}");
        }
    }
}
