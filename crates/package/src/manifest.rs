//! The authoring manifest `nexus.toml`: schema, parsing, validation, and errors that point at
//! the line and field at fault.

use std::fmt;
use std::ops::{Range, RangeInclusive};

use nexus_core::{Name, PackageRef};
use serde::{Deserialize, Deserializer, Serialize};
use toml_edit::{ImDocument, Item, Table, Value};

/// Name of the manifest at the root of an agent project and inside a package.
pub const MANIFEST_FILE: &str = "nexus.toml";
/// Largest manifest accepted. A manifest is a page of TOML; even with JSON Schemas for many
/// skills it stays far below this, and parsing is bounded by it.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Longest agent or skill description, in characters: a description is a listing's summary,
/// not its documentation (that is the README).
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest skill name, in characters (a display title).
pub const MAX_SKILL_NAME_CHARS: usize = 100;
/// Longest skill id: `[a-z0-9][a-z0-9_-]{0,63}`. Ids appear in agent cards and as tool names.
pub const MAX_SKILL_ID_LEN: usize = 64;
/// Most skills per agent: each becomes an entry of the agent card and an MCP tool.
pub const MAX_SKILLS: usize = 64;
/// Most tags per agent or skill; tags are search filters, not prose.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;
/// Most examples per skill.
pub const MAX_EXAMPLES: usize = 20;
/// Longest example, in characters.
pub const MAX_EXAMPLE_CHARS: usize = 1000;
/// Most input or output modes (media types) per agent.
pub const MAX_MODES: usize = 16;
/// Most outbound host patterns an agent may ask for.
pub const MAX_HOSTS: usize = 64;
/// Accepted `limits.memory_mib`: at least one page of linear memory, at most 4 GiB (the wasm32
/// address space).
pub const MEMORY_MIB_RANGE: RangeInclusive<u32> = 1..=4096;
/// Accepted `limits.timeout_secs`: up to an hour; longer work belongs in several tasks.
pub const TIMEOUT_SECS_RANGE: RangeInclusive<u32> = 1..=3600;
/// Input and output mode when the manifest names none.
pub const DEFAULT_MODE: &str = "text/plain";

/// A parsed and validated `nexus.toml`.
///
/// Produced by [`parse_manifest`]; constructing one by hand skips validation. Serializes to
/// the JSON stored with the package ([`Manifest::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[agent]`: identity and listing.
    pub agent: AgentSection,
    /// `[[skills]]`: what the agent can do; at least one.
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// `[capabilities]`: what the agent may ask for. Grants at deploy time may not exceed this.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// `[limits]`: overrides of the platform's default resource limits.
    #[serde(default)]
    pub limits: Limits,
}

/// `[agent]`: who the agent is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Package name, a lowercase slug (`[a-z][a-z0-9-]{0,62}`, not ending in `-`).
    pub name: Name,
    /// Publisher namespace, same rules as `name`.
    pub namespace: Name,
    /// Semantic version of this package.
    #[serde(deserialize_with = "deserialize_version")]
    pub version: semver::Version,
    /// One-paragraph summary, 1 to [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
    /// How the agent is run.
    #[serde(default)]
    pub mode: Mode,
    /// Media types the agent accepts (A2A `defaultInputModes`).
    #[serde(default = "default_modes")]
    pub input_modes: Vec<String>,
    /// Media types the agent produces (A2A `defaultOutputModes`).
    #[serde(default = "default_modes")]
    pub output_modes: Vec<String>,
    /// Search tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// How the platform runs an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A fresh instance per task; state lives in the `state` capability. The only mode so far.
    #[default]
    Serverless,
}

/// One `[[skills]]` entry: a thing the agent can do (an A2A skill, an MCP tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    /// Unique within the manifest: `[a-z0-9][a-z0-9_-]{0,63}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the skill does, 1 to [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
    /// Search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Example requests.
    #[serde(default)]
    pub examples: Vec<String>,
    /// JSON Schema of the input, as JSON text; it must be a JSON object. Kept as written, see
    /// [`Skill::input_schema_json`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<String>,
}

