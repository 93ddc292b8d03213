//! Cross-site requests and DNS rebinding through the router: the shared hostile cases of
//! `tests/hostile/cross_site.json` are refused with their codes and store nothing, and what
//! must keep working (programs without `Origin`, the server's own pages, listed names, JSON
//! in its accepted spellings, probes behind load balancers) does.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::{ADMIN_KEY, Reply, TestApp, app, app_with, assert_problem, stored_package};
use crate::Limits;

/// The address the router tests pretend the server was reached at.
const OWN: &str = "127.0.0.1:7700";
/// A name an attacker points at the server.
const REBOUND: &str = "rebind.attacker.example";

/// The hostile cases, shared with the server test and the hostile-traffic suite.
const CASES: &str = include_str!("../../../../tests/hostile/cross_site.json");

/// One request of `tests/hostile/cross_site.json` and the answer it must get.
#[derive(Debug, Deserialize)]
pub(crate) struct Case {
    pub name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    pub code: String,
}

#[derive(Debug, Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

fn cases() -> Vec<Case> {
    serde_json::from_str::<Cases>(CASES).unwrap().cases
}

fn fill(template: &str) -> String {
    template.replace("{key}", ADMIN_KEY).replace("{own}", OWN)
}

fn request(case: &Case) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::from_bytes(case.method.as_bytes()).unwrap())
        .uri(&case.path)
        .body(Body::from(fill(&case.body)))
        .unwrap();
    for (name, value) in &case.headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&fill(value)).unwrap(),
        );
    }
    request
}

/// Deploys an agent named `echo` (metadata only: nothing here may run it).
async fn with_echo(app: &TestApp) {
    let digest = stored_package(app, "echo").await;
    let deployed = app
        .post_json(
            "/v1/tenants/default/agents",
            json!({"package_digest": digest}).to_string(),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
}

async fn get_with(app: &TestApp, path: &str, headers: &[(HeaderName, &str)]) -> Reply {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

/// The JSON-RPC request a hostile page would send, with `content_type`.
fn rpc_with(content_type: &str) -> Request<Body> {
    Request::post("/a2a/default/echo")
        .header(header::HOST, OWN)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}})
                .to_string(),
        ))
        .unwrap()
}

#[tokio::test]
async fn hostile_cases_are_refused_with_their_codes_and_store_nothing() {
    let app = app().await;
    with_echo(&app).await;
    let cases = cases();
    assert!(cases.len() >= 20, "the shared table is read");
    for case in &cases {
        let reply = app.send_as_is(request(case)).await;
        let status = StatusCode::from_u16(case.status).unwrap();
        assert_eq!(reply.status, status, "{}: {}", case.name, reply.text);
        assert_problem(&reply, status, &case.code);
        assert!(
            !reply
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "{}: a refusal lets no script read anything",
            case.name
        );
        assert!(
            reply.headers.contains_key(crate::REQUEST_ID_HEADER),
            "{}: refusals carry a request id",
            case.name
        );
    }
    let tenants = app.get("/v1/tenants").await;
    assert_eq!(tenants.body["items"].as_array().map(Vec::len), Some(1));
    let tasks = app.get("/a2a/default/echo/tasks").await;
    assert_eq!(tasks.body["tasks"], json!([]), "{}", tasks.text);
}

