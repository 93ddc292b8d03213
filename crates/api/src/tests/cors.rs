//! CORS: no origin is allowed by default; a listed origin gets its preflight answered (before
//! authentication) and may read responses; any other origin gets no CORS headers.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::{ADMIN_KEY, Reply, TestApp, app, app_with};
use crate::Limits;

const ALLOWED: &str = "https://app.example.com";
const STRANGER: &str = "https://evil.example.net";

async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.send_as_is(
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/tenants")
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

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let app = app().await;
    let answer = preflight(&app, ALLOWED).await;
    assert_eq!(allow_origin(&answer), None);
    assert_ne!(answer.status, StatusCode::OK, "{}", answer.text);
    let read = get_from(&app, ALLOWED).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        allow_origin(&read),
        None,
        "browsers keep the response from the script"
    );
}

#[tokio::test]
async fn listed_origins_only() {
    let app = app_with(Limits {
        cors: nexus_config::CorsConfig {
            allowed_origins: vec![ALLOWED.to_owned()],
            max_age_secs: 120,
        },
        ..Limits::default()
    })
    .await;
    let answer = preflight(&app, ALLOWED).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "a preflight needs no credentials"
    );
    assert_eq!(allow_origin(&answer), Some(ALLOWED));
    let allowed_headers = answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert_eq!(answer.headers[header::ACCESS_CONTROL_MAX_AGE], "120");
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "credentials travel in Authorization, never cookies"
    );

    let read = get_from(&app, ALLOWED).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(allow_origin(&read), Some(ALLOWED));
    let exposed = read.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    let stranger = preflight(&app, STRANGER).await;
    assert_eq!(allow_origin(&stranger), None);
    assert_eq!(allow_origin(&get_from(&app, STRANGER).await), None);
}
