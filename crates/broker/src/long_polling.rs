//! Pulls parked until a message arrives (long polling, behaviour spec §4.10).
//!
//! A pull that finds nothing new and carries the suspend flag is not answered at once: its
//! handler parks here, keyed by (topic, queue), and sleeps until one of
//!
//! - the store publishes messages in that queue past the pull's offset
//!   ([`ArrivalListener::arrived`], called on a store thread: it only looks the queue up and
//!   fires the waiters' one-shot channels);
//! - the periodic checker ([`run_checker`], every [`CHECK_INTERVAL_MS`]) sees the queue's max
//!   offset past the pull's offset (a safety net for anything missed);
//! - the client's connection closes, or the broker stops;
//! - the hold time runs out (the handler's own timer).
//!
//! The handler then reads once more without suspending and answers. At most
//! [`MAX_PARKED_PULLS`] pulls are parked at a time; the rest are refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apogee_store::ArrivalListener;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::BrokerState;

/// Most pulls parked at once, across all connections; further ones are answered SYSTEM_BUSY.
pub const MAX_PARKED_PULLS: usize = 100_000;

/// Period of the safety-net check of parked pulls (Java: 5 s with long polling on).
pub const CHECK_INTERVAL_MS: u64 = 5_000;

/// Shortest check period when short polling sets it.
pub const MIN_CHECK_INTERVAL_MS: u64 = 100;

/// One parked pull, as the waker sees it.
#[derive(Debug)]
struct Waiter {
    id: u64,
    /// The pull's offset: it wakes once the queue's max offset passes it.
    offset: i64,
    connection_id: u64,
    wake: oneshot::Sender<()>,
}

/// Queue id → waiters.
type QueueWaiters = HashMap<i32, Vec<Waiter>>;

/// Why a pull or a pop could not be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkRefused {
    /// The limit of parked requests is reached: a pull is answered SYSTEM_BUSY (past
    /// [`MAX_PARKED_PULLS`]), a pop POLLING_FULL.
    Full,
    /// The broker is stopping: answer now.
    Stopping,
}

/// Admission to a holding service, shared by parked pulls and parked pops: how many are
/// parked, their ids, and whether the broker is stopping.
#[derive(Debug, Default)]
pub struct ParkGate {
    parked: AtomicUsize,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

impl ParkGate {
    /// Admits one more parked request while the broker runs and fewer than `limit` are
    /// parked; gives its id. Each admitted request is [`ParkGate::left`] once.
    pub fn admit(&self, limit: usize) -> Result<u64, ParkRefused> {
        if self.is_stopped() {
            return Err(ParkRefused::Stopping);
        }
        self.parked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| (count < limit).then_some(count + 1))
            .map_err(|_| ParkRefused::Full)?;
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// An admitted request is no longer parked.
    pub fn left(&self) {
        self.parked.fetch_sub(1, Ordering::AcqRel);
    }

    /// Requests parked now.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Refuses new requests from now on (broker stopping).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Whether the broker is stopping (a park that raced with the stop must wake itself).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// Parked pulls by queue.
#[derive(Debug, Default)]
pub struct PullRequestHoldService {
    /// Topic → queue → waiters; a topic is removed with its last waiter.
    topics: Mutex<HashMap<String, QueueWaiters>>,
    gate: ParkGate,
}

impl PullRequestHoldService {
    /// None parked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of pulls parked now.
    pub fn parked(&self) -> usize {
        self.gate.parked()
    }

    /// Parks a pull of (`topic`, `queue_id`) at `offset` from connection `connection_id`.
    /// The returned handle is awaited with [`ParkedPull::woken`]; dropping it unparks.
    pub fn park(
        self: &Arc<Self>,
        topic: &str,
        queue_id: i32,
        offset: i64,
        connection_id: u64,
    ) -> Result<ParkedPull, ParkRefused> {
        let id = self.gate.admit(MAX_PARKED_PULLS)?;
        let (wake, woken) = oneshot::channel();
        {
            let mut topics = self.topics.lock();
            topics.entry(topic.to_owned()).or_default().entry(queue_id).or_default().push(Waiter {
                id,
                offset,
                connection_id,
                wake,
            });
        }
        let parked = Parked::new(Arc::clone(self), (topic.to_owned(), queue_id), id, woken);
        // A stop that raced with this park must still wake it.
        if self.gate.is_stopped() {
            self.wake_all();
        }
        Ok(parked)
    }

