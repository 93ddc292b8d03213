//! Black-box tests of the `nexus` binary: the server process and the client verbs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Creates a tenant through the CLI, restarts the server, and reads it back.
fn assert_survives_restart(data_dir: &Path, extra: &[&str]) {
    let server = Server::start(data_dir, extra);
    let created = stdout_json(&server.cli(&["--json", "tenants", "create", "durable"]));
    server.stop();

    let server = Server::start(data_dir, extra);
    let fetched = stdout_json(&server.cli(&["--json", "tenants", "get", "durable"]));
    assert_eq!(fetched, created);
    let default = stdout_json(&server.cli(&["--json", "tenants", "get", "default"]));
    assert_eq!(default["name"], "default");
    server.stop();
}

#[test]
fn acknowledged_rows_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    assert_survives_restart(dir.path(), &[]);
}

#[tokio::test]
async fn acknowledged_rows_survive_a_restart_on_postgres() {
    // A private schema, created and migrated here, then selected through the URL.
    let schema = format!(
        "srv_{}",
        nexus_core::TaskId::new().to_string().replace('-', "")
    );
    nexus_store_postgres::PgStore::open(&postgres_url(), 1, Some(&schema))
        .await
        .unwrap();
    let url = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    let dir = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        assert_survives_restart(dir.path(), &["--database-url", &url]);
    })
    .await
    .unwrap();
    nexus_store_postgres::PgStore::drop_schema(&postgres_url(), &schema)
        .await
        .unwrap();
}

