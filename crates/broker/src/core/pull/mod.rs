//! Reading a queue for a consumer (behaviour spec §4.9–§4.10), whatever front it came from.
//!
//! A pull is checked in Java's order (broker readable, group exists and may consume, topic
//! exists and is readable, queue id in range, a usable subscription), then read from the store
//! with a filter on the subscription's tag codes, or, for SQL92 subscriptions when
//! `enablePropertyFilter` is on, on each message's properties ([`PullFilter`]). Every pull
//! records where it ended (the group's pull offset); the first execution of a pull carrying a
//! commit offset also commits the consumer's offset.
//!
//! The messages are never re-encoded: the store's zero-copy slices go to the front's
//! `assemble` function, which runs where the read runs (on the blocking pool when the data is
//! likely not in the page cache), so a front shapes them as its wire wants at no extra cost.
//!
//! A pull that finds nothing new and may be held waits ([`wait_for_arrival`]) until a message
//! arrives in its queue or its hold time ends, then is read once more ([`pull`] does both).

mod filter;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::{perm, topic};
use apogee_remoting::body::enums::{ExpressionType, MessageModel};
use apogee_remoting::code::response_code;
use apogee_store::mapped_file::MappedSlice;
use apogee_store::GetMessageStatus;

pub use self::filter::PullFilter;
use super::caller::Caller;
use super::error::Error;
use crate::long_polling::ParkRefused;
use crate::BrokerState;

/// Longest a pull is held whatever its `suspendTimeoutMillis` says (clients ask 15–30 s), so a
/// peer cannot pin a parked slot for ever.
pub const MAX_HOLD_MS: u64 = 120_000;

/// Remark of the SYSTEM_BUSY answer when too many pulls are held already.
pub const TOO_MANY_HELD_REMARK: &str = "too many pull requests held by the broker, try again later";

/// A consumer's pull, borrowed from the front's decoded request.
#[derive(Debug, Clone, Copy)]
pub struct PullRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic read.
    pub topic: &'a str,
    /// Queue read.
    pub queue_id: i32,
    /// First queue offset wanted.
    pub queue_offset: i64,
    /// Most messages wanted (the store's per-pull budget caps it).
    pub max_msg_nums: i32,
    /// Which subscription filters the messages.
    pub subscription: Subscription<'a>,
    /// The consumer's offset to commit with this pull (the commit-offset flag).
    pub commit_offset: Option<i64>,
    /// Whether the broker may hold the pull until messages arrive (the suspend flag).
    pub suspend: bool,
    /// How long the consumer lets the broker hold it, in ms.
    pub suspend_timeout_ms: i64,
}

/// The subscription a pull is filtered by. It is an expression rather than a compiled filter
/// because Java checks the group, topic and queue before it reads the expression, and its
/// errors depend on where the subscription came from.
#[derive(Debug, Clone, Copy)]
pub enum Subscription<'a> {
    /// Carried by the request (lite pull consumers): the expression and its type.
    Given {
        /// `TAG` or `SQL92`.
        expression_type: &'a ExpressionType,
        /// The expression; absent means everything.
        expression: Option<&'a str>,
    },
    /// The one the group's heartbeat registered, at least at this version.
    Registered {
        /// The consumer's subscription version.
        sub_version: i64,
    },
}

/// How a pull came out, for the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages found.
    Found,
    /// Nothing past the offset yet: the pull may be held (Java `PULL_NOT_FOUND`).
    NoNewMessage,
    /// Messages exist but none matched, or they were being removed: pull again at once
    /// (`PULL_RETRY_IMMEDIATELY`).
    NoMatchedMessage,
    /// The offset is outside the queue (or was reset by an admin): continue from
    /// `next_begin_offset` (`PULL_OFFSET_MOVED`).
    OffsetMoved,
}

/// Why a read came out as it did: the store's status, or a pending admin reset. Its name is
/// Java's `GetMessageStatus` name, which remoting consumers see as the remark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// What the store said.
    Store(GetMessageStatus),
    /// An admin reset the group's offset: the pull is moved there.
    OffsetReset,
}

