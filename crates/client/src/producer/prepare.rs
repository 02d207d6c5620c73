//! What happens to a message between the caller and the wire (behaviour spec §3.5, §3.8):
//! validation, the client message id, compression, batch encoding, the SEND_MESSAGE_V2 /
//! SEND_BATCH_MESSAGE request and the reading of its response.

use apogee_common::message::batch::{try_encode_batch, BatchItem};
use apogee_common::message::compression::{self, CompressionType};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_common::message::sysflag;
use apogee_common::topic::{self, validate_topic_name};
use apogee_common::MessageQueue;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::header::send::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use apogee_remoting::RemotingCommand;
use bytes::Bytes;

use super::{SendResult, SendStatus};
use crate::{ClientError, Message};

pub use apogee_common::topic::NOT_ALLOWED_SEND_TOPICS;

/// How bodies are compressed (Java `compressMsgBodyOverHowmuch`, `compressType`, `compressLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Bodies of at least this many bytes are compressed (batches never are).
    pub over_bytes: usize,
    /// Algorithm.
    pub kind: CompressionType,
    /// Level (zlib 0..=9).
    pub level: i32,
}

/// A message ready to be sent, whatever queue the attempt picks: the same body, flags and id
/// go out on every retry.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Topic.
    pub topic: String,
    /// User flag.
    pub flag: i32,
    /// Encoded properties (header `i`).
    pub properties: String,
    /// Body as sent: compressed, or the encoded batch.
    pub body: Bytes,
    /// MessageSysFlag bits.
    pub sys_flag: i32,
    /// Header `j`: from `RECONSUME_TIME` for retry topics, else 0.
    pub reconsume_times: i32,
    /// Header `l`: from `MAX_RECONSUME_TIMES` for retry topics.
    pub max_reconsume_times: Option<i32>,
    /// Whether the body is a batch.
    pub batch: bool,
    /// Whether the message answers a request (`MSG_TYPE` `reply`): sent as
    /// SEND_REPLY_MESSAGE_V2.
    pub reply: bool,
    /// The client message id(s) (`UNIQ_KEY`), comma-joined for a batch.
    pub msg_id: String,
}

/// Java `Validators.checkMessage`: a legal topic producers may use, a non-empty body of at most
/// `max_message_size_bytes`, and properties that fit their 16-bit length.
pub fn validate_message(message: &Message, max_message_size_bytes: usize) -> Result<(), ClientError> {
    validate_topic_name(&message.topic)
        .map_err(|error| ClientError::IllegalArgument(format!("{error}: {:?}", message.topic)))?;
    if NOT_ALLOWED_SEND_TOPICS.contains(&message.topic.as_str()) {
        return Err(ClientError::IllegalArgument(format!(
            "sending message to topic[{}] is forbidden",
            message.topic
        )));
    }
    if message.body.is_empty() {
        return Err(ClientError::IllegalArgument("the message body length is zero".into()));
    }
    if message.body.len() > max_message_size_bytes {
        return Err(ClientError::IllegalArgument(format!(
            "the message body size {} is over the max value {max_message_size_bytes}",
            message.body.len()
        )));
    }
    let properties_len = message.properties.encoded_len();
    if properties_len > property::MAX_ENCODED_BYTES {
        return Err(ClientError::IllegalArgument(format!(
            "the message properties take {properties_len} bytes, over the max value {}",
            property::MAX_ENCODED_BYTES
        )));
    }
    Ok(())
}

/// Gives `message` a client message id unless it has one.
pub fn ensure_uniq_key(message: &mut Message) {
    if message.uniq_key().is_none_or(str::is_empty) {
        message.set_uniq_key(UniqIdGenerator::global().next_id());
    }
}

/// A single message, validated, with its id; the body is left uncompressed (see
/// [`compress`]).
pub fn prepare_single(mut message: Message, max_message_size_bytes: usize) -> Result<Prepared, ClientError> {
    validate_message(&message, max_message_size_bytes)?;
    ensure_uniq_key(&mut message);
    let msg_id = message.uniq_key().unwrap_or_default().to_owned();
    let reply = super::request::is_reply(&message);
    let mut sys_flag = 0;
    if message.property(property::TRAN_MSG).is_some_and(|flag| flag.eq_ignore_ascii_case("true")) {
        sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
    }
    let mut properties = message.properties;
    let mut reconsume_times = 0;
    let mut max_reconsume_times = None;
    if topic::is_retry_topic(&message.topic) {
        if let Some(times) = properties.remove(property::RECONSUME_TIME) {
            reconsume_times = parse_count(property::RECONSUME_TIME, &times)?;
        }
        if let Some(times) = properties.remove(property::MAX_RECONSUME_TIMES) {
            max_reconsume_times = Some(parse_count(property::MAX_RECONSUME_TIMES, &times)?);
        }
    }
    Ok(Prepared {
        topic: message.topic,
        flag: message.flag,
        properties: property::encode(&properties),
        body: message.body,
        sys_flag,
        reconsume_times,
        max_reconsume_times,
        batch: false,
        reply,
        msg_id,
    })
}

