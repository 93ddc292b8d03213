//! CORS: no origin is allowed by default; a listed origin gets its preflight answered (before
//! authentication) with only what the API needs, and may read responses; any other origin is
//! refused and gets no CORS header at all.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::{ADMIN_KEY, Reply, TestApp, app_with, assert_problem};
use crate::Limits;

const ALLOWED: &str = "https://app.example.com";
const STRANGER: &str = "https://evil.example.net";

async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.send_as_is(
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/tenants")
            .header(header::HOST, "nexus.example.com")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn get_from(app: &TestApp, origin: &str) -> Reply {
    app.send_as_is(
        Request::get("/v1/tenants")
            .header(header::HOST, "nexus.example.com")
            .header(header::ORIGIN, origin)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn allow_origin(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok())
}

fn has_cors_headers(reply: &Reply) -> bool {
    reply
        .headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-"))
}

fn listed() -> Limits {
    Limits {
        cors: nexus_config::CorsConfig {
            allowed_origins: vec![ALLOWED.to_owned()],
            max_age_secs: 120,
        },
        allowed_hosts: vec!["nexus.example.com".to_owned()],
        ..Limits::default()
    }
}

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let app = app_with(Limits {
        allowed_hosts: vec!["nexus.example.com".to_owned()],
        ..Limits::default()
    })
    .await;
    let answer = preflight(&app, ALLOWED).await;
    assert_problem(&answer, StatusCode::FORBIDDEN, "origin_refused");
    assert!(!has_cors_headers(&answer));
    let read = get_from(&app, ALLOWED).await;
    assert_problem(&read, StatusCode::FORBIDDEN, "origin_refused");
    assert!(
        !has_cors_headers(&read),
        "browsers keep the answer from the script"
    );
}

#[tokio::test]
async fn listed_origins_only() {
    let app = app_with(listed()).await;
    let answer = preflight(&app, ALLOWED).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "a preflight needs no credentials: {}",
        answer.text
    );
    assert_eq!(allow_origin(&answer), Some(ALLOWED), "echoed, never `*`");
    let list = |name| {
        answer.headers[name]
            .to_str()
            .unwrap()
            .split(", ")
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(header::ACCESS_CONTROL_ALLOW_METHODS),
        ["GET", "POST", "PUT", "DELETE"]
    );
    assert_eq!(
        list(header::ACCESS_CONTROL_ALLOW_HEADERS),
        [
            "authorization",
            "content-type",
            "accept",
            "last-event-id",
            "traceparent",
            "a2a-version"
        ],
        "only what the API reads"
    );
    assert_eq!(answer.headers[header::ACCESS_CONTROL_MAX_AGE], "120");
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "credentials travel in Authorization, never cookies"
    );

    let read = get_from(&app, ALLOWED).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(allow_origin(&read), Some(ALLOWED));
    assert!(
        !read
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
    );
    let exposed = read.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert_eq!(read.headers[header::VARY], "origin");

    // A listed origin's errors are readable too (the script learns why).
    let unauthenticated = app
        .send_as_is(
            Request::get("/v1/tenants")
                .header(header::HOST, "nexus.example.com")
                .header(header::ORIGIN, ALLOWED)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(
        &unauthenticated,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(allow_origin(&unauthenticated), Some(ALLOWED));
    // `OPTIONS` that is no preflight goes to the router.
    let options = app
        .send(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/v1/tenants")
                .header(header::ORIGIN, ALLOWED)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(
        &options,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    for stranger in [
        preflight(&app, STRANGER).await,
        get_from(&app, STRANGER).await,
    ] {
        assert_problem(&stranger, StatusCode::FORBIDDEN, "origin_refused");
        assert!(!has_cors_headers(&stranger), "{:?}", stranger.headers);
    }
    // Programs without `Origin` see no CORS header, only that answers vary by origin.
    let program = app
        .send(
            Request::get("/v1/tenants")
                .header(header::HOST, "nexus.example.com")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(program.status, StatusCode::OK);
    assert!(!has_cors_headers(&program));
    assert_eq!(program.headers[header::VARY], "origin");
}
