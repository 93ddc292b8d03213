//! Identity primitives that need no IO: API key secrets, bearer credentials and, in [`jwt`],
//! OpenID Connect tokens verified against a key set someone else fetched.
//!
//! An API key is `nxk_` followed by 43 base64url characters (256 random bits). The platform
//! stores only its sha256 ([`hash_key`]): a key has full entropy, so a fast hash is as strong
//! as a slow one here, and a lookup by hash costs one indexed read. Passwords, which people
//! choose, are another matter: argon2id, in [`password`].

use base64::Engine;
use sha2::{Digest, Sha256};

/// Every key the platform makes starts with this, so scanners and people recognise one.
pub const KEY_PREFIX: &str = "nxk_";
/// Random bytes in a key: 256 bits, beyond guessing.
const KEY_RANDOM_BYTES: usize = 32;
/// Characters of a key shown in listings to recognise it (the prefix and 8 more).
pub const SHOWN_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;
/// Shortest key accepted from outside (`NEXUS_BOOTSTRAP_API_KEY`): 128 bits of base64.
pub const MIN_KEY_LEN: usize = 22;
/// Longest API key accepted; a longer non-JWT credential is refused without a lookup.
pub const MAX_CREDENTIAL_LEN: usize = 512;
/// Longest credential read from an `Authorization` header, anything longer is refused unread:
/// the longer of an API key and a JWT ([`jwt::MAX_JWT_LEN`]).
pub const MAX_BEARER_LEN: usize = if jwt::MAX_JWT_LEN > MAX_CREDENTIAL_LEN {
    jwt::MAX_JWT_LEN
} else {
    MAX_CREDENTIAL_LEN
};

pub mod jwt;
pub mod password;

/// What can go wrong making or reading a credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A key given from outside is too short, too long or not printable ASCII.
    #[error(
        "an API key must be {MIN_KEY_LEN} to {MAX_CREDENTIAL_LEN} printable ASCII characters without spaces"
    )]
    WeakKey,
}

/// A freshly made API key: the secret (shown once), what listings show of it, and its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Makes a new random API key.
pub fn generate_key() -> Result<NewSecret, AuthError> {
    let mut random = [0u8; KEY_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(|e| AuthError::Random(e.to_string()))?;
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    Ok(describe(secret))
}

/// Takes a key chosen outside the platform (for automation), if it is strong enough.
pub fn accept_key(secret: &str) -> Result<NewSecret, AuthError> {
    if !is_plausible(secret, MAX_CREDENTIAL_LEN) || secret.len() < MIN_KEY_LEN {
        return Err(AuthError::WeakKey);
    }
    Ok(describe(secret.to_owned()))
}

fn describe(secret: String) -> NewSecret {
    let prefix = secret.chars().take(SHOWN_PREFIX_LEN).collect();
    let hash = hash_key(&secret);
    NewSecret {
        secret,
        prefix,
        hash,
    }
}

/// The hex sha256 under which a key is stored and looked up.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a credential is worth a lookup: printable ASCII without spaces, at most `max` bytes.
fn is_plausible(credential: &str, max: usize) -> bool {
    !credential.is_empty()
        && credential.len() <= max
        && credential.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a request's credentials could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer <credential>` with a plausible credential.
    Malformed,
}

/// The credential of an `Authorization: Bearer …` header value (the scheme is
/// case-insensitive, as RFC 9110 says): an API key or a JWT, at most [`MAX_BEARER_LEN`] bytes.
pub fn bearer(header: Option<&[u8]>) -> Result<&str, BearerError> {
    let header = header.ok_or(BearerError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| BearerError::Malformed)?;
    let (scheme, credential) = header
        .trim()
        .split_once(' ')
        .ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    let credential = credential.trim();
    if !is_plausible(credential, MAX_BEARER_LEN) {
        return Err(BearerError::Malformed);
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_recognisable_and_hashed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_eq!(a.secret.len(), KEY_PREFIX.len() + 43);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), SHOWN_PREFIX_LEN);
        assert_eq!(a.hash, hash_key(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(
            !format!("{a:?}").contains(&a.secret),
            "Debug hides the secret"
        );
    }

    #[test]
    fn keys_from_outside_must_be_strong_enough() {
        assert!(accept_key("short").is_err());
        assert!(accept_key(&"x".repeat(MAX_CREDENTIAL_LEN + 1)).is_err());
        assert!(accept_key("has a space in it somewhere ok").is_err());
        assert!(accept_key("nül-byte-keys-are-not-ascii-at-all").is_err());
        let ok = accept_key("ci-bootstrap-key-0123456789").unwrap();
        assert_eq!(ok.hash, hash_key("ci-bootstrap-key-0123456789"));
    }

    #[test]
    fn bearer_headers_parse_strictly() {
        type Case<'a> = (Option<&'a [u8]>, Result<&'a str, BearerError>);
        let cases: [Case; 9] = [
            (None, Err(BearerError::Missing)),
            (Some(b"Bearer nxk_abc"), Ok("nxk_abc")),
            (Some(b"bearer   nxk_abc  "), Ok("nxk_abc")),
            (Some(b"BEARER nxk_abc"), Ok("nxk_abc")),
            (Some(b"Basic dXNlcjpwdw=="), Err(BearerError::Malformed)),
            (Some(b"Bearer"), Err(BearerError::Malformed)),
            (Some(b"Bearer two words"), Err(BearerError::Malformed)),
            (Some(b"Bearer \xff\xfe"), Err(BearerError::Malformed)),
            (Some(b"nxk_abc"), Err(BearerError::Malformed)),
        ];
        for (header, expected) in cases {
            assert_eq!(bearer(header), expected, "{header:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER_LEN + 1));
        assert_eq!(bearer(Some(long.as_bytes())), Err(BearerError::Malformed));
    }

    #[test]
    fn bearer_headers_carry_jwts_up_to_the_jwt_limit() {
        const {
            assert!(MAX_BEARER_LEN >= jwt::MAX_JWT_LEN);
            assert!(MAX_BEARER_LEN >= MAX_CREDENTIAL_LEN);
        };
        let body = "a".repeat(jwt::MAX_JWT_LEN - 40);
        let token = format!("eyJhbGciOiJFUzI1NiJ9.{body}.c2lnbmF0dXJl");
        assert!(token.len() > MAX_CREDENTIAL_LEN && token.len() <= jwt::MAX_JWT_LEN);
        let header = format!("Bearer {token}");
        assert_eq!(bearer(Some(header.as_bytes())), Ok(token.as_str()));
        assert!(jwt::looks_like_jwt(&token));
        // An API key stays bounded by its own limit.
        assert!(accept_key(&"k".repeat(MAX_CREDENTIAL_LEN + 1)).is_err());
    }
}
