//! The shape of `nexus.toml`: every table and field, its type, whether it is required and the
//! rule it must follow ([`fields`]), and the structural check that reports every unknown key,
//! missing field and value of the wrong type at once ([`check_structure`]).
//!
//! [`fields`] is also the source of the manifest reference in `docs/manifest.md`: a test renders
//! it ([`reference_table`]) and compares it with the document, so the two cannot disagree.

use nexus_core::Name;
use toml_edit::{ImDocument, Item, TableLike, Value};

use super::{
    DEFAULT_MODE, MAX_DESCRIPTION_CHARS, MAX_EXAMPLE_CHARS, MAX_EXAMPLES, MAX_HOSTS, MAX_MODES,
    MAX_SKILL_ID_LEN, MAX_SKILL_NAME_CHARS, MAX_SKILLS, MAX_TAG_CHARS, MAX_TAGS, MEMORY_MIB_RANGE,
    Problem, Seg, TIMEOUT_SECS_RANGE, key, version_error,
};

/// The type of a manifest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A table (`[agent]`).
    Table,
    /// An array of tables (`[[skills]]`).
    TableList,
    /// A string.
    Text,
    /// A lowercase slug (see [`Name`]).
    Name,
    /// A semantic version string.
    Version,
    /// One of the run modes.
    Mode,
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    Integer,
    /// An array of strings.
    TextList,
}

impl FieldKind {
    /// How the reference names the type.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::TableList => "array of tables",
            Self::Text => "string",
            Self::Name => "name",
            Self::Version => "version",
            Self::Mode => "string",
            Self::Bool => "boolean",
            Self::Integer => "integer",
            Self::TextList => "array of strings",
        }
    }

    /// What a value of this kind looks like, for "invalid type" messages.
    fn expected(self) -> &'static str {
        match self {
            Self::Table => "a table",
            Self::TableList => "an array of tables",
            Self::Text | Self::Name | Self::Version | Self::Mode => "a string",
            Self::Bool => "a boolean",
            Self::Integer => "a non-negative integer",
            Self::TextList => "an array of strings",
        }
    }
}

/// One field of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Dotted path; fields of each `[[skills]]` entry are `skills[].id` and so on.
    pub path: &'static str,
    /// Its type.
    pub kind: FieldKind,
    /// Whether the manifest must have it.
    pub required: bool,
    /// What it is and the rule it follows, one line of Markdown.
    pub rule: String,
}

/// The run modes `agent.mode` accepts.
pub const MODES: &[&str] = &["serverless"];

