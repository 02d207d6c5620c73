//! SendMessage (spec §5.5, §6.2): the protocol's checks in the reference's order, the message
//! mapped onto RocketMQ properties, the queue chosen by the server (a message group hashes to
//! its queue, so FIFO holds whatever queue the client picked), and one result entry per message
//! with the client's own message id.

use std::io::Read;

use apogee_common::message::{property, sysflag, Properties};
use apogee_common::time::now_ms;
use bytes::Bytes;

use crate::backend::Backend;

use crate::context::CallContext;
use crate::pb::{
    Code, Encoding, Message, MessageType, SendMessageRequest, SendMessageResponse, SendResultEntry,
};
use crate::status::{status, Refusal};
use crate::{names, topic_type, Messaging};

/// Most user properties a message may carry.
pub const MAX_USER_PROPERTIES: usize = 128;
/// Most bytes of user properties, tag and keys together (`maxUserPropertySize`).
pub const MAX_USER_PROPERTY_BYTES: usize = 16 * 1024;
/// A message group must be shorter than this, in bytes (`maxMessageGroupSize`).
pub const MAX_MESSAGE_GROUP_BYTES: usize = 64;
/// Longest a transaction may ask to be left unchecked (`maxTransactionRecoverySecond`).
pub const MAX_TRANSACTION_RECOVERY_SECS: i64 = 3_600;
/// Furthest ahead a delivery time may lie, in ms (`maxDelayTimeMills`).
pub const MAX_DELIVERY_AHEAD_MS: i64 = 24 * 3_600 * 1_000;
/// Queue count of a topic created on first send (the send header's `defaultTopicQueueNums`).
pub(crate) const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;

/// One checked message as a backend stores it: its properties string (spec §6.2), flags and
/// body, with what the queue choice and the type check need.
#[derive(Debug)]
pub struct Outgoing {
    /// The properties string to store.
    pub(crate) properties: String,
    pub(crate) sys_flag: i32,
    pub(crate) born_timestamp_ms: i64,
    pub(crate) body: Bytes,
    /// The client's message id (`UNIQ_KEY`).
    pub(crate) message_id: String,
    pub(crate) message_group: Option<String>,
    /// Its kind by its properties, for the topic-type check; `None` for a message carrying
    /// `TRANSFER_FLAG`, which is not checked.
    pub(crate) kind: Option<MessageType>,
}

impl Messaging {
    /// SendMessage: every message stored, one entry each.
    pub(crate) async fn send_message(
        &self,
        context: &CallContext,
        request: SendMessageRequest,
    ) -> Result<SendMessageResponse, Refusal> {
        let Some(first) = request.messages.first() else {
            return Err(Refusal::new(Code::MessageCorrupted, "no message to send"));
        };
        let topic = names::topic(first.topic.as_ref())?.to_owned();
        let max_body_bytes = self.max_body_bytes();
        let mut outgoing = Vec::with_capacity(request.messages.len());
        for message in &request.messages {
            if message.topic != first.topic {
                return Err(Refusal::new(Code::MessageCorrupted, "topic in message is not same"));
            }
            outgoing.push(prepare(message, &topic, context, max_body_bytes)?);
        }
        let check_type = self.settings.enable_topic_message_type_check;
        let entries = self.backend.send(context, &topic, outgoing, check_type).await?;
        let Some(first_entry) = entries.first() else {
            return Err(Refusal::new(Code::InternalServerError, "no message was sent"));
        };
        let first_code = first_entry.status.as_ref().map(|status| status.code);
        let top = if entries.iter().all(|entry| entry.status.as_ref().map(|status| status.code) == first_code)
        {
            first_entry.status.clone()
        } else {
            Some(status(Code::MultipleResults, "MULTIPLE_RESULTS"))
        };
        Ok(SendMessageResponse { status: top, entries })
    }

    /// The largest body a producer may send (`maxMessageSize`), which the Settings answer
    /// tells producers too.
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.backend.max_body_bytes()
    }
}

/// The entry of a message that was not stored.
pub(crate) fn failed_entry(refusal: Refusal) -> SendResultEntry {
    SendResultEntry {
        status: Some(refusal.status()),
        message_id: String::new(),
        transaction_id: String::new(),
        offset: 0,
        recall_handle: String::new(),
    }
}

