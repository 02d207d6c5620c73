//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361): reading a queue for a consumer (spec §3.4,
//! behaviour spec §4.9–§4.10).
//!
//! A pull is checked in Java's order (broker readable, group exists and may consume, topic
//! exists and is readable, queue id in range, a usable subscription), then read from the store
//! with a filter on the subscription's tag codes, or, for SQL92 subscriptions when
//! `enablePropertyFilter` is on, on each message's properties ([`apogee_filter::sql`]). The store status
//! becomes the response code by
//! the spec's table; the body is the matching stored records, concatenated. Every pull records
//! where it ended (the group's pull offset); the first execution of a pull carrying the
//! commit-offset flag also commits the consumer's offset.
//!
//! A pull that finds nothing new and carries the suspend flag is held (see
//! [`crate::long_polling`]) until a message arrives in its queue or its hold time ends, then read
//! once more and answered.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::record::RecordView;
use apogee_common::perm;
use apogee_filter::sql::Selector;
use apogee_filter::tags::TagExpression;
use apogee_remoting::body::enums::{ExpressionType, MessageModel};
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_remoting::connection::Connection;
use apogee_remoting::flags::pull as pull_sys_flag;
use apogee_remoting::header::consumer::{PullMessageRequestHeader, PullMessageResponseHeader};
use apogee_remoting::reply::{self, Failure};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_store::{GetMessageStatus, MessageFilter};
use bytes::{Bytes, BytesMut};

use super::route;
use crate::long_polling::ParkRefused;
use crate::BrokerState;

/// Java `ForbiddenType` values, set in the response header with NO_PERMISSION.
pub mod forbidden_type {
    /// The broker is not readable.
    pub const BROKER: i32 = 1;
    /// The group may not consume.
    pub const GROUP: i32 = 2;
    /// The topic is not readable.
    pub const TOPIC: i32 = 3;
    /// The group may not consume by broadcasting.
    pub const BROADCASTING_DISABLED: i32 = 4;
    /// The group is forbidden to read the topic.
    pub const SUBSCRIPTION: i32 = 5;
}

/// Longest a pull is held whatever its `suspendTimeoutMillis` says (clients ask 15–30 s), so a
/// peer cannot pin a parked slot for ever.
pub const MAX_HOLD_MS: u64 = 120_000;

/// Remark of the SYSTEM_BUSY answer when too many pulls are held already.
pub const TOO_MANY_HELD_REMARK: &str = "too many pull requests held by the broker, try again later";

/// Adds PULL_MESSAGE and LITE_PULL_MESSAGE to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::PULL_MESSAGE, state, handle);
    route(router, request_code::LITE_PULL_MESSAGE, state, handle);
}

/// What a pull's subscription lets through, built from its expression.
#[derive(Debug, Clone, PartialEq)]
pub enum PullFilter {
    /// `*` (or empty): everything.
    All,
    /// Messages whose consume-queue tag code is one of these (Java `String.hashCode` of the
    /// tags); no tags means nothing matches, as in Java.
    Tags(BTreeSet<i32>),
    /// Messages whose properties satisfy an SQL92 selector.
    Sql(Box<Selector>),
}

impl PullFilter {
    /// Parses a tag expression the way Java's `FilterAPI` does: `*` or empty is everything,
    /// otherwise tags split on `||` and trimmed. `None` when the text is nothing but
    /// separators (Java's "subString split error").
    pub fn parse_tags(expression: Option<&str>) -> Option<Self> {
        match TagExpression::parse(expression.unwrap_or("")).ok()? {
            TagExpression::All => Some(Self::All),
            TagExpression::Tags(tags) => Some(Self::Tags(tags.codes().collect())),
        }
    }

    /// The filter of a registered subscription. Codes are recomputed from the expression rather
    /// than taken from the client's `codeSet`, which old C++ clients fill with `atoi(tag)`.
    pub fn from_subscription(subscription: &SubscriptionData) -> Option<Self> {
        Self::parse_tags(Some(&subscription.sub_string))
    }
}

impl MessageFilter for PullFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        match self {
            Self::All | Self::Sql(_) => true,
            // Java compares the code's int value: truncation is intended.
            Self::Tags(codes) => codes.contains(&(tags_code as i32)),
        }
    }

    fn matches_record(&self, record: &[u8]) -> bool {
        match self {
            Self::Sql(selector) => match RecordView::parse(record, false) {
                Ok(view) => selector.matches(&|name: &str| view.property(name)),
                Err(_) => false,
            },
            Self::All | Self::Tags(_) => true,
        }
    }
}

/// The request parts a pull needs, decoded once.
struct PullRequest<'a> {
    request: &'a RemotingCommand,
    header: PullMessageRequestHeader,
    remote: std::net::SocketAddr,
}

