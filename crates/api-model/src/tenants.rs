//! `/v1/tenants`: the organisations that own everything else, and their exports.

use serde::{Deserialize, Serialize};

use crate::Problem;

/// Body of `POST /v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and `-`, starting with a letter; at most 63 characters.
    #[schema(example = "acme")]
    pub name: String,
    /// Name for people; defaults to `name`.
    #[schema(example = "Acme Corp")]
    pub display_name: Option<String>,
}

/// The last line of a tenant export (`GET /v1/tenants/{tenant}/export`): `end` when every
/// record was sent, `error` (a problem) when reading failed part-way. An export without one
/// is incomplete. The records before it are tagged `record` too, with other values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ExportTrailer {
    /// Every record was sent.
    End {
        /// How many records came before this line.
        records: u64,
    },
    /// Reading failed; the records before this line are all there is.
    Error(Problem),
}
