//! POP consumption (5.x, behaviour spec §4.15 and §8.4), whatever front it came from.
//!
//! The broker, not the client, keeps a POP group's place. A pop ([`pop_message::pop`]) reads a
//! queue from the group's committed offset, writes a check point for what it hands out to a
//! revive queue ([`records`]), and only then moves the committed offset past it, all under a
//! per (topic, group, queue) lock, so no message is handed out twice and none is skipped. The
//! consumer acknowledges each message by its receipt handle (`apogee_remoting::receipt`) within the
//! invisible time ([`ack`]), which writes an ack record next to the check point. The revive
//! service ([`revive`]) merges acks into check points and, when a check point's time passes,
//! stores every un-acked message again in the group's pop retry topic with one more
//! reconsume time, where later pops find it. Orderly pops ([`order`]) write no check point:
//! they block the queue until the batch is acked and commit offsets as acks arrive, each
//! commit also stored as a record of the revive topic until the offsets are on disk.
//!
//! Everything that must survive a crash is in the store: check points and acks in the revive
//! topic, how far each revive queue is settled as the `CID_RMQ_SYS_REVIVE_GROUP` offset of
//! that queue. After a restart [`revive::recover`] re-reads the unsettled part of each revive
//! queue before the broker serves, raising each group's offset past what its check points
//! handed out and to what its orderly acks committed, so a consumer offset persisted before
//! the crash never hands a message out again.

pub mod ack;
pub mod config;
pub mod notify;
pub mod order;
pub mod polling;
pub mod pop_message;
pub mod records;
pub mod revive;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::perm;
use apogee_remoting::code::response_code;
use parking_lot::Mutex;

use crate::core::error::{CoreResult, Error};
use crate::core::pull::MAX_HOLD_MS;
use crate::long_polling::ParkRefused;
use crate::BrokerState;

pub use apogee_remoting::receipt::{retry_topic, ORDER_REVIVE_QUEUE};
pub use config::PopConfig;
/// The group whose offsets on the revive topic say how far each revive queue is settled.
pub const REVIVE_GROUP: &str = "CID_RMQ_SYS_REVIVE_GROUP";
/// Most messages one pop returns.
pub const MAX_POP_MESSAGES: i32 = 32;
/// `initMode` starting a new group at the first message.
pub const INIT_MODE_MIN: i32 = 0;

/// The revive topic of the broker's cluster, `rmq_sys_REVIVE_LOG_<cluster>`.
pub fn revive_topic(config: &crate::BrokerConfig) -> String {
    format!("{}{}", crate::topic_config::REVIVE_TOPIC_PREFIX, config.broker_cluster_name)
}

/// Java's checks that a pop and a NOTIFICATION share after the broker's own: the topic
/// exists and is readable, the queue is one of the topic's, the group is known and may
/// consume. `consumer`, when given, is named in the illegal-queue remark (Java's pop names
/// it, its NOTIFICATION does not). Gives the topic's read queue count.
fn check_topic_and_group(
    state: &BrokerState,
    group: &str,
    topic: &str,
    queue_id: i32,
    consumer: Option<SocketAddr>,
) -> CoreResult<i32> {
    let Some(topic_config) = state.topics.get(topic) else {
        return Err(Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        ));
    };
    if !perm::is_readable(topic_config.perm) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the topic[{topic}] peeking message is forbidden"),
        ));
    }
    let read_queue_nums = topic_config.read_queue_nums;
    if queue_id >= read_queue_nums {
        let remark = format!(
            "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{read_queue_nums}]"
        );
        return Err(Error::invalid(match consumer {
            Some(consumer) => format!("{remark} consumer:[{consumer}]"),
            None => remark,
        }));
    }
    let Some(group_config) = state.groups.get_or_create(group) else {
        return Err(Error::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{group}] does not exist"),
        ));
    };
    if !group_config.consume_enable {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("subscription group no permission, {group}"),
        ));
    }
    Ok(read_queue_nums)
}

/// How long a pop or a NOTIFICATION may wait for a message: its `pollTime`, never negative
/// and never more than [`MAX_HOLD_MS`].
fn poll_duration(poll_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(poll_ms).unwrap_or(0).min(MAX_HOLD_MS))
}

/// Parks a pop or a NOTIFICATION until a message arrives in `topic` or in the group's pop
/// retry topic `retry`, within `popPollingSize` waiters per topic and `maxPopPollingSize` in
/// all.
fn park(
    state: &BrokerState,
    topic: &str,
    retry: &str,
    queue_id: i32,
) -> Result<polling::ParkedPop, ParkRefused> {
    let config = &state.config.pop;
    state.pop.polling.park(&[topic, retry], queue_id, config.pop_polling_size, config.max_pop_polling_size)
}

/// What the POP operations share (part of [`BrokerState`](crate::BrokerState)).
#[derive(Debug, Default)]
pub struct PopState {
    /// Queues being popped now, as (topic, group, queue): a second pop of the same queue
    /// skips it rather than waiting (Java's try-lock).
    busy_queues: Mutex<HashSet<(String, String, i32)>>,
    /// Chooses the revive queue of each pop, round-robin.
    pub(crate) pops: AtomicU64,
    /// Orderly batches in flight.
    pub order: order::OrderInfos,
    /// Parked pops.
    pub polling: Arc<polling::PopPolling>,
}

impl PopState {
    /// Takes the queue for one pop, or `None` when another pop holds it.
    pub(crate) fn try_lock(&self, topic: &str, group: &str, queue_id: i32) -> Option<QueueGuard<'_>> {
        let key = (topic.to_owned(), group.to_owned(), queue_id);
        let mut busy = self.busy_queues.lock();
        if busy.contains(&key) {
            return None;
        }
        busy.insert(key.clone());
        Some(QueueGuard { state: self, key })
    }

    /// Takes the queue, waiting (briefly, bounded) for a pop that holds it: acks of orderly
    /// batches must not be dropped because a pop is running.
    pub(crate) async fn lock(&self, topic: &str, group: &str, queue_id: i32) -> Option<QueueGuard<'_>> {
        const ATTEMPTS: u32 = 500;
        for _ in 0..ATTEMPTS {
            if let Some(guard) = self.try_lock(topic, group, queue_id) {
                return Some(guard);
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        None
    }
}

/// One pop's hold on a queue; dropping it frees the queue.
#[derive(Debug)]
pub(crate) struct QueueGuard<'a> {
    state: &'a PopState,
    key: (String, String, i32),
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.state.busy_queues.lock().remove(&self.key);
    }
}
