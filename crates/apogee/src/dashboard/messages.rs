//! The messages page: messages of a topic found by id (queryMsgById, with the consumption
//! track of each group), by key (queryMsgByKey) or by store time (admin pulls over every
//! queue from SEARCH_OFFSET_BY_TIMESTAMP, as rocketmq-dashboard's page by topic).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use apogee_client::admin::TOOLS_CONSUMER_GROUP;
use apogee_client::{Admin, MessageExt};
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::api::{answer, required, time_param, topic_param, Answer};
use super::Ctx;
use crate::admin::call;
use crate::admin::inspect::{self, Track};

/// Most messages one listing returns (mqadmin queryMsgByKey's default `maxNum`).
pub const MAX_MESSAGES: usize = 64;

/// Widest store-time range one listing reads: 31 days.
pub const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;

/// Most body bytes shown in a listing; the detail view (by id) shows up to
/// [`MAX_DETAIL_BODY_BYTES`].
const MAX_LIST_BODY_BYTES: usize = 256;

/// Most body bytes shown for one message.
const MAX_DETAIL_BODY_BYTES: usize = 64 * 1024;

/// One message as the pages show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageView {
    /// The client's unique key (`UNIQ_KEY`), else the offset id.
    pub msg_id: String,
    /// The broker's offset id (store host and commit-log offset).
    pub offset_msg_id: String,
    pub topic: String,
    pub tags: String,
    pub keys: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub reconsume_times: i32,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub born_host: String,
    pub store_host: String,
    pub properties: BTreeMap<String, String>,
    /// The body as UTF-8 (invalid sequences replaced), cut at the page's limit.
    pub body: String,
    pub body_bytes: usize,
    /// True when `body` is cut.
    pub body_truncated: bool,
}

impl MessageView {
    /// The view of `message` with at most `max_body_bytes` of its body.
    pub(super) fn of(message: &MessageExt, max_body_bytes: usize) -> Self {
        let body = &message.message.body;
        let shown = &body[..body.len().min(max_body_bytes)];
        MessageView {
            msg_id: message.msg_id(),
            offset_msg_id: message.offset_msg_id(),
            topic: message.message.topic.clone(),
            tags: message.message.tags().unwrap_or("").to_owned(),
            keys: message.message.keys().collect::<Vec<_>>().join(" "),
            queue_id: message.queue_id,
            queue_offset: message.queue_offset,
            commit_log_offset: message.commit_log_offset,
            reconsume_times: message.reconsume_times,
            born_timestamp: message.born_timestamp,
            store_timestamp: message.store_timestamp,
            born_host: message.born_host.to_string(),
            store_host: message.store_host.to_string(),
            properties: message
                .message
                .properties
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            body: String::from_utf8_lossy(shown).into_owned(),
            body_bytes: body.len(),
            body_truncated: shown.len() < body.len(),
        }
    }

    /// The listing view of `message` (a short body).
    pub(super) fn listed(message: &MessageExt) -> Self {
        Self::of(message, MAX_LIST_BODY_BYTES)
    }
}

/// A listing of messages.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageList {
    pub messages: Vec<MessageView>,
    /// True when [`MAX_MESSAGES`] were found and more may match.
    pub truncated: bool,
}

/// What one consumer group did with the message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TrackView {
    consumer_group: String,
    track_type: Track,
}

/// One message with its whole body and its track.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageDetail {
    message: MessageView,
    /// Empty when no group consumes the topic.
    tracks: Vec<TrackView>,
    /// Why the track is missing, when it could not be read.
    track_error: Option<String>,
}

/// `?topic=…&id=…&key=…&begin=…&end=…` (epoch ms).
#[derive(Debug, Deserialize)]
pub(super) struct MessageQuery {
    topic: Option<String>,
    id: Option<String>,
    key: Option<String>,
    begin: Option<String>,
    end: Option<String>,
}

/// `GET /api/messages/by-id?topic=…&id=…`.
pub(super) async fn by_id(State(ctx): State<Arc<Ctx>>, Query(query): Query<MessageQuery>) -> Answer {
    answer(&ctx, "message by id", read_by_id(&ctx.admin, &query)).await
}

async fn read_by_id(admin: &Admin, query: &MessageQuery) -> Result<MessageDetail> {
    let topic = topic_param(&query.topic)?;
    let id = required(&query.id, "message id")?;
    let message = inspect::message_by_id(admin, topic, id).await?;
    let (tracks, track_error) = match inspect::message_track(admin, &message).await {
        Ok(tracks) => (
            tracks
                .into_iter()
                .map(|(consumer_group, track_type)| TrackView { consumer_group, track_type })
                .collect(),
            None,
        ),
        Err(error) => (Vec::new(), Some(format!("{error:#}"))),
    };
    Ok(MessageDetail { message: MessageView::of(&message, MAX_DETAIL_BODY_BYTES), tracks, track_error })
}

