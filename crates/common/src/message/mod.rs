//! The message model and its byte encodings, shared by the store, the broker and the client.
//!
//! - [`Message`]: what a producer sends (topic, user flag, properties, body).
//! - [`MessageExt`]: a stored message with everything the broker adds (queue, offsets, hosts,
//!   timestamps, sysflag, CRC).
//! - [`record`]: the stored record layout, which is also the body of PULL/QUERY/VIEW responses.
//! - [`property`], [`sysflag`], [`batch`], [`msg_id`], [`compression`]: the pieces of that
//!   format (spec remoting-protocol §4, storage-ha §1.2–§1.3).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;

pub mod batch;
pub mod compression;
mod error;
pub mod inline_text;
pub mod msg_id;
pub mod property;
pub mod record;
pub mod sysflag;
#[cfg(test)]
pub(crate) mod testkit;

pub use compression::CompressionType;
pub use error::RecordError;
pub use inline_text::{IdText, InlineText};
pub use property::Properties;
pub use record::RecordView;

/// A message as a producer builds it and as a batch item or stored record carries it.
///
/// Everything a client can set lives here; what the broker adds is in [`MessageExt`]. The body
/// is `Bytes` so records decoded from a shared buffer can reference it without copying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Topic name (UTF-8; at most 127 bytes for ordinary topics, longer only for v2 records).
    pub topic: String,
    /// User flag, opaque to the broker.
    pub flag: i32,
    /// User and system properties (tags, keys, unique id, delay level, ...).
    pub properties: Properties,
    /// The body, compressed when the owning record's sysflag says so.
    pub body: Bytes,
}

impl Message {
    /// A message for `topic` with `body` and no properties.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message { topic: topic.into(), flag: 0, properties: Properties::new(), body: body.into() }
    }

    /// Builder form of [`Self::set_tags`]: `Message::new(topic, body).with_tags("TagA")`.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.set_tags(tags);
        self
    }

    /// Builder form of [`Self::set_keys`].
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.set_keys(keys);
        self
    }

    /// Builder form of a user property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key: String = key.into();
        self.properties.insert(key.as_str(), value.into());
        self
    }

    /// The value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key)
    }

    /// The tag subscriptions filter on ([`property::TAGS`]).
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(property::TAGS)
    }

    /// Sets the tag.
    pub fn set_tags(&mut self, tags: impl Into<String>) {
        self.properties.insert(property::TAGS, tags.into());
    }

    /// Consume-queue tag code of the tag: Java `hashCode` sign-extended, 0 without a tag.
    pub fn tags_code(&self) -> i64 {
        self.tags().map_or(0, property::tags_code)
    }

    /// The business keys ([`property::KEYS`], space separated), without empty pieces.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        property::keys(&self.properties)
    }

    /// Sets the business keys, joined by single spaces.
    pub fn set_keys<I, S>(&mut self, keys: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut joined = String::new();
        for key in keys {
            if !joined.is_empty() {
                joined.push(property::KEY_SEPARATOR);
            }
            joined.push_str(key.as_ref());
        }
        self.properties.insert(property::KEYS, joined);
    }

    /// The client-generated unique id ([`property::UNIQ_KEY`]).
    pub fn uniq_key(&self) -> Option<&str> {
        self.properties.get(property::UNIQ_KEY)
    }

    /// Sets the client-generated unique id.
    pub fn set_uniq_key(&mut self, id: impl Into<String>) {
        self.properties.insert(property::UNIQ_KEY, id.into());
    }

    /// The delay level ([`property::DELAY`]); 0 (no delay) when absent or not a number.
    pub fn delay_level(&self) -> i32 {
        self.properties.get(property::DELAY).and_then(|level| level.parse().ok()).unwrap_or(0)
    }

    /// Sets the delay level (1..=18 in the default broker configuration).
    pub fn set_delay_level(&mut self, level: i32) {
        self.properties.insert(property::DELAY, level.to_string());
    }

    /// Makes this a timer message delivered at `deliver_ms` (epoch milliseconds;
    /// [`property::TIMER_DELIVER_MS`], Java `setDeliverTimeMs`). The broker delivers it no
    /// earlier and within its `timerPrecisionMs` after; at most `timerMaxDelaySec` ahead.
    pub fn set_deliver_time_ms(&mut self, deliver_ms: i64) {
        self.properties.insert(property::TIMER_DELIVER_MS, deliver_ms.to_string());
    }

    /// [`Self::set_deliver_time_ms`] as a builder.
    pub fn with_deliver_time_ms(mut self, deliver_ms: i64) -> Self {
        self.set_deliver_time_ms(deliver_ms);
        self
    }

    /// Makes this a timer message delivered `delay_ms` after the broker receives it
    /// ([`property::TIMER_DELAY_MS`], Java `setDelayTimeMs`).
    pub fn set_delay_ms(&mut self, delay_ms: i64) {
        self.properties.insert(property::TIMER_DELAY_MS, delay_ms.to_string());
    }

    /// Makes this a timer message delivered `delay_sec` seconds after the broker receives it
    /// ([`property::TIMER_DELAY_SEC`], Java `setDelayTimeSec`).
    pub fn set_delay_sec(&mut self, delay_sec: i64) {
        self.properties.insert(property::TIMER_DELAY_SEC, delay_sec.to_string());
    }

    /// The absolute delivery time asked for with [`Self::set_deliver_time_ms`], if any.
    pub fn deliver_time_ms(&self) -> Option<i64> {
        self.properties.get(property::TIMER_DELIVER_MS).and_then(|time| time.parse().ok())
    }

    /// Whether the send should wait for flush/replication ([`property::WAIT`]): true when
    /// absent, else whether the value is `true` in any case (Java `Boolean.parseBoolean`).
    pub fn wait_store_msg_ok(&self) -> bool {
        match self.properties.get(property::WAIT) {
            None => true,
            Some(wait) => wait.eq_ignore_ascii_case("true"),
        }
    }

    /// Sets [`property::WAIT`].
    pub fn set_wait_store_msg_ok(&mut self, wait: bool) {
        self.properties.insert(property::WAIT, if wait { "true" } else { "false" });
    }
}

