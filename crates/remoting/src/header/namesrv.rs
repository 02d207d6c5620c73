//! Headers of the NameServer requests and their responses (spec §3.2): routing lookups, broker
//! registration and liveness, topic maintenance, KV config and write-permission switches.
//!
//! These requests go to a NameServer, which needs none of the 5.x `RpcRequestHeader` keys, so
//! none are declared; they are ignored on decode like any unknown key.

use crate::command_header;

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105): asks for a topic's route (brokers and queues).
    pub struct GetRouteInfoRequestHeader {
        /// Topic whose route is wanted.
        topic: String => "topic",
        /// 4.9.4+: `true` asks for standard JSON (quoted map keys) whatever the client version.
        accept_standard_json_only: Option<bool> => "acceptStandardJsonOnly",
    }
}

command_header! {
    /// REGISTER_BROKER (103): a broker announces itself and its topic configs (body), every 30 s.
    pub struct RegisterBrokerRequestHeader {
        /// Broker group name.
        broker_name: String => "brokerName",
        /// `ip:listenPort` clients connect to.
        broker_addr: String => "brokerAddr",
        /// Cluster the broker belongs to.
        cluster_name: String => "clusterName",
        /// `ip:haPort` slaves replicate from.
        ha_server_addr: String => "haServerAddr",
        /// 0 for the master, otherwise a slave id.
        broker_id: i64 => "brokerId",
        /// 5.x: how long the NameServer may wait for the next registration before expiring it.
        heartbeat_timeout_millis: Option<i64> => "heartbeatTimeoutMillis",
        /// 5.x: whether a slave may act as master when the master is gone.
        enable_acting_master: Option<bool> => "enableActingMaster",
        /// Whether the body is the zlib-compressed form. Java brokers always send it; absent
        /// means `false`.
        compressed: Option<bool> => "compressed",
        /// CRC32 of the body masked to 31 bits; absent or 0 means "not checked".
        body_crc32: Option<i32> => "bodyCrc32",
    }
}

command_header! {
    /// Answer to REGISTER_BROKER: tells a slave where its master is.
    pub struct RegisterBrokerResponseHeader {
        /// HA address of the group's master.
        ha_server_addr: Option<String> => "haServerAddr",
        /// Broker address of the group's master.
        master_addr: Option<String> => "masterAddr",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104): a broker leaves on shutdown.
    pub struct UnRegisterBrokerRequestHeader {
        /// Broker group name.
        broker_name: String => "brokerName",
        /// Address the broker registered with.
        broker_addr: String => "brokerAddr",
        /// Cluster the broker belongs to.
        cluster_name: String => "clusterName",
        /// Broker id within the group.
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322): a broker asks whether the NameServer's copy of its topic
    /// config (DataVersion in the body) is stale, which also refreshes its liveness.
    pub struct QueryDataVersionRequestHeader {
        /// Broker group name.
        broker_name: String => "brokerName",
        /// Address the broker registered with.
        broker_addr: String => "brokerAddr",
        /// Cluster the broker belongs to.
        cluster_name: String => "clusterName",
        /// Broker id within the group.
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    /// Answer to QUERY_DATA_VERSION.
    pub struct QueryDataVersionResponseHeader {
        /// Whether the broker's DataVersion differs from the stored one (re-registration needed).
        changed: bool => "changed",
    }
}

command_header! {
    /// BROKER_HEARTBEAT (904): lightweight keep-alive of 5.x brokers in acting-master and
    /// controller modes.
    pub struct BrokerHeartbeatRequestHeader {
        /// Cluster the broker belongs to.
        cluster_name: String => "clusterName",
        /// Address the broker registered with.
        broker_addr: String => "brokerAddr",
        /// Broker group name.
        broker_name: String => "brokerName",
        /// Broker id within the group.
        broker_id: Option<i64> => "brokerId",
        /// Controller epoch the broker last saw.
        epoch: Option<i32> => "epoch",
        /// Broker's commit-log max offset.
        max_offset: Option<i64> => "maxOffset",
        /// Broker's replication-confirmed offset.
        confirm_offset: Option<i64> => "confirmOffset",
        /// Expiry timeout for this broker (Java's spelling "Mills" is the wire key).
        heartbeat_timeout_mills: Option<i64> => "heartbeatTimeoutMills",
        /// Preference in master election.
        election_priority: Option<i32> => "electionPriority",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224): lists the topics served by a cluster.
    pub struct GetTopicsByClusterRequestHeader {
        /// Cluster name.
        cluster: String => "cluster",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216): removes a topic's route.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        /// Topic to remove.
        topic: String => "topic",
        /// When present, only this cluster's queues of the topic are removed.
        cluster_name: Option<String> => "clusterName",
    }
}

command_header! {
    /// REGISTER_TOPIC_IN_NAMESRV (217): a broker adds queue data for one topic (body).
    pub struct RegisterTopicRequestHeader {
        /// Topic being registered.
        topic: String => "topic",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100): stores one NameServer config entry.
    pub struct PutKVConfigRequestHeader {
        /// Config namespace, e.g. `ORDER_TOPIC_CONFIG`.
        namespace: String => "namespace",
        /// Entry key.
        key: String => "key",
        /// Entry value.
        value: String => "value",
    }
}

command_header! {
    /// GET_KV_CONFIG (101): reads one NameServer config entry.
    pub struct GetKVConfigRequestHeader {
        /// Config namespace.
        namespace: String => "namespace",
        /// Entry key.
        key: String => "key",
    }
}

command_header! {
    /// Answer to GET_KV_CONFIG.
    pub struct GetKVConfigResponseHeader {
        /// Entry value; absent when the answer is QUERY_NOT_FOUND.
        value: Option<String> => "value",
    }
}

