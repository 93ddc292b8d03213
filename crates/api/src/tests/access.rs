//! Access at the gateway and in the control plane: the isolation walk over every route.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::{app, assert_problem};
use crate::{is_public, openapi};

/// Every route, from the OpenAPI document the router is built from plus the routes it adds
/// beside it (`extra_routes`, with their probes), with the placeholders filled in.
fn every_route() -> Vec<(axum::http::Method, String)> {
    use axum::http::Method;
    let fill = |path: &str| {
        path.replace("{tenant}", "default")
            .replace("{agent}", "echo")
            .replace("{task}", &nexus_core::TaskId::new().to_string())
            .replace("{key}", &nexus_core::ApiKeyId::new().to_string())
            .replace("{policy}", "some-policy")
            .replace("{user}", "someone")
            .replace("{team}", "some-team")
            .replace("{account}", "some-account")
            .replace("{secret}", "some-secret")
            .replace("{session}", "some-session")
    };
    let mut routes = Vec::new();
    for (path, item) in openapi().paths.paths {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
        ];
        for (method, present) in methods {
            if present {
                routes.push((method, fill(&path)));
            }
        }
    }
    // Every other route the router has, with the requests that reach it.
    for extra in crate::extra_routes(String::new()) {
        assert!(!extra.probes.is_empty(), "{} has no probe", extra.path);
        for (method, path) in extra.probes {
            routes.push((method.clone(), fill(path)));
        }
    }
    for (method, uri) in &routes {
        assert!(
            !uri.contains('{'),
            "{method} {uri} still has a placeholder: teach `fill` it"
        );
    }
    routes
}

fn request(method: &axum::http::Method, uri: &str, key: Option<&str>) -> Request<Body> {
    // A body each route accepts, so what answers is the access check, not the validation.
    let body = match uri.rsplit('/').next().unwrap_or_default() {
        "tenants" => r#"{"name": "newcomer"}"#,
        "keys" => r#"{"name": "k", "role": "viewer"}"#,
        "agents" => r#"{"package_digest": "sha256:00"}"#,
        "tasks" => r#"{"text": "hi"}"#,
        "policies" => r#"{"name": "p", "text": "permit(principal, action, resource);"}"#,
        "explain" => r#"{"action": "agent.read"}"#,
        "members" if uri.contains("/teams/") => r#"{"name": "newcomer"}"#,
        "password" if uri.starts_with("/v1/users/") => r#"{"new_password": "a long new password"}"#,
        "password" => r#"{"current_password": "old one", "new_password": "a long new password"}"#,
        "members" => r#"{"name": "newcomer", "role": "viewer"}"#,
        "teams" => r#"{"name": "newcomers", "role": "viewer"}"#,
        "service-accounts" => r#"{"name": "robot", "role": "viewer"}"#,
        // Public: a body it refuses as malformed shows the gateway let it through.
        "login" => "{}",
        _ => "{}",
    };
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder.body(Body::from(body)).unwrap()
}

