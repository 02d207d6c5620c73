//! The client-side cache of one assigned queue (Java `ProcessQueue`, spec behaviour §4.11):
//! messages pulled but not yet consumed, what flow control measures, and the offset that is
//! safe to commit.
//!
//! The committed offset must never pass a message still being consumed, or a crash would lose
//! it; so the cache keeps every in-flight message by queue offset and the commit offset is the
//! smallest one still cached.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use apogee_common::message::MessageExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A client-side lock is trusted this long after the broker last granted it (Java
/// `rocketmq.client.rebalance.lockMaxLiveTime`); the broker's own lease is 60 s.
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(30);

/// A queue whose pull loop has not run for this long is considered stuck and recreated by the
/// next rebalance (Java `rocketmq.client.pull.pullMaxIdleTime`).
pub const PULL_MAX_IDLE: Duration = Duration::from_secs(120);

/// Per-queue flow-control limits (spec §4.8): pulling pauses while any is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowControlLimits {
    /// Most messages cached (`pullThresholdForQueue`, default 1000).
    pub max_cached_messages: usize,
    /// Most cached body bytes, in whole MiB (`pullThresholdSizeForQueue`, default 100).
    pub max_cached_mib: u64,
    /// Largest distance between the first and last cached offsets
    /// (`consumeConcurrentlyMaxSpan`, default 2000); `None` for orderly consumers, which
    /// consume strictly in order anyway.
    pub max_offset_span: Option<i64>,
}

impl Default for FlowControlLimits {
    fn default() -> Self {
        Self { max_cached_messages: 1000, max_cached_mib: 100, max_offset_span: Some(2000) }
    }
}

/// Which flow-control limit stopped a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// Too many messages cached.
    CachedMessages,
    /// Too many body bytes cached.
    CachedSize,
    /// The cached offsets span too wide a range (a message is stuck in consumption).
    OffsetSpan,
}

#[derive(Debug, Default)]
struct Cache {
    /// Queue offset → message, not yet handed to (or given back by) the listener.
    messages: BTreeMap<i64, MessageExt>,
    /// Orderly consumers only: messages taken for the listener and not yet committed.
    consuming: BTreeMap<i64, MessageExt>,
    /// Messages in both maps.
    count: usize,
    /// Body bytes in both maps.
    bytes: u64,
    /// Highest offset ever cached, or -1.
    max_offset: i64,
}

fn body_len(message: &MessageExt) -> u64 {
    message.message.body.len() as u64
}

/// The cache and state of one assigned queue.
#[derive(Debug)]
pub struct ProcessQueue {
    cache: Mutex<Cache>,
    dropped: AtomicBool,
    locked: AtomicBool,
    last_lock_ms: AtomicI64,
    last_pull_ms: AtomicI64,
    last_consume_ms: AtomicI64,
    try_unlock_times: AtomicU64,
    suggested_broker_id: AtomicI64,
    /// Serializes orderly consumption of this queue, and lets a rebalance wait for the
    /// batch in progress before giving the queue (and its broker lock) away.
    consume_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the queue is dropped: its pull and consume tasks end.
    cancel: CancellationToken,
    /// Woken when messages arrive, for the orderly consume task of this queue.
    arrived: Notify,
}

impl ProcessQueue {
    /// An empty queue whose tasks stop when `cancel` (or [`Self::set_dropped`]) fires.
    pub fn new(cancel: CancellationToken) -> Self {
        let now = apogee_common::time::now_ms();
        Self {
            cache: Mutex::new(Cache { max_offset: -1, ..Cache::default() }),
            dropped: AtomicBool::new(false),
            locked: AtomicBool::new(false),
            last_lock_ms: AtomicI64::new(now),
            last_pull_ms: AtomicI64::new(now),
            last_consume_ms: AtomicI64::new(now),
            try_unlock_times: AtomicU64::new(0),
            suggested_broker_id: AtomicI64::new(0),
            consume_lock: tokio::sync::Mutex::new(()),
            cancel,
            arrived: Notify::new(),
        }
    }

    /// Caches freshly pulled messages (already filtered). Offsets seen before are ignored.
    /// Returns how many were new.
    pub fn put_messages(&self, messages: Vec<MessageExt>) -> usize {
        let mut added = 0;
        {
            let mut cache = self.cache.lock();
            for message in messages {
                let offset = message.queue_offset;
                let bytes = body_len(&message);
                if cache.messages.contains_key(&offset) || cache.consuming.contains_key(&offset) {
                    continue;
                }
                cache.messages.insert(offset, message);
                cache.count += 1;
                cache.bytes += bytes;
                cache.max_offset = cache.max_offset.max(offset);
                added += 1;
            }
        }
        if added > 0 {
            self.arrived.notify_one();
        }
        added
    }

