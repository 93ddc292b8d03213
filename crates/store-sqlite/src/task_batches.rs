//! The SQL of group-committed task writes on SQLite ([`nexus_store_sql::TaskWriter`]), run by
//! the writer's thread itself on a connection of its own.
//!
//! sqlx runs every SQLite connection on a worker thread, so each statement sent through it is a
//! hand-off to that thread and back. Under load that thread was a third of the server's CPU and
//! the hand-offs set the latency of a lone request (docs/BENCHMARKS.md). Here the task writer's
//! thread owns a `rusqlite` connection and runs each batch in place: `BEGIN IMMEDIATE`, one
//! prepared statement per row (each prepared once per connection: in process, SQLite has no
//! round trips to save by packing rows into one statement), `COMMIT`.
//!
//! This connection writes beside the store's sqlx writer pool (deploys, agent state, audit).
//! SQLite serialises the two on the database's write lock: every write transaction begins
//! `IMMEDIATE`, so a writer that finds the lock taken waits (up to the busy timeout) rather
//! than failing part-way.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_store::StoreError;
use nexus_store_sql::{BatchFailure, BatchWrites, LockedTaskRow, TaskBatchSql, TaskRow, to_i64};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, ffi, params};
use uuid::Uuid;

const SELECT_TASK: &str = "SELECT tenant_id, agent_id, agent_revision, context_id, \
    parent_task_id, state, status_message, created_at, updated_at, last_seq, started_by \
    FROM tasks WHERE id = ?1";
const INSERT_TASK: &str = "INSERT INTO tasks (id, tenant_id, agent_id, agent_revision, \
    context_id, parent_task_id, state, status_message, last_seq, created_at, updated_at, \
    started_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const UPDATE_TASK: &str = "UPDATE tasks SET state = ?2, status_message = ?3, last_seq = ?4, \
    updated_at = ?5 WHERE id = ?1";
const INSERT_EVENT: &str = "INSERT INTO task_events (task_id, tenant_id, seq, kind, payload, \
    created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// [`TaskBatchSql`] on a connection of its own. Only the task writer's thread uses it; the
/// mutex is there because the trait's methods take `&self`, and is never contended.
#[derive(Debug)]
pub(crate) struct TaskBatches {
    conn: Arc<Mutex<Connection>>,
}

impl TaskBatches {
    /// Opens the database file at `path`, which exists and is migrated, for task writes.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        // As on the sqlx connections (see `SqliteStore::open`); WAL is a property of the file,
        // and checkpoints are the `Checkpointer`'s.
        let conn = crate::open_connection(
            path,
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }
}

/// A poisoned lock only means a batch panicked; its transaction is rolled back on drop.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An open transaction; rolled back if dropped before [`TaskBatchSql::commit`].
pub(crate) struct Tx {
    conn: Arc<Mutex<Connection>>,
    open: bool,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            let conn = lock(&self.conn);
            // SQLite may have rolled back already (e.g. on a full disk); nothing else to do.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}

#[async_trait]
impl TaskBatchSql for TaskBatches {
    type Tx = Tx;
    type Error = rusqlite::Error;

    async fn begin(&self) -> Result<Tx, rusqlite::Error> {
        self.conn().prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Tx {
            conn: Arc::clone(&self.conn),
            open: true,
        })
    }

    async fn lock_tasks(
        &self,
        _tx: &mut Tx,
        ids: &[Uuid],
    ) -> Result<Vec<LockedTaskRow>, rusqlite::Error> {
        let conn = self.conn();
        let mut select = conn.prepare_cached(SELECT_TASK)?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = select
                .query_row([id.as_bytes()], |row| locked_task_row(*id, row))
                .optional()?
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    async fn write(&self, _tx: &mut Tx, writes: &BatchWrites<'_>) -> Result<(), rusqlite::Error> {
        let conn = self.conn();
        if !writes.inserts.is_empty() {
            let mut insert = conn.prepare_cached(INSERT_TASK)?;
            for planned in &writes.inserts {
                let task = &planned.task;
                insert.execute(params![
                    task.id.as_uuid().as_bytes(),
                    task.tenant_id.as_uuid().as_bytes(),
                    task.agent_id.as_uuid().as_bytes(),
                    i64::from(task.agent_revision),
                    task.context_id,
                    task.parent_task_id.map(|id| *id.as_uuid().as_bytes()),
                    task.state.as_str(),
                    task.status_message,
                    to_i64(planned.last_seq),
                    timestamp(&task.created_at),
                    timestamp(&task.updated_at),
                    task.started_by,
                ])?;
            }
        }
        if !writes.updates.is_empty() {
            let mut update = conn.prepare_cached(UPDATE_TASK)?;
            for planned in &writes.updates {
                let task = &planned.task;
                update.execute(params![
                    task.id.as_uuid().as_bytes(),
                    task.state.as_str(),
                    task.status_message,
                    to_i64(planned.last_seq),
                    timestamp(&task.updated_at),
                ])?;
            }
        }
        if !writes.events.is_empty() {
            let mut insert = conn.prepare_cached(INSERT_EVENT)?;
            for event in &writes.events {
                let payload = serde_json::to_string(&*event.payload)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                insert.execute(params![
                    event.task_id.as_uuid().as_bytes(),
                    event.tenant_id.as_uuid().as_bytes(),
                    to_i64(event.seq),
                    event.kind.as_str(),
                    payload,
                    timestamp(&event.created_at),
                ])?;
            }
        }
        Ok(())
    }

    async fn commit(&self, mut tx: Tx) -> Result<(), rusqlite::Error> {
        self.conn().prepare_cached("COMMIT")?.execute([])?;
        tx.open = false;
        Ok(())
    }

    fn classify(&self, error: &rusqlite::Error) -> BatchFailure {
        match error.sqlite_error() {
            Some(e) if e.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                BatchFailure::MissingAgent
            }
            Some(e)
                if e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                BatchFailure::TakenId
            }
            Some(e) if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                BatchFailure::Database(StoreError::Unavailable(error.to_string()))
            }
            _ if matches!(error, rusqlite::Error::FromSqlConversionFailure(..)) => {
                BatchFailure::Database(StoreError::Corrupt(error.to_string()))
            }
            _ => BatchFailure::Database(StoreError::Backend(error.to_string())),
        }
    }
}

/// A timestamp as sqlx writes one to SQLite (RFC 3339 text), so the store's readers decode it
/// and text order stays time order whichever connection wrote the row.
fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The row of task `id` as [`SELECT_TASK`] returns it.
fn locked_task_row(id: Uuid, row: &Row<'_>) -> rusqlite::Result<LockedTaskRow> {
    Ok(LockedTaskRow {
        task: TaskRow {
            id,
            tenant_id: Uuid::from_bytes(row.get(0)?),
            agent_id: Uuid::from_bytes(row.get(1)?),
            agent_revision: row.get(2)?,
            context_id: row.get(3)?,
            parent_task_id: row.get::<_, Option<[u8; 16]>>(4)?.map(Uuid::from_bytes),
            state: row.get(5)?,
            status_message: row.get(6)?,
            started_by: row.get(10)?,
            created_at: parse_timestamp(row, 7)?,
            updated_at: parse_timestamp(row, 8)?,
        },
        last_seq: row.get(9)?,
    })
}

fn parse_timestamp(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(column)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}
