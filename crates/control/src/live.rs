//! Live tasks: the in-process fan-out from a running task to whoever follows it.
//!
//! The durable record is always the task's event log in the store; this only wakes followers
//! sooner. Every event is published after it is committed, so a follower that misses one
//! (it subscribed late, lagged, or events were published out of order by concurrent writers)
//! reads the gap back from the log. In cluster mode the bus takes this role between nodes.

use std::collections::HashMap;
use std::sync::Mutex;

use nexus_core::{TaskEvent, TaskId};
use tokio::sync::{broadcast, watch};

/// Events buffered per running task for slow followers; one that falls further behind reads
/// the rest back from the log.
const LIVE_BUFFER: usize = 256;

/// One running task: its event fan-out and its cancellation signal.
struct Running {
    /// Which run of the task this is (a multi-turn task runs once per turn).
    run: u64,
    /// Made by the first follower: most tasks have none, and a channel allocates its whole
    /// buffer up front.
    events: Option<broadcast::Sender<TaskEvent>>,
    cancel: watch::Sender<bool>,
}

/// Tasks running on this node.
#[derive(Default)]
pub(crate) struct LiveTasks {
    running: Mutex<HashMap<TaskId, Running>>,
    next_run: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for LiveTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTasks")
            .field("running", &self.lock().len())
            .finish()
    }
}

impl LiveTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Running>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // is a single insert, remove or lookup), so a poisoned lock is still usable.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `task` as running here and returns the run's number and a receiver that turns
    /// `true` when it is canceled; `None` when the task already runs here (two messages raced
    /// to continue it, or one arrived before the previous turn finished).
    pub(crate) fn begin(&self, task: TaskId) -> Option<(u64, watch::Receiver<bool>)> {
        let mut running = self.lock();
        if running.contains_key(&task) {
            return None;
        }
        let run = self
            .next_run
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (cancel, canceled) = watch::channel(false);
        running.insert(
            task,
            Running {
                run,
                events: None,
                cancel,
            },
        );
        Some((run, canceled))
    }

    /// Ends run `run` of `task`: its followers drain what was published, then see the end. A
    /// later run of the same task is left alone.
    pub(crate) fn end(&self, task: TaskId, run: u64) {
        let mut running = self.lock();
        if running.get(&task).is_some_and(|r| r.run == run) {
            running.remove(&task);
        }
    }

    /// Hands committed events to the task's followers, if it runs here.
    pub(crate) fn publish(&self, task: TaskId, events: &[TaskEvent]) {
        let running = self.lock();
        let Some(sender) = running.get(&task).and_then(|r| r.events.as_ref()) else {
            return;
        };
        if sender.receiver_count() == 0 {
            return;
        }
        for event in events {
            // Followers that left meanwhile are fine: they read the log.
            let _ = sender.send(event.clone());
        }
    }

    /// Follows a task running here; `None` when it does not run here. Events published before
    /// this call are not delivered: the follower reads them from the log.
    pub(crate) fn subscribe(&self, task: TaskId) -> Option<broadcast::Receiver<TaskEvent>> {
        let mut running = self.lock();
        let running = running.get_mut(&task)?;
        Some(
            running
                .events
                .get_or_insert_with(|| broadcast::channel(LIVE_BUFFER).0)
                .subscribe(),
        )
    }

    /// Asks a task running here to stop; false when it does not run here.
    pub(crate) fn cancel(&self, task: TaskId) -> bool {
        match self.lock().get(&task) {
            Some(running) => {
                running.cancel.send_replace(true);
                true
            }
            None => false,
        }
    }
}