    /// Removes consumed messages (concurrent consumption) and returns the offset now safe to
    /// commit: the smallest offset still cached, or the highest ever cached + 1 when nothing
    /// is left. `None` when the cache was already empty (nothing changes then).
    pub fn remove_messages(&self, offsets: impl IntoIterator<Item = i64>) -> Option<i64> {
        let mut cache = self.cache.lock();
        if cache.messages.is_empty() {
            return None;
        }
        for offset in offsets {
            if let Some(message) = cache.messages.remove(&offset) {
                cache.count -= 1;
                cache.bytes -= body_len(&message);
            }
        }
        self.last_consume_ms.store(apogee_common::time::now_ms(), Ordering::Relaxed);
        Some(cache.messages.keys().next().copied().unwrap_or(cache.max_offset + 1))
    }

    /// Orderly: moves up to `batch` messages, in offset order, from the cache to the
    /// consuming set and returns them.
    pub fn take_messages(&self, batch: usize) -> Vec<MessageExt> {
        let mut cache = self.cache.lock();
        let mut taken = Vec::with_capacity(batch.min(cache.messages.len()));
        while taken.len() < batch {
            let Some((offset, message)) = cache.messages.pop_first() else { break };
            cache.consuming.insert(offset, message.clone());
            taken.push(message);
        }
        self.last_consume_ms.store(apogee_common::time::now_ms(), Ordering::Relaxed);
        taken
    }

    /// Orderly: forgets the consuming set and returns the offset to commit (its last offset
    /// + 1), or `None` when nothing was being consumed.
    pub fn commit(&self) -> Option<i64> {
        let mut cache = self.cache.lock();
        let consuming = std::mem::take(&mut cache.consuming);
        let last = consuming.keys().next_back().copied();
        for message in consuming.values() {
            cache.count -= 1;
            cache.bytes -= body_len(message);
        }
        last.map(|offset| offset + 1)
    }

    /// Orderly: puts messages taken by [`Self::take_messages`] back in front, with whatever
    /// the caller changed in them (reconsume count), to be consumed again.
    pub fn make_messages_consume_again(&self, messages: Vec<MessageExt>) {
        let mut cache = self.cache.lock();
        for message in messages {
            if let Some(previous) = cache.consuming.remove(&message.queue_offset) {
                cache.bytes -= body_len(&previous);
                cache.bytes += body_len(&message);
                cache.messages.insert(message.queue_offset, message);
            }
        }
    }

    /// Whether any message is waiting to be taken (orderly).
    pub fn has_pending(&self) -> bool {
        !self.cache.lock().messages.is_empty()
    }

    /// Messages cached (waiting and being consumed).
    pub fn cached_count(&self) -> usize {
        self.cache.lock().count
    }

