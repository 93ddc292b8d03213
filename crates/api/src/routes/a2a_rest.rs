//! The A2A 1.0 HTTP+JSON (REST) binding under an agent's A2A base URL `/a2a/{tenant}/{agent}`.
//!
//! A thin adapter over the JSON-RPC handlers in [`super::a2a`]: each route builds the params
//! its JSON-RPC method takes (path, query and body merged) and calls the same code, so both
//! bindings behave alike. Routes, as the official `a2a-sdk` REST transport calls them:
//!
//! | route | JSON-RPC method |
//! |---|---|
//! | `POST message:send` | `SendMessage` |
//! | `POST message:stream` | `SendStreamingMessage` (SSE) |
//! | `GET tasks` | `ListTasks` (query parameters) |
//! | `GET tasks/{id}` | `GetTask` |
//! | `POST tasks/{id}:cancel` | `CancelTask` |
//! | `GET\|POST tasks/{id}:subscribe` | `SubscribeToTask` (SSE) |
//! | `POST\|GET tasks/{id}/pushNotificationConfigs` | `Create…`/`ListTaskPushNotificationConfigs` |
//! | `GET\|DELETE tasks/{id}/pushNotificationConfigs/{configId}` | `Get…`/`DeleteTaskPushNotificationConfig` |
//! | `GET extendedAgentCard` | `GetExtendedAgentCard` |
//!
//! Errors are `google.rpc.Status` JSON (`{"error": {"code", "status", "message", "details"}}`)
//! with an `ErrorInfo` detail naming the A2A reason, at the HTTP status of the A2A 1.0 mapping
//! table ([`error_mapping`]). An unknown tenant or agent stays a platform `problem+json` 404:
//! there is no agent to speak for. So does a `POST` body not declared `application/json` or
//! `application/a2a+json` (`415 unsupported_media_type`), refused before anything reads it: a
//! `POST` without body or `Content-Type` (`tasks/{id}:subscribe`) passes.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_core::{Agent, Tenant};
use nexus_protocol::a2a::Version;
use nexus_protocol::jsonrpc::{RpcError, code};
use nexus_protocol::stream::StreamRenderer;
use serde_json::{Map, Value, json};

use super::a2a::{self as rpc, VERSION_HEADER};
use crate::Scope;
use crate::error::ApiError;
use crate::extract::{Path, Query, RawBody};

/// Media type of REST response bodies. The 1.0 spec names both `application/json` and
/// `application/a2a+json`; the official SDKs' servers answer, and the TCK expects,
/// `application/json`. Requests may use either.
pub const RESPONSE_MEDIA_TYPE: &str = "application/json";
/// `@type` of the `google.rpc.ErrorInfo` detail that carries the A2A error reason.
const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// `ErrorInfo.domain` of A2A errors.
const A2A_DOMAIN: &str = "a2a-protocol.org";
/// Query parameters that are integers in the A2A request messages (`GetTaskRequest`,
/// `ListTasksRequest`, `ListTaskPushNotificationConfigsRequest`); the rest pass as strings.
const INTEGER_QUERY_PARAMS: &[&str] = &["historyLength", "pageSize"];
/// Query parameters that are booleans (`ListTasksRequest.includeArtifacts`), sent as
/// `true`/`false`.
const BOOLEAN_QUERY_PARAMS: &[&str] = &["includeArtifacts"];
/// Most characters of a client-chosen path echoed back in an error message.
const MAX_ECHOED_PATH: usize = 200;

/// One A2A operation, as named by a method and a path under the base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    Send,
    Stream,
    List,
    Get(String),
    Cancel(String),
    Subscribe(String),
    CreatePushConfig(String),
    ListPushConfigs(String),
    GetPushConfig(String, String),
    DeletePushConfig(String, String),
    ExtendedCard,
}

/// Why a method and path name no operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NoRoute {
    /// No route has this path.
    Unknown,
    /// The path exists with other methods (listed for `Allow`).
    Method(&'static str),
}

