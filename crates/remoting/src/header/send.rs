//! Producer headers (spec §3.3): sending messages, in the long-key form of SEND_MESSAGE and
//! the single-letter form of SEND_MESSAGE_V2/SEND_BATCH_MESSAGE, and transactions.

use apogee_common::message::{IdText, InlineText};
use apogee_common::topic::{GROUP_MAX_LENGTH, TOPIC_MAX_LENGTH};

use crate::code::request_code;
use crate::command::RemotingCommand;
use crate::command_header;
use crate::header::HeaderError;

/// Bytes of a send's properties string held in its header without an allocation: what a Java
/// producer sets on a plain message (`UNIQ_KEY`, `WAIT`, tags, a few keys) fits.
pub const INLINE_PROPERTIES_BYTES: usize = 192;

/// A send header's properties string.
pub type PropertiesText = InlineText<INLINE_PROPERTIES_BYTES>;

/// A send header's topic: any name a producer may give a topic is held inline, so that the send
/// path does not allocate for a long one. Only a `%RETRY%` topic past 127 bytes (allowed up
/// to 255, sent by a consumer whose send-back failed) goes to the heap.
pub type TopicText = InlineText<TOPIC_MAX_LENGTH>;

/// A send header's producer group: any valid group name is held inline.
pub type GroupText = InlineText<GROUP_MAX_LENGTH>;

/// Bytes of a broker name held inline in a send header: names of brokers as deployments
/// name them (`broker-a`, `rocketmq-broker-cluster-a-0-master`) fit.
pub const INLINE_BROKER_NAME_BYTES: usize = 64;

/// A send header's broker name.
pub type BrokerNameText = InlineText<INLINE_BROKER_NAME_BYTES>;

command_header! {
    /// SEND_MESSAGE (10): stores one message; the body is the message body. This long-key form
    /// is also the one handlers work with, whatever form arrived (see
    /// [`decode_send_message_header`]).
    pub struct SendMessageRequestHeader {
        /// Producer group.
        producer_group: GroupText => "producerGroup",
        /// Target topic (namespaced form when a namespace is used).
        topic: TopicText => "topic",
        /// Template topic for auto-creation, normally `TBW102`.
        default_topic: TopicText => "defaultTopic",
        /// Queue count of an auto-created topic.
        default_topic_queue_nums: i32 => "defaultTopicQueueNums",
        /// Target queue; negative lets the broker pick a writable queue.
        queue_id: i32 => "queueId",
        /// MessageSysFlag bits: compression, transaction type.
        sys_flag: i32 => "sysFlag",
        /// Producer clock at send time, in ms.
        born_timestamp: i64 => "bornTimestamp",
        /// User flag, stored verbatim.
        flag: i32 => "flag",
        /// Message properties string (U+0001/U+0002 separated).
        properties: Option<PropertiesText> => "properties",
        /// Times the message was already redelivered (retry topics); absent means 0.
        reconsume_times: Option<i32> => "reconsumeTimes",
        /// Unit-mode producer; 4.9 clients always send it, absent means `false`.
        unit_mode: Option<bool> => "unitMode",
        /// Redelivery limit for `%RETRY%` topics, overriding the group's.
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
        /// Whether the body is a batch; 4.9 clients always send it, absent means `false`.
        batch: Option<bool> => "batch",
        /// 5.x: name of the broker the client addressed.
        bname: Option<BrokerNameText> => "bname",
    }
}

command_header! {
    /// SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): the same fields as
    /// [`SendMessageRequestHeader`] under one-letter keys, to shrink every send. Converted with
    /// `From` both ways.
    pub struct SendMessageRequestHeaderV2 {
        /// `producerGroup`.
        a: GroupText => "a",
        /// `topic`.
        b: TopicText => "b",
        /// `defaultTopic`.
        c: TopicText => "c",
        /// `defaultTopicQueueNums`.
        d: i32 => "d",
        /// `queueId`.
        e: i32 => "e",
        /// `sysFlag`.
        f: i32 => "f",
        /// `bornTimestamp`.
        g: i64 => "g",
        /// `flag`.
        h: i32 => "h",
        /// `properties`.
        i: Option<PropertiesText> => "i",
        /// `reconsumeTimes` (absent means 0).
        j: Option<i32> => "j",
        /// `unitMode` (4.9 always sends it; absent means `false`).
        k: Option<bool> => "k",
        /// `maxReconsumeTimes`.
        l: Option<i32> => "l",
        /// `batch` (4.9 always sends it; absent means `false`).
        m: Option<bool> => "m",
        /// Broker name, the long form's `bname`.
        n: Option<BrokerNameText> => "n",
    }
}

