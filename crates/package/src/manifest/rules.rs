//! The rules a manifest whose structure is sound must follow: lengths, media types, skill ids,
//! host patterns and limit ranges. [`validate`] reports every broken rule, one per field.

use std::collections::HashSet;

use super::{
    Check, DEFAULT_MODE, MAX_DESCRIPTION_CHARS, MAX_EXAMPLE_CHARS, MAX_EXAMPLES, MAX_HOSTS,
    MAX_MODES, MAX_SKILL_ID_LEN, MAX_SKILL_NAME_CHARS, MAX_SKILLS, MAX_TAG_CHARS, MAX_TAGS,
    MEMORY_MIB_RANGE, Manifest, Problem, Seg, Skill, TIMEOUT_SECS_RANGE, fail, join, key, shorten,
};

/// Every rule `manifest` breaks, at most one per field.
pub(super) fn validate(manifest: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut note = |check: Check| {
        if let Err(problem) = check {
            problems.push(problem);
        }
    };
    let agent = &manifest.agent;
    let at = |k: &str| vec![key("agent"), key(k)];
    note(check_text(
        at("description"),
        &agent.description,
        MAX_DESCRIPTION_CHARS,
    ));
    note(check_modes(&at("input_modes"), &agent.input_modes));
    note(check_modes(&at("output_modes"), &agent.output_modes));
    note(check_tags(&at("tags"), &agent.tags));

    if manifest.skills.is_empty() {
        note(fail(
            vec![key("skills")],
            "at least one [[skills]] entry is required",
        ));
    }
    if manifest.skills.len() > MAX_SKILLS {
        note(fail(
            vec![key("skills"), Seg::Index(MAX_SKILLS)],
            format!(
                "{} skills; the limit is {MAX_SKILLS}",
                manifest.skills.len()
            ),
        ));
    }
    let mut ids = HashSet::new();
    for (i, skill) in manifest.skills.iter().enumerate() {
        let base = [key("skills"), Seg::Index(i)];
        for check in check_skill(&base, skill) {
            note(check);
        }
        if !ids.insert(skill.id.as_str()) {
            note(fail(
                join(&base, [key("id")]),
                format!("skill id `{}` is used by an earlier skill", skill.id),
            ));
        }
    }

    let hosts = &manifest.capabilities.hosts;
    let base = [key("capabilities"), key("hosts")];
    if hosts.len() > MAX_HOSTS {
        note(fail(
            join(&base, [Seg::Index(MAX_HOSTS)]),
            format!("{} host patterns; the limit is {MAX_HOSTS}", hosts.len()),
        ));
    }
    for (i, pattern) in hosts.iter().enumerate() {
        if let Err(reason) = check_host_pattern(pattern) {
            note(fail(
                join(&base, [Seg::Index(i)]),
                format!("invalid host pattern `{}`: {reason}", shorten(pattern)),
            ));
        }
    }

    let limits = &manifest.limits;
    if let Some(mib) = limits.memory_mib
        && !MEMORY_MIB_RANGE.contains(&mib)
    {
        note(fail(
            vec![key("limits"), key("memory_mib")],
            format!(
                "{mib} is out of range {}..={}",
                MEMORY_MIB_RANGE.start(),
                MEMORY_MIB_RANGE.end()
            ),
        ));
    }
    if let Some(secs) = limits.timeout_secs
        && !TIMEOUT_SECS_RANGE.contains(&secs)
    {
        note(fail(
            vec![key("limits"), key("timeout_secs")],
            format!(
                "{secs} is out of range {}..={}",
                TIMEOUT_SECS_RANGE.start(),
                TIMEOUT_SECS_RANGE.end()
            ),
        ));
    }
    if limits.fuel == Some(0) {
        note(fail(
            vec![key("limits"), key("fuel")],
            "fuel must be at least 1",
        ));
    }
    problems
}