/// A stored message: the producer's [`Message`] plus every field of the stored record.
///
/// The message fields are kept in the nested `message` (not flattened), so a message moves
/// between the two without copying field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// Topic, flag, properties and body (the body as stored: compressed if the sysflag says so).
    pub message: Message,
    /// Queue of the topic the message is in.
    pub queue_id: i32,
    /// Length of the whole stored record in bytes (TOTALSIZE).
    pub store_size: i32,
    /// Logical offset in the consume queue.
    pub queue_offset: i64,
    /// SYSFLAG bits ([`sysflag`]).
    pub sys_flag: i32,
    /// Producer time, epoch ms.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Broker append time, epoch ms.
    pub store_timestamp: i64,
    /// Broker address (`brokerIP1:listenPort`).
    pub store_host: SocketAddr,
    /// Commit-log offset of the record.
    pub commit_log_offset: i64,
    /// CRC32 & 0x7FFFFFFF of the stored body.
    pub body_crc: i32,
    /// How often the message was redelivered.
    pub reconsume_times: i32,
    /// Commit-log offset of the half message (transaction commit/rollback records).
    pub prepared_transaction_offset: i64,
}

impl Default for MessageExt {
    fn default() -> Self {
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        MessageExt {
            message: Message::default(),
            queue_id: 0,
            store_size: 0,
            queue_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            commit_log_offset: 0,
            body_crc: 0,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }
}

impl MessageExt {
    /// The id clients show: the `UNIQ_KEY` property if present, else the offset id.
    pub fn msg_id(&self) -> String {
        match self.message.uniq_key() {
            Some(id) => id.to_owned(),
            None => self.offset_msg_id(),
        }
    }

    /// The broker's offset id of this record (store host + commit-log offset, spec §4.7).
    pub fn offset_msg_id(&self) -> String {
        msg_id::offset_msg_id(self.store_host, self.commit_log_offset)
    }

    /// Inflates the body if the sysflag says it is compressed, clearing the compressed bit as
    /// Java clients do. Returns whether the body changed. The size cap of
    /// [`compression::decompress`] applies.
    pub fn decompress_body(&mut self) -> Result<bool, RecordError> {
        if !sysflag::is_compressed(self.sys_flag) {
            return Ok(false);
        }
        let body = compression::decompress(&self.message.body, self.sys_flag)?;
        self.message.body = Bytes::from(body);
        self.sys_flag = sysflag::clear_compressed_flag(self.sys_flag);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_helpers() {
        let mut msg = Message::new("TopicTest", &b"hi"[..]);
        assert_eq!(msg.tags(), None);
        assert_eq!(msg.tags_code(), 0);
        assert_eq!(msg.delay_level(), 0);
        assert!(msg.wait_store_msg_ok());
        msg.set_tags("TagA");
        msg.set_keys(["k1", "k2"]);
        msg.set_uniq_key("ID1");
        msg.set_delay_level(3);
        msg.set_wait_store_msg_ok(false);
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.tags_code(), 2598919);
        assert_eq!(msg.keys().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(msg.property(property::KEYS), Some("k1 k2"));
        assert_eq!(msg.uniq_key(), Some("ID1"));
        assert_eq!(msg.delay_level(), 3);
        assert!(!msg.wait_store_msg_ok());
        msg.properties.insert(property::DELAY, "x");
        assert_eq!(msg.delay_level(), 0);
    }

    #[test]
    fn ext_ids_and_decompression() {
        let mut ext = MessageExt {
            store_host: "192.168.0.1:10911".parse().unwrap(),
            commit_log_offset: 0x1234,
            ..MessageExt::default()
        };
        assert_eq!(ext.offset_msg_id(), "C0A8000100002A9F0000000000001234");
        assert_eq!(ext.msg_id(), ext.offset_msg_id());
        ext.message.set_uniq_key("7F00000100002A9F0000000000000001");
        assert_eq!(ext.msg_id(), "7F00000100002A9F0000000000000001");

        assert_eq!(ext.decompress_body(), Ok(false));
        let body = vec![b'z'; 10_000];
        ext.message.body = compression::compress(&body, CompressionType::Lz4, 5).into();
        ext.sys_flag = sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_LZ4_TYPE | sysflag::MULTI_TAGS_FLAG;
        assert_eq!(ext.decompress_body(), Ok(true));
        assert_eq!(&ext.message.body[..], &body[..]);
        assert_eq!(ext.sys_flag, sysflag::COMPRESSION_LZ4_TYPE | sysflag::MULTI_TAGS_FLAG);
    }
}
