//! The PostgreSQL store: for clusters of `nexus server` nodes sharing one database.
//!
//! Transactions that read a row before updating it lock it with `SELECT … FOR UPDATE`, so
//! concurrent nodes serialise on the row instead of overwriting each other. Task writes are
//! group-committed ([`nexus_store_sql::TaskWriter`]): one transaction per batch of callers'
//! writes saves round trips and shares the commit's WAL flush.

mod task_batches;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use nexus_store::{Result, StoreError};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// How long a caller waits for a free connection before the request fails as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per node by default: enough for a 2-core node, small enough that many nodes
/// stay under PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// A NexusCore store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    tasks: nexus_store_sql::TaskWriter,
    /// Tenants only: other nodes write agents (see [`NameCache`](nexus_store_sql::NameCache)).
    names: Arc<nexus_store_sql::NameCache>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), optionally placing every table in
    /// `schema` (created if missing), and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(schema) = schema {
            validate_schema_name(schema)?;
            let bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}")))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&bootstrap)
            .await
            .map_err(nexus_store_sql::map_err)?;
            bootstrap.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}")))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating: {e}")))?;
        let tasks =
            nexus_store_sql::TaskWriter::spawn(task_batches::TaskBatches { pool: pool.clone() })?;
        Ok(Self {
            pool,
            tasks,
            names: Arc::new(nexus_store_sql::NameCache::new(
                nexus_store_sql::AgentCaching::Shared,
            )),
        })
    }

    /// Creates the database `url` names if it does not exist, as SQLite creates its file: a
    /// fresh server needs no `createdb` first. Connects to the server's `postgres` database
    /// with the same credentials to do so (which needs the `CREATEDB` privilege). Returns the
    /// name of the database it created, `None` if it existed.
    pub async fn create_database_if_missing(url: &str) -> Result<Option<String>> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        let Some(name) = options.get_database().map(str::to_owned) else {
            return Ok(None);
        };
        match PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => {
                pool.close().await;
                return Ok(None);
            }
            Err(e) if is_sqlstate(&e, UNDEFINED_DATABASE) => {}
            // Other failures (unreachable server, bad password) are `open`'s to report.
            Err(_) => return Ok(None),
        }
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.database(MAINTENANCE_DATABASE))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "database `{name}` does not exist, and connecting to `{MAINTENANCE_DATABASE}` \
                     to create it failed: {e}"
                ))
            })?;
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            name.replace('"', "\"\"")
        )))
        .execute(&admin)
        .await;
        admin.close().await;
        match created {
            Ok(_) => Ok(Some(name)),
            // Another node created it meanwhile.
            Err(e) if is_sqlstate(&e, DUPLICATE_DATABASE) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!(
                "database `{name}` does not exist and cannot be created: {e}"
            ))),
        }
    }

    /// Drops the database `name` on the server `url` points at (connecting to its `postgres`
    /// database). For test clean-up.
    pub async fn drop_database(url: &str, name: &str) -> Result<()> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.database(MAINTENANCE_DATABASE))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}")))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        )))
        .execute(&admin)
        .await
        .map_err(nexus_store_sql::map_err)?;
        admin.close().await;
        Ok(())
    }

    /// Drops `schema` and everything in it. For test clean-up.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        validate_schema_name(schema)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}")))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&pool)
        .await
        .map_err(nexus_store_sql::map_err)?;
        pool.close().await;
        Ok(())
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn task_writer(&self) -> &nexus_store_sql::TaskWriter {
        &self.tasks
    }

    fn names(&self) -> &nexus_store_sql::NameCache {
        &self.names
    }

    /// After a deletion that must leave no copy behind: nothing PostgreSQL can do at once.
    /// The deleted rows' tuples stay in their pages until vacuum frees them and later writes
    /// reuse the space; only the master key makes a wrapped data key useful.
    async fn scrub(&self) {}

    async fn close_pools(&self) {
        self.pool.close().await;
    }
}

/// Schema names are interpolated into DDL, so only `[a-z0-9_]` is accepted.
/// The database every PostgreSQL server has, where missing databases are created from.
const MAINTENANCE_DATABASE: &str = "postgres";
/// SQLSTATE `invalid_catalog_name`: the database in the URL does not exist.
const UNDEFINED_DATABASE: &str = "3D000";
/// SQLSTATE `duplicate_database`.
const DUPLICATE_DATABASE: &str = "42P04";

/// Whether `error` is a database error with SQLSTATE `code`.
fn is_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

fn validate_schema_name(schema: &str) -> Result<()> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid schema name `{schema}`"
        )))
    }
}

fn migrator() -> sqlx::migrate::Migrator {
    nexus_store_sql::migrator(&[
        (1, "initial", include_str!("../migrations/0001_initial.sql")),
        (
            2,
            "agent state",
            include_str!("../migrations/0002_agent_state.sql"),
        ),
        (3, "secrets", include_str!("../migrations/0003_secrets.sql")),
        (
            4,
            "push configs",
            include_str!("../migrations/0004_push_configs.sql"),
        ),
        (
            5,
            "api keys",
            include_str!("../migrations/0005_api_keys.sql"),
        ),
        (
            6,
            "policies",
            include_str!("../migrations/0006_policies.sql"),
        ),
        (7, "users", include_str!("../migrations/0007_users.sql")),
        (
            8,
            "task principal",
            include_str!("../migrations/0008_task_principal.sql"),
        ),
        (9, "teams", include_str!("../migrations/0009_teams.sql")),
        (
            10,
            "service accounts",
            include_str!("../migrations/0010_service_accounts.sql"),
        ),
        (
            11,
            "owners and teams",
            include_str!("../migrations/0011_owners_and_teams.sql"),
        ),
        (
            12,
            "package builds",
            include_str!("../migrations/0012_package_builds.sql"),
        ),
    ])
}

nexus_store_sql::impl_store!(
    PgStore,
    sqlx::Postgres,
    lock = " FOR UPDATE",
    begin = "BEGIN",
    backend = "postgres"
);