/// Checks one message (spec §5.5 steps 2–10) and maps it onto stored properties (§6.2).
pub(crate) fn prepare(
    message: &Message,
    topic: &str,
    context: &CallContext,
    max_body_bytes: usize,
) -> Result<Outgoing, Refusal> {
    let system = message.system_properties.clone().unwrap_or_default();
    if message.body.is_empty() {
        return Err(Refusal::new(Code::MessageBodyEmpty, "message body cannot be empty"));
    }
    if message.body.len() > max_body_bytes {
        return Err(Refusal::new(
            Code::MessageBodyTooLarge,
            format!("message body cannot exceed the max {max_body_bytes} bytes"),
        ));
    }
    check_user_properties(message)?;
    let tag = system.tag.as_deref().filter(|tag| !tag.is_empty());
    if let Some(tag) = tag {
        if tag.trim().is_empty() || tag.contains('|') || has_control(tag) {
            return Err(Refusal::new(Code::IllegalMessageTag, format!("tag '{tag}' is illegal")));
        }
    }
    for key in system.keys.iter().filter(|key| !key.is_empty()) {
        if key.trim().is_empty() || has_control(key) {
            return Err(Refusal::new(Code::IllegalMessageKey, format!("key '{key}' is illegal")));
        }
    }
    let user_bytes: usize =
        message.user_properties.iter().map(|(key, value)| key.len() + value.len()).sum::<usize>()
            + tag.map_or(0, str::len)
            + system.keys.iter().map(String::len).sum::<usize>();
    if user_bytes > MAX_USER_PROPERTY_BYTES {
        return Err(Refusal::new(
            Code::MessagePropertiesTooLarge,
            format!(
                "user properties, tag and keys take {user_bytes} bytes, over the {MAX_USER_PROPERTY_BYTES}"
            ),
        ));
    }
    if system.message_id.trim().is_empty() {
        return Err(Refusal::new(Code::IllegalMessageId, "message id cannot be empty"));
    }
    let transactional = system.message_type == MessageType::Transaction as i32;
    let recovery_secs =
        system.orphaned_transaction_recovery_duration.as_ref().map(|duration| duration.seconds);
    if transactional && recovery_secs.is_some_and(|secs| secs > MAX_TRANSACTION_RECOVERY_SECS) {
        return Err(Refusal::new(
            Code::BadRequest,
            format!("the transaction recovery time cannot exceed {MAX_TRANSACTION_RECOVERY_SECS} s"),
        ));
    }
    let now = now_ms();
    let deliver_ms = system.delivery_timestamp.as_ref().map(timestamp_ms);
    if deliver_ms.is_some_and(|deliver| deliver.saturating_sub(now) > MAX_DELIVERY_AHEAD_MS) {
        return Err(Refusal::new(
            Code::IllegalDeliveryTime,
            format!("the delivery time cannot be more than {MAX_DELIVERY_AHEAD_MS} ms ahead"),
        ));
    }
    let group = system.message_group.as_deref().filter(|group| !group.is_empty());
    if let Some(group) = group {
        if group.trim().is_empty() || group.len() >= MAX_MESSAGE_GROUP_BYTES || has_control(group) {
            return Err(Refusal::new(
                Code::IllegalMessageGroup,
                format!("message group '{group}' is illegal"),
            ));
        }
    }

    let mut properties = Properties::new();
    for (key, value) in &message.user_properties {
        properties.insert(key.as_str(), value.as_str());
    }
    if let Some(tag) = tag {
        properties.insert(property::TAGS, tag);
    }
    if !system.keys.is_empty() {
        properties.insert(property::KEYS, system.keys.join(" "));
    }
    properties.insert(property::UNIQ_KEY, system.message_id.as_str());
    let mut sys_flag = 0;
    if transactional {
        properties.insert(property::TRAN_MSG, "true");
        sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
        if let Some(secs) = recovery_secs.filter(|secs| *secs > 0) {
            properties.insert(property::CHECK_IMMUNITY_TIME_IN_SECONDS, secs.to_string());
        }
    }
    if let Some(deliver) = deliver_ms {
        properties.insert(property::TIMER_DELIVER_MS, deliver.to_string());
    }
    properties.insert(property::PGROUP, topic);
    if let Some(group) = group {
        properties.insert(property::SHARDING_KEY, group);
    }
    if let Some(trace) = system.trace_context.as_deref().filter(|trace| !trace.is_empty()) {
        properties.insert(property::TRACE_CONTEXT, trace);
    }
    let born_host = if system.born_host.trim().is_empty() {
        context.remote_addr.to_string()
    } else {
        system.born_host.clone()
    };
    properties.insert(property::BORN_HOST, born_host);
    let born_ms = system.born_timestamp.as_ref().map(timestamp_ms).filter(|ms| *ms > 0).unwrap_or(now);
    properties.insert(property::BORN_TIMESTAMP, born_ms.to_string());
    let body = if system.body_encoding == Encoding::Gzip as i32 {
        inflate(&message.body, max_body_bytes)?
    } else {
        Bytes::copy_from_slice(&message.body)
    };
    let kind = properties.get(property::TRANSFER_FLAG).is_none().then(|| topic_type::of_message(&properties));
    Ok(Outgoing {
        properties: property::encode(&properties),
        sys_flag,
        born_timestamp_ms: born_ms,
        body,
        message_id: system.message_id,
        message_group: group.map(str::to_owned),
        kind,
    })
}