#[test]
fn client_verbs_print_data_and_use_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let created = server.cli(&["tenants", "create", "acme", "--display-name", "Acme Corp"]);
    assert!(created.status.success());
    assert!(String::from_utf8_lossy(&created.stdout).contains("Acme Corp"));
    assert!(String::from_utf8_lossy(&created.stderr).contains("created tenant acme"));

    let list = stdout_json(&server.cli(&["--json", "tenants", "list"]));
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme"]);

    // Rejected by the server: exit 4 with the problem's detail and code on stderr.
    for args in [
        &["tenants", "create", "acme"][..],
        &["tenants", "create", "Bad Name"],
        &["tenants", "get", "nobody"],
        &["tenants", "get", "../../etc"],
        &["tenants", "list", "--after", "garbage"],
    ] {
        let output = server.cli(args);
        assert_eq!(output.status.code(), Some(4), "{args:?}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: errors never go to stdout"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    server.stop();

    // Unreachable server: exit 3.
    let output = Command::new(NEXUS)
        .args(["--server", "http://127.0.0.1:9", "tenants", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));

    // Usage errors: exit 2.
    for args in [
        &["--server", "not a url", "tenants", "list"][..],
        &["tenants", "frobnicate"],
        &["--no-such-flag"],
    ] {
        let output = Command::new(NEXUS).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn print_config_shows_layers_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nexus.toml"),
        "[server]\nmax_in_flight = 77\n",
    )
    .unwrap();
    let output = Command::new(NEXUS)
        .args(["server", "--print-config", "--data-dir"])
        .arg(dir.path())
        .args(["--database-url", "postgres://nexus:hunter2@db/nexus"])
        .env("NEXUS__SERVER__REQUEST_TIMEOUT_SECS", "9")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("max_in_flight = 77"), "{printed}");
    assert!(printed.contains("request_timeout_secs = 9"), "{printed}");
    assert!(printed.contains("nexus:***@db"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn bad_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("NEXUS__SERVER__LISTNE", "127.0.0.1:1", "listne"),
        ("NEXUS__SERVER__LISTEN", "nowhere", "server.listen"),
        ("NEXUS__DATABASE__URL", "mysql://db", "database.url"),
    ];
    for (var, value, key) in cases {
        let output = Command::new(NEXUS)
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(stderr.contains(key), "{var}: {stderr}");
    }
}

#[test]
fn completions_are_generated() {
    let output = Command::new(NEXUS)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(script.contains("tenants") && script.contains("server"));
}

#[test]
fn bench_http_measures_a_server_and_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let healthz = format!("{}/healthz", server.url);
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "bench",
            "http",
            "--duration",
            "1",
            "--warmup",
            "0",
        ];
        args.extend_from_slice(extra);
        server.cli(&args)
    };

    // Closed loop over two threads: every request answered.
    let closed = stdout_json(&bench(&[
        &healthz,
        "--rate",
        "0",
        "--connections",
        "4",
        "--threads",
        "2",
    ]));
    assert_eq!(closed["mode"], "closed-loop");
    assert!(closed["requests"].as_u64().unwrap() > 10, "{closed}");
    assert_eq!(closed["errors"], 0, "{closed}");
    assert!(closed["p50_ms"].as_f64().unwrap() > 0.0, "{closed}");

    // Open loop: the schedule sets the count, however the connections share it.
    let open = stdout_json(&bench(&[&healthz, "--rate", "200", "--connections", "3"]));
    let sent = open["requests"].as_u64().unwrap();
    assert!((195..=205).contains(&sent), "{open}");

    // Answers that are not 2xx count as errors.
    let missing = stdout_json(&bench(&[
        &format!("{}/no/such/route", server.url),
        "--rate",
        "100",
    ]));
    assert!(missing["requests"].as_u64().unwrap() > 0, "{missing}");
    assert_eq!(missing["errors"], missing["requests"], "{missing}");

    // Bad arguments: usage errors (exit 2) with a message; an unreachable target: exit 3.
    for (args, code) in [
        (vec![healthz.as_str(), "--threads", "0"], 2),
        (vec![healthz.as_str(), "--connections", "0"], 2),
        (vec!["https://127.0.0.1:1/"], 2),
        (vec!["not a url"], 2),
        (vec![healthz.as_str(), "--header", "no colon"], 2),
        (vec![healthz.as_str(), "--post", "{not json"], 2),
        (vec!["http://127.0.0.1:9/"], 3),
    ] {
        let output = bench(&args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    server.stop();
}

/// A fresh data directory prints its first key once; keys made with `nexus keys` carry their
/// role; a revoked key is refused from the next request on; no key at all is a clear error.
#[test]
fn keys_are_shown_once_carry_their_role_and_die_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    // Without NEXUS_BOOTSTRAP_API_KEY, the first start prints a random admin key.
    let mut child = Command::new(NEXUS)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("NEXUS_BOOTSTRAP_API_KEY")
        .env("NEXUS__LOG__FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut key = None;
    let mut url = None;
    for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
        if let Some(rest) = line.trim().strip_prefix("export NEXUS_API_KEY=") {
            key = Some(rest.to_owned());
        }
        if line.contains("\"listening\"") {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
            url = Some(entry["url"].as_str().unwrap().to_owned());
            break;
        }
    }
    let (key, url) = (key.expect("the first key is printed"), url.unwrap());
    assert!(key.starts_with("nxk_"), "{key}");
    let as_key = |key: Option<&str>, args: &[&str]| {
        let mut command = Command::new(NEXUS);
        command.arg("--server").arg(&url).args(args);
        command.env_remove("NEXUS_API_KEY");
        if let Some(key) = key {
            command.env("NEXUS_API_KEY", key);
        }
        command.output().unwrap()
    };
    let anonymous = as_key(None, &["tenants", "list"]);
    assert_eq!(anonymous.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("(unauthenticated)") && stderr.contains("NEXUS_API_KEY"),
        "{stderr}"
    );
    assert!(as_key(Some(&key), &["tenants", "list"]).status.success());

    // A viewer key reads but may not change anything, nor mint itself a stronger key.
    let created = as_key(Some(&key), &["keys", "create", "ci", "--role", "viewer"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let viewer = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(viewer.starts_with("nxk_") && viewer != key);
    assert!(as_key(Some(&viewer), &["agents", "list"]).status.success());
    for args in [
        &["tenants", "create", "acme"][..],
        &["keys", "create", "mine", "--role", "admin"],
        &["keys", "list"],
    ] {
        let output = as_key(Some(&viewer), args);
        assert_eq!(output.status.code(), Some(4), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("(forbidden)"),
            "{args:?}"
        );
    }
    // Listing never shows a secret.
    let listed = as_key(Some(&key), &["--json", "keys", "list"]);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(!listed_text.contains(&viewer) && !listed_text.contains(&key));
    let page: serde_json::Value = serde_json::from_str(&listed_text).unwrap();
    let viewer_id = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        as_key(Some(&key), &["keys", "revoke", &viewer_id])
            .status
            .success()
    );
    let revoked = as_key(Some(&viewer), &["agents", "list"]);
    assert_eq!(revoked.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("(unauthenticated)"));

    // Every change above is in the audit chain with the real principal, and it verifies.
    let audit = as_key(Some(&key), &["--json", "audit", "list"]);
    let events: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in ["key.create", "authz.deny", "key.revoke", "auth.fail"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(as_key(Some(&key), &["audit", "verify"]).status.success());
    let _ = child.kill();
    let _ = child.wait();

    // A second start prints no key: one exists.
    let server = Server::start(dir.path(), &[]);
    let again = Command::new(NEXUS)
        .args(["--server", &server.url, "tenants", "list"])
        .env("NEXUS_API_KEY", &key)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    server.stop();
}

/// `nexus policies`: a policy from a file narrows a role, `explain` names it, a malformed one
/// is refused with Cedar's reason, and deleting it restores the role's rights.
#[test]
fn policies_narrow_roles_and_explain_names_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let created = server.cli(&["--json", "keys", "create", "dev", "--role", "developer"]);
    let dev: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let dev_id = dev["id"].as_str().unwrap();
    let policy = dir.path().join("no-keys.cedar");
    std::fs::write(
        &policy,
        r#"forbid (principal, action == Nexus::Action::"agent.deploy", resource)
           when { principal.role == "developer" && context.hour >= 0 };"#,
    )
    .unwrap();
    let output = server.cli(&[
        "policies",
        "create",
        "no-dev-deploys",
        "--file",
        policy.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let explained = stdout_json(&server.cli(&[
        "--json",
        "policies",
        "explain",
        "agent.deploy",
        "--key",
        dev_id,
    ]));
    assert_eq!(explained["allowed"], false, "{explained}");
    assert_eq!(explained["policies"][0], "tenant:no-dev-deploys");
    let text = server.cli(&["policies", "explain", "task.send", "--key", dev_id]);
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("ALLOW"));

    let malformed = server.cli(&[
        "policies",
        "create",
        "broken",
        "--text",
        "permit(principal,",
    ]);
    assert_eq!(malformed.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("not a Cedar policy"));

    let listed = stdout_json(&server.cli(&["--json", "policies", "list"]));
    assert_eq!(listed["policies"].as_array().unwrap().len(), 1);
    assert!(
        server
            .cli(&["policies", "delete", "no-dev-deploys"])
            .status
            .success()
    );
    let explained = stdout_json(&server.cli(&[
        "--json",
        "policies",
        "explain",
        "agent.deploy",
        "--key",
        dev_id,
    ]));
    assert_eq!(explained["allowed"], true, "{explained}");
    server.stop();
}

/// `--insecure-no-auth` is refused off loopback, and on loopback serves without a key.
#[test]
fn insecure_no_auth_is_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(NEXUS)
        .args([
            "server",
            "--insecure-no-auth",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"));

    let server = Server::start(dir.path(), &["--insecure-no-auth"]);
    let anonymous = Command::new(NEXUS)
        .args(["--server", &server.url, "agents", "list"])
        .env_remove("NEXUS_API_KEY")
        .output()
        .unwrap();
    assert!(
        anonymous.status.success(),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    server.stop();
}

#[test]
fn tenants_export_to_a_file_and_delete_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(server.cli(&["tenants", "create", "acme"]).status.success());
    assert!(
        server
            .cli(&[
                "policies",
                "create",
                "no-delete",
                "--tenant",
                "acme",
                "--text",
                "forbid(principal, action == Nexus::Action::\"agent.delete\", resource);"
            ])
            .status
            .success()
    );

    let file = dir.path().join("acme.ndjson");
    let exported = server.cli(&["tenants", "export", "acme", "-o", file.to_str().unwrap()]);
    assert!(exported.status.success(), "{exported:?}");
    assert!(String::from_utf8_lossy(&exported.stderr).contains("exported tenant acme"));
    let text = std::fs::read_to_string(&file).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"tenant"));
    assert_eq!(kinds.last(), Some(&"end"));
    assert!(
        kinds.contains(&"policy") && kinds.contains(&"audit_event"),
        "{kinds:?}"
    );
    assert_eq!(records.last().unwrap()["records"], records.len() - 1);
    assert!(!dir.path().join("acme.ndjson.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "an export holds the tenant's data in the clear"
        );
    }

    // Deleting needs --yes, the tenant must exist, and the admin's own tenant is refused.
    let unconfirmed = server.cli(&["tenants", "delete", "acme"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    for (args, code) in [
        (&["tenants", "delete", "nobody", "--yes"][..], "not_found"),
        (&["tenants", "delete", "default", "--yes"], "conflict"),
        (&["tenants", "export", "nobody"], "not_found"),
    ] {
        let refused = server.cli(args);
        assert_eq!(refused.status.code(), Some(4), "{args:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(code),
            "{args:?}: {refused:?}"
        );
    }
    let deleted = server.cli(&["tenants", "delete", "acme", "--yes"]);
    assert!(deleted.status.success(), "{deleted:?}");
    let gone = server.cli(&["tenants", "get", "acme"]);
    assert_eq!(gone.status.code(), Some(4));
    let audit = stdout_json(&server.cli(&["--json", "audit", "list", "--limit", "500"]));
    let last = audit.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "tenant.delete");
    // The name is free again.
    assert!(server.cli(&["tenants", "create", "acme"]).status.success());
    server.stop();
}

#[test]
fn login_keeps_a_private_session_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let config = dir.path().join("config");
    let password = "correct horse battery staple\n";

    let added = server.cli_logged_in_as_admin(
        &[
            "members",
            "add",
            "alice",
            "--role",
            "developer",
            "--password-stdin",
        ],
        password,
    );
    assert!(added.status.success(), "{added:?}");
    assert!(String::from_utf8_lossy(&added.stderr).contains("alice is developer"));

    // Without a session, client verbs say how to get one.
    let anonymous = server.cli_logged_in(&config, &["whoami"], "");
    assert_eq!(anonymous.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("nexus login"));

    let wrong = server.cli_logged_in(
        &config,
        &["login", "--user", "alice", "--password-stdin"],
        "not the password at all\n",
    );
    assert_eq!(wrong.status.code(), Some(4), "{wrong:?}");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong user name or password"));
    assert!(!config.join("credentials.json").exists());

    let login = server.cli_logged_in(
        &config,
        &["login", "--user", "alice", "--password-stdin"],
        password,
    );
    assert!(login.status.success(), "{login:?}");
    let file = config.join("credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is the owner's only");
        let dir_mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
    let me = stdout_json(&server.cli_logged_in(&config, &["--json", "whoami"], ""));
    assert_eq!(
        (me["principal"].as_str(), me["role"].as_str()),
        (Some("user:alice"), Some("developer"))
    );
    // The session acts as alice: she may deploy-level things but not manage keys.
    let keys = server.cli_logged_in(&config, &["keys", "create", "ci", "--role", "viewer"], "");
    assert_eq!(keys.status.code(), Some(4), "{keys:?}");
    assert!(String::from_utf8_lossy(&keys.stderr).contains("forbidden"));

    let out = server.cli_logged_in(&config, &["logout"], "");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("nxk_"),
        "the token is gone from disk: {text}"
    );
    let after = server.cli_logged_in(&config, &["whoami"], "");
    assert_eq!(after.status.code(), Some(4));
    // A second logout is harmless.
    assert!(
        server
            .cli_logged_in(&config, &["logout"], "")
            .status
            .success()
    );

    // Without a terminal or --password-stdin, login refuses to hang.
    let no_tty = server.cli_logged_in(&config, &["login", "--user", "alice"], "");
    assert_eq!(no_tty.status.code(), Some(2), "{no_tty:?}");
    server.stop();
}