fn parse_count(key: &str, text: &str) -> Result<i32, ClientError> {
    text.trim()
        .parse()
        .map_err(|_| ClientError::IllegalArgument(format!("property {key} is not a number: {text:?}")))
}

/// Whether [`compress`] would compress this prepared message.
pub fn wants_compression(prepared: &Prepared, settings: &Compression) -> bool {
    !prepared.batch
        && !sysflag::is_compressed(prepared.sys_flag)
        && prepared.body.len() >= settings.over_bytes
}

/// Compresses the body when it reaches the threshold (never a batch), marking the sysflag with
/// the compressed bit and the algorithm's bits (protocol §4.4, §4.5).
pub fn compress(prepared: &mut Prepared, settings: &Compression) {
    if !wants_compression(prepared, settings) {
        return;
    }
    let compressed = Bytes::from(compression::compress(&prepared.body, settings.kind, settings.level));
    apply_compressed(prepared, compressed, settings);
}

/// Puts a body compressed with `settings` in place and marks the sysflag accordingly.
pub fn apply_compressed(prepared: &mut Prepared, compressed: Bytes, settings: &Compression) {
    prepared.body = compressed;
    prepared.sys_flag |= sysflag::COMPRESSED_FLAG | settings.kind.sys_flag_bits();
}

/// A batch (Java `DefaultMQProducer.batch`): at least one message, one topic, the same `WAIT`,
/// no delay level, no retry topic, each message valid and given its id; the encoded batch must
/// fit `max_message_size_bytes`. The batch's own properties carry only `WAIT`, as 4.x clients
/// send, so no broker version can copy a batch-level id over the items' own.
pub fn prepare_batch(messages: Vec<Message>, max_message_size_bytes: usize) -> Result<Prepared, ClientError> {
    let Some(first) = messages.first() else {
        return Err(ClientError::IllegalArgument("a batch needs at least one message".into()));
    };
    let topic = first.topic.clone();
    let wait = first.wait_store_msg_ok();
    if topic::is_retry_topic(&topic) {
        return Err(ClientError::IllegalArgument("retry topics are not supported for batching".into()));
    }
    let mut items = Vec::with_capacity(messages.len());
    let mut ids = Vec::with_capacity(messages.len());
    for mut message in messages {
        validate_message(&message, max_message_size_bytes)?;
        if message.topic != topic {
            return Err(ClientError::IllegalArgument(
                "the topic of the messages in one batch should be the same".into(),
            ));
        }
        if message.delay_level() > 0 {
            return Err(ClientError::IllegalArgument("delay levels are not supported for batching".into()));
        }
        if message.wait_store_msg_ok() != wait {
            return Err(ClientError::IllegalArgument(
                "the WAIT flag of the messages in one batch should be the same".into(),
            ));
        }
        ensure_uniq_key(&mut message);
        ids.push(message.uniq_key().unwrap_or_default().to_owned());
        items.push(BatchItem::from_message(&message));
    }
    let body =
        try_encode_batch(&items).map_err(|error| ClientError::IllegalArgument(format!("batch: {error}")))?;
    if body.len() > max_message_size_bytes {
        return Err(ClientError::IllegalArgument(format!(
            "the encoded batch takes {} bytes, over the max message size {max_message_size_bytes}",
            body.len()
        )));
    }
    let mut properties = Properties::new();
    properties.insert(property::WAIT, if wait { "true" } else { "false" });
    Ok(Prepared {
        topic,
        flag: 0,
        properties: property::encode(&properties),
        body: Bytes::from(body),
        sys_flag: 0,
        reconsume_times: 0,
        max_reconsume_times: None,
        batch: true,
        reply: false,
        msg_id: ids.join(","),
    })
}

