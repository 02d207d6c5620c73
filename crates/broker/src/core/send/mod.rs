//! Storing a producer's message or batch (behaviour spec §2.6), whatever front it came from.
//!
//! The path is the broker's hottest: the request is borrowed (no text is copied), the
//! properties parsed once, every record encoded once straight into the buffer handed to the
//! store, and the topic looked up as a shared `Arc`. Checks run in Java's order with Java's
//! response codes.
//!
//! Two ways in:
//! - [`send`], async: prepares (creating the topic or the dead-letter topic if needed, which
//!   writes state files), stores and gives a [`SendResult`];
//! - [`try_send_queued`], for a front that answers from the store's append round: the common
//!   case (a known topic, not a retry) is queued in the store with the front's completion
//!   (a [`PutDone`] built around the [`Receipt`]); [`end_of_batch`] appends what was queued.
//!   Anything that must wait is declined to [`send`]. No task, channel or wake per message.

mod encode;
mod retry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apogee_common::message::msg_id::{offset_msg_id_text, push_offset_msg_id, OFFSET_MSG_ID_V6_CHARS};
use apogee_common::message::{property, IdText};
use apogee_common::perm;
use apogee_common::topic::{self, TopicConfig};
use apogee_remoting::code::response_code;
use apogee_store::{AppendInfo, PutDone, PutRequest, PutResult, PutStatus};
use bytes::Bytes;

use super::caller::Caller;
use super::error::{CoreResult, Error};
use crate::metrics::SendTally;
use crate::topic_config::{self, AutoCreateRequest, TOPIC_SYS_FLAG_UNIT, TOPIC_SYS_FLAG_UNIT_SUB};
use crate::{message, BrokerState};

pub use encode::{MAX_BATCH_TOPIC_BYTES, MAX_PROPERTIES_BYTES};
pub use retry::DLQ_QUEUE_NUMS;

/// Request version (V3_4_9) from which the request's `maxReconsumeTimes` overrides the
/// group's `retryMaxTimes` for `%RETRY%` sends.
pub const MAX_RECONSUME_TIMES_MIN_VERSION: i32 = 121;

/// A send as the producer asked for it, borrowed from the front's decoded request so that
/// building it copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    /// Producer group.
    pub producer_group: &'a str,
    /// Target topic.
    pub topic: &'a str,
    /// Template topic for auto-creation, normally `TBW102`.
    pub default_topic: &'a str,
    /// Queue count of an auto-created topic.
    pub default_topic_queue_nums: i32,
    /// Target queue; negative lets the broker pick a writable queue.
    pub queue_id: i32,
    /// MessageSysFlag bits: compression, transaction type.
    pub sys_flag: i32,
    /// Producer clock at send time, in ms.
    pub born_timestamp_ms: i64,
    /// User flag, stored verbatim.
    pub flag: i32,
    /// The properties string (U+0001/U+0002 separated); of the batch itself for a batch.
    pub properties: Option<&'a str>,
    /// Times the message was already redelivered (retry topics); absent means 0.
    pub reconsume_times: Option<i32>,
    /// Unit-mode producer.
    pub unit_mode: bool,
    /// Redelivery limit for `%RETRY%` topics, overriding the group's.
    pub max_reconsume_times: Option<i32>,
    /// Whether `body` is a batch of messages (the batch body encoding).
    pub batch: bool,
    /// The message body, or the encoded batch.
    pub body: &'a Bytes,
}

/// How a stored send went, for the producer: a message stored late on disk is still sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (Java `SEND_OK`).
    Ok,
    /// Stored, but the SYNC_FLUSH flush did not finish in time (`FLUSH_DISK_TIMEOUT`).
    FlushDiskTimeout,
    /// Stored, but a SYNC_MASTER's slaves did not confirm it in time (`FLUSH_SLAVE_TIMEOUT`).
    FlushSlaveTimeout,
    /// Stored, but a SYNC_MASTER had no slave in sync to confirm it (`SLAVE_NOT_AVAILABLE`).
    SlaveNotAvailable,
}

