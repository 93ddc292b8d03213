//! The target of every attack: a server with an attacking and a bystanding tenant.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{API_KEY, Server, reqwest_client};

/// Longest a case waits for an event the server must cause; a failure, never a pass.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running server with two tenants: `attacker`, whose developer key attacks, and
/// `bystander`, whose developer key must keep being served.
pub struct Target {
    pub server: Server,
    pub addr: SocketAddr,
    http: reqwest::Client,
    pub attacker: String,
    pub bystander: String,
    _data: tempfile::TempDir,
}

/// An answer, whatever it was.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON, or `Null`.
    pub body: Value,
}

impl Answer {
    /// Asserts a problem+json answer with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str, case: &str) {
        assert_eq!(self.status, status, "{case}: {}", self.text);
        assert_eq!(
            self.headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{case}"
        );
        assert_eq!(self.body["code"], code, "{case}: {}", self.text);
    }

    /// Asserts a JSON-RPC error answer with `code`.
    pub fn assert_rpc_error(&self, code: i64, case: &str) {
        assert_eq!(self.status, 200, "{case}: {}", self.text);
        assert_eq!(self.body["error"]["code"], code, "{case}: {}", self.text);
    }
}

impl Target {
    pub async fn start() -> Self {
        Self::start_with(&[], None).await
    }

    /// A target with `env` set and at most `file_limit` file descriptors.
    pub async fn start_with(env: &[(&str, &str)], file_limit: Option<u64>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with(data.path(), &[], env, file_limit);
        let addr = server
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("the server's address");
        let mut target = Self {
            server,
            addr,
            http: reqwest_client()
                .timeout(PATIENCE)
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            attacker: String::new(),
            bystander: String::new(),
            _data: data,
        };
        target.attacker = target.tenant_with_key("attacker").await;
        target.bystander = target.tenant_with_key("bystander").await;
        target
    }

    /// Creates tenant `name` and a developer key in it.
    async fn tenant_with_key(&self, name: &str) -> String {
        let created = self
            .json(
                Some(API_KEY),
                Method::POST,
                "/v1/tenants",
                json!({"name": name}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let key = self
            .json(
                Some(API_KEY),
                Method::POST,
                &format!("/v1/tenants/{name}/keys"),
                json!({"name": "key", "role": "developer"}),
            )
            .await;
        assert_eq!(key.status, 201, "{}", key.text);
        key.body["secret"].as_str().unwrap().to_owned()
    }

    /// Sends a request with exactly these headers and body (and `key` as the bearer).
    pub async fn send(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    /// Sends `body` as `application/json`.
    pub async fn json(&self, key: Option<&str>, method: Method, path: &str, body: Value) -> Answer {
        self.send(
            key,
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Deploys the `echo` example agent into both tenants (built once per suite run, shared
    /// with the other tests' guest builds).
    pub fn deploy_echo(&self) {
        let echo = crate::common::repo().join("examples/echo");
        for tenant in ["attacker", "bystander"] {
            let output =
                self.server
                    .cli_building(&["deploy", echo.to_str().unwrap(), "--tenant", tenant]);
            assert!(
                output.status.success(),
                "deploy: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Asserts that the node answers its health check and serves the bystanding tenant over
    /// `/v1` and A2A JSON-RPC.
    pub async fn assert_alive(&self, during: &str) {
        let health = self
            .send(None, Method::GET, "/healthz", &[], Vec::new())
            .await;
        assert_eq!(health.status, 200, "/healthz during {during}");
        let agents = self
            .send(
                Some(&self.bystander),
                Method::GET,
                "/v1/tenants/bystander/agents",
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(agents.status, 200, "bystander /v1 during {during}");
        // A task of the bystander's echo agent completes (without the agent deployed, its
        // absence is a 404 answer, not a refusal of the request).
        let rpc = self
            .json(
                Some(&self.bystander),
                Method::POST,
                "/a2a/bystander/echo",
                json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
                    "kind": "message", "role": "user", "messageId": "m-1",
                    "parts": [{"kind": "text", "text": "still there?"}]}}}),
            )
            .await;
        match rpc.status {
            200 => assert_eq!(
                rpc.body["result"]["status"]["state"], "completed",
                "bystander A2A during {during}: {}",
                rpc.text
            ),
            404 => assert_eq!(rpc.body["code"], "not_found", "during {during}"),
            other => panic!("bystander A2A during {during}: {other} {}", rpc.text),
        }
    }

    /// What the attacking tenant has stored, and which tenants exist: compared before and
    /// after an attack.
    pub async fn stored(&self) -> Value {
        let mut stored = serde_json::Map::new();
        for path in [
            "/v1/tenants",
            "/v1/tenants/attacker/packages",
            "/v1/tenants/attacker/agents",
            "/v1/tenants/attacker/tasks",
            "/v1/tenants/attacker/keys",
        ] {
            let answer = self
                .send(Some(API_KEY), Method::GET, path, &[], Vec::new())
                .await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text);
            stored.insert(path.to_owned(), answer.body["items"].clone());
        }
        Value::Object(stored)
    }

    /// The value of the unlabelled metric `name` in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let metrics = self
            .send(None, Method::GET, "/metrics", &[], Vec::new())
            .await;
        metrics
            .text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the metric `name` satisfies `done` (polling `/metrics`).
    pub async fn wait_for_metric(&self, name: &str, done: impl Fn(f64) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.metric(name).await;
            if done(value) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is still {value}"
            );
            tokio::task::yield_now().await;
        }
    }

    /// The server process's resident memory, in bytes.
    pub fn resident_bytes(&self) -> u64 {
        crate::common::resident_bytes(self.server.child.id())
    }
}
