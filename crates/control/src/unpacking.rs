//! The node's memory for unpacking packages: one budget of bytes that every unpack on this node
//! (uploads, and stored packages loaded on first use) reserves from before it allocates, so
//! what all of them hold together is bounded whatever is sent.
//!
//! `nexus_package::unpack_within` asks for each allocation that grows with the input (the
//! archive's copy, the zstd decoder, each entry by its declared size) through
//! [`nexus_package::Reserve`], on the blocking thread that unpacks. A [`Reservation`] holds
//! what it was granted until it is dropped, which the upload does once the package is
//! compiled and stored (or refused): the decompressed component lives that long.
//!
//! At most [`MAX_CONCURRENT_UNPACKS`] archives are decompressed at once (a `turn`), which
//! bounds the decoders' windows and the CPU they take. When the budget is spent, an unpack waits, up to [`UNPACK_MEMORY_WAIT`], for others to
//! release memory; past that, or when [`MAX_UNPACKS_WAITING`] are waiting already, it is
//! refused with `overloaded` (503, `Retry-After`). Waiting briefly lets a legitimate upload
//! queue behind another large one; refusing beyond it keeps a flood of uploads from holding
//! request slots and blocking threads: a server sheds what it cannot take rather than queue
//! it without bound. The waiting is bounded in time, so two unpacks that each hold part of
//! the budget and wait for more cannot wait forever: one of them is refused.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Memory all package unpacking on this node may hold at once. The largest package takes
/// ~201 MiB while it is unpacked and compiled (a 64 MiB archive copy, an 8.6 MiB decoder and
/// 128 MiB of contents), so it fits with room beside it for ordinary ones (a few MiB each);
/// a node's resident memory grows by at most this much however many uploads arrive.
pub const UNPACK_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// How long an unpack waits for memory that others hold before it is refused as overloaded:
/// long enough for a large upload ahead of it to decompress and compile on a small node, short
/// against the request timeout (30 s by default).
pub const UNPACK_MEMORY_WAIT: Duration = Duration::from_secs(5);
/// Unpacks that may wait for memory at once; past this one is refused at once. Each waiter
/// holds a blocking thread and a request slot, so the queue stays short.
pub const MAX_UNPACKS_WAITING: usize = 8;
/// Archives decompressed at once. Decompressing is CPU-bound, so more than the cores of a
/// small node gains nothing, and each decoder touches its whole window (up to 8.6 MiB) even
/// for a 6 KB bomb: two at a time keep 16 such bombs at ~17 MiB instead of ~140. Others wait
/// for a turn (asynchronously, up to [`UNPACK_MEMORY_WAIT`]), then are refused as overloaded.
pub const MAX_CONCURRENT_UNPACKS: usize = 2;

/// A budget of bytes for unpacking (see the module documentation).
#[derive(Debug)]
pub(crate) struct UnpackMemory {
    capacity: u64,
    state: Mutex<State>,
    released: Condvar,
    /// Turns to decompress (see [`MAX_CONCURRENT_UNPACKS`]).
    turns: tokio::sync::Semaphore,
}

#[derive(Debug)]
struct State {
    available: u64,
    waiting: usize,
}

impl UnpackMemory {
    /// A budget of `capacity` bytes.
    pub(crate) fn new(capacity: u64) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            state: Mutex::new(State {
                available: capacity,
                waiting: 0,
            }),
            released: Condvar::new(),
            turns: tokio::sync::Semaphore::new(MAX_CONCURRENT_UNPACKS),
        })
    }

    /// A turn to decompress, waiting up to [`UNPACK_MEMORY_WAIT`] for one; keep it until the
    /// archive is unpacked (the decoder freed).
    pub(crate) async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, String> {
        match tokio::time::timeout(UNPACK_MEMORY_WAIT, self.turns.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(
                "the node is unpacking other packages and has no turn for this one now; retry \
                 shortly"
                    .to_owned(),
            ),
        }
    }

    /// An empty reservation, whose requests wait at most [`UNPACK_MEMORY_WAIT`] in all.
    pub(crate) fn reservation(self: &Arc<Self>) -> Reservation {
        self.reservation_until(Instant::now() + UNPACK_MEMORY_WAIT)
    }

    fn reservation_until(self: &Arc<Self>, deadline: Instant) -> Reservation {
        Reservation {
            memory: Arc::clone(self),
            held: 0,
            deadline,
        }
    }

    /// The state; a panic while it was held cannot leave it inconsistent (every change is one
    /// statement), so a poisoned lock is used as is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes not reserved by anyone.
    #[cfg(test)]
    pub(crate) fn available(&self) -> u64 {
        self.state().available
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.state().waiting
    }
}