impl ReadStatus {
    /// Java's name of the status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Store(GetMessageStatus::Found) => "FOUND",
            Self::Store(GetMessageStatus::NoMatchedMessage) => "NO_MATCHED_MESSAGE",
            Self::Store(GetMessageStatus::MessageWasRemoving) => "MESSAGE_WAS_REMOVING",
            Self::Store(GetMessageStatus::OffsetFoundNull) => "OFFSET_FOUND_NULL",
            Self::Store(GetMessageStatus::OffsetOverflowBadly) => "OFFSET_OVERFLOW_BADLY",
            Self::Store(GetMessageStatus::OffsetOverflowOne) => "OFFSET_OVERFLOW_ONE",
            Self::Store(GetMessageStatus::OffsetTooSmall) => "OFFSET_TOO_SMALL",
            Self::Store(GetMessageStatus::NoMatchedLogicQueue) => "NO_MATCHED_LOGIC_QUEUE",
            Self::Store(GetMessageStatus::NoMessageInQueue) => "NO_MESSAGE_IN_QUEUE",
            Self::OffsetReset => "OFFSET_RESET",
        }
    }

    /// The consumer's status of a read at `requested_offset` (the spec's table): an empty or
    /// unknown queue is "moved" unless the consumer asked for offset 0.
    pub fn pull_status(self, requested_offset: i64) -> PullStatus {
        match self {
            Self::Store(GetMessageStatus::Found) => PullStatus::Found,
            Self::Store(GetMessageStatus::MessageWasRemoving | GetMessageStatus::NoMatchedMessage) => {
                PullStatus::NoMatchedMessage
            }
            Self::Store(GetMessageStatus::NoMatchedLogicQueue | GetMessageStatus::NoMessageInQueue) => {
                if requested_offset != 0 {
                    PullStatus::OffsetMoved
                } else {
                    PullStatus::NoNewMessage
                }
            }
            Self::Store(GetMessageStatus::OffsetFoundNull | GetMessageStatus::OffsetOverflowOne) => {
                PullStatus::NoNewMessage
            }
            Self::Store(GetMessageStatus::OffsetOverflowBadly | GetMessageStatus::OffsetTooSmall)
            | Self::OffsetReset => PullStatus::OffsetMoved,
        }
    }
}

/// What a pull read: `M` is the messages as the front's `assemble` shaped them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult<M> {
    /// The consumer's status.
    pub status: PullStatus,
    /// Why (Java's status name).
    pub read_status: ReadStatus,
    /// Where the consumer pulls next.
    pub next_begin_offset: i64,
    /// The queue's first offset.
    pub min_offset: i64,
    /// The queue's next offset to be written.
    pub max_offset: i64,
    /// The broker to pull from next (0, the master: Apogee has no slaves yet).
    pub suggest_broker_id: u64,
    /// The topic's `topicSysFlag`.
    pub topic_sys_flag: i32,
    /// The group's `groupSysFlag`.
    pub group_sys_flag: i32,
    /// The messages read; fronts send them only with [`PullStatus::Found`].
    pub messages: M,
}

/// Why a pull is refused with NO_PERMISSION (Java `ForbiddenType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// The broker is not readable.
    Broker,
    /// The group may not consume.
    Group,
    /// The topic is not readable.
    Topic,
    /// The group may not consume by broadcasting.
    BroadcastingDisabled,
    /// The group is forbidden to read the topic.
    Subscription,
}

/// A refused pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// NO_PERMISSION, with why.
    Forbidden {
        /// What forbids it.
        kind: Forbidden,
        /// Java's remark.
        remark: String,
    },
    /// Any other refusal.
    Failed(Error),
}

impl From<Error> for PullError {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// A refused pull with the forbidden kind.
fn forbidden(kind: Forbidden, remark: String) -> PullError {
    PullError::Forbidden { kind, remark }
}

/// Why a pull could not wait for arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitRefused {
    /// Too many pulls are held: answer SYSTEM_BUSY ([`TOO_MANY_HELD_REMARK`]).
    Full,
    /// The broker is stopping: answer what was read.
    Stopping,
}

/// A pull from start to answer: read; when nothing is new and the pull may be held, wait for
/// a message or the hold time, and read once more. `None` when the session ended while the
/// pull was held (nobody to answer). `assemble` shapes the store's slices (see the module).
pub async fn pull<M, A>(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &PullRequest<'_>,
    assemble: A,
    session_ended: impl Fn() -> bool,
) -> Option<Result<PullResult<M>, PullError>>
where
    A: FnOnce(Vec<MappedSlice>, u64) -> M + Clone + Send + 'static,
    M: Send + 'static,
{
    let first = match read(state, caller, request, true, assemble.clone()).await {
        Ok(result) if result.status == PullStatus::NoNewMessage && request.suspend => result,
        answer => return Some(answer),
    };
    match wait_for_arrival(state, caller, request).await {
        Ok(()) => {}
        Err(WaitRefused::Stopping) => return Some(Ok(first)),
        Err(WaitRefused::Full) => {
            tracing::warn!(remote = %caller.remote_addr, "parked pull limit reached; answering SYSTEM_BUSY");
            return Some(Err(Error::new(response_code::SYSTEM_BUSY, TOO_MANY_HELD_REMARK).into()));
        }
    }
    if session_ended() {
        return None;
    }
    Some(read(state, caller, request, false, assemble).await)
}

