//! The composition root: configuration → stores → control plane, in one place that the
//! `nexus` binary and the tests share, so no test wires a platform by hand and what the tests
//! run is what the server runs.
//!
//! [`PlatformBuilder::from_config`] reads `nexus.toml` settings; [`PlatformBuilder::new`] starts
//! from a data directory with the defaults, and its setters change what a test needs (the
//! database, the runtime's limits, the model provider, push delivery, OIDC). [`build`] opens
//! the store (migrating it), makes a fresh data directory usable (the `default` tenant, the
//! master key) and recovers after a crash (tasks left running are failed).
//!
//! [`build`]: PlatformBuilder::build

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nexus_config::{Config, DatabaseBackend};
use nexus_control::{ControlPlane, OidcSettings};
use nexus_core::tenant::DEFAULT_TENANT;
use nexus_core::{Name, NewTenant, TenantId};
use nexus_host::llm::LlmProvider;
use nexus_store::Store;

/// Why tasks that were running when the server stopped end up FAILED.
pub const INTERRUPTED_TASK_REASON: &str =
    "the server stopped while this task was running; send the message again to retry";
/// Database connections a platform built without a config opens (tests, local tools).
const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// What can stop a platform from being put together.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting or a file the operator controls is wrong (exit 2 in the CLI).
    #[error("{0}")]
    Usage(String),
    /// Something failed that the operator did not get wrong (exit 1).
    #[error("{0}")]
    Internal(String),
}

/// A platform ready to serve: its store, its control plane, and the `default` tenant.
#[derive(Debug, Clone)]
pub struct Platform {
    pub store: Arc<dyn Store>,
    pub control: Arc<ControlPlane>,
    /// The tenant every fresh data directory has, where the bootstrap key lives.
    pub default_tenant: TenantId,
}

/// How to put a [`Platform`] together.
pub struct PlatformBuilder {
    data_dir: PathBuf,
    database_url: Option<String>,
    postgres_schema: Option<String>,
    max_connections: u32,
    runtime: nexus_runtime::RuntimeConfig,
    llm: Arc<dyn LlmProvider>,
    push: nexus_push::Settings,
    oidc: Option<OidcSettings>,
    trust_domain: Option<String>,
}

impl std::fmt::Debug for PlatformBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformBuilder")
            .field("data_dir", &self.data_dir)
            .field("postgres_schema", &self.postgres_schema)
            .finish_non_exhaustive()
    }
}

impl PlatformBuilder {
    /// A platform in `data_dir` with the defaults: SQLite at `<data-dir>/nexus.db`, blobs in
    /// `<data-dir>/blobs`, compiled components cached in `<data-dir>/cache`, the master key in
    /// `<data-dir>/master.key`, the deterministic `echo` model provider.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            runtime: nexus_runtime::RuntimeConfig {
                cache_dir: Some(data_dir.join("cache")),
                ..nexus_runtime::RuntimeConfig::default()
            },
            data_dir,
            database_url: None,
            postgres_schema: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            llm: Arc::new(nexus_host::llm::EchoProvider),
            push: nexus_push::Settings::default(),
            oidc: None,
            trust_domain: None,
        }
    }

    /// The platform `config` describes (already validated by [`Config::load`]).
    pub fn from_config(config: &Config) -> Result<Self, ServerError> {
        let mut builder = Self::new(&config.server.data_dir)
            .database_url(config.database_url())
            .push(nexus_push::Settings {
                allow_private_addresses: config.push.allow_private_addresses,
                ..nexus_push::Settings::default()
            });
        builder.max_connections = config.database.max_connections;
        builder.runtime.allow_private_addresses = config.runtime.allow_private_addresses;
        if let Some(oidc) = &config.oidc {
            builder = builder.oidc(oidc_settings(oidc)?);
        }
        builder.trust_domain = config.server.tls.trust_domain.clone();
        Ok(builder)
    }

    /// The database: `sqlite://FILE` or `postgres://…` (default: SQLite in the data directory).
    #[must_use]
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// On PostgreSQL, every table in `schema` (created if missing): one per test.
    #[must_use]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.postgres_schema = Some(schema.into());
        self
    }

    /// The agent runtime's settings (instances, limits, cache).
    #[must_use]
    pub fn runtime(mut self, runtime: nexus_runtime::RuntimeConfig) -> Self {
        self.runtime = runtime;
        self
    }

    /// The model provider agents' `llm` capability talks to.
    #[must_use]
    pub fn llm(mut self, llm: Arc<dyn LlmProvider>) -> Self {
        self.llm = llm;
        self
    }

    /// How push notifications are delivered.
    #[must_use]
    pub fn push(mut self, push: nexus_push::Settings) -> Self {
        self.push = push;
        self
    }

    /// Accept bearer JWTs of this OIDC issuer.
    #[must_use]
    pub fn oidc(mut self, oidc: OidcSettings) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// Accept client certificates naming service accounts of this SPIFFE trust domain.
    #[must_use]
    pub fn trust_domain(mut self, trust_domain: impl Into<String>) -> Self {
        self.trust_domain = Some(trust_domain.into());
        self
    }

    /// Opens the store and puts the platform together (see the [module docs](self)).
    pub async fn build(self) -> Result<Platform, ServerError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            ServerError::Internal(format!(
                "cannot create data directory {}: {e}",
                self.data_dir.display()
            ))
        })?;
        let url = self
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("nexus.db").display()));
        let store = open_store(&url, self.max_connections, self.postgres_schema.as_deref()).await?;
        let default_tenant = bootstrap(store.as_ref()).await?;
        let blobs = nexus_blob::BlobStore::local(&self.data_dir.join("blobs"))
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        let runtime = nexus_runtime::Runtime::new(self.runtime)
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        let mut control = ControlPlane::new(
            store.clone(),
            blobs,
            Arc::new(runtime),
            self.llm,
            Arc::new(master_key(&self.data_dir)?),
        )
        .with_push(self.push)
        .with_trust_domain(self.trust_domain);
        if let Some(oidc) = self.oidc {
            control = control
                .with_oidc(oidc)
                .map_err(|e| ServerError::Usage(e.to_string()))?;
        }
        Ok(Platform {
            store,
            control: Arc::new(control),
            default_tenant,
        })
    }
}

