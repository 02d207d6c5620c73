//! ACK_MESSAGE, BATCH_ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME (behaviour spec §8.4).
//!
//! A non-orderly ack is an ack record in the revive queue of the message's check point,
//! stored before the consumer is answered, so the revive service sees it before it could
//! redeliver the message (unless the ack came after the invisible time). An orderly ack
//! moves the group's offset once every earlier message of the batch is acked. A change of
//! invisible time stores a new check point for the one message, due later, then acks the old.

use std::sync::Arc;

use apogee_common::time::now_ms;
use apogee_remoting::body::pop::BatchAck;
use apogee_remoting::code::response_code;

use super::order::OrderlyAck;
use super::records::{self, AckRecord, CheckPoint, OrderAckRecord};
use super::ORDER_REVIVE_QUEUE;
use crate::core::error::{CoreResult, Error};
use crate::core::send::put_error;
use crate::message;
use crate::BrokerState;
use apogee_remoting::receipt::ExtraInfo;

/// An ack or change of invisible time, as the consumer sent it.
#[derive(Debug, Clone, Copy)]
pub struct AckRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic the message was popped from (its pop retry topic for a redelivery).
    pub topic: &'a str,
    /// Queue of the message.
    pub queue_id: i32,
    /// The receipt handle.
    pub extra_info: &'a str,
    /// Queue offset of the message.
    pub offset: i64,
}

/// The new receipt-handle pieces after a change of invisible time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// New pop time, epoch ms.
    pub pop_time_ms: i64,
    /// New invisible time, in ms (from the pop time).
    pub invisible_ms: i64,
    /// Revive queue of the new check point.
    pub revive_qid: i32,
}

/// ACK_MESSAGE.
pub async fn ack(state: &Arc<BrokerState>, request: &AckRequest<'_>) -> CoreResult<()> {
    check_message(state, request)?;
    let handle = parse_handle(request.extra_info)?;
    if handle.revive_qid == ORDER_REVIVE_QUEUE {
        return ack_orderly(
            state,
            request.topic,
            request.group,
            request.queue_id,
            request.offset,
            handle.pop_time_ms,
        )
        .await;
    }
    store_ack(state, &ack_record(request, &handle), handle.revive_qid).await
}

/// The ack record of the message `request` names, under the check point of `handle`.
fn ack_record(request: &AckRequest<'_>, handle: &ExtraInfo) -> AckRecord {
    AckRecord {
        ack_offset: request.offset,
        broker_name: Some(handle.broker_name.clone()),
        group: request.group.to_owned(),
        pop_time_ms: handle.pop_time_ms,
        queue_id: request.queue_id,
        start_offset: handle.ck_start_offset,
        topic: request.topic.to_owned(),
        ..AckRecord::default()
    }
}

/// BATCH_ACK_MESSAGE: each entry acks the set bits of one check point. Offsets outside their
/// queue are skipped, as Java does.
pub async fn batch_ack(state: &Arc<BrokerState>, acks: &[BatchAck], broker_name: &str) -> CoreResult<()> {
    if acks.is_empty() {
        return Err(Error::new(response_code::NO_MESSAGE, "no ack in the request"));
    }
    for entry in acks {
        let handle_like = ExtraInfo {
            ck_start_offset: entry.start_offset,
            pop_time_ms: entry.pop_time,
            invisible_ms: entry.invisible_time,
            revive_qid: entry.revive_queue_id,
            retry_flag: entry.retry.clone(),
            broker_name: broker_name.to_owned(),
            queue_id: entry.queue_id,
            queue_offset: None,
        };
        let topic = handle_like.real_topic(&entry.topic, &entry.consumer_group);
        let (min, max) =
            (state.store.min_offset(&topic, entry.queue_id), state.store.max_offset(&topic, entry.queue_id));
        let offsets: Vec<i64> = entry
            .bit_set
            .ones()
            .map(|bit| entry.start_offset.saturating_add(i64::try_from(bit).unwrap_or(i64::MAX)))
            .filter(|offset| (min..=max).contains(offset))
            .collect();
        if entry.revive_queue_id == ORDER_REVIVE_QUEUE {
            for offset in offsets {
                ack_orderly(state, &topic, &entry.consumer_group, entry.queue_id, offset, entry.pop_time)
                    .await?;
            }
            continue;
        }
        if offsets.is_empty() {
            continue;
        }
        let record = AckRecord {
            ack_offset: -1,
            ack_offsets: offsets,
            broker_name: Some(broker_name.to_owned()),
            group: entry.consumer_group.clone(),
            pop_time_ms: entry.pop_time,
            queue_id: entry.queue_id,
            start_offset: entry.start_offset,
            topic,
        };
        store_ack(state, &record, entry.revive_queue_id).await?;
    }
    Ok(())
}

