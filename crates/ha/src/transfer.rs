//! What a master knows of its slaves, and the sends waiting for them (Java's
//! `GroupTransferService`, storage spec §6.5–§6.6).
//!
//! [`Replicas`] is what the store holds as its [`Replication`]: it is told of every append
//! round (waking the senders) and holds each SYNC_MASTER append until enough slaves report
//! its end. A slave's reader answers the waiters its report settles; a ticking thread
//! answers those whose `slaveTimeout` passed with FLUSH_SLAVE_TIMEOUT.
//!
//! It holds no reference to the store, so the store (which holds it) is freed normally.

use std::collections::{BTreeSet, VecDeque};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_store::{PutCallback, PutResult, PutStatus, Replication};
use parking_lot::Mutex;

use crate::auto_wire::SlaveHandshake;
use crate::config::HaConfig;
use crate::signal::OffsetSignal;
use crate::sync_state::{SyncState, SyncStateListener};

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
    /// AutoSwitch: the slave's controller id from its handshake; -1 before it.
    broker_id: AtomicI64,
    /// AutoSwitch: the handshake arrived (the writer answers it).
    handshake_seen: AtomicBool,
    /// AutoSwitch: the slave asked never to join the SyncStateSet.
    async_learner: AtomicBool,
    /// AutoSwitch: an empty slave asked for the newest file only.
    sync_from_last_file: AtomicBool,
    /// Milliseconds (since the master started) when the slave last had all the master had.
    caught_up_ms: AtomicU64,
    /// The master's end when the last frame went to this slave.
    last_transfer_end: AtomicU64,
}

impl SlaveLink {
    /// A link to `peer` over `socket` (a clone of the connection) that has reported nothing
    /// yet.
    pub fn new(peer: SocketAddr, socket: Option<TcpStream>) -> Self {
        Self {
            peer,
            ack_offset: AtomicI64::new(-1),
            closed: AtomicBool::new(false),
            socket,
            broker_id: AtomicI64::new(-1),
            handshake_seen: AtomicBool::new(false),
            async_learner: AtomicBool::new(false),
            sync_from_last_file: AtomicBool::new(false),
            caught_up_ms: AtomicU64::new(0),
            last_transfer_end: AtomicU64::new(0),
        }
    }

    /// The slave's controller id (-1 before its handshake, and always on classic HA).
    pub fn broker_id(&self) -> i64 {
        self.broker_id.load(Ordering::Acquire)
    }

    /// True once an AutoSwitch handshake arrived.
    pub fn handshake_seen(&self) -> bool {
        self.handshake_seen.load(Ordering::Acquire)
    }

