//! Users over REST: members added with a role, password logins that open sessions acting
//! with that role, logout and membership changes ending sessions at once, and the refusals.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use super::{Reply, TestApp, app, assert_problem};

const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub(super) async fn send_with(
        &self,
        method: &str,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send_as_is(request.unwrap()).await
    }

    pub(super) async fn login(&self, body: Value) -> Reply {
        self.send_as_is(
            Request::post("/v1/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub(super) async fn add_member(&self, tenant: &str, body: Value) -> Reply {
        self.post_json(&format!("/v1/tenants/{tenant}/members"), body.to_string())
            .await
    }

    async fn actions(&self, tenant: &str) -> Vec<String> {
        let chain = self
            .get(&format!("/v1/tenants/{tenant}/audit?limit=500"))
            .await;
        chain
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_login_acts_with_the_members_role_until_logout() {
    let app = app().await;
    let added = app
        .add_member(
            "default",
            json!({"name": "alice", "role": "viewer", "password": PASSWORD, "display_name": "Alice"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(
        added.headers[header::LOCATION],
        "/v1/tenants/default/members/alice"
    );
    assert_eq!(
        (
            added.body["role"].clone(),
            added.body["user"]["display_name"].clone()
        ),
        (json!("viewer"), json!("Alice"))
    );
    assert!(
        !added.text.contains("argon2"),
        "the hash never leaves: {}",
        added.text
    );

    let session = app
        .login(json!({"name": "alice", "password": PASSWORD}))
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    assert_eq!(session.body["role"], "viewer");
    assert_eq!(session.body["tenant"]["name"], "default");
    let token = session.body["token"].as_str().unwrap().to_owned();

    let me = app.send_with("GET", "/v1/whoami", &token, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        (me.body["principal"].clone(), me.body["role"].clone()),
        (json!("user:alice"), json!("viewer"))
    );
    assert_eq!(me.body["platform_admin"], false);
    // A viewer reads but does not change.
    let read = app
        .send_with("GET", "/v1/tenants/default/agents", &token, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    let write = app
        .send_with(
            "POST",
            "/v1/tenants/default/keys",
            &token,
            Some(json!({"name": "x", "role": "viewer"})),
        )
        .await;
    assert_problem(&write, StatusCode::FORBIDDEN, "forbidden");

    // Logging out ends the session at once.
    let out = app.send_with("POST", "/v1/logout", &token, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let after = app.send_with("GET", "/v1/whoami", &token, None).await;
    assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
    // API keys are revoked, not logged out.
    let key_logout = app.post_json("/v1/logout", "").await;
    assert_problem(
        &key_logout,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let actions = app.actions("default").await;
    for action in ["member.put", "user.login", "user.logout"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn membership_changes_end_sessions_and_roles_are_not_escalated() {
    let app = app().await;
    app.post_json("/v1/tenants", json!({"name": "acme"}).to_string())
        .await;
    app.add_member(
        "default",
        json!({"name": "bob", "role": "admin", "password": PASSWORD}),
    )
    .await;
    // The same account joins acme, without a new password.
    let joined = app
        .add_member("acme", json!({"name": "bob", "role": "developer"}))
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);

    // Two tenants: the login must say which.
    let ambiguous = app
        .login(json!({"name": "bob", "password": PASSWORD}))
        .await;
    assert_problem(
        &ambiguous,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        ambiguous.text.contains("acme") && ambiguous.text.contains("default"),
        "{}",
        ambiguous.text
    );
    let admin = app
        .login(json!({"name": "bob", "password": PASSWORD, "tenant": "default"}))
        .await;
    let admin_token = admin.body["token"].as_str().unwrap().to_owned();
    let in_acme = app
        .login(json!({"name": "bob", "password": PASSWORD, "tenant": "acme"}))
        .await;
    assert_eq!(in_acme.body["role"], "developer");
    let acme_token = in_acme.body["token"].as_str().unwrap().to_owned();

    // An admin adds members up to admin, not owner.
    let owner = app
        .send_with(
            "POST",
            "/v1/tenants/default/members",
            &admin_token,
            Some(json!({"name": "carol", "role": "owner", "password": PASSWORD})),
        )
        .await;
    assert_problem(&owner, StatusCode::FORBIDDEN, "forbidden");
    let carol = app
        .send_with(
            "POST",
            "/v1/tenants/default/members",
            &admin_token,
            Some(json!({"name": "carol", "role": "operator", "password": PASSWORD})),
        )
        .await;
    assert_eq!(carol.status, StatusCode::CREATED, "{}", carol.text);
    // Another tenant's members are not the admin's business.
    let foreign = app
        .send_with("GET", "/v1/tenants/acme/members", &admin_token, None)
        .await;
    assert_problem(&foreign, StatusCode::NOT_FOUND, "not_found");

    // A role change in acme ends bob's acme session only; removal ends the other.
    app.add_member("acme", json!({"name": "bob", "role": "viewer"}))
        .await;
    let ended = app.send_with("GET", "/v1/whoami", &acme_token, None).await;
    assert_problem(&ended, StatusCode::UNAUTHORIZED, "unauthenticated");
    let still = app.send_with("GET", "/v1/whoami", &admin_token, None).await;
    assert_eq!(still.status, StatusCode::OK);
    let removed = app
        .send(
            Request::delete("/v1/tenants/default/members/bob")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let gone = app.send_with("GET", "/v1/whoami", &admin_token, None).await;
    assert_problem(&gone, StatusCode::UNAUTHORIZED, "unauthenticated");

    let members = app.get("/v1/tenants/default/members").await;
    let names: Vec<&str> = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol"]);
}

#[tokio::test]
async fn bad_logins_and_bad_members_are_refused_and_audited() {
    let app = app().await;
    app.add_member(
        "default",
        json!({"name": "dora", "role": "viewer", "password": PASSWORD}),
    )
    .await;
    // Wrong password, unknown user, unknown tenant, not a member: the same 401.
    app.post_json("/v1/tenants", json!({"name": "acme"}).to_string())
        .await;
    for body in [
        json!({"name": "dora", "password": "wrong password here"}),
        json!({"name": "nobody", "password": PASSWORD}),
        json!({"name": "Not A Name", "password": PASSWORD}),
        json!({"name": "dora", "password": PASSWORD, "tenant": "no-such-tenant"}),
        json!({"name": "dora", "password": PASSWORD, "tenant": "acme"}),
    ] {
        let refused = app.login(body.clone()).await;
        assert_problem(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(
            refused.text.contains("wrong user name or password"),
            "{body}: {}",
            refused.text
        );
    }
    for body in [
        json!({"name": "dora"}),
        json!({"name": "dora", "password": PASSWORD, "extra": 1}),
        json!([]),
    ] {
        let malformed = app.login(body.clone()).await;
        assert_eq!(
            malformed.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            malformed.text
        );
    }
    assert!(
        app.actions("default")
            .await
            .iter()
            .any(|a| a == "auth.login_failed")
    );

    let cases = [
        (
            json!({"name": "eve", "role": "viewer", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "eve", "role": "viewer", "password": format!("{PASSWORD}\n")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "eve", "role": "viewer", "password": "x".repeat(2000)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "Eve!", "role": "viewer", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "eve", "role": "root", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": "nobody", "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "dora", "role": "viewer", "password": PASSWORD}),
            StatusCode::CONFLICT,
            "conflict",
        ),
    ];
    for (body, status, code) in cases {
        let refused = app.add_member("default", body.clone()).await;
        assert_eq!(
            (refused.status, refused.body["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            refused.text
        );
        assert!(
            !refused.text.contains(PASSWORD),
            "{body}: the password leaked"
        );
    }
    let missing = app
        .send(
            Request::delete("/v1/tenants/default/members/nobody")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_team_lifts_its_members_role_until_it_lets_them_go() {
    let app = app().await;
    app.add_member(
        "default",
        json!({"name": "erin", "role": "viewer", "password": PASSWORD}),
    )
    .await;
    let team = app
        .post_json(
            "/v1/tenants/default/teams",
            json!({"name": "sre", "role": "developer"}).to_string(),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.text);
    assert_eq!(
        team.headers[header::LOCATION],
        "/v1/tenants/default/teams/sre"
    );
    let joined = app
        .post_json(
            "/v1/tenants/default/teams/sre/members",
            json!({"name": "erin"}).to_string(),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    assert_eq!(joined.body["members"], json!(["erin"]));

    let session = app
        .login(json!({"name": "erin", "password": PASSWORD}))
        .await;
    assert_eq!(
        session.body["role"], "developer",
        "the team's role, above her own"
    );
    let token = session.body["token"].as_str().unwrap().to_owned();
    let listed = app
        .send_with("GET", "/v1/tenants/default/teams", &token, None)
        .await;
    assert_problem(&listed, StatusCode::FORBIDDEN, "forbidden");

    // Leaving the team ends the session; the next login is a viewer again.
    let left = app
        .send(
            Request::delete("/v1/tenants/default/teams/sre/members/erin")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    let ended = app.send_with("GET", "/v1/whoami", &token, None).await;
    assert_problem(&ended, StatusCode::UNAUTHORIZED, "unauthenticated");
    let again = app
        .login(json!({"name": "erin", "password": PASSWORD}))
        .await;
    assert_eq!(again.body["role"], "viewer");

    // Refusals: a taken name, a non-member, an unknown team, a role above the caller's.
    let cases = [
        (
            "/v1/tenants/default/teams",
            json!({"name": "sre", "role": "viewer"}),
            StatusCode::CONFLICT,
        ),
        (
            "/v1/tenants/default/teams/sre/members",
            json!({"name": "stranger"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/tenants/default/teams/nope/members",
            json!({"name": "erin"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/tenants/default/teams",
            json!({"name": "Bad Name", "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (uri, body, status) in cases {
        let refused = app.post_json(uri, body.to_string()).await;
        assert_eq!(refused.status, status, "{uri} {body}: {}", refused.text);
    }
    app.add_member(
        "default",
        json!({"name": "frank", "role": "admin", "password": PASSWORD}),
    )
    .await;
    let admin = app
        .login(json!({"name": "frank", "password": PASSWORD}))
        .await;
    let admin_token = admin.body["token"].as_str().unwrap().to_owned();
    let owners = app
        .send_with(
            "POST",
            "/v1/tenants/default/teams",
            &admin_token,
            Some(json!({"name": "owners", "role": "owner"})),
        )
        .await;
    assert_problem(&owners, StatusCode::FORBIDDEN, "forbidden");

    let deleted = app
        .send(
            Request::delete("/v1/tenants/default/teams/sre")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let actions = app.actions("default").await;
    for action in ["team.create", "team.add", "team.remove", "team.delete"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_service_accounts_keys_act_as_it_until_it_is_deleted() {
    let app = app().await;
    let account = app
        .post_json(
            "/v1/tenants/default/service-accounts",
            json!({"name": "ci", "role": "operator", "description": "the pipeline"}).to_string(),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{}", account.text);
    let key = app
        .post_json(
            "/v1/tenants/default/keys",
            json!({"name": "ci-2026", "service_account": "ci"}).to_string(),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    assert_eq!(
        (
            key.body["role"].clone(),
            key.body["service_account"].clone()
        ),
        (json!("operator"), json!("ci"))
    );
    let secret = key.body["secret"].as_str().unwrap().to_owned();
    let me = app.send_with("GET", "/v1/whoami", &secret, None).await;
    assert_eq!(me.body["principal"], "service:ci", "{}", me.text);

    // Policies name the account, whichever key it uses.
    let policy = app
        .post_json(
            "/v1/tenants/default/policies",
            json!({"name": "ci-reads-no-tasks",
                   "text": "forbid(principal == Nexus::ServiceAccount::\"ci\", action == Nexus::Action::\"task.list\", resource);"})
            .to_string(),
        )
        .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.text);
    let listed = app
        .send_with("GET", "/v1/tenants/default/tasks", &secret, None)
        .await;
    assert_problem(&listed, StatusCode::FORBIDDEN, "forbidden");
    let agents = app
        .send_with("GET", "/v1/tenants/default/agents", &secret, None)
        .await;
    assert_eq!(agents.status, StatusCode::OK, "{}", agents.text);

    // Refusals: both a role and an account, neither, an unknown account, a taken name.
    for (uri, body, status) in [
        (
            "/v1/tenants/default/keys",
            json!({"name": "k", "role": "viewer", "service_account": "ci"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/tenants/default/keys",
            json!({"name": "k"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/tenants/default/keys",
            json!({"name": "k", "service_account": "nobody"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/tenants/default/service-accounts",
            json!({"name": "ci", "role": "viewer"}),
            StatusCode::CONFLICT,
        ),
    ] {
        let refused = app.post_json(uri, body.to_string()).await;
        assert_eq!(refused.status, status, "{uri} {body}: {}", refused.text);
    }

    let deleted = app
        .send(
            Request::delete("/v1/tenants/default/service-accounts/ci")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let gone = app.send_with("GET", "/v1/whoami", &secret, None).await;
    assert_problem(&gone, StatusCode::UNAUTHORIZED, "unauthenticated");
    let actions = app.actions("default").await;
    for action in [
        "service_account.create",
        "key.create",
        "service_account.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

/// Credentials that name no tenant (unknown keys) are audited in the platform's own tenant,
/// in batches: the first failure at once, later ones counted into the next event.
#[tokio::test]
async fn unknown_credentials_are_audited_in_the_platforms_tenant() {
    let app = app().await;
    for _ in 0..3 {
        let refused = app
            .send_with(
                "GET",
                "/v1/tenants",
                "nxk_never-issued-key-000000000000",
                None,
            )
            .await;
        assert_problem(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let chain = app.get("/v1/tenants/default/audit?limit=500").await;
    let failures: Vec<&Value> = chain
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.fail" && e["actor"] == "anonymous")
        .collect();
    assert!(!failures.is_empty(), "{}", chain.text);
    assert_eq!(failures[0]["details"]["failures"]["unknown_key"], 1);
    assert!(
        !chain.text.contains("never-issued"),
        "the credential itself is never recorded"
    );
}

#[tokio::test]
async fn passwords_change_with_the_old_one_or_by_a_platform_admin() {
    let app = app().await;
    app.add_member(
        "default",
        json!({"name": "hana", "role": "admin", "password": PASSWORD}),
    )
    .await;
    let session = app
        .login(json!({"name": "hana", "password": PASSWORD}))
        .await;
    let token = session.body["token"].as_str().unwrap().to_owned();
    const NEW: &str = "a brand new passphrase";

    let wrong = app
        .send_with(
            "POST",
            "/v1/password",
            &token,
            Some(json!({"current_password": "not my password", "new_password": NEW})),
        )
        .await;
    assert_problem(&wrong, StatusCode::FORBIDDEN, "forbidden");
    let weak = app
        .send_with(
            "POST",
            "/v1/password",
            &token,
            Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_problem(&weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let changed = app
        .send_with(
            "POST",
            "/v1/password",
            &token,
            Some(json!({"current_password": PASSWORD, "new_password": NEW})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    let ended = app.send_with("GET", "/v1/whoami", &token, None).await;
    assert_problem(&ended, StatusCode::UNAUTHORIZED, "unauthenticated");
    let old = app
        .login(json!({"name": "hana", "password": PASSWORD}))
        .await;
    assert_problem(&old, StatusCode::UNAUTHORIZED, "unauthenticated");
    let again = app.login(json!({"name": "hana", "password": NEW})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    let admin_session = again.body["token"].as_str().unwrap().to_owned();

    // An API key has no password; a tenant admin may not reset accounts, a platform admin may.
    let key = app
        .post_json(
            "/v1/password",
            json!({"current_password": "x", "new_password": NEW}).to_string(),
        )
        .await;
    assert_problem(&key, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.add_member(
        "default",
        json!({"name": "ivan", "role": "viewer", "password": PASSWORD}),
    )
    .await;
    let by_tenant_admin = app
        .send_with(
            "POST",
            "/v1/users/ivan/password",
            &admin_session,
            Some(json!({"new_password": "reset by someone else"})),
        )
        .await;
    assert_problem(&by_tenant_admin, StatusCode::FORBIDDEN, "forbidden");
    let reset = app
        .post_json(
            "/v1/users/ivan/password",
            json!({"new_password": "reset by the platform"}).to_string(),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text);
    let ivan = app
        .login(json!({"name": "ivan", "password": "reset by the platform"}))
        .await;
    assert_eq!(ivan.status, StatusCode::CREATED, "{}", ivan.text);
    let nobody = app
        .post_json(
            "/v1/users/nobody/password",
            json!({"new_password": "reset by the platform"}).to_string(),
        )
        .await;
    assert_problem(&nobody, StatusCode::NOT_FOUND, "not_found");
    let actions = app.actions("default").await;
    for action in ["user.password", "user.password_reset"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

/// An admin cannot demote or remove an owner, directly or through a team.
#[tokio::test]
async fn admins_cannot_demote_or_remove_owners() {
    let app = app().await;
    for (name, role) in [("olivia", "owner"), ("adam", "admin")] {
        app.add_member(
            "default",
            json!({"name": name, "role": role, "password": PASSWORD}),
        )
        .await;
    }
    app.post_json(
        "/v1/tenants/default/teams",
        json!({"name": "owners", "role": "owner"}).to_string(),
    )
    .await;
    app.post_json(
        "/v1/tenants/default/teams/owners/members",
        json!({"name": "olivia"}).to_string(),
    )
    .await;
    app.post_json(
        "/v1/tenants/default/teams",
        json!({"name": "admins", "role": "admin"}).to_string(),
    )
    .await;
    let adam = app
        .login(json!({"name": "adam", "password": PASSWORD}))
        .await;
    assert_eq!(adam.body["role"], "admin", "{}", adam.text);
    let token = adam.body["token"].as_str().unwrap().to_owned();
    for (method, uri, body) in [
        (
            "POST",
            "/v1/tenants/default/members",
            Some(json!({"name": "olivia", "role": "viewer"})),
        ),
        ("DELETE", "/v1/tenants/default/members/olivia", None),
        ("DELETE", "/v1/tenants/default/teams/owners", None),
        (
            "DELETE",
            "/v1/tenants/default/teams/owners/members/olivia",
            None,
        ),
        (
            "DELETE",
            "/v1/tenants/default/teams/owners/members/olivia",
            None,
        ),
    ] {
        let refused = app.send_with(method, uri, &token, body).await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    }
    // Within their own rank they may.
    let own_rank = app
        .send_with("DELETE", "/v1/tenants/default/teams/admins", &token, None)
        .await;
    assert_eq!(own_rank.status, StatusCode::OK, "{}", own_rank.text);
}

#[tokio::test]
async fn logins_from_one_address_are_rate_limited_before_any_password_check() {
    let app = app().await;
    let from = |address: &str| {
        let mut request = Request::post("/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"name": "nobody", "password": "wrong password!"}).to_string(),
            ))
            .unwrap();
        let peer: std::net::SocketAddr = address.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    };
    let burst = nexus_config::DEFAULT_LOGIN_RATE.burst;
    for _ in 0..burst {
        let refused = app.send_as_is(from("192.0.2.1:40000")).await;
        assert_problem(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let limited = app.send_as_is(from("192.0.2.1:40001")).await;
    assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(limited.text.contains("a minute"), "{}", limited.text);
    // Another address is still heard.
    let other = app.send_as_is(from("192.0.2.2:40000")).await;
    assert_problem(&other, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn only_platform_admins_bring_existing_accounts_into_a_tenant() {
    let app = app().await;
    app.post_json("/v1/tenants", json!({"name": "acme"}).to_string())
        .await;
    // zed has an account, in the default tenant only.
    let added = app
        .add_member(
            "default",
            json!({"name": "zed", "role": "viewer", "password": PASSWORD}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let created = app
        .post_json(
            "/v1/tenants/acme/keys",
            json!({"name": "acme-admin", "role": "admin"}).to_string(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let acme_admin = created.body["secret"].as_str().unwrap().to_owned();
    let put = |name: &str, role: &str| {
        app.send_with(
            "POST",
            "/v1/tenants/acme/members",
            &acme_admin,
            Some(json!({"name": name, "role": role})),
        )
    };

    // An account of another tenant, and a name nobody has: the same refusal, so acme's admin
    // neither attaches zed without consent nor learns that zed exists.
    let existing = put("zed", "viewer").await;
    let unknown = put("nobody-at-all", "viewer").await;
    for refused in [&existing, &unknown] {
        assert_problem(refused, StatusCode::FORBIDDEN, "forbidden");
        assert!(refused.text.contains("platform admin"), "{}", refused.text);
    }
    // The platform admin may; then acme's admin manages zed's role in acme.
    let attached = app
        .add_member("acme", json!({"name": "zed", "role": "viewer"}))
        .await;
    assert_eq!(attached.status, StatusCode::CREATED, "{}", attached.text);
    let promoted = put("zed", "developer").await;
    assert_eq!(promoted.status, StatusCode::CREATED, "{}", promoted.text);
    assert_eq!(promoted.body["role"], "developer");
}
