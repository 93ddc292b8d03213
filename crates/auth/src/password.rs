//! Passwords, which people choose: hashed with argon2id (RustCrypto `argon2`, its default
//! parameters: 19 MiB, 2 passes, 1 lane, the OWASP recommendation) into PHC strings with a
//! fresh 128-bit salt, and checked in constant time. Hashing is deliberately slow (tens of
//! milliseconds): callers run it off the async threads and bound how many run at once.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::AuthError;

/// Shortest password accepted: length is what makes a chosen password hard to guess.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted, in bytes: room for any passphrase or generated password, while
/// refusing megabyte inputs that would only cost hashing time.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Salt bytes: 128 bits, the PHC recommendation.
const SALT_BYTES: usize = 16;

/// Why a password was refused before any hashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("a password must be at most {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("a password must not contain control characters")]
    ControlCharacters,
}

/// Refuses passwords too short or too long to accept, or with control characters (which
/// are typing accidents such as a pasted newline).
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacters);
    }
    Ok(())
}

/// The argon2id PHC string of `password` (`$argon2id$v=19$m=19456,t=2,p=1$…`), with a fresh
/// salt. Check the password with [`check_password`] first.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Random(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Random(format!("hashing failed: {e}")))
}

/// Whether `password` matches the PHC string `stored`. A stored string that does not parse
/// matches nothing. Costs as much as hashing, whatever the outcome.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no one's password, to verify against when the user does not exist, so a failed
/// login takes as long whether or not the name is known.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("decoy password that is never anyone's")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$".to_owned())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let password = "correct horse battery staple";
        let first = hash_password(password).unwrap();
        let second = hash_password(password).unwrap();
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify_password(password, &first));
        assert!(verify_password(password, &second));
        for wrong in [
            "correct horse battery stapl",
            "",
            "Correct horse battery staple",
        ] {
            assert!(!verify_password(wrong, &first), "{wrong}");
        }
        for garbage in ["", "plain", "$argon2id$v=19$", "$2b$12$bcryptlooking"] {
            assert!(!verify_password(password, garbage), "{garbage}");
        }
        assert!(!verify_password(
            "decoy password that is never anyone's ",
            decoy_hash()
        ));
    }

    #[test]
    fn passwords_are_checked_before_hashing() {
        let cases = [
            ("short", Err(PasswordError::TooShort)),
            ("ëëëëëëëëëëë", Err(PasswordError::TooShort)),
            ("ëëëëëëëëëëëë", Ok(())),
            ("twelve chars", Ok(())),
            ("line\nbreak in it", Err(PasswordError::ControlCharacters)),
            (
                &"x".repeat(MAX_PASSWORD_LEN + 1),
                Err(PasswordError::TooLong),
            ),
            (&"x".repeat(MAX_PASSWORD_LEN), Ok(())),
        ];
        for (password, expected) in cases {
            assert_eq!(check_password(password), expected, "{password:.20}");
        }
    }
}
