//! `[server.cors]`: which web origins may call the API from a browser.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Most origins one server allows: a list for people to keep, not a pattern language.
pub const MAX_CORS_ORIGINS: usize = 100;
/// How long browsers may cache a preflight answer by default: ten minutes, so a narrowed
/// policy reaches browsers soon.
pub const DEFAULT_CORS_MAX_AGE_SECS: u64 = 600;

/// `[server.cors]`: cross-origin requests from browsers. Strict by default: no origin is
/// allowed, so browsers refuse other sites' scripts; each allowed origin is named exactly
/// (`https://app.example.com`), never with wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose scripts may call the API.
    pub allowed_origins: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_age_secs: DEFAULT_CORS_MAX_AGE_SECS,
        }
    }
}

impl CorsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.allowed_origins.len() > MAX_CORS_ORIGINS {
            return Err(ConfigError::Invalid {
                key: "server.cors.allowed_origins",
                reason: format!("at most {MAX_CORS_ORIGINS} origins"),
            });
        }
        for origin in &self.allowed_origins {
            check_origin(origin).map_err(|reason| ConfigError::Invalid {
                key: "server.cors.allowed_origins",
                reason: format!("`{origin}`: {reason}"),
            })?;
        }
        if self.max_age_secs > 86_400 {
            return Err(ConfigError::Invalid {
                key: "server.cors.max_age_secs",
                reason: "at most 86400 (browsers cap it lower anyway)".into(),
            });
        }
        Ok(())
    }
}

/// An origin exactly as browsers send it: `http` or `https`, a host, an optional port, and
/// nothing else (no path, not even `/`, no user, query or fragment, no `*`).
fn check_origin(origin: &str) -> Result<(), String> {
    if origin.contains('*') {
        return Err("wildcards are not allowed; name each origin".into());
    }
    let url = url::Url::parse(origin).map_err(|e| format!("not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".into());
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err(format!(
            "write it as a browser sends it: `{canonical}` (no path, trailing slash or user)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_exact() {
        let config = |origins: &[&str]| CorsConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..CorsConfig::default()
        };
        for good in [
            &[][..],
            &["https://app.example.com"],
            &["http://localhost:3000", "https://a.example.org:8443"],
        ] {
            assert_eq!(config(good).validate().ok(), Some(()), "{good:?}");
        }
        for (bad, reason) in [
            ("*", "wildcards"),
            ("https://*.example.com", "wildcards"),
            ("https://app.example.com/", "write it as"),
            ("https://app.example.com/path", "write it as"),
            ("https://user@app.example.com", "write it as"),
            ("HTTPS://APP.example.com", "write it as"),
            ("ftp://files.example.com", "scheme"),
            ("app.example.com", "not an origin"),
            ("null", "not an origin"),
        ] {
            let err = config(&[bad]).validate().map(|()| String::new());
            let message = err.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(reason), "{bad}: {message}");
        }
        let too_many: Vec<String> = (0..=MAX_CORS_ORIGINS)
            .map(|i| format!("https://a{i}.example.com"))
            .collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(config(&refs).validate().is_err());
    }
}