/// Every table and field of `nexus.toml`, parents before their fields, in reference order.
pub fn fields() -> Vec<FieldSpec> {
    use FieldKind::*;
    let field = |path, kind, required, rule: String| FieldSpec {
        path,
        kind,
        required,
        rule,
    };
    let description = format!("1 to {MAX_DESCRIPTION_CHARS} characters, no control characters");
    let tags = format!(
        "search tags: at most {MAX_TAGS}, each 1 to {MAX_TAG_CHARS} characters without spaces"
    );
    let modes = |what: &str| {
        format!(
            "media types the agent {what} (`type/subtype`, no parameters), 1 to {MAX_MODES}; default `[\"{DEFAULT_MODE}\"]`"
        )
    };
    vec![
        field(
            "agent",
            Table,
            true,
            "who the agent is: its identity and listing".into(),
        ),
        field(
            "agent.name",
            Name,
            true,
            "package name: lowercase letters, digits and `-`, starting with a letter, not ending with `-`, at most 63 characters".into(),
        ),
        field(
            "agent.namespace",
            Name,
            true,
            "publisher namespace, same rules as `name`".into(),
        ),
        field(
            "agent.version",
            Version,
            true,
            "semantic version `MAJOR.MINOR.PATCH`, e.g. `0.1.0`".into(),
        ),
        field(
            "agent.description",
            Text,
            true,
            format!("one-paragraph summary, {description}"),
        ),
        field(
            "agent.mode",
            Mode,
            false,
            format!(
                "how the agent is run: {}; default `serverless` (a fresh instance per task)",
                quoted(MODES)
            ),
        ),
        field("agent.input_modes", TextList, false, modes("accepts")),
        field("agent.output_modes", TextList, false, modes("produces")),
        field("agent.tags", TextList, false, tags.clone()),
        field(
            "skills",
            TableList,
            true,
            format!(
                "what the agent can do, each an A2A skill and an MCP tool: at least 1, at most {MAX_SKILLS}"
            ),
        ),
        field(
            "skills[].id",
            Text,
            true,
            format!(
                "unique in the manifest: lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most {MAX_SKILL_ID_LEN} characters"
            ),
        ),
        field(
            "skills[].name",
            Text,
            true,
            format!("display name, 1 to {MAX_SKILL_NAME_CHARS} characters"),
        ),
        field(
            "skills[].description",
            Text,
            true,
            format!("what the skill does, {description}"),
        ),
        field("skills[].tags", TextList, false, tags),
        field(
            "skills[].examples",
            TextList,
            false,
            format!(
                "example requests: at most {MAX_EXAMPLES}, each 1 to {MAX_EXAMPLE_CHARS} characters"
            ),
        ),
        field(
            "skills[].input_schema",
            Text,
            false,
            "JSON Schema of the input, written as a string holding a JSON object".into(),
        ),
        field(
            "capabilities",
            Table,
            false,
            "what the agent may ask for; everything defaults to denied, and grants at deploy may not exceed it".into(),
        ),
        field(
            "capabilities.state",
            Bool,
            false,
            "key-value state per session (`nexus:agent/state`); default `false`".into(),
        ),
        field(
            "capabilities.llm",
            Bool,
            false,
            "the platform's language model (`nexus:agent/llm`); default `false`".into(),
        ),
        field(
            "capabilities.agents",
            Bool,
            false,
            "calling other agents (`nexus:agent/agents`); default `false`".into(),
        ),
        field(
            "capabilities.bus",
            Bool,
            false,
            "the message bus (`nexus:agent/bus`); default `false`".into(),
        ),
        field(
            "capabilities.hosts",
            TextList,
            false,
            format!(
                "outbound HTTP destinations, at most {MAX_HOSTS} patterns `scheme://host[:port]`: scheme `http`, `https` or `*`; host a name, an IP literal (IPv6 in brackets), `*.domain` or `*`; port a number or `*`; no path"
            ),
        ),
        field(
            "limits",
            Table,
            false,
            "resource limits the agent needs; absent values take the platform's defaults".into(),
        ),
        field(
            "limits.memory_mib",
            Integer,
            false,
            format!(
                "linear memory in MiB, {}..={}",
                MEMORY_MIB_RANGE.start(),
                MEMORY_MIB_RANGE.end()
            ),
        ),
        field(
            "limits.timeout_secs",
            Integer,
            false,
            format!(
                "wall-clock time per task in seconds, {}..={}",
                TIMEOUT_SECS_RANGE.start(),
                TIMEOUT_SECS_RANGE.end()
            ),
        ),
        field(
            "limits.fuel",
            Integer,
            false,
            "fuel (roughly, instructions) per task, at least 1".into(),
        ),
    ]
}

/// The reference table of `docs/manifest.md`, rendered from [`fields`].
pub fn reference_table() -> String {
    let mut out = String::from("| field | type | required | rule |\n|---|---|---|---|\n");
    for spec in fields() {
        let required = if spec.required {
            "required"
        } else {
            "optional"
        };
        out.push_str(&format!(
            "| `{}` | {} | {required} | {} |\n",
            spec.path,
            spec.kind.describe(),
            spec.rule
        ));
    }
    out
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every unknown key, missing required field and value of the wrong type in `doc`, in document
/// order of the tables. Values of the right type are checked further by `validate`.
pub(super) fn check_structure(doc: &ImDocument<&str>) -> Vec<Problem> {
    let specs = fields();
    let mut problems = Vec::new();
    check_table(doc.as_table(), "", &[], &specs, &mut problems);
    problems
}

/// Checks the keys of `table`, whose fields are the specs under `prefix` (`""` for the root,
/// `agent.`, `skills[].`), found at `path`.
fn check_table(
    table: &dyn TableLike,
    prefix: &str,
    path: &[Seg],
    specs: &[FieldSpec],
    problems: &mut Vec<Problem>,
) {
    let own: Vec<&FieldSpec> = specs
        .iter()
        .filter(|s| {
            s.path
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(['.', '[']))
        })
        .collect();
    let name_of = |spec: &FieldSpec| &spec.path[prefix.len()..];
    let at = |name: &str| {
        let mut p = path.to_vec();
        p.push(key(name));
        p
    };
    for (name, item) in table.iter() {
        match own.iter().find(|s| name_of(s) == name) {
            Some(spec) => check_item(item, spec, &at(name), specs, problems),
            None => {
                let expected = own
                    .iter()
                    .map(|s| format!("`{}`", name_of(s)))
                    .collect::<Vec<_>>()
                    .join(", ");
                problems.push(Problem {
                    path: at(name),
                    message: format!(
                        "unknown field `{}`, expected one of {expected}",
                        super::shorten(name)
                    ),
                });
            }
        }
    }
    for spec in own.iter().filter(|s| s.required) {
        let name = name_of(spec);
        if table.get(name).is_none() {
            let message = match spec.kind {
                FieldKind::TableList => format!("at least one [[{name}]] entry is required"),
                FieldKind::Table => format!("missing field `{name}` (a [{name}] table)"),
                _ => format!("missing field `{name}`"),
            };
            problems.push(Problem {
                path: at(name),
                message,
            });
        }
    }
}