/// User properties: at most [`MAX_USER_PROPERTIES`], none of RocketMQ's own keys, no control
/// characters.
fn check_user_properties(message: &Message) -> Result<(), Refusal> {
    if message.user_properties.len() > MAX_USER_PROPERTIES {
        return Err(Refusal::new(
            Code::MessagePropertiesTooLarge,
            format!("a message may carry at most {MAX_USER_PROPERTIES} user properties"),
        ));
    }
    for (key, value) in &message.user_properties {
        if crate::convert::is_reserved(key) {
            return Err(Refusal::new(
                Code::IllegalMessagePropertyKey,
                format!("property '{key}' is reserved for RocketMQ"),
            ));
        }
        if key.is_empty() || has_control(key) || has_control(value) {
            return Err(Refusal::new(
                Code::IllegalMessagePropertyKey,
                format!("property '{key}' holds a control character"),
            ));
        }
    }
    Ok(())
}

/// Whether `text` holds an ISO control character.
fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Epoch milliseconds of a timestamp (saturating).
pub(crate) fn timestamp_ms(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp.seconds.saturating_mul(1_000).saturating_add(i64::from(timestamp.nanos / 1_000_000))
}

/// A body sent as GZIP: gzip data, or zlib data (which the C++ client sends under this label),
/// inflated to at most `limit_bytes`.
fn inflate(body: &[u8], limit_bytes: usize) -> Result<Bytes, Refusal> {
    let corrupt = |error: std::io::Error| {
        Refusal::new(Code::MessageCorrupted, format!("body cannot be inflated: {error}"))
    };
    let cap = u64::try_from(limit_bytes).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    if body.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(body).take(cap).read_to_end(&mut out).map_err(corrupt)?;
    } else {
        flate2::read::ZlibDecoder::new(body).take(cap).read_to_end(&mut out).map_err(corrupt)?;
    }
    if out.len() > limit_bytes {
        return Err(Refusal::new(
            Code::MessageBodyTooLarge,
            format!("message body cannot exceed the max {limit_bytes} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}

/// Guava's `Hashing.consistentHash` of a Java hash code over `buckets` (spec §6.4), which the
/// reference proxy uses to place a message group on a queue.
pub(crate) fn consistent_hash(input: i64, buckets: i32) -> i32 {
    debug_assert!(buckets > 0);
    let mut state = input as u64;
    let mut candidate: i32 = 0;
    loop {
        state = state.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let step = f64::from(((state >> 33) as i32).wrapping_add(1)) / f64::from(1u32 << 31);
        let next = (f64::from(candidate + 1) / step) as i64;
        if (0..i64::from(buckets)).contains(&next) {
            candidate = next as i32;
        } else {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_common::hash::java_string_hash;

    #[test]
    fn consistent_hash_matches_guava() {
        // Guava's own golden values (its HashingTest) for inputs 0..20 over 100 buckets.
        let golden = [0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83];
        let ours: Vec<i32> = (0..20).map(|input| consistent_hash(input, 100)).collect();
        assert_eq!(ours, golden);
        assert_eq!(consistent_hash(10_863_919_174_838_991, 11), 6);
        assert_eq!(consistent_hash(2_016_238_256_797_177_309, 11), 3);
        // Growing the bucket count moves a key only to the new bucket, never between old ones.
        let key = i64::from(java_string_hash("group-a"));
        for buckets in 2..64 {
            let before = consistent_hash(key, buckets - 1);
            let after = consistent_hash(key, buckets);
            assert!(after == before || after == buckets - 1, "{before} -> {after} at {buckets}");
        }
    }
}
