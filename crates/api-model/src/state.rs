//! `/v1/tenants/{tenant}/agents/{agent}/state`: inspecting and clearing an agent's state.

use serde::{Deserialize, Serialize};

/// One value's place in an agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateKey {
    /// The session: the context id of the tasks that wrote it.
    pub session: String,
    pub key: String,
}

/// Answer of `GET /v1/tenants/{tenant}/agents/{agent}/state`: keys in (session, key) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateKeys {
    pub items: Vec<StateKey>,
    /// Whether keys past `items` were left out (ask for one session, or a higher `limit`).
    pub more: bool,
}

/// How [`StateValue::value`] holds the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateEncoding {
    /// The bytes are UTF-8 text, given as is.
    Utf8,
    /// The bytes are not UTF-8; standard base64 with padding.
    Base64,
}

/// Answer of `GET /v1/tenants/{tenant}/agents/{agent}/sessions/{session}/state/{key}`: one
/// value, in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateValue {
    pub session: String,
    pub key: String,
    pub encoding: StateEncoding,
    pub value: String,
}

/// Answer of `DELETE /v1/tenants/{tenant}/agents/{agent}/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCleared {
    /// How many values were removed.
    pub deleted: u64,
}