/// What a send request names besides the message: the producer group, the auto-create template
/// and its queue count.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// Producer group.
    pub group: &'a str,
    /// Template topic for auto-creation (`createTopicKey`).
    pub create_topic_key: &'a str,
    /// Queue count of an auto-created topic (`defaultTopicQueueNums`).
    pub default_topic_queue_nums: i32,
}

/// The SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE, or SEND_REPLY_MESSAGE_V2) request of
/// `prepared` to `queue`.
pub fn send_request(
    sender: Sender<'_>,
    prepared: &Prepared,
    queue: &MessageQueue,
    born_timestamp_ms: i64,
) -> RemotingCommand {
    let header = SendMessageRequestHeader {
        producer_group: sender.group.into(),
        topic: prepared.topic.as_str().into(),
        default_topic: sender.create_topic_key.into(),
        default_topic_queue_nums: sender.default_topic_queue_nums,
        queue_id: queue.queue_id,
        sys_flag: prepared.sys_flag,
        born_timestamp: born_timestamp_ms,
        flag: prepared.flag,
        properties: Some(prepared.properties.as_str().into()),
        reconsume_times: Some(prepared.reconsume_times),
        unit_mode: Some(false),
        max_reconsume_times: prepared.max_reconsume_times,
        batch: Some(prepared.batch),
        bname: Some(queue.broker_name.as_str().into()),
    };
    let code = if prepared.batch {
        request_code::SEND_BATCH_MESSAGE
    } else if prepared.reply {
        request_code::SEND_REPLY_MESSAGE_V2
    } else {
        request_code::SEND_MESSAGE_V2
    };
    RemotingCommand::request(code)
        .with_header(&SendMessageRequestHeaderV2::from(header))
        .with_body(prepared.body.clone())
}

/// Reads a send response: SUCCESS, FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT and
/// SLAVE_NOT_AVAILABLE are stored messages (statuses); any other code is the broker's refusal.
pub fn parse_send_response(
    response: &RemotingCommand,
    addr: &str,
    queue: &MessageQueue,
    prepared: &Prepared,
) -> Result<SendResult, ClientError> {
    let status = match response.code {
        response_code::SUCCESS => SendStatus::SendOk,
        response_code::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
        response_code::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
        response_code::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
        _ => return Err(ClientError::from_response(response, addr)),
    };
    let header: SendMessageResponseHeader = response
        .decode_header()
        .map_err(|error| ClientError::Malformed(format!("send response from {addr}: {error}")))?;
    let msg_id = match header.batch_uniq_id.filter(|id| prepared.batch && !id.is_empty()) {
        Some(batch_id) => batch_id,
        None => prepared.msg_id.clone(),
    };
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id: header.msg_id.into(),
        queue: MessageQueue::new(prepared.topic.clone(), queue.broker_name.clone(), header.queue_id),
        queue_offset: header.queue_offset,
        transaction_id: header.transaction_id.map(String::from),
        region_id: response.ext(property::MSG_REGION).map(str::to_owned),
        recall_handle: header.recall_handle,
    })
}

#[cfg(test)]
mod tests {
    use apogee_common::message::batch::decode_batch;

    use super::*;

    const MAX: usize = 4 * 1024 * 1024;

    fn zlib() -> Compression {
        Compression { over_bytes: 4096, kind: CompressionType::Zlib, level: 5 }
    }

    #[test]
    fn validation() {
        assert!(validate_message(&Message::new("T", &b"x"[..]), MAX).is_ok());
        for bad in [
            Message::new("", &b"x"[..]),
            Message::new("bad topic", &b"x"[..]),
            Message::new("SCHEDULE_TOPIC_XXXX", &b"x"[..]),
            Message::new("T", Bytes::new()),
            Message::new("T", vec![0u8; 11]),
            Message::new("T", &b"x"[..]).with_property("k", "v".repeat(property::MAX_ENCODED_BYTES)),
        ] {
            assert!(matches!(validate_message(&bad, 10), Err(ClientError::IllegalArgument(_))), "{bad:?}");
        }
    }

    #[test]
    fn single_gets_an_id_that_is_kept() {
        let prepared = prepare_single(Message::new("T", &b"x"[..]).with_tags("A"), MAX).unwrap();
        assert_eq!(prepared.msg_id.len(), 32);
        assert!(prepared.properties.contains(&prepared.msg_id));
        let mut given = Message::new("T", &b"x"[..]);
        given.set_uniq_key("MYID");
        assert_eq!(prepare_single(given, MAX).unwrap().msg_id, "MYID");
    }

