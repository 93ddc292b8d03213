//! Cross-site requests and DNS rebinding against the real server: every case of the shared
//! table `cross_site.json` (also read by the router test `crates/api/src/tests/cross_site.rs`).

use crate::common::{API_KEY, Server, stdout_json};

/// Sends one raw HTTP/1.1 request to `address` exactly as written (repeated headers included)
/// and returns the status and the JSON body, if any.
fn raw_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = match (answer.find("\r\n\r\n{"), answer.rfind('}')) {
        (Some(start), Some(end)) if end > start => {
            serde_json::from_str(&answer[start + 4..=end]).unwrap_or_default()
        }
        _ => serde_json::Value::Null,
    };
    (status, json)
}

/// Cross-site requests and DNS rebinding against the real server: every case of the shared
/// table `tests/hostile/cross_site.json` gets its coded answer and stores nothing, the probes
/// keep answering, and the server's own clients and pages keep working.
#[test]
fn cross_site_requests_and_rebound_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nexus.toml"),
        "[server]\nallowed_hosts = [\"nexus.test\"]\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &[]);
    let own = server.url.strip_prefix("http://").unwrap().to_owned();
    let port = own.rsplit(':').next().unwrap().to_owned();
    let fill = |s: &str| s.replace("{key}", API_KEY).replace("{own}", &own);
    let table: serde_json::Value = serde_json::from_str(include_str!("cross_site.json")).unwrap();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let headers: Vec<(String, String)> = case["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    fill(pair[1].as_str().unwrap()),
                )
            })
            .collect();
        let (status, body) = raw_request(
            &own,
            case["method"].as_str().unwrap(),
            case["path"].as_str().unwrap(),
            &headers,
            &fill(case["body"].as_str().unwrap()),
        );
        assert_eq!(status, case["status"], "{name}: {body}");
        assert_eq!(body["code"], case["code"], "{name}: {body}");
        let (health, _) = raw_request(&own, "GET", "/healthz", &[], "");
        assert_eq!(health, 200, "{name}: the server keeps answering");
    }
    let listed = stdout_json(&server.cli(&["--json", "tenants", "list"]));
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "nothing was stored: {listed}"
    );

    let bearer = ("Authorization".to_owned(), format!("Bearer {API_KEY}"));
    let host = |h: &str| ("Host".to_owned(), h.to_owned());
    let origin = |o: &str| ("Origin".to_owned(), o.to_owned());
    let local = format!("localhost:{port}");
    for (what, headers) in [
        ("the listed name", vec![host("nexus.test"), bearer.clone()]),
        ("localhost", vec![host(&local), bearer.clone()]),
        (
            "the server's own page",
            vec![
                host(&local),
                origin(&format!("http://{local}")),
                bearer.clone(),
            ],
        ),
        (
            "a page of the listed name",
            vec![
                host("nexus.test"),
                origin("https://nexus.test"),
                bearer.clone(),
            ],
        ),
    ] {
        let (status, body) = raw_request(&own, "GET", "/v1/tenants", &headers, "");
        assert_eq!(status, 200, "{what}: {body}");
    }
    let (probe, _) = raw_request(&own, "GET", "/readyz", &[host("lb.internal")], "");
    assert_eq!(probe, 200, "probes answer whatever the name");
    server.stop();
}