#[tokio::test]
async fn json_bodies_pass_in_every_accepted_spelling() {
    let app = app().await;
    with_echo(&app).await;
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/a2a+json",
    ] {
        // Past the check: a JSON-RPC answer (no such task), not a 415.
        let reply = app.send(rpc_with(content_type)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], -32001, "{content_type}");
        let rest = app
            .send(
                Request::post("/a2a/default/echo/message:send")
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await;
        assert_eq!(rest.status, StatusCode::BAD_REQUEST, "{}", rest.text);
        assert_eq!(rest.body["error"]["details"][0]["reason"], "INVALID_PARAMS");
    }
    // A JSON-RPC request has a body: no type is no JSON-RPC, even empty.
    let empty = app
        .send(
            Request::post("/a2a/default/echo")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(
        &empty,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // The REST binding's bodiless POSTs (the SDK's subscribe) need no type.
    let subscribe = app
        .send(
            Request::post("/a2a/default/echo/tasks/nope:subscribe")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        subscribe.status,
        StatusCode::NOT_FOUND,
        "{}",
        subscribe.text
    );
    assert_eq!(
        subscribe.body["error"]["details"][0]["reason"],
        "TASK_NOT_FOUND"
    );
    // Reads and deletes take no body and need no type, on `/v1` and A2A alike.
    assert_eq!(app.get("/v1/tenants").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/a2a/default/echo/tasks").await.status,
        StatusCode::OK
    );
    let created = app
        .post_json(
            "/v1/tenants",
            json!({"name": "gone", "display_name": "Gone"}).to_string(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let deleted = app
        .send(
            Request::delete("/v1/tenants/gone")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
}

#[tokio::test]
async fn programs_without_origin_reach_the_servers_own_addresses() {
    let app = app().await;
    for host in [
        Some(OWN),
        Some("localhost:7700"),
        Some("LOCALHOST"),
        Some("[::1]:7700"),
        Some("10.0.0.7"),
        None,
    ] {
        let headers: Vec<(HeaderName, &str)> =
            host.map(|h| (header::HOST, h)).into_iter().collect();
        let reply = get_with(&app, "/v1/tenants", &headers).await;
        assert_eq!(reply.status, StatusCode::OK, "{host:?}: {}", reply.text);
    }
}

#[tokio::test]
async fn the_servers_own_pages_pass_and_get_no_cors_headers() {
    let app = app().await;
    for (host, origin) in [
        ("localhost:7700", "http://localhost:7700"),
        (OWN, "http://127.0.0.1:7700"),
        ("[::1]:7700", "http://[::1]:7700"),
    ] {
        let reply = get_with(
            &app,
            "/v1/tenants",
            &[(header::HOST, host), (header::ORIGIN, origin)],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{origin}: {}", reply.text);
        assert!(
            !reply
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "a same-origin page needs none"
        );
    }
    let created = app
        .send(
            Request::post("/v1/tenants")
                .header(header::HOST, "localhost:7700")
                .header(header::ORIGIN, "http://localhost:7700")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"name": "mine", "display_name": "Mine"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    // A request that names no host cannot be the page's own.
    let hostless = app
        .send(
            Request::get("/v1/tenants")
                .header(header::ORIGIN, "http://localhost:7700")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&hostless, StatusCode::FORBIDDEN, "origin_refused");
}

#[tokio::test]
async fn listed_host_names_are_served_and_star_serves_any() {
    let listed = app_with(Limits {
        allowed_hosts: vec![
            "nexus.example.com".to_owned(),
            "*.tenants.example.com".to_owned(),
        ],
        ..Limits::default()
    })
    .await;
    for (host, served) in [
        ("nexus.example.com", true),
        ("NEXUS.example.com.:8443", true),
        ("acme.tenants.example.com", true),
        (OWN, true),
        ("localhost", true),
        ("tenants.example.com", false),
        (REBOUND, false),
    ] {
        let reply = get_with(&listed, "/v1/tenants", &[(header::HOST, host)]).await;
        if served {
            assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text);
        } else {
            assert_problem(&reply, StatusCode::BAD_REQUEST, "host_refused");
        }
    }
    // Same-origin holds for a listed name too.
    let page = get_with(
        &listed,
        "/v1/tenants",
        &[
            (header::HOST, "nexus.example.com"),
            (header::ORIGIN, "https://nexus.example.com"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);

    let any = app_with(Limits {
        allowed_hosts: vec!["*".to_owned()],
        ..Limits::default()
    })
    .await;
    let reply = get_with(&any, "/v1/tenants", &[(header::HOST, REBOUND)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // `*` serves any name, never a malformed `Host` or another site's page.
    let broken = get_with(&any, "/v1/tenants", &[(header::HOST, "a b")]).await;
    assert_problem(&broken, StatusCode::BAD_REQUEST, "host_refused");
    let page = get_with(
        &any,
        "/v1/tenants",
        &[
            (header::HOST, REBOUND),
            (header::ORIGIN, "https://evil.example.net"),
        ],
    )
    .await;
    assert_problem(&page, StatusCode::FORBIDDEN, "origin_refused");
}

#[tokio::test]
async fn probes_answer_whatever_the_host() {
    let app = app().await;
    for path in ["/healthz", "/readyz"] {
        let reply = get_with(&app, path, &[(header::HOST, "lb-probe.internal")]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    // Metrics say more about the node: not a probe.
    let metrics = get_with(&app, "/metrics", &[(header::HOST, "lb-probe.internal")]).await;
    assert_problem(&metrics, StatusCode::BAD_REQUEST, "host_refused");
    // A malformed `Host` is refused even there.
    let broken = get_with(&app, "/healthz", &[(header::HOST, "a b")]).await;
    assert_problem(&broken, StatusCode::BAD_REQUEST, "host_refused");
}

#[tokio::test]
async fn the_request_target_and_host_must_agree() {
    let app = app().await;
    let reply = app
        .send(
            Request::get(format!("http://{REBOUND}/v1/tenants"))
                .header(header::HOST, OWN)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "host_refused");
    let absolute = app
        .send(
            Request::get(format!("http://{OWN}/v1/tenants"))
                .header(header::HOST, OWN)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(absolute.status, StatusCode::OK, "{}", absolute.text);
    let rebound = app
        .send(
            Request::get(format!("http://{REBOUND}/v1/tenants"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&rebound, StatusCode::BAD_REQUEST, "host_refused");
}

#[tokio::test]
async fn a_refused_request_with_a_body_closes_its_connection() {
    let app = app().await;
    let reply = app
        .send(
            Request::post("/v1/tenants")
                .header(header::HOST, REBOUND)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "2")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "host_refused");
    assert_eq!(reply.headers[header::CONNECTION], "close");
}

#[tokio::test]
async fn mcp_refuses_browser_pages_even_from_its_own_origin() {
    let app = app().await;
    let reply = app
        .send(
            Request::post("/mcp/default")
                .header(header::HOST, "localhost:7700")
                .header(header::ORIGIN, "http://localhost:7700")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream")
                .body(Body::from(
                    json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "origin_refused");
}

/// The gate's refusals are counted like any answer.
#[tokio::test]
async fn refusals_are_counted() {
    let app = app().await;
    let refused = get_with(&app, "/v1/tenants", &[(header::HOST, REBOUND)]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"route="/v1/tenants",status="400""#),
        "{metrics}"
    );
}
