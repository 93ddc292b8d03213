//! Rate limits: a flood from one key gets 429s while other keys and tenants keep going.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nexus_config::{Rate, RateLimitConfig};
use nexus_control::NewKeyRequest;
use nexus_core::identity::Role;
use nexus_core::{Caller, Name, TenantId};

use super::{ADMIN_KEY, TestApp, app_with, assert_problem};
use crate::Limits;

/// Requests in a flood; the limits below let through a burst of 3 and one more a second.
const FLOOD: usize = 20;

async fn tight_app(rate_limit: RateLimitConfig) -> TestApp {
    app_with(Limits {
        rate_limit,
        ..Limits::default()
    })
    .await
}

async fn key_in(app: &TestApp, tenant: &str, role: Role) -> String {
    let system = Caller::system(TenantId::new());
    let tenant = match app
        .control
        .tenant(
            &system,
            &nexus_control::TenantRef::Name(Name::parse(tenant).unwrap()),
        )
        .await
    {
        Ok(tenant) => tenant,
        Err(_) => app
            .control
            .create_tenant(&system, Name::parse(tenant).unwrap(), None)
            .await
            .unwrap(),
    };
    app.control
        .create_key(
            &system,
            tenant.id,
            NewKeyRequest {
                name: "flood".into(),
                role,
                platform_admin: false,
                expires_at: None,
            },
        )
        .await
        .unwrap()
        .secret
}

async fn get_as(app: &TestApp, key: &str, uri: &str) -> super::Reply {
    app.send_as_is(
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Counts the refusals in a flood of `FLOOD` reads, checking each refusal's headers.
async fn flood(app: &TestApp, key: &str, uri: &str) -> (usize, usize) {
    let (mut passed, mut refused) = (0, 0);
    for i in 0..FLOOD {
        let reply = get_as(app, key, uri).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            let retry: u64 = reply.headers[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1, "Retry-After {retry}");
            assert_eq!(reply.headers["ratelimit-remaining"], "0");
            assert_eq!(reply.headers["ratelimit-limit"], "3");
            refused += 1;
        } else {
            assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.text);
            if refused == 0 {
                passed += 1;
            }
        }
    }
    (passed, refused)
}

const TIGHT: Rate = Rate {
    per_second: 1,
    burst: 3,
};
const LOOSE: Rate = Rate {
    per_second: 10_000,
    burst: 10_000,
};