#[test]
fn teams_are_made_filled_and_emptied_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let added = server.cli_logged_in_as_admin(
        &[
            "members",
            "add",
            "gina",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "correct horse battery staple\n",
    );
    assert!(added.status.success(), "{added:?}");
    for args in [
        &["teams", "create", "sre", "--role", "developer"][..],
        &["teams", "add", "sre", "gina"],
    ] {
        let done = server.cli(args);
        assert!(done.status.success(), "{args:?}: {done:?}");
    }
    let teams = stdout_json(&server.cli(&["--json", "teams", "list"]));
    assert_eq!(teams[0]["name"], "sre");
    assert_eq!(teams[0]["members"], serde_json::json!(["gina"]));
    for (args, code) in [
        (&["teams", "add", "sre", "nobody"][..], Some(4)),
        (&["teams", "create", "sre", "--role", "viewer"], Some(4)),
        (&["teams", "create", "x", "--role", "root"], Some(2)),
    ] {
        let refused = server.cli(args);
        assert_eq!(refused.status.code(), code, "{args:?}: {refused:?}");
    }
    assert!(
        server
            .cli(&["teams", "remove", "sre", "gina"])
            .status
            .success()
    );
    assert!(server.cli(&["teams", "delete", "sre"]).status.success());
    let teams = stdout_json(&server.cli(&["--json", "teams", "list"]));
    assert_eq!(teams, serde_json::json!([]));
    server.stop();
}

