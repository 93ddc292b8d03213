//! Secrets at rest: envelope encryption with AES-256-GCM.
//!
//! Each tenant has a random 256-bit data key. Secret values are sealed under it with a fresh
//! random 96-bit nonce and their location — tenant, agent, secret name ([`SecretSlot`]); tenant,
//! agent, session and key of agent state ([`StateSlot`]); or
//! tenant, task, webhook config and field ([`WebhookSlot`]) — as associated data, so a
//! ciphertext copied to another row no longer opens. The data key itself is stored only
//! wrapped by a [`Kms`], bound to its tenant; the default KMS is [`LocalKeyFile`], a master key
//! in `<data-dir>/master.key`. Deleting a tenant's wrapped key destroys its secrets.
//!
//! The crate does no IO except reading and creating the key file; storing the sealed bytes is
//! the caller's business.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Nonce, Payload};
use async_trait::async_trait;
use nexus_core::{AgentId, TaskId, TenantId};
use zeroize::Zeroizing;

mod local;

pub use local::{LocalKeyFile, MASTER_KEY_FILE};

/// Length of every key: AES-256.
pub const KEY_LEN: usize = 32;
/// Length of the random nonce stored in front of each ciphertext: GCM's native 96 bits.
pub const NONCE_LEN: usize = 12;
/// Length of the authentication tag at the end of each ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes that sealing adds to a plaintext: format byte, nonce, tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// First byte of every sealed value and locally wrapped key, so the format (algorithm, key
/// version) can change later without guessing what old rows hold.
const FORMAT_V1: u8 = 1;
/// Domain separation of the associated data: a secret's location can never be mistaken for a
/// key-wrapping context, or for anything a later format binds.
const SECRET_AAD_PREFIX: &[u8] = b"nexus:secret:v1\0";
const TENANT_KEY_CONTEXT_PREFIX: &[u8] = b"nexus:tenant-data-key:v1\0";
const WEBHOOK_AAD_PREFIX: &[u8] = b"nexus:webhook-secret:v1\0";
const STATE_AAD_PREFIX: &[u8] = b"nexus:agent-state:v1\0";

/// What can go wrong with keys and ciphertexts. Messages never contain key material or
/// plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The master key file cannot be read or created.
    #[error("master key file {path}: {source}")]
    KeyFileIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The master key file is not what this server writes (64 hex digits).
    #[error("master key file {path} is malformed: {reason}")]
    KeyFileMalformed {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The master key file has the wrong number of hex digits.
    #[error(
        "master key file {path} has {digits} hex digits; a master key is 64 hex digits ({KEY_LEN} bytes)"
    )]
    KeyFileLength {
        path: std::path::PathBuf,
        digits: u64,
    },
    /// Users other than the owner may access the master key file.
    #[error(
        "master key file {path} has mode {mode:04o}: it must be accessible by its owner only (run `chmod 600 {path}`)"
    )]
    KeyFilePermissions { path: std::path::PathBuf, mode: u32 },
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// Encryption was refused (the input exceeds what AES-GCM can seal).
    #[error("encryption failed")]
    Encrypt,
    /// Authentication failed: the ciphertext was changed, moved to another place, or sealed
    /// under another key.
    #[error("decryption failed: the data was tampered with, moved, or sealed under another key")]
    Decrypt,
    /// The bytes are not a ciphertext of a known format.
    #[error("not a sealed value: {0}")]
    Malformed(String),
    /// A remote KMS failed.
    #[error("key management service: {0}")]
    Kms(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = SecretsError> = std::result::Result<T, E>;

/// A 256-bit AES key, wiped from memory when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let bytes = <[u8; KEY_LEN]>::try_generate().map_err(random_error)?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// A key from its raw bytes (for [`Kms`] implementations).
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// The raw key (for [`Kms`] implementations that wrap it).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Encrypts `plaintext` for the value at `slot`.
    pub fn seal(&self, slot: &impl Slot, plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.0, &slot.associated_data(), plaintext)
    }

    /// Decrypts what [`seal`](Self::seal) returned for the same `slot`.
    pub fn open(&self, slot: &impl Slot, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        open_with(&self.0, &slot.associated_data(), sealed)
    }
}

/// A place a sealed value is bound to ([`SecretSlot`], [`WebhookSlot`]). Each kind has its own
/// domain prefix, so a location of one kind never reads as one of another. Sealed: only this
/// crate defines slots.
pub trait Slot: private::Sealed {}

mod private {
    /// The associated data of a slot; kept private so the encodings stay in this crate.
    pub trait Sealed {
        fn associated_data(&self) -> Vec<u8>;
    }
}

/// Where a secret value lives. Sealing binds the ciphertext to it.
///
/// The agent is identified by name, not id: a deployment seals values before the agent row
/// (and so its id) exists, so agent, revision and secrets can be written in one transaction.
/// Names are unique within a tenant, and an agent's secrets are deleted with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSlot<'a> {
    pub tenant: TenantId,
    pub agent: &'a str,
    pub name: &'a str,
}

impl Slot for SecretSlot<'_> {}

