//! Proptest strategies shared by the codec tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::prelude::*;

use super::{property, record, sysflag, Message, MessageExt, Properties};

/// Keys and values the wire carries unchanged: non-empty, without the two separators.
pub(crate) fn arb_text() -> impl Strategy<Value = String> {
    "[^\u{1}\u{2}]{1,12}"
}

/// Small property maps that survive an encode/decode round trip.
pub(crate) fn arb_properties(max_entries: usize) -> impl Strategy<Value = Properties> {
    proptest::collection::vec((arb_text(), arb_text()), 0..max_entries)
        .prop_map(|pairs| pairs.into_iter().collect())
}

/// Property maps for records: empty, ordinary, or one entry of any size up to the limit.
pub(crate) fn arb_record_properties() -> impl Strategy<Value = Properties> {
    prop_oneof![
        Just(Properties::new()),
        arb_properties(12),
        (1usize..=property::MAX_ENCODED_BYTES - 3)
            .prop_map(|len| [("k", "v".repeat(len))].into_iter().collect()),
    ]
}

/// IPv4 or IPv6 socket addresses.
pub(crate) fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        any::<([u8; 16], u16)>().prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

/// Topics: ordinary (v1), long (v2), or any Unicode.
pub(crate) fn arb_topic() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9_%|-]{0,127}", "[a-z]{128,400}", "\\PC{0,60}"]
}

/// Bodies, often empty.
pub(crate) fn arb_body() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(Bytes::new()), proptest::collection::vec(any::<u8>(), 0..1024).prop_map(Bytes::from)]
}

/// Any encodable stored message.
pub(crate) fn arb_message_ext() -> impl Strategy<Value = MessageExt> {
    let message = (arb_topic(), any::<i32>(), arb_record_properties(), arb_body())
        .prop_map(|(topic, flag, properties, body)| Message { topic, flag, properties, body });
    let numbers = (any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>(), any::<i64>(), any::<i64>());
    let rest = (any::<i32>(), any::<i64>(), any::<i32>(), any::<i32>());
    (message, numbers, rest, arb_host(), arb_host()).prop_map(
        |(
            message,
            (queue_id, queue_offset, sys_flag, born_timestamp, store_timestamp, commit_log_offset),
            (reconsume_times, prepared_transaction_offset, store_size, body_crc),
            born_host,
            store_host,
        )| MessageExt {
            message,
            queue_id,
            store_size,
            queue_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_timestamp,
            store_host,
            commit_log_offset,
            body_crc,
            reconsume_times,
            prepared_transaction_offset,
        },
    )
}

/// `ext` with the fields `record::encode` computes (size, CRC, host bits) set as it sets them.
pub(crate) fn normalized(mut ext: MessageExt) -> MessageExt {
    ext.sys_flag = sysflag::with_host_flags(ext.sys_flag, ext.born_host.is_ipv6(), ext.store_host.is_ipv6());
    ext.store_size = record::encoded_len(
        ext.message.topic.len(),
        ext.message.body.len(),
        ext.message.properties.encoded_len(),
        ext.sys_flag,
    ) as i32;
    ext.body_crc = record::body_crc(&ext.message.body);
    ext
}