/// Holds a pull that found nothing new until a message arrives in its queue, its session
/// ends, or its hold time passes: the consumer's, with long polling on, else
/// `shortPollingTimeMills`, never more than [`MAX_HOLD_MS`]. This is the hook every front's
/// long polling goes through.
pub async fn wait_for_arrival(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &PullRequest<'_>,
) -> Result<(), WaitRefused> {
    let requested_ms = u64::try_from(request.suspend_timeout_ms).unwrap_or(0);
    let hold_ms =
        if state.config.long_polling_enable { requested_ms } else { state.config.short_polling_time_ms };
    let hold = Duration::from_millis(hold_ms.min(MAX_HOLD_MS));
    let mut parked = state
        .pulls
        .park(request.topic, request.queue_id, request.queue_offset, caller.session_id)
        .map_err(|refused| match refused {
            ParkRefused::Full => WaitRefused::Full,
            ParkRefused::Stopping => WaitRefused::Stopping,
        })?;
    // A message stored between the read and the park has already fired its wake-up.
    if state.store.max_offset(request.topic, request.queue_id) <= request.queue_offset {
        parked.woken(hold).await;
    }
    Ok(())
}

/// The checks of behaviour spec §4.9, then one read; `first` is false for the re-run of a
/// held pull (no commit).
pub async fn read<M, A>(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &PullRequest<'_>,
    first: bool,
    assemble: A,
) -> Result<PullResult<M>, PullError>
where
    A: FnOnce(Vec<MappedSlice>, u64) -> M + Send + 'static,
    M: Send + 'static,
{
    let (group, topic, queue_id) = (request.group, request.topic, request.queue_id);
    if !perm::is_readable(state.broker_permission()) {
        let remark = format!("the broker[{}] pulling message is forbidden", state.config.broker_ip1);
        return Err(forbidden(Forbidden::Broker, remark));
    }
    let Some(group_config) = state.groups.get_or_create(group) else {
        return Err(Error::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{group}] does not exist"),
        )
        .into());
    };
    if !group_config.consume_enable {
        return Err(forbidden(Forbidden::Group, format!("subscription group no permission, {group}")));
    }
    let Some(topic_config) = state.topics.get(topic) else {
        tracing::warn!(topic, remote = %caller.remote_addr, "pull from a topic that does not exist");
        return Err(Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        )
        .into());
    };
    if !perm::is_readable(topic_config.perm) {
        return Err(forbidden(Forbidden::Topic, format!("the topic[{topic}] pulling message is forbidden")));
    }
    if queue_id < 0 || queue_id >= topic_config.read_queue_nums {
        let remark = format!(
            "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[{}]",
            topic_config.read_queue_nums, caller.remote_addr
        );
        return Err(Error::new(response_code::INVALID_PARAMETER, remark).into());
    }
    let filter = subscription_filter(state, request, group_config.consume_broadcast_enable)?;

    let reset = state.offsets.take_reset_offset(group, topic, queue_id);
    let (read_status, next_begin_offset, min_offset, max_offset, messages) = match reset {
        Some(offset) => (
            ReadStatus::OffsetReset,
            offset,
            state.store.min_offset(topic, queue_id),
            state.store.max_offset(topic, queue_id),
            assemble(Vec::new(), 0),
        ),
        None => {
            let read = read_store(state, request, filter, assemble).await?;
            // Java's pull counts only what it hands out of ordinary topics.
            if !topic::is_retry_topic(topic) && !topic.starts_with(topic::DLQ_GROUP_TOPIC_PREFIX) {
                state.metrics.handed_out(group, topic, read.message_count, read.total_bytes);
            }
            (read.status, read.next_begin_offset, read.min_offset, read.max_offset, read.messages)
        }
    };
    let status = read_status.pull_status(request.queue_offset);
    if status == PullStatus::OffsetMoved {
        tracing::info!(
            group,
            topic,
            queue_id,
            requested = request.queue_offset,
            corrected = next_begin_offset,
            status = read_status.name(),
            remote = %caller.remote_addr,
            "pull offset corrected"
        );
    }

    state.offsets.record_pull_offset(group, topic, queue_id, next_begin_offset);
    if let Some(commit_offset) = request.commit_offset.filter(|_| first && reset.is_none()) {
        state.offsets.commit(group, topic, queue_id, commit_offset);
    }
    Ok(PullResult {
        status,
        read_status,
        next_begin_offset,
        min_offset,
        max_offset,
        suggest_broker_id: suggest_broker_id(state, &group_config, topic, queue_id, next_begin_offset),
        topic_sys_flag: topic_config.topic_sys_flag,
        group_sys_flag: group_config.group_sys_flag,
        messages,
    })
}