#[test]
fn service_account_keys_are_made_and_die_with_their_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let created = server.cli(&["service-accounts", "create", "ci", "--role", "viewer"]);
    assert!(created.status.success(), "{created:?}");
    let key = server.cli(&["keys", "create", "ci-key", "--service-account", "ci"]);
    assert!(key.status.success(), "{key:?}");
    assert!(
        String::from_utf8_lossy(&key.stderr).contains("(viewer)"),
        "{key:?}"
    );
    let secret = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let me = Command::new(NEXUS)
        .args(["--server", &server.url, "--json", "whoami"])
        .env("NEXUS_API_KEY", &secret)
        .output()
        .unwrap();
    assert_eq!(stdout_json(&me)["principal"], "service:ci");
    let both = server.cli(&[
        "keys",
        "create",
        "k",
        "--role",
        "viewer",
        "--service-account",
        "ci",
    ]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    let listed = stdout_json(&server.cli(&["--json", "service-accounts", "list"]));
    assert_eq!(listed[0]["name"], "ci");
    assert!(
        server
            .cli(&["service-accounts", "delete", "ci"])
            .status
            .success()
    );
    let after = Command::new(NEXUS)
        .args(["--server", &server.url, "whoami"])
        .env("NEXUS_API_KEY", &secret)
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(4), "{after:?}");
    server.stop();
}

