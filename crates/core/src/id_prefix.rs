//! Ids as people type them: a leading part of a UUID, resolved to the one id it starts, and the
//! shortest such part that names an id unambiguously.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::id::IdParseError;

/// Hex digits in a UUID.
const UUID_HEX_DIGITS: usize = 32;

/// Fewest hex digits a short id shows, even where fewer would be unique: a UUIDv7's first 8
/// digits change every 65 s, so a task listed now is unlikely to share them with the next one.
pub const MIN_SHORT_ID_DIGITS: usize = 8;

/// The leading hex digits of an id, as typed: 1 to 32 of them, hyphens anywhere ignored, case
/// ignored. 32 digits are a whole id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdPrefix {
    /// Lowercase hex digits, without hyphens.
    digits: String,
}

impl IdPrefix {
    /// The whole id, when all 32 digits are given.
    pub fn whole(&self) -> Option<Uuid> {
        (self.digits.len() == UUID_HEX_DIGITS)
            .then(|| Uuid::try_parse(&self.digits).ok())
            .flatten()
    }

    /// The smallest and largest ids that start with these digits (inclusive): ids sort as
    /// their bytes, so a prefix is a contiguous range that an index on the id can seek.
    pub fn range(&self) -> (Uuid, Uuid) {
        let bound = |fill: char| {
            let mut text = self.digits.clone();
            text.extend(std::iter::repeat_n(
                fill,
                UUID_HEX_DIGITS - self.digits.len(),
            ));
            // Only hex digits, exactly 32 of them: always a UUID.
            Uuid::try_parse(&text).unwrap_or_default()
        };
        (bound('0'), bound('f'))
    }
}

impl FromStr for IdPrefix {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.is_empty()
            || digits.len() > UUID_HEX_DIGITS
            || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(IdParseError {
                kind: "task",
                input: s.chars().take(64).collect(),
            });
        }
        Ok(Self { digits })
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl fmt::Debug for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdPrefix({})", self.digits)
    }
}

/// The shortest leading part of `id` (as written, with its hyphens) that no id in
/// `neighbours` starts with, at least [`MIN_SHORT_ID_DIGITS`] hex digits. Given the ids just
/// before and after `id` in sorted order, it is unique among all of them.
pub fn short_id(id: &Uuid, neighbours: &[Uuid]) -> String {
    let digits = id.simple().to_string();
    let shared = neighbours
        .iter()
        .map(|other| {
            digits
                .bytes()
                .zip(other.simple().to_string().bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    let wanted = (shared + 1).clamp(MIN_SHORT_ID_DIGITS, UUID_HEX_DIGITS);
    let mut seen = 0;
    id.hyphenated()
        .to_string()
        .chars()
        .take_while(|c| {
            if seen == wanted {
                return false;
            }
            if *c != '-' {
                seen += 1;
            }
            true
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prefixes_parse_leniently_and_refuse_what_is_not_hex() {
        let prefix: IdPrefix = "0195F3A2-7c".parse().unwrap();
        assert_eq!(prefix.to_string(), "0195f3a27c");
        assert_eq!(prefix.whole(), None);
        let (low, high) = prefix.range();
        assert_eq!(low.to_string(), "0195f3a2-7c00-0000-0000-000000000000");
        assert_eq!(high.to_string(), "0195f3a2-7cff-ffff-ffff-ffffffffffff");

        let id = Uuid::now_v7();
        assert_eq!(
            id.to_string().parse::<IdPrefix>().unwrap().whole(),
            Some(id)
        );

        for bad in ["", "-", "xyz", "0195f3a2 7c", &format!("{id}0")] {
            assert!(bad.parse::<IdPrefix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_short_id_is_the_shortest_unique_prefix_with_a_floor() {
        let id = Uuid::parse_str("0195f3a2-7c1d-7abc-8000-000000000001").unwrap();
        let near = Uuid::parse_str("0195f3a2-7c1d-7abd-8000-000000000000").unwrap();
        let far = Uuid::parse_str("0295f3a2-7c1d-7abc-8000-000000000000").unwrap();
        assert_eq!(short_id(&id, &[near, far]), "0195f3a2-7c1d-7abc");
        assert_eq!(short_id(&id, &[far]), "0195f3a2");
        assert_eq!(short_id(&id, &[]), "0195f3a2");
        // A short id resolves to its id: it is a prefix of it that no neighbour shares.
        let short: IdPrefix = short_id(&id, &[near]).parse().unwrap();
        let (low, high) = short.range();
        assert!(low <= id && id <= high && !(low <= near && near <= high));
    }
}
