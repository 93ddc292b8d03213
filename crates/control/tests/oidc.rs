//! OIDC bearer tokens through the control plane, against a real issuer on loopback: an axum
//! server with a discovery document and a JWKS, keys made here, tokens signed here. Nothing of
//! ours is mocked: the control plane fetches over HTTP as it would from any issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nexus_control::{ControlError, ControlPlane, OidcSettings, TenantRef};
use nexus_core::identity::Role;
use nexus_core::{Name, NewTenant, Principal, TenantId};
use serde_json::{Value, json};

const AUDIENCE: &str = "nexus";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A key the test issuer signs with, and its public JWK.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key's bytes (SEC1 point or RSA modulus), for the HMAC confusion attack.
    public: Vec<u8>,
}

impl SigningKey {
    fn es256(kid: &str) -> Self {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).unwrap();
        let secret = p256::SecretKey::from_slice(&random).unwrap();
        let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret).unwrap();
        let point = secret.public_key().to_sec1_bytes();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed point");
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..]),
            }),
            public: point.to_vec(),
        }
    }

    fn rs256(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = <rsa::PrivateKey as rsa::Generate>::generate();
        let der = key.to_pkcs1_der().unwrap();
        let public = key.to_public_key();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": b64(&public.n_bytes()), "e": b64(&public.e_bytes()),
            }),
            public: public.n_bytes().to_vec(),
        }
    }

    /// `claims` signed with this key, its kid in the header.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// What the test issuer serves; tests change it while it runs.
#[derive(Default)]
struct Served {
    keys: Mutex<Vec<Value>>,
    /// The `issuer` its discovery document names, when not its own URL.
    claimed_issuer: Mutex<Option<String>>,
    /// Pad the JWKS past the platform's body limit.
    huge: Mutex<bool>,
    jwks_fetches: AtomicUsize,
}

/// An OIDC issuer on a loopback port.
struct Issuer {
    url: String,
    served: Arc<Served>,
}

impl Issuer {
    async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(Served::default());
        *served.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
        let discovery = {
            let (served, url) = (served.clone(), url.clone());
            move || async move {
                let issuer = served.claimed_issuer.lock().unwrap().clone();
                axum::Json(json!({
                    "issuer": issuer.unwrap_or_else(|| url.clone()),
                    "jwks_uri": format!("{url}/keys"),
                    "authorization_endpoint": format!("{url}/authorize"),
                    "token_endpoint": format!("{url}/token"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }))
            }
        };
        let jwks = {
            let served = served.clone();
            move || async move {
                served.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let keys = served.keys.lock().unwrap().clone();
                let padding = if *served.huge.lock().unwrap() {
                    "x".repeat(nexus_control::MAX_ISSUER_BODY_BYTES)
                } else {
                    String::new()
                };
                axum::Json(json!({ "keys": keys, "padding": padding }))
            }
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .route("/keys", axum::routing::get(jwks));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, served }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.served.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a token for `subject` in `tenant` with `role`, valid for five minutes.
    fn claims(&self, subject: &str, tenant: &str, role: &str) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": subject,
            "tenant": tenant, "role": role,
            "iat": now, "exp": now + 300,
        })
    }

    fn settings(&self) -> OidcSettings {
        OidcSettings::new(self.url.clone(), AUDIENCE)
    }
}

struct Platform {
    control: Arc<ControlPlane>,
    default: TenantId,
    acme: TenantId,
    _dir: tempfile::TempDir,
}

/// A control plane on a real SQLite store with the tenants `default` and `acme`, accepting
/// tokens as `settings` says.
async fn platform(settings: Option<OidcSettings>) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = nexus_server::PlatformBuilder::new(dir.path());
    if let Some(settings) = settings {
        builder = builder.oidc(settings);
    }
    let platform = builder.build().await.unwrap();
    let acme = platform
        .store
        .ensure_tenant(NewTenant {
            name: Name::parse("acme").unwrap(),
            display_name: "acme".into(),
        })
        .await
        .unwrap()
        .id;
    Platform {
        control: platform.control,
        default: platform.default_tenant,
        acme,
        _dir: dir,
    }
}

