//! Typed headers of the controller requests and answers, with the field names of Java's
//! `remoting/protocol/header/controller/*` (and `NotifyBrokerRoleChangedRequestHeader`), so a
//! Java broker and this controller read each other. BROKER_HEARTBEAT's header is the
//! NameServer's ([`apogee_remoting::header::namesrv::BrokerHeartbeatRequestHeader`]).

use apogee_remoting::command_header;

command_header! {
    /// A header with no field: the answers that carry only a code and a remark.
    pub struct EmptyHeader {}
}

command_header! {
    /// CONTROLLER_GET_NEXT_BROKER_ID (1012): which id a new broker of the set should apply for.
    pub struct GetNextBrokerIdRequestHeader {
        /// Cluster of the set.
        cluster_name: String => "clusterName",
        /// Set name.
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// Answer to CONTROLLER_GET_NEXT_BROKER_ID.
    pub struct GetNextBrokerIdResponseHeader {
        /// Cluster of the set.
        cluster_name: Option<String> => "clusterName",
        /// Set name.
        broker_name: Option<String> => "brokerName",
        /// The id to apply for (1 for an unknown set).
        next_broker_id: Option<i64> => "nextBrokerId",
    }
}

command_header! {
    /// CONTROLLER_APPLY_BROKER_ID (1013): a broker takes an id.
    pub struct ApplyBrokerIdRequestHeader {
        /// Cluster of the set.
        cluster_name: String => "clusterName",
        /// Set name.
        broker_name: String => "brokerName",
        /// The id asked for.
        applied_broker_id: i64 => "appliedBrokerId",
        /// `brokerAddr;currentTimeMillis`: who asks, so that a retry is recognised.
        register_check_code: String => "registerCheckCode",
    }
}

command_header! {
    /// Answer to CONTROLLER_APPLY_BROKER_ID.
    pub struct ApplyBrokerIdResponseHeader {
        /// Cluster of the set.
        cluster_name: Option<String> => "clusterName",
        /// Set name.
        broker_name: Option<String> => "brokerName",
    }
}

command_header! {
    /// CONTROLLER_REGISTER_BROKER (1003): a broker with an id announces its address.
    pub struct RegisterBrokerToControllerRequestHeader {
        /// Cluster of the set.
        cluster_name: String => "clusterName",
        /// Set name.
        broker_name: String => "brokerName",
        /// The broker's controller id.
        broker_id: i64 => "brokerId",
        /// `ip:port` of the broker.
        broker_address: String => "brokerAddress",
        /// When the broker sent it (ms since the epoch).
        invoke_time: Option<i64> => "invokeTime",
    }
}

command_header! {
    /// Answer to CONTROLLER_REGISTER_BROKER: the live master, if any (SyncStateSet in the body).
    pub struct RegisterBrokerToControllerResponseHeader {
        /// Cluster of the set.
        cluster_name: Option<String> => "clusterName",
        /// Set name.
        broker_name: Option<String> => "brokerName",
        /// Id of the live master.
        master_broker_id: Option<i64> => "masterBrokerId",
        /// Address of the live master.
        master_address: Option<String> => "masterAddress",
        /// Current master epoch.
        master_epoch: Option<i32> => "masterEpoch",
        /// Current SyncStateSet epoch.
        sync_state_set_epoch: Option<i32> => "syncStateSetEpoch",
    }
}

command_header! {
    /// CONTROLLER_ELECT_MASTER (1002): a broker nominates itself, or the controller triggers an
    /// election (`brokerId` -1).
    pub struct ElectMasterRequestHeader {
        /// Cluster of the set.
        cluster_name: String => "clusterName",
        /// Set name.
        broker_name: String => "brokerName",
        /// The requester, or -1 when the controller itself triggers the election.
        broker_id: i64 => "brokerId",
        /// Force `brokerId` as master if it is a candidate.
        designate_elect: bool => "designateElect",
        /// When it was sent (ms since the epoch).
        invoke_time: Option<i64> => "invokeTime",
    }
}

command_header! {
    /// Answer to CONTROLLER_ELECT_MASTER (body: `ElectMasterResponseBody`).
    pub struct ElectMasterResponseHeader {
        /// The master after the election.
        master_broker_id: Option<i64> => "masterBrokerId",
        /// Its address.
        master_address: Option<String> => "masterAddress",
        /// The master epoch after the election.
        master_epoch: Option<i32> => "masterEpoch",
        /// The SyncStateSet epoch after the election.
        sync_state_set_epoch: Option<i32> => "syncStateSetEpoch",
    }
}

command_header! {
    /// CONTROLLER_ALTER_SYNC_STATE_SET (1001): the master reports a new SyncStateSet (body:
    /// `SyncStateSet` with the epoch it is based on).
    pub struct AlterSyncStateSetRequestHeader {
        /// Set name.
        broker_name: String => "brokerName",
        /// The requesting master.
        master_broker_id: i64 => "masterBrokerId",
        /// The master epoch the requester holds.
        master_epoch: i32 => "masterEpoch",
        /// When it was sent (ms since the epoch).
        invoke_time: Option<i64> => "invokeTime",
    }
}

command_header! {
    /// Answer to CONTROLLER_ALTER_SYNC_STATE_SET.
    pub struct AlterSyncStateSetResponseHeader {
        /// The epoch of the new set.
        new_sync_state_set_epoch: Option<i32> => "newSyncStateSetEpoch",
    }
}

command_header! {
    /// CONTROLLER_GET_REPLICA_INFO (1004): a broker polls its set's master and epochs.
    pub struct GetReplicaInfoRequestHeader {
        /// Set name.
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// Answer to CONTROLLER_GET_REPLICA_INFO (body: `SyncStateSet`).
    pub struct GetReplicaInfoResponseHeader {
        /// Current master.
        master_broker_id: Option<i64> => "masterBrokerId",
        /// Its address.
        master_address: Option<String> => "masterAddress",
        /// Current master epoch.
        master_epoch: Option<i32> => "masterEpoch",
    }
}

command_header! {
    /// Answer to CONTROLLER_GET_METADATA_INFO (1005): who leads the controllers.
    pub struct GetMetaDataResponseHeader {
        /// Raft group name (`controllerDLegerGroup`).
        group: Option<String> => "group",
        /// Id of the leader, if one is known.
        controller_leader_id: Option<String> => "controllerLeaderId",
        /// Address of the leader, if one is known.
        controller_leader_address: Option<String> => "controllerLeaderAddress",
        /// Whether the answering controller leads.
        is_leader: bool => "isLeader",
        /// `id:address;` of every controller.
        peers: Option<String> => "peers",
    }
}

command_header! {
    /// CLEAN_BROKER_DATA (1011): an administrator forgets a set or some of its brokers.
    pub struct CleanControllerBrokerDataRequestHeader {
        /// Cluster of the set.
        cluster_name: Option<String> => "clusterName",
        /// Set name.
        broker_name: String => "brokerName",
        /// `id;id;…` to forget; absent forgets the whole set.
        broker_controller_ids_to_clean: Option<String> => "brokerControllerIdsToClean",
        /// Also forget brokers that are still alive.
        is_clean_living_broker: Option<bool> => "isCleanLivingBroker",
        /// When it was sent (ms since the epoch).
        invoke_time: Option<i64> => "invokeTime",
    }
}

command_header! {
    /// NOTIFY_BROKER_ROLE_CHANGED (1008), controller → broker: a new master was elected
    /// (body: `SyncStateSet`).
    pub struct NotifyBrokerRoleChangedRequestHeader {
        /// Address of the new master.
        master_address: Option<String> => "masterAddress",
        /// The new master epoch.
        master_epoch: Option<i32> => "masterEpoch",
        /// The new SyncStateSet epoch.
        sync_state_set_epoch: Option<i32> => "syncStateSetEpoch",
        /// Id of the new master.
        master_broker_id: Option<i64> => "masterBrokerId",
    }
}

#[cfg(test)]
mod tests {
    use apogee_remoting::header::CommandHeader;

    use super::*;

    /// The wire keys are Java's field names; a change here would break a Java peer.
    #[test]
    fn keys_are_the_java_field_names() {
        let names = |keys: &[apogee_remoting::header::HeaderKey]| -> Vec<&str> {
            keys.iter().map(|key| key.name).collect()
        };
        assert_eq!(
            names(ElectMasterRequestHeader::KEYS),
            ["clusterName", "brokerName", "brokerId", "designateElect", "invokeTime"]
        );
        assert_eq!(
            names(GetMetaDataResponseHeader::KEYS),
            ["group", "controllerLeaderId", "controllerLeaderAddress", "isLeader", "peers"]
        );
        assert_eq!(
            names(CleanControllerBrokerDataRequestHeader::KEYS),
            ["clusterName", "brokerName", "brokerControllerIdsToClean", "isCleanLivingBroker", "invokeTime"]
        );
        assert_eq!(
            names(AlterSyncStateSetRequestHeader::KEYS),
            ["brokerName", "masterBrokerId", "masterEpoch", "invokeTime"]
        );
    }
}