#[tokio::test]
async fn a_flooding_key_is_refused_while_other_tenants_go_on() {
    let app = tight_app(RateLimitConfig {
        key: TIGHT,
        tenant: LOOSE,
        ..RateLimitConfig::default()
    })
    .await;
    let flooder = key_in(&app, "default", Role::Viewer).await;
    let (first, refused) = flood(&app, &flooder, "/v1/tenants/default/agents").await;
    assert_eq!(first, 3, "the burst passes whole");
    // A request gets through again only after a second; allow for two in a slow run.
    assert!(refused >= FLOOD - 3 - 2, "{refused} refused");

    // Another tenant's key, and the platform admin, are not held back by it.
    let other = key_in(&app, "other", Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(
            get_as(&app, &other, "/v1/tenants/other/agents")
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&app, ADMIN_KEY, "/v1/tenants").await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_tenants_keys_share_its_rate_and_roles_can_have_their_own() {
    let app = tight_app(RateLimitConfig {
        key: LOOSE,
        tenant: TIGHT,
        // Viewers get less than the tenant: their own limit answers first.
        viewer: Some(Rate {
            per_second: 1,
            burst: 1,
        }),
        ..RateLimitConfig::default()
    })
    .await;
    let one = key_in(&app, "acme", Role::Developer).await;
    let two = key_in(&app, "acme", Role::Developer).await;
    let uri = "/v1/tenants/acme/agents";
    let statuses = [
        get_as(&app, &one, uri).await.status,
        get_as(&app, &two, uri).await.status,
        get_as(&app, &one, uri).await.status,
        get_as(&app, &two, uri).await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "three requests of the tenant's burst, then its limit, whichever key sends"
    );
    let viewer = key_in(&app, "initech", Role::Viewer).await;
    let uri = "/v1/tenants/initech/agents";
    assert_eq!(get_as(&app, &viewer, uri).await.status, StatusCode::OK);
    let refused = get_as(&app, &viewer, uri).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text.contains("key"), "{}", refused.text);
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let app = tight_app(RateLimitConfig {
        enabled: false,
        key: TIGHT,
        tenant: TIGHT,
        ..RateLimitConfig::default()
    })
    .await;
    let key = key_in(&app, "default", Role::Viewer).await;
    for _ in 0..FLOOD {
        assert_eq!(
            get_as(&app, &key, "/v1/tenants/default/agents")
                .await
                .status,
            StatusCode::OK
        );
    }
}

/// Sends a request as `key` whose body never finishes, and returns once the gateway let it in
/// (its handler began reading the body). Aborting the returned task ends the request.
async fn slow_body(app: &TestApp, key: &str, uri: &str) -> tokio::task::JoinHandle<()> {
    let (started, begun) = tokio::sync::oneshot::channel::<()>();
    let body = futures::stream::once(async move {
        let _ = started.send(());
        std::future::pending::<Result<axum::body::Bytes, std::io::Error>>().await
    });
    let request = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap();
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        let _ = tower::ServiceExt::oneshot(router, request).await;
    });
    begun.await.expect("the request reached its handler");
    task
}

#[tokio::test]
async fn slow_bodies_fill_their_tenants_share_and_other_tenants_go_on() {
    let app = app_with(Limits {
        max_in_flight: 8,
        max_in_flight_per_tenant: 4,
        max_in_flight_per_principal: 2,
        ..Limits::default()
    })
    .await;
    let (first, second, third) = (
        key_in(&app, "flood", Role::Developer).await,
        key_in(&app, "flood", Role::Developer).await,
        key_in(&app, "flood", Role::Developer).await,
    );
    let other = key_in(&app, "other", Role::Developer).await;
    let a2a = "/a2a/flood/echo";
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(slow_body(&app, &first, a2a).await);
    }
    // The first key is at its own share, on every route.
    for uri in ["/v1/tenants/flood/agents", "/v1/tenants/flood/tasks"] {
        let reply = get_as(&app, &first, uri).await;
        assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        assert_eq!(reply.headers[header::RETRY_AFTER], "1");
        assert!(reply.text.contains("you have"), "{}", reply.text);
    }
    // Another key of the tenant fills the tenant's share; a third key of it is then shed.
    for _ in 0..2 {
        slow.push(slow_body(&app, &second, "/mcp/flood").await);
    }
    let reply = get_as(&app, &third, "/v1/tenants/flood/agents").await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert!(reply.text.contains("this tenant"), "{}", reply.text);

    // Other tenants, public routes and the platform admin are not held back.
    assert_eq!(
        get_as(&app, &other, "/v1/tenants/other/agents")
            .await
            .status,
        StatusCode::OK
    );
    let rpc = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}});
    let reply = app
        .send_as_is(
            Request::post("/a2a/other/echo")
                .header(header::AUTHORIZATION, format!("Bearer {other}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(rpc.to_string()))
                .unwrap(),
        )
        .await;
    assert_ne!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(get_as(&app, "", "/healthz").await.status, StatusCode::OK);
    assert_eq!(
        get_as(&app, ADMIN_KEY, "/v1/tenants").await.status,
        StatusCode::OK
    );

    // Once the slow requests end, their places are free again.
    for task in slow {
        task.abort();
        let _ = task.await;
    }
    assert_eq!(
        get_as(&app, &third, "/v1/tenants/flood/agents")
            .await
            .status,
        StatusCode::OK
    );
}