/// The refusal's message, which must not repeat the token.
async fn refusal(control: &ControlPlane, token: &str) -> String {
    match control.authenticate(token).await {
        Err(ControlError::Unauthenticated(message)) => {
            assert!(!message.contains(token), "{message}");
            message
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_become_users_of_the_tenant_and_role_they_name() {
    let (es, rs) = (SigningKey::es256("ec-1"), SigningKey::rs256("rsa-1"));
    let issuer = Issuer::start(&[&es, &rs]).await;
    let p = platform(Some(issuer.settings())).await;

    for key in [&es, &rs] {
        let token = key.sign(&issuer.claims("alice", "acme", "developer"));
        let caller = p.control.authenticate(&token).await.unwrap();
        assert_eq!(caller.tenant, p.acme, "{:?}", key.algorithm);
        assert_eq!(caller.role, Role::Developer);
        assert_eq!(
            caller.principal,
            Principal::User {
                subject: "alice".into()
            }
        );
        assert_eq!(caller.principal.id(), "oidc:alice");
        assert!(!caller.platform_admin);
        // Authorized as a member of its tenant, a stranger to the others.
        let acme = TenantRef::Name(Name::parse("acme").unwrap());
        assert_eq!(p.control.tenant(&caller, &acme).await.unwrap().id, p.acme);
        let default = TenantRef::Name(Name::parse("default").unwrap());
        let err = p.control.tenant(&caller, &default).await.unwrap_err();
        assert_eq!(err.code(), nexus_core::ErrorCode::NotFound);
    }
    assert_eq!(issuer.jwks_fetches(), 1, "the keys are cached");

    // Without a role claim: the default role. An audience list that names us. Clock skew
    // within the leeway on both ends.
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = issuer.claims("bob", "acme", "");
    let claims_map = claims.as_object_mut().unwrap();
    claims_map.remove("role");
    claims_map.insert("aud".into(), json!(["someone-else", AUDIENCE]));
    claims_map.insert("exp".into(), json!(now - 30));
    claims_map.insert("nbf".into(), json!(now + 30));
    let caller = p.control.authenticate(&es.sign(&claims)).await.unwrap();
    assert_eq!((caller.role, caller.tenant), (Role::Viewer, p.acme));
    assert!(caller.teams.is_empty());

    // Teams from the `groups` claim, for policies; names we could not match are left out.
    claims["groups"] = json!(["sre", "/eng/platform", "ops", "sre"]);
    let caller = p.control.authenticate(&es.sign(&claims)).await.unwrap();
    assert_eq!(
        caller.teams,
        [Name::parse("sre").unwrap(), Name::parse("ops").unwrap()]
    );

    // API keys still work beside tokens.
    let secret = p
        .control
        .bootstrap_key(p.default, None)
        .await
        .unwrap()
        .unwrap();
    let key_caller = p.control.authenticate(&secret).await.unwrap();
    assert!(matches!(key_caller.principal, Principal::ApiKey { .. }));
}

#[tokio::test]
async fn a_default_tenant_and_role_apply_when_the_claims_are_absent() {
    let es = SigningKey::es256("ec-1");
    let issuer = Issuer::start(&[&es]).await;
    let settings = OidcSettings {
        default_tenant: Some(Name::parse("default").unwrap()),
        default_role: Role::Operator,
        tenant_claim: "org".into(),
        subject_claim: "email".into(),
        ..issuer.settings()
    };
    let p = platform(Some(settings)).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": issuer.url, "aud": AUDIENCE, "exp": now + 60, "email": "carol@example.com",
    });
    let caller = p.control.authenticate(&es.sign(&claims)).await.unwrap();
    assert_eq!((caller.tenant, caller.role), (p.default, Role::Operator));
    assert_eq!(caller.principal.id(), "oidc:carol@example.com");
    let claims = json!({
        "iss": issuer.url, "aud": AUDIENCE, "exp": now + 60, "email": "carol@example.com",
        "org": "acme", "role": "admin",
    });
    let caller = p.control.authenticate(&es.sign(&claims)).await.unwrap();
    assert_eq!((caller.tenant, caller.role), (p.acme, Role::Admin));
}

#[tokio::test]
async fn forged_stale_foreign_and_confused_tokens_are_refused() {
    let key = SigningKey::es256("ec-1");
    let rsa = SigningKey::rs256("rsa-1");
    let issuer = Issuer::start(&[&key, &rsa]).await;
    let p = platform(Some(issuer.settings())).await;
    let valid = issuer.claims("alice", "acme", "admin");
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };
    let now = jsonwebtoken::get_current_timestamp();
    // The same kid, another key: the signature does not verify.
    let impostor = SigningKey::es256("ec-1");
    // Unsigned, and HMAC with a public key as the secret (the classic confusion attacks).
    let unsigned = {
        let header = b64(br#"{"alg":"none","typ":"JWT","kid":"ec-1"}"#);
        format!("{header}.{}.", b64(valid.to_string().as_bytes()))
    };
    let hmac = |public: &[u8], kid: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let secret = EncodingKey::from_secret(public).unwrap();
        jsonwebtoken::encode(&header, &valid, &secret).unwrap()
    };
    let tampered = {
        let token = key.sign(&with(json!({"role": "viewer"})));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(with(json!({"role": "owner"})).to_string().as_bytes());
        parts.join(".")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "forged signature",
            impostor.sign(&valid),
            "signature does not verify",
        ),
        ("tampered claims", tampered, "signature does not verify"),
        (
            "unknown key",
            SigningKey::es256("ghost").sign(&valid),
            "does not publish",
        ),
        (
            "expired beyond the leeway",
            key.sign(&with(json!({"exp": now - 120}))),
            "expired",
        ),
        (
            "not valid for another ten minutes",
            key.sign(&with(json!({"nbf": now + 600}))),
            "not valid yet",
        ),
        (
            "foreign issuer",
            key.sign(&with(json!({"iss": "https://evil.example"}))),
            "another issuer",
        ),
        (
            "issuer list",
            key.sign(&with(json!({"iss": [issuer.url, "https://evil.example"]}))),
            "bearer token",
        ),
        (
            "wrong audience",
            key.sign(&with(json!({"aud": "another-api"}))),
            "another audience",
        ),
        (
            "no audience",
            key.sign(&with(json!({"aud": null}))),
            "required claim",
        ),
        (
            "no expiry",
            key.sign(&with(json!({"exp": null}))),
            "required claim",
        ),
        (
            "expiry as text",
            key.sign(&with(json!({"exp": (now + 300).to_string()}))),
            "required claim",
        ),
        ("alg none", unsigned, "algorithm is not accepted"),
        (
            "HS256 keyed with the EC public key",
            hmac(&key.public, "ec-1"),
            "algorithm is not accepted",
        ),
        (
            "HS256 keyed with the RSA modulus",
            hmac(&rsa.public, "rsa-1"),
            "algorithm is not accepted",
        ),
        (
            "HS256 keyed with the JWK",
            hmac(key.jwk.to_string().as_bytes(), "ec-1"),
            "algorithm is not accepted",
        ),
        (
            "RS256 header on the EC key",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("ec-1".into());
                jsonwebtoken::encode(&header, &valid, &rsa.encoding).unwrap()
            },
            "algorithm is not accepted",
        ),
        (
            "unknown tenant",
            key.sign(&with(json!({"tenant": "nope"}))),
            "tenant does not exist",
        ),
        (
            "no tenant and no default",
            key.sign(&with(json!({"tenant": null}))),
            "no `tenant` claim",
        ),
        (
            "not a role",
            key.sign(&with(json!({"role": "root"}))),
            "`role` claim is not one of",
        ),
        (
            "no subject",
            key.sign(&with(json!({"sub": null}))),
            "`sub` claim is missing",
        ),
        (
            "teams as one string",
            key.sign(&with(json!({"groups": "sre"}))),
            "`groups` claim is not an array",
        ),
        (
            "teams with a number",
            key.sign(&with(json!({"groups": ["sre", 7]}))),
            "`groups` claim is not an array",
        ),
        (
            "too many teams",
            key.sign(&with(json!({ "groups": vec!["sre"; 257] }))),
            "`groups` claim is not an array",
        ),
        (
            "garbage",
            "eyJhbGciOiJFUzI1NiJ9.e30.AAAA".to_owned(),
            "bearer token",
        ),
    ];
    for (name, token, expected) in &cases {
        let message = refusal(&p.control, token).await;
        assert!(message.contains(expected), "{name}: {message}");
    }
    // The valid token itself is accepted: the refusals above are about what was changed.
    assert!(p.control.authenticate(&key.sign(&valid)).await.is_ok());
}

