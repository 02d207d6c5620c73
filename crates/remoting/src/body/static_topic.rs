//! 5.x static-topic mapping objects. Apogee does not implement static topics, but brokers and
//! namesrvs pass these through (route bodies, broker registration, topic config listings), so
//! they are modelled exactly enough to be written back the way Java writes them: `Integer`-keyed
//! maps with bare number keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Java `MixAll.METADATA_SCOPE_GLOBAL`, the default scope of a mapping.
pub const METADATA_SCOPE_GLOBAL: &str = "__global__";

/// How a static topic's logical queues map onto one broker's physical queues (Java
/// `TopicQueueMappingInfo`). Travels in TopicRouteData `topicQueueMappingByBroker`,
/// TopicConfigAndMappingSerializeWrapper `topicQueueMappingInfoMap` and the compressed
/// RegisterBrokerBody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicQueueMappingInfo {
    /// Broker name hosting the queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bname: Option<String>,
    /// Logical queue id → physical queue id on this broker.
    pub curr_id_map: BTreeMap<i32, i32>,
    /// Set when the mapping was changed and not yet confirmed.
    pub dirty: bool,
    /// Fences off stale mappings.
    pub epoch: i64,
    /// Metadata scope, `__global__` by default.
    pub scope: String,
    /// The static topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Logical queue count of the topic.
    pub total_queues: i32,
}

impl Default for TopicQueueMappingInfo {
    fn default() -> Self {
        Self {
            bname: None,
            curr_id_map: BTreeMap::new(),
            dirty: false,
            epoch: 0,
            scope: METADATA_SCOPE_GLOBAL.to_owned(),
            topic: None,
            total_queues: 0,
        }
    }
}

/// A [`TopicQueueMappingInfo`] plus the logical queues this broker hosts (Java
/// `TopicQueueMappingDetail`). Travels in TopicConfigAndMappingSerializeWrapper
/// `topicQueueMappingDetailMap` (REGISTER_BROKER, GET_ALL_TOPIC_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicQueueMappingDetail {
    /// Broker name hosting the queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bname: Option<String>,
    /// Logical queue id → physical queue id on this broker.
    pub curr_id_map: BTreeMap<i32, i32>,
    /// Set when the mapping was changed and not yet confirmed.
    pub dirty: bool,
    /// Fences off stale mappings.
    pub epoch: i64,
    /// Global queue id → the physical segments that made it up over time.
    pub hosted_queues: BTreeMap<i32, Vec<LogicQueueMappingItem>>,
    /// Metadata scope, `__global__` by default.
    pub scope: String,
    /// The static topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Logical queue count of the topic.
    pub total_queues: i32,
}

impl Default for TopicQueueMappingDetail {
    fn default() -> Self {
        Self {
            bname: None,
            curr_id_map: BTreeMap::new(),
            dirty: false,
            epoch: 0,
            hosted_queues: BTreeMap::new(),
            scope: METADATA_SCOPE_GLOBAL.to_owned(),
            topic: None,
            total_queues: 0,
        }
    }
}

/// One physical segment of a logical queue (Java `LogicQueueMappingItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogicQueueMappingItem {
    /// Broker holding the segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bname: Option<String>,
    /// Physical end offset, exclusive; −1 while open.
    pub end_offset: i64,
    /// Generation of the mapping.
    pub gen: i32,
    /// Logical offset the segment starts at.
    pub logic_offset: i64,
    /// Physical queue id.
    pub queue_id: i32,
    /// Physical start offset.
    pub start_offset: i64,
    /// Reserved; −1.
    pub time_of_end: i64,
    /// Reserved; −1.
    pub time_of_start: i64,
}

impl Default for LogicQueueMappingItem {
    fn default() -> Self {
        Self {
            bname: None,
            end_offset: -1,
            gen: 0,
            logic_offset: 0,
            queue_id: 0,
            start_offset: 0,
            time_of_end: -1,
            time_of_start: -1,
        }
    }
}