impl Skill {
    /// The input schema parsed as a JSON object; `None` when absent (or, for a manifest built
    /// by hand, not an object).
    pub fn input_schema_json(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let text = self.input_schema.as_deref()?;
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    }
}

/// `[capabilities]`: what the agent may ask for. Everything defaults to denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Key-value state (`nexus:agent/state`).
    pub state: bool,
    /// The platform's language model (`nexus:agent/llm`).
    pub llm: bool,
    /// Calling other agents (`nexus:agent/agents`).
    pub agents: bool,
    /// Publishing and subscribing on the message bus (`nexus:agent/bus`).
    pub bus: bool,
    /// Outbound HTTP destinations, `scheme://host[:port]` patterns (scheme `http`, `https` or
    /// `*`; host a name, an IP literal, `*.domain` or `*`; port a number or `*`).
    pub hosts: Vec<String>,
}

impl Capabilities {
    /// The host capabilities asked for, by the names grants use (`state`, `llm`, `agents`,
    /// `bus`), in that order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.state, "state"),
            (self.llm, "llm"),
            (self.agents, "agents"),
            (self.bus, "bus"),
        ]
        .into_iter()
        .filter_map(|(wanted, name)| wanted.then_some(name))
        .collect()
    }
}

/// `[limits]`: resource limits the agent needs; absent values take the platform defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory, MiB, within [`MEMORY_MIB_RANGE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Wall-clock time per task, seconds, within [`TIMEOUT_SECS_RANGE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    /// Fuel (instructions, roughly) per task, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

impl Manifest {
    /// `namespace/name@version` of the package this manifest describes.
    pub fn package_ref(&self) -> PackageRef {
        PackageRef {
            namespace: self.agent.namespace.clone(),
            name: self.agent.name.clone(),
            version: self.agent.version.clone(),
        }
    }

    /// The manifest as JSON, as stored with the package metadata. Deserializing it gives the
    /// manifest back.
    pub fn to_json(&self) -> serde_json::Value {
        // Cannot fail: every field is a string, bool, number, list or struct with string keys.
        serde_json::to_value(self).unwrap_or_default()
    }
}

fn default_modes() -> Vec<String> {
    vec![DEFAULT_MODE.to_owned()]
}

fn deserialize_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<semver::Version, D::Error> {
    let text = String::deserialize(deserializer)?;
    semver::Version::parse(&text).map_err(|e| serde::de::Error::custom(version_error(&text, &e)))
}

fn version_error(text: &str, e: &semver::Error) -> String {
    format!(
        "version `{}` is not a semantic version (MAJOR.MINOR.PATCH, e.g. 0.1.0): {e}",
        shorten(text)
    )
}

/// Why a manifest was rejected: every problem found, each with its line and field.
///
/// Displays one problem per line as `file:line: field: message` (`file:line: message` when no
/// field applies, as for TOML syntax errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file name given to [`parse_manifest`].
    pub file: String,
    /// What is wrong, in line order; never empty.
    pub problems: Vec<ManifestProblem>,
}

/// One thing wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// 1-based line of the problem: the offending key or value, or the closest enclosing table
    /// header when the key is missing.
    pub line: usize,
    /// Dotted path of the field, like `agent.name` or `skills[0].id`; empty for syntax errors.
    pub field: String,
    /// What is wrong, in one line.
    pub message: String,
}

