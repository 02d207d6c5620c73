//! Request–reply (Java's `DefaultMQProducer.request`, RocketMQ 4.6+): the requester sends a
//! message marked with a correlation id and its own client id, and waits; whoever consumes it
//! answers with [`create_reply_message`] and a producer's `send`, which goes out as
//! SEND_REPLY_MESSAGE_V2 to the cluster's reply topic. The broker pushes the reply to the
//! requester's connection (PUSH_REPLY_MESSAGE_TO_CLIENT), and [`answer_push`] hands it to the
//! waiting [`Producer::request`] by correlation id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::{compression, property, sysflag, Message, MessageExt};
use apogee_common::time::now_ms;
use apogee_remoting::code::response_code;
use apogee_remoting::header::send::ReplyMessageRequestHeader;
use apogee_remoting::RemotingCommand;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{random_u32, Producer};
use crate::ClientError;

/// `MSG_TYPE` of a reply: its send goes out as SEND_REPLY_MESSAGE.
pub const REPLY_MESSAGE_TYPE: &str = "reply";
/// Suffix of the reply topic of a cluster, `<cluster>_REPLY_TOPIC`.
pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";
/// Requests of one client instance waiting for their reply at once; more are refused rather
/// than held without bound.
pub const MAX_PENDING_REQUESTS: usize = 10_000;

/// The requests of an instance waiting for a reply, by correlation id.
pub(crate) type ReplyTable = Arc<Mutex<HashMap<String, oneshot::Sender<MessageExt>>>>;

/// A request's place in the [`ReplyTable`], given up when the wait ends however it ends.
struct Waiting<'a> {
    table: &'a ReplyTable,
    correlation_id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.table.lock().remove(&self.correlation_id);
    }
}

impl Producer {
    /// Sends `message` as a request and waits up to `timeout` for its reply (Java's
    /// `request(msg, timeout)`): the message gets `CORRELATION_ID`, `REPLY_TO_CLIENT` (this
    /// instance) and `TTL`, and the reply is the message the responder sent with
    /// [`create_reply_message`]. A reply that does not come in time is a
    /// [`ClientError::Timeout`].
    pub async fn request(&self, mut message: Message, timeout: Duration) -> Result<MessageExt, ClientError> {
        let started = Instant::now();
        self.check_running()?;
        let instance = self.instance();
        let correlation_id = new_correlation_id();
        message.properties.insert(property::CORRELATION_ID, correlation_id.as_str());
        message.properties.insert(property::REPLY_TO_CLIENT, instance.client_id());
        message.properties.insert(property::TTL, timeout.as_millis().to_string());
        // The broker finds this instance among the producers that heartbeat to it: make sure
        // the brokers of a topic not sent to before know it (Java heartbeats here as well).
        // A topic the broker creates on first send borrows the template's route here, as the
        // send itself will; a topic with no route at all fails in the send below.
        if instance.cached_topic_route(&message.topic).is_none()
            && self.publish_queues(&message.topic).await.is_ok()
        {
            instance.send_heartbeat_to_all_brokers().await;
        }
        let (sender, receiver) = oneshot::channel();
        let table = instance.reply_table();
        {
            let mut pending = table.lock();
            if pending.len() >= MAX_PENDING_REQUESTS {
                return Err(ClientError::TooManyRequests { limit: MAX_PENDING_REQUESTS });
            }
            pending.insert(correlation_id.clone(), sender);
        }
        let _waiting = Waiting { table, correlation_id };
        let timed_out = || ClientError::Timeout { operation: "request".into(), timeout_ms: millis(timeout) };
        let sent = self.send_with_timeout(message, timeout).await?;
        tracing::debug!(msg_id = %sent.msg_id, "request sent, waiting for its reply");
        let left = timeout.checked_sub(started.elapsed()).ok_or_else(timed_out)?;
        match tokio::time::timeout(left, receiver).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ClientError::ShutDown),
            Err(_) => Err(timed_out()),
        }
    }
}

/// The reply to `request` carrying `body` (Java's `MessageUtil.createReplyMessage`): for the
/// reply topic of the request's cluster, with the request's correlation id, requester and
/// time-to-live. Fails when the request names no cluster (it was not a request stored by a
/// broker).
pub fn create_reply_message(request: &MessageExt, body: impl Into<Bytes>) -> Result<Message, ClientError> {
    let properties = &request.message.properties;
    let Some(cluster) = properties.get(property::CLUSTER) else {
        return Err(ClientError::IllegalArgument(format!(
            "create reply message fail, requestMessage error, property[{}] is null.",
            property::CLUSTER
        )));
    };
    let mut reply = Message::new(format!("{cluster}{REPLY_TOPIC_SUFFIX}"), body);
    reply.properties.insert(property::MSG_TYPE, REPLY_MESSAGE_TYPE);
    for key in [property::CORRELATION_ID, property::REPLY_TO_CLIENT, property::TTL] {
        if let Some(value) = properties.get(key) {
            reply.properties.insert(key, value);
        }
    }
    Ok(reply)
}

