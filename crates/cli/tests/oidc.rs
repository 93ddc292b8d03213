//! OIDC end to end: `nexus server` configured with `[oidc]` against an issuer on loopback (a
//! discovery document and a JWKS served by this test), called over HTTP with tokens signed
//! here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use base64::Engine;
use common::{Server, reqwest_client};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serves discovery and a JWKS with `jwk` on a loopback port; returns the issuer URL.
async fn issuer(jwk: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": url,
        "jwks_uri": format!("{url}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let jwks = json!({ "keys": [jwk] });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_authenticate_api_calls_with_their_tenant_and_role() {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).unwrap();
    let secret = p256::SecretKey::from_slice(&random).unwrap();
    let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret).unwrap();
    let signing = EncodingKey::from_ec_der(der.as_bytes());
    let point = secret.public_key().to_sec1_bytes();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "e2e", "use": "sig", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..]),
    });
    let issuer = issuer(jwk).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nexus.toml"),
        format!(
            "[oidc]\nissuer = \"{issuer}\"\naudience = \"nexus-e2e\"\nrole_claim = \"nexus_role\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(dir.path(), &[]);

    let now = jsonwebtoken::get_current_timestamp();
    let token = |subject: &str, role: &str, exp: u64| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("e2e".into());
        let claims = json!({
            "iss": issuer, "aud": "nexus-e2e", "sub": subject, "exp": exp,
            "tenant": "default", "nexus_role": role,
        });
        jsonwebtoken::encode(&header, &claims, &signing).unwrap()
    };
    let http = reqwest_client().build().unwrap();
    let get = |path: &str, bearer: String| {
        http.get(format!("{}{path}", server.url))
            .bearer_auth(bearer)
            .send()
    };

    // A viewer of `default` lists its agents, and is refused what only admins may do.
    let viewer = token("vic", "viewer", now + 300);
    let reply = get("/v1/tenants/default/agents", viewer.clone())
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    let reply = get("/v1/tenants/default/keys", viewer).await.unwrap();
    assert_eq!(reply.status(), 403);

    // An admin may; the audit chain names the viewer's denial by its subject.
    let admin = token("ada", "admin", now + 300);
    let reply = get("/v1/tenants/default/keys", admin.clone())
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let audit: Value = get("/v1/tenants/default/audit", admin)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit.to_string().contains("oidc:vic"),
        "the denial is audited with the user's id: {audit}"
    );

    // An expired token: 401 problem+json, a bearer challenge, the token not repeated.
    let expired = token("vic", "viewer", now - 3_600);
    let reply = get("/v1/tenants/default/agents", expired.clone())
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert!(reply.headers().contains_key("www-authenticate"));
    let body = reply.text().await.unwrap();
    assert!(
        body.contains("unauthenticated") && body.contains("expired"),
        "{body}"
    );
    assert!(!body.contains(&expired));

    // The refusal is counted by reason.
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nexus_auth_failures_total{reason=\"oidc_expired\"}")),
        "{metrics}"
    );

    // API keys keep working beside tokens.
    let reply = server
        .http()
        .get(format!("{}/v1/tenants/default/agents", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    server.stop();
}
