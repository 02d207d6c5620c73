//! Orderly POP (behaviour spec §8.4, Java `ConsumerOrderInfoManager`): per (topic, group,
//! queue) at most one batch is in flight. The queue stays blocked for the group until every
//! message of the batch is acked or its invisible time passes; then the next pop reads again
//! from the committed offset, which acks move forward only past messages whose earlier
//! neighbours are acked too. A pop repeating the attempt id of the batch in flight gets the
//! batch again instead of waiting, so a client's retry of a lost response is harmless.
//!
//! The table is in memory: after a restart every queue is unblocked and its un-acked messages
//! are delivered again from the committed offset (which `ack` also stores as a revive record,
//! so a crash does not lose it).

use std::collections::HashMap;

use parking_lot::Mutex;

use apogee_remoting::receipt::OffsetInfo;

/// (topic, group, queue).
type QueueKey = (String, String, i32);

/// Queues whose last batch is remembered before the ones no longer blocking are forgotten
/// (their delivery counts restart at 0 if they come again). Batches still in flight are
/// kept: they are bounded by what consumers hold at once.
pub const MAX_REMEMBERED_QUEUES: usize = 100_000;

/// The batch in flight of one queue.
#[derive(Debug, Clone)]
struct Batch {
    attempt_id: Option<String>,
    pop_time_ms: i64,
    invisible_ms: i64,
    offsets: Vec<i64>,
    acked: Vec<bool>,
    /// A changed invisible time per offset (epoch ms when it is visible again).
    next_visible_ms: HashMap<i64, i64>,
    /// Earlier deliveries of each offset (absent: none).
    delivered_before: HashMap<i64, u32>,
}

impl Batch {
    /// Whether an un-acked message of the batch is still invisible at `now_ms`.
    fn blocks(&self, now_ms: i64) -> bool {
        self.offsets.iter().zip(&self.acked).any(|(offset, acked)| {
            let visible_at = self
                .next_visible_ms
                .get(offset)
                .copied()
                .unwrap_or(self.pop_time_ms.saturating_add(self.invisible_ms));
            !acked && now_ms < visible_at
        })
    }
}

/// What an orderly ack leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyAck {
    /// Commit this offset (every message before it is acked).
    Commit(i64),
    /// The ack belongs to an older batch (another pop time): nothing changes.
    Stale,
    /// The offset is not in the batch in flight.
    Illegal,
}

/// The batches in flight, by queue.
#[derive(Debug, Default)]
pub struct OrderInfos {
    table: Mutex<HashMap<QueueKey, Batch>>,
}

fn key(topic: &str, group: &str, queue_id: i32) -> QueueKey {
    (topic.to_owned(), group.to_owned(), queue_id)
}

impl OrderInfos {
    /// Whether the queue is blocked for a pop with `attempt_id` at `now_ms`.
    pub fn is_blocked(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        attempt_id: Option<&str>,
        now_ms: i64,
    ) -> bool {
        let table = self.table.lock();
        let Some(batch) = table.get(&key(topic, group, queue_id)) else { return false };
        if attempt_id.is_some() && batch.attempt_id.as_deref() == attempt_id {
            return false;
        }
        batch.blocks(now_ms)
    }

    /// Records a popped batch and appends its delivery counts to `info` (Java's
    /// `orderCountInfo`: one entry per message delivered before, then the queue's least).
    #[allow(clippy::too_many_arguments)]
    pub fn record_pop(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        attempt_id: Option<&str>,
        pop_time_ms: i64,
        invisible_ms: i64,
        offsets: &[i64],
        info: &mut OffsetInfo,
    ) {
        let mut table = self.table.lock();
        if table.len() >= MAX_REMEMBERED_QUEUES {
            table.retain(|_, batch| batch.blocks(pop_time_ms));
        }
        let queue_key = key(topic, group, queue_id);
        let mut delivered_before = HashMap::new();
        if let Some(previous) = table.get(&queue_key) {
            let same_attempt = attempt_id.is_some() && previous.attempt_id.as_deref() == attempt_id;
            if same_attempt {
                delivered_before = previous.delivered_before.clone();
            } else {
                for offset in offsets.iter().filter(|offset| previous.offsets.contains(offset)) {
                    let count = previous.delivered_before.get(offset).copied().unwrap_or(0) + 1;
                    delivered_before.insert(*offset, count);
                }
            }
        }
        let mut least = u32::MAX;
        for offset in offsets {
            if let Some(count) = delivered_before.get(offset) {
                info.add_offset_count(topic, queue_id, *offset, *count);
                least = least.min(*count);
            }
        }
        if delivered_before.len() != offsets.len() {
            least = 0;
        }
        info.add_queue_count(topic, queue_id, least);
        table.insert(
            queue_key,
            Batch {
                attempt_id: attempt_id.map(str::to_owned),
                pop_time_ms,
                invisible_ms,
                offsets: offsets.to_vec(),
                acked: vec![false; offsets.len()],
                next_visible_ms: HashMap::new(),
                delivered_before,
            },
        );
    }

