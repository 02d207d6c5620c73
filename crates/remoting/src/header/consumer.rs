//! Consumer headers (spec §3.4): client liveness, pulling, offsets, queue locks, redelivery and
//! message lookup, plus the broker-to-client calls a consumer answers.
//!
//! Broker requests declare the 5.x `bname` key (the broker the client addressed) wherever the
//! Java header carries it; the other `RpcRequestHeader` keys are ignored like unknown keys.

use crate::command_header;

command_header! {
    /// HEART_BEAT (34): a client reports its producer and consumer groups (body). 4.9 clients
    /// send no header at all, which decodes to the default.
    pub struct HeartbeatRequestHeader: RpcRequestHeader {}
}

command_header! {
    /// UNREGISTER_CLIENT (35): a client instance leaves its groups on shutdown.
    pub struct UnregisterClientRequestHeader: RpcRequestHeader {
        /// Client instance id.
        client_id: String => "clientID",
        /// Producer group being left.
        producer_group: Option<String> => "producerGroup",
        /// Consumer group being left.
        consumer_group: Option<String> => "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38): lists the live client ids of a group, for rebalancing.
    pub struct GetConsumerListByGroupRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    /// PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361): reads messages from one queue, possibly
    /// held by the broker until messages arrive (long polling).
    pub struct PullMessageRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue to read.
        queue_id: i32 => "queueId",
        /// Logical offset to read from.
        queue_offset: i64 => "queueOffset",
        /// Most messages to return.
        max_msg_nums: i32 => "maxMsgNums",
        /// PullSysFlag bits ([`crate::flags::pull`]).
        sys_flag: i32 => "sysFlag",
        /// Consumer offset to persist when the commit-offset bit is set.
        commit_offset: i64 => "commitOffset",
        /// How long the broker may hold the request.
        suspend_timeout_millis: i64 => "suspendTimeoutMillis",
        /// Subscription expression, sent with the subscription bit.
        subscription: Option<String> => "subscription",
        /// Version of the client's subscription.
        sub_version: i64 => "subVersion",
        /// `TAG` or `SQL92`.
        expression_type: Option<String> => "expressionType",
        /// 5.x: cap on the returned bytes.
        max_msg_bytes: Option<i32> => "maxMsgBytes",
        /// 5.x proxy: -1 SDK, 0 order, 1 broadcast, 2 stream.
        request_source: Option<i32> => "requestSource",
        /// 5.x proxy: the real client id (the Java spelling is the wire key).
        proxy_froward_client_id: Option<String> => "proxyFrowardClientId",
    }
}

command_header! {
    /// Answer to PULL_MESSAGE: where to continue and the queue's bounds.
    pub struct PullMessageResponseHeader {
        /// Broker id to pull from next (0 master).
        suggest_which_broker_id: i64 => "suggestWhichBrokerId",
        /// Offset the client should request next.
        next_begin_offset: i64 => "nextBeginOffset",
        /// Queue min offset.
        min_offset: i64 => "minOffset",
        /// Queue max offset (exclusive).
        max_offset: i64 => "maxOffset",
        /// 5.x static topics: logical-to-physical offset translation.
        offset_delta: Option<i64> => "offsetDelta",
        /// 5.x: the topic's sys flag.
        topic_sys_flag: Option<i32> => "topicSysFlag",
        /// 5.x: the group's sys flag.
        group_sys_flag: Option<i32> => "groupSysFlag",
        /// 5.x: why pulling is forbidden, with NO_PERMISSION.
        forbidden_type: Option<i32> => "forbiddenType",
    }
}

command_header! {
    /// QUERY_CONSUMER_OFFSET (14): reads a group's committed offset of one queue.
    pub struct QueryConsumerOffsetRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
        /// 5.x: `false` answers QUERY_NOT_FOUND when nothing is stored; absent behaves as `true`
        /// (offset 0 while the queue's first message is still in memory).
        set_zero_if_not_found: Option<bool> => "setZeroIfNotFound",
    }
}

