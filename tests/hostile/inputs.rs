//! Hostile request inputs over `/v1`, A2A and MCP (and webhook URLs aimed inside the node's
//! network): each gets its coded answer, nothing is stored, and the node keeps serving.

use reqwest::Method;

use crate::support::Target;

/// What a case must be answered with.
enum Expect {
    /// problem+json with this status and code.
    Problem(u16, &'static str),
    /// A JSON-RPC error with this code.
    Rpc(i64),
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    expect: Expect,
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const MCP: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

/// JSON nested `depth` arrays deep.
fn deep(depth: usize) -> Vec<u8> {
    let mut body = "[".repeat(depth);
    body.push_str(&"]".repeat(depth));
    body.into_bytes()
}

/// A2A `message/send` asking for push notifications to `url`.
fn ssrf(url: &'static str) -> Case {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
        "message": {"kind": "message", "role": "user", "messageId": "m-ssrf",
                    "parts": [{"kind": "text", "text": "hi"}]},
        "configuration": {"pushNotificationConfig": {"url": url}}}});
    Case {
        name: url,
        method: Method::POST,
        path: "/a2a/attacker/echo",
        headers: JSON,
        body: body.to_string().into_bytes(),
        expect: Expect::Rpc(-32602),
    }
}

fn cases() -> Vec<Case> {
    use Expect::{Problem, Rpc};
    let case = |name, method, path, headers, body: &[u8], expect| Case {
        name,
        method,
        path,
        headers,
        body: body.to_vec(),
        expect,
    };
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(2 * 1024 * 1024)).into_bytes();
    vec![
        // `/v1`
        case(
            "truncated JSON",
            Method::POST,
            "/v1/tenants/attacker/keys",
            JSON,
            br#"{"name":"#,
            Problem(400, "invalid_json"),
        ),
        // Refused at its first token, which is not the object the schema wants.
        Case {
            body: deep(100_000),
            ..case(
                "deep JSON",
                Method::POST,
                "/v1/tenants/attacker/keys",
                JSON,
                b"",
                Problem(422, "invalid_body"),
            )
        },
        Case {
            body: huge.clone(),
            ..case(
                "huge JSON",
                Method::POST,
                "/v1/tenants/attacker/keys",
                JSON,
                b"",
                Problem(413, "payload_too_large"),
            )
        },
        case(
            "invalid UTF-8",
            Method::POST,
            "/v1/tenants/attacker/keys",
            JSON,
            b"{\"name\":\"\xff\xfe\"}",
            Problem(400, "invalid_json"),
        ),
        case(
            "unknown fields",
            Method::POST,
            "/v1/tenants/attacker/keys",
            JSON,
            br#"{"name":"k","role":"developer","platform":"yes"}"#,
            Problem(422, "invalid_body"),
        ),
        case(
            "NUL in a value",
            Method::POST,
            "/v1/tenants/attacker/agents",
            JSON,
            b"{\"package\":\"a\\u0000b\",\"name\":\"x\"}",
            Problem(422, "invalid_body"),
        ),
        case(
            "traversal in a tenant",
            Method::GET,
            "/v1/tenants/..%2F..%2Fetc%2Fpasswd/agents",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "traversal in an agent",
            Method::GET,
            "/v1/tenants/attacker/agents/..%2F..%2Fsecrets",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "SQL in an agent name",
            Method::GET,
            "/v1/tenants/attacker/agents/x'%20OR%20'1'='1",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "SQL in a cursor",
            Method::GET,
            "/v1/tenants/attacker/tasks?after=%27%20OR%201=1--",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "NUL in a path",
            Method::GET,
            "/v1/tenants/attacker/agents/a%00b",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "a huge limit",
            Method::GET,
            "/v1/tenants/attacker/tasks?limit=99999999999999999999",
            &[],
            b"",
            Problem(400, "invalid_parameter"),
        ),
        case(
            "another tenant",
            Method::GET,
            "/v1/tenants/bystander/agents",
            &[],
            b"",
            Problem(404, "not_found"),
        ),
        // A2A JSON-RPC
        case(
            "A2A truncated JSON",
            Method::POST,
            "/a2a/attacker/echo",
            JSON,
            br#"{"jsonrpc":"2.0","id":1,"#,
            Rpc(-32700),
        ),
        Case {
            body: deep(100_000),
            ..case(
                "A2A deep JSON",
                Method::POST,
                "/a2a/attacker/echo",
                JSON,
                b"",
                Rpc(-32700),
            )
        },
        case(
            "A2A invalid UTF-8",
            Method::POST,
            "/a2a/attacker/echo",
            JSON,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}",
            Rpc(-32700),
        ),
        case(
            "A2A unknown method",
            Method::POST,
            "/a2a/attacker/echo",
            JSON,
            br#"{"jsonrpc":"2.0","id":1,"method":"../../admin"}"#,
            Rpc(-32601),
        ),
        case(
            "A2A not an object",
            Method::POST,
            "/a2a/attacker/echo",
            JSON,
            br#"[1,2,3]"#,
            Rpc(-32600),
        ),
        Case {
            body: huge.clone(),
            ..case(
                "A2A huge body",
                Method::POST,
                "/a2a/attacker/echo",
                JSON,
                b"",
                Problem(413, "payload_too_large"),
            )
        },
        case(
            "A2A traversal in the agent",
            Method::POST,
            "/a2a/attacker/..%2F..%2Fv1",
            JSON,
            br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}"#,
            Problem(400, "invalid_parameter"),
        ),
        case(
            "A2A another tenant",
            Method::POST,
            "/a2a/bystander/echo",
            JSON,
            br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}"#,
            Problem(404, "not_found"),
        ),
        // SSRF: a webhook for the task's notifications that points inside the node's network
        // is refused before the task is created (`[push] allow_private_addresses` is off).
        ssrf("http://127.0.0.1:5432/"),
        ssrf("http://localhost/"),
        ssrf("http://[::1]/"),
        ssrf("http://0.0.0.0/"),
        ssrf("http://2130706433/"),
        ssrf("http://0x7f.1/"),
        ssrf("http://127.1/"),
        ssrf("http://[::ffff:127.0.0.1]/"),
        ssrf("http://169.254.169.254/latest/meta-data/"),
        ssrf("http://10.0.0.1/"),
        ssrf("http://[fe80::1]/"),
        ssrf("file:///etc/passwd"),
        ssrf("http://user:pass@example.com/"),
        // MCP
        case(
            "MCP truncated JSON",
            Method::POST,
            "/mcp/attacker",
            MCP,
            br#"{"jsonrpc":"2.0","#,
            Problem(400, "invalid_json"),
        ),
        // rmcp parses the body into its message type, which reports the nesting.
        Case {
            body: deep(100_000),
            ..case(
                "MCP deep JSON",
                Method::POST,
                "/mcp/attacker",
                MCP,
                b"",
                Problem(422, "invalid_body"),
            )
        },
        case(
            "MCP another tenant",
            Method::POST,
            "/mcp/bystander",
            MCP,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Problem(404, "not_found"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_coded_answers_and_store_nothing() {
    let target = Target::start().await;
    target.deploy_echo();
    let before = target.stored().await;
    for case in cases() {
        let answer = target
            .send(
                Some(&target.attacker),
                case.method.clone(),
                case.path,
                case.headers,
                case.body.clone(),
            )
            .await;
        match case.expect {
            Expect::Problem(status, code) => answer.assert_problem(status, code, case.name),
            Expect::Rpc(code) => answer.assert_rpc_error(code, case.name),
        }
        target.assert_alive(case.name).await;
    }
    assert_eq!(target.stored().await, before, "nothing stored");
}
