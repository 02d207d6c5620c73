//! Stored messages as the protocol's `Message` (what a consumer receives and a transaction
//! check carries), built as the reference proxy builds them: RocketMQ's own properties become
//! system properties, the rest stay user properties, and the body travels uncompressed with an
//! uppercase-hex MD5 digest.

use apogee_common::message::{compression, property, sysflag, MessageExt};
use md5::{Digest as _, Md5};

use crate::pb::{self, DeadLetterQueue, Digest, DigestType, Encoding, Resource, SystemProperties};
use crate::topic_type;

/// Property keys RocketMQ reserves for itself (Java `MessageConst.STRING_HASH_SET`), sorted: a
/// user property may not use them.
const RESERVED_PROPERTY_KEYS: [&str; 51] = [
    "1ST_POP_TIME",
    "ARRIVE_TIME",
    "BORN_TIMESTAMP",
    "BUYER_ID",
    "CLUSTER",
    "CONSUME_START_TIME",
    "CORRECTION_FLAG",
    "CORRELATION_ID",
    "DELAY",
    "DLQ_ORIGIN_MESSAGE_ID",
    "DLQ_ORIGIN_TOPIC",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INNER_MULTI_QUEUE_OFFSET",
    "INSTANCE_ID",
    "KEYS",
    "MAX_OFFSET",
    "MAX_RECONSUME_TIMES",
    "MIN_OFFSET",
    "MQ2_FLAG",
    "MSG_REGION",
    "MSG_TYPE",
    "ORIGIN_MESSAGE_ID",
    "PGROUP",
    "POP_CK",
    "POP_CK_OFFSET",
    "PUSH_REPLY_TIME",
    "REAL_QID",
    "REAL_TOPIC",
    "RECONSUME_TIME",
    "REPLY_TO_CLIENT",
    "RETRY_TOPIC",
    "TAGS",
    "TIMER_DELAY_LEVEL",
    "TIMER_DELAY_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELIVER_MS",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DEQUEUE_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_OUT_MS",
    "TIMER_ROLL_TIMES",
    "TRACE_ON",
    "TRANSFER_FLAG",
    "TRAN_MSG",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "TTL",
    "UNIQ_KEY",
    "WAIT",
    "__BORNHOST",
    "__CRC32#",
];

/// Whether `key` is one of RocketMQ's own property keys, which a user property may not use.
pub fn is_reserved(key: &str) -> bool {
    RESERVED_PROPERTY_KEYS.binary_search(&key).is_ok()
}

/// `message` as a consumer or a checker receives it; `receipt_handle` for a popped message.
/// A body that cannot be inflated travels as stored, marked GZIP with the digest of those bytes.
pub fn to_pb_message(message: &MessageExt, receipt_handle: Option<String>) -> pb::Message {
    let properties = &message.message.properties;
    let (body, encoding) = if message.sys_flag & sysflag::COMPRESSED_FLAG != 0 {
        match compression::decompress(&message.message.body, message.sys_flag) {
            Ok(body) => (bytes::Bytes::from(body), Encoding::Identity),
            Err(_) => (message.message.body.clone(), Encoding::Gzip),
        }
    } else {
        (message.message.body.clone(), Encoding::Identity)
    };
    let user_properties = properties
        .iter()
        .filter(|(key, _)| !is_reserved(key))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let born_host = properties
        .get(property::BORN_HOST)
        .map(str::to_owned)
        .unwrap_or_else(|| message.born_host.to_string());
    let delivery_ms = properties.get(property::TIMER_DELIVER_MS).and_then(|ms| ms.trim().parse::<i64>().ok());
    let dead_letter_queue =
        match (properties.get(property::DLQ_ORIGIN_TOPIC), properties.get(property::DLQ_ORIGIN_MESSAGE_ID)) {
            (Some(topic), Some(message_id)) => {
                Some(DeadLetterQueue { topic: topic.to_owned(), message_id: message_id.to_owned() })
            }
            _ => None,
        };
    let system = SystemProperties {
        tag: properties.get(property::TAGS).map(str::to_owned),
        keys: property::keys(properties).map(str::to_owned).collect(),
        message_id: properties.get(property::UNIQ_KEY).map(str::to_owned).unwrap_or_else(|| message.msg_id()),
        body_digest: Some(Digest { r#type: DigestType::Md5 as i32, checksum: md5_hex(&body) }),
        body_encoding: encoding as i32,
        message_type: topic_type::of_message(properties) as i32,
        born_timestamp: Some(timestamp(message.born_timestamp)),
        born_host,
        store_timestamp: Some(timestamp(message.store_timestamp)),
        store_host: message.store_host.to_string(),
        delivery_timestamp: delivery_ms.map(timestamp),
        receipt_handle,
        queue_id: message.queue_id,
        queue_offset: Some(message.queue_offset),
        invisible_duration: None,
        delivery_attempt: Some(message.reconsume_times.saturating_add(1)),
        message_group: properties.get(property::SHARDING_KEY).map(str::to_owned),
        trace_context: properties.get(property::TRACE_CONTEXT).map(str::to_owned),
        orphaned_transaction_recovery_duration: None,
        dead_letter_queue,
        lite_topic: None,
        priority: None,
    };
    pb::Message {
        topic: Some(Resource { resource_namespace: String::new(), name: message.message.topic.clone() }),
        user_properties,
        system_properties: Some(system),
        body: body.to_vec(),
    }
}

/// A protobuf timestamp for epoch milliseconds.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

/// Uppercase hex MD5, as the clients verify bodies.
fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|byte| format!("{byte:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys_are_sorted_for_search() {
        let mut sorted = RESERVED_PROPERTY_KEYS;
        sorted.sort_unstable();
        assert_eq!(sorted, RESERVED_PROPERTY_KEYS);
        assert!(is_reserved("UNIQ_KEY") && !is_reserved("color"));
    }

    #[test]
    fn system_properties_are_split_from_user_properties() {
        let mut stored = MessageExt::default();
        stored.message.topic = "T".into();
        stored.message.body = bytes::Bytes::from_static(b"hello");
        for (key, value) in [("TAGS", "TagA"), ("KEYS", "k1 k2"), ("UNIQ_KEY", "01ABC"), ("color", "red")] {
            stored.message.properties.insert(key, value);
        }
        stored.reconsume_times = 2;
        let message = to_pb_message(&stored, None);
        let system = message.system_properties.expect("system properties");
        assert_eq!(system.tag.as_deref(), Some("TagA"));
        assert_eq!(system.keys, ["k1", "k2"]);
        assert_eq!(system.message_id, "01ABC");
        assert_eq!(system.delivery_attempt, Some(3));
        // MD5 of "hello", uppercase.
        assert_eq!(system.body_digest.expect("digest").checksum, "5D41402ABC4B2A76B9719D911017C592");
        assert_eq!(message.user_properties.len(), 1);
        assert_eq!(message.user_properties.get("color").map(String::as_str), Some("red"));
    }
}
