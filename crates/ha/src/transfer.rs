//! What a master knows of its slaves, and the sends waiting for them (Java's
//! `GroupTransferService`, storage spec §6.5–§6.6).
//!
//! [`Replicas`] is what the store holds as its [`Replication`]: it is told of every append
//! round (waking the senders) and holds each SYNC_MASTER append until enough slaves report
//! its end. A slave's reader answers the waiters its report settles; a ticking thread
//! answers those whose `slaveTimeout` passed with FLUSH_SLAVE_TIMEOUT.
//!
//! It holds no reference to the store, so the store (which holds it) is freed normally.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_store::{PutCallback, PutResult, PutStatus, Replication};
use parking_lot::Mutex;

use crate::config::HaConfig;
use crate::signal::OffsetSignal;

/// How often waiters are checked against their deadline.
pub const DEADLINE_TICK_MS: u64 = 10;
/// How long the ticker sleeps while nothing waits (an ASYNC_MASTER's usual state), so an idle
/// master does not wake a hundred times a second for nothing.
pub const IDLE_TICK_MS: u64 = 100;

/// One slave as the master sees it.
#[derive(Debug)]
pub struct SlaveLink {
    /// The slave's address.
    pub peer: SocketAddr,
    /// The slave's last reported commit-log end; -1 before its first report.
    ack_offset: AtomicI64,
    /// Set once the connection is closing; its reports no longer count.
    closed: AtomicBool,
    /// The connection, shut down to wake its threads when the master stops.
    socket: Option<TcpStream>,
}

impl SlaveLink {
    /// A link to `peer` over `socket` (a clone of the connection) that has reported nothing
    /// yet.
    pub fn new(peer: SocketAddr, socket: Option<TcpStream>) -> Self {
        Self { peer, ack_offset: AtomicI64::new(-1), closed: AtomicBool::new(false), socket }
    }

    /// The last reported end (-1: none yet).
    pub fn ack_offset(&self) -> i64 {
        self.ack_offset.load(Ordering::Acquire)
    }

    /// True once the connection is closing.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// A send waiting for its slaves.
struct Waiter {
    next_offset: u64,
    deadline: Instant,
    callback: PutCallback,
    result: PutResult,
}

/// See the module documentation.
pub struct Replicas {
    config: HaConfig,
    links: Mutex<Vec<Arc<SlaveLink>>>,
    waiters: Mutex<VecDeque<Waiter>>,
    /// The commit log's end as the appender announced it; senders wait on it.
    pub(crate) written: OffsetSignal,
    /// Highest end any slave reported.
    pushed_max: AtomicU64,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("slaves", &self.links.lock().len())
            .field("waiting", &self.waiters.lock().len())
            .finish()
    }
}

impl Replicas {
    /// No slave yet; the commit log ends at `written_end`.
    pub fn new(config: HaConfig, written_end: u64) -> Self {
        let written = OffsetSignal::default();
        written.advance(written_end);
        Self {
            config,
            links: Mutex::new(Vec::new()),
            waiters: Mutex::new(VecDeque::new()),
            written,
            pushed_max: AtomicU64::new(0),
        }
    }

    /// Adds a connected slave.
    pub(crate) fn add(&self, link: Arc<SlaveLink>) {
        self.links.lock().push(link);
    }

    /// Removes a slave whose connection ended.
    pub(crate) fn remove(&self, link: &Arc<SlaveLink>) {
        link.close();
        self.links.lock().retain(|other| !Arc::ptr_eq(other, link));
    }

    /// The connected slaves and their reported ends.
    pub fn slaves(&self) -> Vec<(SocketAddr, i64)> {
        self.links.lock().iter().map(|link| (link.peer, link.ack_offset())).collect()
    }

    /// The highest end any slave reported (Java `push2SlaveMaxOffset`).
    pub fn pushed_max_offset(&self) -> u64 {
        self.pushed_max.load(Ordering::Acquire)
    }