#[test]
fn passwd_changes_the_password_and_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let config = dir.path().join("config");
    let old = "correct horse battery staple";
    let new = "another long passphrase";
    assert!(
        server
            .cli_logged_in_as_admin(
                &[
                    "members",
                    "add",
                    "jo",
                    "--role",
                    "viewer",
                    "--password-stdin"
                ],
                &format!("{old}\n")
            )
            .status
            .success()
    );
    let login = server.cli_logged_in(
        &config,
        &["login", "--user", "jo", "--password-stdin"],
        &format!("{old}\n"),
    );
    assert!(login.status.success(), "{login:?}");
    let changed = server.cli_logged_in(
        &config,
        &["passwd", "--password-stdin"],
        &format!("{old}\n{new}\n"),
    );
    assert!(changed.status.success(), "{changed:?}");
    assert!(String::from_utf8_lossy(&changed.stderr).contains("nexus login"));
    let after = server.cli_logged_in(&config, &["whoami"], "");
    assert_eq!(
        after.status.code(),
        Some(4),
        "the session is gone: {after:?}"
    );
    let relogin = server.cli_logged_in(
        &config,
        &["login", "--user", "jo", "--password-stdin"],
        &format!("{new}\n"),
    );
    assert!(relogin.status.success(), "{relogin:?}");
    let reset = server.cli_logged_in_as_admin(
        &["passwd", "--user", "jo", "--password-stdin"],
        &format!("{old}\n"),
    );
    assert!(reset.status.success(), "{reset:?}");
    server.stop();
}
