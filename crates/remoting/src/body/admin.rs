//! Admin bodies: statistics, connections and subscription-group configuration (spec §3.5).

use std::collections::{BTreeMap, BTreeSet};

use apogee_common::{DataVersion, MessageQueue};
use serde::{Deserialize, Serialize};

use super::enums::{self, ConsumeFromWhere, ConsumeType, ExpressionType, GroupRetryPolicyType, MessageModel};
use super::heartbeat::SubscriptionData;
use crate::language::LanguageCode;

/// A consumer group's progress on one broker (Java `ConsumeStats`): the response body of
/// GET_CONSUME_STATS (208). Queue keys are written as bare objects in the fastjson dialect,
/// which is the only form Java admin tools read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStats {
    /// Messages consumed per second by the group.
    pub consume_tps: f64,
    /// Queue → offsets.
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
}

/// Offsets of one queue for one group (Java `OffsetWrapper`), inside [`ConsumeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's max offset (exclusive).
    pub broker_offset: i64,
    /// The group's committed offset, 0 if none.
    pub consumer_offset: i64,
    /// Store time of the last consumed message, 0 if unknown.
    pub last_timestamp: i64,
    /// The larger of the committed and the last pulled offset.
    pub pull_offset: i64,
}

/// Offsets of every queue of a topic on one broker (Java `TopicStatsTable`): the response body
/// of GET_TOPIC_STATS_INFO (202). Queue keys are written as bare objects in the fastjson dialect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStatsTable {
    /// Queue → offsets.
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
    /// Messages written per second to the topic.
    pub topic_put_tps: f64,
}

/// Offsets of one queue (Java `TopicOffset`), inside [`TopicStatsTable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    /// Store time of the queue's last message, 0 if empty.
    pub last_update_timestamp: i64,
    /// Max offset (exclusive).
    pub max_offset: i64,
    /// Min offset.
    pub min_offset: i64,
}

/// The online consumers of a group (Java `ConsumerConnection`): the response body of
/// GET_CONSUMER_CONNECTION_LIST (203).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    /// One entry per client channel (a Java `Set`).
    pub connection_set: Vec<Connection>,
    /// The group's start position policy.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub consume_from_where: Option<ConsumeFromWhere>,
    /// Push, pull or pop.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub consume_type: Option<ConsumeType>,
    /// Clustering or broadcasting.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub message_model: Option<MessageModel>,
    /// Topic → subscription.
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// The online producers of a group (Java `ProducerConnection`): the response body of
/// GET_PRODUCER_CONNECTION_LIST (204).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    /// One entry per client channel (a Java `Set`).
    pub connection_set: Vec<Connection>,
}

/// One client channel (Java `Connection`), inside [`ConsumerConnection`] and
/// [`ProducerConnection`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    /// Remote `ip:port` of the channel.
    pub client_addr: String,
    /// Client instance id.
    pub client_id: String,
    /// SDK language, by Java constant name.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "enums::language::serialize",
        deserialize_with = "enums::language::deserialize"
    )]
    pub language: Option<LanguageCode>,
    /// Client version ordinal.
    pub version: i32,
}

/// A subscription group's configuration (Java `SubscriptionGroupConfig`): the request body of
/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200), the response body of GET_SUBSCRIPTIONGROUP_CONFIG,
/// and the values of [`SubscriptionGroupWrapper`]. [`Default`] gives Java's defaults, which
/// also fill in whatever a peer leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// 5.x free-form attributes.
    pub attributes: BTreeMap<String, String>,
    /// Broker id consumers should read from (0 = master).
    pub broker_id: i64,
    /// Whether broadcasting consumption is allowed.
    pub consume_broadcast_enable: bool,
    /// Whether the group may consume at all.
    pub consume_enable: bool,
    /// Whether a new group starts from the min offset.
    pub consume_from_min_enable: bool,
    /// Whether the group consumes orderly.
    pub consume_message_orderly: bool,
    /// Minutes before a message being consumed counts as timed out.
    pub consume_timeout_minute: i32,
    /// Group name.
    pub group_name: String,
    /// 5.x retry schedule.
    pub group_retry_policy: GroupRetryPolicy,
    /// Group flags.
    pub group_sys_flag: i32,
    /// Whether consumers get NOTIFY_CONSUMER_IDS_CHANGED.
    pub notify_consumer_ids_changed_enable: bool,
    /// Deliveries before a message goes to the DLQ.
    pub retry_max_times: i32,
    /// Queues of the group's retry topic.
    pub retry_queue_nums: i32,
    /// 5.x declared subscriptions; absent unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data_set: Option<Vec<SimpleSubscriptionData>>,
    /// Broker id to read from when consumption is slow.
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            consume_timeout_minute: 15,
            group_name: String::new(),
            group_retry_policy: GroupRetryPolicy::default(),
            group_sys_flag: 0,
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            subscription_data_set: None,
            which_broker_when_consume_slowly: 1,
        }
    }
}

