//! An admin's reset of a consumer group's offsets on a topic (INVOKE_BROKER_TO_RESET_OFFSET,
//! behaviour spec §9), in the two ways Java's broker does it:
//!
//! - server side (`useServerSideResetOffset`, the 5.x default): the new offsets are committed
//!   and kept as pending resets; the group's next pull of each queue is answered
//!   PULL_OFFSET_MOVED to it, and the group's offset commits for the queue are ignored until
//!   then, so a consumer that is online moves without being told;
//! - client side (the 4.x way): only offsets behind the group's (or all, when forced) move, and
//!   every online member of the group is told with RESET_CONSUMER_CLIENT_OFFSET; without one
//!   online the reset is refused (CONSUMER_NOT_ONLINE), and admin tools then commit directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use apogee_common::queue::MessageQueue;
use apogee_remoting::body::ResetOffsetBody;
use apogee_remoting::code::response_code;
use apogee_store::BoundaryType;

use super::blocking;
use super::caller::Caller;
use super::error::{CoreResult, Error};
use crate::client_manager::ResetNotice;
use crate::BrokerState;

/// What an admin asks to reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetRequest<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// The topic whose queues move.
    pub topic: &'a str,
    /// One queue (server side only); `None` or negative: every queue.
    pub queue_id: Option<i32>,
    /// Exact offset for the one queue (server side only); `None` or -1: by time.
    pub offset: Option<i64>,
    /// Store time whose first message becomes the group's next; negative: the queue's end.
    pub timestamp_ms: i64,
    /// Client side: move offsets forward too, not only back.
    pub force: bool,
}

/// Resets the group's offsets and answers the new offset of every queue moved.
pub async fn reset(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: ResetRequest<'_>,
) -> CoreResult<ResetOffsetBody> {
    tracing::info!(
        group = request.group,
        topic = request.topic,
        timestamp_ms = request.timestamp_ms,
        force = request.force,
        remote = %caller.remote_addr,
        "offset reset asked"
    );
    if state.config.use_server_side_reset_offset {
        reset_on_server(state, request).await
    } else {
        reset_by_clients(state, request).await
    }
}

/// Java `resetOffsetInner`: commit and keep pending for the next pull.
async fn reset_on_server(state: &Arc<BrokerState>, request: ResetRequest<'_>) -> CoreResult<ResetOffsetBody> {
    let ResetRequest { group, topic, .. } = request;
    let Some(config) = state.topics.get(topic) else {
        return Err(Error::new(response_code::TOPIC_NOT_EXIST, format!("Topic {topic} does not exist")));
    };
    if !state.groups.contains(group) {
        return Err(Error::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("Group {group} does not exist"),
        ));
    }
    let mut targets = BTreeMap::new();
    match request.queue_id.filter(|queue_id| *queue_id >= 0) {
        Some(queue_id) => {
            let target = match request.offset.filter(|offset| *offset != -1) {
                Some(offset) => checked_target(state, topic, queue_id, offset)?,
                None => offset_at_time(state, topic, queue_id, request.timestamp_ms).await?,
            };
            targets.insert(queue_id, target);
        }
        None => {
            for queue_id in 0..config.read_queue_nums {
                targets.insert(queue_id, offset_at_time(state, topic, queue_id, request.timestamp_ms).await?);
            }
        }
    }
    if targets.is_empty() {
        return Err(Error::system("No queues to reset."));
    }
    for (queue_id, offset) in &targets {
        state.offsets.assign_reset_offset(group, topic, *queue_id, *offset);
    }
    let body = offset_body(state, topic, targets);
    tracing::info!(
        group,
        topic,
        queues = body.offset_table.len(),
        "offsets reset; the next pulls move there"
    );
    Ok(body)
}

/// An exact target of one queue, which must lie in the queue or at its end.
fn checked_target(state: &BrokerState, topic: &str, queue_id: i32, offset: i64) -> CoreResult<i64> {
    let min = state.store.min_offset(topic, queue_id);
    let max = state.store.max_offset(topic, queue_id);
    if (min >= 0 && offset < min) || offset > max + 1 {
        return Err(Error::system(format!(
            "Target offset {offset} not in consume queue range [{min}-{max}]"
        )));
    }
    Ok(offset)
}

/// Java `Broker2Client.resetOffset`: move the offsets behind (or all when forced) and tell
/// every online member of the group.
async fn reset_by_clients(
    state: &Arc<BrokerState>,
    request: ResetRequest<'_>,
) -> CoreResult<ResetOffsetBody> {
    let ResetRequest { group, topic, timestamp_ms, force, .. } = request;
    let Some(config) = state.topics.get(topic) else {
        return Err(Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("[reset-offset] reset offset failed, no topic in this broker. topic={topic}"),
        ));
    };
    let mut targets = BTreeMap::new();
    for queue_id in 0..config.write_queue_nums {
        let Some(committed) = state.offsets.query(group, topic, queue_id) else {
            return Err(Error::system(format!("The consumer group <{group}> not exist")));
        };
        let at_time = offset_at_time(state, topic, queue_id, timestamp_ms).await?.max(0);
        targets.insert(queue_id, if force || at_time < committed { at_time } else { committed });
    }
    let body = offset_body(state, topic, targets);
    match state.clients.notify_offsets_reset(group, topic, timestamp_ms, &body).await {
        ResetNotice::Sent { consumers } => {
            tracing::info!(group, topic, consumers, "offsets reset; the group's consumers were told");
            Ok(body)
        }
        ResetNotice::NotOnline => Err(Error::new(
            response_code::CONSUMER_NOT_ONLINE,
            format!(
                "Consumer not online, so can not reset offset, Group: {group} Topic: {topic} Timestamp: {timestamp_ms}"
            ),
        )),
        ResetNotice::ClientTooOld { version } => {
            Err(Error::system(format!("the client does not support this feature. version={version}")))
        }
        ResetNotice::Unencodable(error) => Err(Error::system(format!("reset offsets cannot be encoded: {error}"))),
    }
}

/// The queue's offset at `timestamp_ms` (its first message stored then or later); a negative
/// time is the queue's end.
async fn offset_at_time(
    state: &Arc<BrokerState>,
    topic: &str,
    queue_id: i32,
    timestamp_ms: i64,
) -> CoreResult<i64> {
    if timestamp_ms < 0 {
        return Ok(state.store.max_offset(topic, queue_id));
    }
    let topic = topic.to_owned();
    blocking(state, move |state| {
        state.store.offset_by_time(&topic, queue_id, timestamp_ms, BoundaryType::Lower)
    })
    .await
}

/// The answer (and the notification) body: queue → new offset, on this broker.
fn offset_body(state: &BrokerState, topic: &str, targets: BTreeMap<i32, i64>) -> ResetOffsetBody {
    let broker_name = &state.config.broker_name;
    ResetOffsetBody {
        offset_table: targets
            .into_iter()
            .map(|(queue_id, offset)| (MessageQueue::new(topic, broker_name.as_str(), queue_id), offset))
            .collect(),
    }
}
