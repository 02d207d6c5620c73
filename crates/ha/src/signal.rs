//! A wake-up for threads waiting on a growing offset (the master's senders wait for new
//! commit log), cheap for the side that advances it: with nobody waiting, an advance is one
//! atomic store and one atomic load, never a lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct OffsetSignal {
    offset: AtomicU64,
    waiting: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

impl OffsetSignal {
    /// The newest offset announced.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::SeqCst)
    }

    /// Announces `offset` (kept only if it is larger) and wakes the waiters.
    pub fn advance(&self, offset: u64) {
        self.offset.fetch_max(offset, Ordering::SeqCst);
        // A waiter registers before it looks at the offset again, so either it sees the new
        // offset or this sees it waiting.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.changed.notify_all();
        }
    }

    /// Wakes every waiter without a new offset (shutdown).
    pub fn wake_all(&self) {
        let _guard = self.lock.lock();
        self.changed.notify_all();
    }

    /// Waits until the offset passes `past`, at most `limit`; returns the offset.
    pub fn wait_past(&self, past: u64, limit: Duration) -> u64 {
        let mut guard = self.lock.lock();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.offset() <= past {
            self.changed.wait_for(&mut guard, limit);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.offset()
    }
}