/// Which member of the group the consumer should pull from next (Java `PullMessageProcessor`):
/// with `slaveReadEnable`, a consumer far behind (its data no longer likely in memory) goes to
/// the group's `whichBrokerWhenConsumeSlowly`, others to its `brokerId`; without, the master.
/// A slave sends a consumer that caught up back to its master while the master lives. Unlike
/// Java, a slave serves pulls even without `slaveReadEnable` (Java refuses them as busy): when
/// the master is dead, its slaves are where the messages are.
fn suggest_broker_id(
    state: &BrokerState,
    group: &apogee_remoting::body::admin::SubscriptionGroupConfig,
    topic: &str,
    queue_id: i32,
    next_offset: i64,
) -> u64 {
    const MASTER_ID: u64 = 0;
    let is_slave = state.replication.is_slave();
    // The usual broker (a master without slave reads) answers without looking at the queue.
    if !state.config.slave_read_enable && !is_slave {
        return MASTER_ID;
    }
    let far_behind = !state.store.is_likely_in_memory(topic, queue_id, next_offset);
    if is_slave && !far_behind && state.replication.has_master() {
        return MASTER_ID;
    }
    if !state.config.slave_read_enable {
        return MASTER_ID;
    }
    let suggested = if far_behind { group.which_broker_when_consume_slowly } else { group.broker_id };
    u64::try_from(suggested).unwrap_or(MASTER_ID)
}

/// The refusal of a non-TAG subscription while `enablePropertyFilter` is off.
fn unsupported_filter(expression_type: &ExpressionType) -> Error {
    Error::system(format!(
        "The broker does not support consumer to filter message by {}",
        expression_type.name()
    ))
}

/// SUBSCRIPTION_PARSE_FAILED, for an expression that does not compile.
fn parse_failed() -> Error {
    Error::new(response_code::SUBSCRIPTION_PARSE_FAILED, "parse the consumer's subscription failed")
}

/// The filter of the pull's subscription, with Java's checks and errors.
fn subscription_filter(
    state: &BrokerState,
    request: &PullRequest<'_>,
    consume_broadcast_enable: bool,
) -> Result<PullFilter, PullError> {
    let (group, topic) = (request.group, request.topic);
    let property_filter = state.config.enable_property_filter;
    let sub_version = match request.subscription {
        Subscription::Given { expression_type, expression } => {
            return match expression_type {
                ExpressionType::Tag => {
                    PullFilter::parse_tags(expression).ok_or_else(|| parse_failed().into())
                }
                other if !property_filter => Err(unsupported_filter(other).into()),
                other => PullFilter::compile(other, expression.unwrap_or("")).map_err(|error| {
                    tracing::debug!(group, %error, "unusable SQL92 subscription in a pull");
                    parse_failed().into()
                }),
            };
        }
        Subscription::Registered { sub_version } => sub_version,
    };
    let Some((message_model, subscription)) = state.clients.pull_subscription(group, topic) else {
        return Err(
            Error::new(response_code::SUBSCRIPTION_NOT_EXIST, "the consumer's group info not exist").into()
        );
    };
    if !consume_broadcast_enable && message_model == Some(MessageModel::Broadcasting) {
        let remark = format!("the consumer group[{group}] can not consume by broadcast way");
        return Err(forbidden(Forbidden::BroadcastingDisabled, remark));
    }
    if state.groups.is_read_forbidden(group, topic) {
        let remark = format!("the consumer group[{group}] is forbidden for topic[{topic}]");
        return Err(forbidden(Forbidden::Subscription, remark));
    }
    let Some(subscription) = subscription else {
        return Err(Error::new(
            response_code::SUBSCRIPTION_NOT_EXIST,
            "the consumer's subscription not exist",
        )
        .into());
    };
    if subscription.sub_version < sub_version {
        return Err(Error::new(
            response_code::SUBSCRIPTION_NOT_LATEST,
            "the consumer's subscription not latest",
        )
        .into());
    }
    match &subscription.expression_type {
        ExpressionType::Tag => {
            Ok(PullFilter::from_subscription(&subscription).unwrap_or(PullFilter::Tags(BTreeSet::new())))
        }
        other => {
            let filter = PullFilter::compile(other, &subscription.sub_string).map_err(|_| {
                Error::new(
                    response_code::FILTER_DATA_NOT_EXIST,
                    "The broker's consumer filter data is not exist!Your expression may be wrong!",
                )
            })?;
            if !property_filter {
                return Err(unsupported_filter(other).into());
            }
            Ok(filter)
        }
    }
}