    /// True when the slave's handshake asked for the newest file only.
    pub fn wants_last_file_only(&self) -> bool {
        self.sync_from_last_file.load(Ordering::Acquire)
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
    /// When the master started, the origin of the links' catch-up times.
    started: Instant,
    /// Controller mode only: the SyncStateSet.
    sync_state: Option<Mutex<SyncState>>,
    /// The confirm offset as last computed: on a member's ack and on a set change, not on
    /// every append (Java's too), so a joining slave is measured against a fixed mark.
    confirm: AtomicU64,
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
    /// No slave yet; the commit log ends at `written_end`. In controller mode the master's
    /// epoch starts at `epoch_start_offset`, and its SyncStateSet holds only itself until
    /// [`Self::apply_sync_state_set`].
    pub fn new(config: HaConfig, written_end: u64, epoch_start_offset: u64) -> Self {
        let written = OffsetSignal::default();
        written.advance(written_end);
        let sync_state = config
            .auto_switch
            .map(|auto| Mutex::new(SyncState::new(auto.local_broker_id, epoch_start_offset)));
        Self {
            config,
            links: Mutex::new(Vec::new()),
            waiters: Mutex::new(VecDeque::new()),
            written,
            pushed_max: AtomicU64::new(0),
            started: Instant::now(),
            sync_state,
            confirm: AtomicU64::new(written_end),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Takes a slave's AutoSwitch handshake.
    pub(crate) fn handshake(&self, link: &SlaveLink, handshake: SlaveHandshake) {
        link.broker_id.store(handshake.broker_id, Ordering::Release);
        link.async_learner.store(handshake.async_learner, Ordering::Release);
        link.sync_from_last_file.store(handshake.sync_from_last_file, Ordering::Release);
        link.caught_up_ms.store(self.now_ms(), Ordering::Release);
        link.handshake_seen.store(true, Ordering::Release);
    }

    /// The writer sent `link` a frame while the master's log ended at `master_end`.
    pub(crate) fn transferred(&self, link: &SlaveLink, master_end: u64) {
        link.last_transfer_end.store(master_end, Ordering::Release);
    }

    /// The writer has nothing left to send `link`: it has all the master has.
    pub(crate) fn caught_up(&self, link: &SlaveLink) {
        link.caught_up_ms.store(self.now_ms(), Ordering::Release);
    }

    /// The listener that carries SyncStateSet proposals (controller mode).
    pub fn set_sync_state_listener(&self, listener: Arc<dyn SyncStateListener>) {
        if let Some(state) = &self.sync_state {
            state.lock().set_listener(listener);
        }
    }

    /// Adopts the SyncStateSet the controllers decided (ignored unless newer).
    pub fn apply_sync_state_set(&self, members: BTreeSet<i64>, epoch: i32) {
        let Some(state) = &self.sync_state else { return };
        if state.lock().apply(members.clone(), epoch) {
            tracing::info!(?members, epoch, "SyncStateSet changed");
        }
        self.refresh_confirm_offset();
        // A smaller set may settle waiters; a shrink found meanwhile is proposed now.
        self.settle(None);
        self.check_sync_state_set();
    }

    /// The controllers refused (or never answered) the last proposal.
    pub fn sync_state_set_refused(&self) {
        if let Some(state) = &self.sync_state {
            state.lock().refused();
        }
    }

    /// What every counted member holds, as last computed (the master's end on classic HA).
    pub fn confirm_offset(&self) -> u64 {
        if self.sync_state.is_none() {
            return self.written.offset();
        }
        self.confirm.load(Ordering::Acquire)
    }

    /// Recomputes the confirm offset: the master's end, lowered to the ack of each connected
    /// member (a member without a connection changes nothing), never moved backwards.
    fn refresh_confirm_offset(&self) {
        let master_end = self.written.offset();
        let Some(state) = &self.sync_state else { return };
        let counted = state.lock().counted();
        let links = self.links.lock();
        let mut confirm = master_end;
        for link in links.iter().filter(|link| !link.is_closed() && counted.contains(&link.broker_id())) {
            if let Ok(ack) = u64::try_from(link.ack_offset()) {
                if ack > 0 {
                    confirm = confirm.min(ack);
                }
            }
        }
        self.confirm.fetch_max(confirm, Ordering::AcqRel);
    }

    /// Proposes the members that should leave: those without a live connection, and those
    /// that have not caught up for `haMaxTimeSlaveNotCatchup`.
    pub(crate) fn check_sync_state_set(&self) {
        let Some(state) = &self.sync_state else { return };
        let now = self.now_ms();
        let limit = self.config.max_time_slave_not_catchup_ms;
        let proposal = {
            let links = self.links.lock();
            let mut state = state.lock();
            let keep: BTreeSet<i64> = state
                .replicas()
                .filter(|&id| {
                    links.iter().any(|link| {
                        !link.is_closed()
                            && link.broker_id() == id
                            && now.saturating_sub(link.caught_up_ms.load(Ordering::Acquire)) <= limit
                    })
                })
                .collect();
            state.propose(keep)
        };
        if let Some(proposal) = proposal {
            proposal.send();
        }
    }

    /// Proposes `link`'s slave as a member once it has caught up.
    fn maybe_expand(&self, link: &SlaveLink, ack: u64) {
        let Some(state) = &self.sync_state else { return };
        let id = link.broker_id();
        if id < 0 || link.async_learner.load(Ordering::Acquire) {
            return;
        }
        let caught_up = ack >= link.last_transfer_end.load(Ordering::Acquire);
        if caught_up {
            link.caught_up_ms.store(self.now_ms(), Ordering::Release);
        }
        if state.lock().is_counted(id) {
            self.refresh_confirm_offset();
        }
        if !caught_up || ack < self.confirm_offset() {
            return;
        }
        let proposal = {
            let mut state = state.lock();
            if state.is_member(id) || ack < state.epoch_start_offset {
                return;
            }
            let mut wanted: BTreeSet<i64> = state.current().0;
            wanted.insert(id);
            state.propose(wanted)
        };
        if let Some(proposal) = proposal {
            proposal.send();
        }
    }

    /// Controller mode with `allAckInSyncStateSet`: the offset up to which every counted member
    /// other than the master holds the log (`u64::MAX` when the master is alone; 0 while a
    /// member has no connection). Computed once per settling round, not once per waiter.
    fn all_members_floor(&self) -> u64 {
        let Some(state) = &self.sync_state else { return u64::MAX };
        let counted = state.lock().counted();
        let local = self.config.auto_switch.map_or(-1, |auto| auto.local_broker_id);
        let links = self.links.lock();
        counted
            .iter()
            .filter(|&&id| id != local)
            .map(|&id| {
                links
                    .iter()
                    .filter(|link| !link.is_closed() && link.broker_id() == id)
                    .filter_map(|link| u64::try_from(link.ack_offset()).ok())
                    .max()
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The offset up to which `needed` copies (the master's included) hold the log: the
    /// `needed - 1`-th highest ack of a live slave (`u64::MAX` when the master alone is
    /// enough; 0 when too few slaves are connected).
    fn copies_floor(&self, needed: u32) -> u64 {
        let Some(slaves_needed) = (needed as usize).checked_sub(2) else { return u64::MAX };
        let links = self.links.lock();
        let mut acks: Vec<u64> = links
            .iter()
            .filter(|link| !link.is_closed())
            .filter_map(|link| u64::try_from(link.ack_offset()).ok())
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        acks.get(slaves_needed).copied().unwrap_or(0)
    }

    /// The offset up to which a send has the copies it needs, fixed for one settling round
    /// (computed once, not once per waiter).
    fn confirmed_floor(&self) -> u64 {
        if self.config.auto_switch.is_some() && self.config.all_ack_in_sync_state_set {
            self.all_members_floor()
        } else {
            self.copies_floor(self.config.needed_acks())
        }
    }

    /// Members counted now (controller mode; 1 otherwise).
    fn in_sync_members(&self) -> u32 {
        self.sync_state.as_ref().map_or(1, |state| state.lock().counted().len() as u32)
    }

    /// Adds a connected slave.
    pub(crate) fn add(&self, link: Arc<SlaveLink>) {
        self.links.lock().push(link);
    }

    /// Removes a slave whose connection ended.
    pub(crate) fn remove(&self, link: &Arc<SlaveLink>) {
        link.close();
        self.links.lock().retain(|other| !Arc::ptr_eq(other, link));
        // Java drops a member at once when its connection closes.
        self.check_sync_state_set();
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
        let offset = u64::try_from(offset).unwrap_or(0);
        self.pushed_max.fetch_max(offset, Ordering::AcqRel);
        self.maybe_expand(link, offset);
        self.settle(None);
    }

    /// Copies in sync (this master included): slaves close enough to the master's end to
    /// count (Java `isInSyncSlave`).
    fn in_sync_copies(&self) -> u32 {
        let master_end = self.written.offset();
        let links = self.links.lock();
        let close_enough = links
            .iter()
            .filter(|link| !link.is_closed())
            .filter_map(|link| u64::try_from(link.ack_offset()).ok())
            .filter(|&ack| master_end.saturating_sub(ack) < self.config.max_gap_not_in_sync_bytes)
            .count();
        1 + close_enough as u32
    }

    /// Answers every waiter whose end enough slaves hold, and, with `now`, every waiter whose
    /// deadline passed by then.
    pub(crate) fn settle(&self, now: Option<Instant>) {
        let mut answers = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            if waiters.is_empty() {
                return;
            }
            let floor = self.confirmed_floor();
            let mut index = 0;
            while index < waiters.len() {
                let waiter = &waiters[index];
                let done = waiter.next_offset <= floor;
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
    /// In controller mode it also looks for SyncStateSet members to drop every
    /// `checkSyncStateSetPeriod`.
    pub(crate) fn run_deadline_ticker(&self, stop: &AtomicBool) {
        let check_period = Duration::from_millis(self.config.check_sync_state_set_period_ms);
        let mut last_check = Instant::now();
        while !stop.load(Ordering::Acquire) {
            let idle = self.waiters.lock().is_empty();
            std::thread::sleep(Duration::from_millis(if idle { IDLE_TICK_MS } else { DEADLINE_TICK_MS }));
            self.settle(Some(Instant::now()));
            if last_check.elapsed() >= check_period {
                self.check_sync_state_set();
                last_check = Instant::now();
            }
        }
        self.fail_all();
    }
}

impl Replication for Replicas {
    fn appended(&self, end_offset: u64) {
        self.written.advance(end_offset);
    }

    fn waits_for_replicas(&self) -> bool {
        let auto_switch = self.config.auto_switch.is_some()
            && (self.config.all_ack_in_sync_state_set || self.config.min_in_sync_replicas > 1);
        auto_switch || self.config.needed_acks() > 1
    }

    fn await_replicas(&self, next_offset: u64, callback: PutCallback, mut result: PutResult) {
        if self.config.auto_switch.is_some() && self.in_sync_members() < self.config.min_in_sync_replicas {
            // Java refuses before storing; here the append is done, and the producer is told
            // that it does not count (it retries, and the copy may be read twice).
            result.status = PutStatus::InSyncReplicasNotEnough;
            callback.done(result);
            return;
        }
        if next_offset <= self.confirmed_floor() {
            callback.done(result);
            return;
        }
        let needed = self.config.needed_acks();
        if self.config.auto_switch.is_none() && self.in_sync_copies() < needed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AutoSwitch, BrokerRole};

    fn link(replicas: &Replicas, port: u16, broker_id: i64, ack: i64) -> Arc<SlaveLink> {
        let link = Arc::new(SlaveLink::new(SocketAddr::from(([127, 0, 0, 1], port)), None));
        link.broker_id.store(broker_id, Ordering::Release);
        link.ack_offset.store(ack, Ordering::Release);
        replicas.add(Arc::clone(&link));
        link
    }

    #[test]
    fn a_sync_master_confirms_up_to_the_lowest_ack_of_the_copies_it_needs() {
        let config =
            HaConfig { role: BrokerRole::SyncMaster, in_sync_replicas: Some(3), ..HaConfig::default() };
        let replicas = Replicas::new(config, 1_000, 0);
        assert_eq!(replicas.copies_floor(3), 0, "no slave yet");
        link(&replicas, 1, -1, 300);
        assert_eq!(replicas.copies_floor(2), 300);
        assert_eq!(replicas.copies_floor(3), 0, "one slave cannot make three copies");
        let second = link(&replicas, 2, -1, 100);
        assert_eq!(replicas.copies_floor(3), 100);
        assert_eq!(replicas.copies_floor(1), u64::MAX, "the master alone");
        replicas.remove(&second);
        assert_eq!(replicas.copies_floor(3), 0, "a closed slave counts for nothing");
        assert_eq!(replicas.confirmed_floor(), 0);
    }

    #[test]
    fn all_ack_waits_for_every_member_of_the_set_being_proposed_too() {
        let config = HaConfig {
            role: BrokerRole::SyncMaster,
            all_ack_in_sync_state_set: true,
            auto_switch: Some(AutoSwitch { local_broker_id: 1 }),
            ..HaConfig::default()
        };
        let replicas = Replicas::new(config, 1_000, 0);
        assert_eq!(replicas.confirmed_floor(), u64::MAX, "the master alone holds everything");
        replicas.apply_sync_state_set(BTreeSet::from([1, 2, 3]), 1);
        link(&replicas, 1, 2, 500);
        assert_eq!(replicas.confirmed_floor(), 0, "member 3 has no connection");
        let third = link(&replicas, 2, 3, 200);
        link(&replicas, 3, 4, 50);
        assert_eq!(replicas.confirmed_floor(), 200, "a non-member's ack does not lower it");
        replicas.remove(&third);
        assert_eq!(replicas.confirmed_floor(), 0);
        replicas.apply_sync_state_set(BTreeSet::from([1, 2]), 2);
        assert_eq!(replicas.confirmed_floor(), 500);
    }
}
