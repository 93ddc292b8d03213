//! WAL checkpoints on a thread of their own: [`Checkpointer`].
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
//! commit copies the WAL back into the database and syncs both files to disk, 4–10 ms here,
//! while every task write waits behind it (about one request in a hundred at one connection,
//! docs/BENCHMARKS.md). So the store's connections never checkpoint
//! (`wal_autocheckpoint = 0`) and this thread does it instead:
//!
//! - every [`CHECKPOINT_INTERVAL`], a `PASSIVE` checkpoint, which runs beside readers and
//!   writers and copies back what it can;
//! - when the WAL has reached [`WAL_RESTART_PAGES`], a `RESTART` checkpoint. Under steady
//!   writes a passive checkpoint never catches up with the last commit, and SQLite starts the
//!   WAL over only when one has, so without this the WAL would grow for as long as the load
//!   lasts. `RESTART` holds new writers back while it copies what is left (at most one interval
//!   of writes) and makes the next writer start the WAL from its beginning;
//! - on request ([`Checkpointer::truncate`]), a `TRUNCATE` checkpoint, after a deletion that
//!   must leave no copy in the WAL. It runs on this thread so that it never meets the periodic
//!   checkpoint: SQLite refuses a second checkpoint at once, without waiting for the first.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use nexus_store::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

/// How often the WAL is copied back: often enough that a restart has little left to copy,
/// rarely enough that an idle server barely wakes.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// WAL size (in pages, 4 KiB each: 32 MiB) from which a checkpoint restarts the WAL. Under
/// full load on 2 cores the WAL grows by a few thousand pages a second, so this restarts it
/// every few seconds, each time holding writers for the copy of one interval's pages.
pub const WAL_RESTART_PAGES: i64 = 8192;

/// The checkpoint thread of a store; it stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    /// Requests to the thread; dropping it stops the thread.
    requests: Mutex<Sender<Truncate>>,
}

/// A request for a `TRUNCATE` checkpoint, answered with whether the WAL is now empty.
type Truncate = oneshot::Sender<rusqlite::Result<bool>>;

impl Checkpointer {
    /// Starts checkpointing the database at `path` (in WAL mode).
    pub(crate) fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = crate::open_connection(path, "")?;
        let (requests, received) = mpsc::channel::<Truncate>();
        std::thread::Builder::new()
            .name("nexus-checkpoint".into())
            .spawn(move || {
                loop {
                    match received.recv_timeout(CHECKPOINT_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = checkpoint(&conn, WAL_RESTART_PAGES) {
                                tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
                            }
                        }
                        Ok(reply) => {
                            // The caller may have gone; the truncation stands either way.
                            let _ = reply.send(truncate(&conn));
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            requests: Mutex::new(requests),
        })
    }

    /// Copies the whole WAL into the database and truncates it to nothing; `Ok(false)` when a
    /// reader kept a snapshot that needs the WAL for longer than the busy timeout.
    pub(crate) async fn truncate(&self) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sent = match self.requests.lock() {
            Ok(requests) => requests.send(reply).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return Err(StoreError::Unavailable(
                "the checkpoint thread has stopped".into(),
            ));
        }
        match answer.await {
            Ok(outcome) => outcome.map_err(|e| StoreError::Backend(format!("checkpoint: {e}"))),
            Err(_) => Err(StoreError::Unavailable(
                "the checkpoint thread has stopped".into(),
            )),
        }
    }
}

/// A `TRUNCATE` checkpoint: waits (the busy timeout) for readers on older snapshots, copies
/// the WAL back and empties it. Whether the WAL is empty afterwards.
fn truncate(conn: &Connection) -> rusqlite::Result<bool> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    Ok(busy == 0)
}

/// What one [`checkpoint`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Pages in the WAL.
    pub wal_pages: i64,
    /// Whether the WAL was restarted (it had reached the limit).
    pub restarted: bool,
}

/// A passive checkpoint, then a restart if the WAL has reached `restart_pages`.
pub(crate) fn checkpoint(conn: &Connection, restart_pages: i64) -> rusqlite::Result<Checkpoint> {
    // Columns: busy (0/1), pages in the WAL, pages copied back.
    let run = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            row.get::<_, i64>(1)
        })
    };
    let wal_pages = run("PASSIVE")?;
    let restarted = wal_pages >= restart_pages;
    if restarted {
        run("RESTART")?;
    }
    Ok(Checkpoint {
        wal_pages,
        restarted,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A connection that writes as the store's do: WAL, and it never checkpoints itself.
    fn writer(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE IF NOT EXISTS t (x BLOB)",
        )
        .unwrap();
        conn
    }

    fn write_pages(conn: &Connection, commits: usize) {
        for _ in 0..commits {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
    }

    /// The decision only: a passive checkpoint that catches up also lets the next writer start
    /// over, which is all a single thread can show; the restart matters under concurrent writes.
    #[test]
    fn a_wal_at_the_limit_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = writer(&path);
        let checkpoints = crate::open_connection(&path, "").unwrap();

        write_pages(&conn, 50);
        let below = checkpoint(&checkpoints, 1000).unwrap();
        assert!(below.wal_pages >= 50, "{below:?}");
        assert!(!below.restarted);
        // A passive checkpoint that caught up lets the next writer start over too.
        write_pages(&conn, 1);
        assert!(checkpoint(&checkpoints, 1000).unwrap().wal_pages < 10);

        write_pages(&conn, 1200);
        // Past the limit: restarted, so the next writer starts the WAL over.
        let above = checkpoint(&checkpoints, 1000).unwrap();
        assert!(above.wal_pages >= 1000, "{above:?}");
        assert!(above.restarted);
        write_pages(&conn, 1);
        assert!(checkpoint(&checkpoints, 1000).unwrap().wal_pages < 10);
    }
}
