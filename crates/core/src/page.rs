//! Cursor-based pagination shared by every list operation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Default page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a caller may ask for; bounds the memory and time of one list request.
pub const MAX_PAGE_SIZE: u32 = 500;

/// An opaque position in a listing: the id of the last item of the previous page.
///
/// Lists are ordered by UUIDv7 id, i.e. creation time, so "everything after this id" is stable
/// while new items are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Start after this position; `None` for the first page.
    pub after: Option<Cursor>,
    /// Page size, already clamped to `1..=MAX_PAGE_SIZE`.
    pub limit: u32,
}

impl PageRequest {
    /// The first page with at most `limit` items (clamped to `1..=MAX_PAGE_SIZE`).
    pub fn first(limit: u32) -> Self {
        Self {
            after: None,
            limit: limit.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// The page after `cursor`.
    pub fn after(cursor: Option<Cursor>, limit: u32) -> Self {
        Self {
            after: cursor,
            ..Self::first(limit)
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(DEFAULT_PAGE_SIZE)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass this as `after` to read the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only signals that more exist.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor(cursor_of(last)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The current time at the precision every backend stores (microseconds), so a value read back
/// from storage equals the value written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    let micros = now.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_sets_cursor_only_when_more_rows_exist() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor, Some(Cursor("2".into())));
        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(PageRequest::first(0).limit, 1);
        assert_eq!(PageRequest::first(u32::MAX).limit, MAX_PAGE_SIZE);
    }
}
