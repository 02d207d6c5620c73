//! Choosing the brokers an admin call goes to and merging their answers: pure functions over
//! the route, cluster and statistics bodies.

use std::collections::BTreeMap;

use apogee_common::MessageQueue;
use apogee_remoting::body::admin::{ConsumeStats, TopicStatsTable};
use apogee_remoting::body::route::{BrokerData, ClusterInfo, TopicRouteData, MASTER_ID};

use crate::{ClientError, MessageExt};

/// One queue of a consumer group's progress (a line of `mqadmin consumerProgress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProgress {
    /// The queue.
    pub queue: MessageQueue,
    /// The queue's max offset (exclusive).
    pub broker_offset: i64,
    /// The group's committed offset (0 when none).
    pub consumer_offset: i64,
    /// The larger of the committed and the last pulled offset.
    pub pull_offset: i64,
    /// Messages not yet consumed: broker offset − consumer offset, never negative.
    pub lag: i64,
    /// Store time of the last consumed message, epoch ms (0 when unknown).
    pub last_timestamp: i64,
}

/// A consumer group's progress over every broker, queue by queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerProgress {
    /// Messages consumed per second, all brokers together.
    pub consume_tps: f64,
    /// One entry per queue, sorted by queue.
    pub queues: Vec<QueueProgress>,
}

impl ConsumerProgress {
    /// Messages not yet consumed, all queues together.
    pub fn total_lag(&self) -> i64 {
        self.queues.iter().map(|queue| queue.lag).sum()
    }
}

/// What a key query found on the brokers of a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// The latest index update time any broker reported, epoch ms.
    pub index_last_update_timestamp: i64,
    /// The messages whose keys include the key, in the order the brokers returned them.
    pub messages: Vec<MessageExt>,
}

/// Java `BrokerData.selectBrokerAddr`: the master, else any member (the first by id, so the
/// choice is stable).
pub(crate) fn select_broker_addr(broker: &BrokerData) -> Option<String> {
    broker.broker_addrs.get(&MASTER_ID).or_else(|| broker.broker_addrs.values().next()).cloned()
}

/// `(broker name, address)` of every broker group of a route, master preferred.
pub(crate) fn route_brokers(route: &TopicRouteData) -> Vec<(String, String)> {
    route
        .broker_datas
        .iter()
        .filter_map(|broker| select_broker_addr(broker).map(|addr| (broker.broker_name.clone(), addr)))
        .collect()
}

/// `(broker name, address)` of the members of `cluster`: every member, or only the masters
/// when `masters_only`; an error when `info` has no such cluster.
pub(crate) fn cluster_addrs(
    info: &ClusterInfo,
    cluster: &str,
    masters_only: bool,
) -> Result<Vec<(String, String)>, ClientError> {
    let names = info
        .cluster_addr_table
        .get(cluster)
        .ok_or_else(|| ClientError::IllegalArgument(format!("no cluster named {cluster:?}")))?;
    Ok(names
        .iter()
        .filter_map(|name| info.broker_addr_table.get(name).map(|broker| (name, broker)))
        .flat_map(|(name, broker)| {
            broker
                .broker_addrs
                .iter()
                .filter(move |(id, _)| !masters_only || **id == MASTER_ID)
                .map(move |(_, addr)| (name.clone(), addr.clone()))
        })
        .collect())
}

/// The broker name a `host:port` address belongs to in `info`, if any.
pub(crate) fn broker_name_of(info: &ClusterInfo, addr: &str) -> Option<String> {
    info.broker_addr_table
        .values()
        .find(|broker| broker.broker_addrs.values().any(|member| member == addr))
        .map(|broker| broker.broker_name.clone())
}

/// One topic table from every broker's: queues united, put TPS summed.
pub(crate) fn merge_topic_stats(tables: impl IntoIterator<Item = TopicStatsTable>) -> TopicStatsTable {
    let mut merged = TopicStatsTable::default();
    for table in tables {
        merged.offset_table.extend(table.offset_table);
        merged.topic_put_tps += table.topic_put_tps;
    }
    merged
}

/// One consume-stats table from every broker's: queues united, consume TPS summed.
pub(crate) fn merge_consume_stats(tables: impl IntoIterator<Item = ConsumeStats>) -> ConsumeStats {
    let mut merged = ConsumeStats::default();
    for table in tables {
        merged.offset_table.extend(table.offset_table);
        merged.consume_tps += table.consume_tps;
    }
    merged
}

/// The per-queue view of a consume-stats table.
pub(crate) fn progress(stats: &ConsumeStats) -> ConsumerProgress {
    let queues = stats
        .offset_table
        .iter()
        .map(|(queue, offsets)| QueueProgress {
            queue: queue.clone(),
            broker_offset: offsets.broker_offset,
            consumer_offset: offsets.consumer_offset,
            pull_offset: offsets.pull_offset,
            lag: offsets.broker_offset.saturating_sub(offsets.consumer_offset).max(0),
            last_timestamp: offsets.last_timestamp,
        })
        .collect();
    ConsumerProgress { consume_tps: stats.consume_tps, queues }
}

/// Keeps the messages of `topic` whose business keys include `key` exactly (the index is a
/// hash, so brokers may return others).
pub(crate) fn keep_key_matches(messages: Vec<MessageExt>, topic: &str, key: &str) -> Vec<MessageExt> {
    messages
        .into_iter()
        .filter(|message| {
            message.message.topic == topic && message.message.keys().any(|candidate| candidate == key)
        })
        .collect()
}

