//! POP_MESSAGE (behaviour spec §8.4): checks in Java's order, then up to `maxMsgNums`
//! messages from the pop retry topic and the topic's queues, then, when nothing was found,
//! a wait for arrivals until the poll time ends.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::property;
use apogee_common::message::record::{self, RecordView};
use apogee_common::perm;
use apogee_common::time::now_ms;
use apogee_common::topic::is_retry_topic;
use apogee_remoting::body::enums::ExpressionType;
use apogee_remoting::code::response_code;
use apogee_store::{GetMessageResult, GetMessageStatus};
use bytes::Bytes;

use super::records::{self, CheckPoint};
use super::{
    check_topic_and_group, park, poll_duration, retry_topic, INIT_MODE_MIN, MAX_POP_MESSAGES,
    ORDER_REVIVE_QUEUE,
};
use crate::core::caller::Caller;
use crate::core::error::{CoreResult, Error};
use crate::core::pull::PullFilter;
use crate::long_polling::ParkRefused;
use crate::message;
use crate::BrokerState;
use apogee_remoting::receipt::{ExtraInfo, OffsetInfo};

/// A pop as the consumer asked for it.
#[derive(Debug, Clone, Copy)]
pub struct PopRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Queue, or -1 for every queue starting at a random one.
    pub queue_id: i32,
    /// Most messages wanted (≤ 32).
    pub max_msg_nums: i32,
    /// How long the messages stay invisible, in ms.
    pub invisible_ms: i64,
    /// How long to wait for a message when there is none, in ms (0: answer at once).
    pub poll_ms: i64,
    /// Start of a group without an offset: 0 the first message, otherwise the last one.
    pub init_mode: i32,
    /// `TAG` or `SQL92` (absent: TAG).
    pub expression_type: Option<&'a str>,
    /// The filter (absent or empty: everything).
    pub expression: Option<&'a str>,
    /// Orderly pop.
    pub order: bool,
    /// Attempt id of an orderly receive.
    pub attempt_id: Option<&'a str>,
}

/// How a pop came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopStatus {
    /// Messages found (SUCCESS).
    Found,
    /// Nothing within the poll time (POLLING_TIMEOUT).
    PollingTimeout,
    /// Nothing, and too many pops wait already to wait for one (POLLING_FULL).
    PollingFull,
}

/// What a pop answers.
#[derive(Debug, Clone)]
pub struct PopResult {
    /// The outcome.
    pub status: PopStatus,
    /// Pop time, epoch ms.
    pub pop_time_ms: i64,
    /// Invisible time granted, in ms.
    pub invisible_ms: i64,
    /// The revive queue of the pop's check points (999 for orderly pops).
    pub revive_qid: i32,
    /// Messages left behind in the queues read.
    pub rest_num: i64,
    /// The per-queue lists clients build receipt handles from.
    pub info: OffsetInfo,
    /// The stored records handed out, in the order read (PULL's wire format).
    pub records: Vec<Bytes>,
}

impl PopResult {
    /// The remark: Java's store status name, `FOUND` with messages, else
    /// `NO_MESSAGE_IN_QUEUE` (what Java sets when it answers without messages).
    pub fn remark(&self) -> &'static str {
        match self.status {
            PopStatus::Found => "FOUND",
            _ => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// A pop from start to answer: read, and when nothing was found, wait for arrivals (woken by
/// the store, at most the poll time) and read again.
pub async fn pop(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &PopRequest<'_>,
) -> CoreResult<PopResult> {
    let plan = check(state, caller, request)?;
    let poll = poll_duration(request.poll_ms);
    let deadline = tokio::time::Instant::now() + poll;
    let retry = retry_topic(request.topic, request.group);
    loop {
        let result = pop_once(state, request, &plan).await?;
        if result.status == PopStatus::Found {
            return Ok(result);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(result);
        }
        match park(state, request.topic, &retry, request.queue_id) {
            Ok(mut parked) => {
                // A message stored between the read and the park has already fired its
                // wake-up; the next read finds it after a short wait at most.
                let wait =
                    (deadline - now).min(Duration::from_millis(state.config.pop.revive_interval_ms.max(200)));
                parked.woken(wait).await;
            }
            Err(ParkRefused::Full) => {
                tracing::warn!(remote = %caller.remote_addr, "parked pop limit reached; answering POLLING_FULL");
                return Ok(PopResult { status: PopStatus::PollingFull, ..result });
            }
            Err(ParkRefused::Stopping) => return Ok(result),
        }
    }
}

/// What the checks settled: the filter and the topic's queue count.
struct Plan {
    filter: PullFilter,
    read_queue_nums: i32,
}

/// Java's checks, in its order, with its codes and remarks.
fn check(state: &BrokerState, caller: &Caller, request: &PopRequest<'_>) -> CoreResult<Plan> {
    let broker_ip = state.config.broker_ip1;
    if !perm::is_readable(state.broker_permission()) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the broker[{broker_ip}] pop message is forbidden"),
        ));
    }
    if request.max_msg_nums > MAX_POP_MESSAGES {
        return Err(Error::invalid(format!("the broker[{broker_ip}] pop message's num is greater than 32")));
    }
    let (group, topic) = (request.group, request.topic);
    let read_queue_nums = check_topic_and_group(
        state,
        group,
        topic,
        request.queue_id,
        Some(caller.remote_addr),
    )
    .inspect_err(|error| {
        if error.code == response_code::TOPIC_NOT_EXIST {
            tracing::warn!(topic, remote = %caller.remote_addr, "pop from a topic that does not exist");
        }
    })?;
    Ok(Plan { filter: filter(state, request)?, read_queue_nums })
}

