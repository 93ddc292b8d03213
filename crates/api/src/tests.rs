//! Router tests against a real SQLite store: happy paths and one test per class of bad input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

mod access;
mod cors;
mod cross_site;
mod limits;
mod ownership;
mod users;

/// The platform admin key every test app is bootstrapped with, sent by [`TestApp::send`].
const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

struct TestApp {
    router: Router,
    control: Arc<nexus_control::ControlPlane>,
    store: Arc<dyn nexus_store::Store>,
    dir: tempfile::TempDir,
}

async fn app_with(limits: Limits) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let platform = nexus_server::PlatformBuilder::new(dir.path())
        .runtime(nexus_runtime::RuntimeConfig {
            max_instances: 4,
            ..nexus_runtime::RuntimeConfig::default()
        })
        .build()
        .await
        .unwrap();
    platform
        .control
        .bootstrap_key(platform.default_tenant, Some(ADMIN_KEY))
        .await
        .unwrap();
    let state = AppState {
        control: platform.control.clone(),
        metrics: nexus_telemetry::init_metrics().unwrap(),
    };
    TestApp {
        router: router(state, limits),
        control: platform.control,
        store: platform.store,
        dir,
    }
}

async fn app() -> TestApp {
    app_with(Limits::default()).await
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl TestApp {
    /// Sends `request` as the platform admin unless it carries credentials of its own.
    async fn send(&self, mut request: Request<Body>) -> Reply {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            request.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {ADMIN_KEY}").parse().unwrap(),
            );
        }
        self.send_as_is(request).await
    }

    /// Sends `request` with exactly the headers it has.
    async fn send_as_is(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            headers,
            body,
            text,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post_json(&self, uri: &str, body: impl Into<Body>) -> Reply {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }
}