/// The operation `method` on `path` (relative to the base URL) names.
fn route(method: &Method, path: &str) -> Result<Operation, NoRoute> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(NoRoute::Unknown);
    }
    let is = |m: Method| *method == m;
    let (operation, allowed) = match segments.as_slice() {
        ["message:send"] => (is(Method::POST).then_some(Operation::Send), "POST"),
        ["message:stream"] => (is(Method::POST).then_some(Operation::Stream), "POST"),
        ["extendedAgentCard"] => (is(Method::GET).then_some(Operation::ExtendedCard), "GET"),
        ["tasks"] => (is(Method::GET).then_some(Operation::List), "GET"),
        ["tasks", segment] => match segment.split_once(':') {
            None => (
                is(Method::GET).then(|| Operation::Get((*segment).to_owned())),
                "GET",
            ),
            Some((id, "cancel")) => (
                is(Method::POST).then(|| Operation::Cancel(id.to_owned())),
                "POST",
            ),
            Some((id, "subscribe")) => (
                (is(Method::GET) || is(Method::POST)).then(|| Operation::Subscribe(id.to_owned())),
                "GET, POST",
            ),
            Some(_) => return Err(NoRoute::Unknown),
        },
        ["tasks", id, "pushNotificationConfigs"] => {
            let id = (*id).to_owned();
            let operation = match *method {
                Method::POST => Some(Operation::CreatePushConfig(id)),
                Method::GET => Some(Operation::ListPushConfigs(id)),
                _ => None,
            };
            (operation, "GET, POST")
        }
        ["tasks", id, "pushNotificationConfigs", config] => {
            let (id, config) = ((*id).to_owned(), (*config).to_owned());
            let operation = match *method {
                Method::GET => Some(Operation::GetPushConfig(id, config)),
                Method::DELETE => Some(Operation::DeletePushConfig(id, config)),
                _ => None,
            };
            (operation, "GET, DELETE")
        }
        _ => return Err(NoRoute::Unknown),
    };
    operation.ok_or(NoRoute::Method(allowed))
}

/// The HTTP status, `google.rpc.Code` name and A2A `ErrorInfo` reason of a JSON-RPC error
/// code, per the A2A 1.0 mapping table (§5.4) as the official SDK applies it. A parse error
/// has no reason of its own there; the SDK answers it as `INVALID_REQUEST`.
pub fn error_mapping(rpc_code: i64) -> (StatusCode, &'static str, &'static str) {
    match rpc_code {
        code::PARSE_ERROR | code::INVALID_REQUEST => (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_REQUEST",
        ),
        code::METHOD_NOT_FOUND => (StatusCode::NOT_FOUND, "NOT_FOUND", "METHOD_NOT_FOUND"),
        code::INVALID_PARAMS => (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_PARAMS",
        ),
        code::TASK_NOT_FOUND => (StatusCode::NOT_FOUND, "NOT_FOUND", "TASK_NOT_FOUND"),
        code::TASK_NOT_CANCELABLE => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "TASK_NOT_CANCELABLE",
        ),
        code::PUSH_NOTIFICATION_NOT_SUPPORTED => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "PUSH_NOTIFICATION_NOT_SUPPORTED",
        ),
        code::UNSUPPORTED_OPERATION => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "UNSUPPORTED_OPERATION",
        ),
        code::CONTENT_TYPE_NOT_SUPPORTED => (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "CONTENT_TYPE_NOT_SUPPORTED",
        ),
        code::INVALID_AGENT_RESPONSE => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INVALID_AGENT_RESPONSE",
        ),
        code::EXTENDED_CARD_NOT_CONFIGURED => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
        ),
        code::EXTENSION_SUPPORT_REQUIRED => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "EXTENSION_SUPPORT_REQUIRED",
        ),
        code::VERSION_NOT_SUPPORTED => (
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "VERSION_NOT_SUPPORTED",
        ),
        code::FORBIDDEN => (StatusCode::FORBIDDEN, "PERMISSION_DENIED", "FORBIDDEN"),
        // INTERNAL_ERROR, and any code without a row of its own.
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INTERNAL_ERROR",
        ),
    }
}

/// The `google.rpc.Status` body of an A2A error; `data`, when an object, becomes the
/// `ErrorInfo` metadata.
fn status_body(error: &RpcError) -> (StatusCode, Value) {
    let (status, name, _) = error_mapping(error.code);
    let body = json!({"error": {
        "code": status.as_u16(),
        "status": name,
        "message": error.message,
        "details": [error_info(error)],
    }});
    (status, body)
}