/// `GET /api/messages/by-key?topic=…&key=…[&begin=…&end=…]`.
pub(super) async fn by_key(State(ctx): State<Arc<Ctx>>, Query(query): Query<MessageQuery>) -> Answer {
    answer(&ctx, "messages by key", read_by_key(&ctx.admin, &query)).await
}

async fn read_by_key(admin: &Admin, query: &MessageQuery) -> Result<MessageList> {
    let topic = topic_param(&query.topic)?;
    let key = required(&query.key, "key")?;
    let begin = time_param(&query.begin, "begin")?.unwrap_or(0);
    let end = time_param(&query.end, "end")?.unwrap_or(i64::MAX);
    let max = i32::try_from(MAX_MESSAGES).unwrap_or(i32::MAX);
    let found = call(
        admin.query_messages_by_key(topic, key, max, begin, end),
        format!("QUERY_MESSAGE (12) of key {key} in {topic}"),
    )
    .await?;
    let truncated = found.messages.len() >= MAX_MESSAGES;
    let mut messages: Vec<MessageView> =
        found.messages.iter().take(MAX_MESSAGES).map(MessageView::listed).collect();
    messages.sort_by_key(|message| message.store_timestamp);
    Ok(MessageList { messages, truncated })
}

/// `GET /api/messages/by-time?topic=…&begin=…&end=…`.
pub(super) async fn by_time(State(ctx): State<Arc<Ctx>>, Query(query): Query<MessageQuery>) -> Answer {
    answer(&ctx, "messages by time", read_by_time(&ctx.admin, &query)).await
}

async fn read_by_time(admin: &Admin, query: &MessageQuery) -> Result<MessageList> {
    let topic = topic_param(&query.topic)?;
    let now_ms = apogee_common::time::now_ms();
    let end = time_param(&query.end, "end")?.unwrap_or(now_ms);
    let begin = time_param(&query.begin, "begin")?.unwrap_or(end.saturating_sub(3_600_000));
    in_time_range(admin, topic, begin, end).await
}

/// The first [`MAX_MESSAGES`] messages of `topic` stored in `[begin_ms, end_ms)`, read queue
/// by queue from the offset of `begin_ms`, sorted by store time. The range may not be wider
/// than [`MAX_RANGE_MS`].
pub(super) async fn in_time_range(
    admin: &Admin,
    topic: &str,
    begin_ms: i64,
    end_ms: i64,
) -> Result<MessageList> {
    if begin_ms >= end_ms {
        bail!("the begin time must be before the end time");
    }
    if end_ms.saturating_sub(begin_ms) > MAX_RANGE_MS {
        bail!("the time range is wider than {} days", MAX_RANGE_MS / (24 * 3_600_000));
    }
    let queues = call(admin.read_queues(topic), format!("GET_ROUTEINFO_BY_TOPIC (105) of {topic}")).await?;
    let mut found = Vec::new();
    let mut truncated = false;
    for queue in &queues {
        let wanted = MAX_MESSAGES - found.len();
        if wanted == 0 {
            truncated = true;
            break;
        }
        let range = inspect::offset_range(admin, queue, Some(begin_ms), None).await?;
        let read = inspect::read_queue(admin, TOOLS_CONSUMER_GROUP, queue, "*", range, wanted, |message| {
            if (begin_ms..end_ms).contains(&message.store_timestamp) {
                found.push(MessageView::listed(message));
            }
        })
        .await?;
        truncated |= read.visited == wanted && read.next_offset < range.1;
    }
    found.sort_by_key(|message| message.store_timestamp);
    Ok(MessageList { messages: found, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_cuts_the_body_at_its_limit_and_reads_it_as_utf8() {
        let message = MessageExt {
            message: apogee_client::Message::new("T", "héllo wörld".as_bytes().to_vec())
                .with_keys(["a", "b"]),
            ..MessageExt::default()
        };
        let whole = MessageView::of(&message, MAX_DETAIL_BODY_BYTES);
        assert_eq!((whole.body.as_str(), whole.body_bytes, whole.body_truncated), ("héllo wörld", 13, false));
        assert_eq!(whole.keys, "a b");
        // Cut inside "é": the broken sequence is shown replaced, never a panic.
        let cut = MessageView::of(&message, 2);
        assert_eq!((cut.body.as_str(), cut.body_bytes, cut.body_truncated), ("h\u{fffd}", 13, true));
    }
}
