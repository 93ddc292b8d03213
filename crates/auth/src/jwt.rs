//! OpenID Connect bearer tokens: JWTs signed by the configured issuer, verified against the
//! issuer's published keys (its JWKS). No IO here: the control plane fetches the JWKS and
//! hands it over as a [`KeySet`].
//!
//! What is accepted, and nothing else:
//! - RS256 (RSA keys of 2048 to 4096 bits) and ES256 (P-256) signatures, the algorithm bound to
//!   the key's type: `none`, HMAC and every other algorithm are refused before any crypto, so a
//!   public key can never be used as an HMAC secret;
//! - `iss` equal to the issuer, `aud` naming the audience, `exp` present and in the future,
//!   `nbf` (when present) in the past, both with the configured leeway for clock skew;
//! - tokens of at most [`MAX_JWT_LEN`] bytes.

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Longest JWT accepted: ID and access tokens with a few dozen claims are 1 to 2 KiB; past this
/// a header is a payload, not a token.
pub const MAX_JWT_LEN: usize = 8 * 1024;
/// Keys kept from one JWKS: issuers publish a handful (current, next, previous); the rest of a
/// larger set is ignored.
pub const MAX_JWKS_KEYS: usize = 64;
/// Longest key id kept; longer ones are not key ids.
pub const MAX_KEY_ID_LEN: usize = 256;
/// RSA modulus sizes accepted, in bits: below 2048 is breakable, above 4096 is not what the
/// verifier takes.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Whether a bearer credential is shaped like a JWT: three base64url segments separated by
/// dots (the last, the signature, may be empty, as in an unsigned token, which is then refused
/// for its algorithm), the first of which decodes to a JSON object. API keys never are.
pub fn looks_like_jwt(credential: &str) -> bool {
    let mut segments = credential.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return false;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !header.is_empty()
        && !payload.is_empty()
        && base64url(header)
        && base64url(payload)
        && base64url(signature)
        && decode_segment(header).is_some_and(|bytes| bytes.trim_ascii_start().starts_with(b"{"))
}

fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

/// Why a token is refused. The messages are safe to show a client: they say what is wrong
/// with the token, never what it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the bearer token's algorithm is not accepted (RS256 or ES256 only)")]
    Algorithm,
    #[error("the bearer token was signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the bearer token's signature does not verify")]
    Signature,
    #[error("the bearer token comes from another issuer")]
    Issuer,
    #[error("the bearer token is meant for another audience")]
    Audience,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    #[error("the bearer token lacks a required claim or has one of the wrong type")]
    Claims,
}

impl Refusal {
    /// A short, stable label for metrics.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Claims => "claims",
        }
    }
}

/// What a token must say about where it comes from and whom it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The issuer, compared byte for byte with `iss`.
    pub issuer: String,
    /// Must be `aud`, or one of its values.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// The key a token names in its header, read before its signature is checked (to find the
/// key), with its algorithm, which must be RS256 or ES256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
}

/// Reads the token's header: refuses anything longer than [`MAX_JWT_LEN`], not shaped like a
/// JWT, or with another algorithm than RS256 or ES256.
pub fn key_ref(token: &str) -> Result<KeyRef, Refusal> {
    #[derive(serde::Deserialize)]
    struct RawHeader {
        alg: String,
        kid: Option<String>,
    }
    if token.len() > MAX_JWT_LEN || !looks_like_jwt(token) {
        return Err(Refusal::Malformed);
    }
    let header = token.split('.').next().and_then(decode_segment);
    let header: RawHeader = header
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Refusal::Malformed)?;
    let algorithm = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        _ => return Err(Refusal::Algorithm),
    };
    if header
        .kid
        .as_ref()
        .is_some_and(|k| k.len() > MAX_KEY_ID_LEN)
    {
        return Err(Refusal::Malformed);
    }
    Ok(KeyRef {
        algorithm,
        kid: header.kid,
    })
}

/// One verification key of the issuer, bound to the one algorithm it may verify.
struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The issuer's signing keys that this module can use, by key id: RSA keys for RS256 and
/// P-256 keys for ES256. Keys for encryption, of other types or algorithms, or of unsafe sizes
/// are left out.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.algorithm)))
            .finish()
    }
}

/// A JWKS document that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JWK set: {0}")]
pub struct JwksError(String);

impl KeySet {
    /// The usable keys of a JWKS document (`{"keys": [...]}`); a key that cannot be used is
    /// skipped, not an error, so one exotic key does not take the others down.
    pub fn from_jwks(json: &[u8]) -> Result<Self, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(json).map_err(|e| JwksError(e.to_string()))?;
        let keys = document
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter_map(|jwk| usable(&jwk))
            .take(MAX_JWKS_KEYS)
            .collect();
        Ok(Self { keys })
    }

    /// How many usable keys the set has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids in the set (keys without one are left out).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// Whether the set has a key for `key`: the one with its id, or, for a token without a
    /// key id, the only key of its algorithm.
    pub fn has(&self, key: &KeyRef) -> bool {
        self.find(key).is_ok()
    }

    fn find(&self, key: &KeyRef) -> Result<&VerificationKey, Refusal> {
        match &key.kid {
            Some(kid) => {
                let found = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .ok_or(Refusal::UnknownKey)?;
                if found.algorithm == key.algorithm {
                    Ok(found)
                } else {
                    Err(Refusal::Algorithm)
                }
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithm == key.algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(Refusal::UnknownKey),
                }
            }
        }
    }
}

