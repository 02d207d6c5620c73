//! Admin headers (spec §3.5): topic and subscription-group maintenance and the statistics and
//! connection queries of `mqadmin` and the dashboard.
//!
//! Broker requests declare the 5.x `bname` key wherever the Java header carries it; the other
//! `RpcRequestHeader` keys are ignored like unknown keys.

use crate::command_header;

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17): creates a topic on a broker or changes its config.
    pub struct CreateTopicRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
        /// Template topic, `TBW102` from the admin tools.
        default_topic: String => "defaultTopic",
        /// Readable queue count.
        read_queue_nums: i32 => "readQueueNums",
        /// Writable queue count.
        write_queue_nums: i32 => "writeQueueNums",
        /// PermName bits (6 = read and write).
        perm: i32 => "perm",
        /// `SINGLE_TAG` or `MULTI_TAG`, kept as text so an unknown value reaches the handler.
        topic_filter_type: String => "topicFilterType",
        /// TopicSysFlag bits.
        topic_sys_flag: Option<i32> => "topicSysFlag",
        /// Whether the topic is ordered.
        order: bool => "order",
        /// 5.x: attribute changes, `+key=value,-key`.
        attributes: Option<String> => "attributes",
        /// 5.x: apply even if attributes conflict; absent means `false`.
        force: Option<bool> => "force",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER (215): removes a topic and its queues from a broker.
    pub struct DeleteTopicRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
    }
}

command_header! {
    /// GET_ALL_TOPIC_CONFIG (21): reads a broker's topic configs (body), by pages from 5.x
    /// slaves, whole from everyone else. Java marks `topicSeq` required, but older peers send
    /// no header and must get the full table, so every field is optional.
    pub struct GetAllTopicConfigRequestHeader {
        /// 5.x: index of the first topic of the page.
        topic_seq: Option<i32> => "topicSeq",
        /// 5.x: DataVersion JSON of the caller's copy.
        data_version: Option<String> => "dataVersion",
        /// 5.x: page size.
        max_topic_num: Option<i32> => "maxTopicNum",
    }
}

command_header! {
    /// Answer to GET_ALL_TOPIC_CONFIG. Java marks the field required, but its absence is how a
    /// caller learns that an older broker returned the whole table, so it is optional.
    pub struct GetAllTopicConfigResponseHeader {
        /// 5.x: number of topics on the broker, for paging.
        total_topic_num: Option<i32> => "totalTopicNum",
    }
}

command_header! {
    /// GET_TOPIC_STATS_INFO (202): per-queue offsets of a topic (answered with TopicStatsTable).
    pub struct GetTopicStatsInfoRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
    }
}

command_header! {
    /// GET_CONSUME_STATS (208): a group's progress per queue (answered with ConsumeStats).
    pub struct GetConsumeStatsRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
        /// Only this topic; absent means every topic the group has offsets for.
        topic: Option<String> => "topic",
        /// 5.x: `;`-separated topics; when present, `topic` is ignored.
        topic_list: Option<String> => "topicList",
    }
}

command_header! {
    /// GET_CONSUMER_CONNECTION_LIST (203): the live clients and subscriptions of a group.
    pub struct GetConsumerConnectionListRequestHeader: RpcRequestHeader {
        /// Consumer group.
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    /// GET_PRODUCER_CONNECTION_LIST (204): the live clients of a producer group.
    pub struct GetProducerConnectionListRequestHeader: RpcRequestHeader {
        /// Producer group.
        producer_group: String => "producerGroup",
    }
}

command_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207): removes a consumer group's config from a broker.
    pub struct DeleteSubscriptionGroupRequestHeader: RpcRequestHeader {
        /// Group.
        group_name: String => "groupName",
        /// Also drop the group's offsets; absent means `false`.
        clean_offset: Option<bool> => "cleanOffset",
    }
}

command_header! {
    /// GET_TOPIC_CONFIG (351): reads one topic's config.
    pub struct GetTopicConfigRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
    }
}

command_header! {
    /// QUERY_TOPIC_CONSUME_BY_WHO (300): the groups consuming a topic (answered with GroupList).
    pub struct QueryTopicConsumeByWhoRequestHeader: RpcRequestHeader {
        /// Topic.
        topic: String => "topic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::testkit::{ext_fields, round_trip_tests};
    use crate::header::{CommandHeader, HeaderError};
    use crate::RemotingCommand;

    round_trip_tests! {
        create_topic => CreateTopicRequestHeader {
            topic, default_topic, read_queue_nums, write_queue_nums, perm, topic_filter_type,
            topic_sys_flag, order, attributes, force, bname,
        }
        delete_topic => DeleteTopicRequestHeader { topic, bname }
        all_topic_config => GetAllTopicConfigRequestHeader { topic_seq, data_version, max_topic_num }
        all_topic_config_response => GetAllTopicConfigResponseHeader { total_topic_num }
        topic_stats => GetTopicStatsInfoRequestHeader { topic, bname }
        consume_stats => GetConsumeStatsRequestHeader { consumer_group, topic, topic_list, bname }
        consumer_connections => GetConsumerConnectionListRequestHeader { consumer_group, bname }
        producer_connections => GetProducerConnectionListRequestHeader { producer_group, bname }
        delete_group => DeleteSubscriptionGroupRequestHeader { group_name, clean_offset, bname }
        topic_config => GetTopicConfigRequestHeader { topic, bname }
        consumed_by_who => QueryTopicConsumeByWhoRequestHeader { topic, bname }
    }

    #[test]
    fn an_mqadmin_update_topic_decodes() {
        let fields = ext_fields(&[
            ("topic", "T"),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "8"),
            ("writeQueueNums", "8"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
            ("attributes", "+message.type=NORMAL"),
            ("force", "false"),
            ("lo", "false"),
            ("bname", "broker-a"),
        ]);
        let header = CreateTopicRequestHeader::decode(&fields).unwrap();
        assert_eq!(header.attributes.as_deref(), Some("+message.type=NORMAL"));
        assert_eq!(
            (header.order, header.force, header.bname.as_deref()),
            (false, Some(false), Some("broker-a"))
        );
    }

    #[test]
    fn a_create_topic_without_topic_is_missing_topic() {
        let error =
            RemotingCommand::request(17).with_ext("perm", "6").decode_header::<CreateTopicRequestHeader>();
        assert_eq!(error, Err(HeaderError::Missing("topic")));
    }

    #[test]
    fn an_unparsable_queue_count_is_invalid() {
        let mut fields = ext_fields(&[]);
        CreateTopicRequestHeader::default().encode(&mut fields);
        fields.insert("readQueueNums", "eight");
        assert_eq!(
            CreateTopicRequestHeader::decode(&fields),
            Err(HeaderError::Invalid { key: "readQueueNums", value: "eight".into() })
        );
    }

    #[test]
    fn an_old_get_all_topic_config_has_no_header() {
        let command = RemotingCommand::request(21);
        assert_eq!(command.decode_header(), Ok(GetAllTopicConfigRequestHeader::default()));
    }
}
