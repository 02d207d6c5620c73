//! One lite pull on the wire: the subscription it carries, the LITE_PULL_MESSAGE request, the
//! reading of the answer (decode, decompress, client-side tag re-filter), and where a queue
//! without a committed offset starts (behaviour spec §4.6, §4.9, §4.14).

use std::time::Duration;

use apogee_common::message::property;
use apogee_common::message::record::decode_all_shared;
use apogee_common::{topic, MessageQueue};
use apogee_remoting::body::enums::{ConsumeFromWhere, ExpressionType};
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_remoting::flags::pull as pull_sys_flag;
use apogee_remoting::header::consumer::{PullMessageRequestHeader, PullMessageResponseHeader};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use crate::admin::requests::{self, answer_header};
use crate::{ClientError, MessageExt};

/// How long the broker may hold a pull that found nothing (Java
/// `brokerSuspendMaxTimeMillis`, 20 s).
pub(crate) const BROKER_SUSPEND_MAX_MS: i64 = 20_000;

/// How long the client waits for the answer of a held pull (Java
/// `consumerTimeoutMillisWhenSuspend`, 30 s); longer than the broker's hold.
pub(crate) const PULL_TIMEOUT_WHEN_SUSPENDED: Duration = Duration::from_secs(30);

/// A TAG subscription as the lite pull consumer sends it (the shared
/// [`build_subscription`](crate::consumer::subscription::build_subscription), blank meaning `*`),
/// stamped with `now_ms` as its version.
pub(crate) fn tag_subscription(
    topic: &str,
    expression: &str,
    now_ms: i64,
) -> Result<SubscriptionData, ClientError> {
    let mut subscription =
        crate::consumer::subscription::build_subscription(topic, expression.trim(), ExpressionType::Tag)?;
    subscription.sub_version = now_ms;
    Ok(subscription)
}

/// The LITE_PULL_MESSAGE (361) request: read up to `max_messages` from `offset`, subscription
/// in the request, broker hold allowed, no offset commit piggybacked (lite pull commits apart).
pub(crate) fn lite_pull_request(
    group: &str,
    queue: &MessageQueue,
    subscription: &SubscriptionData,
    offset: i64,
    max_messages: i32,
) -> RemotingCommand {
    let is_tag = subscription.expression_type == ExpressionType::Tag;
    let header = PullMessageRequestHeader {
        sys_flag: pull_sys_flag::SUSPEND | pull_sys_flag::SUBSCRIPTION | pull_sys_flag::LITE_PULL,
        suspend_timeout_millis: BROKER_SUSPEND_MAX_MS,
        // Java sends version 0 for tag subscriptions: only SQL filters are versioned.
        sub_version: if is_tag { 0 } else { subscription.sub_version },
        ..requests::subscribed_pull_header(group, queue, subscription, offset, max_messages)
    };
    RemotingCommand::request(request_code::LITE_PULL_MESSAGE).with_header(&header)
}

/// What a pull found (Java `PullStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullStatus {
    /// Messages, already re-filtered by tag (possibly none left).
    Found(Vec<MessageExt>),
    /// Nothing after the offset (PULL_NOT_FOUND).
    NoNewMessage,
    /// Entries were read but none matched (PULL_RETRY_IMMEDIATELY).
    NoMatchedMessage,
    /// The offset is outside the queue or was reset (PULL_OFFSET_MOVED).
    OffsetIllegal,
}

/// A pull's answer, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullOutcome {
    /// What was found.
    pub status: PullStatus,
    /// Where to pull next.
    pub next_begin_offset: i64,
    /// The queue's min offset.
    pub min_offset: i64,
    /// The queue's max offset (exclusive).
    pub max_offset: i64,
    /// Broker id to pull from next.
    pub suggest_broker_id: i64,
}

/// Reads the answer to a lite pull sent to `addr`: status by response code, records decoded
/// and inflated, messages whose tag the subscription does not name dropped (the broker filters
/// by hash only), and the queue bounds set as MIN_OFFSET/MAX_OFFSET properties as Java does.
/// Error codes become [`ClientError::Broker`]; an undecodable answer [`ClientError::Malformed`].
pub(crate) fn read_pull_response(
    addr: &str,
    response: RemotingCommand,
    subscription: &SubscriptionData,
) -> Result<PullOutcome, ClientError> {
    let status = match response.code {
        response_code::SUCCESS => PullStatus::Found(Vec::new()),
        response_code::PULL_NOT_FOUND => PullStatus::NoNewMessage,
        response_code::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMessage,
        response_code::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
        _ => return Err(ClientError::from_response(&response, addr)),
    };
    let header: PullMessageResponseHeader = answer_header(addr, &response)?;
    let status = match status {
        PullStatus::Found(_) => {
            let records = decode_all_shared(&response.body)
                .map_err(|error| ClientError::Malformed(format!("pull body from {addr}: {error}")))?;
            let min = header.min_offset.to_string();
            let max = header.max_offset.to_string();
            let messages = records
                .into_iter()
                .filter(|message| crate::consumer::subscription::matches_tags(subscription, message))
                .map(|mut message| {
                    if let Err(error) = message.decompress_body() {
                        tracing::warn!(%error, offset = message.queue_offset, "message body does not inflate; kept as stored");
                    }
                    message.message.properties.insert(property::MIN_OFFSET, min.clone());
                    message.message.properties.insert(property::MAX_OFFSET, max.clone());
                    message
                })
                .collect();
            PullStatus::Found(messages)
        }
        other => other,
    };
    Ok(PullOutcome {
        status,
        next_begin_offset: header.next_begin_offset,
        min_offset: header.min_offset,
        max_offset: header.max_offset,
        suggest_broker_id: header.suggest_which_broker_id,
    })
}

