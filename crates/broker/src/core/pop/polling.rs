//! Pops parked until a message arrives (long polling, behaviour spec §8.4). A pop that finds
//! nothing waits here, keyed by the topics it reads (the topic and its pop retry topic), until
//! the store publishes a message in one of them ([`ArrivalListener::arrived`], the same signal
//! parked pulls are woken by), an orderly queue is unblocked, the broker stops, or its poll
//! time ends. At most `popPollingSize` pops wait per topic and `maxPopPollingSize` in all;
//! past that a pop is answered POLLING_FULL.

use std::collections::HashMap;
use std::sync::Arc;

use apogee_store::ArrivalListener;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::long_polling::{HoldService, ParkGate, ParkRefused, Parked};

/// The one-shot wake-up of a parked pop, shared by its entries under each topic it reads.
type Wake = Arc<Mutex<Option<oneshot::Sender<()>>>>;

/// One parked pop, as the waker sees it.
#[derive(Debug)]
struct Waiter {
    id: u64,
    /// The queue it reads, or -1 for any.
    queue_id: i32,
    wake: Wake,
}

/// The parked pops.
#[derive(Debug, Default)]
pub struct PopPolling {
    /// Topic → waiters; a topic is removed with its last waiter.
    topics: Mutex<HashMap<String, Vec<Waiter>>>,
    gate: ParkGate,
}

impl PopPolling {
    /// Pops parked now (POLLING_INFO answers with the count of one queue).
    pub fn parked(&self) -> usize {
        self.gate.parked()
    }

    /// Pops parked on `topic` reading `queue_id` (or any queue).
    pub fn parked_on(&self, topic: &str, queue_id: i32) -> usize {
        self.topics
            .lock()
            .get(topic)
            .map_or(0, |waiters| waiters.iter().filter(|w| w.queue_id == queue_id || w.queue_id < 0).count())
    }

    /// Parks a pop reading `queue_id` (-1: any) of every topic in `topics`, within
    /// `per_topic_limit` waiters per topic and `total_limit` in all.
    pub fn park(
        self: &Arc<Self>,
        topics: &[&str],
        queue_id: i32,
        per_topic_limit: usize,
        total_limit: usize,
    ) -> Result<ParkedPop, ParkRefused> {
        let id = self.gate.admit(total_limit)?;
        let (wake, woken) = oneshot::channel();
        let place = topics.iter().map(|topic| (*topic).to_owned()).collect();
        let parked = Parked::new(Arc::clone(self), place, id, woken);
        {
            let mut table = self.topics.lock();
            if topics
                .iter()
                .any(|topic| table.get(*topic).is_some_and(|waiters| waiters.len() >= per_topic_limit))
            {
                drop(table);
                return Err(ParkRefused::Full);
            }
            let wake: Wake = Arc::new(Mutex::new(Some(wake)));
            for topic in topics {
                let waiter = Waiter { id, queue_id, wake: Arc::clone(&wake) };
                table.entry((*topic).to_owned()).or_default().push(waiter);
            }
        }
        if self.gate.is_stopped() {
            self.wake_all();
        }
        Ok(parked)
    }

    /// Wakes the pops waiting on `topic` (any queue, or `queue_id`).
    pub fn wake_topic(&self, topic: &str, queue_id: i32) {
        let woken: Vec<Wake> = {
            let table = self.topics.lock();
            let Some(waiters) = table.get(topic) else { return };
            waiters
                .iter()
                .filter(|w| queue_id < 0 || w.queue_id < 0 || w.queue_id == queue_id)
                .map(|w| Arc::clone(&w.wake))
                .collect()
        };
        fire(woken);
    }

    /// Wakes every parked pop and refuses new ones (broker stopping).
    pub fn stop(&self) {
        self.gate.stop();
        self.wake_all();
    }

    fn wake_all(&self) {
        let woken: Vec<Wake> =
            self.topics.lock().values().flatten().map(|waiter| Arc::clone(&waiter.wake)).collect();
        fire(woken);
    }
}

/// Fires wake-ups, outside the table's lock; a pop already woken (through another of its
/// topics) is skipped.
fn fire(woken: Vec<Wake>) {
    for wake in woken {
        if let Some(sender) = wake.lock().take() {
            // The pop may have timed out meanwhile; nothing to do then.
            let _ = sender.send(());
        }
    }
}

impl HoldService for PopPolling {
    /// The topics the pop reads.
    type Place = Vec<String>;

    fn unpark(&self, topics: &Vec<String>, id: u64) {
        let mut table = self.topics.lock();
        for topic in topics {
            if let Some(waiters) = table.get_mut(topic) {
                waiters.retain(|waiter| waiter.id != id);
                if waiters.is_empty() {
                    table.remove(topic);
                }
            }
        }
    }

    fn gate(&self) -> &ParkGate {
        &self.gate
    }
}

impl ArrivalListener for PopPolling {
    fn arrived(&self, topic: &str, queue_id: i32, _max_offset: i64) {
        // Cheap when nobody pops at all: one atomic load, no lock.
        if self.parked() == 0 {
            return;
        }
        self.wake_topic(topic, queue_id);
    }
}

/// A parked pop: await [`Parked::woken`]; dropping it unparks.
pub type ParkedPop = Parked<PopPolling>;

/// Fans the store's one arrival signal out to parked pulls and parked pops.
pub struct Arrivals {
    /// Listeners, each told of every arrival.
    pub listeners: Vec<Arc<dyn ArrivalListener>>,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Arrivals").field("listeners", &self.listeners.len()).finish()
    }
}

impl ArrivalListener for Arrivals {
    fn arrived(&self, topic: &str, queue_id: i32, max_offset: i64) {
        for listener in &self.listeners {
            listener.arrived(topic, queue_id, max_offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn arrivals_wake_pops_of_the_topic_and_queue() {
        let polling = Arc::new(PopPolling::default());
        let mut any = polling.park(&["T", "%RETRY%G_T"], -1, 10, 10).unwrap();
        let mut queue_one = polling.park(&["T"], 1, 10, 10).unwrap();
        assert_eq!(polling.parked_on("T", 1), 2);
        polling.arrived("%RETRY%G_T", 0, 1);
        assert!(any.woken(Duration::from_secs(5)).await);
        assert!(!queue_one.woken(Duration::from_millis(20)).await);
        polling.arrived("T", 1, 1);
        assert!(queue_one.woken(Duration::from_secs(5)).await);
        drop((any, queue_one));
        assert_eq!(polling.parked(), 0);
        assert!(polling.topics.lock().is_empty());
    }

    #[tokio::test]
    async fn limits_refuse_with_full() {
        let polling = Arc::new(PopPolling::default());
        let first = polling.park(&["T"], -1, 1, 10).unwrap();
        assert_eq!(polling.park(&["T"], -1, 1, 10).unwrap_err(), ParkRefused::Full);
        assert_eq!(polling.park(&["U"], -1, 5, 1).unwrap_err(), ParkRefused::Full);
        drop(first);
        assert_eq!(polling.parked(), 0);
        polling.stop();
        assert_eq!(polling.park(&["T"], -1, 1, 10).unwrap_err(), ParkRefused::Stopping);
    }
}
