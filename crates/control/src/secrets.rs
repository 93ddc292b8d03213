//! Deployment secrets: checked, sealed under the tenant's data key at deploy time, opened for
//! each task. Values never reach logs or errors; only names do.

use std::collections::BTreeMap;

use nexus_core::{Agent, AgentRevision, Caller, Name, TenantId};
use nexus_secrets::{DataKey, Kms, SecretSlot};
use nexus_store::{SealedSecret, SecretInfo, Store, StoreError};

use crate::{Action, ControlError, ControlPlane, audit};

/// Most secrets one agent may hold: enough for any set of API credentials, few enough that
/// opening them all for each task stays cheap.
pub const MAX_SECRETS_PER_AGENT: usize = 64;
/// Longest secret name.
pub const MAX_SECRET_NAME_LEN: usize = 128;
/// Largest secret value: room for a PEM private key or a cloud service-account file; larger
/// data does not belong in a secret.
pub const MAX_SECRET_VALUE_BYTES: usize = 16 * 1024;

/// Refuses names that are empty, too long or not `[A-Za-z0-9_.-]`, and values that are empty
/// or too large. Errors name the secret, never its value.
pub(crate) fn check(secrets: &BTreeMap<String, String>) -> Result<(), ControlError> {
    if secrets.len() > MAX_SECRETS_PER_AGENT {
        return Err(ControlError::Invalid(format!(
            "{} secrets given; an agent may have at most {MAX_SECRETS_PER_AGENT}",
            secrets.len()
        )));
    }
    for (name, value) in secrets {
        check_name(name)?;
        if value.is_empty() {
            return Err(ControlError::Invalid(format!(
                "secret `{name}` is empty; give it a value (NAME=VALUE)"
            )));
        }
        if value.len() > MAX_SECRET_VALUE_BYTES {
            return Err(ControlError::Invalid(format!(
                "secret `{name}` is {} bytes; the limit is {MAX_SECRET_VALUE_BYTES}",
                value.len()
            )));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ControlError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "secret name `{}` must be 1 to {MAX_SECRET_NAME_LEN} ASCII letters, digits, `_`, `-` or `.`",
            name.escape_debug()
                .take(MAX_SECRET_NAME_LEN)
                .collect::<String>()
        )))
    }
}

