//! Teams and owners in tenant policies, end to end: a login session carries its user's teams
//! (`principal in Nexus::Team::"…"`), and an agent belongs to whoever deployed it first
//! (`resource.owner == principal.id`).

use axum::http::StatusCode;
use serde_json::json;

use super::{app, assert_problem, stored_package};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn policies_decide_by_the_callers_teams_and_the_agents_owner() {
    let app = app().await;
    for name in ["erin", "frank"] {
        let added = app
            .add_member(
                "default",
                json!({"name": name, "role": "developer", "password": PASSWORD}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    }
    let team = app
        .post_json(
            "/v1/tenants/default/teams",
            json!({"name": "sre", "role": "viewer"}).to_string(),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.text);
    let joined = app
        .post_json(
            "/v1/tenants/default/teams/sre/members",
            json!({"name": "erin"}).to_string(),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    for (name, text) in [
        (
            "deploy-is-sre",
            r#"forbid (principal, action == Nexus::Action::"agent.deploy", resource)
               unless { principal in Nexus::Team::"sre" };"#,
        ),
        (
            "own-agents",
            r#"forbid (principal, action == Nexus::Action::"agent.delete", resource)
               when { resource.owner != principal.id };"#,
        ),
    ] {
        let created = app
            .post_json(
                "/v1/tenants/default/policies",
                json!({"name": name, "text": text}).to_string(),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let token = |name: &'static str| {
        let app = &app;
        async move {
            let session = app.login(json!({"name": name, "password": PASSWORD})).await;
            assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
            let token = session.body["token"].as_str().unwrap().to_owned();
            let me = app.send_with("GET", "/v1/whoami", &token, None).await;
            let teams = if name == "erin" {
                json!(["sre"])
            } else {
                json!([])
            };
            assert_eq!(
                (&session.body["teams"], &me.body["teams"]),
                (&teams, &teams)
            );
            token
        }
    };
    let (erin, frank) = (token("erin").await, token("frank").await);
    let digest = stored_package(&app, "mailer").await;
    let deploy = json!({"package_digest": digest});

    // Both are developers; only the team member may deploy.
    let refused = app
        .send_with(
            "POST",
            "/v1/tenants/default/agents",
            &frank,
            Some(deploy.clone()),
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert!(refused.text.contains("deploy-is-sre"), "{}", refused.text);
    let deployed = app
        .send_with("POST", "/v1/tenants/default/agents", &erin, Some(deploy))
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text);
    assert_eq!(deployed.body["agent"]["owner"], "user:erin");
    assert_eq!(deployed.body["revision"]["deployed_by"], "user:erin");

    // The agent is erin's: frank may not delete it, erin may.
    let uri = "/v1/tenants/default/agents/mailer";
    let refused = app.send_with("DELETE", uri, &frank, None).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert!(refused.text.contains("own-agents"), "{}", refused.text);
    let deleted = app.send_with("DELETE", uri, &erin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
}

#[tokio::test]
async fn policies_see_the_client_address() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let app = app().await;
    let created = app
        .post_json(
            "/v1/tenants/default/policies",
            json!({"name": "office-only", "text": r#"forbid (principal, action == Nexus::Action::"policy.read", resource)
                unless { context.ip.isInRange(ip("10.0.0.0/8")) };"#})
            .to_string(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let list_from = |address: &str| {
        let mut request = Request::get("/v1/tenants/default/policies")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", super::ADMIN_KEY),
            )
            .body(Body::empty())
            .unwrap();
        let peer: std::net::SocketAddr = address.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        app.send_as_is(request)
    };
    let inside = list_from("10.9.8.7:50000").await;
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.text);
    let outside = list_from("192.0.2.1:50000").await;
    assert_problem(&outside, StatusCode::FORBIDDEN, "forbidden");
    assert!(outside.text.contains("office-only"), "{}", outside.text);
}