/// What a store read gave, with the messages assembled.
struct StoreRead<M> {
    status: ReadStatus,
    next_begin_offset: i64,
    min_offset: i64,
    max_offset: i64,
    messages: M,
    /// How many messages were read, and their bytes (for the outbound counters).
    message_count: u64,
    total_bytes: u64,
}

/// Reads within the store's per-pull budget (`maxTransferCountOnMessageInMemory`,
/// `maxTransferBytesOnMessageInMemory`) and assembles the messages. Recent data (in the page
/// cache, by the store's estimate) is read right here; older data on the blocking pool, since
/// faulting mapped pages in from disk would stall this worker.
async fn read_store<M, A>(
    state: &Arc<BrokerState>,
    request: &PullRequest<'_>,
    filter: PullFilter,
    assemble: A,
) -> Result<StoreRead<M>, Error>
where
    A: FnOnce(Vec<MappedSlice>, u64) -> M + Send + 'static,
    M: Send + 'static,
{
    let store = Arc::clone(&state.store);
    let (queue_id, offset) = (request.queue_id, request.queue_offset);
    let topic = request.topic.to_owned();
    let store_config = store.config();
    let max_count = u32::try_from(request.max_msg_nums)
        .unwrap_or(0)
        .clamp(1, store_config.max_transfer_count_on_message_in_memory.max(1));
    let max_bytes = store_config.max_transfer_bytes_on_message_in_memory;
    let read = move || {
        let result = store.get_messages(&topic, queue_id, offset, max_count, max_bytes, &filter);
        StoreRead {
            status: ReadStatus::Store(result.status),
            next_begin_offset: result.next_begin_offset,
            min_offset: result.min_offset,
            max_offset: result.max_offset,
            message_count: result.messages.len() as u64,
            total_bytes: result.total_bytes,
            messages: assemble(result.messages, result.total_bytes),
        }
    };
    if state.store.is_likely_in_memory(request.topic, queue_id, offset) {
        return Ok(read());
    }
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|error| Error::system(format!("store getMessage failed: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules() {
        use GetMessageStatus::*;
        let status = |store, offset| ReadStatus::Store(store).pull_status(offset);
        assert_eq!(status(Found, 5), PullStatus::Found);
        assert_eq!(status(NoMatchedMessage, 5), PullStatus::NoMatchedMessage);
        assert_eq!(status(MessageWasRemoving, 5), PullStatus::NoMatchedMessage);
        // An empty or unknown queue: offset 0 waits for the first message, any other moves.
        assert_eq!(status(NoMessageInQueue, 0), PullStatus::NoNewMessage);
        assert_eq!(status(NoMessageInQueue, 3), PullStatus::OffsetMoved);
        assert_eq!(status(NoMatchedLogicQueue, 0), PullStatus::NoNewMessage);
        assert_eq!(status(NoMatchedLogicQueue, 3), PullStatus::OffsetMoved);
        assert_eq!(status(OffsetOverflowOne, 9), PullStatus::NoNewMessage);
        assert_eq!(status(OffsetFoundNull, 9), PullStatus::NoNewMessage);
        assert_eq!(status(OffsetOverflowBadly, 9), PullStatus::OffsetMoved);
        assert_eq!(status(OffsetTooSmall, 0), PullStatus::OffsetMoved);
        assert_eq!(ReadStatus::OffsetReset.pull_status(0), PullStatus::OffsetMoved);
    }

    #[test]
    fn status_names_are_javas() {
        assert_eq!(ReadStatus::Store(GetMessageStatus::OffsetOverflowOne).name(), "OFFSET_OVERFLOW_ONE");
        assert_eq!(ReadStatus::OffsetReset.name(), "OFFSET_RESET");
    }
}
