//! Bodies of the controller answers, in the JSON of Java's `RemotingSerializable` classes
//! (written with [`apogee_remoting::fastjson`]).

use std::collections::{BTreeMap, BTreeSet};

use apogee_remoting::body::route::BrokerMemberGroup;
use serde::{Deserialize, Serialize};

/// Java `SyncStateSet`: the members and the epoch they belong to. The request body of
/// ALTER_SYNC_STATE_SET and the answer body of REGISTER_BROKER, GET_REPLICA_INFO and
/// NOTIFY_BROKER_ROLE_CHANGED.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncStateSet {
    /// Member broker ids.
    pub sync_state_set: BTreeSet<i64>,
    /// Epoch of this membership.
    pub sync_state_set_epoch: i32,
}

/// Java `ElectMasterResponseBody`: the new SyncStateSet and the set's members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ElectMasterResponseBody {
    /// Every registered broker of the set (present when a new master was elected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_member_group: Option<BrokerMemberGroup>,
    /// The SyncStateSet after the election.
    pub sync_state_set: BTreeSet<i64>,
}

/// Java `BrokerReplicasInfo.ReplicaIdentity`: one broker in a GET_SYNC_STATE_DATA answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaIdentity {
    /// Set name.
    pub broker_name: String,
    /// Controller id.
    pub broker_id: i64,
    /// Address.
    pub broker_address: String,
    /// Whether its heartbeats are current.
    pub alive: bool,
}

/// Java `BrokerReplicasInfo.ReplicasInfo`: one set in a GET_SYNC_STATE_DATA answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicasInfo {
    /// Current master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_broker_id: Option<i64>,
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_address: Option<String>,
    /// Current master epoch.
    pub master_epoch: i32,
    /// Current SyncStateSet epoch.
    pub sync_state_set_epoch: i32,
    /// Members of the SyncStateSet.
    pub in_sync_replicas: Vec<ReplicaIdentity>,
    /// Registered brokers outside it.
    pub not_in_sync_replicas: Vec<ReplicaIdentity>,
}

/// Java `BrokerReplicasInfo`: the answer body of CONTROLLER_GET_SYNC_STATE_DATA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerReplicasInfo {
    /// Set name → its replicas.
    pub replicas_info_table: BTreeMap<String, ReplicasInfo>,
}
