//! The revive service (behaviour spec §8.4, Java `PopReviveService`): every `reviveInterval`
//! it reads each revive queue's new check points and acks, merges the acks into the check
//! points they name, and once a check point's revive time (pop time + invisible time) has
//! passed, stores each of its un-acked messages again in the group's pop retry topic with one
//! more reconsume time and `1ST_POP_TIME`, where the group's next pops find it.
//!
//! The revive offset (the `CID_RMQ_SYS_REVIVE_GROUP` offset of each revive queue) is moved
//! only up to the oldest check point not yet settled, so after a restart or a kill -9 the
//! service reads again every check point that may still owe a redelivery, with every ack
//! written after it: nothing un-acked is lost and nothing acked comes back. A round that
//! stored redeliveries writes the offsets to disk before the next round, so a crash does not
//! revive them again (a crash between a redelivery and that write can redeliver a message
//! once more: at least once).
//!
//! Orderly acks leave records too (`oAck`, in revive queue 0): the service writes the
//! consumer offsets after a round that read one, and only then lets the revive offset pass
//! it, so [`recover`] finds every orderly commit that may not be on disk.
//!
//! Memory is bounded by `popCkMaxBufferSize` check points per revive queue: at the cap the
//! service stops reading that queue until check points are settled; acks behind the cap are
//! then read late and their messages may be redelivered once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::property;
use apogee_common::message::record::RecordView;
use apogee_common::perm;
use apogee_common::time::now_ms;
use apogee_common::topic::is_retry_topic;
use apogee_store::{AcceptAll, GetMessageStatus};

use super::records::{self, CheckPoint, CkKey, ReviveRecord, MAX_CK_MESSAGES};
use super::{retry_topic, revive_topic, REVIVE_GROUP};
use crate::message::{self, InnerMessage};
use crate::BrokerState;

/// Revive records asked for per store read.
const READ_BATCH_RECORDS: u32 = 1_024;
/// Bytes asked for per store read.
const READ_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Store reads per revive queue and round, so one busy queue cannot hold the others up.
const READS_PER_ROUND: usize = 64;

/// A check point not settled yet.
#[derive(Debug, Clone)]
struct Pending {
    ck: CheckPoint,
    acked: Vec<bool>,
}

/// One revive queue's state.
#[derive(Debug, Default)]
struct ReviveQueue {
    queue_id: i32,
    /// Next revive-queue offset to read.
    read_offset: i64,
    /// Check points not settled, by their revive-queue offset.
    pending: BTreeMap<i64, Pending>,
    /// Where each pending check point sits, for its acks.
    by_key: HashMap<CkKey, i64>,
    /// The first orderly ack record read since the consumer offsets were last written: the
    /// revive offset stays before it until they are.
    unpersisted_order_ack: Option<i64>,
}

impl ReviveQueue {
    /// Takes in one record at `position`.
    fn absorb(&mut self, position: i64, record: ReviveRecord) {
        match record {
            ReviveRecord::CheckPoint(ck) => {
                if ck.offset_diffs.is_empty() || ck.offset_diffs.len() > MAX_CK_MESSAGES {
                    tracing::warn!(
                        position,
                        queue = self.queue_id,
                        "check point with no or too many messages; skipped"
                    );
                    return;
                }
                let key = ck.key();
                if self.by_key.contains_key(&key) {
                    return;
                }
                self.by_key.insert(key, position);
                let acked = vec![false; ck.offset_diffs.len()];
                self.pending.insert(position, Pending { ck, acked });
            }
            ReviveRecord::Ack(ack) => {
                let key = ack.key();
                let Some(&ck_position) = self.by_key.get(&key) else { return };
                let Some(pending) = self.pending.get_mut(&ck_position) else { return };
                for offset in ack.offsets() {
                    if let Some(index) = (0..pending.ck.offset_diffs.len())
                        .find(|index| pending.ck.offset_at(*index) == Some(offset))
                    {
                        pending.acked[index] = true;
                    }
                }
                if pending.acked.iter().all(|acked| *acked) {
                    self.pending.remove(&ck_position);
                    self.by_key.remove(&key);
                }
            }
            ReviveRecord::OrderAck(_) => {
                self.unpersisted_order_ack.get_or_insert(position);
            }
            ReviveRecord::Other => {}
        }
    }