impl SendMessageRequestHeader {
    /// The header of one plain message as a producer sends it: stamped now, default template
    /// topic `TBW102` with 4 queues, no flags, no redelivery; empty `properties` are left out.
    pub fn plain(
        producer_group: &str,
        topic: &str,
        queue_id: i32,
        properties: &str,
        broker_name: &str,
    ) -> Self {
        Self {
            producer_group: producer_group.into(),
            topic: topic.into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id,
            sys_flag: 0,
            born_timestamp: apogee_common::time::now_ms(),
            flag: 0,
            properties: Some(PropertiesText::from(properties)).filter(|text| !text.is_empty()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(false),
            bname: Some(broker_name.into()),
        }
    }

    /// SEND_MESSAGE_V2 (310) of this header, with the one-letter keys, carrying `body`.
    pub fn into_v2_request(self, body: impl Into<bytes::Bytes>) -> RemotingCommand {
        RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_header(&SendMessageRequestHeaderV2::from(self))
            .with_body(body)
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        Self {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            bname: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        Self {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.bname,
        }
    }
}

/// Decodes the send header of `command` the way the broker does, by request code: SEND_MESSAGE_V2
/// (310) and SEND_BATCH_MESSAGE (320) carry the one-letter keys, SEND_MESSAGE (10) (and any
/// other code) the long keys. Whether the message is a batch is the `batch` field's business,
/// not the code's.
pub fn decode_send_message_header(
    command: &RemotingCommand,
) -> Result<SendMessageRequestHeader, HeaderError> {
    match command.code {
        request_code::SEND_MESSAGE_V2
        | request_code::SEND_BATCH_MESSAGE
        | request_code::SEND_REPLY_MESSAGE_V2 => {
            command.decode_header::<SendMessageRequestHeaderV2>().map(SendMessageRequestHeader::from)
        }
        _ => command.decode_header::<SendMessageRequestHeader>(),
    }
}

command_header! {
    /// Answer to the send requests: where the message was stored. The response must also
    /// carry the `MSG_REGION` and `TRACE_ON` extFields, which are not part of this header.
    pub struct SendMessageResponseHeader {
        /// Offset message id; for a batch, the ids of all messages joined by `,`.
        msg_id: IdText => "msgId",
        /// Queue actually written.
        queue_id: i32 => "queueId",
        /// Consume-queue offset of the (first) message.
        queue_offset: i64 => "queueOffset",
        /// The message's `UNIQ_KEY`.
        transaction_id: Option<IdText> => "transactionId",
        /// Only for broker-side inner batches: the client must not split the ids.
        batch_uniq_id: Option<String> => "batchUniqId",
        /// 5.3: handle for recalling a timer message.
        recall_handle: Option<String> => "recallHandle",
    }
}

command_header! {
    /// RECALL_MESSAGE (370, 5.3): cancels a timer message not yet delivered, by the recall
    /// handle its send response carried.
    pub struct RecallMessageRequestHeader {
        /// The recalling producer's group (stored with the delete marker).
        producer_group: Option<String> => "producerGroup",
        /// The topic the timer message was sent to; must match the handle's.
        topic: String => "topic",
        /// The handle from the send response (see [`crate::recall`]).
        recall_handle: String => "recallHandle",
        /// Name of the broker the client addressed.
        bname: Option<String> => "bname",
    }
}

command_header! {
    /// Answer to RECALL_MESSAGE: the recalled message's id.
    pub struct RecallMessageResponseHeader {
        /// The recalled message's `UNIQ_KEY`.
        msg_id: String => "msgId",
    }
}

command_header! {
    /// END_TRANSACTION (37): the producer commits or rolls back a half message, on its own or
    /// in answer to CHECK_TRANSACTION_STATE.
    pub struct EndTransactionRequestHeader: RpcRequestHeader {
        /// 5.x: the message's original topic.
        topic: Option<String> => "topic",
        /// Producer group.
        producer_group: String => "producerGroup",
        /// Consume-queue offset of the half message (the send response's `queueOffset`).
        tran_state_table_offset: i64 => "tranStateTableOffset",
        /// Commit-log offset of the half message.
        commit_log_offset: i64 => "commitLogOffset",
        /// 0 unknown, 8 commit, 12 rollback.
        commit_or_rollback: i32 => "commitOrRollback",
        /// Whether this answers a broker check; absent means `false`.
        from_transaction_check: Option<bool> => "fromTransactionCheck",
        /// The message's `UNIQ_KEY`.
        msg_id: String => "msgId",
        /// Transaction id chosen by the producer.
        transaction_id: Option<String> => "transactionId",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39): the broker asks a producer for the outcome of a half
    /// message still unresolved (the body is that message).
    pub struct CheckTransactionStateRequestHeader {
        /// 5.x: the message's original topic.
        topic: Option<String> => "topic",
        /// Consume-queue offset of the half message.
        tran_state_table_offset: i64 => "tranStateTableOffset",
        /// Commit-log offset of the half message.
        commit_log_offset: i64 => "commitLogOffset",
        /// The message's `UNIQ_KEY`.
        msg_id: Option<String> => "msgId",
        /// Transaction id (the `UNIQ_KEY`).
        transaction_id: Option<String> => "transactionId",
        /// Offset message id of the half message.
        offset_msg_id: Option<String> => "offsetMsgId",
        /// Name of the broker asking, so the answer goes back to it.
        bname: Option<String> => "bname",
    }
}

command_header! {
    /// PUSH_REPLY_MESSAGE_TO_CLIENT (326): the broker hands a reply (sent with
    /// SEND_REPLY_MESSAGE) to the requesting client's connection; the body is the reply's body
    /// as sent. The send header's fields, plus where and when the broker took the reply.
    pub struct ReplyMessageRequestHeader {
        /// The replying producer's group.
        producer_group: String => "producerGroup",
        /// The reply topic (`<cluster>_REPLY_TOPIC`).
        topic: String => "topic",
        /// The reply send's template topic.
        default_topic: String => "defaultTopic",
        /// The reply send's `defaultTopicQueueNums`.
        default_topic_queue_nums: i32 => "defaultTopicQueueNums",
        /// The queue the reply send named.
        queue_id: i32 => "queueId",
        /// MessageSysFlag bits of the reply (compression).
        sys_flag: i32 => "sysFlag",
        /// The replier's clock at send time, in ms.
        born_timestamp: i64 => "bornTimestamp",
        /// User flag.
        flag: i32 => "flag",
        /// The reply's properties, with `PUSH_REPLY_TIME` added.
        properties: Option<String> => "properties",
        /// Reconsume times of the reply send.
        reconsume_times: Option<i32> => "reconsumeTimes",
        /// Unit mode of the reply send.
        unit_mode: Option<bool> => "unitMode",
        /// The replier's address (`ip:port`).
        born_host: String => "bornHost",
        /// The broker's address (`ip:port`).
        store_host: String => "storeHost",
        /// When the broker took the reply, in ms.
        store_timestamp: i64 => "storeTimestamp",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::header::testkit::{ext_fields, round_trip_tests};
    use crate::header::CommandHeader;

    round_trip_tests! {
        send_v1 => SendMessageRequestHeader {
            producer_group, topic, default_topic, default_topic_queue_nums, queue_id, sys_flag,
            born_timestamp, flag, properties, reconsume_times, unit_mode, max_reconsume_times, batch,
            bname,
        }
        send_v2 => SendMessageRequestHeaderV2 { a, b, c, d, e, f, g, h, i, j, k, l, m, n }
        send_response => SendMessageResponseHeader {
            msg_id, queue_id, queue_offset, transaction_id, batch_uniq_id, recall_handle,
        }
        end_transaction => EndTransactionRequestHeader {
            topic, producer_group, tran_state_table_offset, commit_log_offset, commit_or_rollback,
            from_transaction_check, msg_id, transaction_id, bname,
        }
        check_transaction_state => CheckTransactionStateRequestHeader {
            topic, tran_state_table_offset, commit_log_offset, msg_id, transaction_id, offset_msg_id,
            bname,
        }
    }

    fn full_v1() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 3,
            sys_flag: 1,
            born_timestamp: 1_700_000_000_000,
            flag: 7,
            properties: Some("TAGS\u{1}a\u{2}KEYS\u{1}k\u{2}".into()),
            reconsume_times: Some(2),
            unit_mode: Some(false),
            max_reconsume_times: Some(16),
            batch: Some(true),
            bname: Some("broker-a".into()),
        }
    }

    fn sorted(command: &RemotingCommand) -> BTreeMap<&str, &str> {
        let fields = command.ext_fields.as_ref().into_iter().flatten();
        fields.collect()
    }

    #[test]
    fn v2_uses_exactly_the_spec_letters() {
        let command = RemotingCommand::request(310).with_header(&SendMessageRequestHeaderV2::from(full_v1()));
        let expected = BTreeMap::from([
            ("a", "PG"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("f", "1"),
            ("g", "1700000000000"),
            ("h", "7"),
            ("i", "TAGS\u{1}a\u{2}KEYS\u{1}k\u{2}"),
            ("j", "2"),
            ("k", "false"),
            ("l", "16"),
            ("m", "true"),
            ("n", "broker-a"),
        ]);
        assert_eq!(sorted(&command), expected);
    }

    #[test]
    fn v1_uses_the_java_field_names() {
        let command = RemotingCommand::request(10).with_header(&full_v1());
        let keys: Vec<&str> = sorted(&command).into_keys().collect();
        assert_eq!(
            keys,
            [
                "batch",
                "bname",
                "bornTimestamp",
                "defaultTopic",
                "defaultTopicQueueNums",
                "flag",
                "maxReconsumeTimes",
                "producerGroup",
                "properties",
                "queueId",
                "reconsumeTimes",
                "sysFlag",
                "topic",
                "unitMode",
            ]
        );
    }

    #[test]
    fn send_header_is_decoded_by_code() {
        let v1 = full_v1();
        let short = SendMessageRequestHeaderV2::from(v1.clone());
        for code in [request_code::SEND_MESSAGE_V2, request_code::SEND_BATCH_MESSAGE] {
            let command = RemotingCommand::request(code).with_header(&short);
            assert_eq!(decode_send_message_header(&command), Ok(v1.clone()));
        }
        let long = RemotingCommand::request(request_code::SEND_MESSAGE).with_header(&v1);
        assert_eq!(decode_send_message_header(&long), Ok(v1.clone()));
        // The long keys are not the short ones: each code reads only its own form.
        let mismatched = RemotingCommand { code: request_code::SEND_MESSAGE_V2, ..long };
        assert_eq!(decode_send_message_header(&mismatched), Err(HeaderError::Missing("a")));
    }

    #[test]
    fn a_5x_send_without_unit_mode_and_batch_decodes() {
        let fields = ext_fields(&[
            ("a", "PG"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "0"),
            ("f", "0"),
            ("g", "1"),
            ("h", "0"),
            ("j", "0"),
            ("bname", "broker-a"),
            ("ns", "tenant"),
        ]);
        let header = SendMessageRequestHeaderV2::decode(&fields).unwrap();
        assert_eq!((header.k, header.m, header.n), (None, None, None));
    }

    #[test]
    fn the_cpp_clients_one_and_zero_bools_decode() {
        // SEND_MESSAGE (10) as the Apache C++ client sends a batch: `batch` is "1".
        let fields = ext_fields(&[
            ("producerGroup", "PG"),
            ("topic", "T"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1"),
            ("flag", "0"),
            ("reconsumeTimes", "0"),
            ("unitMode", "0"),
            ("batch", "1"),
        ]);
        let header = SendMessageRequestHeader::decode(&fields).unwrap();
        assert_eq!((header.unit_mode, header.batch), (Some(false), Some(true)));
        let mut fields = fields;
        fields.insert("batch", "0");
        assert_eq!(SendMessageRequestHeader::decode(&fields).unwrap().batch, Some(false));
        fields.insert("batch", "TRUE");
        assert_eq!(SendMessageRequestHeader::decode(&fields).unwrap().batch, Some(true));
    }

    #[test]
    fn an_unparsable_queue_id_is_invalid() {
        let mut fields = ext_fields(&[]);
        SendMessageRequestHeaderV2::from(full_v1()).encode(&mut fields);
        fields.insert("e", "3x");
        assert_eq!(
            SendMessageRequestHeaderV2::decode(&fields),
            Err(HeaderError::Invalid { key: "e", value: "3x".into() })
        );
    }

    proptest! {
        #[test]
        fn v1_and_v2_convert_losslessly(v1 in send_v1::strategy(), v2 in send_v2::strategy()) {
            prop_assert_eq!(SendMessageRequestHeader::from(SendMessageRequestHeaderV2::from(v1.clone())), v1);
            prop_assert_eq!(SendMessageRequestHeaderV2::from(SendMessageRequestHeader::from(v2.clone())), v2);
        }
    }
}
