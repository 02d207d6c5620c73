//! The dead-letter page: the groups with a dead-letter topic (`%DLQ%<group>`), the messages
//! of one, and their resend.
//!
//! A resend sends a copy of the dead message (body, tags, keys and user properties) to its
//! original topic — named by the `RETRY_TOPIC` property the broker sets when a consumer sends
//! a message back — with producer group `ReSendMsgById`, as mqadmin's `queryMsgById -s` does.
//! rocketmq-dashboard instead asks a live client of the group to consume the message directly
//! (CONSUME_MESSAGE_DIRECTLY), which needs that client online; a copy on the original topic
//! reaches the group whenever it runs, against Apogee and Apache RocketMQ alike. The dead
//! message itself stays where it is (a commit log is not edited).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use apogee_client::{ClientError, Message, Producer};
use apogee_common::message::property;
use apogee_common::topic;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::api::{answer, required, time_param, Answer};
use super::messages::{in_time_range, MessageList, MAX_RANGE_MS};
use super::Ctx;
use crate::admin::inspect;
use crate::admin::{call, describe};

/// Producer group of resends (mqadmin's `queryMsgById -s`).
const RESEND_PRODUCER_GROUP: &str = "ReSendMsgById";

/// Send timeout of a resend (Java's producer default).
const RESEND_TIMEOUT: Duration = Duration::from_secs(3);

/// The groups that have a dead-letter topic.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DlqGroups {
    groups: Vec<String>,
}

/// `GET /api/dlq/groups`.
pub(super) async fn groups(State(ctx): State<Arc<Ctx>>) -> Answer {
    answer(&ctx, "dead-letter topics", read_groups(&ctx)).await
}

async fn read_groups(ctx: &Ctx) -> Result<DlqGroups> {
    let names = inspect::topic_list(&ctx.admin, &ctx.namesrv).await?;
    let groups = names
        .topic_list
        .iter()
        .filter_map(|name| name.strip_prefix(topic::DLQ_GROUP_TOPIC_PREFIX).map(str::to_owned))
        .collect();
    Ok(DlqGroups { groups })
}

/// `?group=…&begin=…&end=…` (epoch ms; the last [`MAX_RANGE_MS`] without).
#[derive(Debug, Deserialize)]
pub(super) struct DlqQuery {
    group: Option<String>,
    begin: Option<String>,
    end: Option<String>,
}

/// `GET /api/dlq?group=…`: the dead messages of a group; none when it has no dead-letter topic.
pub(super) async fn list(State(ctx): State<Arc<Ctx>>, Query(query): Query<DlqQuery>) -> Answer {
    answer(&ctx, "dead-letter messages", read_list(&ctx, &query)).await
}

async fn read_list(ctx: &Ctx, query: &DlqQuery) -> Result<MessageList> {
    let group = required(&query.group, "group")?;
    let dlq = topic::dlq_topic(group);
    let end =
        time_param(&query.end, "end")?.unwrap_or_else(|| apogee_common::time::now_ms().saturating_add(1));
    let begin = time_param(&query.begin, "begin")?.unwrap_or(end.saturating_sub(MAX_RANGE_MS));
    match ctx.admin.topic_route(&dlq).await {
        Ok(_) => {}
        Err(ClientError::NoRoute { .. }) => {
            return Ok(MessageList { messages: Vec::new(), truncated: false })
        }
        Err(error) => bail!("GET_ROUTEINFO_BY_TOPIC (105) of {dlq} failed: {}", describe(&error)),
    }
    in_time_range(&ctx.admin, &dlq, begin, end).await
}

/// The body of `POST /api/dlq/resend`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResendRequest {
    group: Option<String>,
    /// The dead message's offset id.
    offset_msg_id: Option<String>,
}

/// What a resend did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Resent {
    /// The original topic the copy went to.
    topic: String,
    /// The copy's id.
    msg_id: String,
    broker_name: String,
    queue_id: i32,
    queue_offset: i64,
}

/// `POST /api/dlq/resend` with `{"group":…,"offsetMsgId":…}`.
pub(super) async fn resend(State(ctx): State<Arc<Ctx>>, Json(request): Json<ResendRequest>) -> Answer {
    answer(&ctx, "resend", send_again(&ctx, &request)).await
}

async fn send_again(ctx: &Ctx, request: &ResendRequest) -> Result<Resent> {
    let group = required(&request.group, "group")?;
    let id = required(&request.offset_msg_id, "offset message id")?;
    let dlq = topic::dlq_topic(group);
    let dead = call(ctx.admin.view_message(id), format!("VIEW_MESSAGE_BY_ID (33) of {id}")).await?;
    if dead.message.topic != dlq {
        bail!("message {id} is in {}, not in {dlq}", dead.message.topic);
    }
    let Some(original) = dead.message.property(property::RETRY_TOPIC).map(str::to_owned) else {
        bail!("message {id} does not name its original topic (no {} property)", property::RETRY_TOPIC);
    };
    let mut copy = Message::new(original.as_str(), dead.message.body.clone());
    for (key, value) in dead.message.properties.iter() {
        let kept = key == property::TAGS || key == property::KEYS || !apogee_grpc::convert::is_reserved(key);
        if kept {
            copy.properties.insert(key, value);
        }
    }
    copy.properties.insert(property::ORIGIN_MESSAGE_ID, dead.msg_id());
    let producer = ctx
        .resend_producer
        .get_or_try_init(|| async {
            Producer::builder()
                .namesrv(ctx.namesrv.clone())
                .instance_name(format!("dashboard-resend-{}", std::process::id()))
                .group(RESEND_PRODUCER_GROUP)
                .send_timeout(RESEND_TIMEOUT)
                .start()
                .await
                .map_err(|error| anyhow!("starting the resend producer: {}", describe(&error)))
        })
        .await?;
    let sent = call(producer.send(copy), format!("SEND_MESSAGE_V2 (310) of {id} to {original}")).await?;
    Ok(Resent {
        topic: original,
        msg_id: sent.msg_id,
        broker_name: sent.queue.broker_name,
        queue_id: sent.queue.queue_id,
        queue_offset: sent.queue_offset,
    })
}