/// Where a send was stored: what the send response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// Stored, or stored late.
    pub status: SendStatus,
    /// The offset message id; for a batch, every record's joined by `,`.
    pub msg_id: IdText,
    /// The queue the producer chose (a parked message is stored elsewhere).
    pub queue_id: i32,
    /// Queue offset of the (first) message.
    pub queue_offset: i64,
    /// The message's `UNIQ_KEY` (single sends), or the batch's own when it names one.
    pub transaction_id: Option<IdText>,
    /// For a timer message, the handle that recalls it (RECALL_MESSAGE) before it is due.
    pub recall_handle: Option<String>,
}

/// The region every send answer names, success or failure: the Java client reads both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRegion<'a> {
    /// `regionId`.
    pub region_id: &'a str,
    /// `traceOn`.
    pub trace_on: bool,
}

/// The region of every send answer.
pub fn region(state: &BrokerState) -> SendRegion<'_> {
    SendRegion { region_id: state.config.region_id.as_str(), trace_on: state.config.trace_on }
}

/// Records ready for the store, and what to answer once they are stored.
#[derive(Debug)]
pub struct PreparedSend {
    records: Vec<u8>,
    wait_store_ok: bool,
    receipt: Receipt,
}

impl PreparedSend {
    /// The store's request and what makes the result from the store's answer.
    pub fn into_parts(self) -> (PutRequest, Receipt) {
        (PutRequest { records: self.records, wait_store_ok: self.wait_store_ok }, self.receipt)
    }
}

/// What the result of a stored send needs besides the store's answer.
#[derive(Debug)]
pub struct Receipt {
    answer: Answer,
    /// The topic's inbound counters, when metrics are exported.
    tally: Option<SendTally>,
}

#[derive(Debug)]
enum Answer {
    /// A single message.
    One { queue_id: i32, uniq_key: IdText, recall_handle: Option<String> },
    /// A batch: one offset id per record.
    Batch { queue_id: i32, record_lengths: Vec<usize>, transaction_id: Option<IdText> },
}

impl Receipt {
    /// A receipt that holds nothing and allocated nothing, for boxes kept as spares.
    pub const EMPTY: Receipt = Receipt {
        answer: Answer::One { queue_id: 0, uniq_key: IdText::new(), recall_handle: None },
        tally: None,
    };

    fn new(answer: Answer) -> Self {
        Self { answer, tally: None }
    }

    /// The queue the producer chose, which the answer names wherever the message is parked.
    pub fn queue_id(&self) -> i32 {
        match self.answer {
            Answer::One { queue_id, .. } | Answer::Batch { queue_id, .. } => queue_id,
        }
    }

    /// The result once the store has answered `result`.
    pub fn result(self, state: &BrokerState, result: PutResult) -> CoreResult<SendResult> {
        let append = stored(state, result)?;
        if let Some(tally) = &self.tally {
            tally.stored(append.message_count, append.wrote_bytes);
        }
        let status = match result.status {
            PutStatus::FlushDiskTimeout => SendStatus::FlushDiskTimeout,
            PutStatus::FlushSlaveTimeout => SendStatus::FlushSlaveTimeout,
            PutStatus::SlaveNotAvailable => SendStatus::SlaveNotAvailable,
            _ => SendStatus::Ok,
        };
        Ok(match self.answer {
            Answer::One { queue_id, uniq_key, recall_handle } => SendResult {
                status,
                msg_id: offset_msg_id_text(state.store_host, offset_i64(append.commit_log_offset)),
                queue_id,
                queue_offset: append.queue_offset,
                transaction_id: Some(uniq_key),
                recall_handle,
            },
            Answer::Batch { queue_id, record_lengths, transaction_id } => SendResult {
                status,
                msg_id: batch_msg_ids(state.store_host, append.commit_log_offset, &record_lengths).into(),
                queue_id,
                queue_offset: append.queue_offset,
                transaction_id,
                recall_handle: None,
            },
        })
    }
}

/// Stores a send and gives where it went.
pub async fn send(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<SendResult> {
    let prepared = prepare(state, caller, request).await?;
    let (put, receipt) = prepared.into_parts();
    let result = message::put_records(state, put.records, put.wait_store_ok).await;
    receipt.result(state, result)
}

/// Whether [`try_send_queued`] took the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued in the store: the completion will be called.
    Yes,
    /// The send must wait for state-file work (an unknown topic, a retry topic): use [`send`].
    Declined,
}