/// The checks of one skill's fields, one result per field.
fn check_skill(base: &[Seg], skill: &Skill) -> Vec<Check> {
    let at = |k: &str| join(base, [key(k)]);
    let id = check_skill_id(&skill.id).or_else(|reason| {
        fail(
            at("id"),
            format!("skill id `{}` {reason}", shorten(&skill.id)),
        )
    });
    let examples = || {
        if skill.examples.len() > MAX_EXAMPLES {
            return fail(
                join(base, [key("examples"), Seg::Index(MAX_EXAMPLES)]),
                format!(
                    "{} examples; the limit is {MAX_EXAMPLES}",
                    skill.examples.len()
                ),
            );
        }
        for (i, example) in skill.examples.iter().enumerate() {
            check_text(
                join(base, [key("examples"), Seg::Index(i)]),
                example,
                MAX_EXAMPLE_CHARS,
            )?;
        }
        Ok(())
    };
    let schema = || match skill
        .input_schema
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        None | Some(Ok(serde_json::Value::Object(_))) => Ok(()),
        Some(Ok(_)) => fail(
            at("input_schema"),
            "the input schema must be a JSON object (a JSON Schema), given as a string",
        ),
        Some(Err(e)) => fail(
            at("input_schema"),
            format!("the input schema is not valid JSON: {e}"),
        ),
    };
    vec![
        id,
        check_text(at("name"), &skill.name, MAX_SKILL_NAME_CHARS),
        check_text(at("description"), &skill.description, MAX_DESCRIPTION_CHARS),
        check_tags(&at("tags"), &skill.tags),
        examples(),
        schema(),
    ]
}

/// Free text: not blank, at most `max` characters, no control characters but newlines and tabs.
fn check_text(path: Vec<Seg>, text: &str, max: usize) -> Check {
    if text.trim().is_empty() {
        return fail(path, "must not be empty");
    }
    let len = text.chars().count();
    if len > max {
        return fail(
            path,
            format!("is {len} characters long; the limit is {max}"),
        );
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return fail(path, "must not contain control characters");
    }
    Ok(())
}

fn check_tags(base: &[Seg], tags: &[String]) -> Check {
    if tags.len() > MAX_TAGS {
        return fail(
            join(base, [Seg::Index(MAX_TAGS)]),
            format!("{} tags; the limit is {MAX_TAGS}", tags.len()),
        );
    }
    for (i, tag) in tags.iter().enumerate() {
        let path = join(base, [Seg::Index(i)]);
        let len = tag.chars().count();
        if len == 0 || len > MAX_TAG_CHARS {
            return fail(
                path,
                format!("a tag must be 1 to {MAX_TAG_CHARS} characters long"),
            );
        }
        if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail(
                path,
                format!(
                    "tag `{}` must not contain spaces or control characters",
                    shorten(tag)
                ),
            );
        }
    }
    Ok(())
}

/// Media types `type/subtype`, each part an HTTP token (RFC 9110), no parameters.
pub(super) fn check_modes(base: &[Seg], modes: &[String]) -> Check {
    if modes.is_empty() {
        return fail(
            base.to_vec(),
            format!("must name at least one media type, e.g. `{DEFAULT_MODE}`"),
        );
    }
    if modes.len() > MAX_MODES {
        return fail(
            join(base, [Seg::Index(MAX_MODES)]),
            format!("{} media types; the limit is {MAX_MODES}", modes.len()),
        );
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    for (i, mode) in modes.iter().enumerate() {
        let valid = mode
            .split_once('/')
            .is_some_and(|(kind, sub)| token(kind) && token(sub));
        if !valid {
            return fail(
                join(base, [Seg::Index(i)]),
                format!(
                    "`{}` is not a media type like `text/plain` (type/subtype, no parameters)",
                    shorten(mode)
                ),
            );
        }
    }
    Ok(())
}

/// `[a-z0-9][a-z0-9_-]{0,63}`.
fn check_skill_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("is empty");
    }
    if id.len() > MAX_SKILL_ID_LEN {
        return Err("is longer than 64 characters");
    }
    let first_ok = id
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(
            "may only contain lowercase letters a-z, digits, '_' and '-', and must start with a letter or digit",
        )
    }
}

/// Shape of an outbound host pattern `scheme://host[:port]`, with the same rules as the
/// runtime's outbound policy (`nexus-host`), except that no path at all is accepted, not even
/// a trailing `/`.
pub(super) fn check_host_pattern(pattern: &str) -> Result<(), &'static str> {
    let (scheme, rest) = pattern
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    if !matches!(scheme, "http" | "https" | "*") {
        return Err("scheme must be http, https or *");
    }
    if rest.contains(['/', '@', '?', '#']) {
        return Err("only scheme, host and port are allowed (no path, user or query)");
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed [")?;
        if addr.is_empty() || !addr.contains(':') {
            return Err("expected an IPv6 address between [ and ]");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected :port after ]")?),
        };
        (addr, port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host != "*" {
        let name = host.strip_prefix("*.").unwrap_or(host);
        if name.is_empty() || name.contains('*') {
            return Err("wildcards are `*` or `*.domain`");
        }
        if name.contains(':') && !rest.starts_with('[') {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]");
        }
    }
    match port {
        None | Some("*") => Ok(()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err("port must be 1-65535 or *"),
        },
    }
}