    /// Wakes the parked pulls of (`topic`, `queue_id`) whose offset is below `max_offset`.
    pub fn wake_queue(&self, topic: &str, queue_id: i32, max_offset: i64) {
        self.wake_where(|waiter_topic, waiter_queue, waiter| {
            waiter_topic == topic && waiter_queue == queue_id && waiter.offset < max_offset
        });
    }

    /// Wakes the parked pulls of a connection (it closed: nobody waits for their answer).
    pub fn wake_connection(&self, connection_id: u64) {
        self.wake_where(|_, _, waiter| waiter.connection_id == connection_id);
    }

    /// Wakes every parked pull and refuses new ones (broker stopping).
    pub fn stop(&self) {
        self.gate.stop();
        self.wake_all();
    }

    /// Wakes every parked pull.
    pub fn wake_all(&self) {
        self.wake_where(|_, _, _| true);
    }

    /// The queues with parked pulls, with the lowest parked offset of each.
    pub fn parked_queues(&self) -> Vec<(String, i32, i64)> {
        let topics = self.topics.lock();
        let mut queues = Vec::new();
        for (topic, waiters) in topics.iter() {
            for (queue_id, list) in waiters {
                if let Some(lowest) = list.iter().map(|waiter| waiter.offset).min() {
                    queues.push((topic.clone(), *queue_id, lowest));
                }
            }
        }
        queues
    }

    fn wake_where(&self, mut wake: impl FnMut(&str, i32, &Waiter) -> bool) {
        let mut woken = Vec::new();
        {
            let mut topics = self.topics.lock();
            topics.retain(|topic, queues| {
                queues.retain(|queue_id, waiters| {
                    let mut index = 0;
                    while index < waiters.len() {
                        if wake(topic, *queue_id, &waiters[index]) {
                            woken.push(waiters.swap_remove(index).wake);
                        } else {
                            index += 1;
                        }
                    }
                    !waiters.is_empty()
                });
                !queues.is_empty()
            });
        }
        for sender in woken {
            // The handler may have timed out meanwhile; nothing to do then.
            let _ = sender.send(());
        }
    }
}

impl HoldService for PullRequestHoldService {
    /// (topic, queue id).
    type Place = (String, i32);

    fn unpark(&self, (topic, queue_id): &(String, i32), id: u64) {
        let (topic, queue_id) = (topic.as_str(), *queue_id);
        let mut topics = self.topics.lock();
        if let Some(queues) = topics.get_mut(topic) {
            if let Some(waiters) = queues.get_mut(&queue_id) {
                waiters.retain(|waiter| waiter.id != id);
                if waiters.is_empty() {
                    queues.remove(&queue_id);
                }
            }
            if queues.is_empty() {
                topics.remove(topic);
            }
        }
    }

    fn gate(&self) -> &ParkGate {
        &self.gate
    }
}

impl ArrivalListener for PullRequestHoldService {
    fn arrived(&self, topic: &str, queue_id: i32, max_offset: i64) {
        let mut woken = Vec::new();
        {
            let mut topics = self.topics.lock();
            let Some(queues) = topics.get_mut(topic) else { return };
            let Some(waiters) = queues.get_mut(&queue_id) else { return };
            let mut index = 0;
            while index < waiters.len() {
                if waiters[index].offset < max_offset {
                    woken.push(waiters.swap_remove(index).wake);
                } else {
                    index += 1;
                }
            }
            if waiters.is_empty() {
                queues.remove(&queue_id);
                if queues.is_empty() {
                    topics.remove(topic);
                }
            }
        }
        for sender in woken {
            let _ = sender.send(());
        }
    }
}

/// A holding service as its parked handles see it: where a request waits and how it leaves.
/// Parked pulls and parked pops differ in where they wait, not in how a handle waits or
/// leaves, so one handle type ([`Parked`]) serves both.
pub trait HoldService {
    /// Where one request waits in the service's table.
    type Place: std::fmt::Debug;