/// Refuses a deployment that would leave the agent with too many secrets, counting those it
/// keeps from earlier deployments.
pub(crate) async fn check_total(
    store: &dyn Store,
    tenant: TenantId,
    agent: &Name,
    new: &BTreeMap<String, String>,
) -> Result<(), ControlError> {
    let existing = match store.get_agent(tenant, agent).await {
        Ok(agent) => store.list_secrets(tenant, agent.id).await?,
        Err(nexus_store::StoreError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let kept = existing
        .iter()
        .filter(|s| !new.contains_key(&s.name))
        .count();
    if kept + new.len() > MAX_SECRETS_PER_AGENT {
        return Err(ControlError::Invalid(format!(
            "agent `{agent}` would have {} secrets; the limit is {MAX_SECRETS_PER_AGENT}",
            kept + new.len()
        )));
    }
    Ok(())
}

/// Seals each value for its place: this tenant, this agent, this name.
pub(crate) async fn seal(
    store: &dyn Store,
    kms: &dyn Kms,
    tenant: TenantId,
    agent: &Name,
    secrets: &BTreeMap<String, String>,
) -> Result<Vec<SealedSecret>, ControlError> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let key = tenant_key(store, kms, tenant, true)
        .await?
        .ok_or_else(|| ControlError::Internal("the tenant data key was not created".into()))?;
    secrets
        .iter()
        .map(|(name, value)| {
            let slot = SecretSlot {
                tenant,
                agent: agent.as_str(),
                name,
            };
            Ok(SealedSecret {
                name: name.clone(),
                ciphertext: key.seal(&slot, value.as_bytes()).map_err(internal)?,
            })
        })
        .collect()
}

/// The revision's secrets in the clear, for one task. A name whose value was deleted since is
/// left out (the agent sees no such secret); a value that does not open is an error.
pub(crate) async fn open(
    store: &dyn Store,
    kms: &dyn Kms,
    tenant: TenantId,
    agent: &Agent,
    revision: &AgentRevision,
) -> Result<BTreeMap<String, String>, ControlError> {
    let mut opened = BTreeMap::new();
    if revision.secret_names.is_empty() {
        return Ok(opened);
    }
    let Some(key) = tenant_key(store, kms, tenant, false).await? else {
        return Err(ControlError::Internal(format!(
            "agent `{}` has secrets but its tenant has no data key",
            agent.name
        )));
    };
    for sealed in store.list_secrets(tenant, agent.id).await? {
        if !revision.secret_names.contains(&sealed.name) {
            continue;
        }
        let slot = SecretSlot {
            tenant,
            agent: agent.name.as_str(),
            name: &sealed.name,
        };
        let plaintext = key.open(&slot, &sealed.ciphertext).map_err(|e| {
            ControlError::Internal(format!(
                "secret `{}` of agent `{}`: {e}",
                sealed.name, agent.name
            ))
        })?;
        let value = String::from_utf8(plaintext.to_vec()).map_err(|_| {
            ControlError::Internal(format!(
                "secret `{}` of agent `{}` is not UTF-8",
                sealed.name, agent.name
            ))
        })?;
        opened.insert(sealed.name, value);
    }
    if opened.len() < revision.secret_names.len() {
        tracing::warn!(
            agent = %agent.name,
            revision = revision.revision,
            "some secrets named by the revision no longer exist; the agent will not see them"
        );
    }
    Ok(opened)
}

/// The tenant's data key, unwrapped; created (and stored wrapped) on first use if `create`.
pub(crate) async fn tenant_key(
    store: &dyn Store,
    kms: &dyn Kms,
    tenant: TenantId,
    create: bool,
) -> Result<Option<DataKey>, ControlError> {
    let wrapped = match store.get_tenant_key(tenant).await? {
        Some(wrapped) => wrapped,
        None if create => {
            let (key, wrapped) = nexus_secrets::new_tenant_key(kms, tenant)
                .await
                .map_err(internal)?;
            let stored = store.put_tenant_key(tenant, &wrapped).await?;
            if stored == wrapped {
                return Ok(Some(key));
            }
            // Another deployment created the tenant's key first: use that one.
            stored
        }
        None => return Ok(None),
    };
    nexus_secrets::open_tenant_key(kms, tenant, &wrapped)
        .await
        .map(Some)
        .map_err(|e| {
            ControlError::Internal(format!(
                "the tenant's data key does not unwrap with the {} KMS (was the master key replaced?): {e}",
                kms.name()
            ))
        })
}

pub(crate) fn internal(err: nexus_secrets::SecretsError) -> ControlError {
    ControlError::Internal(format!("secrets: {err}"))
}

impl ControlPlane {
    /// The names of `agent`'s secrets and when each was set; never their values (whoever may
    /// read the agent sees these names in its revisions anyway).
    pub async fn list_secrets(
        &self,
        caller: &Caller,
        tenant: TenantId,
        agent: &Name,
    ) -> Result<Vec<SecretInfo>, ControlError> {
        let agent = self
            .agent_for(caller, tenant, Action::AgentRead, agent)
            .await?;
        Ok(self.store.list_secret_names(tenant, agent.id).await?)
    }

    /// Deletes one secret of `agent` (those who may deploy it, who set its secrets), audited.
    /// Revisions keep naming it; tasks no longer see it.
    pub async fn delete_secret(
        &self,
        caller: &Caller,
        tenant: TenantId,
        agent: &Name,
        name: &str,
    ) -> Result<(), ControlError> {
        check_name(name)?;
        let agent = self
            .agent_for(caller, tenant, Action::AgentDeploy, agent)
            .await?;
        let event = audit::event(
            caller,
            "secret.delete",
            format!("agents/{}/secrets/{name}", agent.name),
            serde_json::json!({ "agent_id": agent.id }),
        );
        if self
            .store
            .delete_secret(tenant, agent.id, name, event)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::not_found("secret", format!("{}/{name}", agent.name)).into())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn one(name: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn bad_names_and_values_are_refused_without_echoing_values() {
        let long_name = "n".repeat(MAX_SECRET_NAME_LEN + 1);
        let big_value = "v".repeat(MAX_SECRET_VALUE_BYTES + 1);
        let too_many: BTreeMap<String, String> = (0..=MAX_SECRETS_PER_AGENT)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let cases = [
            ("empty value", one("token", ""), "is empty"),
            ("empty name", one("", "v"), "must be 1 to"),
            ("long name", one(&long_name, "v"), "must be 1 to"),
            ("space in name", one("api key", "v"), "ASCII letters"),
            ("control character", one("a\nb", "v"), "a\\nb"),
            ("big value", one("token", &big_value), "the limit is"),
            ("too many", too_many, "at most"),
        ];
        for (case, secrets, message) in cases {
            let err = check(&secrets).unwrap_err().to_string();
            assert!(err.contains(message), "{case}: {err}");
            assert!(!err.contains("vv"), "{case}: the value leaked: {err}");
        }
        for name in ["api-key", "OPENAI_API_KEY", "db.password", "x"] {
            check(&one(name, "v")).unwrap();
        }
        check(&one("k", &"v".repeat(MAX_SECRET_VALUE_BYTES))).unwrap();
    }

    /// A control plane on a fresh SQLite file, with a package whose metadata is stored (deploy
    /// needs no component; `task_env` does not run one).
    struct Fixture {
        control: std::sync::Arc<crate::ControlPlane>,
        tenant: TenantId,
        digest: String,
        dir: tempfile::TempDir,
    }

    fn test_event(action: &str) -> nexus_core::NewAuditEvent {
        nexus_core::NewAuditEvent {
            actor: "system".into(),
            action: action.into(),
            target: "test".into(),
            details: serde_json::json!({}),
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nexus.db", dir.path().display());
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
            nexus_store_sqlite::SqliteStore::open(&url, 2)
                .await
                .unwrap(),
        );
        let tenant = store
            .create_tenant(
                nexus_core::NewTenant {
                    name: Name::parse("acme").unwrap(),
                    display_name: "Acme".into(),
                },
                test_event("tenant.create"),
            )
            .await
            .unwrap()
            .id;
        let manifest = nexus_package::parse_manifest(
            "nexus.toml",
            "[agent]\nname = \"mailer\"\nnamespace = \"acme\"\nversion = \"1.0.0\"\ndescription = \"d\"\n\
             [[skills]]\nid = \"s\"\nname = \"S\"\ndescription = \"d\"\n",
        )
        .unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        store
            .put_package(
                tenant,
                nexus_core::NewPackage {
                    reference: manifest.package_ref(),
                    digest: digest.clone(),
                    size_bytes: 1,
                    manifest: manifest.to_json(),
                },
                test_event("package.upload"),
            )
            .await
            .unwrap();
        let runtime = nexus_runtime::Runtime::new(nexus_runtime::RuntimeConfig {
            max_instances: 2,
            ..nexus_runtime::RuntimeConfig::default()
        })
        .unwrap();
        let (kms, _) = nexus_secrets::LocalKeyFile::open_or_create(dir.path()).unwrap();
        let control = std::sync::Arc::new(crate::ControlPlane::new(
            store,
            nexus_blob::BlobStore::local(&dir.path().join("blobs")).unwrap(),
            std::sync::Arc::new(runtime),
            std::sync::Arc::new(nexus_host::llm::EchoProvider),
            std::sync::Arc::new(kms),
        ));
        Fixture {
            control,
            tenant,
            digest,
            dir,
        }
    }

    impl Fixture {
        async fn deploy(
            &self,
            secrets: &[(&str, &str)],
        ) -> Result<(Agent, AgentRevision), ControlError> {
            self.control
                .deploy(
                    &nexus_core::Caller::system(self.tenant),
                    self.tenant,
                    crate::DeployRequest {
                        package_digest: self.digest.clone(),
                        secrets: secrets
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        ..crate::DeployRequest::default()
                    },
                )
                .await
        }

        /// What the agent's `config::get-secret` returns for each name, in a task of `revision`.
        async fn task_secrets(
            &self,
            agent: &Agent,
            revision: &AgentRevision,
            names: &[&str],
        ) -> Result<Vec<Option<String>>, ControlError> {
            use nexus_host::bindings::nexus::agent::config::Host;
            let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
            let mut env = self
                .control
                .task_env(
                    self.tenant,
                    agent,
                    revision,
                    "session",
                    nexus_host::emit::EventSink::new(sender),
                    crate::CallChain::default(),
                )
                .await?;
            let mut values = Vec::new();
            for name in names {
                values.push(env.config.get_secret((*name).to_owned()).await);
            }
            Ok(values)
        }

        /// Every byte SQLite holds for the database: main file and write-ahead log.
        fn database_bytes(&self) -> Vec<u8> {
            let mut bytes = Vec::new();
            for file in ["nexus.db", "nexus.db-wal"] {
                if let Ok(more) = std::fs::read(self.dir.path().join(file)) {
                    bytes.extend(more);
                }
            }
            bytes
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[tokio::test]
    async fn tasks_see_the_secrets_that_are_stored_only_encrypted() {
        let fx = fixture().await;
        let (agent, first) = fx
            .deploy(&[
                ("api-key", "sk-live-PLAINTEXT-1"),
                ("token", "tok-PLAINTEXT-2"),
            ])
            .await
            .unwrap();
        assert_eq!(first.secret_names, vec!["api-key", "token"]);
        assert_eq!(
            fx.task_secrets(&agent, &first, &["api-key", "token", "absent"])
                .await
                .unwrap(),
            vec![
                Some("sk-live-PLAINTEXT-1".to_owned()),
                Some("tok-PLAINTEXT-2".to_owned()),
                None
            ]
        );
        let bytes = fx.database_bytes();
        assert!(
            contains(&bytes, "api-key"),
            "the names are stored in the clear"
        );
        assert!(
            !contains(&bytes, "PLAINTEXT"),
            "a value is stored in the clear"
        );

        // A redeploy without secrets keeps them; one with a secret replaces just that one.
        let (_, second) = fx.deploy(&[]).await.unwrap();
        assert_eq!(second.secret_names, first.secret_names);
        let (agent, third) = fx.deploy(&[("token", "tok-PLAINTEXT-3")]).await.unwrap();
        assert_eq!(third.secret_names, first.secret_names);
        assert_eq!(
            fx.task_secrets(&agent, &second, &["api-key", "token"])
                .await
                .unwrap(),
            vec![
                Some("sk-live-PLAINTEXT-1".to_owned()),
                Some("tok-PLAINTEXT-3".to_owned())
            ]
        );
        assert!(!contains(&fx.database_bytes(), "PLAINTEXT"));
        // A revision that names no secrets sees none, without touching the store.
        let mut bare = third.clone();
        bare.secret_names.clear();
        assert_eq!(
            fx.task_secrets(&agent, &bare, &["token"]).await.unwrap(),
            vec![None]
        );
    }

    #[tokio::test]
    async fn empty_or_too_many_secrets_are_refused_and_change_nothing() {
        let fx = fixture().await;
        let empty = fx.deploy(&[("token", "")]).await.unwrap_err();
        assert!(
            matches!(&empty, ControlError::Invalid(m) if m.contains("`token` is empty")),
            "{empty}"
        );
        assert!(matches!(
            fx.control
                .store()
                .get_agent(fx.tenant, &Name::parse("mailer").unwrap())
                .await,
            Err(nexus_store::StoreError::NotFound { .. })
        ));

        let names: Vec<String> = (0..MAX_SECRETS_PER_AGENT)
            .map(|i| format!("k{i}"))
            .collect();
        let all: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let (_, full) = fx.deploy(&all).await.unwrap();
        assert_eq!(full.secret_names.len(), MAX_SECRETS_PER_AGENT);
        // Replacing one is fine; one more is not.
        fx.deploy(&[("k0", "v2")]).await.unwrap();
        let over = fx.deploy(&[("one-more", "v")]).await.unwrap_err();
        assert!(
            matches!(&over, ControlError::Invalid(m) if m.contains("the limit is")),
            "{over}"
        );
    }

    #[tokio::test]
    async fn moved_ciphertexts_and_another_master_key_do_not_open() {
        let fx = fixture().await;
        let (a, a_revision) = fx.deploy(&[("token", "for-a")]).await.unwrap();
        let store = fx.control.store().clone();
        let (b, b_revision) = store
            .deploy_revision_with_secrets(
                fx.tenant,
                nexus_core::NewAgentRevision {
                    name: Name::parse("other").unwrap(),
                    package: a_revision.package.clone(),
                    package_digest: fx.digest.clone(),
                    config: BTreeMap::new(),
                    secret_names: Vec::new(),
                    grants: nexus_core::Grants::default(),
                    deployed_by: "system".into(),
                },
                Vec::new(),
                test_event("agent.deploy"),
            )
            .await
            .unwrap();
        // Copy a's ciphertext into b's row: it was sealed for a, so it does not open for b.
        let sealed = store
            .get_secret(fx.tenant, a.id, "token")
            .await
            .unwrap()
            .unwrap();
        store
            .put_secret(
                fx.tenant,
                b.id,
                SealedSecret {
                    name: "token".into(),
                    ciphertext: sealed,
                },
            )
            .await
            .unwrap();
        let mut b_revision = b_revision;
        b_revision.secret_names = vec!["token".into()];
        let moved = fx
            .task_secrets(&b, &b_revision, &["token"])
            .await
            .unwrap_err();
        assert!(
            matches!(&moved, ControlError::Internal(m) if m.contains("`token`")),
            "{moved}"
        );
        assert!(!moved.to_string().contains("for-a"));

        // Replace the master key: the tenant's data key no longer unwraps, and the error says
        // why.
        let key_file = fx.dir.path().join(nexus_secrets::MASTER_KEY_FILE);
        std::fs::remove_file(&key_file).unwrap();
        let (other_kms, created) =
            nexus_secrets::LocalKeyFile::open_or_create(fx.dir.path()).unwrap();
        assert!(created);
        let control = std::sync::Arc::new(crate::ControlPlane::new(
            store,
            nexus_blob::BlobStore::local(&fx.dir.path().join("blobs")).unwrap(),
            std::sync::Arc::new(
                nexus_runtime::Runtime::new(nexus_runtime::RuntimeConfig {
                    max_instances: 1,
                    ..nexus_runtime::RuntimeConfig::default()
                })
                .unwrap(),
            ),
            std::sync::Arc::new(nexus_host::llm::EchoProvider),
            std::sync::Arc::new(other_kms),
        ));
        let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let replaced = control
            .task_env(
                fx.tenant,
                &a,
                &a_revision,
                "s",
                nexus_host::emit::EventSink::new(sender),
                crate::CallChain::default(),
            )
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&replaced, ControlError::Internal(m) if m.contains("master key replaced")),
            "{replaced}"
        );
    }
}