/// The `google.rpc.ErrorInfo` naming the A2A reason of `error`, as both bindings carry it
/// (HTTP+JSON in `error.details`, JSON-RPC 1.0 in `error.data`).
pub(crate) fn error_info(error: &RpcError) -> Value {
    let (_, _, reason) = error_mapping(error.code);
    let metadata = match &error.data {
        Some(Value::Object(data)) => Value::Object(data.clone()),
        _ => json!({}),
    };
    json!({
        "@type": ERROR_INFO_TYPE,
        "reason": reason,
        "domain": A2A_DOMAIN,
        "metadata": metadata,
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, RESPONSE_MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &RpcError) -> Response {
    let (status, body) = status_body(error);
    json_response(status, &body)
}

/// Every request under an agent's A2A base URL other than the card and JSON-RPC.
pub async fn endpoint(
    state: Scope,
    Path((tenant, agent, path)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    method: Method,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    if method == Method::POST {
        crate::extract::require_json(&headers, &body, false)?;
    }
    let (tenant, agent) = rpc::resolve(&state, &tenant, &agent).await?;
    let operation = match route(&method, &path) {
        Ok(operation) => operation,
        Err(no_route) => return Ok(no_route_response(&method, &path, no_route)),
    };
    if let Err(error) = check_version(&headers) {
        return Ok(error_response(&error));
    }
    let params = match params(&operation, &query, &body) {
        Ok(params) => params,
        Err(error) => return Ok(error_response(&error)),
    };
    let trace_id = super::inbound_trace_id(&headers);
    Ok(call(&state, &tenant, &agent, operation, params, trace_id).await)
}

fn no_route_response(method: &Method, path: &str, no_route: NoRoute) -> Response {
    let shown: String = path.chars().take(MAX_ECHOED_PATH).collect();
    match no_route {
        NoRoute::Unknown => error_response(&RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("no A2A operation at `{shown}`"),
        )),
        NoRoute::Method(allowed) => {
            let (_, mut body) = status_body(&RpcError::new(
                code::METHOD_NOT_FOUND,
                format!("`{shown}` does not support {method}; use {allowed}"),
            ));
            // 405 is not in the A2A table; the reason still tells SDK clients what went wrong.
            let status = StatusCode::METHOD_NOT_ALLOWED;
            body["error"]["code"] = json!(status.as_u16());
            body["error"]["status"] = json!("UNIMPLEMENTED");
            let mut response = json_response(status, &body);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            response
        }
    }
}

/// The binding is 1.0 only: no header means 1.0 (the 0.3 REST paths differ), and any other
/// version is refused.
fn check_version(headers: &HeaderMap) -> Result<(), RpcError> {
    let value = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("?"));
    match value.map(str::trim) {
        None | Some("") => Ok(()),
        Some(v) if Version::from_header(Some(v)) == Some(Version::V1) => Ok(()),
        Some(v) => Err(RpcError::new(
            code::VERSION_NOT_SUPPORTED,
            format!(
                "A2A version `{}` is not supported by the HTTP+JSON binding; use 1.0",
                v.chars().take(MAX_ECHOED_PATH).collect::<String>()
            ),
        )),
    }
}

/// The JSON-RPC params of `operation`: the body (for POST operations), then the query, then
/// the ids from the path, later ones winning.
fn params(
    operation: &Operation,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Value, RpcError> {
    let takes_body = matches!(
        operation,
        Operation::Send | Operation::Stream | Operation::Cancel(_) | Operation::CreatePushConfig(_)
    );
    let mut params = if takes_body && !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                return Err(RpcError::new(
                    code::INVALID_REQUEST,
                    "the request body must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(RpcError::new(
                    code::PARSE_ERROR,
                    format!("the request body is not valid JSON: {e}"),
                ));
            }
        }
    } else {
        Map::new()
    };
    // ProtoJSON: proto field names (`task_id`) are accepted for the JSON names.
    nexus_protocol::proto_json::accept_proto_names_in(&mut params);
    for (key, value) in query {
        let key = nexus_protocol::proto_json::json_name(key);
        let value = query_value(&key, value)?;
        params.insert(key, value);
    }
    let mut set = |key: &str, value: &str| {
        params.insert(key.to_owned(), Value::String(value.to_owned()));
    };
    match operation {
        Operation::Get(id) | Operation::Cancel(id) | Operation::Subscribe(id) => set("id", id),
        Operation::CreatePushConfig(task) | Operation::ListPushConfigs(task) => {
            set("taskId", task);
        }
        Operation::GetPushConfig(task, config) | Operation::DeletePushConfig(task, config) => {
            set("taskId", task);
            set("id", config);
        }
        Operation::Send | Operation::Stream | Operation::List | Operation::ExtendedCard => {}
    }
    Ok(Value::Object(params))
}

/// A query parameter as the JSON value its request field holds (A2A 1.0 §11.5).
fn query_value(key: &str, value: &str) -> Result<Value, RpcError> {
    if INTEGER_QUERY_PARAMS.contains(&key) {
        return value.trim().parse::<u64>().map(Value::from).map_err(|_| {
            RpcError::new(
                code::INVALID_PARAMS,
                format!("`{key}` must be a non-negative integer"),
            )
        });
    }
    if BOOLEAN_QUERY_PARAMS.contains(&key) {
        return match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("`{key}` must be `true` or `false`"),
            )),
        };
    }
    Ok(Value::String(value.to_owned()))
}

