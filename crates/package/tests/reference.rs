//! The manifest reference `docs/manifest.md` and the validator cannot disagree: its field table
//! is rendered from the validator's own field list, and its examples must parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- fields:begin -->\n";
const END: &str = "<!-- fields:end -->";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_field_table_is_the_validators() {
    let path = repo().join("docs/manifest.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = doc.find(END).expect("the end marker");
    let wanted = nexus_package::reference_table();
    if doc[start..end] == wanted {
        return;
    }
    if std::env::var_os("NEXUS_BLESS").is_some() {
        let updated = format!("{}{wanted}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/manifest.md's field table differs from the validator's fields; \
         rerun with NEXUS_BLESS=1 to rewrite it, and review the diff"
    );
}

/// Every field the validator knows is in the table, and each type and requirement is
/// what parsing actually enforces: dropping a required field is refused, naming it.
#[test]
fn required_fields_are_required_and_optional_ones_are_not() {
    let minimal = "[agent]\nname = \"hello\"\nnamespace = \"me\"\nversion = \"0.1.0\"\n\
                   description = \"d\"\n\n[[skills]]\nid = \"hello\"\nname = \"Hello\"\n\
                   description = \"d\"\n";
    nexus_package::parse_manifest("nexus.toml", minimal).unwrap();
    for spec in nexus_package::fields() {
        let leaf = spec.path.rsplit(['.', ']']).next().unwrap();
        let line_of = |l: &str| l.split('=').next().unwrap().trim() == leaf;
        let present = minimal.lines().any(line_of);
        assert_eq!(
            present,
            spec.required && !spec.path.ends_with("agent") && spec.path != "skills",
            "{}: the minimal manifest has exactly the required fields",
            spec.path
        );
        if !present {
            continue;
        }
        let without: String = minimal
            .lines()
            .filter(|l| !line_of(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = nexus_package::parse_manifest("nexus.toml", &without).unwrap_err();
        let field = spec.path.replace("[]", "[0]");
        assert!(
            err.problems
                .iter()
                .any(|p| p.field == field && p.message.contains("missing")),
            "{}: {err}",
            spec.path
        );
    }
}

#[test]
fn the_documented_and_example_manifests_parse() {
    let doc = std::fs::read_to_string(repo().join("docs/manifest.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2, "the complete and the smallest example");
    for block in blocks {
        nexus_package::parse_manifest("docs/manifest.md", block).unwrap();
    }
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let manifest = entry.unwrap().path().join("nexus.toml");
        if manifest.exists() {
            let text = std::fs::read_to_string(&manifest).unwrap();
            nexus_package::parse_manifest(&manifest.display().to_string(), &text)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