/// What one execution of a pull produced.
enum Pulled {
    /// The response to send.
    Answer(RemotingCommand),
    /// Nothing new and the pull may be held: hold it (the response is what to send if it
    /// cannot be held).
    Hold(RemotingCommand),
}

async fn handle(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let header = match reply::header::<PullMessageRequestHeader>(&request) {
        Ok(header) => header,
        Err(failure) => return Some(failure.into_response(&request)),
    };
    let pull = PullRequest { request: &request, header, remote: connection.remote_addr() };
    let not_found = match execute(&state, &pull, true).await {
        Pulled::Answer(response) => return Some(response),
        Pulled::Hold(response) => response,
    };
    let header = &pull.header;
    let requested_ms = u64::try_from(header.suspend_timeout_millis).unwrap_or(0);
    let hold_ms =
        if state.config.long_polling_enable { requested_ms } else { state.config.short_polling_time_ms };
    let hold = Duration::from_millis(hold_ms.min(MAX_HOLD_MS));
    match state.pulls.park(&header.topic, header.queue_id, header.queue_offset, connection.id()) {
        Ok(mut parked) => {
            // A message stored between the read and the park has already fired its wake-up.
            if state.store.max_offset(&header.topic, header.queue_id) <= header.queue_offset {
                parked.woken(hold).await;
            }
        }
        Err(ParkRefused::Stopping) => return Some(not_found),
        Err(ParkRefused::Full) => {
            tracing::warn!(remote = %pull.remote, "parked pull limit reached; answering SYSTEM_BUSY");
            return Some(RemotingCommand::respond_to(
                &request,
                response_code::SYSTEM_BUSY,
                Some(TOO_MANY_HELD_REMARK.into()),
            ));
        }
    }
    if connection.is_closed() {
        return None;
    }
    match execute(&state, &pull, false).await {
        Pulled::Answer(response) | Pulled::Hold(response) => Some(response),
    }
}

/// Runs a pull once; `first` is false for the re-run of a held pull (no commit, no holding).
async fn execute(state: &Arc<BrokerState>, pull: &PullRequest<'_>, first: bool) -> Pulled {
    match read(state, pull, first).await {
        Ok(pulled) => pulled,
        Err(failure) => Pulled::Answer(failure.into_response(pull.request)),
    }
}

/// The refusal of a non-TAG subscription while `enablePropertyFilter` is off.
fn unsupported_filter(expression_type: &ExpressionType) -> Failure {
    Failure::system(format!(
        "The broker does not support consumer to filter message by {}",
        expression_type.name()
    ))
}

/// Compiles a non-TAG subscription; only SQL92 is known.
pub(crate) fn compile_selector(
    expression_type: &ExpressionType,
    expression: &str,
) -> Result<PullFilter, String> {
    if *expression_type != ExpressionType::Sql92 {
        return Err(format!("unsupported expression type {}", expression_type.name()));
    }
    if expression.trim().is_empty() {
        return Err(format!("Expression can't be null! {}", expression_type.name()));
    }
    Selector::compile(expression)
        .map(|selector| PullFilter::Sql(Box::new(selector)))
        .map_err(|error| error.to_string())
}

/// A NO_PERMISSION answer with the forbidden type set, as Java gives it.
fn forbidden(pull: &PullRequest<'_>, remark: String, kind: i32) -> Pulled {
    let response = RemotingCommand::respond_to(pull.request, response_code::NO_PERMISSION, Some(remark))
        .with_ext("forbiddenType", kind.to_string());
    Pulled::Answer(response)
}