    /// Records a slave's report and answers the waiters it settles.
    pub(crate) fn report(&self, link: &SlaveLink, offset: i64) {
        link.ack_offset.fetch_max(offset, Ordering::AcqRel);
        self.pushed_max.fetch_max(u64::try_from(offset).unwrap_or(0), Ordering::AcqRel);
        self.settle(None);
    }

    /// Copies (this master included) holding the log up to `next_offset`, and copies in
    /// sync (close enough to the master's end to count, Java `isInSyncSlave`).
    fn count(&self, next_offset: u64) -> (u32, u32) {
        let master_end = self.written.offset();
        let links = self.links.lock();
        let mut acked = 1;
        let mut in_sync = 1;
        for link in links.iter().filter(|link| !link.is_closed()) {
            let Ok(ack) = u64::try_from(link.ack_offset()) else { continue };
            if ack >= next_offset {
                acked += 1;
            }
            if master_end.saturating_sub(ack) < self.config.max_gap_not_in_sync_bytes {
                in_sync += 1;
            }
        }
        (acked, in_sync)
    }

    /// Answers every waiter whose end enough slaves hold, and, with `now`, every waiter whose
    /// deadline passed by then.
    pub(crate) fn settle(&self, now: Option<Instant>) {
        let needed = self.config.needed_acks();
        let mut answers = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            if waiters.is_empty() {
                return;
            }
            let mut index = 0;
            while index < waiters.len() {
                let waiter = &waiters[index];
                let done = self.count(waiter.next_offset).0 >= needed;
                let late = now.is_some_and(|now| now >= waiter.deadline);
                if done || late {
                    if let Some(mut waiter) = waiters.remove(index) {
                        if !done {
                            waiter.result.status = PutStatus::FlushSlaveTimeout;
                        }
                        answers.push(waiter);
                    }
                } else {
                    index += 1;
                }
            }
        }
        let late: Vec<u64> = answers
            .iter()
            .filter(|waiter| waiter.result.status == PutStatus::FlushSlaveTimeout)
            .map(|waiter| waiter.next_offset)
            .collect();
        if let (Some(first), Some(last)) = (late.first(), late.last()) {
            // One line per tick, not one per send: a lost slave times out every send.
            tracing::warn!(sends = late.len(), first, last, "sends not confirmed by a slave in time");
        }
        for waiter in answers {
            waiter.callback.done(waiter.result);
        }
    }

    /// Closes every slave connection (the master stops).
    pub(crate) fn close_all(&self) {
        for link in self.links.lock().drain(..) {
            link.close();
        }
    }

    /// Answers every waiter with FLUSH_SLAVE_TIMEOUT (the master stops).
    pub(crate) fn fail_all(&self) {
        let drained: Vec<Waiter> = self.waiters.lock().drain(..).collect();
        for mut waiter in drained {
            waiter.result.status = PutStatus::FlushSlaveTimeout;
            waiter.callback.done(waiter.result);
        }
    }

    /// The deadline ticker's body: answers late waiters until `stop` is set.
    pub(crate) fn run_deadline_ticker(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let idle = self.waiters.lock().is_empty();
            std::thread::sleep(Duration::from_millis(if idle { IDLE_TICK_MS } else { DEADLINE_TICK_MS }));
            self.settle(Some(Instant::now()));
        }
        self.fail_all();
    }
}

impl Replication for Replicas {
    fn appended(&self, end_offset: u64) {
        self.written.advance(end_offset);
    }

    fn waits_for_replicas(&self) -> bool {
        self.config.needed_acks() > 1
    }

    fn await_replicas(&self, next_offset: u64, callback: PutCallback, mut result: PutResult) {
        let needed = self.config.needed_acks();
        let (acked, in_sync) = self.count(next_offset);
        if acked >= needed {
            callback.done(result);
            return;
        }
        if in_sync < needed {
            // Nobody could confirm it in time: say so now rather than after slaveTimeout.
            result.status = PutStatus::SlaveNotAvailable;
            callback.done(result);
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.config.slave_timeout_ms);
        self.waiters.lock().push_back(Waiter { next_offset, deadline, callback, result });
        // A report that came between the count and the push settles it here.
        self.settle(None);
    }
}