    /// Removes waiter `id` from `place` (its handle was dropped).
    fn unpark(&self, place: &Self::Place, id: u64);

    /// The service's admission, freed once per parked handle.
    fn gate(&self) -> &ParkGate;
}

/// A parked request: await [`Self::woken`]; dropping the handle unparks and frees its place.
#[derive(Debug)]
pub struct Parked<S: HoldService> {
    service: Arc<S>,
    place: S::Place,
    id: u64,
    woken: oneshot::Receiver<()>,
}

impl<S: HoldService> Parked<S> {
    /// The handle of waiter `id`, parked in `service` at `place`; `woken` fires its wake-up.
    pub(crate) fn new(service: Arc<S>, place: S::Place, id: u64, woken: oneshot::Receiver<()>) -> Self {
        Self { service, place, id, woken }
    }

    /// Waits until woken or until `hold` has passed; true when woken.
    pub async fn woken(&mut self, hold: Duration) -> bool {
        matches!(tokio::time::timeout(hold, &mut self.woken).await, Ok(Ok(())))
    }
}

impl<S: HoldService> Drop for Parked<S> {
    fn drop(&mut self) {
        self.service.unpark(&self.place, self.id);
        self.service.gate().left();
    }
}

/// A parked pull.
pub type ParkedPull = Parked<PullRequestHoldService>;

/// Re-checks parked pulls every [`CHECK_INTERVAL_MS`] (or `shortPollingTimeMills` when long
/// polling is off), waking those whose queue moved past them; wakes everything when the broker
/// stops.
pub async fn run_checker(state: Arc<BrokerState>) {
    let period_ms = if state.config.long_polling_enable {
        CHECK_INTERVAL_MS
    } else {
        state.config.short_polling_time_ms.clamp(MIN_CHECK_INTERVAL_MS, CHECK_INTERVAL_MS)
    };
    let period = Duration::from_millis(period_ms);
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopping.changed() => {
                state.pulls.stop();
                return;
            }
        }
        for (topic, queue_id, lowest) in state.pulls.parked_queues() {
            let max_offset = state.store.max_offset(&topic, queue_id);
            if max_offset > lowest {
                state.pulls.wake_queue(&topic, queue_id, max_offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn arrival_wakes_only_pulls_behind_the_new_max() {
        let service = Arc::new(PullRequestHoldService::new());
        let mut behind = service.park("T", 0, 5, 1).unwrap();
        let mut ahead = service.park("T", 0, 9, 1).unwrap();
        let mut other = service.park("T", 1, 5, 2).unwrap();
        assert_eq!(service.parked(), 3);
        service.arrived("T", 0, 6);
        assert!(behind.woken(Duration::from_secs(5)).await);
        assert!(!ahead.woken(Duration::from_millis(20)).await);
        assert!(!other.woken(Duration::from_millis(20)).await);
        service.wake_connection(2);
        assert!(other.woken(Duration::from_secs(5)).await);
        drop((behind, other));
        assert_eq!(service.parked(), 1);
        assert_eq!(service.parked_queues(), vec![("T".to_owned(), 0, 9)]);
        service.stop();
        assert!(ahead.woken(Duration::from_secs(5)).await);
        assert_eq!(service.park("T", 0, 1, 1).unwrap_err(), ParkRefused::Stopping);
        drop(ahead);
        assert_eq!(service.parked(), 0);
        assert!(service.topics.lock().is_empty());
    }

    #[tokio::test]
    async fn the_number_of_parked_pulls_is_bounded() {
        let service = Arc::new(PullRequestHoldService::new());
        service.gate.parked.store(MAX_PARKED_PULLS, Ordering::Relaxed);
        assert_eq!(service.park("T", 0, 1, 1).unwrap_err(), ParkRefused::Full);
        service.gate.parked.store(MAX_PARKED_PULLS - 1, Ordering::Relaxed);
        let parked = service.park("T", 0, 1, 1).unwrap();
        assert_eq!(service.park("T", 0, 1, 1).unwrap_err(), ParkRefused::Full);
        drop(parked);
        assert_eq!(service.parked(), MAX_PARKED_PULLS - 1);
    }
}