impl SubscriptionGroupConfig {
    /// Java defaults for group `group_name`.
    pub fn new(group_name: impl Into<String>) -> Self {
        Self { group_name: group_name.into(), ..Self::default() }
    }
}

/// How a group's failed messages are retried (Java `GroupRetryPolicy`), inside
/// [`SubscriptionGroupConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupRetryPolicy {
    /// Delays for the CUSTOMIZED type, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customized_retry_policy: Option<CustomizedRetryPolicy>,
    /// Parameters for the EXPONENTIAL type, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponential_retry_policy: Option<ExponentialRetryPolicy>,
    /// Which policy applies; an unknown name reads as CUSTOMIZED, the policy Java falls back to.
    #[serde(rename = "type", deserialize_with = "enums::lenient_or_default")]
    pub policy_type: GroupRetryPolicyType,
}

/// A fixed list of retry delays (Java `CustomizedRetryPolicy`), inside [`GroupRetryPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomizedRetryPolicy {
    /// Delays in milliseconds; retry `n` waits `next[n + 2]` (clamped to the last).
    pub next: Vec<i64>,
}

impl Default for CustomizedRetryPolicy {
    /// Java's list: 1 s 5 s 10 s 30 s 1 m … 10 m 20 m 30 m 1 h 2 h.
    fn default() -> Self {
        const SECOND: i64 = 1000;
        const MINUTE: i64 = 60 * SECOND;
        let next = vec![
            SECOND,
            5 * SECOND,
            10 * SECOND,
            30 * SECOND,
            MINUTE,
            2 * MINUTE,
            3 * MINUTE,
            4 * MINUTE,
            5 * MINUTE,
            6 * MINUTE,
            7 * MINUTE,
            8 * MINUTE,
            9 * MINUTE,
            10 * MINUTE,
            20 * MINUTE,
            30 * MINUTE,
            60 * MINUTE,
            120 * MINUTE,
        ];
        Self { next }
    }
}

/// Doubling retry delays (Java `ExponentialRetryPolicy`), inside [`GroupRetryPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExponentialRetryPolicy {
    /// First delay in milliseconds (Java default 5 s).
    pub initial: i64,
    /// Longest delay in milliseconds (Java default 2 h).
    pub max: i64,
    /// Factor between delays (Java default 2).
    pub multiplier: i64,
}

impl Default for ExponentialRetryPolicy {
    fn default() -> Self {
        Self { initial: 5_000, max: 7_200_000, multiplier: 2 }
    }
}

/// A subscription declared on a group (Java `SimpleSubscriptionData`), inside
/// [`SubscriptionGroupConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimpleSubscriptionData {
    /// The filter expression.
    pub expression: String,
    /// `TAG` or `SQL92`.
    pub expression_type: ExpressionType,
    /// Subscribed topic.
    pub topic: String,
    /// Version of the subscription.
    pub version: i64,
}

/// A set of group names (Java `GroupList`): the response body of QUERY_TOPIC_CONSUME_BY_WHO
/// (300) and of the other "which groups" admin queries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    /// Group names (a Java `Set`, written as an array).
    pub group_list: BTreeSet<String>,
}

/// Every subscription group of a broker (Java `SubscriptionGroupWrapper`): the response body of
/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), read by slaves and admin tools, and the broker's
/// persisted `subscriptionGroup.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Group → topic → forbidden permission bits.
    pub forbidden_table: BTreeMap<String, BTreeMap<String, i32>>,
    /// Group name → configuration.
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}