/// The checks of behaviour spec §4.9, then the read.
async fn read(state: &Arc<BrokerState>, pull: &PullRequest<'_>, first: bool) -> Result<Pulled, Failure> {
    let header = &pull.header;
    let (group, topic, queue_id) = (header.consumer_group.as_str(), header.topic.as_str(), header.queue_id);
    if !perm::is_readable(state.config.broker_permission) {
        let remark = format!("the broker[{}] pulling message is forbidden", state.config.broker_ip1);
        return Ok(forbidden(pull, remark, forbidden_type::BROKER));
    }
    let Some(group_config) = state.groups.get_or_create(group) else {
        return Err(Failure::new(
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{group}] does not exist"),
        ));
    };
    if !group_config.consume_enable {
        return Ok(forbidden(
            pull,
            format!("subscription group no permission, {group}"),
            forbidden_type::GROUP,
        ));
    }
    let Some(topic_config) = state.topics.get(topic) else {
        tracing::warn!(topic, remote = %pull.remote, "pull from a topic that does not exist");
        return Err(Failure::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        ));
    };
    if !perm::is_readable(topic_config.perm) {
        return Ok(forbidden(
            pull,
            format!("the topic[{topic}] pulling message is forbidden"),
            forbidden_type::TOPIC,
        ));
    }
    if queue_id < 0 || queue_id >= topic_config.read_queue_nums {
        let remark = format!(
            "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[{}]",
            topic_config.read_queue_nums, pull.remote
        );
        return Err(Failure::new(response_code::INVALID_PARAMETER, remark));
    }

    let property_filter = state.config.enable_property_filter;
    let filter = if header.sys_flag & pull_sys_flag::SUBSCRIPTION != 0 {
        let expression = header.subscription.as_deref();
        match ExpressionType::from_name(header.expression_type.as_deref().unwrap_or("")) {
            ExpressionType::Tag => PullFilter::parse_tags(expression).ok_or_else(|| {
                Failure::new(
                    response_code::SUBSCRIPTION_PARSE_FAILED,
                    "parse the consumer's subscription failed",
                )
            })?,
            other if !property_filter => return Err(unsupported_filter(&other)),
            other => compile_selector(&other, expression.unwrap_or("")).map_err(|error| {
                tracing::debug!(group, %error, "unusable SQL92 subscription in a pull");
                Failure::new(
                    response_code::SUBSCRIPTION_PARSE_FAILED,
                    "parse the consumer's subscription failed",
                )
            })?,
        }
    } else {
        let Some((message_model, subscription)) = state.clients.pull_subscription(group, topic) else {
            return Err(Failure::new(
                response_code::SUBSCRIPTION_NOT_EXIST,
                "the consumer's group info not exist",
            ));
        };
        if !group_config.consume_broadcast_enable && message_model == Some(MessageModel::Broadcasting) {
            let remark = format!("the consumer group[{group}] can not consume by broadcast way");
            return Ok(forbidden(pull, remark, forbidden_type::BROADCASTING_DISABLED));
        }
        if state.groups.is_read_forbidden(group, topic) {
            let remark = format!("the consumer group[{group}] is forbidden for topic[{topic}]");
            return Ok(forbidden(pull, remark, forbidden_type::SUBSCRIPTION));
        }
        let Some(subscription) = subscription else {
            return Err(Failure::new(
                response_code::SUBSCRIPTION_NOT_EXIST,
                "the consumer's subscription not exist",
            ));
        };
        if subscription.sub_version < header.sub_version {
            return Err(Failure::new(
                response_code::SUBSCRIPTION_NOT_LATEST,
                "the consumer's subscription not latest",
            ));
        }
        match &subscription.expression_type {
            ExpressionType::Tag => {
                PullFilter::from_subscription(&subscription).unwrap_or(PullFilter::Tags(BTreeSet::new()))
            }
            other => {
                let filter = compile_selector(other, &subscription.sub_string).map_err(|_| {
                    Failure::new(
                        response_code::FILTER_DATA_NOT_EXIST,
                        "The broker's consumer filter data is not exist!Your expression may be wrong!",
                    )
                })?;
                if !property_filter {
                    return Err(unsupported_filter(other));
                }
                filter
            }
        }
    };

    let reset = state.offsets.take_reset_offset(group, topic, queue_id);
    let outcome = match reset {
        Some(offset) => StoreRead {
            status: Status::OffsetReset,
            next_begin_offset: offset,
            min_offset: state.store.min_offset(topic, queue_id),
            max_offset: state.store.max_offset(topic, queue_id),
            body: Bytes::new(),
        },
        None => read_store(state, topic, queue_id, header.queue_offset, header.max_msg_nums, filter).await?,
    };

    let code = match outcome.status {
        Status::Store(GetMessageStatus::Found) => response_code::SUCCESS,
        Status::Store(GetMessageStatus::MessageWasRemoving | GetMessageStatus::NoMatchedMessage) => {
            response_code::PULL_RETRY_IMMEDIATELY
        }
        Status::Store(GetMessageStatus::NoMatchedLogicQueue | GetMessageStatus::NoMessageInQueue) => {
            if header.queue_offset != 0 {
                response_code::PULL_OFFSET_MOVED
            } else {
                response_code::PULL_NOT_FOUND
            }
        }
        Status::Store(GetMessageStatus::OffsetFoundNull | GetMessageStatus::OffsetOverflowOne) => {
            response_code::PULL_NOT_FOUND
        }
        Status::Store(GetMessageStatus::OffsetOverflowBadly | GetMessageStatus::OffsetTooSmall)
        | Status::OffsetReset => response_code::PULL_OFFSET_MOVED,
    };
    if code == response_code::PULL_OFFSET_MOVED {
        tracing::info!(
            group,
            topic,
            queue_id,
            requested = header.queue_offset,
            corrected = outcome.next_begin_offset,
            status = outcome.status.name(),
            remote = %pull.remote,
            "pull offset corrected"
        );
    }

    state.offsets.record_pull_offset(group, topic, queue_id, outcome.next_begin_offset);
    if first && header.sys_flag & pull_sys_flag::COMMIT_OFFSET != 0 && reset.is_none() {
        state.offsets.commit(group, topic, queue_id, header.commit_offset);
    }

    let response_header = PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: outcome.next_begin_offset,
        min_offset: outcome.min_offset,
        max_offset: outcome.max_offset,
        topic_sys_flag: Some(topic_config.topic_sys_flag),
        group_sys_flag: Some(group_config.group_sys_flag),
        ..PullMessageResponseHeader::default()
    };
    let mut response =
        RemotingCommand::respond_to(pull.request, code, Some(outcome.status.name().to_owned()))
            .with_header(&response_header);
    if code == response_code::SUCCESS {
        response.body = outcome.body;
    }
    let may_hold = first && header.sys_flag & pull_sys_flag::SUSPEND != 0;
    if code == response_code::PULL_NOT_FOUND && may_hold {
        return Ok(Pulled::Hold(response));
    }
    Ok(Pulled::Answer(response))
}