async fn open_store(
    url: &str,
    max_connections: u32,
    schema: Option<&str>,
) -> Result<Arc<dyn Store>, ServerError> {
    let opening =
        |e: nexus_store::StoreError| ServerError::Internal(format!("opening the database: {e}"));
    let backend = DatabaseBackend::of_url(url).map_err(|e| ServerError::Usage(e.to_string()))?;
    Ok(match backend {
        DatabaseBackend::Sqlite => Arc::new(
            nexus_store_sqlite::SqliteStore::open(url, max_connections)
                .await
                .map_err(opening)?,
        ),
        DatabaseBackend::Postgres => Arc::new({
            if let Some(created) = nexus_store_postgres::PgStore::create_database_if_missing(url)
                .await
                .map_err(opening)?
            {
                tracing::info!(
                    database = %created,
                    "created the PostgreSQL database, which did not exist"
                );
            }
            nexus_store_postgres::PgStore::open(url, max_connections, schema)
                .await
                .map_err(opening)?
        }),
    })
}

/// Makes a fresh data directory usable and cleans up after a crash: the `default` tenant
/// exists, and no task is left running. Returns the `default` tenant's id.
async fn bootstrap(store: &dyn Store) -> Result<TenantId, ServerError> {
    let name = Name::parse(DEFAULT_TENANT).map_err(|e| ServerError::Internal(e.to_string()))?;
    let tenant = store
        .ensure_tenant(NewTenant {
            name,
            display_name: "Default".into(),
        })
        .await
        .map_err(|e| ServerError::Internal(format!("creating the default tenant: {e}")))?;
    let failed = store
        .fail_unfinished_tasks(INTERRUPTED_TASK_REASON)
        .await
        .map_err(|e| ServerError::Internal(format!("recovering interrupted tasks: {e}")))?;
    if failed > 0 {
        tracing::warn!(
            tasks = failed,
            "marked tasks interrupted by the last stop as failed"
        );
    }
    Ok(tenant.id)
}

/// The key that protects the tenants' data keys, `<data-dir>/master.key`, created on first
/// start. A key file that is malformed or readable by others stops the server.
fn master_key(data_dir: &Path) -> Result<nexus_secrets::LocalKeyFile, ServerError> {
    use nexus_secrets::SecretsError;
    match nexus_secrets::LocalKeyFile::open_or_create(data_dir) {
        Ok((key, created)) => {
            if created {
                tracing::warn!(
                    path = %key.path().display(),
                    "created the master key that encrypts secrets and agent state; back it up \
                     apart from the database: without it they cannot be recovered"
                );
            }
            Ok(key)
        }
        Err(
            e @ (SecretsError::KeyFileMalformed { .. }
            | SecretsError::KeyFileLength { .. }
            | SecretsError::KeyFilePermissions { .. }),
        ) => Err(ServerError::Usage(e.to_string())),
        Err(e) => Err(ServerError::Internal(e.to_string())),
    }
}

/// The control plane's OIDC settings from `[oidc]` (validated when the config was loaded).
fn oidc_settings(config: &nexus_config::OidcConfig) -> Result<OidcSettings, ServerError> {
    let usage = |key: &str, e: &dyn std::fmt::Display| ServerError::Usage(format!("{key}: {e}"));
    let default_tenant = config
        .default_tenant
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| usage("oidc.default_tenant", &e))?;
    let default_role = config
        .default_role
        .parse()
        .map_err(|e| usage("oidc.default_role", &e))?;
    Ok(OidcSettings {
        issuer: config.issuer.clone(),
        audience: config.audience.clone(),
        tenant_claim: config.tenant_claim.clone(),
        default_tenant,
        role_claim: config.role_claim.clone(),
        default_role,
        subject_claim: config.subject_claim.clone(),
        teams_claim: config.teams_claim.clone(),
        leeway: Duration::from_secs(config.leeway_secs),
        jwks_refresh: Duration::from_secs(config.jwks_refresh_secs),
        refetch_interval: nexus_control::MIN_REFETCH_INTERVAL,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_fresh_directory_gets_a_default_tenant_and_a_private_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let platform = PlatformBuilder::new(dir.path()).build().await.unwrap();
        let tenant = platform
            .store
            .get_tenant(platform.default_tenant)
            .await
            .unwrap();
        assert_eq!(tenant.name.as_str(), DEFAULT_TENANT);
        assert!(dir.path().join("master.key").exists());
        assert!(dir.path().join("nexus.db").exists());
        drop(platform);
        // Built again on the same directory: the same tenant, nothing recreated.
        let again = PlatformBuilder::new(dir.path()).build().await.unwrap();
        assert_eq!(again.default_tenant, tenant.id);
    }

    #[tokio::test]
    async fn a_bad_database_url_or_master_key_is_the_operators_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let bad_url = PlatformBuilder::new(dir.path())
            .database_url("mysql://nowhere/db")
            .build()
            .await;
        assert!(matches!(bad_url, Err(ServerError::Usage(_))), "{bad_url:?}");
        std::fs::write(dir.path().join("master.key"), "not hex").unwrap();
        let bad_key = PlatformBuilder::new(dir.path()).build().await;
        assert!(matches!(bad_key, Err(ServerError::Usage(_))), "{bad_key:?}");
    }
}