/// Whether `message` is a reply, sent with SEND_REPLY_MESSAGE.
pub fn is_reply(message: &Message) -> bool {
    message.property(property::MSG_TYPE) == Some(REPLY_MESSAGE_TYPE)
}

/// Takes a reply the broker pushed (PUSH_REPLY_MESSAGE_TO_CLIENT) to the request waiting for
/// it; answers SUCCESS once the reply was read, whether or not a request still waits (Java
/// logs a reply that matches none).
pub(crate) fn answer_push(table: &ReplyTable, push: &RemotingCommand) -> RemotingCommand {
    let reply = match reply_of(push) {
        Ok(reply) => reply,
        Err(error) => {
            tracing::warn!(%error, "reply not read");
            return RemotingCommand::response(
                response_code::SYSTEM_ERROR,
                Some("process reply message fail".into()),
            );
        }
    };
    let correlation_id = reply.message.property(property::CORRELATION_ID).unwrap_or_default().to_owned();
    match table.lock().remove(&correlation_id) {
        Some(waiting) => {
            let _ = waiting.send(reply);
        }
        None => {
            tracing::warn!(%correlation_id, born_host = %reply.born_host, "a reply matches no waiting request")
        }
    }
    RemotingCommand::response(response_code::SUCCESS, None)
}

/// The reply message a push carries.
fn reply_of(push: &RemotingCommand) -> Result<MessageExt, String> {
    let header: ReplyMessageRequestHeader = push.decode_header().map_err(|error| error.to_string())?;
    let mut body = push.body.clone();
    if header.sys_flag & sysflag::COMPRESSED_FLAG != 0 {
        body = compression::decompress(&body, header.sys_flag).map_err(|error| error.to_string())?.into();
    }
    let mut properties = header.properties.as_deref().map(property::decode).unwrap_or_default();
    properties.insert(property::ARRIVE_TIME, now_ms().to_string());
    let mut reply = MessageExt {
        message: Message { topic: header.topic, flag: header.flag, properties, body },
        queue_id: header.queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        store_timestamp: header.store_timestamp,
        reconsume_times: header.reconsume_times.unwrap_or(0),
        ..MessageExt::default()
    };
    if let Ok(addr) = header.born_host.parse::<SocketAddr>() {
        reply.born_host = addr;
    }
    if let Ok(addr) = header.store_host.parse::<SocketAddr>() {
        reply.store_host = addr;
    }
    Ok(reply)
}

/// A random id in the form of Java's `UUID.randomUUID()`, which `CorrelationIdUtil` uses.
fn new_correlation_id() -> String {
    let high = u64::from(random_u32()) << 32 | u64::from(random_u32());
    let low = u64::from(random_u32()) << 32 | u64::from(random_u32());
    // Version 4, variant 10xx.
    let high = (high & !0xF000) | 0x4000;
    let low = (low & !(0xC << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_look_like_java_uuids_and_differ() {
        let first = new_correlation_id();
        let second = new_correlation_id();
        assert_ne!(first, second);
        let groups: Vec<&str> = first.split('-').collect();
        assert_eq!(groups.iter().map(|group| group.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'), "version 4: {first}");
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "IETF variant: {first}");
    }

    #[test]
    fn a_reply_goes_to_the_cluster_reply_topic_with_the_request_marks() {
        let mut request = MessageExt::default();
        for (key, value) in [
            (property::CLUSTER, "DefaultCluster"),
            (property::CORRELATION_ID, "c-1"),
            (property::REPLY_TO_CLIENT, "10.0.0.1@requester"),
            (property::TTL, "3000"),
            (property::TAGS, "not copied"),
        ] {
            request.message.properties.insert(key, value);
        }
        let reply = create_reply_message(&request, &b"answer"[..]).unwrap();
        assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
        assert_eq!(&reply.body[..], b"answer");
        assert!(is_reply(&reply));
        assert_eq!(reply.property(property::CORRELATION_ID), Some("c-1"));
        assert_eq!(reply.property(property::REPLY_TO_CLIENT), Some("10.0.0.1@requester"));
        assert_eq!(reply.property(property::TTL), Some("3000"));
        assert_eq!(reply.property(property::TAGS), None);
    }

    #[test]
    fn a_request_without_cluster_cannot_be_answered() {
        let error = create_reply_message(&MessageExt::default(), &b"x"[..]).unwrap_err();
        assert!(error.to_string().contains("property[CLUSTER] is null"), "{error}");
    }
}