command_header! {
    /// Answer to QUERY_CONSUMER_OFFSET.
    pub struct QueryConsumerOffsetResponseHeader {
        /// Committed offset.
        offset: i64 => "offset",
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15): commits a group's offset of one queue (usually oneway).
    pub struct UpdateConsumerOffsetRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
        /// Offset to store.
        commit_offset: i64 => "commitOffset",
    }
}

command_header! {
    /// GET_MAX_OFFSET (30): reads a queue's max (next to be written) offset.
    pub struct GetMaxOffsetRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
        /// 5.x: `true` for the dispatched (consumable) max, `false` for the in-flight one;
        /// absent means `true`.
        committed: Option<bool> => "committed",
    }
}

command_header! {
    /// Answer to GET_MAX_OFFSET.
    pub struct GetMaxOffsetResponseHeader {
        /// Max offset (exclusive); 0 for an unknown queue.
        offset: i64 => "offset",
    }
}

command_header! {
    /// GET_MIN_OFFSET (31): reads a queue's min offset.
    pub struct GetMinOffsetRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
    }
}

command_header! {
    /// Answer to GET_MIN_OFFSET.
    pub struct GetMinOffsetResponseHeader {
        /// Min offset.
        offset: i64 => "offset",
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29): finds the queue offset of the messages stored at a time.
    pub struct SearchOffsetRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
        /// Store time in ms.
        timestamp: i64 => "timestamp",
        /// 5.x: `LOWER` or `UPPER` (any case) among messages with that time; absent means `LOWER`.
        boundary_type: Option<String> => "boundaryType",
    }
}

command_header! {
    /// Answer to SEARCH_OFFSET_BY_TIMESTAMP.
    pub struct SearchOffsetResponseHeader {
        /// Offset found.
        offset: i64 => "offset",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32): reads the store time of a queue's first message.
    pub struct GetEarliestMsgStoretimeRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Queue.
        queue_id: i32 => "queueId",
    }
}

command_header! {
    /// Answer to GET_EARLIEST_MSG_STORETIME.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        /// Store time in ms; -1 for an empty queue.
        timestamp: i64 => "timestamp",
    }
}

command_header! {
    /// LOCK_BATCH_MQ (41): an orderly consumer locks queues (listed in the body). 4.9 clients
    /// send no header.
    pub struct LockBatchMqRequestHeader: RpcRequestHeader {
    }
}

command_header! {
    /// UNLOCK_BATCH_MQ (42): an orderly consumer releases queues (listed in the body).
    pub struct UnlockBatchMqRequestHeader: RpcRequestHeader {
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it failed to consume, for
    /// redelivery through the retry topic or the DLQ.
    pub struct ConsumerSendMsgBackRequestHeader: RpcRequestHeader {
        /// Commit-log offset of the message.
        offset: i64 => "offset",
        /// Consumer group.
        group: String => "group",
        /// 0 lets the broker choose, negative sends to the DLQ, positive is a delay level.
        delay_level: i32 => "delayLevel",
        /// The message's id as the client saw it (its `UNIQ_KEY`).
        origin_msg_id: Option<String> => "originMsgId",
        /// The message's topic.
        origin_topic: Option<String> => "originTopic",
        /// Unit-mode consumer; Java always sends it, absent means `false`.
        unit_mode: Option<bool> => "unitMode",
        /// Redelivery limit overriding the group's.
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
    }
}

command_header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (40): the broker tells a consumer to rebalance now (oneway).
    pub struct NotifyConsumerIdsChangedRequestHeader {
        /// Group whose membership changed.
        consumer_group: String => "consumerGroup",
        /// Name of the broker notifying.
        bname: Option<String> => "bname",
    }
}

command_header! {
    /// VIEW_MESSAGE_BY_ID (33): reads one message by commit-log offset.
    pub struct ViewMessageRequestHeader {
        /// 5.x: topic of the message, for permission checks.
        topic: Option<String> => "topic",
        /// Commit-log offset.
        offset: i64 => "offset",
    }
}