    #[test]
    fn compression_threshold() {
        let settings = zlib();
        let mut below = prepare_single(Message::new("T", vec![b'a'; 4095]), MAX).unwrap();
        compress(&mut below, &settings);
        assert_eq!(below.sys_flag, 0);
        assert_eq!(below.body.len(), 4095);

        let mut at = prepare_single(Message::new("T", vec![b'a'; 4096]), MAX).unwrap();
        compress(&mut at, &settings);
        assert_eq!(at.sys_flag, sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_ZLIB_TYPE);
        assert!(at.body.len() < 4096);
        assert_eq!(compression::decompress(&at.body, at.sys_flag).unwrap(), vec![b'a'; 4096]);
        // Compressing twice changes nothing.
        let before = at.body.clone();
        compress(&mut at, &settings);
        assert_eq!(at.body, before);

        let lz4 = Compression { kind: CompressionType::Lz4, ..settings };
        let mut big = prepare_single(Message::new("T", vec![b'z'; 10_000]), MAX).unwrap();
        compress(&mut big, &lz4);
        assert_eq!(big.sys_flag, sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_LZ4_TYPE);

        let mut batch = prepare_batch(vec![Message::new("T", vec![b'a'; 10_000])], MAX).unwrap();
        compress(&mut batch, &settings);
        assert_eq!(batch.sys_flag, 0, "batches are never compressed");
    }

    #[test]
    fn transaction_and_retry_properties() {
        let transactional = Message::new("T", &b"x"[..]).with_property(property::TRAN_MSG, "true");
        assert_eq!(prepare_single(transactional, MAX).unwrap().sys_flag, sysflag::TRANSACTION_PREPARED_TYPE);
        let retry = Message::new("%RETRY%G", &b"x"[..])
            .with_property(property::RECONSUME_TIME, "3")
            .with_property(property::MAX_RECONSUME_TIMES, "16");
        let prepared = prepare_single(retry, MAX).unwrap();
        assert_eq!((prepared.reconsume_times, prepared.max_reconsume_times), (3, Some(16)));
        assert!(!prepared.properties.contains(property::RECONSUME_TIME));
        assert!(!prepared.properties.contains(property::MAX_RECONSUME_TIMES));
        let broken = Message::new("%RETRY%G", &b"x"[..]).with_property(property::RECONSUME_TIME, "x");
        assert!(prepare_single(broken, MAX).is_err());
        // Outside retry topics the properties travel untouched.
        let plain = Message::new("T", &b"x"[..]).with_property(property::RECONSUME_TIME, "3");
        assert!(prepare_single(plain, MAX).unwrap().properties.contains(property::RECONSUME_TIME));
    }

    #[test]
    fn batch_validation() {
        let ok = |messages: Vec<Message>| prepare_batch(messages, MAX);
        let illegal = |messages: Vec<Message>| matches!(ok(messages), Err(ClientError::IllegalArgument(_)));
        assert!(illegal(vec![]));
        assert!(illegal(vec![Message::new("A", &b"1"[..]), Message::new("B", &b"2"[..])]));
        assert!(illegal(vec![Message::new("%RETRY%G", &b"1"[..])]));
        let mut delayed = Message::new("A", &b"2"[..]);
        delayed.set_delay_level(3);
        assert!(illegal(vec![Message::new("A", &b"1"[..]), delayed]));
        let mut no_wait = Message::new("A", &b"2"[..]);
        no_wait.set_wait_store_msg_ok(false);
        assert!(illegal(vec![Message::new("A", &b"1"[..]), no_wait]));
        assert!(illegal(vec![Message::new("A", &b"1"[..]), Message::new("A", Bytes::new())]));
        assert!(matches!(
            prepare_batch(vec![Message::new("A", vec![1u8; 60]), Message::new("A", vec![1u8; 60])], 100),
            Err(ClientError::IllegalArgument(_))
        ));
    }

    #[test]
    fn batch_encodes_items_with_their_own_ids() {
        let mut keyed = Message::new("A", &b"two"[..]).with_keys(["k2"]);
        keyed.set_uniq_key("ID2");
        let prepared =
            prepare_batch(vec![Message::new("A", &b"one"[..]).with_tags("T1"), keyed], MAX).unwrap();
        assert!(prepared.batch);
        assert_eq!(prepared.properties, "WAIT\u{1}true\u{2}");
        let items = decode_batch(&prepared.body).unwrap();
        assert_eq!(items.len(), 2);
        let ids: Vec<&str> = prepared.msg_id.split(',').collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(items[0].properties.get(property::UNIQ_KEY), Some(ids[0]));
        assert_eq!(ids[1], "ID2");
        assert_eq!(items[0].properties.get(property::TAGS), Some("T1"));
        assert_eq!(&items[1].body[..], b"two");
    }