impl private::Sealed for SecretSlot<'_> {
    /// Unambiguous encoding: fixed-size tenant id, length-prefixed agent name, then the name.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            SECRET_AAD_PREFIX.len() + 16 + 8 + self.agent.len() + self.name.len(),
        );
        aad.extend_from_slice(SECRET_AAD_PREFIX);
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        aad.extend_from_slice(&(self.agent.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.agent.as_bytes());
        aad.extend_from_slice(self.name.as_bytes());
        aad
    }
}

/// Which secret of a webhook a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookField {
    /// The token the receiver checks (A2A `X-A2A-Notification-Token`).
    Token,
    /// The credentials sent in `Authorization`.
    Credentials,
}

/// Where a secret of a task's webhook (an A2A push notification config) lives: tenant, task,
/// config id and field. A ciphertext copied to another config, task or field no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSlot<'a> {
    pub tenant: TenantId,
    pub task: TaskId,
    pub config: &'a str,
    pub field: WebhookField,
}

impl Slot for WebhookSlot<'_> {}

impl private::Sealed for WebhookSlot<'_> {
    /// Unambiguous encoding: fixed-size tenant and task ids, the field's tag byte, then the
    /// config id.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(WEBHOOK_AAD_PREFIX.len() + 16 + 16 + 1 + self.config.len());
        aad.extend_from_slice(WEBHOOK_AAD_PREFIX);
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        aad.extend_from_slice(self.task.as_uuid().as_bytes());
        aad.push(match self.field {
            WebhookField::Token => 1,
            WebhookField::Credentials => 2,
        });
        aad.extend_from_slice(self.config.as_bytes());
        aad
    }
}

/// Where a value of an agent's durable state lives: tenant, agent, session and key. A value
/// copied to another key, session, agent or tenant no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSlot<'a> {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub session: &'a str,
    pub key: &'a str,
}

impl Slot for StateSlot<'_> {}

impl private::Sealed for StateSlot<'_> {
    /// Unambiguous encoding: fixed-size tenant and agent ids, length-prefixed session, then
    /// the key.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            STATE_AAD_PREFIX.len() + 16 + 16 + 8 + self.session.len() + self.key.len(),
        );
        aad.extend_from_slice(STATE_AAD_PREFIX);
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        aad.extend_from_slice(self.agent.as_uuid().as_bytes());
        aad.extend_from_slice(&(self.session.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.session.as_bytes());
        aad.extend_from_slice(self.key.as_bytes());
        aad
    }
}

/// A key management service: keeps the key that protects the data keys, and never hands it
/// out.
#[async_trait]
pub trait Kms: fmt::Debug + Send + Sync {
    /// Short name for logs (`local-file`, `vault-transit`, …).
    fn name(&self) -> &'static str;
    /// Encrypts `key` for storage. `context` is bound to the result: unwrapping needs the same.
    async fn wrap_key(&self, key: &DataKey, context: &[u8]) -> Result<Vec<u8>>;
    /// Recovers a key from what [`wrap_key`](Self::wrap_key) returned with the same `context`.
    async fn unwrap_key(&self, wrapped: &[u8], context: &[u8]) -> Result<DataKey>;
}

/// Creates a data key for `tenant`: the key, and its wrapped form to store.
pub async fn new_tenant_key(kms: &dyn Kms, tenant: TenantId) -> Result<(DataKey, Vec<u8>)> {
    let key = DataKey::generate()?;
    let wrapped = kms.wrap_key(&key, &tenant_key_context(tenant)).await?;
    Ok((key, wrapped))
}

/// Unwraps the stored data key of `tenant`. Fails if it was wrapped for another tenant or by
/// another master key.
pub async fn open_tenant_key(kms: &dyn Kms, tenant: TenantId, wrapped: &[u8]) -> Result<DataKey> {
    kms.unwrap_key(wrapped, &tenant_key_context(tenant)).await
}

fn tenant_key_context(tenant: TenantId) -> Vec<u8> {
    let mut context = TENANT_KEY_CONTEXT_PREFIX.to_vec();
    context.extend_from_slice(tenant.as_uuid().as_bytes());
    context
}

fn random_error(err: impl fmt::Display) -> SecretsError {
    SecretsError::Random(err.to_string())
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(&(*key).into())
}