command_header! {
    /// DELETE_KV_CONFIG (102): removes one NameServer config entry.
    pub struct DeleteKVConfigRequestHeader {
        /// Config namespace.
        namespace: String => "namespace",
        /// Entry key.
        key: String => "key",
    }
}

command_header! {
    /// GET_KVLIST_BY_NAMESPACE (219): reads a whole config namespace (answered with a KVTable).
    pub struct GetKVListByNamespaceRequestHeader {
        /// Config namespace.
        namespace: String => "namespace",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205): revokes write permission of a broker group's queues,
    /// to drain it before maintenance.
    pub struct WipeWritePermOfBrokerRequestHeader {
        /// Broker group name.
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// Answer to WIPE_WRITE_PERM_OF_BROKER.
    pub struct WipeWritePermOfBrokerResponseHeader {
        /// Number of topics whose queue data was changed.
        wipe_topic_count: i32 => "wipeTopicCount",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327): restores write permission of a broker group's queues.
    pub struct AddWritePermOfBrokerRequestHeader {
        /// Broker group name.
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// Answer to ADD_WRITE_PERM_OF_BROKER.
    pub struct AddWritePermOfBrokerResponseHeader {
        /// Number of topics whose queue data was changed.
        add_topic_count: i32 => "addTopicCount",
    }
}

command_header! {
    /// GET_BROKER_MEMBER_GROUP (901): a broker asks for the id → address map of its group.
    pub struct GetBrokerMemberGroupRequestHeader {
        /// Cluster of the group.
        cluster_name: String => "clusterName",
        /// Broker group name.
        broker_name: String => "brokerName",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::testkit::{ext_fields, round_trip_tests};
    use crate::header::{CommandHeader, HeaderError};
    use crate::RemotingCommand;

    round_trip_tests! {
        get_route_info => GetRouteInfoRequestHeader { topic, accept_standard_json_only }
        register_broker => RegisterBrokerRequestHeader {
            broker_name, broker_addr, cluster_name, ha_server_addr, broker_id,
            heartbeat_timeout_millis, enable_acting_master, compressed, body_crc32,
        }
        register_broker_response => RegisterBrokerResponseHeader { ha_server_addr, master_addr }
        unregister_broker => UnRegisterBrokerRequestHeader { broker_name, broker_addr, cluster_name, broker_id }
        query_data_version => QueryDataVersionRequestHeader { broker_name, broker_addr, cluster_name, broker_id }
        query_data_version_response => QueryDataVersionResponseHeader { changed }
        broker_heartbeat => BrokerHeartbeatRequestHeader {
            cluster_name, broker_addr, broker_name, broker_id, epoch, max_offset, confirm_offset,
            heartbeat_timeout_mills, election_priority,
        }
        get_topics_by_cluster => GetTopicsByClusterRequestHeader { cluster }
        delete_topic => DeleteTopicFromNamesrvRequestHeader { topic, cluster_name }
        register_topic => RegisterTopicRequestHeader { topic }
        put_kv_config => PutKVConfigRequestHeader { namespace, key, value }
        get_kv_config => GetKVConfigRequestHeader { namespace, key }
        get_kv_config_response => GetKVConfigResponseHeader { value }
        delete_kv_config => DeleteKVConfigRequestHeader { namespace, key }
        get_kv_list => GetKVListByNamespaceRequestHeader { namespace }
        wipe_write_perm => WipeWritePermOfBrokerRequestHeader { broker_name }
        wipe_write_perm_response => WipeWritePermOfBrokerResponseHeader { wipe_topic_count }
        add_write_perm => AddWritePermOfBrokerRequestHeader { broker_name }
        add_write_perm_response => AddWritePermOfBrokerResponseHeader { add_topic_count }
        get_broker_member_group => GetBrokerMemberGroupRequestHeader { cluster_name, broker_name }
    }

    #[test]
    fn missing_topic_is_reported_with_the_java_remark() {
        let error = RemotingCommand::request(105).decode_header::<GetRouteInfoRequestHeader>().unwrap_err();
        assert_eq!(error, HeaderError::Missing("topic"));
        assert_eq!(error.to_string(), "the custom field topic is null");
    }

    #[test]
    fn a_4_9_broker_registration_decodes() {
        let fields = ext_fields(&[
            ("brokerName", "broker-a"),
            ("brokerAddr", "10.0.0.1:10911"),
            ("clusterName", "DefaultCluster"),
            ("haServerAddr", "10.0.0.1:10912"),
            ("brokerId", "0"),
            ("compressed", "false"),
            ("bodyCrc32", "1934568372"),
        ]);
        let header = RegisterBrokerRequestHeader::decode(&fields).unwrap();
        assert_eq!(header.broker_id, 0);
        assert_eq!(header.compressed, Some(false));
        assert_eq!(header.body_crc32, Some(1_934_568_372));
        assert_eq!(header.heartbeat_timeout_millis, None);
        assert_eq!(header.enable_acting_master, None);
    }

    #[test]
    fn an_unparsable_broker_id_is_invalid() {
        let fields = ext_fields(&[
            ("brokerName", "broker-a"),
            ("brokerAddr", "10.0.0.1:10911"),
            ("clusterName", "DefaultCluster"),
            ("brokerId", "master"),
        ]);
        assert_eq!(
            UnRegisterBrokerRequestHeader::decode(&fields),
            Err(HeaderError::Invalid { key: "brokerId", value: "master".to_owned() })
        );
    }

    #[test]
    fn the_heartbeat_timeout_uses_the_java_spelling() {
        let header =
            BrokerHeartbeatRequestHeader { heartbeat_timeout_mills: Some(1000), ..Default::default() };
        let command = RemotingCommand::request(904).with_header(&header);
        assert_eq!(command.ext("heartbeatTimeoutMills"), Some("1000"));
    }
}