#[tokio::test]
async fn rotated_keys_are_fetched_when_a_token_names_a_new_one() {
    let (old, new) = (SigningKey::es256("2024"), SigningKey::rs256("2025"));
    let issuer = Issuer::start(&[&old]).await;
    let settings = OidcSettings {
        refetch_interval: Duration::ZERO,
        ..issuer.settings()
    };
    let p = platform(Some(settings)).await;
    let claims = issuer.claims("alice", "acme", "operator");
    let old_token = old.sign(&claims);
    assert!(p.control.authenticate(&old_token).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 1);

    // The issuer rotates: the new key replaces the old one.
    issuer.publish(&[&new]);
    let caller = p.control.authenticate(&new.sign(&claims)).await.unwrap();
    assert_eq!(caller.role, Role::Operator);
    assert_eq!(issuer.jwks_fetches(), 2, "fetched again for the new key id");
    // The cache now holds what the issuer publishes: the old key is gone.
    let message = refusal(&p.control, &old_token).await;
    assert!(message.contains("does not publish"), "{message}");
}

#[tokio::test]
async fn unknown_key_ids_refetch_at_most_once_per_interval() {
    let key = SigningKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let p = platform(Some(issuer.settings())).await;
    let claims = issuer.claims("alice", "acme", "viewer");
    assert!(p.control.authenticate(&key.sign(&claims)).await.is_ok());
    for i in 0..5 {
        let stranger = SigningKey::es256(&format!("made-up-{i}"));
        let message = refusal(&p.control, &stranger.sign(&claims)).await;
        assert!(message.contains("does not publish"), "{message}");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "made-up key ids within {:?} of a fetch fetch nothing",
        nexus_control::MIN_REFETCH_INTERVAL
    );
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_and_withdrawn_keys_stop_working() {
    let (old, new) = (SigningKey::es256("old"), SigningKey::es256("new"));
    let issuer = Issuer::start(&[&old]).await;
    // Keys are stale as soon as they are fetched, so every request starts a refresh (one at a
    // time) and no clock has to pass.
    let settings = OidcSettings {
        jwks_refresh: Duration::ZERO,
        refetch_interval: Duration::ZERO,
        ..issuer.settings()
    };
    let p = platform(Some(settings)).await;
    let old_token = old.sign(&issuer.claims("alice", "acme", "viewer"));
    assert!(p.control.authenticate(&old_token).await.is_ok());
    issuer.publish(&[&new]);
    // Stale keys still serve this request while a refresh runs behind it.
    assert!(p.control.authenticate(&old_token).await.is_ok());
    // Once the refresh has stored what the issuer publishes, the withdrawn key is refused:
    // wait for that event (the deadline only bounds a broken build).
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match p.control.authenticate(&old_token).await {
                Ok(_) => tokio::task::yield_now().await,
                Err(e) => break e.to_string(),
            }
        }
    })
    .await;
    let message = refused.expect("the old key is withdrawn after a refresh");
    assert!(message.contains("does not publish"), "{message}");
    assert!(issuer.jwks_fetches() >= 2, "refreshed in the background");
}

