//! Audit events: an append-only, hash-chained record of who did what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuditEventId, TenantId};

/// The `prev_hash` of a tenant's first audit event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record. `hash` covers the record and `prev_hash`, so editing or removing any
/// record breaks the chain from there on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub tenant_id: TenantId,
    /// Position in the tenant's chain, from 1 without gaps.
    pub seq: u64,
    /// Who acted: a user, API key or `system`.
    pub actor: String,
    /// What was done, e.g. `tenant.create`.
    pub action: String,
    /// What it was done to, e.g. a resource path.
    pub target: String,
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
    /// Hex sha256 of the previous event in the tenant's chain.
    pub prev_hash: String,
    /// Hex sha256 of this event (see [`AuditEvent::compute_hash`]).
    pub hash: String,
}

/// What it takes to append an audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
}

/// The hashed content of an event, in a fixed field order.
#[derive(Serialize)]
struct Hashed<'a> {
    tenant_id: &'a TenantId,
    seq: u64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: Canonical<'a>,
    at: String,
}

/// A JSON value that serializes with the keys of every object sorted.
struct Canonical<'a>(&'a serde_json::Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Canonical(value))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Canonical(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

impl NewAuditEvent {
    /// Seals this event as number `seq` of `tenant_id`'s chain, after `prev_hash`.
    pub fn seal(self, tenant_id: TenantId, seq: u64, prev_hash: String) -> AuditEvent {
        let mut event = AuditEvent {
            id: AuditEventId::new(),
            tenant_id,
            seq,
            actor: self.actor,
            action: self.action,
            target: self.target,
            details: self.details,
            at: crate::page::now(),
            prev_hash,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }
}

impl AuditEvent {
    /// sha256 over `prev_hash` and the canonical JSON of the event's content: `details` is
    /// written with every object's keys sorted, whatever order it was built or stored in
    /// (PostgreSQL's `jsonb` reorders keys, and serde_json keeps insertion order when a crate in
    /// the build asks for it).
    pub fn compute_hash(&self) -> String {
        let content = Hashed {
            tenant_id: &self.tenant_id,
            seq: self.seq,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            details: Canonical(&self.details),
            at: self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        // Serialising a struct of plain fields cannot fail.
        hasher.update(serde_json::to_vec(&content).unwrap_or_default());
        hex::encode(hasher.finalize())
    }
}

/// Why an audit event does not follow the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BrokenLink {
    /// A sequence number is missing or repeated (an event was deleted or inserted).
    #[error("the sequence jumps: an event is missing or was inserted")]
    Sequence,
    /// `prev_hash` is not the previous event's hash (an event before it was changed or removed).
    #[error("it does not point at the event before it")]
    PrevHash,
    /// The event's own content does not hash to its `hash` (it was edited).
    #[error("its content was changed after it was written")]
    Content,
}

/// Checks that `event` follows `previous` (`None`: it is the first of its chain).
pub fn verify_link(previous: Option<&AuditEvent>, event: &AuditEvent) -> Result<(), BrokenLink> {
    let (expected_seq, expected_prev) = match previous {
        Some(previous) => (previous.seq + 1, previous.hash.as_str()),
        None => (1, GENESIS_HASH),
    };
    if event.seq != expected_seq {
        return Err(BrokenLink::Sequence);
    }
    if event.prev_hash != expected_prev {
        return Err(BrokenLink::PrevHash);
    }
    if event.compute_hash() != event.hash {
        return Err(BrokenLink::Content);
    }
    Ok(())
}

/// Checks that `events` (one tenant's, in `seq` order from 1) form an unbroken chain. Returns
/// the `seq` of the first event that does not verify.
pub fn verify_chain(events: &[AuditEvent]) -> Result<(), u64> {
    let mut previous = None;
    for (index, event) in events.iter().enumerate() {
        if verify_link(previous, event).is_err() {
            return Err(index as u64 + 1);
        }
        previous = Some(event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEvent> {
        let tenant = TenantId::new();
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let event = NewAuditEvent {
                    actor: "system".into(),
                    action: "tenant.create".into(),
                    target: format!("tenants/t{seq}"),
                    details: serde_json::json!({"b": 1, "a": [seq]}),
                }
                .seal(tenant, seq, prev.clone());
                prev.clone_from(&event.hash);
                event
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(3)), Ok(()));
    }

    #[test]
    fn tampering_is_detected_where_it_happened() {
        let mut events = chain(3);
        events[1].target = "tenants/other".into();
        assert_eq!(verify_chain(&events), Err(2));

        let mut events = chain(3);
        events.remove(1);
        assert_eq!(verify_chain(&events), Err(2));
    }

    #[test]
    fn the_hash_does_not_depend_on_the_order_of_keys() {
        let mut sorted = serde_json::Map::new();
        let mut reversed = serde_json::Map::new();
        for key in ["a", "b", "c"] {
            sorted.insert(key.to_owned(), serde_json::json!({"x": 1, "y": [key]}));
        }
        for key in ["c", "b", "a"] {
            reversed.insert(key.to_owned(), serde_json::json!({"y": [key], "x": 1}));
        }
        let mut event = chain(1).remove(0);
        event.details = serde_json::Value::Object(sorted);
        let first = event.compute_hash();
        event.details = serde_json::Value::Object(reversed);
        assert_eq!(event.compute_hash(), first);
        event.details = serde_json::json!({"a": 2});
        assert_ne!(event.compute_hash(), first);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let events = chain(3);
        assert_eq!(verify_link(None, &events[0]), Ok(()));
        assert_eq!(
            verify_link(Some(&events[0]), &events[2]),
            Err(BrokenLink::Sequence)
        );
        let mut edited = events[1].clone();
        edited.actor = "someone-else".into();
        assert_eq!(
            verify_link(Some(&events[0]), &edited),
            Err(BrokenLink::Content)
        );
        let mut relinked = events[1].clone();
        relinked.seq = 3;
        assert_eq!(
            verify_link(Some(&events[1]), &relinked),
            Err(BrokenLink::PrevHash)
        );
    }
}