/// `[format][nonce][ciphertext + tag]` of `plaintext` under `key`, authenticated with `aad`.
fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce = Nonce::<Aes256Gcm>::try_generate().map_err(random_error)?;
    let ciphertext = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SecretsError::Encrypt)?;
    let mut sealed = Vec::with_capacity(OVERHEAD + plaintext.len());
    sealed.push(FORMAT_V1);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let Some((&format, rest)) = sealed.split_first() else {
        return Err(SecretsError::Malformed("empty".into()));
    };
    if format != FORMAT_V1 {
        return Err(SecretsError::Malformed(format!(
            "unknown format version {format}"
        )));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretsError::Malformed(format!(
            "{} bytes is shorter than nonce and tag",
            sealed.len()
        )));
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::<Aes256Gcm>::try_from(nonce)
        .map_err(|_| SecretsError::Malformed("bad nonce".into()))?;
    cipher(key)
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretsError::Decrypt)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn slot<'a>(tenant: TenantId, agent: &'a str, name: &'a str) -> SecretSlot<'a> {
        SecretSlot {
            tenant,
            agent,
            name,
        }
    }

    #[test]
    fn round_trip() {
        let key = DataKey::generate().unwrap();
        let tenant = TenantId::new();
        for plaintext in [&b""[..], b"x", b"sk-live-0123456789", &[0u8; 4096]] {
            let at = slot(tenant, "greeter", "api-key");
            let sealed = key.seal(&at, plaintext).unwrap();
            assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            assert_eq!(key.open(&at, &sealed).unwrap().as_slice(), plaintext);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let key = DataKey::generate().unwrap();
        let at = slot(TenantId::new(), "a", "n");
        assert_ne!(
            key.seal(&at, b"same").unwrap(),
            key.seal(&at, b"same").unwrap()
        );
    }

    #[test]
    fn another_location_does_not_open() {
        let key = DataKey::generate().unwrap();
        let tenant = TenantId::new();
        let sealed = key.seal(&slot(tenant, "ab", "c"), b"v").unwrap();
        for wrong in [
            slot(TenantId::new(), "ab", "c"),
            slot(tenant, "other", "c"),
            slot(tenant, "ab", "d"),
            // Same concatenation, different split: the length prefix tells them apart.
            slot(tenant, "a", "bc"),
        ] {
            assert!(
                matches!(key.open(&wrong, &sealed), Err(SecretsError::Decrypt)),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn webhook_secrets_open_only_at_their_slot() {
        let key = DataKey::generate().unwrap();
        let (tenant, task) = (TenantId::new(), TaskId::new());
        let at = |config, field| WebhookSlot {
            tenant,
            task,
            config,
            field,
        };
        let sealed = key.seal(&at("c1", WebhookField::Token), b"tok").unwrap();
        assert_eq!(
            &**key.open(&at("c1", WebhookField::Token), &sealed).unwrap(),
            b"tok"
        );
        for wrong in [
            at("c2", WebhookField::Token),
            at("c1", WebhookField::Credentials),
            WebhookSlot {
                task: TaskId::new(),
                ..at("c1", WebhookField::Token)
            },
        ] {
            assert!(
                matches!(key.open(&wrong, &sealed), Err(SecretsError::Decrypt)),
                "{wrong:?}"
            );
        }
        // An agent secret never opens as a webhook secret, whatever the names.
        let secret = key.seal(&slot(tenant, "c1", "token"), b"tok").unwrap();
        assert!(key.open(&at("c1", WebhookField::Token), &secret).is_err());
    }

    #[test]
    fn state_values_open_only_at_their_slot() {
        let key = DataKey::generate().unwrap();
        let (tenant, agent) = (TenantId::new(), AgentId::new());
        let at = |session, key| StateSlot {
            tenant,
            agent,
            session,
            key,
        };
        let sealed = key.seal(&at("s1", "k"), b"v").unwrap();
        assert_eq!(&**key.open(&at("s1", "k"), &sealed).unwrap(), b"v");
        for wrong in [
            at("s2", "k"),
            at("s1", "k2"),
            // The length prefix keeps ("s1k", "") apart from ("s1", "k").
            at("s1k", ""),
            StateSlot {
                agent: AgentId::new(),
                ..at("s1", "k")
            },
            StateSlot {
                tenant: TenantId::new(),
                ..at("s1", "k")
            },
        ] {
            assert!(
                matches!(key.open(&wrong, &sealed), Err(SecretsError::Decrypt)),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn tampering_is_detected() {
        let key = DataKey::generate().unwrap();
        let at = slot(TenantId::new(), "a", "n");
        let sealed = key.seal(&at, b"top secret").unwrap();
        for index in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(
                matches!(key.open(&at, &tampered), Err(SecretsError::Decrypt)),
                "byte {index}"
            );
        }
        let truncated = &sealed[..sealed.len() - 1];
        assert!(key.open(&at, truncated).is_err());
        let mut extended = sealed.clone();
        extended.push(0);
        assert!(matches!(
            key.open(&at, &extended),
            Err(SecretsError::Decrypt)
        ));
        for malformed in [&[][..], &[FORMAT_V1][..], &sealed[..OVERHEAD - 1]] {
            assert!(matches!(
                key.open(&at, malformed),
                Err(SecretsError::Malformed(_))
            ));
        }
        let mut unknown_format = sealed.clone();
        unknown_format[0] = 2;
        assert!(matches!(
            key.open(&at, &unknown_format),
            Err(SecretsError::Malformed(_))
        ));
    }

    #[test]
    fn another_key_does_not_open() {
        let at = slot(TenantId::new(), "a", "n");
        let sealed = DataKey::generate().unwrap().seal(&at, b"v").unwrap();
        assert!(matches!(
            DataKey::generate().unwrap().open(&at, &sealed),
            Err(SecretsError::Decrypt)
        ));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = DataKey::from_bytes(Zeroizing::new([0xAB; KEY_LEN]));
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab, ") && !shown.contains("171"));
        assert_eq!(shown, "DataKey(<redacted>)");
    }
}