/// Queues a send that needs no waiting in the store; `completion` builds the store's callback
/// around the send's [`Receipt`] (one box, which a front may recycle). The append happens at
/// the next [`end_of_batch`] (or by the store's appender). A refused send is an `Err` and
/// builds no completion.
pub fn try_send_queued<D, F>(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
    completion: F,
) -> CoreResult<Queued>
where
    D: PutDone + 'static,
    F: FnOnce(Receipt) -> Box<D>,
{
    let Some(prepared) = prepare_without_waiting(state, caller, request)? else {
        return Ok(Queued::Declined);
    };
    let (put, receipt) = prepared.into_parts();
    state.store.put_queued(put, completion(receipt));
    Ok(Queued::Yes)
}

/// Appends every send queued on this thread (a front calls it when it has read what was
/// available, so a read's worth of sends is one append round).
pub fn end_of_batch(state: &BrokerState) {
    state.store.append_queued();
}

/// The whole send path up to the store.
pub async fn prepare(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<PreparedSend> {
    prepare_records(state, caller, request).await.map(|prepared| prepared.metered(state, request))
}

impl PreparedSend {
    /// Attaches the inbound counters of the send's topic, when metrics are exported.
    fn metered(mut self, state: &BrokerState, request: &SendRequest<'_>) -> Self {
        if state.metrics.enabled() {
            self.receipt.tally = state.metrics.send_tally(request.topic, request.properties);
        }
        self
    }
}

async fn prepare_records(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<PreparedSend> {
    check_topic_name(state, request.topic)?;
    let config = match state.topics.lookup(request.topic) {
        Some(config) => config,
        None => auto_create(state, caller, request).await?,
    };
    check_topic_config(state, caller, request, &config)?;
    let queue_id = choose_queue(request, &config)?;
    check_sizes(state, request)?;
    if request.batch {
        return encode::batch(state, caller, request, &config, queue_id);
    }
    let mut destination =
        encode::Destination { topic: request.topic.to_owned(), queue_id, chosen_queue_id: queue_id, config };
    let mut properties = request.properties.map(property::decode).unwrap_or_default();
    if topic::is_retry_topic(&destination.topic) {
        let max_from_request =
            request.max_reconsume_times.filter(|_| caller.version >= MAX_RECONSUME_TIMES_MIN_VERSION);
        let reconsume_times = request.reconsume_times.unwrap_or(0);
        retry::redirect(state, &mut destination, &mut properties, reconsume_times, max_from_request).await?;
    }
    encode::one(state, caller, request, destination, properties)
}

/// [`prepare`] for sends that need no waiting: `Ok(None)` when the topic must be created or
/// the message is a retry (both wait for state-file work), which [`prepare`] then does.
pub fn prepare_without_waiting(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<Option<PreparedSend>> {
    Ok(prepare_records_without_waiting(state, caller, request)?
        .map(|prepared| prepared.metered(state, request)))
}

fn prepare_records_without_waiting(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<Option<PreparedSend>> {
    check_topic_name(state, request.topic)?;
    let Some(config) = state.topics.lookup(request.topic) else { return Ok(None) };
    if topic::is_retry_topic(request.topic) {
        return Ok(None);
    }
    check_topic_config(state, caller, request, &config)?;
    let queue_id = choose_queue(request, &config)?;
    check_sizes(state, request)?;
    if request.batch {
        return encode::batch(state, caller, request, &config, queue_id).map(Some);
    }
    if let Some(prepared) = encode::as_sent(state, caller, request, &config, queue_id)? {
        return Ok(Some(prepared));
    }
    let destination =
        encode::Destination { topic: request.topic.to_owned(), queue_id, chosen_queue_id: queue_id, config };
    let properties = request.properties.map(property::decode).unwrap_or_default();
    encode::one(state, caller, request, destination, properties).map(Some)
}

/// The topic checks of behaviour spec §2.6 (3–5) that need no topic config.
fn check_topic_name(state: &BrokerState, topic: &str) -> CoreResult<()> {
    let broker_writable = perm::is_writeable(state.broker_permission());
    if !broker_writable && state.topics.is_order_topic(topic) {
        return Err(broker_forbidden(state));
    }
    if let Err(error) = topic::validate_topic_name(topic) {
        return Err(Error::new(response_code::INVALID_PARAMETER, error.to_string()));
    }
    if topic_config::is_not_allowed_send_topic(topic) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    Ok(())
}

/// The checks of behaviour spec §2.6 (6) against the topic's config, plus write permissions.
fn check_topic_config(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
    config: &TopicConfig,
) -> CoreResult<()> {
    let topic = request.topic;
    let broker_writable = perm::is_writeable(state.broker_permission());
    let valid_queues = config.write_queue_nums.max(config.read_queue_nums);
    if request.queue_id >= valid_queues {
        return Err(Error::new(
            response_code::INVALID_PARAMETER,
            format!(
                "request queueId[{}] is illegal, topic {} has {} read and {} write queues. Producer: {}",
                request.queue_id, topic, config.read_queue_nums, config.write_queue_nums, caller.remote_addr
            ),
        ));
    }
    if !perm::is_writeable(config.perm) {
        return Err(Error::new(
            response_code::NO_PERMISSION,
            format!("the topic[{topic}] sending message is forbidden"),
        ));
    }
    if !broker_writable {
        return Err(broker_forbidden(state));
    }
    Ok(())
}

/// Creates an unknown topic from the request's template (behaviour spec §2.3), off the async
/// workers since it writes `topics.json`.
async fn auto_create(
    state: &Arc<BrokerState>,
    caller: &Caller,
    request: &SendRequest<'_>,
) -> CoreResult<Arc<TopicConfig>> {
    let topic_sys_flag = match request.unit_mode {
        true if topic::is_retry_topic(request.topic) => TOPIC_SYS_FLAG_UNIT_SUB,
        true => TOPIC_SYS_FLAG_UNIT,
        false => 0,
    };
    tracing::warn!(topic = %request.topic, producer = %caller.remote_addr, "send to a topic that does not exist");
    let owner = Arc::clone(state);
    let (topic, default_topic) = (request.topic.to_owned(), request.default_topic.to_owned());
    let queue_nums = request.default_topic_queue_nums;
    let created = tokio::task::spawn_blocking(move || {
        owner.topics.create_for_send(AutoCreateRequest {
            topic: &topic,
            default_topic: &default_topic,
            queue_nums,
            topic_sys_flag,
        })
    })
    .await
    .map_err(|error| Error::system(format!("topic creation failed: {error}")))?;
    let created = match created {
        Ok(created) => created,
        // Created in memory but not persisted: serve it anyway, as Java does.
        Err(_) => state.topics.lookup(request.topic),
    };
    created.ok_or_else(|| {
        Error::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", request.topic),
        )
    })
}

/// The queue to write: the requested one, or for a negative id one of the write queues.
fn choose_queue(request: &SendRequest<'_>, config: &TopicConfig) -> CoreResult<i32> {
    if request.queue_id >= 0 {
        return Ok(request.queue_id);
    }
    random_queue(config.write_queue_nums).ok_or_else(|| {
        Error::new(
            response_code::NO_PERMISSION,
            format!("the topic[{}] has no writable queue", config.topic_name),
        )
    })
}

/// A queue id in `0..write_queue_nums`, spreading picks evenly; `None` without queues.
fn random_queue(write_queue_nums: i32) -> Option<i32> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let queues = u32::try_from(write_queue_nums).ok().filter(|queues| *queues > 0)?;
    i32::try_from(NEXT.fetch_add(1, Ordering::Relaxed) % queues).ok()
}

/// Body and properties limits (behaviour spec §0.3): MESSAGE_ILLEGAL when exceeded. A batch's
/// body is the whole encoded batch.
fn check_sizes(state: &BrokerState, request: &SendRequest<'_>) -> CoreResult<()> {
    let max_body = state.config.store.max_message_size as usize;
    if request.body.len() > max_body {
        return Err(Error::new(
            response_code::MESSAGE_ILLEGAL,
            format!(
                "the message body size {} bytes exceeds the limit of {max_body} bytes",
                request.body.len()
            ),
        ));
    }
    let properties_len = request.properties.map_or(0, str::len);
    if properties_len > MAX_PROPERTIES_BYTES {
        return Err(Error::new(
            response_code::MESSAGE_ILLEGAL,
            format!("the message properties size {properties_len} bytes exceeds the limit of {MAX_PROPERTIES_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The offset ids of consecutive records starting at `first_offset`, joined by `,`.
fn batch_msg_ids(store_host: SocketAddr, first_offset: u64, record_lengths: &[usize]) -> String {
    let mut ids = String::with_capacity(record_lengths.len() * (OFFSET_MSG_ID_V6_CHARS + 1));
    let mut offset = first_offset;
    for length in record_lengths {
        if !ids.is_empty() {
            ids.push(',');
        }
        push_offset_msg_id(&mut ids, store_host, offset_i64(offset));
        offset = offset.saturating_add(*length as u64);
    }
    ids
}

/// A commit-log offset as the wire's signed 64-bit value.
fn offset_i64(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// The placement of a stored message, or the error its status maps to.
fn stored(state: &BrokerState, result: PutResult) -> CoreResult<AppendInfo> {
    match (result.status.is_stored(), result.append) {
        (true, Some(append)) => Ok(append),
        (true, None) => Err(Error::system("the store reported no placement for a stored message")),
        (false, _) => Err(put_error(state, result.status)),
    }
}

/// The error a refused put maps to (behaviour spec §2.6, result mapping).
pub(crate) fn put_error(state: &BrokerState, status: PutStatus) -> Error {
    match status {
        PutStatus::PutOk
        | PutStatus::FlushDiskTimeout
        | PutStatus::FlushSlaveTimeout
        | PutStatus::SlaveNotAvailable => Error::system("the message was stored"),
        PutStatus::InSyncReplicasNotEnough => {
            Error::new(response_code::SYSTEM_ERROR, "in-sync replicas not enough")
        }
        PutStatus::ServiceNotAvailable => Error::new(
            response_code::SERVICE_NOT_AVAILABLE,
            "service not available now. It may be caused by one of the following reasons: the broker's disk is \
             full, messages are put to the slave, message store has been shut down, etc.",
        ),
        PutStatus::MessageIllegal | PutStatus::PropertiesSizeExceeded => Error::new(
            response_code::MESSAGE_ILLEGAL,
            format!(
                "the message is illegal, maybe msg body or properties length not matched. msg body length limit \
                 {}B, msg properties length limit 32KB.",
                state.config.store.max_message_size
            ),
        ),
        PutStatus::OsPageCacheBusy => {
            Error::new(response_code::SYSTEM_BUSY, "[PC_SYNCHRONIZED]broker busy, start flow control for a while")
        }
        PutStatus::CreateMappedFileFailed => Error::system("create mapped file failed, server is busy or broken."),
        PutStatus::UnknownError => Error::system("UNKNOWN_ERROR"),
    }
}

/// NO_PERMISSION for a broker whose `brokerPermission` forbids writes.
fn broker_forbidden(state: &BrokerState) -> Error {
    Error::new(
        response_code::NO_PERMISSION,
        format!("the broker[{}] sending message is forbidden", state.config.broker_ip1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_queues_stay_in_range() {
        assert_eq!(random_queue(0), None);
        assert_eq!(random_queue(-3), None);
        let picks: std::collections::BTreeSet<i32> = (0..64).filter_map(|_| random_queue(4)).collect();
        assert_eq!(picks.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn batch_ids_follow_record_lengths() {
        let host: SocketAddr = "192.168.0.1:10911".parse().unwrap();
        let ids = batch_msg_ids(host, 0x1000, &[0x10, 0x20, 0x30]);
        assert_eq!(
            ids,
            "C0A8000100002A9F0000000000001000,C0A8000100002A9F0000000000001010,C0A8000100002A9F0000000000001030"
        );
    }
}