command_header! {
    /// QUERY_MESSAGE (12): finds messages by key (or `UNIQ_KEY`, flagged by the
    /// `_UNIQUE_KEY_QUERY` extField) in a time range.
    pub struct QueryMessageRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Key searched.
        key: String => "key",
        /// Most messages to return.
        max_num: i32 => "maxNum",
        /// Range start, store time in ms.
        begin_timestamp: i64 => "beginTimestamp",
        /// Range end, store time in ms.
        end_timestamp: i64 => "endTimestamp",
    }
}

command_header! {
    /// Answer to QUERY_MESSAGE: how fresh the index was, so clients can merge brokers' answers.
    pub struct QueryMessageResponseHeader {
        /// Time of the last index update.
        index_last_update_timestamp: i64 => "indexLastUpdateTimestamp",
        /// Commit-log offset covered by the last index update.
        index_last_update_phyoffset: i64 => "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// GET_CONSUMER_RUNNING_INFO (307): asks a consumer (through the broker) for its runtime
    /// state.
    pub struct GetConsumerRunningInfoRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Client instance asked.
        client_id: String => "clientId",
        /// Whether to include a thread dump; Java always sends it, absent means `false`.
        jstack_enable: Option<bool> => "jstackEnable",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222), also pushed to consumers as
    /// RESET_CONSUMER_CLIENT_OFFSET (220): moves a group's offsets back or forth to a time.
    pub struct ResetOffsetRequestHeader: RpcRequestHeader {
        /// Consumer group.
        group: String => "group",
        /// Topic.
        topic: String => "topic",
        /// 5.x: one queue; absent (4.9) or -1 means all queues.
        queue_id: Option<i32> => "queueId",
        /// 5.x: exact offset to set, instead of the timestamp's.
        offset: Option<i64> => "offset",
        /// Store time in ms whose offset becomes the group's.
        timestamp: i64 => "timestamp",
        /// Whether to move offsets forward too, not only back.
        is_force: bool => "isForce",
    }
}

