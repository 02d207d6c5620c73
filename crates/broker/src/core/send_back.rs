//! A consumer hands back a message it failed to consume (behaviour spec §4.13). The broker
//! re-reads the original record by commit-log offset and stores a copy with one more
//! reconsume time either for a later retry — through the delay levels
//! (`SCHEDULE_TOPIC_XXXX`) into `%RETRY%<group>` — or, once the group's retries are used up
//! (or the consumer asks for it with a negative level), into `%DLQ%<group>`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use apogee_common::message::property;
use apogee_common::message::record::RecordView;
use apogee_common::message::MessageExt;
use apogee_common::{perm, topic};
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::code::response_code;
use apogee_store::PutStatus;

use super::blocking;
use super::caller::Caller;
use super::error::{CoreResult, Error};
use super::send::{DLQ_QUEUE_NUMS, MAX_RECONSUME_TIMES_MIN_VERSION};
use crate::message::{self, InnerMessage};
use crate::schedule;
use crate::BrokerState;

/// The first retry waits this level plus the reconsume times so far when the consumer lets
/// the broker choose (level 3 = 10 s with the default levels).
pub const BASE_RETRY_DELAY_LEVEL: i32 = 3;

/// A message handed back, borrowed from the front's request.
#[derive(Debug, Clone, Copy)]
pub struct SendBackRequest<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// Commit-log offset of the original message.
    pub commit_log_offset: i64,
    /// Delay level wanted: 0 lets the broker choose, negative sends to the dead letters.
    pub delay_level: i32,
    /// Redelivery limit overriding the group's (from V3_4_9).
    pub max_reconsume_times: Option<i32>,
    /// The topic the message was consumed from, for the log.
    pub origin_topic: Option<&'a str>,
}

/// What became of a handed-back message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendBack {
    /// A copy is stored for a retry or as a dead letter.
    Stored,
    /// The group wants no retries (no retry queues): the message is dropped.
    Dropped,
}

/// Where a handed-back message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// `%RETRY%<group>` after `level`'s delay.
    Retry { level: i32 },
    /// `%DLQ%<group>`, no delay.
    DeadLetter,
}

/// Chooses retry or dead letter from the original's reconsume times (Java compares with
/// `≥`), the group's (or the header's) limit and the requested level.
fn destination(reconsume_times: i32, max_reconsume_times: i32, requested_level: i32) -> Destination {
    if reconsume_times >= max_reconsume_times || requested_level < 0 {
        Destination::DeadLetter
    } else if requested_level == 0 {
        Destination::Retry { level: BASE_RETRY_DELAY_LEVEL.saturating_add(reconsume_times) }
    } else {
        Destination::Retry { level: requested_level }
    }
}

/// Stores a copy of a message a consumer failed to consume: for a later retry, or in the
/// group's dead-letter topic.
pub async fn send_back(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendBackRequest<'_>,
) -> CoreResult<SendBack> {
    let group_name = request.group.to_owned();
    let group = find_group(state, &group_name).await?.ok_or_else(|| {
        Error::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group_name}"),
        )
    })?;
    if !perm::is_writeable(state.broker_permission()) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the broker[{}] sending message is forbidden", state.config.broker_ip1),
        ));
    }
    if group.retry_queue_nums <= 0 {
        // The group wants no retries: the message is dropped.
        return Ok(SendBack::Dropped);
    }

    let retry_topic = topic::retry_topic(&group_name);
    let retry_config = system_topic(state, &retry_topic, group.retry_queue_nums).await?;
    if !perm::is_writeable(retry_config.perm) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the topic[{retry_topic}] sending message is forbidden"),
        ));
    }

    let offset = request.commit_log_offset;
    let original = blocking(state, move |state| look_message(state, offset))
        .await?
        .ok_or_else(|| Error::system(format!("look message by offset failed, {offset}")))?;

    let mut max_reconsume_times = group.retry_max_times;
    if caller.version >= MAX_RECONSUME_TIMES_MIN_VERSION {
        if let Some(times) = request.max_reconsume_times {
            max_reconsume_times = times;
        }
    }
    let mut copy = InnerMessage::from_ext(&original);
    copy.reconsume_times = original.reconsume_times.saturating_add(1);
    let properties = &mut copy.properties;
    if !properties.contains_key(property::RETRY_TOPIC) {
        properties.insert(property::RETRY_TOPIC, original.message.topic.clone());
    }
    if !matches!(properties.get(property::ORIGIN_MESSAGE_ID), Some(id) if !id.trim().is_empty()) {
        // Java puts the id its broker-side decode gives the original: the offset id.
        properties.insert(property::ORIGIN_MESSAGE_ID, original.offset_msg_id());
    }
    properties.insert(property::WAIT, "false");

    match destination(original.reconsume_times, max_reconsume_times, request.delay_level) {
        Destination::DeadLetter => {
            let dlq_topic = topic::dlq_topic(&group_name);
            system_topic(state, &dlq_topic, DLQ_QUEUE_NUMS).await?;
            copy.topic = dlq_topic;
            copy.queue_id = random_below(DLQ_QUEUE_NUMS);
            copy.properties.insert(property::DELAY, "0");
            state.metrics.dead_lettered(&group_name, request.origin_topic.unwrap_or(&original.message.topic));
            tracing::info!(
                group = %group_name,
                origin_topic = request.origin_topic.unwrap_or(""),
                uniq_key = copy.properties.get(property::UNIQ_KEY).unwrap_or(""),
                reconsume_times = original.reconsume_times,
                "message sent to the dead-letter queue"
            );
        }
        Destination::Retry { level } => {
            copy.topic = retry_topic;
            copy.queue_id = random_below(group.retry_queue_nums);
            schedule::redirect_to_schedule_topic(&mut copy, level, state.schedule.max_level());
        }
    }

    let result = message::put_message(state, &copy, false).await;
    if result.status.is_stored() {
        Ok(SendBack::Stored)
    } else {
        Err(Error::system(put_status_name(result.status)))
    }
}