/// Memory granted to one unpack; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    memory: Arc<UnpackMemory>,
    held: u64,
    deadline: Instant,
}

impl nexus_package::Reserve for Reservation {
    fn reserve(&mut self, bytes: u64) -> Result<(), String> {
        let memory = &*self.memory;
        if bytes > memory.capacity.saturating_sub(self.held) {
            return Err(format!(
                "the package needs more memory to unpack than this node gives to unpacking \
                 ({} bytes)",
                memory.capacity
            ));
        }
        let busy = || {
            "the node is unpacking other packages and has no memory for this one now; \
             retry shortly"
                .to_owned()
        };
        let mut state = memory.state();
        if state.available < bytes {
            if state.waiting >= MAX_UNPACKS_WAITING {
                return Err(busy());
            }
            state.waiting += 1;
            while state.available < bytes {
                let Some(left) = self.deadline.checked_duration_since(Instant::now()) else {
                    state.waiting -= 1;
                    return Err(busy());
                };
                state = memory
                    .released
                    .wait_timeout(state, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            state.waiting -= 1;
        }
        state.available -= bytes;
        self.held += bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        self.memory.state().available += self.held;
        self.memory.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use nexus_package::Reserve as _;

    use super::*;

    #[test]
    fn a_reservation_is_released_when_dropped() {
        let memory = UnpackMemory::new(100);
        let mut first = memory.reservation();
        first.reserve(30).unwrap_or_else(|e| panic!("{e}"));
        first.reserve(20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(memory.available(), 50);
        drop(first);
        assert_eq!(memory.available(), 100);
    }

    #[test]
    fn more_than_the_budget_is_refused_at_once() {
        let memory = UnpackMemory::new(100);
        let mut reservation = memory.reservation_until(Instant::now() + Duration::from_secs(3600));
        reservation.reserve(60).unwrap_or_else(|e| panic!("{e}"));
        // 41 more could never fit beside the 60 this reservation holds: no waiting.
        let err = reservation.reserve(41).err().unwrap_or_default();
        assert!(err.contains("more memory"), "{err}");
        assert_eq!(memory.available(), 40);
    }

    #[test]
    fn a_reservation_waits_for_memory_released_by_another() {
        let memory = UnpackMemory::new(100);
        let mut holder = memory.reservation();
        holder.reserve(80).unwrap_or_else(|e| panic!("{e}"));
        let waiter = {
            let memory = Arc::clone(&memory);
            std::thread::spawn(move || {
                let mut reservation =
                    memory.reservation_until(Instant::now() + Duration::from_secs(3600));
                reservation.reserve(50).map(|()| reservation)
            })
        };
        while memory.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(holder);
        let reservation = waiter
            .join()
            .unwrap_or_else(|_| panic!("the waiter panicked"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(memory.available(), 50);
        drop(reservation);
        assert_eq!(memory.available(), 100);
    }

    #[test]
    fn a_reservation_past_its_deadline_is_refused() {
        let memory = UnpackMemory::new(100);
        let mut holder = memory.reservation();
        holder.reserve(80).unwrap_or_else(|e| panic!("{e}"));
        let mut late = memory.reservation_until(Instant::now());
        let err = late.reserve(50).err().unwrap_or_default();
        assert!(err.contains("retry shortly"), "{err}");
        assert_eq!(memory.waiting(), 0);
        assert_eq!(memory.available(), 20);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let memory = UnpackMemory::new(100);
        let mut holder = memory.reservation();
        holder.reserve(100).unwrap_or_else(|e| panic!("{e}"));
        memory.state().waiting = MAX_UNPACKS_WAITING;
        // A deadline an hour away: refused because the queue is full, not by waiting.
        let mut next = memory.reservation_until(Instant::now() + Duration::from_secs(3600));
        let err = next.reserve(1).err().unwrap_or_default();
        assert!(err.contains("retry shortly"), "{err}");
        memory.state().waiting = 0;
    }
}