/// A read's status: the store's, or a pending admin reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Store(GetMessageStatus),
    OffsetReset,
}

impl Status {
    /// Java's `GetMessageStatus` name, the remark of the response.
    fn name(self) -> &'static str {
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
}

/// What a store read gave, with the records already joined into the body.
struct StoreRead {
    status: Status,
    next_begin_offset: i64,
    min_offset: i64,
    max_offset: i64,
    body: Bytes,
}

/// Reads within the store's per-pull budget (`maxTransferCountOnMessageInMemory`,
/// `maxTransferBytesOnMessageInMemory`) and joins the records into one body. Recent data (in
/// the page cache, by the store's estimate) is read right here; older data on the blocking
/// pool, since faulting mapped pages in from disk would stall this worker.
async fn read_store(
    state: &Arc<BrokerState>,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max_msg_nums: i32,
    filter: PullFilter,
) -> Result<StoreRead, Failure> {
    let store = Arc::clone(&state.store);
    let topic_name = topic;
    let topic = topic.to_owned();
    let store_config = store.config();
    let max_count = u32::try_from(max_msg_nums)
        .unwrap_or(0)
        .clamp(1, store_config.max_transfer_count_on_message_in_memory.max(1));
    let max_bytes = store_config.max_transfer_bytes_on_message_in_memory;
    let read = move || {
        let result = store.get_messages(&topic, queue_id, offset, max_count, max_bytes, &filter);
        let body = join_records(result.messages, result.total_bytes);
        StoreRead {
            status: Status::Store(result.status),
            next_begin_offset: result.next_begin_offset,
            min_offset: result.min_offset,
            max_offset: result.max_offset,
            body,
        }
    };
    if state.store.is_likely_in_memory(topic_name, queue_id, offset) {
        return Ok(read());
    }
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|error| Failure::system(format!("store getMessage failed: {error}")))
}

/// One body from the records: the record itself (no copy) when there is one.
fn join_records(mut records: Vec<apogee_store::mapped_file::MappedSlice>, total_bytes: u64) -> Bytes {
    if records.len() == 1 {
        if let Some(record) = records.pop() {
            return record.into_bytes();
        }
    }
    let mut body = BytesMut::with_capacity(usize::try_from(total_bytes).unwrap_or(0));
    for record in &records {
        body.extend_from_slice(record.as_slice());
    }
    body.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_common::java_string_hash;

    #[test]
    fn tag_expressions() {
        assert_eq!(PullFilter::parse_tags(None), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("*")), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("")), Some(PullFilter::All));
        assert_eq!(PullFilter::parse_tags(Some("||")), None);
        let codes = BTreeSet::from([java_string_hash("TagA"), java_string_hash("TagB")]);
        assert_eq!(PullFilter::parse_tags(Some(" TagA || TagB ||")), Some(PullFilter::Tags(codes)));
        assert_eq!(PullFilter::parse_tags(Some("  ")), Some(PullFilter::Tags(BTreeSet::new())));

        let filter = PullFilter::parse_tags(Some("TagA")).unwrap();
        assert!(filter.matches_tags_code(i64::from(java_string_hash("TagA"))));
        assert!(!filter.matches_tags_code(i64::from(java_string_hash("TagB"))));
        assert!(!filter.matches_tags_code(0));
        assert!(PullFilter::All.matches_tags_code(0));
    }

    #[test]
    fn registered_subscriptions_ignore_the_client_code_set() {
        let subscription = SubscriptionData {
            sub_string: "TagA || TagC".into(),
            code_set: BTreeSet::from([0]),
            ..SubscriptionData::default()
        };
        let filter = PullFilter::from_subscription(&subscription).unwrap();
        assert!(filter.matches_tags_code(i64::from(java_string_hash("TagC"))));
        assert!(!filter.matches_tags_code(0));
    }
}