    #[test]
    fn request_carries_the_v2_header() {
        let prepared = prepare_single(Message::new("T", &b"x"[..]), MAX).unwrap();
        let sender = Sender { group: "PG", create_topic_key: "TBW102", default_topic_queue_nums: 4 };
        let request =
            send_request(sender, &prepared, &MessageQueue::new("T", "broker-a", 3), 1_700_000_000_000);
        assert_eq!(request.code, request_code::SEND_MESSAGE_V2);
        for (key, value) in [
            ("a", "PG"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("f", "0"),
            ("m", "false"),
            ("n", "broker-a"),
        ] {
            assert_eq!(request.ext(key), Some(value), "{key}");
        }
        assert_eq!(request.ext("g"), Some("1700000000000"));
        let batch = prepare_batch(vec![Message::new("T", &b"x"[..])], MAX).unwrap();
        let request = send_request(sender, &batch, &MessageQueue::new("T", "broker-a", 0), 0);
        assert_eq!(request.code, request_code::SEND_BATCH_MESSAGE);
        assert_eq!(request.ext("m"), Some("true"));
    }

    #[test]
    fn responses_map_to_statuses_or_errors() {
        let prepared = prepare_single(Message::new("T", &b"x"[..]), MAX).unwrap();
        let queue = MessageQueue::new("T", "b", 0);
        let stored = |code: i32| {
            RemotingCommand::response(code, None)
                .with_ext("msgId", "C0A8000100002A9F0000000000001234")
                .with_ext("queueId", "2")
                .with_ext("queueOffset", "77")
                .with_ext("MSG_REGION", "DefaultRegion")
        };
        let result = parse_send_response(&stored(0), "x:1", &queue, &prepared).unwrap();
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.msg_id, prepared.msg_id);
        assert_eq!(result.offset_msg_id, "C0A8000100002A9F0000000000001234");
        assert_eq!(result.queue, MessageQueue::new("T", "b", 2));
        assert_eq!(result.queue_offset, 77);
        assert_eq!(result.region_id.as_deref(), Some("DefaultRegion"));
        for (code, status) in [
            (10, SendStatus::FlushDiskTimeout),
            (12, SendStatus::FlushSlaveTimeout),
            (11, SendStatus::SlaveNotAvailable),
        ] {
            assert_eq!(parse_send_response(&stored(code), "x:1", &queue, &prepared).unwrap().status, status);
        }
        let refused = RemotingCommand::response(17, Some("topic[T] not exist".into()));
        let error = parse_send_response(&refused, "x:1", &queue, &prepared).unwrap_err();
        assert_eq!(error.response_code(), Some(17));
        // A success without its header is malformed, not a panic.
        let bare = RemotingCommand::response(0, None);
        assert!(matches!(
            parse_send_response(&bare, "x:1", &queue, &prepared),
            Err(ClientError::Malformed(_))
        ));
        let garbage = stored(0).with_ext("queueOffset", "many");
        assert!(matches!(
            parse_send_response(&garbage, "x:1", &queue, &prepared),
            Err(ClientError::Malformed(_))
        ));
    }

    #[test]
    fn batch_result_joins_ids_unless_the_broker_gives_one() {
        let batch =
            prepare_batch(vec![Message::new("T", &b"1"[..]), Message::new("T", &b"2"[..])], MAX).unwrap();
        let queue = MessageQueue::new("T", "b", 0);
        let response = RemotingCommand::response(0, None)
            .with_ext("msgId", "A,B")
            .with_ext("queueId", "0")
            .with_ext("queueOffset", "5");
        let result = parse_send_response(&response, "x:1", &queue, &batch).unwrap();
        assert_eq!(result.msg_id, batch.msg_id);
        assert_eq!(result.msg_id.split(',').count(), 2);
        let inner = response.with_ext("batchUniqId", "BATCHID");
        assert_eq!(parse_send_response(&inner, "x:1", &queue, &batch).unwrap().msg_id, "BATCHID");
    }
}
