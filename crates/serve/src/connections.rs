//! The live connections of a server: how many there are, which are idle, and how to ask one
//! to go away when a new one needs its place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// Every open connection, with a cap on how many there may be.
#[derive(Debug)]
pub(crate) struct Registry {
    cap: usize,
    /// When the registry was made: activity is recorded as milliseconds since then.
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Signalled whenever a connection closes (shutdown waits on it).
    closed: Notify,
}

/// One open connection, as the registry and its own task see it.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Requests being answered: from the request's head to the end of its response body.
    in_flight: AtomicUsize,
    /// Milliseconds since the registry's epoch at which the connection last became idle (or
    /// opened).
    idle_since_ms: AtomicU64,
    /// Chosen to make room; its task has been asked to close it.
    evicting: AtomicBool,
    /// Signalled to ask the connection's task to close it.
    pub(crate) evict: Notify,
}

impl Connection {
    /// Whether the connection is answering no request right now. An idle connection can be
    /// closed without losing anything: a client whose request head was half sent never got
    /// an answer and may retry.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether this connection was chosen to make room.
    fn is_evicting(&self) -> bool {
        self.evicting.load(Ordering::Acquire)
    }
}

/// What [`Registry::open`] decided about a new connection.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Serve it; dropping the slot removes it from the registry.
    Serve(Slot),
    /// The registry is full and no connection is idle: answer 503 and close.
    Full,
}

impl Registry {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            closed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // The map stays consistent whatever panicked while holding it (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection. At the cap, the connection idle the longest is asked to
    /// close to make room (like nginx reusing keep-alive connections), so a flood of idle or
    /// slow-header connections cannot lock out new clients; when none is idle, the new one
    /// is refused.
    pub(crate) fn open(self: &Arc<Self>) -> Admission {
        let mut open = self.lock();
        if open.len() >= self.cap {
            // Idle the longest; among those idle since the same millisecond, the oldest.
            let victim = open
                .iter()
                .filter(|(_, c)| c.is_idle() && !c.is_evicting())
                .min_by_key(|(id, c)| (c.idle_since_ms.load(Ordering::Relaxed), **id))
                .map(|(_, c)| c.clone());
            match victim {
                Some(victim) => {
                    // Marked, so the next opening picks another one while this one closes.
                    victim.evicting.store(true, Ordering::Release);
                    victim.evict.notify_one();
                    metrics::counter!(nexus_telemetry::HTTP_CONNECTIONS_SHED, "reason" => "evicted")
                        .increment(1);
                }
                None => {
                    metrics::counter!(nexus_telemetry::HTTP_CONNECTIONS_SHED, "reason" => "refused")
                        .increment(1);
                    return Admission::Full;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        open.insert(id, connection.clone());
        metrics::gauge!(nexus_telemetry::HTTP_CONNECTIONS).set(open.len() as f64);
        Admission::Serve(Slot {
            registry: self.clone(),
            id,
            connection,
        })
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Waits until no connection is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.len() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// A connection's place in the registry; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) connection: Arc<Connection>,
}

impl Slot {
    /// Marks a request as begun; the returned guard marks it done when dropped (after its
    /// response body was sent, or abandoned).
    pub(crate) fn begin_request(&self) -> RequestGuard {
        self.connection.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            registry: self.registry.clone(),
            connection: self.connection.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        open.remove(&self.id);
        metrics::gauge!(nexus_telemetry::HTTP_CONNECTIONS).set(open.len() as f64);
        drop(open);
        self.registry.closed.notify_waiters();
    }
}

/// One request in progress on a connection.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    registry: Arc<Registry>,
    connection: Arc<Connection>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.connection
            .idle_since_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(admission: Admission) -> Slot {
        match admission {
            Admission::Serve(slot) => slot,
            Admission::Full => panic!("refused below the cap"),
        }
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_evicted_and_busy_ones_never() {
        let registry = Arc::new(Registry::new(3));
        let oldest_idle = serve(registry.open());
        let busy = serve(registry.open());
        let newer_idle = serve(registry.open());
        let _request = busy.begin_request();
        // `newer_idle` went idle after `oldest_idle`.
        oldest_idle
            .connection
            .idle_since_ms
            .store(1, Ordering::Relaxed);
        newer_idle
            .connection
            .idle_since_ms
            .store(2, Ordering::Relaxed);

        let fourth = serve(registry.open());
        fourth.connection.idle_since_ms.store(3, Ordering::Relaxed);
        assert!(oldest_idle.connection.is_evicting());
        assert!(!newer_idle.connection.is_evicting());
        drop(oldest_idle);

        // Next at the cap: the newer idle one goes, then nothing is idle but the fourth.
        let fifth = serve(registry.open());
        fifth.connection.idle_since_ms.store(4, Ordering::Relaxed);
        assert!(newer_idle.connection.is_evicting());
        drop(newer_idle);
        let _sixth = serve(registry.open());
        assert!(fourth.connection.is_evicting());
        assert!(!busy.connection.is_evicting());
        drop(fourth);
        assert_eq!(registry.len(), 3);
    }

    #[test]
    fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
        let registry = Arc::new(Registry::new(2));
        let a = serve(registry.open());
        let b = serve(registry.open());
        let _ra = a.begin_request();
        let rb = b.begin_request();
        assert!(matches!(registry.open(), Admission::Full));
        drop(rb);
        // b finished its request: it is idle now, so it makes room.
        assert!(matches!(registry.open(), Admission::Serve(_)));
    }

    #[tokio::test]
    async fn all_closed_waits_for_the_last_connection() {
        let registry = Arc::new(Registry::new(4));
        let slot = serve(registry.open());
        let waiting = tokio::spawn({
            let registry = registry.clone();
            async move { registry.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(slot);
        waiting
            .await
            .expect("the waiter ends once every connection closed");
    }
}