/// The verification key a JWK describes, if it is one this module uses.
fn usable(jwk: &Jwk) -> Option<VerificationKey> {
    let common = &jwk.common;
    if matches!(
        common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if common
        .key_id
        .as_ref()
        .is_some_and(|k| k.len() > MAX_KEY_ID_LEN)
    {
        return None;
    }
    let (algorithm, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = decode_segment(&rsa.n)?;
            let start = modulus.iter().position(|b| *b != 0)?;
            let modulus = &modulus[start..];
            let bits = modulus.len() * 8 - modulus.first()?.leading_zeros() as usize;
            if !RSA_BITS.contains(&bits) {
                return None;
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?;
            (Algorithm::RS256, key)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            let coordinate = |c: &str| decode_segment(c).filter(|bytes| bytes.len() == 32);
            coordinate(&ec.x)?;
            coordinate(&ec.y)?;
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?;
            (Algorithm::ES256, key)
        }
        _ => return None,
    };
    let declared_matches = match common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    declared_matches.then(|| VerificationKey {
        kid: common.key_id.clone(),
        algorithm,
        key,
    })
}

/// Verifies `token` against `keys` and `expected`; returns its claims.
///
/// [`Refusal::UnknownKey`] means the set has no key for the token: the caller may fetch the
/// issuer's keys again (they may have rotated) and retry.
pub fn verify(
    token: &str,
    keys: &KeySet,
    expected: &Expected,
) -> Result<Map<String, Value>, Refusal> {
    let key_ref = key_ref(token)?;
    let key = keys.find(&key_ref)?;
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = expected.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[&expected.issuer]);
    validation.set_audience(&[&expected.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map_err(|e| refusal(e.kind()))?
        .claims;
    // `iss` is one string, the issuer exactly (the library also takes a list containing it).
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer.as_str()) {
        return Err(Refusal::Issuer);
    }
    Ok(claims)
}

fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Refusal {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Refusal::Signature,
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidIssuer => Refusal::Issuer,
        ErrorKind::InvalidAudience => Refusal::Audience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Refusal::Algorithm,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => Refusal::Claims,
        _ => Refusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn only_jwt_shaped_credentials_look_like_jwts() {
        let header = segment(r#"{"alg":"ES256","kid":"k1"}"#);
        let payload = segment(r#"{"sub":"alice"}"#);
        assert!(looks_like_jwt(&format!("{header}.{payload}.c2ln")));
        assert!(looks_like_jwt(&format!("{header}.{payload}.")), "unsigned");
        for not in [
            "nxk_AbCdEfGh0123456789abcdefghijklmnopqrstuvw".to_owned(),
            "test-admin-key-0123456789abcdef".to_owned(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.c2ln.extra"),
            format!(".{payload}.c2ln"),
            format!("{header}..c2ln"),
            format!("{header}.{payload}.c2ln="),
            format!("{}.{payload}.c2ln", segment("not json")),
            "a.b.c".to_owned(),
        ] {
            assert!(!looks_like_jwt(&not), "{not}");
        }
    }

    #[test]
    fn headers_name_an_accepted_algorithm() {
        let token = |header: &str| format!("{}.{}.c2ln", segment(header), segment("{}"));
        assert_eq!(
            key_ref(&token(r#"{"alg":"RS256","kid":"a"}"#)),
            Ok(KeyRef {
                algorithm: Algorithm::RS256,
                kid: Some("a".into())
            })
        );
        assert_eq!(
            key_ref(&token(r#"{"alg":"ES256"}"#)),
            Ok(KeyRef {
                algorithm: Algorithm::ES256,
                kid: None
            })
        );
        for refused in ["none", "HS256", "RS512", "PS256", "EdDSA", "es256"] {
            let header = format!(r#"{{"alg":"{refused}","kid":"a"}}"#);
            assert_eq!(
                key_ref(&token(&header)),
                Err(Refusal::Algorithm),
                "{refused}"
            );
        }
        assert_eq!(key_ref(&token(r#"{"kid":"a"}"#)), Err(Refusal::Malformed));
        let long = format!(
            "{}.{}.c2ln",
            segment(r#"{"alg":"ES256"}"#),
            "a".repeat(MAX_JWT_LEN)
        );
        assert_eq!(key_ref(&long), Err(Refusal::Malformed));
    }

    #[test]
    fn jwks_keep_only_signing_keys_of_accepted_types() {
        // A P-256 public key (the generator point, valid on the curve).
        let x = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
        let y = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
        let jwks = format!(
            r#"{{"keys":[
              {{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","kid":"ec","use":"sig","alg":"ES256"}},
              {{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","kid":"enc","use":"enc"}},
              {{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","kid":"hs","alg":"HS256"}},
              {{"kty":"oct","k":"c2VjcmV0","kid":"oct"}},
              {{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny-rsa"}},
              {{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"ed"}},
              {{"kty":"weird","kid":"weird"}}
            ]}}"#
        );
        let set = KeySet::from_jwks(jwks.as_bytes()).unwrap();
        assert_eq!(set.key_ids().collect::<Vec<_>>(), ["ec"]);
        let es256 = |kid: Option<&str>| KeyRef {
            algorithm: Algorithm::ES256,
            kid: kid.map(str::to_owned),
        };
        assert!(set.has(&es256(Some("ec"))));
        assert!(set.has(&es256(None)), "the only ES256 key");
        assert!(!set.has(&es256(Some("enc"))));
        let rs256_on_ec = KeyRef {
            algorithm: Algorithm::RS256,
            kid: Some("ec".into()),
        };
        assert_eq!(set.find(&rs256_on_ec).err(), Some(Refusal::Algorithm));
        assert!(KeySet::from_jwks(b"[]").is_err());
        assert!(KeySet::from_jwks(b"{\"keys\":[]}").unwrap().is_empty());
    }
}
