//! Flushing the commit log: group commit for SYNC_FLUSH, a periodic flusher for ASYNC_FLUSH
//! (storage spec §5.1–§5.2).
//!
//! Under SYNC_FLUSH the appender queues each round here. The flusher thread flushes once up
//! to the end of everything queued, then publishes the rounds' queue entries and answers
//! their waiters: one flush for every append waiting. A watcher answers waiters whose
//! deadline passed with FLUSH_DISK_TIMEOUT while the flush is still stuck; their messages
//! stay stored and become visible once the flush completes.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::consume_queue::ConsumeQueue;
use crate::put::{PutCallback, PutResult, PutStatus};
use crate::running;
use crate::store::StoreInner;

/// How long the flusher sleeps when there is nothing queued.
const IDLE_WAIT_MS: u64 = 10;
/// Period of the deadline watcher.
const WATCH_PERIOD_MS: u64 = 10;

/// One appender round waiting for its flush.
pub(crate) struct PendingFlush {
    /// Commit-log offset the round ends at.
    pub end_offset: u64,
    /// After this, waiters get FLUSH_DISK_TIMEOUT.
    pub deadline: Instant,
    /// Appends to answer after the flush.
    pub waiters: Vec<(PutCallback, PutResult)>,
    /// Queue entries to publish after the flush.
    pub publications: Vec<(Arc<ConsumeQueue>, i64)>,
}

/// The queue between the appender and the flusher.
#[derive(Default)]
pub(crate) struct GroupCommit {
    pending: Mutex<VecDeque<PendingFlush>>,
    /// Held from taking flushed rounds off `pending` until their queue entries are published,
    /// so [`settle`] knows no publication is in flight once it holds it.
    publishing: Mutex<()>,
    ready: Condvar,
    stopped: Mutex<bool>,
    /// Flushes done by the group commit.
    pub flushes: AtomicU64,
    /// Appends answered after those flushes.
    pub flushed_appends: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("pending", &self.pending.lock().len()).finish()
    }
}

impl GroupCommit {
    pub(crate) fn push(&self, round: PendingFlush) {
        self.pending.lock().push_back(round);
        self.ready.notify_one();
    }

    pub(crate) fn stop(&self) {
        *self.stopped.lock() = true;
        self.ready.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }
}

/// The SYNC_FLUSH flusher thread.
pub(crate) fn run_group_commit(inner: Arc<StoreInner>) {
    let group = &inner.group_commit;
    loop {
        let target = {
            let mut pending = group.pending.lock();
            if pending.is_empty() {
                if group.is_stopped() {
                    return;
                }
                group.ready.wait_for(&mut pending, Duration::from_millis(IDLE_WAIT_MS));
            }
            pending.back().map(|round| round.end_offset)
        };
        let Some(target) = target else { continue };
        let timestamp = inner.commit_log.last_store_timestamp();
        let flushed = match inner.commit_log.flush(0) {
            Ok(flushed) => flushed,
            Err(error) => {
                tracing::error!(%error, "commit log flush failed; store stops accepting writes");
                inner.running.set(running::NOT_WRITEABLE);
                std::thread::sleep(Duration::from_millis(IDLE_WAIT_MS));
                continue;
            }
        };
        if flushed >= target {
            inner.checkpoint.update(|values| values.physic_msg_timestamp = timestamp);
        }
        group.flushes.fetch_add(1, Ordering::Relaxed);
        complete_flushed(&inner, flushed);
    }
}

/// Publishes the queue entries of the rounds flushed below `flushed` and answers their waiters.
fn complete_flushed(inner: &StoreInner, flushed: u64) {
    let group = &inner.group_commit;
    let mut done = Vec::new();
    {
        let _publishing = group.publishing.lock();
        {
            let mut pending = group.pending.lock();
            while pending.front().is_some_and(|round| round.end_offset <= flushed) {
                if let Some(round) = pending.pop_front() {
                    done.push(round);
                }
            }
        }
        for round in &mut done {
            inner.publish(&mut round.publications);
        }
    }
    for round in done {
        group.flushed_appends.fetch_add(round.waiters.len() as u64, Ordering::Relaxed);
        for (callback, result) in round.waiters {
            callback.done(result);
        }
    }
}