command_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309): asks a consumer (through the broker) to consume one
    /// message (the body) right away and report the result, for diagnosis.
    pub struct ConsumeMessageDirectlyResultRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Client instance asked.
        client_id: Option<String> => "clientId",
        /// Id of the message.
        msg_id: Option<String> => "msgId",
        /// Broker holding the message.
        broker_name: Option<String> => "brokerName",
        /// Topic of the message.
        topic: Option<String> => "topic",
        /// The topic's sys flag.
        topic_sys_flag: Option<i32> => "topicSysFlag",
        /// The group's sys flag.
        group_sys_flag: Option<i32> => "groupSysFlag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::testkit::{ext_fields, round_trip_tests};
    use crate::header::{CommandHeader, HeaderError};
    use crate::RemotingCommand;

    round_trip_tests! {
        heartbeat => HeartbeatRequestHeader { bname }
        unregister_client => UnregisterClientRequestHeader { client_id, producer_group, consumer_group, bname }
        consumer_list => GetConsumerListByGroupRequestHeader { consumer_group, bname }
        pull => PullMessageRequestHeader {
            consumer_group, topic, queue_id, queue_offset, max_msg_nums, sys_flag, commit_offset,
            suspend_timeout_millis, subscription, sub_version, expression_type, max_msg_bytes,
            request_source, proxy_froward_client_id, bname,
        }
        pull_response => PullMessageResponseHeader {
            suggest_which_broker_id, next_begin_offset, min_offset, max_offset, offset_delta,
            topic_sys_flag, group_sys_flag, forbidden_type,
        }
        query_offset => QueryConsumerOffsetRequestHeader {
            consumer_group, topic, queue_id, set_zero_if_not_found, bname,
        }
        query_offset_response => QueryConsumerOffsetResponseHeader { offset }
        update_offset => UpdateConsumerOffsetRequestHeader { consumer_group, topic, queue_id, commit_offset, bname }
        max_offset => GetMaxOffsetRequestHeader { topic, queue_id, committed, bname }
        max_offset_response => GetMaxOffsetResponseHeader { offset }
        min_offset => GetMinOffsetRequestHeader { topic, queue_id, bname }
        min_offset_response => GetMinOffsetResponseHeader { offset }
        search_offset => SearchOffsetRequestHeader { topic, queue_id, timestamp, boundary_type, bname }
        search_offset_response => SearchOffsetResponseHeader { offset }
        earliest_store_time => GetEarliestMsgStoretimeRequestHeader { topic, queue_id, bname }
        earliest_store_time_response => GetEarliestMsgStoretimeResponseHeader { timestamp }
        lock_batch => LockBatchMqRequestHeader { bname }
        unlock_batch => UnlockBatchMqRequestHeader { bname }
        send_back => ConsumerSendMsgBackRequestHeader {
            offset, group, delay_level, origin_msg_id, origin_topic, unit_mode, max_reconsume_times,
            bname,
        }
        ids_changed => NotifyConsumerIdsChangedRequestHeader { consumer_group, bname }
        view_message => ViewMessageRequestHeader { topic, offset }
        query_message => QueryMessageRequestHeader {
            topic, key, max_num, begin_timestamp, end_timestamp, bname,
        }
        query_message_response => QueryMessageResponseHeader {
            index_last_update_timestamp, index_last_update_phyoffset,
        }
        running_info => GetConsumerRunningInfoRequestHeader { consumer_group, client_id, jstack_enable, bname }
        reset_offset => ResetOffsetRequestHeader {
            group, topic, queue_id, offset, timestamp, is_force, bname,
        }
        consume_directly => ConsumeMessageDirectlyResultRequestHeader {
            consumer_group, client_id, msg_id, broker_name, topic, topic_sys_flag, group_sys_flag,
            bname,
        }
    }

    /// The eleven keys a 4.9 push consumer sends.
    fn pull_4_9() -> crate::ExtFields {
        ext_fields(&[
            ("consumerGroup", "CG"),
            ("topic", "T"),
            ("queueId", "2"),
            ("queueOffset", "100"),
            ("maxMsgNums", "32"),
            ("sysFlag", "3"),
            ("commitOffset", "98"),
            ("suspendTimeoutMillis", "15000"),
            ("subscription", "TagA || TagB"),
            ("subVersion", "1700000000000"),
            ("expressionType", "TAG"),
        ])
    }

    #[test]
    fn a_4_9_pull_header_decodes() {
        let header = PullMessageRequestHeader::decode(&pull_4_9()).unwrap();
        let expected = PullMessageRequestHeader {
            consumer_group: "CG".into(),
            topic: "T".into(),
            queue_id: 2,
            queue_offset: 100,
            max_msg_nums: 32,
            sys_flag: 3,
            commit_offset: 98,
            suspend_timeout_millis: 15000,
            subscription: Some("TagA || TagB".into()),
            sub_version: 1_700_000_000_000,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
            request_source: None,
            proxy_froward_client_id: None,
            bname: None,
        };
        assert_eq!(header, expected);
    }

    #[test]
    fn a_pull_without_topic_is_missing_topic() {
        let mut fields = pull_4_9();
        fields.remove("topic");
        let error = PullMessageRequestHeader::decode(&fields).unwrap_err();
        assert_eq!(error, HeaderError::Missing("topic"));
        assert_eq!(error.to_string(), "the custom field topic is null");
    }

    #[test]
    fn an_unparsable_pull_offset_is_invalid() {
        let mut fields = pull_4_9();
        fields.insert("queueOffset", "99999999999999999999");
        assert_eq!(
            PullMessageRequestHeader::decode(&fields),
            Err(HeaderError::Invalid { key: "queueOffset", value: "99999999999999999999".into() })
        );
    }

    #[test]
    fn a_4_9_heartbeat_without_ext_fields_decodes() {
        let command = RemotingCommand::request(34);
        assert_eq!(command.ext_fields, None);
        assert_eq!(command.decode_header::<HeartbeatRequestHeader>(), Ok(HeartbeatRequestHeader::default()));
    }

    #[test]
    fn reset_offset_uses_the_is_force_key() {
        let header = ResetOffsetRequestHeader { is_force: true, ..Default::default() };
        let command = RemotingCommand::request(222).with_header(&header);
        assert_eq!(command.ext("isForce"), Some("true"));
    }
}