fn assert_problem(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.content_type, PROBLEM_JSON, "{}", reply.text);
    assert_eq!(reply.body["code"], code, "{}", reply.text);
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn create_get_and_list_tenants() {
    let app = app().await;
    let created = app
        .post_json(
            "/v1/tenants",
            json!({"name": "acme", "display_name": "Acme"}).to_string(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers[header::LOCATION], "/v1/tenants/acme");
    assert_eq!(created.body["name"], "acme");

    let by_name = app.get("/v1/tenants/acme").await;
    assert_eq!(by_name.status, StatusCode::OK);
    assert_eq!(by_name.body, created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/tenants/{id}")).await.body,
        created.body
    );

    for name in ["b1", "b2", "b3"] {
        app.post_json("/v1/tenants", json!({"name": name}).to_string())
            .await;
    }
    let first = app.get("/v1/tenants?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    // default, acme | b1, b2 | b3
    let second = app
        .get(&format!("/v1/tenants?limit=2&after={cursor}"))
        .await;
    assert_eq!(second.body["items"][0]["name"], "b1");
    assert_eq!(second.body["items"][1]["name"], "b2");
    let cursor = second.body["next_cursor"].as_str().unwrap();
    let last = app
        .get(&format!("/v1/tenants?limit=2&after={cursor}"))
        .await;
    assert_eq!(last.body["items"][0]["name"], "b3");
    assert!(last.body.get("next_cursor").is_none());
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = app().await;
    for body in ["{", "{\"name\": }", "not json", "\u{0}"] {
        assert_problem(
            &app.post_json("/v1/tenants", body).await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        );
    }
}

#[tokio::test]
async fn wrong_content_type_is_unsupported_media_type() {
    let app = app().await;
    for content_type in [None, Some("text/plain"), Some("application/xml")] {
        let mut request = Request::post("/v1/tenants");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let reply = app
            .send(request.body(Body::from(r#"{"name":"x"}"#)).unwrap())
            .await;
        assert_problem(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
}

#[tokio::test]
async fn oversized_body_is_payload_too_large_and_stores_nothing() {
    let app = app_with(Limits {
        body_limit_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let huge = json!({"name": "big", "display_name": "x".repeat(4096)}).to_string();
    assert_problem(
        &app.post_json("/v1/tenants", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_problem(
        &app.get("/v1/tenants/big").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn unknown_or_mistyped_fields_are_invalid_body() {
    let app = app().await;
    for body in [
        json!({"name": "acme", "owner": "me"}),
        json!({"name": 42}),
        json!({"display_name": "no name"}),
        json!(["acme"]),
    ] {
        let reply = app.post_json("/v1/tenants", body.to_string()).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    }
}

#[tokio::test]
async fn invalid_values_fail_validation_and_duplicates_conflict() {
    let app = app().await;
    for body in [
        json!({"name": "Not Valid"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(64)}),
        json!({"name": "ok", "display_name": "   "}),
        json!({"name": "ok", "display_name": "bell\u{7}"}),
        json!({"name": "ok", "display_name": "x".repeat(201)}),
    ] {
        let reply = app.post_json("/v1/tenants", body.to_string()).await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    app.post_json("/v1/tenants", json!({"name": "taken"}).to_string())
        .await;
    let again = app
        .post_json("/v1/tenants", json!({"name": "taken"}).to_string())
        .await;
    assert_problem(&again, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn invalid_ids_and_parameters_are_invalid_parameter() {
    let app = app().await;
    for uri in [
        "/v1/tenants/Not%20A%20Name",
        "/v1/tenants/%00",
        "/v1/tenants?after=not-a-cursor",
        "/v1/tenants?limit=abc",
        "/v1/tenants?limit=-1",
    ] {
        assert_problem(
            &app.get(uri).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        );
    }
    let long = format!("/v1/tenants/{}", "a".repeat(10_000));
    assert_problem(
        &app.get(&long).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    // Well-formed but absent.
    let absent = format!("/v1/tenants/{}", nexus_core::TenantId::new());
    assert_problem(&app.get(&absent).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = app().await;
    for uri in ["/", "/v1", "/v1/nope", "/v2/tenants", "/../etc/passwd"] {
        assert_problem(
            &app.get(uri).await,
            StatusCode::NOT_FOUND,
            "route_not_found",
        );
    }
    let reply = app
        .send(Request::delete("/v1/tenants").body(Body::empty()).unwrap())
        .await;
    assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn gateway_errors_map_to_problems() {
    let timeout = middleware::gateway_error(Box::new(tower::timeout::error::Elapsed::new())).await;
    assert_eq!(
        (timeout.code, timeout.status()),
        (ErrorCode::Timeout, StatusCode::GATEWAY_TIMEOUT)
    );
}

#[tokio::test]
async fn operations_endpoints() {
    let app = app().await;
    assert_eq!(app.get("/healthz").await.body["status"], "ok");
    assert_eq!(app.get("/readyz").await.body["status"], "ready");

    let reply = app
        .send(
            Request::get("/v1/tenants")
                .header(REQUEST_ID_HEADER, "my-request-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.headers[REQUEST_ID_HEADER], "my-request-1");
    let generated = app.get("/v1/tenants").await;
    assert!(generated.headers.contains_key(REQUEST_ID_HEADER));

    let metrics = app.get("/metrics").await;
    assert!(metrics.content_type.starts_with("text/plain"));
    assert!(
        metrics.text.contains(
            r#"nexus_http_requests_total{method="GET",route="/v1/tenants",status="200"}"#
        ),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let app = app().await;
    let doc = app.get("/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1/tenants", "/v1/tenants/{tenant}", "/healthz", "/readyz"] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc.body["paths"]["/v1/tenants"].get("post").is_some());
    assert!(doc.body["components"]["schemas"].get("Problem").is_some());
}

/// `/v1` bodies whose schema may stay free-form, each with the reason its content is open.
/// Keep it short: a body that has a shape gets a type in `nexus-api-model` instead.
const OPEN_BODIES: &[(&str, &str, &str)] = &[];

/// Every `/v1` request body and 2xx response body references a real schema: not `{}`, not an
/// object without properties (what `serde_json::Value` or a bare map becomes), unless it is
/// in `OPEN_BODIES`.
#[test]
fn every_v1_body_has_a_real_schema() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let mut free_form = Vec::new();
    let mut allowed_but_typed = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let mut bodies: Vec<(String, &Value)> = Vec::new();
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                for (media, body) in content {
                    bodies.push((format!("request {media}"), &body["schema"]));
                }
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                for (media, body) in response["content"].as_object().into_iter().flatten() {
                    bodies.push((format!("{status} {media}"), &body["schema"]));
                }
            }
            let allowed = OPEN_BODIES
                .iter()
                .any(|(m, p, _)| m.eq_ignore_ascii_case(method) && p == path);
            let open: Vec<String> = bodies
                .iter()
                .filter(|(_, schema)| is_free_form(schema, schemas, 0))
                .map(|(what, _)| format!("{} {path}: {what}", method.to_uppercase()))
                .collect();
            match (open.is_empty(), allowed) {
                (false, false) => free_form.extend(open),
                (true, true) => allowed_but_typed.push(format!("{method} {path}")),
                _ => {}
            }
        }
    }
    assert!(
        free_form.is_empty(),
        "free-form bodies (give them a type in nexus-api-model, or a reason in OPEN_BODIES): \
         {free_form:#?}"
    );
    assert!(
        allowed_but_typed.is_empty(),
        "typed now, drop them from OPEN_BODIES: {allowed_but_typed:#?}"
    );
}

/// Whether a schema says nothing about its content: `{}`, or an object with neither
/// properties nor typed additional properties, after following `$ref`s and compositions.
fn is_free_form(schema: &Value, schemas: &Value, depth: usize) -> bool {
    assert!(depth < 32, "schema nesting too deep: {schema}");
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        let target = &schemas[name];
        assert!(!target.is_null(), "dangling $ref {reference}");
        return is_free_form(target, schemas, depth + 1);
    }
    // All of them: open only if every part is. One or any of them: open if one alternative
    // is (`null` alternatives of optional values say nothing either way).
    if let Some(parts) = schema["allOf"].as_array() {
        return parts
            .iter()
            .all(|part| is_free_form(part, schemas, depth + 1));
    }
    for alternatives in ["oneOf", "anyOf"] {
        if let Some(parts) = schema[alternatives].as_array() {
            return parts
                .iter()
                .filter(|part| part["type"] != "null")
                .any(|part| is_free_form(part, schemas, depth + 1));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"array") {
        return is_free_form(&schema["items"], schemas, depth + 1);
    }
    if types.iter().any(|t| *t != "object" && *t != "null") {
        return false; // a string, number or boolean: a shape of its own
    }
    let has_properties = schema["properties"]
        .as_object()
        .is_some_and(|properties| !properties.is_empty());
    let typed_values = schema["additionalProperties"].is_object()
        && !is_free_form(&schema["additionalProperties"], schemas, depth + 1);
    !(has_properties || typed_values)
}

#[test]
fn the_free_form_check_tells_open_schemas_from_typed_ones() {
    let schemas = json!({
        "Open": {"type": "object"},
        "Typed": {"type": "object", "properties": {"a": {"type": "string"}}},
    });
    for open in [
        json!({}),
        json!({"type": "object"}),
        json!({"type": "object", "additionalProperties": true}),
        json!({"$ref": "#/components/schemas/Open"}),
        json!({"type": "array", "items": {}}),
        json!({"oneOf": [{"$ref": "#/components/schemas/Typed"}, {"type": "object"}]}),
    ] {
        assert!(is_free_form(&open, &schemas, 0), "{open}");
    }
    for typed in [
        json!({"type": "string"}),
        json!({"$ref": "#/components/schemas/Typed"}),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Typed"}}),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
        json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Typed"}]}),
        json!({"allOf": [{"$ref": "#/components/schemas/Typed"}, {"type": "object"}]}),
    ] {
        assert!(!is_free_form(&typed, &schemas, 0), "{typed}");
    }
}

async fn put_bytes(app: &TestApp, uri: &str, body: Vec<u8>) -> Reply {
    app.send(
        Request::put(uri)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn invalid_packages_are_refused_and_nothing_is_stored() {
    let app = app().await;
    let manifest = "[agent]\nname = \"x\"\nnamespace = \"t\"\nversion = \"0.1.0\"\ndescription = \"d\"\n[[skills]]\nid = \"s\"\nname = \"S\"\ndescription = \"d\"\n";
    // A well-formed archive whose component header is valid but whose body is not a component.
    let fake_component =
        nexus_package::pack(manifest, b"\0asm\x0d\x00\x01\x00garbage", None).unwrap();
    for body in [b"not a package".to_vec(), Vec::new(), fake_component.bytes] {
        let reply = put_bytes(&app, "/v1/tenants/default/packages", body).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_package");
    }
    let listed = app.get("/v1/tenants/default/packages").await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn oversized_packages_are_payload_too_large() {
    let app = app().await;
    let huge = vec![0u8; routes::agents::MAX_PACKAGE_BYTES + 1];
    let reply = put_bytes(&app, "/v1/tenants/default/packages", huge).await;
    assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn deploy_invoke_and_task_routes_reject_bad_input() {
    let app = app().await;
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases: Vec<(Reply, StatusCode, &str)> = vec![
        (
            app.post_json("/v1/tenants/default/agents", json!({"package_digest": digest}).to_string()).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.post_json("/v1/tenants/default/agents", json!({"package_digest": digest, "name": "Bad Name"}).to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            app.post_json("/v1/tenants/default/agents", json!({"package_digest": digest, "grants": {"capabilities": ["state"], "extra": 1}}).to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            app.post_json("/v1/tenants/default/agents/nobody/tasks", json!({"text": "hi"}).to_string()).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.post_json("/v1/tenants/default/agents/nobody/tasks", json!({"text": "hi", "context_id": ""}).to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            app.post_json("/v1/tenants/nope/agents/x/tasks", json!({"text": "hi"}).to_string()).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (app.get("/v1/tenants/default/tasks/not-an-id").await, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (
            app.get(&format!("/v1/tenants/default/tasks/{}", nexus_core::TaskId::new())).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (app.get("/v1/tenants/default/tasks?state=sleeping").await, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (app.get("/v1/tenants/default/agents/Bad%20Name").await, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (
            app.post_json(&format!("/v1/tenants/default/tasks/{}/cancel", nexus_core::TaskId::new()), "{}").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (reply, status, code) in &cases {
        assert_problem(reply, *status, code);
    }
}

/// One MCP message to `/mcp/{tenant}`, as a Streamable HTTP client sends it.
async fn mcp(app: &TestApp, tenant: &str, message: Value) -> Reply {
    app.send(
        Request::post(format!("/mcp/{tenant}"))
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(Body::from(message.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn mcp_initializes_statelessly_and_refuses_unknown_tools() {
    let app = app().await;
    let init = mcp(
        &app,
        "default",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    assert_eq!(init.content_type, "application/json");
    assert_eq!(init.body["result"]["protocolVersion"], "2025-11-25");
    assert!(init.body["result"]["capabilities"]["tools"].is_object());
    assert!(!init.headers.contains_key("mcp-session-id"));

    let listed = mcp(
        &app,
        "default",
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(listed.body["result"]["tools"], json!([]), "{}", listed.text);

    for name in ["nobody", "Bad Name", "nobody__skill", ""] {
        let called = mcp(
            &app,
            "default",
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": name, "arguments": {"message": "hi"}}}),
        )
        .await;
        assert_eq!(called.body["error"]["code"], -32602, "{}", called.text);
    }
}

#[tokio::test]
async fn mcp_bad_tenants_and_methods_are_problems() {
    let app = app().await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_problem(
        &mcp(&app, "nope", ping.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(
        &mcp(&app, "Bad%20Name", ping).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    assert_problem(
        &app.get("/mcp/default").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // A browser page (DNS rebinding) is refused by the gateway (and the MCP layer).
    let from_page = app
        .send(
            Request::post("/mcp/default")
                .header(header::HOST, "localhost")
                .header(header::ORIGIN, "http://evil.example")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream")
                .body(Body::from(
                    json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_problem(&from_page, StatusCode::FORBIDDEN, "origin_refused");
    // What the MCP transport refuses is a problem too, never plain text.
    let raw = |content_type: &str, accept: &str, body: &str| {
        Request::post("/mcp/default")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, accept)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let both = "application/json, text/event-stream";
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for (request, status, code) in [
        (
            raw("application/json", both, "{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw("application/json", both, "[]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            raw("application/json", both, r#"{"hello": "world"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            raw("text/plain", both, &ping),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw("application/json", "text/html", &ping),
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
        ),
    ] {
        assert_problem(&app.send(request).await, status, code);
    }
    let small = app_with(Limits {
        body_limit_bytes: 64,
        ..Limits::default()
    })
    .await;
    let padded = json!({"jsonrpc": "2.0", "id": 1, "method": "ping",
        "params": {"_meta": {"pad": "x".repeat(64)}}});
    assert_problem(
        &mcp(&small, "default", padded).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

/// Stores a package's metadata as an upload would; deploying reads nothing else.
async fn stored_package(app: &TestApp, agent: &str) -> String {
    let manifest = nexus_package::parse_manifest(
        "nexus.toml",
        &format!(
            "[agent]\nname = \"{agent}\"\nnamespace = \"t\"\nversion = \"0.1.0\"\ndescription = \"d\"\n\
             [[skills]]\nid = \"s\"\nname = \"S\"\ndescription = \"d\"\n"
        ),
    )
    .unwrap();
    let tenant = app
        .store
        .get_tenant_by_name(&nexus_core::Name::parse("default").unwrap())
        .await
        .unwrap();
    let digest = format!("sha256:{}", "b".repeat(64));
    app.store
        .put_package(
            tenant.id,
            nexus_core::NewPackage {
                reference: manifest.package_ref(),
                digest: digest.clone(),
                size_bytes: 1,
                manifest: manifest.to_json(),
            },
            nexus_core::NewAuditEvent {
                actor: "system".into(),
                action: "package.upload".into(),
                target: "packages/test".into(),
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    digest
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn deploy_secrets_are_stored_encrypted_and_shown_by_name_only() {
    const LEAK: &str = "DO-NOT-LEAK";
    let app = app().await;
    let digest = stored_package(&app, "mailer").await;
    let value = format!("sk-live-{LEAK}-0123456789");
    let deployed = app
        .post_json(
            "/v1/tenants/default/agents",
            json!({"package_digest": digest, "config": {"mode": "fast"},
                "secrets": {"api-key": value, "token": format!("tok-{LEAK}")}})
            .to_string(),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    assert_eq!(
        deployed.body["revision"]["secret_names"],
        json!(["api-key", "token"])
    );
    assert!(!deployed.text.contains(LEAK), "{}", deployed.text);
    let shown = app.get("/v1/tenants/default/agents/mailer").await;
    assert_eq!(
        shown.body["revisions"][0]["secret_names"],
        json!(["api-key", "token"])
    );
    assert!(!shown.text.contains(LEAK), "{}", shown.text);

    // The row holds a ciphertext of the right size, and no database file holds the value.
    let tenant = nexus_core::TenantId::from_uuid(
        deployed.body["agent"]["tenant_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let agent: nexus_core::AgentId = deployed.body["agent"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stored = app
        .store
        .get_secret(tenant, agent, "api-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.len(), value.len() + nexus_secrets::OVERHEAD);
    assert!(!contains(&stored, LEAK));
    let mut files = Vec::new();
    for file in ["nexus.db", "nexus.db-wal"] {
        files.extend(std::fs::read(app.dir.path().join(file)).unwrap_or_default());
    }
    assert!(contains(&files, "api-key"), "names are stored in the clear");
    assert!(
        !contains(&files, LEAK),
        "a secret value is in the database file"
    );

    // A redeploy without secrets keeps them.
    let again = app
        .post_json(
            "/v1/tenants/default/agents",
            json!({"package_digest": digest}).to_string(),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["revision"]["revision"], 2);
    assert_eq!(
        again.body["revision"]["secret_names"],
        json!(["api-key", "token"])
    );

    // Bad secrets are refused, echo no value, and deploy nothing.
    let too_many: serde_json::Map<String, Value> = (0..=nexus_control::MAX_SECRETS_PER_AGENT)
        .map(|i| (format!("k{i}"), json!(LEAK)))
        .collect();
    let cases = [
        (
            json!({"token": ""}),
            "validation_failed",
            "`token` is empty",
        ),
        (
            json!({"token": 12345}),
            "invalid_body",
            "`token` must be a string",
        ),
        (
            json!({"token": [LEAK]}),
            "invalid_body",
            "`token` must be a string",
        ),
        (json!(LEAK), "invalid_body", "must be an object"),
        (json!({"bad name": LEAK}), "validation_failed", "bad name"),
        (Value::Object(too_many), "validation_failed", "at most"),
        (
            json!({"token": format!("{LEAK}{}", "x".repeat(nexus_control::MAX_SECRET_VALUE_BYTES))}),
            "validation_failed",
            "the limit is",
        ),
    ];
    for (secrets, code, detail) in cases {
        let reply = app
            .post_json(
                "/v1/tenants/default/agents",
                json!({"package_digest": digest, "secrets": secrets}).to_string(),
            )
            .await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, code);
        let shown = reply.body["detail"].as_str().unwrap();
        assert!(shown.contains(detail), "{secrets}: {shown}");
        assert!(!shown.contains(LEAK) && !shown.contains("12345"), "{shown}");
    }
    let unchanged = app.get("/v1/tenants/default/agents/mailer").await;
    assert_eq!(unchanged.body["agent"]["current_revision"], 2);
}

#[tokio::test]
async fn a2a_rest_binding_maps_errors_and_refuses_bad_input() {
    let app = app().await;
    let digest = stored_package(&app, "mailer").await;
    let deployed = app
        .post_json(
            "/v1/tenants/default/agents",
            json!({"package_digest": digest}).to_string(),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    let base = "/a2a/default/mailer";
    let unknown = nexus_core::TaskId::new();
    let request = |method: &str, path: &str, body: &str, version: &str| {
        Request::builder()
            .method(method)
            .uri(format!("{base}/{path}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("a2a-version", version)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    // (HTTP status, google.rpc status, ErrorInfo reason)
    let bad_request = (400, "INVALID_ARGUMENT", "INVALID_REQUEST");
    let bad_params = (400, "INVALID_ARGUMENT", "INVALID_PARAMS");
    let no_task = (404, "NOT_FOUND", "TASK_NOT_FOUND");
    let no_route = (404, "NOT_FOUND", "METHOD_NOT_FOUND");
    let wrong_method = (405, "UNIMPLEMENTED", "METHOD_NOT_FOUND");
    let no_card = (
        400,
        "FAILED_PRECONDITION",
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    );
    let old_version = (400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED");
    let agent_message = r#"{"message": {"role": "ROLE_AGENT", "parts": [{"text": "hi"}]}}"#;
    let (task, cancel) = (
        format!("tasks/{unknown}"),
        format!("tasks/{unknown}:cancel"),
    );
    let subscribe = format!("tasks/{unknown}:subscribe");
    let pause = format!("tasks/{unknown}:pause");
    let cases = [
        ("POST", "message:send", "{not json", "1.0", bad_request),
        ("POST", "message:send", "[1, 2]", "1.0", bad_request),
        ("POST", "message:send", "{}", "1.0", bad_params),
        ("POST", "message:send", agent_message, "1.0", bad_params),
        ("POST", "message:stream", "", "1.0", bad_params),
        ("POST", "message:send", "{}", "0.3", old_version),
        ("GET", &task, "", "1.0", no_task),
        ("GET", "tasks/not-a-task", "", "1.0", no_task),
        ("POST", &cancel, "", "1.0", no_task),
        ("POST", &subscribe, "", "1.0", no_task),
        ("GET", &subscribe, "", "1.0", no_task),
        ("GET", "tasks?pageSize=many", "", "1.0", bad_params),
        ("GET", "tasks?pageSize=-1", "", "1.0", bad_params),
        ("GET", "tasks?pageSize=1.5", "", "1.0", bad_params),
        ("GET", "tasks?status=SLEEPING", "", "1.0", bad_params),
        ("GET", "tasks?includeArtifacts=maybe", "", "1.0", bad_params),
        ("GET", "extendedAgentCard", "", "1.0", no_card),
        ("GET", "nothing/here", "", "1.0", no_route),
        ("POST", &pause, "", "1.0", no_route),
        ("GET", "tasks//x", "", "1.0", no_route),
        ("DELETE", "message:send", "", "1.0", wrong_method),
        ("GET", &cancel, "", "1.0", wrong_method),
    ];
    for (method, path, body, version, (status, name, reason)) in cases {
        let what = format!("{method} {path} (A2A {version})");
        let reply = app.send(request(method, path, body, version)).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
        assert_eq!(
            reply.content_type,
            routes::a2a_rest::RESPONSE_MEDIA_TYPE,
            "{what}"
        );
        let error = &reply.body["error"];
        assert_eq!(error["code"], status, "{what}: {}", reply.text);
        assert_eq!(error["status"], name, "{what}: {}", reply.text);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        let info = &error["details"][0];
        assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(info["reason"], reason, "{what}: {}", reply.text);
        assert_eq!(info["domain"], "a2a-protocol.org", "{what}");
    }
    let put = app.send(request("PUT", "tasks", "", "1.0")).await;
    assert_eq!(put.headers[header::ALLOW], "GET");

    // Good input answers the resource itself; no version header means 1.0.
    let listed = app
        .get(&format!("{base}/tasks?pageSize=5&historyLength=0"))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(
        listed.body,
        json!({"tasks": [], "nextPageToken": "", "pageSize": 5})
    );
    let listed = app
        .get(&format!("{base}/tasks?page_size=3&history_length=0"))
        .await;
    assert_eq!(listed.body["pageSize"], 3, "{}", listed.text);
    let card = app
        .get(&format!("{base}/.well-known/agent-card.json"))
        .await;
    assert_eq!(card.status, StatusCode::OK, "{}", card.text);
    assert!(
        card.body["supportedInterfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["protocolBinding"] == "HTTP+JSON" && i["protocolVersion"] == "1.0"),
        "{}",
        card.text
    );
    // The card can be cached and revalidated: a matching `If-None-Match` gets a bodiless 304.
    assert_eq!(card.headers[header::CACHE_CONTROL], "public, max-age=60");
    assert!(card.headers.contains_key(header::LAST_MODIFIED));
    let etag = card.headers[header::ETAG].to_str().unwrap().to_owned();
    for (if_none_match, status) in [
        (etag.clone(), StatusCode::NOT_MODIFIED),
        (format!("\"other\", W/{etag}"), StatusCode::NOT_MODIFIED),
        ("\"other\"".to_owned(), StatusCode::OK),
    ] {
        let revalidated = app
            .send(
                Request::get(format!("{base}/.well-known/agent-card.json"))
                    .header(header::IF_NONE_MATCH, &if_none_match)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(revalidated.status, status, "{if_none_match}");
        assert_eq!(revalidated.headers[header::ETAG], etag.as_str());
        assert_eq!(
            revalidated.text.is_empty(),
            status == StatusCode::NOT_MODIFIED
        );
    }

    // Without an agent to speak for, the platform answers.
    assert_problem(
        &app.post_json("/a2a/default/nobody/message:send", "{}")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(
        &app.get("/a2a/nope/mailer/tasks").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The body limit applies before the agent is looked up.
    let small = app_with(Limits {
        body_limit_bytes: 64,
        ..Limits::default()
    })
    .await;
    assert_problem(
        &small
            .post_json(
                "/a2a/default/mailer/message:send",
                json!({"pad": "x".repeat(64)}).to_string(),
            )
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

/// A2A JSON-RPC refuses what it cannot read instead of guessing: an `A2A-Version` header that
/// is not text is not "no header" (0.3) but an unsupported version, and a `pageSize` that is
/// not a non-negative integer is invalid, as over `/v1` and the HTTP+JSON binding.
#[tokio::test]
async fn a2a_json_rpc_refuses_unreadable_versions_and_page_sizes() {
    let app = app().await;
    let digest = stored_package(&app, "mailer").await;
    let deployed = app
        .post_json(
            "/v1/tenants/default/agents",
            json!({"package_digest": digest}).to_string(),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    let rpc = |version: Option<&[u8]>, method: &str, params: Value| {
        let mut request =
            Request::post("/a2a/default/mailer").header(header::CONTENT_TYPE, "application/json");
        if let Some(version) = version {
            request = request.header(
                "a2a-version",
                axum::http::HeaderValue::from_bytes(version).unwrap(),
            );
        }
        request
            .body(Body::from(
                json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string(),
            ))
            .unwrap()
    };
    let list = |page_size: Value| json!({"pageSize": page_size});
    let no_size = json!({});
    /// (A2A-Version, method, params, the page size answered or the JSON-RPC error code)
    type Case<'a> = (Option<&'a [u8]>, &'a str, Value, Result<u64, i64>);
    let cases: Vec<Case> = vec![
        (Some(b"1.0\xff"), "ListTasks", no_size.clone(), Err(-32009)),
        (Some(b"\xe9"), "tasks/get", json!({"id": "x"}), Err(-32009)),
        (Some(b"9.9"), "ListTasks", no_size.clone(), Err(-32009)),
        (Some(b"1.0"), "ListTasks", list(json!(-1)), Err(-32602)),
        (Some(b"1.0"), "ListTasks", list(json!(1.5)), Err(-32602)),
        (Some(b"1.0"), "ListTasks", list(json!("5")), Err(-32602)),
        (Some(b"1.0"), "ListTasks", list(json!(true)), Err(-32602)),
        (Some(b"1.0"), "ListTasks", list(json!(5)), Ok(5)),
        // ProtoJSON: the proto field name works as the JSON name does, in 1.0.
        (Some(b"1.0"), "ListTasks", json!({"page_size": 7}), Ok(7)),
        (Some(b"1.0"), "ListTasks", list(json!(0)), Ok(1)),
        (Some(b"1.0"), "ListTasks", list(json!(100_000)), Ok(100)),
        (Some(b"1.0"), "ListTasks", list(Value::Null), Ok(50)),
        (Some(b"1.0"), "ListTasks", no_size.clone(), Ok(50)),
        (None, "tasks/get", json!({"id": "x"}), Err(-32001)),
        // The caller's message id is kept, so it is bounded.
        (
            Some(b"1.0"),
            "SendMessage",
            json!({"message": {"messageId": "m".repeat(257), "role": "ROLE_USER",
                "parts": [{"text": "hi"}]}}),
            Err(-32602),
        ),
    ];
    for (version, method, params, expected) in cases {
        let what = format!("{method} {params} (A2A-Version {version:?})");
        let reply = app.send(rpc(version, method, params)).await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text);
        assert_eq!(reply.body["id"], 7, "{what}: {}", reply.text);
        match expected {
            Ok(size) => assert_eq!(
                reply.body["result"]["pageSize"], size,
                "{what}: {}",
                reply.text
            ),
            Err(code) => {
                assert_eq!(reply.body["error"]["code"], code, "{what}: {}", reply.text);
                assert!(reply.body.get("result").is_none(), "{what}");
                // 1.0 errors name their A2A reason in a `google.rpc.ErrorInfo`; 0.3 ones don't.
                let data = reply.body["error"].get("data");
                if version.is_some() {
                    let info = &data.unwrap_or(&Value::Null)[0];
                    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
                    assert_eq!(info["domain"], "a2a-protocol.org", "{what}");
                    let reason = routes::a2a_rest::error_mapping(code).2;
                    assert_eq!(info["reason"], reason, "{what}: {}", reply.text);
                } else {
                    assert!(data.is_none(), "{what}: {}", reply.text);
                }
            }
        }
    }
    // The endpoint with a trailing slash is the same endpoint.
    let slashed = Request::post("/a2a/default/mailer/")
        .header(header::CONTENT_TYPE, "application/json")
        .header("a2a-version", "1.0")
        .body(Body::from(
            json!({"jsonrpc": "2.0", "id": 8, "method": "ListTasks", "params": {}}).to_string(),
        ))
        .unwrap();
    let reply = app.send(slashed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["result"]["pageSize"], 50, "{}", reply.text);
}

/// `docs/errors.md` lists every code with the status `status_of` gives it. The `match` makes
/// a new code fail to compile here until it is added to the list.
#[test]
fn every_error_code_is_documented_with_its_status() {
    const DOC: &str = include_str!("../../../docs/errors.md");
    fn listed(code: ErrorCode) -> ErrorCode {
        match code {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidBody
            | ErrorCode::ValidationFailed
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::InvalidParameter
            | ErrorCode::RouteNotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::NotAcceptable
            | ErrorCode::OriginRefused
            | ErrorCode::HostRefused
            | ErrorCode::MalformedRequest
            | ErrorCode::HeadersTooLarge
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::RateLimited
            | ErrorCode::NotFound
            | ErrorCode::Conflict
            | ErrorCode::IllegalTransition
            | ErrorCode::InvalidPackage
            | ErrorCode::GrantRefused
            | ErrorCode::GrantsUnconfirmed
            | ErrorCode::Timeout
            | ErrorCode::Overloaded
            | ErrorCode::Unavailable
            | ErrorCode::Internal => code,
        }
    }
    let all = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidBody,
        ErrorCode::ValidationFailed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidParameter,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotAcceptable,
        ErrorCode::OriginRefused,
        ErrorCode::HostRefused,
        ErrorCode::MalformedRequest,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::IllegalTransition,
        ErrorCode::InvalidPackage,
        ErrorCode::GrantRefused,
        ErrorCode::GrantsUnconfirmed,
        ErrorCode::Timeout,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];
    for code in all.map(listed) {
        let row = format!("| `{code}` | {} |", error::status_of(code).as_u16());
        assert!(DOC.contains(&row), "docs/errors.md has no row `{row}`");
    }
}