    /// Where the revive offset may be: before the oldest pending check point and the first
    /// orderly ack not yet on disk.
    fn settled_offset(&self) -> i64 {
        let oldest_check_point = self.pending.keys().next().copied().unwrap_or(self.read_offset);
        self.unpersisted_order_ack.map_or(oldest_check_point, |order_ack| order_ack.min(oldest_check_point))
    }
}

/// Runs the service until the broker stops.
pub async fn run(state: Arc<BrokerState>) {
    let topic = revive_topic(&state.config);
    let mut queues: Vec<ReviveQueue> = (0..state.config.pop.revive_queue_num)
        .map(|queue_id| ReviveQueue {
            queue_id,
            read_offset: settled_start(&state, &topic, queue_id),
            ..ReviveQueue::default()
        })
        .collect();
    let period = Duration::from_millis(state.config.pop.revive_interval_ms.max(10));
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopping.changed() => {
                state.pop.polling.stop();
                return;
            }
        }
        if !state.replication.is_master() {
            continue;
        }
        for queue in &mut queues {
            round(&state, &topic, queue).await;
        }
    }
}

/// The revive offset a queue starts at: the committed one, else the queue's first record.
fn settled_start(state: &BrokerState, topic: &str, queue_id: i32) -> i64 {
    state
        .offsets
        .query(REVIVE_GROUP, topic, queue_id)
        .unwrap_or_else(|| state.store.min_offset(topic, queue_id))
}

