//! Statistics and who is connected: per-queue offsets of a topic, a group's progress, live
//! producer and consumer connections, and which groups consume which topics.

use std::collections::BTreeSet;
use std::sync::Arc;

use apogee_common::MessageQueue;
use apogee_remoting::body::admin::{
    ConsumeStats, ConsumerConnection, OffsetWrapper, ProducerConnection, TopicOffset, TopicStatsTable,
};
use apogee_remoting::code::response_code;

use super::MAX_QUEUE_NUMS;
use crate::core::blocking;
use crate::core::error::{CoreResult, Error};
use crate::BrokerState;

/// Min, max and last store time of every queue of the topic.
pub async fn topic_stats(state: &Arc<BrokerState>, topic: &str) -> CoreResult<TopicStatsTable> {
    let topic = topic.to_owned();
    let config = state
        .topics
        .get(&topic)
        .ok_or_else(|| Error::new(response_code::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist")))?;
    let queues = config.read_queue_nums.max(config.write_queue_nums).clamp(0, MAX_QUEUE_NUMS);
    blocking(state, move |state| {
        let mut table = TopicStatsTable::default();
        for queue_id in 0..queues {
            let min_offset = state.store.min_offset(&topic, queue_id).max(0);
            let max_offset = state.store.max_offset(&topic, queue_id).max(0);
            let last_update_timestamp = if max_offset > 0 {
                state.store.store_timestamp_at(&topic, queue_id, max_offset - 1).unwrap_or(0)
            } else {
                0
            };
            table.offset_table.insert(
                MessageQueue::new(topic.clone(), state.config.broker_name.clone(), queue_id),
                TopicOffset { last_update_timestamp, max_offset, min_offset },
            );
        }
        table
    })
    .await
}

/// Which topics a group's progress is asked for.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeStatsRequest<'a> {
    /// The group.
    pub group: &'a str,
    /// One topic; absent or blank means every topic the group has offsets for.
    pub topic: Option<&'a str>,
    /// Exactly these topics (5.x peers), when not empty; overrides `topic`.
    pub topics: &'a BTreeSet<String>,
}

/// The topics a group's progress is reported for: the listed ones exactly; otherwise `topic`,
/// or every topic the group has offsets for, minus (while the group is online) topics it does
/// not subscribe to.
fn consume_stats_topics(state: &BrokerState, request: &ConsumeStatsRequest<'_>) -> BTreeSet<String> {
    if !request.topics.is_empty() {
        return request.topics.clone();
    }
    let group = request.group;
    let mut topics: BTreeSet<String> = match request.topic.map(str::trim) {
        Some(topic) if !topic.is_empty() => [topic.to_owned()].into(),
        _ => state.offsets.topics_of_group(group).into_iter().collect(),
    };
    if let Some(online) = state.clients.consumer_connection(group) {
        if !online.subscription_table.is_empty() {
            topics.retain(|topic| online.subscription_table.contains_key(topic));
        }
    }
    topics
}

/// A group's progress: per read queue the queue's max offset, the group's committed and
/// pulled offsets and the store time of the last consumed message.
pub async fn consume_stats(
    state: &Arc<BrokerState>,
    request: &ConsumeStatsRequest<'_>,
) -> CoreResult<ConsumeStats> {
    let topics = consume_stats_topics(state, request);
    let group = request.group.to_owned();
    blocking(state, move |state| {
        let mut stats = ConsumeStats::default();
        for topic in topics {
            let Some(config) = state.topics.get(&topic) else {
                tracing::warn!(%topic, %group, "consume stats: topic does not exist");
                continue;
            };
            for queue_id in 0..config.read_queue_nums.clamp(0, MAX_QUEUE_NUMS) {
                let broker_offset = state.store.max_offset(&topic, queue_id).max(0);
                let consumer_offset = state.offsets.query(&group, &topic, queue_id).unwrap_or(0).max(0);
                let pulled = state.offsets.pull_offset(&group, &topic, queue_id).unwrap_or(0);
                let last_timestamp = if consumer_offset > 0 {
                    state.store.store_timestamp_at(&topic, queue_id, consumer_offset - 1).unwrap_or(0).max(0)
                } else {
                    0
                };
                stats.offset_table.insert(
                    MessageQueue::new(topic.clone(), state.config.broker_name.clone(), queue_id),
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        last_timestamp,
                        pull_offset: consumer_offset.max(pulled),
                    },
                );
            }
        }
        stats
    })
    .await
}

/// A consumer group's live connections and subscriptions; CONSUMER_NOT_ONLINE without any.
pub fn consumer_connections(state: &BrokerState, group: &str) -> CoreResult<ConsumerConnection> {
    state.clients.consumer_connection(group).ok_or_else(|| {
        Error::new(response_code::CONSUMER_NOT_ONLINE, format!("the consumer group[{group}] not online"))
    })
}

/// A producer group's live connections.
pub fn producer_connections(state: &BrokerState, group: &str) -> CoreResult<ProducerConnection> {
    state
        .clients
        .producer_connection(group)
        .ok_or_else(|| Error::system(format!("the producer group[{group}] not exist")))
}

/// Groups online on the topic plus groups with offsets on it.
pub fn groups_consuming(state: &BrokerState, topic: &str) -> BTreeSet<String> {
    let mut groups: BTreeSet<String> = state.clients.groups_subscribing(topic).into_iter().collect();
    groups.extend(state.offsets.groups_of_topic(topic));
    groups
}

/// Topics a group has offsets for.
pub fn topics_of_group(state: &BrokerState, group: &str) -> Vec<String> {
    state.offsets.topics_of_group(group)
}
