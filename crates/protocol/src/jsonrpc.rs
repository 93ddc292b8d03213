//! JSON-RPC 2.0 envelopes and the error codes A2A uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Standard JSON-RPC and A2A error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    pub const TASK_NOT_FOUND: i64 = -32001;
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    pub const PUSH_NOTIFICATION_NOT_SUPPORTED: i64 = -32003;
    pub const UNSUPPORTED_OPERATION: i64 = -32004;
    pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
    pub const INVALID_AGENT_RESPONSE: i64 = -32006;
    pub const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
    pub const EXTENSION_SUPPORT_REQUIRED: i64 = -32008;
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
    /// NexusCore's own server error (JSON-RPC reserves -32000 to -32099 for them): the
    /// caller is authenticated but its role or a tenant policy forbids the method.
    pub const FORBIDDEN: i64 = -32031;
}

/// A request as received: everything optional, so malformed requests can be answered with the
/// right error instead of failing to parse.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRequest {
    pub jsonrpc: Option<Value>,
    pub method: Option<Value>,
    #[serde(default)]
    pub params: Value,
    pub id: Option<Value>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// A response: `result` or `error`, echoing the request id (null when it was unreadable).
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    pub jsonrpc: &'static str,
    pub id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    pub fn result(id: Value, result: Value) -> Self {
        Self {
            jsonrpc: "2.0",
            id,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(id: Value, error: RpcError) -> Self {
        Self {
            jsonrpc: "2.0",
            id,
            result: None,
            error: Some(error),
        }
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Value,
}

/// An envelope refused by [`validate`]: the id to answer with and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub id: Value,
    pub error: RpcError,
}

/// Validates the envelope: `jsonrpc` must be `"2.0"`, `method` a string, `id` a string, number
/// or null. The refusal is boxed: it is the rare path, and a large `Err` would cost every call.
pub fn validate(raw: RawRequest) -> Result<Request, Box<Rejected>> {
    let id = raw.id.unwrap_or(Value::Null);
    let id_ok = matches!(id, Value::String(_) | Value::Number(_) | Value::Null);
    if !id_ok {
        return Err(Box::new(Rejected {
            id: Value::Null,
            error: RpcError::new(
                code::INVALID_REQUEST,
                "`id` must be a string, a number or null",
            ),
        }));
    }
    if raw.jsonrpc != Some(Value::String("2.0".into())) {
        return Err(Box::new(Rejected {
            id,
            error: RpcError::new(code::INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
        }));
    }
    let Some(Value::String(method)) = raw.method else {
        return Err(Box::new(Rejected {
            id,
            error: RpcError::new(code::INVALID_REQUEST, "`method` must be a string"),
        }));
    };
    Ok(Request {
        id,
        method,
        params: raw.params,
    })
}
