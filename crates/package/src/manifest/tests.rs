use super::*;

/// A manifest using every key. Line numbers matter: the cases below refer to them.
const FULL: &str = r#"[agent]
name = "echo"
namespace = "examples"
version = "0.1.0"
description = "Replies with what you said."
mode = "serverless"
input_modes = ["text/plain"]
output_modes = ["text/plain", "application/json"]
tags = ["demo"]

[[skills]]
id = "echo"
name = "Echo"
description = "Repeats the message."
tags = ["demo"]
examples = ["hello"]
input_schema = '''{"type":"object","properties":{"text":{"type":"string"}}}'''

[[skills]]
id = "shout"
name = "Shout"
description = "Repeats the message, loudly."

[capabilities]
state = true
llm = true
hosts = ["https://api.example.com", "*://*.example.org:*", "http://[::1]:8080"]

[limits]
memory_mib = 64
timeout_secs = 30
fuel = 1000000000
"#;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    parse_manifest(MANIFEST_FILE, text)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn full_manifest_parses() {
    let m = parse(FULL).unwrap_or_else(|e| panic!("{e}"));
    let expected = Manifest {
        agent: AgentSection {
            name: name("echo"),
            namespace: name("examples"),
            version: semver::Version::new(0, 1, 0),
            description: "Replies with what you said.".into(),
            mode: Mode::Serverless,
            input_modes: vec!["text/plain".into()],
            output_modes: vec!["text/plain".into(), "application/json".into()],
            tags: vec!["demo".into()],
        },
        skills: vec![
            Skill {
                id: "echo".into(),
                name: "Echo".into(),
                description: "Repeats the message.".into(),
                tags: vec!["demo".into()],
                examples: vec!["hello".into()],
                input_schema: Some(
                    r#"{"type":"object","properties":{"text":{"type":"string"}}}"#.into(),
                ),
            },
            Skill {
                id: "shout".into(),
                name: "Shout".into(),
                description: "Repeats the message, loudly.".into(),
                tags: vec![],
                examples: vec![],
                input_schema: None,
            },
        ],
        capabilities: Capabilities {
            state: true,
            llm: true,
            agents: false,
            bus: false,
            hosts: vec![
                "https://api.example.com".into(),
                "*://*.example.org:*".into(),
                "http://[::1]:8080".into(),
            ],
        },
        limits: Limits {
            memory_mib: Some(64),
            timeout_secs: Some(30),
            fuel: Some(1_000_000_000),
        },
    };
    assert_eq!(m, expected);
    assert_eq!(m.package_ref().to_string(), "examples/echo@0.1.0");
    assert_eq!(m.capabilities.names(), ["state", "llm"]);
    let schema = m.skills[0].input_schema_json().unwrap_or_default();
    assert_eq!(schema["type"], "object");
}

#[test]
fn minimal_manifest_takes_defaults() {
    let text = r#"
[agent]
name = "min"
namespace = "acme"
version = "1.2.3-beta.1"
description = "Does little."

[[skills]]
id = "0-do_it"
name = "Do it"
description = "It."
"#;
    let m = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.agent.mode, Mode::Serverless);
    assert_eq!(m.agent.input_modes, ["text/plain"]);
    assert_eq!(m.agent.output_modes, ["text/plain"]);
    assert!(m.agent.tags.is_empty());
    assert_eq!(m.capabilities, Capabilities::default());
    assert!(m.capabilities.names().is_empty());
    assert_eq!(m.limits, Limits::default());
    assert_eq!(m.package_ref().to_string(), "acme/min@1.2.3-beta.1");
}

#[test]
fn example_agent_manifest_parses() {
    let text = r#"[agent]
name = "fetcher"
namespace = "examples"
version = "0.1.0"
description = "Fetches a URL from an allow-listed host and reports its status and size."
tags = ["example", "http"]

[[skills]]
id = "fetch"
name = "Fetch"
description = "GETs the URL in the message; only hosts granted at deploy time are reachable."
examples = ["https://example.com/"]

[capabilities]
hosts = ["https://example.com", "https://*.example.com"]
"#;
    let m = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.capabilities.hosts.len(), 2);
}

