//! The queue of appends, and the right to run append rounds over it.
//!
//! Appends wait here until a round takes them. At most one thread runs rounds at a time: the
//! one holding the *combiner* role. Usually that is the appender thread, woken by
//! [`AppendQueue::push`]. But a caller that queues several appends in a row (a connection
//! reader that decoded a socket read's worth of sends) can queue them without waking anyone
//! and then run the round itself with [`AppendQueue::run_here`]: the appends are written by
//! the thread that already has them in cache, and neither the appender thread's wake-up nor
//! its wait for a CPU (tens of microseconds on a busy two-core machine) is on the send path.
//!
//! Invariants:
//! - only the combiner locks [`AppendQueue::rounds`], so rounds never overlap and commit-log
//!   order is queue order;
//! - the combiner gives the role up only under the queue lock, after seeing the queue empty
//!   or after waking the appender thread to take the rest, so no append is left behind;
//! - a caller of `run_here` runs a bounded number of rounds, then hands the rest to the
//!   appender thread: under sustained load a connection reader is not kept writing;
//! - a round that panics is caught by the combiner, which answers what the round held, marks
//!   the store not writeable and carries on, so the role is never lost with a dead thread.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::appender::{self, Pending, Rounds};
use crate::put::{PutResult, PutStatus};
use crate::running;
use crate::store::StoreInner;

/// Most appends queued; beyond, appends are refused as busy rather than letting memory grow
/// without bound.
pub const MAX_QUEUED_APPENDS: usize = 65_536;
/// Rounds a [`AppendQueue::run_here`] caller runs before handing the rest to the appender
/// thread.
const MAX_ROUNDS_HERE: usize = 4;
/// Longest the appender thread sleeps with appends queued without a wake-up whose
/// caller never ran them (a safety net: callers always do).
const IDLE_CHECK_MS: u64 = 10;
/// Pause between two tries of [`AppendQueue::run_exclusive`] to take the combiner role.
const EXCLUSIVE_RETRY_US: u64 = 50;

/// See the module documentation.
pub(crate) struct AppendQueue {
    state: Mutex<QueueState>,
    /// The appender thread waits here for work.
    work: Condvar,
    /// The round scratch and clock; locked only by the combiner.
    rounds: Mutex<Rounds>,
}

struct QueueState {
    pending: VecDeque<Pending>,
    /// Someone holds the combiner role.
    combining: bool,
    /// No more appends are accepted; the appender thread ends once the queue is empty.
    closed: bool,
}

impl AppendQueue {
    /// An empty, open queue whose rounds continue from `rounds`.
    pub fn new(rounds: Rounds) -> Self {
        Self {
            state: Mutex::new(QueueState { pending: VecDeque::new(), combining: false, closed: false }),
            work: Condvar::new(),
            rounds: Mutex::new(rounds),
        }
    }

    /// Queues an append. With `wake_appender`, makes sure a round will take it: the combiner
    /// will, or the appender thread, woken here. Without, the caller runs [`Self::run_here`]
    /// once it has queued what it has.
    pub fn push(&self, pending: Pending, wake_appender: bool) {
        let mut state = self.state.lock();
        if let Err((pending, status)) = Self::admit(&mut state, pending) {
            drop(state);
            pending.callback.done(PutResult::failed(status));
            return;
        }
        let wake = wake_appender && !state.combining;
        drop(state);
        if wake {
            self.work.notify_one();
        }
    }

    fn admit(state: &mut QueueState, pending: Pending) -> Result<(), (Pending, PutStatus)> {
        if state.closed {
            return Err((pending, PutStatus::ServiceNotAvailable));
        }
        if state.pending.len() >= MAX_QUEUED_APPENDS {
            return Err((pending, PutStatus::OsPageCacheBusy));
        }
        state.pending.push_back(pending);
        Ok(())
    }

    /// Runs rounds on the calling thread, unless another thread is the combiner (it takes
    /// the queued appends then). Past [`MAX_ROUNDS_HERE`] rounds the appender thread gets
    /// the rest.
    pub fn run_here(&self, inner: &StoreInner) {
        {
            let mut state = self.state.lock();
            if state.combining || state.pending.is_empty() {
                return;
            }
            state.combining = true;
        }
        let mut rounds = self.rounds.lock();
        for _ in 0..MAX_ROUNDS_HERE {
            if !self.take_round(&mut rounds) {
                return;
            }
            self.run_round(inner, &mut rounds);
        }
        drop(rounds);
        self.give_up_combining();
    }

    /// Runs `work` as the combiner (waiting, in short sleeps, for a running round to end):
    /// the replica writer's way of being the store's single writer.
    pub fn run_exclusive<R>(&self, work: impl FnOnce(&mut Rounds) -> R) -> R {
        loop {
            let mut state = self.state.lock();
            if !state.combining {
                state.combining = true;
                break;
            }
            drop(state);
            std::thread::sleep(Duration::from_micros(EXCLUSIVE_RETRY_US));
        }
        // The role is given back even if `work` panics, so the store's appends go on.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut rounds = self.rounds.lock();
            work(&mut rounds)
        }));
        self.give_up_combining();
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Gives the combiner role back, waking the appender thread when appends wait (or the
    /// queue closed) so none is left behind.
    fn give_up_combining(&self) {
        let mut state = self.state.lock();
        state.combining = false;
        let more = !state.pending.is_empty() || state.closed;
        drop(state);
        if more {
            self.work.notify_one();
        }
    }

    /// The appender thread: runs rounds whenever appends are queued and nobody else is the
    /// combiner, until the queue is closed and empty.
    pub fn run_appender_thread(&self, inner: Arc<StoreInner>) {
        loop {
            {
                let mut state = self.state.lock();
                loop {
                    if !state.combining && !state.pending.is_empty() {
                        state.combining = true;
                        break;
                    }
                    if state.closed && !state.combining && state.pending.is_empty() {
                        return;
                    }
                    self.work.wait_for(&mut state, Duration::from_millis(IDLE_CHECK_MS));
                }
            }
            let mut rounds = self.rounds.lock();
            while self.take_round(&mut rounds) {
                self.run_round(&inner, &mut rounds);
            }
        }
    }

    /// Runs one round as the combiner. Should the round panic (it validates everything it
    /// reads, so that is a bug), the store refuses writes from then on (the round may have
    /// reserved space it never wrote), every append the round held is answered, and the
    /// combiner goes on: no append waits forever and no connection reader dies with it.
    fn run_round(&self, inner: &StoreInner, rounds: &mut Rounds) {
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| appender::run_round(inner, rounds)));
        if ran.is_err() {
            tracing::error!("an append round panicked; the store stops accepting writes");
            inner.running.set(running::NOT_WRITEABLE);
            rounds.abandon();
        }
    }

    /// Moves the next round's appends into `rounds`; when there are none, gives up the
    /// combiner role (under the queue lock, so a concurrent push sees it) and returns false.
    fn take_round(&self, rounds: &mut Rounds) -> bool {
        let mut state = self.state.lock();
        debug_assert!(state.combining, "only the combiner takes rounds");
        if state.pending.is_empty() {
            state.combining = false;
            let closed = state.closed;
            drop(state);
            if closed {
                // The appender thread may be waiting for the combiner to finish.
                self.work.notify_all();
            }
            return false;
        }
        appender::take_round(&mut state.pending, rounds);
        true
    }

    /// True once [`Self::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Refuses further appends; the appender thread finishes the queued ones and ends.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.work.notify_all();
    }
}