/// The group, auto-created when allowed (which may write the groups file, so off the async
/// workers).
async fn find_group(state: &Arc<BrokerState>, group: &str) -> CoreResult<Option<SubscriptionGroupConfig>> {
    if let Some(config) = state.groups.get(group) {
        return Ok(Some(config));
    }
    let group = group.to_owned();
    blocking(state, move |state| state.groups.get_or_create(&group)).await
}

/// A retry or dead-letter topic with `queue_nums` queues, read-write, created if missing.
async fn system_topic(
    state: &Arc<BrokerState>,
    name: &str,
    queue_nums: i32,
) -> CoreResult<apogee_common::TopicConfig> {
    if let Some(config) = state.topics.get(name) {
        return Ok(config);
    }
    let owned = name.to_owned();
    blocking(state, move |state| state.topics.get_or_create_system(&owned, queue_nums, perm::READ_WRITE))
        .await?
        .map_err(|error| {
            tracing::error!(topic = name, %error, "could not create topic for a sent-back message");
            Error::system(format!("topic[{name}] not exist"))
        })
}

/// The record at commit-log `offset`, decoded (Java `lookMessageByOffset`).
fn look_message(state: &BrokerState, offset: i64) -> Option<MessageExt> {
    let record = state.store.message_at(u64::try_from(offset).ok()?)?;
    RecordView::parse(record.as_slice(), false).ok().map(|view| view.to_message_ext())
}

/// A random queue id in `0..count` (0 when `count` ≤ 1).
fn random_below(count: i32) -> i32 {
    let Ok(count) = u64::try_from(count) else { return 0 };
    if count <= 1 {
        return 0;
    }
    let random = RandomState::new().hash_one(std::time::Instant::now());
    // The result is below `count`, which came from an i32.
    (random % count) as i32
}

/// Java's `PutMessageStatus` name, the remark of a failed send-back.
fn put_status_name(status: PutStatus) -> &'static str {
    match status {
        PutStatus::PutOk => "PUT_OK",
        PutStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        PutStatus::ServiceNotAvailable => "SERVICE_NOT_AVAILABLE",
        PutStatus::MessageIllegal => "MESSAGE_ILLEGAL",
        PutStatus::PropertiesSizeExceeded => "PROPERTIES_SIZE_EXCEEDED",
        PutStatus::CreateMappedFileFailed => "CREATE_MAPPED_FILE_FAILED",
        PutStatus::OsPageCacheBusy => "OS_PAGE_CACHE_BUSY",
        PutStatus::UnknownError => "UNKNOWN_ERROR",
        PutStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        PutStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        PutStatus::InSyncReplicasNotEnough => "IN_SYNC_REPLICAS_NOT_ENOUGH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_or_dead_letter() {
        assert_eq!(destination(0, 16, 0), Destination::Retry { level: 3 });
        assert_eq!(destination(5, 16, 0), Destination::Retry { level: 8 });
        assert_eq!(destination(5, 16, 2), Destination::Retry { level: 2 });
        assert_eq!(destination(16, 16, 0), Destination::DeadLetter);
        assert_eq!(destination(0, 16, -1), Destination::DeadLetter);
        assert_eq!(destination(0, 0, 0), Destination::DeadLetter);
    }

    #[test]
    fn random_queue_stays_in_range() {
        assert_eq!(random_below(0), 0);
        assert_eq!(random_below(1), 0);
        assert!((0..100).all(|_| (0..3).contains(&random_below(3))));
    }
}
