//! Consumer-side bodies: queue locks, group membership, client checks and offset resets
//! (spec §3.4, §3.5).

use std::collections::{BTreeMap, BTreeSet};

use apogee_common::MessageQueue;
use serde::{Deserialize, Serialize};

use super::heartbeat::SubscriptionData;

/// Queues an orderly consumer wants to lock (Java `LockBatchRequestBody`): the request body of
/// LOCK_BATCH_MQ (41).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    /// Client instance asking for the locks.
    pub client_id: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Queues to lock.
    pub mq_set: BTreeSet<MessageQueue>,
    /// 5.x: lock only the queues of the receiving broker.
    pub only_this_broker: bool,
}

/// The queues now locked by the requester (Java `LockBatchResponseBody`): the response body of
/// LOCK_BATCH_MQ (41).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    /// Locked queues.
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

/// Queues an orderly consumer releases (Java `UnlockBatchRequestBody`): the request body of
/// UNLOCK_BATCH_MQ (42).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UnlockBatchRequestBody {
    /// Client instance holding the locks.
    pub client_id: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Queues to unlock.
    pub mq_set: BTreeSet<MessageQueue>,
    /// 5.x: unlock only the queues of the receiving broker.
    pub only_this_broker: bool,
}

/// The live consumers of a group (Java `GetConsumerListByGroupResponseBody`): the response
/// body of GET_CONSUMER_LIST_BY_GROUP (38), used by clients to rebalance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GetConsumerListByGroupResponseBody {
    /// Client ids of the group's consumers.
    pub consumer_id_list: Vec<String>,
}

/// A subscription a consumer wants validated before it starts (Java
/// `CheckClientRequestBody`): the request body of CHECK_CLIENT_CONFIG (46), sent for SQL92
/// subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckClientRequestBody {
    /// Client instance id.
    pub client_id: String,
    /// Consumer group.
    pub group: String,
    /// Namespace of the client, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The subscription to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
}

/// New offsets for a group's queues (Java `ResetOffsetBody`): the body of
/// RESET_CONSUMER_CLIENT_OFFSET (220) pushed to consumers and the response body of
/// INVOKE_BROKER_TO_RESET_OFFSET (222). Keys are written as bare objects in the fastjson dialect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetOffsetBody {
    /// Queue → offset to restart from.
    pub offset_table: BTreeMap<MessageQueue, i64>,
}