#[tokio::test]
async fn an_unreachable_or_inconsistent_issuer_refuses_tokens() {
    let key = SigningKey::es256("k1");
    // Nothing listens on a port that was just free.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let p = platform(Some(OidcSettings::new(closed.clone(), AUDIENCE))).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims =
        json!({"iss": closed, "aud": AUDIENCE, "sub": "a", "tenant": "acme", "exp": now + 60});
    let message = refusal(&p.control, &key.sign(&claims)).await;
    assert!(message.contains("keys are unavailable"), "{message}");

    // Discovery that names another issuer is not trusted.
    let issuer = Issuer::start(&[&key]).await;
    *issuer.served.claimed_issuer.lock().unwrap() = Some("https://elsewhere.example".into());
    let p = platform(Some(issuer.settings())).await;
    let token = key.sign(&issuer.claims("alice", "acme", "viewer"));
    let message = refusal(&p.control, &token).await;
    assert!(message.contains("keys are unavailable"), "{message}");
    assert_eq!(issuer.jwks_fetches(), 0);

    // A JWKS past the body limit is not read to the end.
    let issuer = Issuer::start(&[&key]).await;
    *issuer.served.huge.lock().unwrap() = true;
    let p = platform(Some(issuer.settings())).await;
    let token = key.sign(&issuer.claims("alice", "acme", "viewer"));
    let message = refusal(&p.control, &token).await;
    assert!(message.contains("keys are unavailable"), "{message}");
}

#[tokio::test]
async fn a_silent_issuer_costs_a_request_at_most_the_timeout() {
    // Connections are accepted (by the kernel) and never answered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    let p = platform(Some(OidcSettings::new(silent.clone(), AUDIENCE))).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims =
        json!({"iss": silent, "aud": AUDIENCE, "sub": "a", "tenant": "acme", "exp": now + 60});
    let started = std::time::Instant::now();
    let message = refusal(&p.control, &SigningKey::es256("k1").sign(&claims)).await;
    assert!(message.contains("keys are unavailable"), "{message}");
    let waited = started.elapsed();
    assert!(
        waited >= nexus_control::ISSUER_TIMEOUT
            && waited < nexus_control::ISSUER_TIMEOUT + Duration::from_secs(2),
        "{waited:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn jwt_shaped_credentials_are_api_keys_without_oidc_and_issuers_must_be_https() {
    let key = SigningKey::es256("k1");
    let p = platform(None).await;
    let now = jsonwebtoken::get_current_timestamp();
    let token = key.sign(&json!({"iss": "https://idp.example", "aud": AUDIENCE, "exp": now + 60}));
    let message = refusal(&p.control, &token).await;
    assert!(message.contains("API key"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let refused = nexus_server::PlatformBuilder::new(dir.path())
        .oidc(OidcSettings::new("http://idp.example.com", AUDIENCE))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, nexus_server::ServerError::Usage(m) if m.contains("oidc.issuer")),
        "{refused}"
    );
}