/// One round over one revive queue: read, revive what is due, move the revive offset.
async fn round(state: &Arc<BrokerState>, topic: &str, queue: &mut ReviveQueue) {
    // Taken before reading: every ack stored before a due check point's revive time is read.
    let now = now_ms();
    let cap = state.config.pop.pop_ck_max_buffer_size;
    for _ in 0..READS_PER_ROUND {
        if queue.pending.len() >= cap {
            tracing::warn!(
                queue = queue.queue_id,
                cap,
                "revive queue at its check point cap; reading paused"
            );
            break;
        }
        let Some((records, next)) = read_records(state, topic, queue.queue_id, queue.read_offset).await
        else {
            break;
        };
        for (position, record) in records {
            queue.absorb(position, record);
        }
        let advanced = next > queue.read_offset;
        queue.read_offset = next;
        if !advanced {
            break;
        }
    }
    let due: Vec<i64> = queue
        .pending
        .iter()
        .filter(|(_, pending)| pending.ck.revive_time_ms() <= now)
        .map(|(position, _)| *position)
        .collect();
    let mut revived = 0usize;
    for position in due {
        let Some(pending) = queue.pending.get(&position).cloned() else { continue };
        if !revive(state, &pending).await {
            // Stored nothing for good: the next round tries again, the offset stays before it.
            break;
        }
        revived += 1;
        queue.pending.remove(&position);
        queue.by_key.remove(&pending.ck.key());
    }
    let settled = queue.settled_offset();
    if state.offsets.query(REVIVE_GROUP, topic, queue.queue_id) != Some(settled) {
        state.offsets.commit(REVIVE_GROUP, topic, queue.queue_id, settled);
    }
    if revived > 0 || queue.unpersisted_order_ack.is_some() {
        // Redeliveries are stored: the offset past their check points must reach the disk
        // now, or a crash before the next periodic write would revive them a second time.
        let owner = Arc::clone(state);
        match tokio::task::spawn_blocking(move || owner.offsets.persist()).await {
            Ok(Ok(())) => {
                // The orderly commits read so far are on disk: the revive offset may pass them
                // (this move itself reaches the disk with the next write; re-reading them after
                // a crash commits nothing new).
                if queue.unpersisted_order_ack.take().is_some() {
                    state.offsets.commit(REVIVE_GROUP, topic, queue.queue_id, queue.settled_offset());
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "revive offsets not persisted"),
            Err(error) => tracing::error!(%error, "revive offset writer failed"),
        }
    }
}

/// Reads revive records from `offset`: the records with their positions, and where reading
/// goes on. `None` when there is nothing new.
async fn read_records(
    state: &Arc<BrokerState>,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> Option<(Vec<(i64, ReviveRecord)>, i64)> {
    if state.store.max_offset(topic, queue_id) <= offset {
        return None;
    }
    let (store, topic) = (Arc::clone(&state.store), topic.to_owned());
    let read = tokio::task::spawn_blocking(move || {
        let result =
            store.get_messages(&topic, queue_id, offset, READ_BATCH_RECORDS, READ_BATCH_BYTES, &AcceptAll);
        let records: Vec<(i64, ReviveRecord)> = result
            .queue_offsets
            .iter()
            .zip(&result.messages)
            .map(|(position, slice)| (*position, records::parse(slice.as_slice())))
            .collect();
        (result.status, records, result.next_begin_offset)
    })
    .await
    .ok()?;
    let (status, records, next) = read;
    match status {
        GetMessageStatus::Found | GetMessageStatus::NoMatchedMessage => Some((records, next)),
        GetMessageStatus::OffsetTooSmall | GetMessageStatus::OffsetOverflowBadly => {
            tracing::warn!(queue_id, offset, next, "revive offset outside its queue; moved");
            Some((Vec::new(), next))
        }
        _ => None,
    }
}

/// Stores every un-acked message of a due check point in the pop retry topic. False when a
/// store failed (the check point stays pending and is revived again: its messages already
/// stored may then come twice).
async fn revive(state: &Arc<BrokerState>, pending: &Pending) -> bool {
    let ck = &pending.ck;
    if !state.topics.contains(&ck.topic) || !state.groups.contains(&ck.group) {
        // As Java: nobody consumes these any more.
        tracing::info!(topic = %ck.topic, group = %ck.group, "check point of a topic or group that no longer exists; dropped");
        return true;
    }

    let retry = if is_retry_topic(&ck.topic) { ck.topic.clone() } else { retry_topic(&ck.topic, &ck.group) };
    if !state.topics.contains(&retry) {
        let owner = Arc::clone(state);
        let name = retry.clone();
        let created = tokio::task::spawn_blocking(move || {
            owner.topics.get_or_create_system(&name, 1, perm::READ_WRITE)
        })
        .await;
        if !matches!(created, Ok(Ok(_))) {
            tracing::error!(topic = %retry, "pop retry topic not created; revive postponed");
            return false;
        }
    }
    for (index, acked) in pending.acked.iter().enumerate() {
        let Some(offset) = ck.offset_at(index).filter(|_| !acked) else { continue };
        let Some(original) = read_message(state, &ck.topic, ck.queue_id, offset).await else {
            tracing::warn!(topic = %ck.topic, queue_id = ck.queue_id, offset, "popped message no longer stored; not revived");
            continue;
        };
        let retried = retry_message(state, &original, &retry, ck.pop_time_ms);
        let stored = message::put_message(state, &retried, false).await;
        if !stored.status.is_stored() {
            tracing::warn!(topic = %retry, status = ?stored.status, "revived message not stored; trying again next round");
            return false;
        }
    }
    true
}

/// The stored message at a queue offset.
async fn read_message(
    state: &Arc<BrokerState>,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> Option<apogee_common::message::MessageExt> {
    let (store, topic) = (Arc::clone(&state.store), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let result = store.get_messages(&topic, queue_id, offset, 1, u64::MAX, &AcceptAll);
        let slice = result.messages.first().filter(|_| result.queue_offsets.first() == Some(&offset))?;
        RecordView::parse(slice.as_slice(), false).ok().map(|view| view.to_message_ext())
    })
    .await
    .ok()
    .flatten()
}

/// The copy of an un-acked message for the pop retry topic (Java `reviveRetry`): same body,
/// flag, sysflag, properties and born time, one more reconsume time, the first pop's time.
fn retry_message(
    state: &BrokerState,
    original: &apogee_common::message::MessageExt,
    retry: &str,
    pop_time_ms: i64,
) -> InnerMessage {
    let mut retried = InnerMessage::from_ext(original);
    retried.topic = retry.to_owned();
    retried.queue_id = 0;
    retried.born_host = state.store_host;
    retried.reconsume_times = original.reconsume_times.saturating_add(1);
    if original.reconsume_times == 0 || !retried.properties.contains_key(property::FIRST_POP_TIME) {
        retried.properties.insert(property::FIRST_POP_TIME, pop_time_ms.to_string());
    }
    retried
}

/// Before the broker serves after a restart: raises each POP group's offset past what the
/// unsettled check points handed out, and to what the orderly acks not yet on disk
/// committed. Consumer offsets are persisted every few seconds, so after a crash the
/// persisted ones can lag the pops and orderly acks whose records are stored.
pub async fn recover(state: &Arc<BrokerState>) {
    let topic = revive_topic(&state.config);
    let mut ends: HashMap<(String, String, i32), i64> = HashMap::new();
    let mut check_points = 0usize;
    for queue_id in 0..state.config.pop.revive_queue_num {
        let mut offset = settled_start(state, &topic, queue_id);
        // Bounded by the queue's length: each read moves forward or ends the walk.
        while let Some((records, next)) = read_records(state, &topic, queue_id, offset).await {
            for (_, record) in records {
                let (key, end) = match record {
                    ReviveRecord::CheckPoint(ck) => {
                        check_points += 1;
                        let end = ck.end_offset();
                        ((ck.group, ck.topic, ck.queue_id), end)
                    }
                    ReviveRecord::OrderAck(ack) => ((ack.group, ack.topic, ack.queue_id), ack.offset),
                    ReviveRecord::Ack(_) | ReviveRecord::Other => continue,
                };
                let raised = ends.entry(key).or_insert(i64::MIN);
                *raised = (*raised).max(end);
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
    }
    let mut raised = 0usize;
    for ((group, topic, queue_id), end) in ends {
        if state.offsets.query(&group, &topic, queue_id).is_none_or(|committed| committed < end) {
            state.offsets.commit(&group, &topic, queue_id, end);
            raised += 1;
        }
    }
    if check_points > 0 || raised > 0 {
        tracing::info!(check_points, raised, "pop offsets recovered from the unsettled revive records");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pop::records::AckRecord;

    fn ck(start: i64, diffs: Vec<i32>, pop_time_ms: i64) -> CheckPoint {
        CheckPoint {
            group: "G".into(),
            topic: "T".into(),
            start_offset: start,
            num: i32::try_from(diffs.len()).unwrap(),
            offset_diffs: diffs,
            pop_time_ms,
            invisible_ms: 100,
            ..CheckPoint::default()
        }
    }

    fn ack(start: i64, pop_time_ms: i64, offsets: Vec<i64>) -> AckRecord {
        AckRecord {
            group: "G".into(),
            topic: "T".into(),
            start_offset: start,
            pop_time_ms,
            ack_offsets: offsets,
            ack_offset: -1,
            ..AckRecord::default()
        }
    }

    #[test]
    fn acks_settle_check_points_and_the_offset_waits_for_the_oldest() {
        let mut queue = ReviveQueue::default();
        queue.absorb(0, ReviveRecord::CheckPoint(ck(10, vec![0, 2], 1000)));
        queue.absorb(1, ReviveRecord::CheckPoint(ck(13, vec![0], 1001)));
        queue.read_offset = 2;
        assert_eq!(queue.settled_offset(), 0);
        queue.absorb(2, ReviveRecord::Ack(ack(10, 1000, vec![12])));
        assert_eq!(queue.pending[&0].acked, vec![false, true]);
        queue.absorb(3, ReviveRecord::Ack(ack(13, 1001, vec![13])));
        queue.read_offset = 4;
        assert_eq!(queue.pending.len(), 1);
        assert_eq!(queue.settled_offset(), 0, "the first check point still owes offset 10");
        queue.absorb(4, ReviveRecord::Ack(ack(10, 999, vec![10])));
        assert_eq!(queue.pending.len(), 1, "an ack of another pop time names another check point");
        queue.absorb(5, ReviveRecord::Ack(ack(10, 1000, vec![10])));
        queue.read_offset = 6;
        assert!(queue.pending.is_empty() && queue.by_key.is_empty());
        assert_eq!(queue.settled_offset(), 6);
        // An orderly commit holds the offset until the consumer offsets are written.
        queue.absorb(6, ReviveRecord::OrderAck(records::OrderAckRecord::default()));
        queue.absorb(7, ReviveRecord::OrderAck(records::OrderAckRecord::default()));
        queue.read_offset = 8;
        assert_eq!(queue.settled_offset(), 6);
        queue.unpersisted_order_ack = None;
        assert_eq!(queue.settled_offset(), 8);
    }
}
