//! Heartbeat bodies: which producer and consumer groups a client instance runs, and what the
//! consumers subscribe to (spec §3.4 HEART_BEAT).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::enums::{self, ConsumeFromWhere, ConsumeType, ExpressionType, MessageModel};

/// Java `SubscriptionData.SUB_ALL`: the expression that matches every message.
pub const SUB_ALL: &str = "*";

/// A client instance's groups (Java `HeartbeatData`): the request body of HEART_BEAT (34),
/// sent by every client to every broker every 30 s by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    /// Client instance id, typically `ip@instanceName`.
    #[serde(rename = "clientID", alias = "clientId")]
    pub client_id: String,
    /// Consumer groups of this client (a Java `Set`).
    pub consumer_data_set: Vec<ConsumerData>,
    /// 5.x HeartbeatV2: hash of the subscription data; 0 for a classic heartbeat.
    pub heartbeat_fingerprint: i32,
    /// Producer groups of this client (a Java `Set`).
    pub producer_data_set: Vec<ProducerData>,
    /// 5.x HeartbeatV2: subscriptions left out because they did not change.
    #[serde(alias = "isWithoutSub")]
    pub without_sub: bool,
}

/// One producer group of a client (Java `ProducerData`), inside [`HeartbeatData`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    /// Producer group name.
    pub group_name: String,
}

/// One consumer group of a client (Java `ConsumerData`), inside [`HeartbeatData`]. Enum
/// properties a client leaves out, or names this version does not know, read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    /// Start position for queues without a committed offset.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub consume_from_where: Option<ConsumeFromWhere>,
    /// Push, pull or pop.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub consume_type: Option<ConsumeType>,
    /// Consumer group name.
    pub group_name: String,
    /// Clustering or broadcasting.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "enums::lenient")]
    pub message_model: Option<MessageModel>,
    /// One subscription per topic (a Java `Set`).
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit (cell) mode flag.
    pub unit_mode: bool,
}

/// One topic subscription (Java `SubscriptionData`), inside [`ConsumerData`],
/// CheckClientRequestBody and ConsumerConnection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    /// Retired class-filter flag.
    pub class_filter_mode: bool,
    /// Java `String.hashCode()` of each tag, for filtering by consume-queue tag hash.
    pub code_set: BTreeSet<i32>,
    /// `TAG` or `SQL92` (or a name the broker must refuse).
    pub expression_type: ExpressionType,
    /// Retired filter-class source; read if present, never written (as in Java).
    #[serde(skip_serializing)]
    pub filter_class_source: Option<String>,
    /// The expression: `*`, `tagA || tagB`, or SQL92.
    pub sub_string: String,
    /// Version of the subscription, a millisecond timestamp that grows with every change.
    pub sub_version: i64,
    /// The tags of a tag expression, trimmed.
    pub tags_set: BTreeSet<String>,
    /// Subscribed topic.
    pub topic: String,
}