impl ManifestError {
    /// An error of one problem.
    pub fn single(file: &str, line: usize, field: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            problems: vec![ManifestProblem {
                line,
                field: field.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// The problem that comes first in the file.
    pub fn first(&self) -> Option<&ManifestProblem> {
        self.problems.first()
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: ", self.file, problem.line)?;
            if !problem.field.is_empty() {
                write!(f, "{}: ", problem.field)?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Parses and validates a manifest. `file_name` is only used in errors.
///
/// Reports every problem at once: first the structure (each unknown key, missing required
/// field and value of the wrong type, see [`fields`]), then, when the structure is sound, the
/// rules: description lengths, media types, at least one skill, unique skill ids, skill input
/// schemas being JSON objects, host pattern shapes and limit ranges. A TOML syntax error or an
/// oversized file is reported alone.
pub fn parse_manifest(file_name: &str, text: &str) -> Result<Manifest, ManifestError> {
    let error = |line: usize, field: String, message: String| {
        ManifestError::single(file_name, line, &field, message)
    };
    let placed = |doc: &ImDocument<&str>, mut problems: Vec<Problem>| {
        let mut placed: Vec<ManifestProblem> = problems
            .drain(..)
            .map(|problem| ManifestProblem {
                line: locate(doc, text, &problem.path),
                field: render(&problem.path),
                message: problem.message,
            })
            .collect();
        placed.sort_by_key(|p| p.line);
        ManifestError {
            file: file_name.to_owned(),
            problems: placed,
        }
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(error(
            1,
            String::new(),
            format!(
                "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                text.len()
            ),
        ));
    }
    let doc = ImDocument::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_at(text, span.start));
        error(line, String::new(), one_line(e.message()))
    })?;
    let problems = schema::check_structure(&doc);
    if !problems.is_empty() {
        return Err(placed(&doc, problems));
    }
    let manifest: Manifest = serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| {
            let mut path: Vec<Seg> = e
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        Some(Seg::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let inner = e.inner();
            let message = one_line(inner.message());
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|prefix| message.strip_prefix(prefix))
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| key.to_owned());
            if let Some(key) = named
                && path.last() != Some(&Seg::Key(key.clone()))
            {
                path.push(Seg::Key(key));
            }
            let line = inner.span().map_or_else(
                || locate(&doc, text, &path),
                |span| line_at(text, span.start),
            );
            error(line, render(&path), message)
        })?;
    let problems = validate(&manifest);
    if !problems.is_empty() {
        return Err(placed(&doc, problems));
    }
    Ok(manifest)
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn key(name: &str) -> Seg {
    Seg::Key(name.to_owned())
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Line of the field at `path`: the key (or array element) if present, otherwise the closest
/// enclosing table header or key that is; line 1 if none.
fn locate(doc: &ImDocument<&str>, text: &str, path: &[Seg]) -> usize {
    enum Node<'a> {
        Item(&'a Item),
        Table(&'a Table),
        Value(&'a Value),
    }
    type Step<'a> = (Option<Range<usize>>, Node<'a>);

    fn by_key<'a>(node: &Node<'a>, name: &str) -> Option<Step<'a>> {
        let (k, item) = match node {
            Node::Table(t) => t.get_key_value(name)?,
            Node::Item(i) => i.as_table_like()?.get_key_value(name)?,
            Node::Value(v) => v.as_inline_table()?.get_key_value(name)?,
        };
        Some((k.span().or_else(|| item.span()), Node::Item(item)))
    }

    fn by_index<'a>(node: &Node<'a>, index: usize) -> Option<Step<'a>> {
        let array = match node {
            Node::Item(Item::ArrayOfTables(tables)) => {
                let table = tables.get(index)?;
                return Some((table.span(), Node::Table(table)));
            }
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => a,
            _ => return None,
        };
        let value = array.get(index)?;
        Some((value.span(), Node::Value(value)))
    }

    let mut node = Node::Table(doc.as_table());
    let mut offset = None;
    for seg in path {
        let step = match seg {
            Seg::Key(k) => by_key(&node, k),
            Seg::Index(i) => by_index(&node, *i),
        };
        let Some((span, next)) = step else { break };
        if let Some(span) = span {
            offset = Some(span.start);
        }
        node = next;
    }
    offset.map_or(1, |o| line_at(text, o))
}

/// A validation failure before it is placed in the text.
struct Problem {
    path: Vec<Seg>,
    message: String,
}

type Check = Result<(), Problem>;

fn fail(path: Vec<Seg>, message: impl Into<String>) -> Check {
    Err(Problem {
        path,
        message: message.into(),
    })
}

fn join(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// Up to 64 characters of `text`, for quoting user input in messages.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 64;
    let mut out: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        out.push('…');
    }
    out
}

mod rules;
mod schema;

use rules::validate;
#[cfg(test)]
use rules::{check_host_pattern, check_modes};

pub use schema::{FieldKind, FieldSpec, MODES, fields, reference_table};

#[cfg(test)]
mod tests;