async fn call(
    state: &Scope,
    tenant: &Tenant,
    agent: &Agent,
    operation: Operation,
    params: Value,
    trace_id: Option<String>,
) -> Response {
    let method = match operation {
        Operation::Stream => {
            let opened =
                rpc::open_send_stream(state, tenant, agent, Version::V1, &params, trace_id).await;
            return streamed(opened);
        }
        Operation::Subscribe(_) => {
            let opened = rpc::open_subscription(state, tenant, agent, Version::V1, &params).await;
            return streamed(opened);
        }
        Operation::Send => "SendMessage",
        Operation::List => "ListTasks",
        Operation::Get(_) => "GetTask",
        Operation::Cancel(_) => "CancelTask",
        Operation::CreatePushConfig(_) => "CreateTaskPushNotificationConfig",
        Operation::ListPushConfigs(_) => "ListTaskPushNotificationConfigs",
        Operation::GetPushConfig(..) => "GetTaskPushNotificationConfig",
        Operation::DeletePushConfig(..) => "DeleteTaskPushNotificationConfig",
        Operation::ExtendedCard => "GetExtendedAgentCard",
    };
    match rpc::dispatch(state, tenant, agent, Version::V1, method, params, trace_id).await {
        // `Delete…` answers `google.protobuf.Empty`.
        Ok(Value::Null) => json_response(StatusCode::OK, &json!({})),
        Ok(result) => json_response(StatusCode::OK, &result),
        Err(error) => error_response(&error),
    }
}

/// Events of a running task, as `ControlPlane::follow` delivers them.
type FollowReceiver =
    tokio::sync::mpsc::Receiver<Result<nexus_core::TaskEvent, nexus_control::ControlError>>;

/// A stream that could not start is a plain error response with its HTTP status.
fn streamed(opened: Result<(Value, StreamRenderer, Option<FollowReceiver>), RpcError>) -> Response {
    match opened {
        Ok((first, renderer, events)) => sse(first, renderer, events),
        Err(error) => error_response(&error),
    }
}

/// The SSE response of the REST binding: each event's `data` is a bare `StreamResponse`
/// (no JSON-RPC envelope); a failure after the stream started is an `error` event carrying
/// the `google.rpc.Status` body.
fn sse(first: Value, renderer: StreamRenderer, events: Option<FollowReceiver>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};

    let data =
        |value: &Value| Ok::<_, std::convert::Infallible>(Event::default().data(value.to_string()));
    let head = futures::stream::once({
        let first = data(&first);
        async move { first }
    });
    let tail = futures::stream::unfold(
        (renderer, events),
        move |(mut renderer, mut events)| async move {
            loop {
                let receiver = events.as_mut()?;
                let next = match receiver.recv().await? {
                    Ok(next) => next,
                    Err(error) => {
                        let (_, body) = status_body(&rpc::internal(error));
                        let event = Event::default().event("error").data(body.to_string());
                        return Some((Ok(event), (renderer, None)));
                    }
                };
                if let Some((response, ends)) = renderer.event(&next) {
                    // Dropping the receiver stops the follower.
                    let events = if ends { None } else { events };
                    return Some((data(&response), (renderer, events)));
                }
            }
        },
    );
    Sse::new(futures::StreamExt::chain(head, tail))
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The push config routes, which the router tests cannot reach end to end until push
    /// notifications exist: the ids land where the JSON-RPC methods read them.
    #[test]
    fn push_config_routes_carry_task_and_config_ids() {
        let cases = [
            (
                Method::POST,
                "tasks/t1/pushNotificationConfigs",
                json!({"url": "u", "taskId": "t1"}),
            ),
            (
                Method::GET,
                "tasks/t1/pushNotificationConfigs",
                json!({"taskId": "t1"}),
            ),
            (
                Method::GET,
                "tasks/t1/pushNotificationConfigs/c1",
                json!({"taskId": "t1", "id": "c1"}),
            ),
            (
                Method::DELETE,
                "tasks/t1/pushNotificationConfigs/c1",
                json!({"taskId": "t1", "id": "c1"}),
            ),
        ];
        for (method, path, expected) in cases {
            let operation = route(&method, path).unwrap();
            // The path wins over a `taskId` in the body.
            let body = br#"{"url": "u", "taskId": "other"}"#;
            assert_eq!(
                params(&operation, &[], body).unwrap(),
                expected,
                "{method} {path}"
            );
        }
        assert_eq!(
            route(&Method::PUT, "tasks/t1/pushNotificationConfigs/c1"),
            Err(NoRoute::Method("GET, DELETE"))
        );
    }
}
