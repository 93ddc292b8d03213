//! Human-chosen names (tenants, agents, package namespaces) and their rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest name accepted. Names appear in URLs (`/a2a/{tenant}/{agent}`) and DNS-like contexts,
/// so they follow the DNS label limit.
pub const MAX_NAME_LEN: usize = 63;

/// A name that breaks the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {0} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    #[error(
        "name `{0}` may only contain lowercase letters a-z, digits and '-', and must start with a letter and not end with '-'"
    )]
    InvalidCharacters(String),
}

/// A validated lowercase slug: `[a-z][a-z0-9-]{0,62}`, not ending in `-`.
///
/// Used for tenant and agent names and package namespaces, which all appear in URL paths.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z][a-z0-9-]{0,62}$")]
pub struct Name(String);

impl Name {
    /// Validates `value` as a name.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value.is_empty() {
            return Err(NameError::Empty);
        }
        let len = value.chars().count();
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong(len));
        }
        let mut chars = value.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let body_ok = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !starts_with_letter || !body_ok || value.ends_with('-') {
            return Err(NameError::InvalidCharacters(value.to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rules() {
        let cases: &[(&str, bool)] = &[
            ("default", true),
            ("a", true),
            ("acme-corp-2", true),
            (&"a".repeat(MAX_NAME_LEN), true),
            ("", false),
            (&"a".repeat(MAX_NAME_LEN + 1), false),
            ("Acme", false),
            ("1acme", false),
            ("-acme", false),
            ("acme-", false),
            ("ac_me", false),
            ("ac me", false),
            ("acmé", false),
            ("../etc", false),
        ];
        for (input, valid) in cases {
            assert_eq!(Name::parse(input).is_ok(), *valid, "{input:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Name>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<Name>("\"Not OK\"").is_err());
    }
}