/// CHANGE_MESSAGE_INVISIBLETIME: a new check point for the message, due `invisible_ms` from
/// now, then an ack of the old one (orderly: the queue's next visible time moves).
pub async fn change_invisible(
    state: &Arc<BrokerState>,
    request: &AckRequest<'_>,
    invisible_ms: i64,
) -> CoreResult<Changed> {
    check_message(state, request)?;
    let handle = parse_handle(request.extra_info)?;
    let now = now_ms();
    if handle.revive_qid == ORDER_REVIVE_QUEUE {
        let next_visible_ms = now.saturating_add(invisible_ms);
        let moved = state.pop.order.change_invisible(
            request.topic,
            request.group,
            request.queue_id,
            request.offset,
            handle.pop_time_ms,
            next_visible_ms,
        );
        if !moved {
            tracing::info!(
                topic = request.topic,
                group = request.group,
                offset = request.offset,
                "change of invisible time for a batch no longer in flight"
            );
        }
        return Ok(Changed {
            pop_time_ms: handle.pop_time_ms,
            invisible_ms: next_visible_ms - handle.pop_time_ms,
            revive_qid: handle.revive_qid,
        });
    }
    let ck = CheckPoint {
        group: request.group.to_owned(),
        topic: request.topic.to_owned(),
        queue_id: request.queue_id,
        start_offset: request.offset,
        offset_diffs: vec![0],
        num: 1,
        pop_time_ms: now,
        invisible_ms,
        broker_name: Some(handle.broker_name.clone()),
        ..CheckPoint::default()
    };
    let revive_qid = checked_revive_qid(state, handle.revive_qid)?;
    let stored =
        message::put_message(state, &records::check_point_record(state, &ck, revive_qid), false).await;
    if !stored.status.is_stored() {
        return Err(put_error(state, stored.status));
    }
    store_ack(state, &ack_record(request, &handle), revive_qid).await?;
    Ok(Changed { pop_time_ms: now, invisible_ms, revive_qid })
}

/// Java's checks of the message an ack names: the topic exists, the queue is one of its
/// queues (MESSAGE_ILLEGAL) and the offset is within it (NO_MESSAGE).
fn check_message(state: &BrokerState, request: &AckRequest<'_>) -> CoreResult<()> {
    let topic = request.topic;
    let Some(topic_config) = state.topics.get(topic) else {
        return Err(Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        ));
    };
    if request.queue_id < 0 || request.queue_id >= topic_config.read_queue_nums {
        return Err(Error::new(
            response_code::MESSAGE_ILLEGAL,
            format!(
                "queueId[{}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                request.queue_id, topic_config.read_queue_nums
            ),
        ));
    }
    let (min, max) =
        (state.store.min_offset(topic, request.queue_id), state.store.max_offset(topic, request.queue_id));
    if request.offset < min || request.offset > max {
        return Err(Error::new(
            response_code::NO_MESSAGE,
            format!(
                "offset is illegal, key:{topic}@{}, commit:{}, store:{min}~{max}",
                request.queue_id, request.offset
            ),
        ));
    }
    Ok(())
}

/// The receipt handle, or MESSAGE_ILLEGAL.
fn parse_handle(extra_info: &str) -> CoreResult<ExtraInfo> {
    ExtraInfo::parse(extra_info).ok_or_else(|| {
        Error::new(response_code::MESSAGE_ILLEGAL, format!("the receipt handle [{extra_info}] is illegal"))
    })
}

/// A revive queue id from a peer, checked against the broker's revive queues.
fn checked_revive_qid(state: &BrokerState, revive_qid: i32) -> CoreResult<i32> {
    if (0..state.config.pop.revive_queue_num).contains(&revive_qid) {
        Ok(revive_qid)
    } else {
        Err(Error::new(response_code::MESSAGE_ILLEGAL, format!("revive queue {revive_qid} does not exist")))
    }
}

/// Stores an ack record; the consumer is answered only once it is stored.
async fn store_ack(state: &Arc<BrokerState>, ack: &AckRecord, revive_qid: i32) -> CoreResult<()> {
    let revive_qid = checked_revive_qid(state, revive_qid)?;
    let stored = message::put_message(state, &records::ack_record(state, ack, revive_qid), false).await;
    if stored.status.is_stored() {
        Ok(())
    } else {
        Err(put_error(state, stored.status))
    }
}

/// An orderly ack: under the queue's lock, commit the offset past every acked message of the
/// batch, and wake pops waiting for the queue once the batch is done.
async fn ack_orderly(
    state: &Arc<BrokerState>,
    topic: &str,
    group: &str,
    queue_id: i32,
    offset: i64,
    pop_time_ms: i64,
) -> CoreResult<()> {
    if state.offsets.query(group, topic, queue_id).is_some_and(|committed| offset < committed) {
        return Ok(());
    }
    let Some(_guard) = state.pop.lock(topic, group, queue_id).await else {
        return Err(Error::new(response_code::SYSTEM_BUSY, "the queue is busy, ack again later"));
    };
    if state.offsets.query(group, topic, queue_id).is_some_and(|committed| offset < committed) {
        return Ok(());
    }
    match state.pop.order.ack(topic, group, queue_id, offset, pop_time_ms) {
        OrderlyAck::Commit(next) => {
            if !state.offsets.has_reset_offset(group, topic, queue_id) {
                state.offsets.commit(group, topic, queue_id, next);
                // Stored before the answer, read back after a crash (`revive::recover`).
                let record = OrderAckRecord {
                    group: group.to_owned(),
                    offset: next,
                    queue_id,
                    topic: topic.to_owned(),
                };
                let stored =
                    message::put_message(state, &records::order_ack_record(state, &record), false).await;
                if !stored.status.is_stored() {
                    return Err(put_error(state, stored.status));
                }
            }
            if !state.pop.order.is_blocked(topic, group, queue_id, None, now_ms()) {
                state.pop.polling.wake_topic(topic, queue_id);
            }
            Ok(())
        }
        OrderlyAck::Stale => Ok(()),
        OrderlyAck::Illegal => Err(Error::new(
            response_code::MESSAGE_ILLEGAL,
            format!("offset is illegal, key:{topic}@{group}@{queue_id}, commit:{offset}"),
        )),
    }
}