/// The filter of the pop's expression (TAG, or SQL92 when `enablePropertyFilter` is on).
fn filter(state: &BrokerState, request: &PopRequest<'_>) -> CoreResult<PullFilter> {
    let parse_failed =
        || Error::new(response_code::SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed");
    let Some(expression) = request.expression.filter(|expression| !expression.is_empty()) else {
        return Ok(PullFilter::All);
    };
    let expression_type = ExpressionType::from_name(request.expression_type.unwrap_or("TAG"));
    match expression_type {
        ExpressionType::Tag => PullFilter::parse_tags(Some(expression)).ok_or_else(parse_failed),
        other if !state.config.enable_property_filter => Err(Error::system(format!(
            "The broker does not support consumer to filter message by {}",
            other.name()
        ))),
        other => PullFilter::compile(&other, expression).map_err(|_| parse_failed()),
    }
}

/// Where one pop stands while it goes from queue to queue.
struct Gathered {
    pop_time_ms: i64,
    revive_qid: i32,
    rest_num: i64,
    info: OffsetInfo,
    records: Vec<Bytes>,
}

/// One pass over the queues: the pop retry topic first for `popFromRetryProbability` percent
/// of pops, else after the topic when the batch is not full (never for orderly pops).
async fn pop_once(state: &Arc<BrokerState>, request: &PopRequest<'_>, plan: &Plan) -> CoreResult<PopResult> {
    let random = random_below(100);
    let revive_qid = if request.order {
        ORDER_REVIVE_QUEUE
    } else {
        let queues = u64::try_from(state.config.pop.revive_queue_num.max(1)).unwrap_or(1);
        i32::try_from(state.pop.pops.fetch_add(1, Ordering::Relaxed) % queues).unwrap_or(0)
    };
    let mut gathered = Gathered {
        pop_time_ms: now_ms(),
        revive_qid,
        rest_num: 0,
        info: OffsetInfo::default(),
        records: Vec::new(),
    };
    let retry_first = random < u64::from(state.config.pop.pop_from_retry_probability);
    let retry = retry_topic(request.topic, request.group);
    if retry_first && !request.order {
        pop_topic(state, request, plan, &retry, true, random, &mut gathered).await?;
    }
    if request.queue_id < 0 {
        pop_topic(state, request, plan, request.topic, false, random, &mut gathered).await?;
    } else {
        pop_queue(state, request, plan, request.topic, false, request.queue_id, &mut gathered).await?;
    }
    if !retry_first && !request.order && wanted(request, &gathered) > 0 {
        pop_topic(state, request, plan, &retry, true, random, &mut gathered).await?;
    }
    let status = if gathered.records.is_empty() { PopStatus::PollingTimeout } else { PopStatus::Found };
    Ok(PopResult {
        status,
        pop_time_ms: gathered.pop_time_ms,
        invisible_ms: request.invisible_ms,
        revive_qid: gathered.revive_qid,
        rest_num: gathered.rest_num,
        info: gathered.info,
        records: gathered.records,
    })
}

/// Messages still wanted.
fn wanted(request: &PopRequest<'_>, gathered: &Gathered) -> u32 {
    let max = u32::try_from(request.max_msg_nums.max(1)).unwrap_or(1);
    max.saturating_sub(u32::try_from(gathered.records.len()).unwrap_or(u32::MAX))
}

/// Every queue of `topic`, starting at `random` modulo the queue count.
#[allow(clippy::too_many_arguments)]
async fn pop_topic(
    state: &Arc<BrokerState>,
    request: &PopRequest<'_>,
    plan: &Plan,
    topic: &str,
    is_retry: bool,
    random: u64,
    gathered: &mut Gathered,
) -> CoreResult<()> {
    let queue_nums = if is_retry {
        match state.topics.get(topic) {
            Some(config) => config.read_queue_nums,
            None => return Ok(()),
        }
    } else {
        plan.read_queue_nums
    };
    let Ok(count) = u64::try_from(queue_nums) else { return Ok(()) };
    for step in 0..count {
        let queue_id = i32::try_from((random + step) % count).unwrap_or(0);
        pop_queue(state, request, plan, topic, is_retry, queue_id, gathered).await?;
    }
    Ok(())
}

/// Pops one queue: under its lock, from the group's offset, as many messages as are still
/// wanted; a check point is stored before the offset moves past them.
#[allow(clippy::too_many_arguments)]
async fn pop_queue(
    state: &Arc<BrokerState>,
    request: &PopRequest<'_>,
    plan: &Plan,
    topic: &str,
    is_retry: bool,
    queue_id: i32,
    gathered: &mut Gathered,
) -> CoreResult<()> {
    let group = request.group;
    let Some(_guard) = state.pop.try_lock(topic, group, queue_id) else {
        // Another pop of this queue runs: its messages are not ours to count twice.
        return Ok(());
    };
    let start = pop_offset(state, topic, group, queue_id, request.init_mode);
    if request.order && state.pop.order.is_blocked(topic, group, queue_id, request.attempt_id, now_ms()) {
        return Ok(());
    }
    let wanted = wanted(request, gathered);
    if wanted == 0 {
        gathered.rest_num += state.store.max_offset(topic, queue_id) - start;
        return Ok(());
    }
    let mut read = read_queue(state, topic, queue_id, start, wanted, &plan.filter).await?;
    let mut start = start;
    if matches!(
        read.status,
        GetMessageStatus::OffsetTooSmall
            | GetMessageStatus::OffsetOverflowBadly
            | GetMessageStatus::OffsetFoundNull
    ) {
        tracing::warn!(
            topic,
            group,
            queue_id,
            from = start,
            to = read.next_begin_offset,
            "pop offset corrected"
        );
        state.offsets.commit(group, topic, queue_id, read.next_begin_offset);
        start = read.next_begin_offset;
        read = read_queue(state, topic, queue_id, start, wanted, &plan.filter).await?;
    }
    if read.messages.is_empty() {
        let skipped = matches!(
            read.status,
            GetMessageStatus::NoMatchedMessage
                | GetMessageStatus::OffsetFoundNull
                | GetMessageStatus::MessageWasRemoving
                | GetMessageStatus::NoMatchedLogicQueue
        );
        if skipped && read.next_begin_offset > start {
            // Nothing here passes the filter: the group moves past it.
            state.offsets.commit(group, topic, queue_id, read.next_begin_offset);
        }
        gathered.rest_num += read.max_offset - read.next_begin_offset;
        return Ok(());
    }

    if request.order {
        state.pop.order.record_pop(
            topic,
            group,
            queue_id,
            request.attempt_id,
            gathered.pop_time_ms,
            request.invisible_ms,
            &read.queue_offsets,
            &mut gathered.info,
        );
        state.offsets.commit(group, topic, queue_id, start);
    } else {
        let ck = CheckPoint {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            start_offset: start,
            offset_diffs: read
                .queue_offsets
                .iter()
                .map(|offset| i32::try_from(offset - start).unwrap_or(i32::MAX))
                .collect(),
            num: i32::try_from(read.queue_offsets.len()).unwrap_or(0),
            pop_time_ms: gathered.pop_time_ms,
            invisible_ms: request.invisible_ms,
            broker_name: Some(state.config.broker_name.clone()),
            ..CheckPoint::default()
        };
        let stored =
            message::put_message(state, &records::check_point_record(state, &ck, gathered.revive_qid), false)
                .await;
        if !stored.status.is_stored() {
            // Without its check point nothing may be handed out: the messages stay where they
            // are for the next pop.
            tracing::warn!(topic, group, queue_id, status = ?stored.status, "pop check point not stored; nothing popped");
            gathered.rest_num += read.max_offset - start;
            return Ok(());
        }
        state.offsets.commit(group, topic, queue_id, read.next_begin_offset);
    }
    gathered.info.add_queue(topic, queue_id, start, &read.queue_offsets);
    gathered.rest_num += read.max_offset - read.next_begin_offset;
    let shared = ExtraInfo {
        ck_start_offset: start,
        pop_time_ms: gathered.pop_time_ms,
        invisible_ms: request.invisible_ms,
        revive_qid: gathered.revive_qid,
        retry_flag: apogee_remoting::receipt::retry_flag(topic).to_owned(),
        broker_name: state.config.broker_name.clone(),
        queue_id,
        queue_offset: None,
    };
    for slice in read.messages {
        if !is_retry {
            gathered.records.push(slice.into_bytes());
            continue;
        }
        match as_original_topic(request.topic, &shared, slice.as_slice()) {
            Ok(record) => gathered.records.push(record),
            // Its check point is stored: the message comes back after the invisible time.
            Err(error) => tracing::error!(topic, queue_id, %error, "retry message left out of a pop"),
        }
    }
    Ok(())
}

/// A message of the pop retry topic as the consumer gets it (Java rewrites it): the
/// consumed topic's name, and its receipt handle in `POP_CK` (the pieces of `shared` and its
/// own offset), since the client cannot tell from the topic that it came from the retry
/// topic.
fn as_original_topic(consumed_topic: &str, shared: &ExtraInfo, stored: &[u8]) -> Result<Bytes, String> {
    let view = RecordView::parse(stored, false).map_err(|error| format!("unreadable: {error}"))?;
    let mut ext = view.to_message_ext();
    if !ext.message.properties.contains_key(property::POP_CK) {
        let handle = ExtraInfo { queue_offset: Some(ext.queue_offset), ..shared.clone() };
        ext.message.properties.insert(property::POP_CK, handle.to_text());
    }
    ext.message.topic = consumed_topic.to_owned();
    let mut out = Vec::new();
    record::encode(&ext, &mut out).map_err(|error| format!("not re-encoded: {error}"))?;
    Ok(Bytes::from(out))
}

/// The offset a pop of the queue starts at: an admin's pending reset, else the committed
/// offset, else the start `initMode` picks (committed at once, as Java does).
fn pop_offset(state: &BrokerState, topic: &str, group: &str, queue_id: i32, init_mode: i32) -> i64 {
    if let Some(reset) = state.offsets.take_reset_offset(group, topic, queue_id) {
        state.pop.order.clear(topic, group, queue_id);
        state.offsets.commit(group, topic, queue_id, reset);
        return reset;
    }
    if let Some(offset) = state.offsets.query(group, topic, queue_id).filter(|offset| *offset >= 0) {
        return offset;
    }
    let offset = if init_mode == INIT_MODE_MIN || is_retry_topic(topic) {
        state.store.min_offset(topic, queue_id)
    } else {
        // Java pops the last message a new group finds, then goes on from there.
        (state.store.max_offset(topic, queue_id) - 1).max(0)
    };
    state.offsets.commit(group, topic, queue_id, offset);
    offset
}

/// Reads a queue with the store's per-pull budget; data likely not in the page cache is read
/// on the blocking pool.
async fn read_queue(
    state: &Arc<BrokerState>,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max_count: u32,
    filter: &PullFilter,
) -> CoreResult<GetMessageResult> {
    let max_bytes = state.store.config().max_transfer_bytes_on_message_in_memory;
    if state.store.is_likely_in_memory(topic, queue_id, offset) {
        return Ok(state.store.get_messages(topic, queue_id, offset, max_count, max_bytes, filter));
    }
    let (store, topic, filter) = (Arc::clone(&state.store), topic.to_owned(), filter.clone());
    tokio::task::spawn_blocking(move || {
        store.get_messages(&topic, queue_id, offset, max_count, max_bytes, &filter)
    })
    .await
    .map_err(|error| Error::system(format!("pop read failed: {error}")))
}

/// A number below `bound` that differs from pop to pop (which queue to start at, and whether
/// to read the retry topic first).
fn random_below(bound: u64) -> u64 {
    RandomState::new().hash_one(std::time::Instant::now()) % bound.max(1)
}
