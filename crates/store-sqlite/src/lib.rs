//! The SQLite store: the default backend, an embedded file in the data directory.
//!
//! The database runs in WAL mode so readers never block the writer. Reads use a pool of
//! connections. Task writes, the bulk of all writes, are group-committed: many callers' writes
//! share one transaction ([`nexus_store_sql::TaskWriter`]), run by the writer's own thread on a
//! connection of its own (`task_batches`). Every other write goes through a pool of exactly
//! one connection: SQLite allows one writer at a time anyway, and queueing in the pool is
//! fairer than connections waiting on the lock. The two writers take turns on SQLite's write
//! lock; write transactions begin `IMMEDIATE`, so they wait for it instead of failing. No
//! commit checkpoints the WAL: a thread of the store's does (`checkpoint`).

mod checkpoint;
mod task_batches;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use checkpoint::Checkpointer;
use nexus_store::{Result, StoreError};
use nexus_store_sql::{AgentCaching, NameCache, TaskWriter};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use task_batches::TaskBatches;

/// How long a statement waits for a lock held by another process (e.g. a backup) before
/// failing: long enough to ride out a checkpoint, short enough to surface a stuck database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers in the pool; reads are cheap and WAL lets them run beside the writer.
pub const DEFAULT_READERS: u32 = 8;

/// A NexusCore store on an SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    tasks: nexus_store_sql::TaskWriter,
    names: Arc<NameCache>,
    /// Copies the WAL back into the database; stops with the last clone of the store.
    checkpoints: Arc<Checkpointer>,
    /// Held while the store is open: the database has one writing process, this one, which is
    /// what lets [`NameCache`] keep agent rows.
    _exclusive: Arc<File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path/to/file.db`) and
    /// applies pending migrations.
    pub async fn open(url: &str, readers: u32) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid SQLite URL: {e}")))?;
        let path = options.get_filename().to_path_buf();
        let exclusive = lock_database(url, &path)?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL keeps every committed transaction across a process crash; only
            // an OS crash or power loss can drop the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // A commit never checkpoints: the `Checkpointer`'s thread does.
            .pragma("wal_autocheckpoint", "0")
            // Deleted rows are overwritten with zeros, not left in free pages: a deleted
            // tenant's wrapped data key must not survive in the file (crypto-shredding).
            .pragma("secure_delete", "ON");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating {url}: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        let checkpoints = Checkpointer::start(&path)?;
        let tasks = TaskWriter::spawn_on_own_thread(TaskBatches::open(&path)?)?;
        Ok(Self {
            reader,
            writer,
            tasks,
            names: Arc::new(NameCache::new(AgentCaching::Exclusive)),
            checkpoints: Arc::new(checkpoints),
            _exclusive: Arc::new(exclusive),
        })
    }

    fn names(&self) -> &NameCache {
        &self.names
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn task_writer(&self) -> &TaskWriter {
        &self.tasks
    }

    /// After a deletion that must leave no copy behind (a tenant's data key): copies the WAL
    /// into the database, whose deleted rows `secure_delete` zeroed, and truncates the WAL,
    /// which still holds the rows' earlier versions. Best effort: a reader in the middle of a
    /// long query keeps the WAL, which the next restart of the WAL then overwrites. The
    /// checkpoint thread runs it, so it never collides with a periodic checkpoint.
    async fn scrub(&self) {
        match self.checkpoints.truncate().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the WAL was busy; deleted rows stay in it until it restarts")
            }
            Err(e) => tracing::warn!(error = %e, "cannot truncate the WAL after a deletion"),
        }
    }

    async fn close_pools(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// A `rusqlite` connection to the database file at `path` (which exists and is migrated) for
/// one of the store's own threads, with `pragmas` run on it.
fn open_connection(path: &Path, pragmas: &str) -> Result<rusqlite::Connection> {
    let cannot_open = |e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(cannot_open)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(cannot_open)?;
    conn.execute_batch(pragmas).map_err(cannot_open)?;
    Ok(conn)
}

/// Takes the database's lock file (`<file>.lock`, next to it) for this process, or fails if
/// another process holds it: two servers writing one SQLite file would each miss the other's
/// agent writes. The OS releases the lock when the process ends, however it ends.
///
/// An in-memory database is refused: each of the store's connections would have its own.
fn lock_database(url: &str, path: &Path) -> Result<File> {
    if url.contains(":memory:") || url.contains("mode=memory") || path == Path::new(":memory:") {
        return Err(StoreError::Unavailable(format!(
            "{url}: the SQLite store needs a database file, not an in-memory database"
        )));
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another process (it holds {}); stop it first",
            path.display(),
            lock_path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
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
    SqliteStore,
    sqlx::Sqlite,
    lock = "",
    begin = "BEGIN IMMEDIATE",
    backend = "sqlite"
);