/// Completes every round queued for the group commit now: flushes the commit log, publishes
/// the rounds' queue entries and answers their waiters. The caller holds the combiner role
/// (no new round can be queued), so on return no publication from before is still pending or
/// in flight: [`crate::truncate`] runs it before it moves queue ends back.
pub(crate) fn settle(inner: &StoreInner) -> io::Result<()> {
    if inner.group_commit.pending.lock().is_empty() {
        // The flusher may still be publishing what it took: wait for it.
        drop(inner.group_commit.publishing.lock());
        return Ok(());
    }
    let flushed = inner.commit_log.flush(0)?;
    complete_flushed(inner, flushed);
    let left = inner.group_commit.pending.lock().len();
    if left > 0 {
        // Every queued round ends at or below the log's end, which the flush just reached.
        return Err(io::Error::other(format!("{left} group-commit rounds end past the flushed log")));
    }
    Ok(())
}

/// Answers SYNC_FLUSH waiters whose flush is overdue.
pub(crate) fn run_deadline_watcher(inner: Arc<StoreInner>) {
    let group = &inner.group_commit;
    while !group.is_stopped() || !group.pending.lock().is_empty() {
        std::thread::sleep(Duration::from_millis(WATCH_PERIOD_MS));
        let now = Instant::now();
        let mut overdue = Vec::new();
        {
            let mut pending = group.pending.lock();
            for round in pending.iter_mut() {
                if round.deadline > now {
                    break;
                }
                overdue.append(&mut round.waiters);
            }
        }
        for (callback, mut result) in overdue {
            result.status = PutStatus::FlushDiskTimeout;
            callback.done(result);
        }
    }
}

/// How often the ASYNC_FLUSH flusher starts writeback of what was appended since its last
/// turn (see [`crate::mapped_file::MappedFile::start_writeback`]).
pub(crate) const WRITEBACK_PERIOD: Duration = Duration::from_millis(10);

/// The ASYNC_FLUSH flusher's state: every [`WRITEBACK_PERIOD`] it starts writeback of the new
/// pages, every `flushIntervalCommitLog` it flushes when enough pages are dirty, and every
/// `flushCommitLogThoroughInterval` it flushes everything.
#[derive(Debug)]
pub(crate) struct AsyncFlusher {
    flush_period: Duration,
    last_flush: Instant,
    last_thorough: Instant,
    writeback_failing: bool,
}

impl AsyncFlusher {
    /// A flusher whose periods start now.
    pub(crate) fn new(inner: &StoreInner) -> Self {
        Self {
            flush_period: Duration::from_millis(inner.config.flush_interval_commit_log_ms.max(1)),
            last_flush: Instant::now(),
            last_thorough: Instant::now(),
            writeback_failing: false,
        }
    }

    /// Time between two calls of [`Self::tick`].
    pub(crate) fn period(&self) -> Duration {
        WRITEBACK_PERIOD.min(self.flush_period)
    }

    /// One turn: a flush when its period has passed, otherwise writeback of the new pages.
    pub(crate) fn tick(&mut self, inner: &StoreInner) {
        if self.last_flush.elapsed() >= self.flush_period {
            self.last_flush = Instant::now();
            async_flush_tick(inner, &mut self.last_thorough);
            return;
        }
        match inner.commit_log.start_writeback() {
            Ok(()) => self.writeback_failing = false,
            // The flush reports the error that matters; say once that writeback is failing.
            Err(error) if !std::mem::replace(&mut self.writeback_failing, true) => {
                tracing::warn!(%error, "starting commit-log writeback failed");
            }
            Err(_) => {}
        }
    }
}

/// The flush of the ASYNC_FLUSH flusher: when enough pages are dirty, or everything when the
/// thorough interval has passed.
fn async_flush_tick(inner: &StoreInner, last_thorough: &mut Instant) {
    let thorough =
        last_thorough.elapsed() >= Duration::from_millis(inner.config.flush_commit_log_thorough_interval_ms);
    let least_pages = if thorough { 0 } else { inner.config.flush_commit_log_least_pages };
    let timestamp = inner.commit_log.last_store_timestamp();
    let target = inner.commit_log.max_offset();
    match inner.commit_log.flush(least_pages) {
        Ok(flushed) => {
            if thorough {
                *last_thorough = Instant::now();
            }
            if flushed >= target {
                inner.checkpoint.update(|values| values.physic_msg_timestamp = timestamp);
            }
        }
        Err(error) => {
            tracing::error!(%error, "commit log flush failed; store stops accepting writes");
            inner.running.set(running::NOT_WRITEABLE);
        }
    }
}