    /// Marks `offset` of the batch popped at `pop_time_ms` acked.
    pub fn ack(&self, topic: &str, group: &str, queue_id: i32, offset: i64, pop_time_ms: i64) -> OrderlyAck {
        let mut table = self.table.lock();
        let queue_key = key(topic, group, queue_id);
        let Some(batch) = table.get_mut(&queue_key) else {
            // Nothing known (a restart forgot it): Java commits past the message.
            return OrderlyAck::Commit(offset + 1);
        };
        if batch.pop_time_ms != pop_time_ms {
            return OrderlyAck::Stale;
        }
        let Some(index) = batch.offsets.iter().position(|candidate| *candidate == offset) else {
            return OrderlyAck::Illegal;
        };
        batch.acked[index] = true;
        match batch.acked.iter().position(|acked| !acked) {
            Some(first_open) => OrderlyAck::Commit(batch.offsets[first_open]),
            None => {
                let next = batch.offsets.last().map_or(offset + 1, |last| last + 1);
                table.remove(&queue_key);
                OrderlyAck::Commit(next)
            }
        }
    }

    /// Moves when `offset` is visible again; false when the batch is not the one in flight.
    pub fn change_invisible(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        offset: i64,
        pop_time_ms: i64,
        next_visible_ms: i64,
    ) -> bool {
        let mut table = self.table.lock();
        match table.get_mut(&key(topic, group, queue_id)) {
            Some(batch) if batch.pop_time_ms == pop_time_ms && batch.offsets.contains(&offset) => {
                batch.next_visible_ms.insert(offset, next_visible_ms);
                true
            }
            _ => false,
        }
    }

    /// Forgets the queue's batch (an admin reset its offset).
    pub fn clear(&self, topic: &str, group: &str, queue_id: i32) {
        self.table.lock().remove(&key(topic, group, queue_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_blocks_until_acked_in_order_or_invisible() {
        let infos = OrderInfos::default();
        let mut info = OffsetInfo::default();
        infos.record_pop("T", "G", 0, Some("a1"), 1000, 100, &[5, 6, 7], &mut info);
        assert_eq!(info.order_count, "0 0 0");
        assert!(infos.is_blocked("T", "G", 0, Some("a2"), 1050));
        assert!(!infos.is_blocked("T", "G", 0, Some("a1"), 1050), "the same attempt gets the batch again");
        assert!(!infos.is_blocked("T", "G", 0, None, 1100), "invisible time over");
        assert_eq!(infos.ack("T", "G", 0, 6, 1000), OrderlyAck::Commit(5));
        assert_eq!(infos.ack("T", "G", 0, 6, 999), OrderlyAck::Stale);
        assert_eq!(infos.ack("T", "G", 0, 9, 1000), OrderlyAck::Illegal);
        assert_eq!(infos.ack("T", "G", 0, 5, 1000), OrderlyAck::Commit(7));
        assert!(infos.change_invisible("T", "G", 0, 7, 1000, 5000));
        assert!(infos.is_blocked("T", "G", 0, None, 4000));
        assert_eq!(infos.ack("T", "G", 0, 7, 1000), OrderlyAck::Commit(8));
        assert!(!infos.is_blocked("T", "G", 0, None, 1001));
    }

    #[test]
    fn redeliveries_count_earlier_deliveries() {
        let infos = OrderInfos::default();
        let mut first = OffsetInfo::default();
        infos.record_pop("T", "G", 0, Some("a1"), 1000, 100, &[5, 6], &mut first);
        let mut second = OffsetInfo::default();
        infos.record_pop("T", "G", 0, Some("a2"), 1200, 100, &[5, 6, 7], &mut second);
        assert_eq!(second.order_count, "0 qo0%5 1;0 qo0%6 1;0 0 0");
        let mut third = OffsetInfo::default();
        infos.record_pop("T", "G", 0, Some("a3"), 1400, 100, &[5, 6], &mut third);
        assert_eq!(third.order_count, "0 qo0%5 2;0 qo0%6 2;0 0 2");
    }
}
