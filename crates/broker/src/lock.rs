//! Queue locks for ordered consumption (Java `RebalanceLockManager`, behaviour spec §4.12).
//!
//! An orderly consumer may only consume a queue while it holds the broker's lock on it. A lock
//! is a lease: it lasts [`LOCK_MAX_LIVE_MS`] after it was last granted or renewed, and orderly
//! consumers renew theirs every 20 s. A queue is granted to the caller when nobody holds it, when
//! the caller already holds it (renewal), or when the holder's lease ran out (take-over);
//! otherwise it is refused. Unlocking only releases queues the caller holds.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use apogee_common::MessageQueue;
use parking_lot::Mutex;

/// How long a lock lasts without renewal (Java `rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE_MS: u64 = 60_000;

/// One held lock.
#[derive(Debug, Clone)]
struct LockEntry {
    client_id: String,
    renewed: Instant,
}

impl LockEntry {
    fn is_expired(&self, now: Instant, lease: Duration) -> bool {
        now.saturating_duration_since(self.renewed) > lease
    }
}

/// Locks by (group, queue).
#[derive(Debug)]
pub struct RebalanceLockManager {
    lease: Duration,
    groups: Mutex<HashMap<String, HashMap<MessageQueue, LockEntry>>>,
}

impl Default for RebalanceLockManager {
    fn default() -> Self {
        Self::new()
    }
}

impl RebalanceLockManager {
    /// No locks; leases of [`LOCK_MAX_LIVE_MS`].
    pub fn new() -> Self {
        Self::with_lease(Duration::from_millis(LOCK_MAX_LIVE_MS))
    }

    /// No locks; leases of `lease` (tests).
    pub fn with_lease(lease: Duration) -> Self {
        Self { lease, groups: Mutex::new(HashMap::new()) }
    }

    /// True when any queue is locked by the group (orderly consumers' retries go to the DLQ).
    pub fn is_group_locked(&self, group: &str) -> bool {
        let now = Instant::now();
        let groups = self.groups.lock();
        groups
            .get(group)
            .is_some_and(|queues| queues.values().any(|entry| !entry.is_expired(now, self.lease)))
    }

    /// Locks (or renews) every queue of `queues` that `client_id` may have; returns the ones it
    /// now holds (the LOCK_BATCH_MQ answer).
    pub fn lock_batch(
        &self,
        group: &str,
        queues: &BTreeSet<MessageQueue>,
        client_id: &str,
    ) -> BTreeSet<MessageQueue> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let table = groups.entry(group.to_owned()).or_default();
        let mut granted = BTreeSet::new();
        for queue in queues {
            let entry = table
                .entry(queue.clone())
                .or_insert_with(|| LockEntry { client_id: client_id.to_owned(), renewed: now });
            let mine = entry.client_id == client_id;
            if mine || entry.is_expired(now, self.lease) {
                if !mine {
                    tracing::info!(group, ?queue, previous = %entry.client_id, client_id, "expired queue lock taken over");
                    client_id.clone_into(&mut entry.client_id);
                }
                entry.renewed = now;
                granted.insert(queue.clone());
            } else {
                tracing::debug!(group, ?queue, holder = %entry.client_id, client_id, "queue locked by another client");
            }
        }
        if table.is_empty() {
            groups.remove(group);
        }
        granted
    }

    /// Locks one queue; true when `client_id` holds it now.
    pub fn try_lock(&self, group: &str, queue: &MessageQueue, client_id: &str) -> bool {
        let queues = BTreeSet::from([queue.clone()]);
        !self.lock_batch(group, &queues, client_id).is_empty()
    }

    /// Releases the queues of `queues` that `client_id` holds; others are left alone.
    pub fn unlock_batch(&self, group: &str, queues: &BTreeSet<MessageQueue>, client_id: &str) {
        let mut groups = self.groups.lock();
        let Some(table) = groups.get_mut(group) else { return };
        for queue in queues {
            match table.get(queue) {
                Some(entry) if entry.client_id == client_id => {
                    table.remove(queue);
                }
                Some(entry) => {
                    tracing::debug!(group, ?queue, holder = %entry.client_id, client_id, "unlock of a queue held by another client ignored");
                }
                None => {}
            }
        }
        if table.is_empty() {
            groups.remove(group);
        }
    }

    /// The client holding a live lock on the queue, if any (admin, diagnostics).
    pub fn holder(&self, group: &str, queue: &MessageQueue) -> Option<String> {
        let now = Instant::now();
        let groups = self.groups.lock();
        groups
            .get(group)
            .and_then(|table| table.get(queue))
            .filter(|entry| !entry.is_expired(now, self.lease))
            .map(|entry| entry.client_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(ids: &[i32]) -> BTreeSet<MessageQueue> {
        ids.iter().map(|id| MessageQueue::new("T", "b", *id)).collect()
    }

    #[test]
    fn owner_renews_others_are_refused_until_unlock() {
        let locks = RebalanceLockManager::new();
        assert!(!locks.is_group_locked("g"));
        assert_eq!(locks.lock_batch("g", &queues(&[0, 1]), "c1"), queues(&[0, 1]));
        assert!(locks.is_group_locked("g"));
        assert_eq!(locks.lock_batch("g", &queues(&[1, 2]), "c2"), queues(&[2]));
        assert_eq!(locks.lock_batch("g", &queues(&[0, 1]), "c1"), queues(&[0, 1]));
        assert_eq!(locks.holder("g", &MessageQueue::new("T", "b", 2)).as_deref(), Some("c2"));
        // Another group is independent.
        assert_eq!(locks.lock_batch("h", &queues(&[0]), "c2"), queues(&[0]));
        // Unlocking someone else's queue does nothing.
        locks.unlock_batch("g", &queues(&[0]), "c2");
        assert!(!locks.try_lock("g", &MessageQueue::new("T", "b", 0), "c2"));
        locks.unlock_batch("g", &queues(&[0, 1]), "c1");
        assert_eq!(locks.lock_batch("g", &queues(&[0, 1]), "c2"), queues(&[0, 1]));
    }

    #[test]
    fn expired_locks_are_taken_over() {
        let locks = RebalanceLockManager::with_lease(Duration::from_millis(30));
        assert_eq!(locks.lock_batch("g", &queues(&[0]), "c1"), queues(&[0]));
        assert!(locks.lock_batch("g", &queues(&[0]), "c2").is_empty());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!locks.is_group_locked("g"));
        assert_eq!(locks.holder("g", &MessageQueue::new("T", "b", 0)), None);
        assert_eq!(locks.lock_batch("g", &queues(&[0]), "c2"), queues(&[0]));
        assert!(locks.lock_batch("g", &queues(&[0]), "c1").is_empty());
    }
}
