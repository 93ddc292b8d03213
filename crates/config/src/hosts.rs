//! `[server] allowed_hosts`: the names the server answers to, against DNS rebinding.
//!
//! A DNS rebinding attack points a name the attacker owns at this server, so the victim's
//! browser sends that name as `Host`. Refusing every name the server was not told about
//! defeats it. IP literals and `localhost` are always served: a browser only sends one when
//! the page itself was loaded from that address, which no remote attacker controls.

use crate::ConfigError;

/// The entry that lets any `Host` through: for a server behind a proxy that rewrites `Host`
/// and checks names itself.
pub const ANY_HOST: &str = "*";
/// Most names one server allows: a list for people to keep, not a pattern language.
pub const MAX_ALLOWED_HOSTS: usize = 100;
/// Longest DNS name (RFC 1035 §2.3.4), the limit of one entry.
pub const MAX_HOST_NAME_LEN: usize = 253;

/// Checks `[server] allowed_hosts`: each entry is `*`, a DNS name (`api.example.com`), or
/// `*.` and a name (any name below it, not the name itself), written without scheme or port.
pub(crate) fn validate(hosts: &[String]) -> Result<(), ConfigError> {
    const KEY: &str = "server.allowed_hosts";
    if hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(ConfigError::Invalid {
            key: KEY,
            reason: format!("at most {MAX_ALLOWED_HOSTS} names"),
        });
    }
    for host in hosts {
        check_entry(host).map_err(|reason| ConfigError::Invalid {
            key: KEY,
            reason: format!("`{host}`: {reason}"),
        })?;
    }
    Ok(())
}

fn check_entry(entry: &str) -> Result<(), String> {
    if entry == ANY_HOST {
        return Ok(());
    }
    if entry.starts_with('[') {
        return Err("IP literals are always allowed; list names only".into());
    }
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.contains('*') {
        return Err("a wildcard is either `*` alone or a leading `*.`".into());
    }
    if name.contains("://") || name.contains(':') || name.contains('/') {
        return Err("write the name alone, without scheme, port or path".into());
    }
    if is_dns_name(name) {
        Ok(())
    } else {
        Err(format!(
            "not a host name (letters, digits, `-`, `_` and `.`, labels of 1 to 63, \
             at most {MAX_HOST_NAME_LEN} in all)"
        ))
    }
}

/// Whether `name` is a DNS name as `Host` carries one: dot-separated labels of 1 to 63 ASCII
/// letters, digits, `-` or `_` (underscores appear in internal names), at most
/// [`MAX_HOST_NAME_LEN`] bytes. One trailing dot (the fully qualified form) is allowed.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_HOST_NAME_LEN
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_names_or_wildcards() {
        for good in [
            "*",
            "nexus.example.com",
            "NEXUS.Example.com",
            "nexus.example.com.",
            "*.nexus.example.com",
            "my_host",
            "localhost",
            "10.0.0.1",
        ] {
            assert_eq!(
                validate(&[good.to_owned()]).ok(),
                Some(()),
                "{good} is allowed"
            );
        }
        for (bad, reason) in [
            ("", "not a host name"),
            ("nexus.example.com:7700", "without scheme, port"),
            ("https://nexus.example.com", "without scheme, port"),
            ("nexus.example.com/x", "without scheme, port"),
            ("[::1]", "always allowed"),
            ("*example.com", "wildcard"),
            ("nexus.*.com", "wildcard"),
            ("*.*", "wildcard"),
            ("a..b", "not a host name"),
            ("bad name", "not a host name"),
            ("é.example.com", "not a host name"),
        ] {
            let message = validate(&[bad.to_owned()])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains(reason), "{bad:?}: {message}");
        }
        let label = "a".repeat(64);
        assert!(validate(&[label]).is_err(), "a label is at most 63");
        let long = vec!["a".repeat(50); 6].join(".");
        assert!(validate(&[long]).is_err(), "a name is at most 253");
        let too_many = vec!["a.example.com".to_owned(); MAX_ALLOWED_HOSTS + 1];
        assert!(validate(&too_many).is_err());
    }
}