fn check_item(
    item: &Item,
    spec: &FieldSpec,
    path: &[Seg],
    specs: &[FieldSpec],
    problems: &mut Vec<Problem>,
) {
    let wrong_type = |found: &str| Problem {
        path: path.to_vec(),
        message: format!("invalid type: {found}, expected {}", spec.kind.expected()),
    };
    match spec.kind {
        FieldKind::Table => match item.as_table_like() {
            Some(table) => {
                let prefix = format!("{}.", spec.path);
                check_table(table, &prefix, path, specs, problems);
            }
            None => problems.push(wrong_type(found(item))),
        },
        FieldKind::TableList => {
            let prefix = format!("{}[].", spec.path);
            let entry_path = |i: usize| {
                let mut p = path.to_vec();
                p.push(Seg::Index(i));
                p
            };
            match item {
                Item::ArrayOfTables(tables) => {
                    for (i, table) in tables.iter().enumerate() {
                        check_table(table, &prefix, &entry_path(i), specs, problems);
                    }
                }
                Item::Value(Value::Array(array)) => {
                    for (i, value) in array.iter().enumerate() {
                        match value.as_inline_table() {
                            Some(table) => {
                                check_table(table, &prefix, &entry_path(i), specs, problems);
                            }
                            None => problems.push(Problem {
                                path: entry_path(i),
                                message: format!(
                                    "invalid type: {}, expected a table",
                                    found_value(value)
                                ),
                            }),
                        }
                    }
                }
                _ => problems.push(wrong_type(found(item))),
            }
        }
        FieldKind::Text | FieldKind::Name | FieldKind::Version | FieldKind::Mode => {
            let Some(text) = item.as_str() else {
                problems.push(wrong_type(found(item)));
                return;
            };
            let refused = match spec.kind {
                FieldKind::Name => Name::parse(text).err().map(|e| e.to_string()),
                FieldKind::Version => semver::Version::parse(text)
                    .err()
                    .map(|e| version_error(text, &e)),
                FieldKind::Mode => (!MODES.contains(&text)).then(|| {
                    format!(
                        "unknown variant `{}`, expected {}",
                        super::shorten(text),
                        quoted(MODES)
                    )
                }),
                _ => None,
            };
            if let Some(message) = refused {
                problems.push(Problem {
                    path: path.to_vec(),
                    message,
                });
            }
        }
        FieldKind::Bool => {
            if item.as_bool().is_none() {
                problems.push(wrong_type(found(item)));
            }
        }
        FieldKind::Integer => match item.as_integer() {
            Some(n) if n >= 0 => {}
            Some(n) => problems.push(Problem {
                path: path.to_vec(),
                message: format!("invalid value: {n}, expected a non-negative integer"),
            }),
            None => problems.push(wrong_type(found(item))),
        },
        FieldKind::TextList => match item.as_array() {
            Some(array) => {
                for (i, value) in array.iter().enumerate() {
                    if value.as_str().is_none() {
                        let mut p = path.to_vec();
                        p.push(Seg::Index(i));
                        problems.push(Problem {
                            path: p,
                            message: format!(
                                "invalid type: {}, expected a string",
                                found_value(value)
                            ),
                        });
                    }
                }
            }
            None => problems.push(wrong_type(found(item))),
        },
    }
}

/// What `item` is, for "invalid type" messages.
fn found(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(value) => found_value(value),
    }
}

fn found_value(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}