/// The old-style reset rule (Java `resetOffsetConsumeOffset`): move a queue to `target` when
/// forced, or when that does not skip messages (target at or before the committed offset).
pub(crate) fn should_reset(force: bool, target: i64, committed: i64) -> bool {
    force || target <= committed
}

/// Adds `more` to `all`.
pub(crate) fn merge_offsets(all: &mut BTreeMap<MessageQueue, i64>, more: BTreeMap<MessageQueue, i64>) {
    all.extend(more);
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_remoting::body::admin::{OffsetWrapper, TopicOffset};
    use bytes::Bytes;

    use crate::test_data::broker;

    fn cluster() -> ClusterInfo {
        let mut info = ClusterInfo::default();
        info.broker_addr_table.insert("a".into(), broker("a", &[(0, "a0:1"), (1, "a1:1")]));
        info.broker_addr_table.insert("b".into(), broker("b", &[(1, "b1:1")]));
        info.cluster_addr_table.insert("C".into(), ["a".to_owned(), "b".to_owned()].into_iter().collect());
        info
    }

    #[test]
    fn masters_and_members_of_a_cluster() {
        let info = cluster();
        assert_eq!(cluster_addrs(&info, "C", true).unwrap(), [("a".to_owned(), "a0:1".to_owned())]);
        let members: Vec<String> =
            cluster_addrs(&info, "C", false).unwrap().into_iter().map(|(_, addr)| addr).collect();
        assert_eq!(members, ["a0:1", "a1:1", "b1:1"]);
        assert!(matches!(cluster_addrs(&info, "X", true), Err(ClientError::IllegalArgument(_))));
        assert_eq!(broker_name_of(&info, "b1:1").as_deref(), Some("b"));
        assert_eq!(broker_name_of(&info, "z:1"), None);
    }

    #[test]
    fn route_brokers_prefer_masters() {
        let route = TopicRouteData {
            broker_datas: vec![
                broker("a", &[(0, "a0:1"), (1, "a1:1")]),
                broker("b", &[(2, "b2:1")]),
                broker("c", &[]),
            ],
            ..TopicRouteData::default()
        };
        assert_eq!(
            route_brokers(&route),
            [("a".to_owned(), "a0:1".to_owned()), ("b".to_owned(), "b2:1".to_owned())]
        );
    }

    #[test]
    fn topic_stats_are_united() {
        let table = |broker: &str, max: i64, tps: f64| {
            let mut table = TopicStatsTable { topic_put_tps: tps, ..TopicStatsTable::default() };
            for queue_id in 0..2 {
                table.offset_table.insert(
                    MessageQueue::new("T", broker, queue_id),
                    TopicOffset { min_offset: 0, max_offset: max, last_update_timestamp: 5 },
                );
            }
            table
        };
        let merged = merge_topic_stats([table("a", 3, 1.5), table("b", 7, 2.0)]);
        assert_eq!(merged.offset_table.len(), 4);
        assert_eq!(merged.topic_put_tps, 3.5);
        assert_eq!(merged.offset_table[&MessageQueue::new("T", "b", 1)].max_offset, 7);
    }

    #[test]
    fn consume_stats_merge_into_progress() {
        let stats = |broker: &str, committed: i64, tps: f64| {
            let mut stats = ConsumeStats { consume_tps: tps, ..ConsumeStats::default() };
            stats.offset_table.insert(
                MessageQueue::new("T", broker, 0),
                OffsetWrapper {
                    broker_offset: 10,
                    consumer_offset: committed,
                    last_timestamp: 9,
                    pull_offset: 10,
                },
            );
            stats
        };
        let merged = merge_consume_stats([stats("b", 4, 1.0), stats("a", 12, 0.5)]);
        let progress = progress(&merged);
        assert_eq!(progress.consume_tps, 1.5);
        let lags: Vec<(String, i64)> =
            progress.queues.iter().map(|queue| (queue.queue.broker_name.clone(), queue.lag)).collect();
        assert_eq!(lags, [("a".to_owned(), 0), ("b".to_owned(), 6)]);
        assert_eq!(progress.total_lag(), 6);
        assert_eq!(progress.queues[1].consumer_offset, 4);
    }

    #[test]
    fn key_queries_keep_exact_matches_of_the_topic() {
        let message = |topic: &str, keys: &str| {
            let mut ext = MessageExt::default();
            ext.message.topic = topic.into();
            ext.message.body = Bytes::new();
            ext.message.set_keys(keys.split(' '));
            ext
        };
        let kept = keep_key_matches(
            vec![message("T", "k1"), message("T", "k10 k2"), message("T", "x k1"), message("U", "k1")],
            "T",
            "k1",
        );
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn the_reset_rule_never_skips_unless_forced() {
        assert!(should_reset(true, 10, 5));
        assert!(!should_reset(false, 10, 5));
        assert!(should_reset(false, 5, 5));
        assert!(should_reset(false, 0, 5));
        let mut all = BTreeMap::new();
        merge_offsets(&mut all, [(MessageQueue::new("T", "a", 0), 3)].into_iter().collect());
        merge_offsets(&mut all, [(MessageQueue::new("T", "b", 0), 4)].into_iter().collect());
        assert_eq!(all.len(), 2);
    }
}
