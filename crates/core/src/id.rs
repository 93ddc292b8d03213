//! Typed, time-sortable identifiers.
//!
//! Every id is a UUIDv7: its leading 48 bits are a millisecond timestamp, so ids sort by creation
//! time in both byte and text form. That ordering is what cursor pagination relies on. Each noun
//! has its own type, so a `TaskId` can never be passed where a `TenantId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected a UUID)")]
pub struct IdParseError {
    /// Which kind of id was expected, e.g. `tenant`.
    pub kind: &'static str,
    /// The rejected input, truncated to keep error messages small.
    pub input: String,
}

/// Longest slice of a rejected id echoed back in an error message.
const MAX_ECHOED_INPUT: usize = 64;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// What this id identifies, for error messages.
            pub const KIND: &'static str = $kind;

            /// A fresh id for an object created now.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a UUID read back from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self).map_err(|_| IdParseError {
                    kind: $kind,
                    input: s.chars().take(MAX_ECHOED_INPUT).collect(),
                })
            }
        }
    };
}

typed_id!(
    /// Identifies a tenant (an organisation).
    TenantId,
    "tenant"
);
typed_id!(
    /// Identifies an agent deployed in a tenant.
    AgentId,
    "agent"
);
typed_id!(
    /// Identifies a stored package version.
    PackageId,
    "package"
);
typed_id!(
    /// Identifies a task (one A2A task).
    TaskId,
    "task"
);
typed_id!(
    /// Identifies an audit event.
    AuditEventId,
    "audit event"
);
typed_id!(
    /// Identifies an API key (not its secret).
    ApiKeyId,
    "api key"
);
typed_id!(
    /// Identifies a tenant policy.
    PolicyId,
    "policy"
);
typed_id!(
    /// Identifies a user account (a person who logs in with a password).
    UserId,
    "user"
);
typed_id!(
    /// Identifies a team of a tenant.
    TeamId,
    "team"
);
typed_id!(
    /// Identifies a service account (a machine identity of a tenant).
    ServiceAccountId,
    "service account"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let first = TaskId::new();
        let second = TaskId::new();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>(), Ok(id));
        for bad in ["", "not-a-uuid", "123", &"x".repeat(1000)] {
            let err = bad.parse::<TenantId>().unwrap_err();
            assert_eq!(err.kind, "tenant");
            assert!(err.input.len() <= MAX_ECHOED_INPUT);
        }
    }
}