/// The isolation walk: every route, called without credentials (401 unless public by
/// choice), with another tenant's admin key (404: it cannot even learn the tenant exists),
/// and, for changes on `/v1`, with a viewer key of the tenant itself (403).
#[tokio::test]
async fn every_route_refuses_strangers_other_tenants_and_viewers() {
    use nexus_control::NewKeyRequest;
    use nexus_core::identity::Role;
    let app = app().await;
    let system = nexus_core::Caller::system(nexus_core::TenantId::new());
    let other = app
        .control
        .create_tenant(&system, nexus_core::Name::parse("other").unwrap(), None)
        .await
        .unwrap();
    let default = app
        .control
        .tenant(
            &system,
            &nexus_control::TenantRef::Name(nexus_core::Name::parse("default").unwrap()),
        )
        .await
        .unwrap();
    let key = |role: Role| NewKeyRequest {
        name: format!("{role}"),
        role,
        platform_admin: false,
        expires_at: None,
    };
    let stranger = app
        .control
        .create_key(&system, other.id, key(Role::Admin))
        .await
        .unwrap()
        .secret;
    let viewer = app
        .control
        .create_key(&system, default.id, key(Role::Viewer))
        .await
        .unwrap()
        .secret;

    let routes = every_route();
    assert!(routes.len() >= 25, "{} routes", routes.len());
    for (method, uri) in &routes {
        let public = is_public(uri.split('?').next().unwrap_or(uri));
        let anonymous = app.send_as_is(request(method, uri, None)).await;
        if public {
            assert_ne!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            continue;
        }
        assert_problem(&anonymous, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(
            anonymous.headers.contains_key(header::WWW_AUTHENTICATE),
            "{method} {uri}"
        );
        let forged = app
            .send_as_is(request(
                method,
                uri,
                Some("nxk_forged-key-that-was-never-issued"),
            ))
            .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{method} {uri}");

        let tenant_scoped = uri.contains("/default");
        let foreign = app.send_as_is(request(method, uri, Some(&stranger))).await;
        if tenant_scoped {
            assert_eq!(
                foreign.status,
                StatusCode::NOT_FOUND,
                "{method} {uri}: {}",
                foreign.text
            );
            assert!(
                !foreign.text.contains("echo"),
                "{method} {uri}: {}",
                foreign.text
            );
        }
        let mutation = *method != axum::http::Method::GET;
        // Ending one's own session or changing one's own password needs no role: any
        // authenticated caller may (API keys are refused as not being sessions).
        let own_session = uri == "/v1/logout" || uri == "/v1/password";
        if mutation && uri.starts_with("/v1/") && !own_session {
            let viewed = app.send_as_is(request(method, uri, Some(&viewer))).await;
            assert_problem(&viewed, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    // Each denial above left an audit event in the viewer's tenant.
    let denials = app
        .store
        .list_audit(default.id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "authz.deny")
        .count();
    assert!(denials >= 8, "{denials} denials audited");
}

/// A refused request whose body was left unread tells the client the connection closes, so a
/// keep-alive client does not send its next request into it; one without a body keeps it.
#[tokio::test]
async fn refusals_that_leave_a_body_unread_close_the_connection() {
    let app = app().await;
    let with_body = app
        .send_as_is(
            Request::post("/mcp/default")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "2")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(with_body.status, StatusCode::UNAUTHORIZED);
    assert_eq!(with_body.headers[header::CONNECTION], "close");
    let without = app
        .send_as_is(Request::get("/v1/tenants").body(Body::empty()).unwrap())
        .await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert!(!without.headers.contains_key(header::CONNECTION));
}

/// Policies over REST: created, explained, listed with the built-in ones, deleted; malformed
/// text is 422 and only admins manage them.
#[tokio::test]
async fn policies_are_managed_and_explained_over_rest() {
    use nexus_control::NewKeyRequest;
    use nexus_core::identity::Role;
    let app = app().await;
    let system = nexus_core::Caller::system(nexus_core::TenantId::new());
    let default = app
        .control
        .tenant(
            &system,
            &nexus_control::TenantRef::Name(nexus_core::Name::parse("default").unwrap()),
        )
        .await
        .unwrap();
    let developer = app
        .control
        .create_key(
            &system,
            default.id,
            NewKeyRequest {
                name: "dev".into(),
                role: Role::Developer,
                platform_admin: false,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let post = |key: Option<String>, uri: &'static str, body: serde_json::Value| {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        request.body(Body::from(body.to_string())).unwrap()
    };
    let forbid = r#"forbid (principal, action == Nexus::Action::"agent.deploy", resource) when { principal.role == "developer" };"#;
    let body = serde_json::json!({"name": "no-dev-deploys", "text": forbid});
    let as_dev = app
        .send_as_is(post(
            Some(developer.secret.clone()),
            "/v1/tenants/default/policies",
            body.clone(),
        ))
        .await;
    assert_problem(&as_dev, StatusCode::FORBIDDEN, "forbidden");
    let created = app
        .send(post(None, "/v1/tenants/default/policies", body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let malformed = app
        .send(post(
            None,
            "/v1/tenants/default/policies",
            serde_json::json!({"name": "broken", "text": "permit(principal"}),
        ))
        .await;
    assert_problem(
        &malformed,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let explain = |action: &str| {
        post(
            None,
            "/v1/tenants/default/policies/explain",
            serde_json::json!({"action": action, "key": developer.key.id.to_string()}),
        )
    };
    let deploy = app.send(explain("agent.deploy")).await;
    assert_eq!(deploy.body["allowed"], false, "{}", deploy.text);
    assert_eq!(
        deploy.body["policies"][0],
        "tenant:no-no-dev-deploys".replace("no-no", "no")
    );
    let send = app.send(explain("task.send")).await;
    assert_eq!(send.body["allowed"], true, "{}", send.text);
    assert_eq!(send.body["policies"][0], "role:developer");
    let unknown = app.send(explain("agent.teleport")).await;
    assert_problem(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let listed = app.get("/v1/tenants/default/policies").await;
    assert!(
        listed.body["builtin"]
            .as_str()
            .unwrap()
            .contains("role:viewer")
    );
    assert_eq!(listed.body["policies"][0]["name"], "no-dev-deploys");
    let delete = || {
        Request::delete("/v1/tenants/default/policies/no-dev-deploys")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(app.send(delete()).await.status, StatusCode::OK);
    assert_problem(
        &app.send(delete()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        app.send(explain("agent.deploy")).await.body["allowed"],
        true
    );
}

/// With authentication off (a loopback server for benchmarks or a lone laptop), requests need
/// no key and act as the platform; the default requires one.
#[tokio::test]
async fn authentication_can_be_turned_off_only_explicitly() {
    let required = app().await;
    let anonymous = || {
        Request::get("/v1/tenants/default/agents")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        required.send_as_is(anonymous()).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The platform's own caller reaches every tenant; which one it is "in" matters only for
    // audit events of denials, which it never gets.
    let open = super::app_with(crate::Limits {
        authentication: crate::Authentication::InsecureNone {
            tenant: nexus_core::TenantId::new(),
        },
        ..crate::Limits::default()
    })
    .await;
    let reply = open.send_as_is(anonymous()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Every answer, a refusal or a fallback too, tells browsers not to sniff, frame or cache it.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = app().await;
    for reply in [
        app.get("/v1/tenants").await,
        app.send_as_is(Request::get("/v1/tenants").body(Body::empty()).unwrap())
            .await,
        app.get("/no/such/route").await,
        app.get("/healthz").await,
    ] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer");
        assert!(
            reply.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(reply.headers.contains_key(header::CACHE_CONTROL));
        // No CORS grant: a page on another origin cannot read any answer.
        assert!(!reply.headers.contains_key("access-control-allow-origin"));
    }
}

/// MCP's protected-resource metadata names where to get a token: the OIDC issuer when one is
/// configured, none otherwise (API keys and sessions come from the CLI).
#[tokio::test]
async fn mcp_metadata_names_the_oidc_issuer_when_there_is_one() {
    let uri = "/.well-known/oauth-protected-resource/mcp/default";
    let plain = app().await;
    let without = plain
        .send_as_is(Request::get(uri).body(Body::empty()).unwrap())
        .await;
    assert_eq!(without.status, StatusCode::OK, "{}", without.text);
    assert_eq!(without.body["authorization_servers"], serde_json::json!([]));
    assert!(
        without.body["resource"]
            .as_str()
            .unwrap()
            .ends_with("/mcp/default")
    );

    let dir = tempfile::tempdir().unwrap();
    let platform = nexus_server::PlatformBuilder::new(dir.path())
        .oidc(nexus_control::OidcSettings::new(
            "https://idp.example.com",
            "nexus",
        ))
        .build()
        .await
        .unwrap();
    let router = crate::router(
        crate::AppState {
            control: platform.control,
            metrics: nexus_telemetry::init_metrics().unwrap(),
        },
        crate::Limits::default(),
    );
    let response =
        tower::ServiceExt::oneshot(router, Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body["authorization_servers"],
        serde_json::json!(["https://idp.example.com"])
    );
}