/// Where a queue starts, given the group's committed offset (behaviour spec §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartFrom {
    /// At this offset.
    Offset(i64),
    /// At the queue's max offset (skip history).
    QueueEnd,
    /// At the first message stored at or after this time (ms).
    Time(i64),
}

/// Java `RebalanceLitePullImpl.computePullFromWhere`: a committed offset always wins; without
/// one, LAST (and the deprecated variants) start at the end, except retry topics at 0; FIRST
/// at 0; TIMESTAMP at `timestamp_ms`, except retry topics at the end.
pub(crate) fn start_from(
    committed: Option<i64>,
    policy: ConsumeFromWhere,
    topic_name: &str,
    timestamp_ms: i64,
) -> StartFrom {
    if let Some(offset) = committed.filter(|offset| *offset >= 0) {
        return StartFrom::Offset(offset);
    }
    let retry = topic::is_retry_topic(topic_name);
    match policy {
        ConsumeFromWhere::ConsumeFromFirstOffset => StartFrom::Offset(0),
        ConsumeFromWhere::ConsumeFromTimestamp if retry => StartFrom::QueueEnd,
        ConsumeFromWhere::ConsumeFromTimestamp => StartFrom::Time(timestamp_ms),
        _ if retry => StartFrom::Offset(0),
        _ => StartFrom::QueueEnd,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use apogee_common::message::record::encode;
    use apogee_common::message::{compression, sysflag, CompressionType, Message};
    use bytes::Bytes;

    fn stored(offset: i64, tags: Option<&str>, body: &[u8]) -> MessageExt {
        let mut message = Message::new("T", Bytes::copy_from_slice(body));
        if let Some(tags) = tags {
            message.set_tags(tags);
        }
        MessageExt {
            message,
            queue_id: 1,
            queue_offset: offset,
            born_host: "10.0.0.9:4000".parse::<SocketAddr>().unwrap(),
            store_host: "10.0.0.1:10911".parse::<SocketAddr>().unwrap(),
            commit_log_offset: 1000 + offset,
            ..MessageExt::default()
        }
    }

    fn body_of(messages: &[MessageExt]) -> Bytes {
        let mut out = Vec::new();
        for message in messages {
            encode(message, &mut out).unwrap();
        }
        Bytes::from(out)
    }

    fn found(messages: &[MessageExt]) -> RemotingCommand {
        RemotingCommand::response(0, None)
            .with_ext("suggestWhichBrokerId", "0")
            .with_ext("nextBeginOffset", "13")
            .with_ext("minOffset", "0")
            .with_ext("maxOffset", "20")
            .with_body(body_of(messages))
    }

    #[test]
    fn subscriptions_are_built_like_java() {
        let all = tag_subscription("T", " ", 5).unwrap();
        assert_eq!((all.sub_string.as_str(), all.tags_set.len(), all.sub_version), ("*", 0, 5));
        let tags = tag_subscription("T", "TagA || TagB ||", 5).unwrap();
        assert_eq!(tags.sub_string, "TagA || TagB ||");
        assert_eq!(tags.tags_set.iter().map(String::as_str).collect::<Vec<_>>(), ["TagA", "TagB"]);
        assert!(tags.code_set.contains(&2598919));
        assert!(tag_subscription("T", "||", 5).is_err());
    }

    #[test]
    fn the_request_has_the_lite_pull_flags_and_the_subscription() {
        let queue = MessageQueue::new("T", "broker-a", 2);
        let subscription = tag_subscription("T", "TagA", 99).unwrap();
        let request = lite_pull_request("G", &queue, &subscription, 40, 10);
        assert_eq!(request.code, 361);
        let header: PullMessageRequestHeader = request.decode_header().unwrap();
        assert_eq!(header.sys_flag, 0x16);
        assert_eq!(
            (header.queue_id, header.queue_offset, header.max_msg_nums, header.commit_offset),
            (2, 40, 10, 0)
        );
        assert_eq!(header.suspend_timeout_millis, 20_000);
        assert_eq!(header.subscription.as_deref(), Some("TagA"));
        assert_eq!(header.expression_type.as_deref(), Some("TAG"));
        assert_eq!(header.sub_version, 0);
        assert_eq!(header.bname.as_deref(), Some("broker-a"));
        assert_eq!(header.consumer_group, "G");
    }

    #[test]
    fn found_messages_are_refiltered_and_annotated() {
        let subscription = tag_subscription("T", "TagA", 1).unwrap();
        let messages =
            [stored(10, Some("TagA"), b"a"), stored(11, Some("TagB"), b"b"), stored(12, None, b"c")];
        let outcome = read_pull_response("b:1", found(&messages), &subscription).unwrap();
        let PullStatus::Found(kept) = &outcome.status else { panic!("not found: {outcome:?}") };
        assert_eq!(kept.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), [10]);
        assert_eq!(kept[0].message.property(property::MIN_OFFSET), Some("0"));
        assert_eq!(kept[0].message.property(property::MAX_OFFSET), Some("20"));
        assert_eq!((outcome.next_begin_offset, outcome.min_offset, outcome.max_offset), (13, 0, 20));

        let everything = tag_subscription("T", "*", 1).unwrap();
        let outcome = read_pull_response("b:1", found(&messages), &everything).unwrap();
        assert!(matches!(outcome.status, PullStatus::Found(ref all) if all.len() == 3));
    }

    #[test]
    fn compressed_bodies_are_inflated() {
        let plain = vec![b'x'; 4096];
        let mut message = stored(3, None, b"");
        message.message.body = compression::compress(&plain, CompressionType::Zlib, 5).into();
        message.sys_flag = sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_ZLIB_TYPE;
        let outcome =
            read_pull_response("b:1", found(&[message]), &tag_subscription("T", "*", 1).unwrap()).unwrap();
        let PullStatus::Found(kept) = outcome.status else { panic!("not found") };
        assert_eq!(&kept[0].message.body[..], &plain[..]);
    }

    #[test]
    fn statuses_follow_the_response_code() {
        let all = tag_subscription("T", "*", 1).unwrap();
        let answer = |code: i32| {
            RemotingCommand::response(code, Some("why".into()))
                .with_ext("suggestWhichBrokerId", "1")
                .with_ext("nextBeginOffset", "7")
                .with_ext("minOffset", "0")
                .with_ext("maxOffset", "7")
        };
        let status = |code| read_pull_response("b:1", answer(code), &all).map(|outcome| outcome.status);
        assert_eq!(status(19).ok(), Some(PullStatus::NoNewMessage));
        assert_eq!(status(20).ok(), Some(PullStatus::NoMatchedMessage));
        assert_eq!(status(21).ok(), Some(PullStatus::OffsetIllegal));
        assert!(matches!(status(26), Err(ClientError::Broker { code: 26, .. })));
        let outcome = read_pull_response("b:1", answer(19), &all).unwrap();
        assert_eq!((outcome.next_begin_offset, outcome.suggest_broker_id), (7, 1));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let all = tag_subscription("T", "*", 1).unwrap();
        let mut response = found(&[stored(1, None, b"x")]);
        response.body = Bytes::from_static(b"\x00\x00\x00\x50garbage");
        assert!(matches!(read_pull_response("b:1", response, &all), Err(ClientError::Malformed(_))));
        let headerless = RemotingCommand::response(0, None);
        assert!(matches!(read_pull_response("b:1", headerless, &all), Err(ClientError::Malformed(_))));
    }

    #[test]
    fn start_positions_follow_the_policy() {
        use ConsumeFromWhere::*;
        assert_eq!(start_from(Some(5), ConsumeFromFirstOffset, "T", 0), StartFrom::Offset(5));
        assert_eq!(start_from(None, ConsumeFromLastOffset, "T", 0), StartFrom::QueueEnd);
        assert_eq!(start_from(None, ConsumeFromMaxOffset, "T", 0), StartFrom::QueueEnd);
        assert_eq!(start_from(None, ConsumeFromLastOffset, "%RETRY%G", 0), StartFrom::Offset(0));
        assert_eq!(start_from(None, ConsumeFromFirstOffset, "T", 0), StartFrom::Offset(0));
        assert_eq!(start_from(None, ConsumeFromTimestamp, "T", 77), StartFrom::Time(77));
        assert_eq!(start_from(None, ConsumeFromTimestamp, "%RETRY%G", 77), StartFrom::QueueEnd);
        assert_eq!(start_from(Some(-1), ConsumeFromFirstOffset, "T", 0), StartFrom::Offset(0));
    }
}