    /// Body bytes cached.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.lock().bytes
    }

    /// Distance between the last and first waiting offsets; 0 when empty.
    pub fn max_span(&self) -> i64 {
        let cache = self.cache.lock();
        match (cache.messages.keys().next(), cache.messages.keys().next_back()) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        }
    }

    /// `(min, max)` offsets waiting, if any.
    pub fn cached_offset_range(&self) -> Option<(i64, i64)> {
        let cache = self.cache.lock();
        Some((*cache.messages.keys().next()?, *cache.messages.keys().next_back()?))
    }

    /// The first limit the cache exceeds, if any: pulls wait while one is.
    pub fn flow_control(&self, limits: &FlowControlLimits) -> Option<FlowControl> {
        let cache = self.cache.lock();
        if cache.count > limits.max_cached_messages {
            return Some(FlowControl::CachedMessages);
        }
        if cache.bytes / (1024 * 1024) > limits.max_cached_mib {
            return Some(FlowControl::CachedSize);
        }
        if let Some(max_span) = limits.max_offset_span {
            if let (Some(first), Some(last)) =
                (cache.messages.keys().next(), cache.messages.keys().next_back())
            {
                if last - first > max_span {
                    return Some(FlowControl::OffsetSpan);
                }
            }
        }
        None
    }

    /// Empties the cache (offset reset).
    pub fn clear(&self) {
        let mut cache = self.cache.lock();
        let max_offset = cache.max_offset;
        *cache = Cache { max_offset, ..Cache::default() };
    }

    /// Marks the queue as no longer ours: its tasks stop and results of consumption still in
    /// progress are ignored (the new owner redelivers them).
    pub fn set_dropped(&self) {
        self.dropped.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        self.arrived.notify_one();
    }

    /// Whether the queue was dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Resolves when the queue is dropped or the consumer shuts down.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the queue's tasks should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Records the broker's answer to a lock request; a granted lock refreshes the timestamp.
    pub fn set_locked(&self, locked: bool) {
        if locked {
            self.last_lock_ms.store(apogee_common::time::now_ms(), Ordering::SeqCst);
        }
        self.locked.store(locked, Ordering::SeqCst);
    }

    /// Whether the broker granted this client the queue's lock.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::SeqCst)
    }

    /// Whether the lock was last granted more than [`LOCK_MAX_LIVE`] ago.
    pub fn is_lock_expired(&self) -> bool {
        elapsed_since(self.last_lock_ms.load(Ordering::SeqCst)) > LOCK_MAX_LIVE
    }

    /// Epoch ms of the last granted lock.
    pub fn last_lock_ms(&self) -> i64 {
        self.last_lock_ms.load(Ordering::SeqCst)
    }

    /// Records that the pull loop ran.
    pub fn touch_pull(&self) {
        self.last_pull_ms.store(apogee_common::time::now_ms(), Ordering::Relaxed);
    }

    /// Whether the pull loop has been idle longer than [`PULL_MAX_IDLE`].
    pub fn is_pull_expired(&self) -> bool {
        elapsed_since(self.last_pull_ms.load(Ordering::Relaxed)) > PULL_MAX_IDLE
    }

    /// Broker id the last pull response suggested (0 = master).
    pub fn suggested_broker_id(&self) -> i64 {
        self.suggested_broker_id.load(Ordering::Relaxed)
    }

    /// Remembers the broker id a pull response suggested.
    pub fn set_suggested_broker_id(&self, broker_id: i64) {
        self.suggested_broker_id.store(broker_id, Ordering::Relaxed);
    }

    /// Counts a failed attempt to release the queue (it stays for another round).
    pub fn inc_try_unlock_times(&self) {
        self.try_unlock_times.fetch_add(1, Ordering::Relaxed);
    }

    /// The per-queue consumption mutex (orderly).
    pub fn consume_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.consume_lock
    }

    /// Waits until messages arrive (or the queue is dropped).
    pub async fn messages_arrived(&self) {
        self.arrived.notified().await;
    }

    /// Java `ProcessQueueInfo`, for GET_CONSUMER_RUNNING_INFO.
    pub fn info(&self, commit_offset: i64) -> serde_json::Value {
        let cache = self.cache.lock();
        serde_json::json!({
            "commitOffset": commit_offset,
            "cachedMsgMinOffset": cache.messages.keys().next().copied().unwrap_or(0),
            "cachedMsgMaxOffset": cache.messages.keys().next_back().copied().unwrap_or(0),
            "cachedMsgCount": cache.count,
            "cachedMsgSizeInMiB": cache.bytes / (1024 * 1024),
            "transactionMsgMinOffset": cache.consuming.keys().next().copied().unwrap_or(0),
            "transactionMsgMaxOffset": cache.consuming.keys().next_back().copied().unwrap_or(0),
            "transactionMsgCount": cache.consuming.len(),
            "locked": self.is_locked(),
            "tryUnlockTimes": self.try_unlock_times.load(Ordering::Relaxed),
            "lastLockTimestamp": self.last_lock_ms.load(Ordering::Relaxed),
            "droped": self.is_dropped(),
            "lastPullTimestamp": self.last_pull_ms.load(Ordering::Relaxed),
            "lastConsumeTimestamp": self.last_consume_ms.load(Ordering::Relaxed),
        })
    }
}

