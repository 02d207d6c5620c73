//! Route bodies: where a topic's queues live and which brokers serve them (spec §3.2).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::static_topic::TopicQueueMappingInfo;

/// Java `MixAll.MASTER_ID`: the broker id of a master in [`BrokerData::broker_addrs`].
pub const MASTER_ID: i64 = 0;

/// The route of one topic (Java `TopicRouteData`): the response body of GET_ROUTEINFO_BY_TOPIC
/// (written in [`Dialect::Standard`](crate::fastjson::Dialect::Standard) for clients with
/// version ≥ 401 or `acceptStandardJsonOnly`, otherwise in the fastjson dialect) and the request
/// body of REGISTER_TOPIC_IN_NAMESRV (only `queueDatas` used).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    /// One entry per broker group serving the topic.
    pub broker_datas: Vec<BrokerData>,
    /// Broker address → filter servers; always written, normally `{}`.
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// `brokerName:queueNum;...` for ordered topics, from the namesrv's KV config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// Queue counts and permissions per broker group.
    pub queue_datas: Vec<QueueData>,
    /// 5.x static topics: broker name → mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, TopicQueueMappingInfo>>,
}

/// A topic's queues on one broker group (Java `QueueData`), inside [`TopicRouteData`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    /// Broker group name.
    pub broker_name: String,
    /// Permission bits (`apogee_common::perm`).
    pub perm: i32,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Unit flags of the topic.
    pub topic_sys_flag: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
}

/// One broker group: its name, cluster and the address of each member (Java `BrokerData`).
/// Inside [`TopicRouteData`] and [`ClusterInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// Broker id (0 = master) → `ip:port`. Java `HashMap<Long, String>`, so the fastjson dialect
    /// writes the ids as bare numbers.
    pub broker_addrs: BTreeMap<i64, String>,
    /// Broker group name.
    pub broker_name: String,
    /// Cluster the group belongs to.
    pub cluster: String,
    /// 5.x: a slave may act as master while the master is down.
    pub enable_acting_master: bool,
    /// 5.x zone of the group, for zone-aware routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

/// Every broker group and cluster a namesrv knows (Java `ClusterInfo`): the response body of
/// GET_BROKER_CLUSTER_INFO, always in the fastjson dialect (bare broker-id keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// Broker name → its group.
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Cluster name → broker names.
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// The members of one broker group (Java `BrokerMemberGroup`), inside
/// [`GetBrokerMemberGroupResponseBody`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerMemberGroup {
    /// Broker id → `ip:port`.
    pub broker_addrs: BTreeMap<i64, String>,
    /// Broker group name.
    pub broker_name: String,
    /// Cluster the group belongs to.
    pub cluster: String,
}

/// Response body of GET_BROKER_MEMBER_GROUP (901): a broker learns its group's members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GetBrokerMemberGroupResponseBody {
    /// The group asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_member_group: Option<BrokerMemberGroup>,
}