#[test]
fn json_round_trip() {
    let m = parse(FULL).unwrap_or_else(|e| panic!("{e}"));
    let json = m.to_json();
    assert_eq!(json["agent"]["name"], "echo");
    assert_eq!(json["agent"]["version"], "0.1.0");
    assert_eq!(json["agent"]["mode"], "serverless");
    assert_eq!(json["skills"][1]["id"], "shout");
    assert_eq!(json["limits"]["fuel"], 1_000_000_000u64);
    let back: Manifest = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, m);

    // Absent optional values are left out, not null.
    let minimal = Manifest {
        limits: Limits::default(),
        ..m
    };
    let json = minimal.to_json();
    assert_eq!(json["limits"], serde_json::json!({}));
}

/// One bad manifest: `FULL` with `from` replaced by `to` (which must occur exactly once).
struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    field: &'static str,
    line: usize,
    message: &'static str,
}

#[test]
fn bad_manifests_name_line_and_field() {
    let long_description = format!("description = \"{}\"", "x".repeat(501));
    let long_id = format!("id = \"{}\"", "a".repeat(65));
    let many_tags = format!(
        "tags = [{}]\nexamples",
        (0..21)
            .map(|i| format!("\"t{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Leaked so the table can hold `&'static str`; fine in a test.
    let long_description: &'static str = long_description.leak();
    let long_id: &'static str = long_id.leak();
    let many_tags: &'static str = many_tags.leak();

    let cases = [
        Case {
            what: "bad name",
            from: r#"name = "echo""#,
            to: r#"name = "Bad""#,
            field: "agent.name",
            line: 2,
            message: "name `Bad` may only contain",
        },
        Case {
            what: "bad namespace",
            from: r#"namespace = "examples""#,
            to: r#"namespace = "ex-""#,
            field: "agent.namespace",
            line: 3,
            message: "may only contain",
        },
        Case {
            what: "name of the wrong type",
            from: r#"name = "echo""#,
            to: "name = 7",
            field: "agent.name",
            line: 2,
            message: "invalid type",
        },
        Case {
            what: "not semver",
            from: r#"version = "0.1.0""#,
            to: r#"version = "1.0""#,
            field: "agent.version",
            line: 4,
            message: "version `1.0` is not a semantic version",
        },
        Case {
            what: "empty description",
            from: r#"description = "Replies with what you said.""#,
            to: r#"description = "  ""#,
            field: "agent.description",
            line: 5,
            message: "must not be empty",
        },
        Case {
            what: "long description",
            from: r#"description = "Replies with what you said.""#,
            to: long_description,
            field: "agent.description",
            line: 5,
            message: "is 501 characters long; the limit is 500",
        },
        Case {
            what: "control character in description",
            from: r#"description = "Replies with what you said.""#,
            to: r#"description = "Replies\u0007""#,
            field: "agent.description",
            line: 5,
            message: "control characters",
        },
        Case {
            what: "unknown mode",
            from: r#"mode = "serverless""#,
            to: r#"mode = "daemon""#,
            field: "agent.mode",
            line: 6,
            message: "unknown variant `daemon`",
        },
        Case {
            what: "not a media type",
            from: r#"input_modes = ["text/plain"]"#,
            to: r#"input_modes = ["text"]"#,
            field: "agent.input_modes[0]",
            line: 7,
            message: "not a media type",
        },
        Case {
            what: "no output modes",
            from: r#"output_modes = ["text/plain", "application/json"]"#,
            to: "output_modes = []",
            field: "agent.output_modes",
            line: 8,
            message: "at least one media type",
        },
        Case {
            what: "tag with a space",
            from: "tags = [\"demo\"]\n\n[[skills]]\nid = \"echo\"",
            to: "tags = [\"ok\", \"has space\"]\n\n[[skills]]\nid = \"echo\"",
            field: "agent.tags[1]",
            line: 9,
            message: "must not contain spaces",
        },
        Case {
            what: "unknown key in [agent]",
            from: "mode = \"serverless\"\n",
            to: "mode = \"serverless\"\ncolour = \"blue\"\n",
            field: "agent.colour",
            line: 7,
            message: "unknown field `colour`",
        },
        Case {
            what: "unknown section",
            from: "[limits]\n",
            to: "[extra]\nx = 1\n\n[limits]\n",
            field: "extra",
            line: 29,
            message: "unknown field `extra`",
        },
        Case {
            what: "missing required key",
            from: "namespace = \"examples\"\n",
            to: "",
            field: "agent.namespace",
            line: 1,
            message: "missing field `namespace`",
        },
        Case {
            what: "missing skill key",
            from: "description = \"Repeats the message, loudly.\"\n",
            to: "",
            field: "skills[1].description",
            line: 19,
            message: "missing field `description`",
        },
        Case {
            what: "bad skill id",
            from: r#"id = "echo""#,
            to: r#"id = "Echo!""#,
            field: "skills[0].id",
            line: 12,
            message: "skill id `Echo!` may only contain",
        },
        Case {
            what: "long skill id",
            from: r#"id = "echo""#,
            to: long_id,
            field: "skills[0].id",
            line: 12,
            message: "longer than 64",
        },
        Case {
            what: "duplicate skill id",
            from: r#"id = "shout""#,
            to: r#"id = "echo""#,
            field: "skills[1].id",
            line: 20,
            message: "skill id `echo` is used by an earlier skill",
        },
        Case {
            what: "empty skill name",
            from: r#"name = "Shout""#,
            to: r#"name = """#,
            field: "skills[1].name",
            line: 21,
            message: "must not be empty",
        },
        Case {
            what: "too many skill tags",
            from: "tags = [\"demo\"]\nexamples",
            to: many_tags,
            field: "skills[0].tags[20]",
            line: 15,
            message: "21 tags; the limit is 20",
        },
        Case {
            what: "unknown key in a skill",
            from: "name = \"Shout\"\n",
            to: "name = \"Shout\"\ncolour = 1\n",
            field: "skills[1].colour",
            line: 22,
            message: "unknown field `colour`",
        },
        Case {
            what: "schema is not JSON",
            from: r#"'''{"type":"object","properties":{"text":{"type":"string"}}}'''"#,
            to: r#"'''{"type":'''"#,
            field: "skills[0].input_schema",
            line: 17,
            message: "not valid JSON",
        },
        Case {
            what: "schema is not an object",
            from: r#"'''{"type":"object","properties":{"text":{"type":"string"}}}'''"#,
            to: "'''[1, 2]'''",
            field: "skills[0].input_schema",
            line: 17,
            message: "must be a JSON object",
        },
        Case {
            what: "host with a bad scheme",
            from: r#""https://api.example.com""#,
            to: r#""ftp://api.example.com""#,
            field: "capabilities.hosts[0]",
            line: 27,
            message: "scheme must be http, https or *",
        },
        Case {
            what: "host with a path",
            from: r#""https://api.example.com""#,
            to: r#""https://api.example.com/v1""#,
            field: "capabilities.hosts[0]",
            line: 27,
            message: "no path",
        },
        Case {
            what: "host without a host",
            from: r#""*://*.example.org:*""#,
            to: r#""https://""#,
            field: "capabilities.hosts[1]",
            line: 27,
            message: "the host is empty",
        },
        Case {
            what: "host on its own line in a multi-line array",
            from: r#"hosts = ["https://api.example.com", "*://*.example.org:*", "http://[::1]:8080"]"#,
            to: "hosts = [\n  \"https://ok.example.com\",\n  \"https://bad.example.com:0\",\n]",
            field: "capabilities.hosts[1]",
            line: 29,
            message: "port must be 1-65535 or *",
        },
        Case {
            what: "capability of the wrong type",
            from: "state = true",
            to: "state = \"yes\"",
            field: "capabilities.state",
            line: 25,
            message: "invalid type",
        },
        Case {
            what: "unknown capability",
            from: "llm = true\n",
            to: "llm = true\nnetwork = true\n",
            field: "capabilities.network",
            line: 27,
            message: "unknown field `network`",
        },
        Case {
            what: "memory too small",
            from: "memory_mib = 64",
            to: "memory_mib = 0",
            field: "limits.memory_mib",
            line: 30,
            message: "0 is out of range 1..=4096",
        },
        Case {
            what: "memory too large",
            from: "memory_mib = 64",
            to: "memory_mib = 4097",
            field: "limits.memory_mib",
            line: 30,
            message: "out of range",
        },
        Case {
            what: "memory of the wrong type",
            from: "memory_mib = 64",
            to: "memory_mib = \"big\"",
            field: "limits.memory_mib",
            line: 30,
            message: "invalid type",
        },
        Case {
            what: "timeout too long",
            from: "timeout_secs = 30",
            to: "timeout_secs = 3601",
            field: "limits.timeout_secs",
            line: 31,
            message: "out of range 1..=3600",
        },
        Case {
            what: "zero fuel",
            from: "fuel = 1000000000",
            to: "fuel = 0",
            field: "limits.fuel",
            line: 32,
            message: "at least 1",
        },
        Case {
            what: "negative fuel",
            from: "fuel = 1000000000",
            to: "fuel = -1",
            field: "limits.fuel",
            line: 32,
            message: "invalid value",
        },
        Case {
            what: "unterminated string",
            from: r#"namespace = "examples""#,
            to: r#"namespace = "examples"#,
            field: "",
            line: 3,
            message: "invalid basic string",
        },
        Case {
            what: "duplicate key",
            from: "version = \"0.1.0\"\n",
            to: "version = \"0.1.0\"\nversion = \"0.2.0\"\n",
            field: "",
            line: 5,
            message: "duplicate key `version`",
        },
        Case {
            what: "garbage line",
            from: "[limits]\n",
            to: "[limits]\n!!!\n",
            field: "",
            line: 30,
            message: "invalid key",
        },
    ];

    let mut failures = Vec::new();
    for case in cases {
        if FULL.matches(case.from).count() != 1 {
            failures.push(format!("{}: `from` must occur exactly once", case.what));
            continue;
        }
        let text = FULL.replacen(case.from, case.to, 1);
        let err = match parse(&text) {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.what));
                continue;
            }
            Err(e) => e,
        };
        // One fault, one problem.
        let ok = err.file == MANIFEST_FILE
            && err.problems.len() == 1
            && err.first().is_some_and(|p| {
                p.field == case.field
                    && p.line == case.line
                    && p.message.contains(case.message)
                    && !p.message.contains('\n')
            });
        if !ok {
            failures.push(format!(
                "{}: got `{err}`, want line {} field `{}` message containing `{}`",
                case.what, case.line, case.field, case.message
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn error_display_names_file_line_and_field() {
    let text = FULL.replacen(r#"name = "echo""#, r#"name = "Bad""#, 1);
    let err = parse_manifest("examples/echo/nexus.toml", &text).err();
    let shown = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        shown.starts_with("examples/echo/nexus.toml:2: agent.name: name `Bad` may only contain"),
        "{shown}"
    );

    let syntax = parse("[agent\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(syntax.starts_with("nexus.toml:1: "), "{syntax}");
    assert!(!syntax.contains(": : "), "{syntax}");
}

#[test]
fn skills_are_required() {
    let text = FULL.split("[[skills]]").next().unwrap_or_default();
    let err = parse(text).err();
    let first = err.as_ref().and_then(ManifestError::first);
    assert_eq!(
        first.map(|p| (p.field.as_str(), p.line)),
        Some(("skills", 1))
    );
    assert!(first.is_some_and(|p| p.message.contains("at least one")));
    // An empty list is no better.
    let err = parse(&format!("{text}skills = []\n")).err();
    let first = err.as_ref().and_then(ManifestError::first);
    assert!(first.is_some_and(|p| p.field == "skills" && p.message.contains("at least one")));
}

/// A new user's first manifest: every missing field, unknown key and bad value is reported in
/// one go, in line order, not one per attempt.
#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"[agent]
name = "Echo"
version = "1.0"
colour = "blue"

[[skills]]
id = "echo"
description = ""

[[skills]]
id = "Bad!"
name = "Second"
description = "d"
examples = [1]

[limits]
memory_mib = true
"#;
    let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
    let expected = [
        "nexus.toml:1: agent.namespace: missing field `namespace`",
        "nexus.toml:1: agent.description: missing field `description`",
        "nexus.toml:2: agent.name: name `Echo` may only contain",
        "nexus.toml:3: agent.version: version `1.0` is not a semantic version",
        "nexus.toml:4: agent.colour: unknown field `colour`, expected one of `name`, `namespace`,",
        "nexus.toml:6: skills[0].name: missing field `name`",
        "nexus.toml:14: skills[1].examples[0]: invalid type: an integer, expected a string",
        "nexus.toml:17: limits.memory_mib: invalid type: a boolean, expected a non-negative integer",
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "got `{line}`, want `{want}…`\n{err}"
        );
    }

    // Once the structure is sound, every broken rule is reported, one per field.
    let text = FULL
        .replacen(
            r#"description = "Replies with what you said.""#,
            r#"description = "" "#,
            1,
        )
        .replacen(r#"id = "shout""#, r#"id = "echo""#, 1)
        .replacen("memory_mib = 64", "memory_mib = 0", 1)
        .replacen("fuel = 1000000000", "fuel = 0", 1);
    let fields: Vec<String> = parse(&text)
        .err()
        .map(|e| e.problems.into_iter().map(|p| p.field).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        [
            "agent.description",
            "skills[1].id",
            "limits.memory_mib",
            "limits.fuel"
        ]
    );
}

#[test]
fn other_layouts_still_name_the_field() {
    // Inline tables and dotted keys: the field path is exact, the line best effort.
    let text = r#"agent = { name = "echo", namespace = "Examples", version = "0.1.0", description = "d" }
skills = [{ id = "echo", name = "Echo", description = "d" }]
"#;
    let err = parse(text).err();
    assert_eq!(
        err.as_ref()
            .and_then(ManifestError::first)
            .map(|p| (p.field.as_str(), p.line)),
        Some(("agent.namespace", 1))
    );

    let text = r#"agent.name = "echo"
agent.namespace = "examples"
agent.version = "0.1.0"
agent.description = "d"
skills = [
  { id = "echo", name = "Echo", description = "d" },
  { id = "echo", name = "Again", description = "d" },
]
"#;
    let err = parse(text).err();
    assert_eq!(
        err.as_ref()
            .and_then(ManifestError::first)
            .map(|p| (p.field.as_str(), p.line)),
        Some(("skills[1].id", 7))
    );
}

#[test]
fn oversized_manifest_is_refused_before_parsing() {
    let text = format!("# {}\n", "x".repeat(MAX_MANIFEST_BYTES));
    let err = parse(&text).err();
    let first = err.as_ref().and_then(ManifestError::first);
    assert!(first.is_some_and(|p| p.line == 1 && p.message.contains("limit")));
}

#[test]
fn host_patterns() {
    for ok in [
        "https://api.example.com",
        "http://api.example.com:8080",
        "*://example.com",
        "https://*.example.com",
        "https://*",
        "http://127.0.0.1:*",
        "http://[::1]",
        "http://[::1]:8080",
        "https://EXAMPLE.com",
    ] {
        assert_eq!(check_host_pattern(ok), Ok(()), "{ok}");
    }
    for bad in [
        "example.com",
        "ftp://example.com",
        "https://",
        "https://:443",
        "https://exa*mple.com",
        "https://*.",
        "https://example.com:0",
        "https://example.com:99999",
        "https://example.com:+80",
        "https://example.com:",
        "https://example.com/",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com?q",
        "http://[::1",
        "http://[]",
        "http://[::1]x",
        "http://::1",
        "https://exa mple.com",
    ] {
        assert!(check_host_pattern(bad).is_err(), "{bad}");
    }
}

#[test]
fn media_types() {
    let path = [key("m")];
    for ok in [
        "text/plain",
        "application/json",
        "image/*",
        "application/vnd.a+json",
    ] {
        assert!(check_modes(&path, &[ok.to_owned()]).is_ok(), "{ok}");
    }
    for bad in [
        "text",
        "/plain",
        "text/",
        "text/plain; charset=utf-8",
        "a/b/c",
        " text/plain",
    ] {
        assert!(check_modes(&path, &[bad.to_owned()]).is_err(), "{bad}");
    }
}