fn elapsed_since(epoch_ms: i64) -> Duration {
    let elapsed = apogee_common::time::now_ms().saturating_sub(epoch_ms);
    Duration::from_millis(u64::try_from(elapsed).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, body_bytes: usize) -> MessageExt {
        let mut message = MessageExt { queue_offset: offset, ..MessageExt::default() };
        message.message.body = vec![b'x'; body_bytes].into();
        message
    }

    fn queue() -> ProcessQueue {
        ProcessQueue::new(CancellationToken::new())
    }

    #[test]
    fn commit_offset_is_the_smallest_offset_still_in_flight() {
        let pq = queue();
        assert_eq!(pq.put_messages((10..15).map(|offset| message(offset, 1)).collect()), 5);
        // 11 and 13 done: 10 still in flight.
        assert_eq!(pq.remove_messages([11, 13]), Some(10));
        // 10 done: 12 is now the smallest.
        assert_eq!(pq.remove_messages([10]), Some(12));
        // Everything done: max + 1.
        assert_eq!(pq.remove_messages([12, 14]), Some(15));
        assert_eq!(pq.cached_count(), 0);
        // An empty cache changes nothing.
        assert_eq!(pq.remove_messages([15]), None);
    }

    #[test]
    fn duplicates_are_not_cached_twice() {
        let pq = queue();
        assert_eq!(pq.put_messages(vec![message(1, 10), message(2, 10)]), 2);
        assert_eq!(pq.put_messages(vec![message(2, 10), message(3, 10)]), 1);
        assert_eq!(pq.cached_count(), 3);
        assert_eq!(pq.cached_bytes(), 30);
        assert_eq!(pq.max_span(), 2);
        assert_eq!(pq.cached_offset_range(), Some((1, 3)));
    }

    #[test]
    fn flow_control_thresholds() {
        let limits = FlowControlLimits::default();
        assert_eq!(
            limits,
            FlowControlLimits { max_cached_messages: 1000, max_cached_mib: 100, max_offset_span: Some(2000) }
        );
        let pq = queue();
        pq.put_messages((0..1000).map(|offset| message(offset, 0)).collect());
        assert_eq!(pq.flow_control(&limits), None, "1000 messages is still allowed");
        pq.put_messages(vec![message(1000, 0)]);
        assert_eq!(pq.flow_control(&limits), Some(FlowControl::CachedMessages));

        let pq = queue();
        // 100 MiB exactly is allowed (integer MiB); one more MiB is not.
        pq.put_messages((0..100).map(|offset| message(offset, 1024 * 1024)).collect());
        assert_eq!(pq.flow_control(&limits), None);
        pq.put_messages(vec![message(100, 1024 * 1024)]);
        assert_eq!(pq.flow_control(&limits), Some(FlowControl::CachedSize));

        let pq = queue();
        pq.put_messages(vec![message(0, 1), message(2000, 1)]);
        assert_eq!(pq.flow_control(&limits), None, "a span of 2000 is allowed");
        pq.put_messages(vec![message(2001, 1)]);
        assert_eq!(pq.flow_control(&limits), Some(FlowControl::OffsetSpan));
        let orderly = FlowControlLimits { max_offset_span: None, ..limits };
        assert_eq!(pq.flow_control(&orderly), None, "orderly consumers ignore the span");
    }

    #[test]
    fn orderly_take_commit_and_consume_again() {
        let pq = queue();
        pq.put_messages((0..5).map(|offset| message(offset, 2)).collect());
        let batch = pq.take_messages(2);
        assert_eq!(batch.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), [0, 1]);
        // Taken messages still count for flow control.
        assert_eq!(pq.cached_count(), 5);
        let mut again = batch;
        for message in &mut again {
            message.reconsume_times += 1;
        }
        pq.make_messages_consume_again(again);
        let retried = pq.take_messages(3);
        assert_eq!(retried.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(retried.iter().map(|m| m.reconsume_times).collect::<Vec<_>>(), [1, 1, 0]);
        assert_eq!(pq.commit(), Some(3));
        assert_eq!(pq.cached_count(), 2);
        assert_eq!(pq.cached_bytes(), 4);
        assert_eq!(pq.commit(), None);
        assert!(pq.has_pending());
    }

    #[test]
    fn dropping_cancels_the_queue() {
        let pq = queue();
        assert!(!pq.is_dropped() && !pq.is_cancelled());
        pq.set_dropped();
        assert!(pq.is_dropped() && pq.is_cancelled());
    }

    #[test]
    fn locks_expire_after_thirty_seconds() {
        let pq = queue();
        pq.set_locked(true);
        assert!(pq.is_locked() && !pq.is_lock_expired());
        pq.last_lock_ms.store(apogee_common::time::now_ms() - 31_000, Ordering::SeqCst);
        assert!(pq.is_lock_expired());
        assert!(!pq.is_pull_expired());
        pq.last_pull_ms.store(apogee_common::time::now_ms() - 121_000, Ordering::SeqCst);
        assert!(pq.is_pull_expired());
    }
}
