//! The producer's requests: SEND_MESSAGE (10, long header keys), SEND_MESSAGE_V2 (310,
//! one-letter keys) and SEND_BATCH_MESSAGE (320) (protocol spec §3.3, behaviour spec §2.6).
//!
//! The path is the broker's hottest: the header is decoded once, the properties parsed once,
//! every record encoded once straight into the buffer handed to the store, and the topic
//! looked up as a shared `Arc`. Checks run in Java's order with Java's response codes; every
//! response, failures included, carries the `MSG_REGION` and `TRACE_ON` extFields the Java
//! client reads unconditionally.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use apogee_common::message::batch::batch_item_refs;
use apogee_common::message::msg_id::{
    offset_msg_id_text, push_offset_msg_id, UniqIdGenerator, OFFSET_MSG_ID_V6_CHARS,
};
use apogee_common::message::property::{self, Properties, RecordProperties, SentProperties};
use apogee_common::message::record::{self, RecordParts};
use apogee_common::message::{sysflag, IdText, Message, MessageExt};
use apogee_common::perm;
use apogee_common::spare;
use apogee_common::topic::{self, TopicConfig, TopicFilterType};
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::connection::Connection;
use apogee_remoting::header::send::{
    decode_send_message_header, SendMessageRequestHeader, SendMessageResponseHeader,
};
use apogee_remoting::reply::Failure;
use apogee_remoting::responder::{DeferredAnswer, Responder};
use apogee_remoting::router::{Declined, FastPath, Router};
use apogee_remoting::RemotingCommand;
use apogee_store::{AppendInfo, PutDone, PutRequest, PutResult, PutStatus};

use crate::topic_config::{self, AutoCreateRequest, TOPIC_SYS_FLAG_UNIT, TOPIC_SYS_FLAG_UNIT_SUB};
use crate::{message, BrokerState};

/// Request version (V3_4_9) from which the header's `maxReconsumeTimes` overrides the group's
/// `retryMaxTimes` for `%RETRY%` sends.
pub const MAX_RECONSUME_TIMES_MIN_VERSION: i32 = 121;
/// Queues of a dead-letter topic (Java `DLQ_NUMS_PER_GROUP`).
pub const DLQ_QUEUE_NUMS: i32 = 1;
/// Longest topic of a batch, in bytes: batch records always use the 1-byte topic length.
pub const MAX_BATCH_TOPIC_BYTES: usize = i8::MAX as usize;
/// Longest properties string a message may carry, in bytes (an `i16` length on disk).
pub const MAX_PROPERTIES_BYTES: usize = property::MAX_ENCODED_BYTES;
/// Delay level the DLQ path stores, so the message is never delayed again.
const DLQ_DELAY_LEVEL: &str = "-1";
/// Property values Java's `Boolean.parseBoolean` reads as true (case-insensitively).
const TRUE: &str = "true";
/// Topic attribute naming the retention policy.
const CLEANUP_POLICY_ATTRIBUTE: &str = "cleanup.policy";
/// Retention policy value of compacted topics.
const COMPACTION: &str = "COMPACTION";
/// Bytes reserved per batch record for the properties the broker adds (`UNIQ_KEY`,
/// `CLUSTER`), so the batch buffer is allocated once.
const ADDED_PROPERTIES_ALLOWANCE: usize = 128;

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    let codes = [request_code::SEND_MESSAGE, request_code::SEND_MESSAGE_V2, request_code::SEND_BATCH_MESSAGE];
    for code in codes {
        super::route(router, code, state, handle);
    }
    router.register_fast_path(&codes, SendFastPath(Arc::clone(state)));
}

/// Serves one send request; the response always carries `MSG_REGION` and `TRACE_ON`.
async fn handle(
    state: Arc<BrokerState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let answer = match prepare(&state, &connection, &request).await {
        Ok(stored) => {
            let result = message::put_records(&state, stored.records, stored.wait_store_ok).await;
            stored.answer.response(&state, result)
        }
        Err(failure) => Err(failure),
    };
    Some(finish(&state, answer))
}

/// The send path for the common case, run as the request is read: a known topic that is
/// not a retry topic. The records are queued in the store, and appended together with the
/// rest of the socket read's sends when the reader ends its batch; the callback answers.
/// Everything else is declined to [`handle`].
struct SendFastPath(Arc<BrokerState>);

impl FastPath for SendFastPath {
    fn try_serve(
        &self,
        connection: &Connection,
        request: RemotingCommand,
        responder: Responder,
    ) -> Result<(), Box<Declined>> {
        let state = &self.0;
        let stored = match prepare_without_waiting(state, connection, &request) {
            Ok(Some(stored)) => stored,
            Ok(None) => return Err(Box::new(Declined { request, responder })),
            Err(failure) => {
                responder.respond(finish(state, Err(failure)));
                return Ok(());
            }
        };
        let Stored { records, wait_store_ok, answer } = stored;
        let awaited = AwaitedSend::boxed(state, answer, responder);
        state.store.put_queued(PutRequest { records, wait_store_ok }, awaited);
        Ok(())
    }

    fn end_of_batch(&self) {
        self.0.store.append_queued();
    }
}

/// A fast-path send in the store: one box that is first the store's callback, then the answer
/// the connection's writer builds, and then a spare for a later send read on the thread that
/// built the answer (a reader and its connection's writer mostly share a worker).
struct AwaitedSend {
    /// `None` only while spare: a spare must not keep a stopped broker's state alive.
    state: Option<Arc<BrokerState>>,
    answer: Answer,
    /// Taken when the store answers.
    responder: Option<Responder>,
    /// Set when the store answers.
    result: Option<PutResult>,
}

/// Spare boxes a thread keeps: about the sends its connections have in flight, so a steady
/// stream of sends allocates none.
const SPARE_SENDS_PER_THREAD: usize = 256;

thread_local! {
    // The boxes themselves are what is kept: each is a send's allocation, reused whole.
    #[allow(clippy::vec_box)]
    static SPARE_SENDS: RefCell<Vec<Box<AwaitedSend>>> = const { RefCell::new(Vec::new()) };
}

impl AwaitedSend {
    /// A send waiting for the store: a spare box of this thread, or a new one.
    fn boxed(state: &Arc<BrokerState>, answer: Answer, responder: Responder) -> Box<Self> {
        let mut awaited = spare::take(&SPARE_SENDS).unwrap_or_else(|| {
            Box::new(AwaitedSend { state: None, answer: Answer::SPARE, responder: None, result: None })
        });
        debug_assert!(awaited.state.is_none() && awaited.responder.is_none() && awaited.result.is_none());
        awaited.state = Some(Arc::clone(state));
        awaited.answer = answer;
        awaited.responder = Some(responder);
        awaited
    }

    /// Empties the box and keeps it as a spare when this thread has room.
    fn recycle(mut self: Box<Self>) {
        self.state = None;
        self.answer = Answer::SPARE;
        self.responder = None;
        self.result = None;
        spare::keep(&SPARE_SENDS, self, SPARE_SENDS_PER_THREAD);
    }
}

impl PutDone for AwaitedSend {
    fn done(mut self: Box<Self>, result: PutResult) {
        self.result = Some(result);
        if let Some(responder) = self.responder.take() {
            responder.respond_deferred(self);
        }
    }
}

impl DeferredAnswer for AwaitedSend {
    fn build(mut self: Box<Self>) -> RemotingCommand {
        let state = self.state.take().expect("a send in flight holds the broker state");
        let answer = std::mem::replace(&mut self.answer, Answer::SPARE);
        let result = self.result.take().unwrap_or(PutResult::failed(PutStatus::UnknownError));
        self.recycle();
        finish(&state, answer.response(&state, result))
    }
}

/// The answer to a send, success or failure, with the extFields every send response carries.
fn finish(state: &BrokerState, answer: Result<RemotingCommand, Failure>) -> RemotingCommand {
    let response = answer.unwrap_or_else(|failure| {
        tracing::debug!(code = failure.code, remark = %failure.remark, "send refused");
        failure.into_answer()
    });
    with_region(state, response)
}

/// Adds the extFields the Java client dereferences on every send response.
fn with_region(state: &BrokerState, response: RemotingCommand) -> RemotingCommand {
    response
        .with_ext(property::MSG_REGION, state.config.region_id.as_str())
        .with_ext(property::TRACE_ON, if state.config.trace_on { "true" } else { "false" })
}

/// Records ready for the store, and how to answer once they are stored.
struct Stored {
    records: Vec<u8>,
    wait_store_ok: bool,
    answer: Answer,
}

/// What the response to a stored send needs besides the store's result.
enum Answer {
    /// SEND_MESSAGE / SEND_MESSAGE_V2.
    One { queue_id: i32, uniq_key: IdText },
    /// SEND_BATCH_MESSAGE: one offset id per record.
    Batch { queue_id: i32, record_lengths: Vec<usize>, transaction_id: Option<IdText> },
}

impl Answer {
    /// What a spare [`AwaitedSend`] holds: no allocation.
    const SPARE: Answer = Answer::One { queue_id: 0, uniq_key: IdText::new() };

    /// The response once the store has answered `result`.
    fn response(self, state: &BrokerState, result: PutResult) -> Result<RemotingCommand, Failure> {
        let append = stored(state, result)?;
        let header = match self {
            Answer::One { queue_id, uniq_key } => SendMessageResponseHeader {
                msg_id: offset_msg_id_text(state.store_host, offset_i64(append.commit_log_offset)),
                queue_id,
                queue_offset: append.queue_offset,
                transaction_id: Some(uniq_key),
                batch_uniq_id: None,
                recall_handle: None,
            },
            Answer::Batch { queue_id, record_lengths, transaction_id } => SendMessageResponseHeader {
                msg_id: batch_msg_ids(state.store_host, append.commit_log_offset, &record_lengths).into(),
                queue_id,
                queue_offset: append.queue_offset,
                transaction_id,
                batch_uniq_id: None,
                recall_handle: None,
            },
        };
        Ok(RemotingCommand::response(success_code(result.status), None).with_header(&header))
    }
}

/// The whole send path up to the store; failures carry Java's code and a remark.
async fn prepare(
    state: &Arc<BrokerState>,
    connection: &Connection,
    request: &RemotingCommand,
) -> Result<Stored, Failure> {
    let header = decode_send_message_header(request)?;
    check_topic_name(state, &header.topic)?;
    let config = match state.topics.lookup(&header.topic) {
        Some(config) => config,
        None => auto_create(state, connection, &header).await?,
    };
    check_topic_config(state, connection, &header, &config)?;
    let queue_id = choose_queue(&header, &config)?;
    check_sizes(state, &header, request)?;
    if header.batch == Some(true) {
        return encode_batch(state, connection, request, header, &config, queue_id);
    }
    let mut destination =
        Destination { topic: header.topic.to_string(), queue_id, chosen_queue_id: queue_id, config };
    let mut properties = header.properties.as_deref().map(property::decode).unwrap_or_default();
    if topic::is_retry_topic(&destination.topic) {
        let max_header =
            header.max_reconsume_times.filter(|_| request.version >= MAX_RECONSUME_TIMES_MIN_VERSION);
        let reconsume_times = header.reconsume_times.unwrap_or(0);
        redirect_retry(state, &mut destination, &mut properties, reconsume_times, max_header).await?;
    }
    encode_one(state, connection, request, header, destination, properties)
}

/// [`prepare`] for requests that need no waiting: `Ok(None)` when the topic must be created
/// or the message is a retry (both wait for state-file work), which [`prepare`] then does.
fn prepare_without_waiting(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
) -> Result<Option<Stored>, Failure> {
    let header = decode_send_message_header(request)?;
    check_topic_name(state, &header.topic)?;
    let Some(config) = state.topics.lookup(&header.topic) else { return Ok(None) };
    if topic::is_retry_topic(&header.topic) {
        return Ok(None);
    }
    check_topic_config(state, connection, &header, &config)?;
    let queue_id = choose_queue(&header, &config)?;
    check_sizes(state, &header, request)?;
    if header.batch == Some(true) {
        return encode_batch(state, connection, request, header, &config, queue_id).map(Some);
    }
    if let Some(stored) = encode_as_sent(state, connection, request, &header, &config, queue_id)? {
        return Ok(Some(stored));
    }
    let destination =
        Destination { topic: header.topic.to_string(), queue_id, chosen_queue_id: queue_id, config };
    let properties = header.properties.as_deref().map(property::decode).unwrap_or_default();
    encode_one(state, connection, request, header, destination, properties).map(Some)
}

/// The topic checks of behaviour spec §2.6 (3–5) that need no topic config.
fn check_topic_name(state: &BrokerState, topic: &str) -> Result<(), Failure> {
    let broker_writable = perm::is_writeable(state.config.broker_permission);
    if !broker_writable && state.topics.is_order_topic(topic) {
        return Err(broker_forbidden(state));
    }
    if let Err(error) = topic::validate_topic_name(topic) {
        return Err(Failure::new(response_code::INVALID_PARAMETER, error.to_string()));
    }
    if topic_config::is_not_allowed_send_topic(topic) {
        return Err(Failure::new(
            response_code::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    Ok(())
}

/// The checks of behaviour spec §2.6 (6) against the topic's config, plus write permissions.
fn check_topic_config(
    state: &BrokerState,
    connection: &Connection,
    header: &SendMessageRequestHeader,
    config: &TopicConfig,
) -> Result<(), Failure> {
    let topic = header.topic.as_str();
    let broker_writable = perm::is_writeable(state.config.broker_permission);
    let valid_queues = config.write_queue_nums.max(config.read_queue_nums);
    if header.queue_id >= valid_queues {
        return Err(Failure::new(
            response_code::INVALID_PARAMETER,
            format!(
                "request queueId[{}] is illegal, topic {} has {} read and {} write queues. Producer: {}",
                header.queue_id,
                topic,
                config.read_queue_nums,
                config.write_queue_nums,
                connection.remote_addr()
            ),
        ));
    }
    if !perm::is_writeable(config.perm) {
        return Err(Failure::new(
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
    connection: &Connection,
    header: &SendMessageRequestHeader,
) -> Result<Arc<TopicConfig>, Failure> {
    let topic_sys_flag = match header.unit_mode {
        Some(true) if topic::is_retry_topic(&header.topic) => TOPIC_SYS_FLAG_UNIT_SUB,
        Some(true) => TOPIC_SYS_FLAG_UNIT,
        _ => 0,
    };
    tracing::warn!(topic = %header.topic, producer = %connection.remote_addr(), "send to a topic that does not exist");
    let owner = Arc::clone(state);
    let (topic, default_topic) = (header.topic.clone(), header.default_topic.clone());
    let queue_nums = header.default_topic_queue_nums;
    let created = tokio::task::spawn_blocking(move || {
        owner.topics.create_for_send(AutoCreateRequest {
            topic: &topic,
            default_topic: &default_topic,
            queue_nums,
            topic_sys_flag,
        })
    })
    .await
    .map_err(|error| Failure::system(format!("topic creation failed: {error}")))?;
    let created = match created {
        Ok(created) => created,
        // Created in memory but not persisted: serve it anyway, as Java does.
        Err(_) => state.topics.lookup(&header.topic),
    };
    created.ok_or_else(|| {
        Failure::new(
            response_code::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", header.topic),
        )
    })
}

/// The queue to write: the requested one, or for a negative id one of the write queues.
fn choose_queue(header: &SendMessageRequestHeader, config: &TopicConfig) -> Result<i32, Failure> {
    if header.queue_id >= 0 {
        return Ok(header.queue_id);
    }
    random_queue(config.write_queue_nums).ok_or_else(|| {
        Failure::new(
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
fn check_sizes(
    state: &BrokerState,
    header: &SendMessageRequestHeader,
    request: &RemotingCommand,
) -> Result<(), Failure> {
    let max_body = state.config.store.max_message_size as usize;
    if request.body.len() > max_body {
        return Err(Failure::new(
            response_code::MESSAGE_ILLEGAL,
            format!(
                "the message body size {} bytes exceeds the limit of {max_body} bytes",
                request.body.len()
            ),
        ));
    }
    let properties_len = header.properties.as_ref().map_or(0, |properties| properties.len());
    if properties_len > MAX_PROPERTIES_BYTES {
        return Err(Failure::new(
            response_code::MESSAGE_ILLEGAL,
            format!("the message properties size {properties_len} bytes exceeds the limit of {MAX_PROPERTIES_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Where a single message is stored, after the retry, transaction and delay rewrites.
struct Destination {
    topic: String,
    queue_id: i32,
    /// The queue the send chose before any rewrite.
    chosen_queue_id: i32,
    config: Arc<TopicConfig>,
}

/// SEND_MESSAGE / SEND_MESSAGE_V2 of one message, after any retry redirect: the stored
/// record after the transaction and delay rewrites.
fn encode_one(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
    header: SendMessageRequestHeader,
    mut destination: Destination,
    mut properties: Properties,
) -> Result<Stored, Failure> {
    // The response names the queue the producer chose, wherever the message is parked.
    let queue_id = destination.chosen_queue_id;
    let reconsume_times = header.reconsume_times.unwrap_or(0);
    let uniq_key = IdText::from(ensure_uniq_key(state, &mut properties));
    if is_compaction_topic(&destination.config) && property::keys(&properties).next().is_none() {
        return Err(Failure::new(response_code::MESSAGE_ILLEGAL, "Required message key is missing"));
    }
    properties.insert(property::CLUSTER, state.config.broker_cluster_name.as_str());

    let mut sys_flag = stored_sys_flag(header.sys_flag, &destination.config);
    let delay_level = delay_level(properties.get(property::DELAY));
    let prepared = properties.get(property::TRAN_MSG).is_some_and(|flag| flag.eq_ignore_ascii_case(TRUE))
        && !(reconsume_times > 0 && delay_level > 0);
    if prepared {
        if state.config.reject_transaction_message {
            return Err(Failure::new(
                response_code::NO_PERMISSION,
                format!("the broker[{}] sending transaction message is forbidden", state.config.broker_ip1),
            ));
        }
        properties.insert(property::TRANSACTION_ID, uniq_key.as_str());
        park(&mut destination, &mut properties, topic::TRANS_HALF_TOPIC, 0);
        sys_flag = sysflag::reset_transaction_value(sys_flag, sysflag::TRANSACTION_NOT_TYPE);
    } else if delay_level > 0
        && matches!(
            sysflag::transaction_type(sys_flag),
            sysflag::TRANSACTION_NOT_TYPE | sysflag::TRANSACTION_COMMIT_TYPE
        )
    {
        crate::schedule::redirect_fields_to_schedule_topic(
            &mut destination.topic,
            &mut destination.queue_id,
            &mut properties,
            delay_level,
            state.schedule.max_level(),
        );
    }

    let wait_store_ok = wait_store_ok(properties.get(property::WAIT));
    let ext = MessageExt {
        message: Message {
            topic: destination.topic,
            flag: header.flag,
            properties,
            body: request.body.clone(),
        },
        queue_id: destination.queue_id,
        sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: connection.remote_addr(),
        store_host: state.store_host,
        reconsume_times,
        ..MessageExt::default()
    };
    let mut records = Vec::with_capacity(record::encoded_len(
        ext.message.topic.len(),
        ext.message.body.len(),
        ext.message.properties.encoded_len(),
        sys_flag,
    ));
    if let Err(error) = record::encode(&ext, &mut records) {
        tracing::debug!(%error, topic = %ext.message.topic, "message refused: cannot encode");
        return Err(put_failure(state, PutStatus::MessageIllegal));
    }
    Ok(Stored { records, wait_store_ok, answer: Answer::One { queue_id, uniq_key } })
}

/// [`encode_one`] for the common message, without a properties map: the producer's string is
/// stored as sent with `UNIQ_KEY` (when missing) and `CLUSTER` appended, which is what
/// decoding it, adding both and encoding the map again stores. `Ok(None)` for what needs the
/// map: a transaction half message, a delay level, a compacted topic (its key check), a
/// string the map would normalise (see [`SentProperties::parse`]).
fn encode_as_sent(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
    header: &SendMessageRequestHeader,
    config: &TopicConfig,
    queue_id: i32,
) -> Result<Option<Stored>, Failure> {
    if is_compaction_topic(config) {
        return Ok(None);
    }
    let Some(sent) = SentProperties::parse(header.properties.as_deref().unwrap_or_default()) else {
        return Ok(None);
    };
    if sent.get(property::TRAN_MSG).is_some() || sent.get(property::DELAY).is_some() {
        return Ok(None);
    }
    let mut generated = None;
    let Some(properties) = stamp_sent(state, sent, &mut generated) else { return Ok(None) };
    let template = RecordTemplate::new(state, connection, header, config, queue_id);
    let mut records = Vec::new();
    template.encode(&mut records, &request.body, header.flag, &properties)?;
    Ok(Some(Stored {
        records,
        wait_store_ok: wait_store_ok(properties.get(property::WAIT)),
        answer: Answer::One {
            queue_id,
            uniq_key: IdText::from(properties.get(property::UNIQ_KEY).unwrap_or_default()),
        },
    }))
}

/// A producer's properties as the store keeps them: `UNIQ_KEY` (generated into `generated`
/// when missing) and `CLUSTER` appended. `None` when the string already names a cluster or
/// an entry cannot be appended: the `Properties` map then applies Java's rules.
fn stamp_sent<'a>(
    state: &'a BrokerState,
    mut sent: SentProperties<'a>,
    generated: &'a mut Option<IdText>,
) -> Option<SentProperties<'a>> {
    if sent.get(property::CLUSTER).is_some() {
        return None;
    }
    if sent.get(property::UNIQ_KEY).is_none() {
        let uniq_key: &'a IdText = generated.insert(uniq_ids(state).next_id_text());
        if !sent.append(property::UNIQ_KEY, uniq_key) {
            return None;
        }
    }
    sent.append(property::CLUSTER, &state.config.broker_cluster_name).then_some(sent)
}

/// What every record of one send request shares, and how one is encoded.
struct RecordTemplate<'a> {
    state: &'a BrokerState,
    header: &'a SendMessageRequestHeader,
    born_host: SocketAddr,
    queue_id: i32,
    sys_flag: i32,
}

impl<'a> RecordTemplate<'a> {
    fn new(
        state: &'a BrokerState,
        connection: &Connection,
        header: &'a SendMessageRequestHeader,
        config: &TopicConfig,
        queue_id: i32,
    ) -> Self {
        let sys_flag = stored_sys_flag(header.sys_flag, config);
        Self { state, header, born_host: connection.remote_addr(), queue_id, sys_flag }
    }

    /// Appends the record of one message to `records`; one that cannot be stored (too long a
    /// topic or properties string) is MESSAGE_ILLEGAL.
    fn encode(
        &self,
        records: &mut Vec<u8>,
        body: &[u8],
        flag: i32,
        properties: &dyn RecordProperties,
    ) -> Result<(), Failure> {
        let parts = RecordParts {
            topic: &self.header.topic,
            body,
            properties,
            flag,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.header.born_timestamp,
            born_host: self.born_host,
            store_host: self.state.store_host,
            reconsume_times: self.header.reconsume_times.unwrap_or(0),
            queue_offset: 0,
            commit_log_offset: 0,
            store_timestamp: 0,
            prepared_transaction_offset: 0,
        };
        record::encode_parts(&parts, record::body_crc(body), records).map_err(|error| {
            tracing::debug!(%error, topic = %self.header.topic, "message refused: cannot encode");
            put_failure(self.state, PutStatus::MessageIllegal)
        })
    }
}

/// The sysflag a record is stored with: the producer's, with MULTI_TAGS for topics that
/// filter on several tags.
fn stored_sys_flag(sys_flag: i32, config: &TopicConfig) -> i32 {
    if config.topic_filter_type == TopicFilterType::MultiTag {
        sys_flag | sysflag::MULTI_TAGS_FLAG
    } else {
        sys_flag
    }
}

/// The `%RETRY%` rules (behaviour spec §2.6 step 7): the group must exist; past its
/// redelivery limit, or when it consumes orderly (holds queue locks), the message goes to
/// the group's dead-letter topic, queue 0, never delayed.
async fn redirect_retry(
    state: &Arc<BrokerState>,
    destination: &mut Destination,
    properties: &mut Properties,
    reconsume_times: i32,
    max_from_header: Option<i32>,
) -> Result<(), Failure> {
    let group = destination.topic.get(topic::RETRY_GROUP_TOPIC_PREFIX.len()..).unwrap_or("").to_owned();
    let owner = Arc::clone(state);
    let lookup = group.clone();
    let group_config = tokio::task::spawn_blocking(move || owner.groups.get_or_create(&lookup))
        .await
        .map_err(|error| Failure::system(format!("subscription group lookup failed: {error}")))?
        .ok_or_else(|| {
            Failure::new(
                response_code::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {group}"),
            )
        })?;
    let max_reconsume_times = max_from_header.unwrap_or(group_config.retry_max_times);
    if !to_dead_letters(reconsume_times, max_reconsume_times, state.locks.is_group_locked(&group)) {
        return Ok(());
    }
    let dlq = topic::dlq_topic(&group);
    let config = match state.topics.lookup(&dlq) {
        Some(config) => config,
        None => {
            let owner = Arc::clone(state);
            let name = dlq.clone();
            tokio::task::spawn_blocking(move || {
                owner.topics.get_or_create_shared(&name, DLQ_QUEUE_NUMS, perm::READ_WRITE, 0)
            })
            .await
            .ok()
            .and_then(Result::ok)
            .or_else(|| state.topics.lookup(&dlq))
            .ok_or_else(|| Failure::system(format!("topic[{dlq}] not exist")))?
        }
    };
    tracing::info!(
        group,
        reconsume_times,
        max_reconsume_times,
        "retry message sent to the dead letter queue"
    );
    properties.insert(property::DELAY, DLQ_DELAY_LEVEL);
    *destination =
        Destination { topic: dlq, queue_id: 0, chosen_queue_id: destination.chosen_queue_id, config };
    Ok(())
}

/// Whether a retry send goes to the dead-letter topic: redelivered more often than allowed,
/// or the group consumes orderly.
fn to_dead_letters(reconsume_times: i32, max_reconsume_times: i32, group_locked: bool) -> bool {
    reconsume_times > max_reconsume_times || group_locked
}

/// Whether the topic keeps only the latest message per key (`cleanup.policy=COMPACTION`), so
/// every message needs a key.
fn is_compaction_topic(config: &TopicConfig) -> bool {
    config
        .attributes
        .get(CLEANUP_POLICY_ATTRIBUTE)
        .is_some_and(|policy| policy.eq_ignore_ascii_case(COMPACTION))
}

/// Parks a message in a system topic, remembering where it was going in `REAL_TOPIC` and
/// `REAL_QID` (half messages, delay levels).
fn park(destination: &mut Destination, properties: &mut Properties, system_topic: &str, queue_id: i32) {
    properties.insert(property::REAL_TOPIC, destination.topic.as_str());
    properties.insert(property::REAL_QID, destination.queue_id.to_string());
    destination.topic = system_topic.to_owned();
    destination.queue_id = queue_id;
}

/// The message's `UNIQ_KEY`, generated and stored when missing; borrowed, so a caller that
/// does not answer with it copies nothing.
fn ensure_uniq_key<'p>(state: &BrokerState, properties: &'p mut Properties) -> &'p str {
    if properties.get(property::UNIQ_KEY).is_none_or(str::is_empty) {
        properties.insert(property::UNIQ_KEY, uniq_ids(state).next_id());
    }
    properties.get(property::UNIQ_KEY).unwrap_or_default()
}

/// The broker's generator of message ids, keyed on its own address.
fn uniq_ids(state: &BrokerState) -> &'static UniqIdGenerator {
    static GENERATOR: OnceLock<UniqIdGenerator> = OnceLock::new();
    GENERATOR.get_or_init(|| UniqIdGenerator::new(state.store_host.ip()))
}

/// The level of a `DELAY` property as Java reads it: 0 when absent or not a number.
fn delay_level(delay: Option<&str>) -> i32 {
    delay.and_then(|level| level.trim().parse().ok()).unwrap_or(0)
}

/// Whether a `WAIT` property asks to wait for the store: true when absent.
fn wait_store_ok(wait: Option<&str>) -> bool {
    wait.is_none_or(|wait| wait.eq_ignore_ascii_case(TRUE))
}

/// SEND_BATCH_MESSAGE: every item becomes a full record of the batch's topic and queue, all
/// stored by one append with consecutive queue offsets.
fn encode_batch(
    state: &BrokerState,
    connection: &Connection,
    request: &RemotingCommand,
    header: SendMessageRequestHeader,
    config: &TopicConfig,
    queue_id: i32,
) -> Result<Stored, Failure> {
    let illegal = |remark: String| Failure::new(response_code::MESSAGE_ILLEGAL, remark);
    if header.topic.len() > MAX_BATCH_TOPIC_BYTES {
        return Err(illegal(format!("message topic length too long {}", header.topic.len())));
    }
    if topic::is_retry_topic(&header.topic) {
        return Err(illegal(format!("batch request does not support retry group {}", header.topic)));
    }
    if sysflag::transaction_type(header.sys_flag) != sysflag::TRANSACTION_NOT_TYPE {
        return Err(illegal("batch messages cannot be transactional".to_owned()));
    }
    let batch_properties = header.properties.as_deref().map(property::decode).unwrap_or_default();
    if delay_level(batch_properties.get(property::DELAY)) > 0 {
        return Err(illegal("batch messages cannot be delayed".to_owned()));
    }
    let malformed = |error| illegal(format!("malformed batch body: {error}"));
    // Every item is checked before any is encoded, as Java decodes the whole batch first.
    let count = batch_item_refs(&request.body).try_fold(0usize, |count, item| item.map(|_| count + 1));
    let count = count.map_err(malformed)?;
    if count == 0 {
        return Err(illegal("the batch holds no message".to_owned()));
    }

    let template = RecordTemplate::new(state, connection, &header, config, queue_id);
    let cluster = state.config.broker_cluster_name.as_str();
    let per_record_overhead =
        record::encoded_len(header.topic.len(), 0, ADDED_PROPERTIES_ALLOWANCE, template.sys_flag);
    let capacity = request.body.len().saturating_add(count.saturating_mul(per_record_overhead));
    let mut records = Vec::with_capacity(capacity);
    let mut record_lengths = Vec::with_capacity(count);
    let refuse_delayed = |delay: Option<&str>| match delay_level(delay) {
        level if level > 0 => Err(illegal("batch messages cannot be delayed".to_owned())),
        _ => Ok(()),
    };
    for item in batch_item_refs(&request.body) {
        let item = item.map_err(malformed)?;
        let body = &request.body[item.body.clone()];
        let before = records.len();
        // Kept as sent when the string allows it (see `encode_as_sent`); otherwise through
        // the map, as Java does.
        let mut generated = None;
        match SentProperties::parse(item.properties).and_then(|sent| stamp_sent(state, sent, &mut generated))
        {
            Some(properties) => {
                refuse_delayed(properties.get(property::DELAY))?;
                template.encode(&mut records, body, item.flag, &properties)?;
            }
            None => {
                let mut properties = property::decode(item.properties);
                refuse_delayed(properties.get(property::DELAY))?;
                ensure_uniq_key(state, &mut properties);
                properties.insert(property::CLUSTER, cluster);
                template.encode(&mut records, body, item.flag, &properties)?;
            }
        }
        record_lengths.push(records.len() - before);
    }

    Ok(Stored {
        records,
        wait_store_ok: wait_store_ok(batch_properties.get(property::WAIT)),
        answer: Answer::Batch {
            queue_id,
            record_lengths,
            transaction_id: batch_properties.get(property::UNIQ_KEY).map(IdText::from),
        },
    })
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

/// The placement of a stored message, or the failure its status maps to.
fn stored(state: &BrokerState, result: PutResult) -> Result<AppendInfo, Failure> {
    match (result.status.is_stored(), result.append) {
        (true, Some(append)) => Ok(append),
        (true, None) => Err(Failure::system("the store reported no placement for a stored message")),
        (false, _) => Err(put_failure(state, result.status)),
    }
}

/// The response code of a stored message: FLUSH_DISK_TIMEOUT is still a successful send
/// for the client, which reads the header.
fn success_code(status: PutStatus) -> i32 {
    match status {
        PutStatus::FlushDiskTimeout => response_code::FLUSH_DISK_TIMEOUT,
        _ => response_code::SUCCESS,
    }
}

/// The failure a refused put maps to (behaviour spec §2.6, result mapping).
fn put_failure(state: &BrokerState, status: PutStatus) -> Failure {
    match status {
        PutStatus::PutOk | PutStatus::FlushDiskTimeout => Failure::system("the message was stored"),
        PutStatus::ServiceNotAvailable => Failure::new(
            response_code::SERVICE_NOT_AVAILABLE,
            "service not available now. It may be caused by one of the following reasons: the broker's disk is \
             full, messages are put to the slave, message store has been shut down, etc.",
        ),
        PutStatus::MessageIllegal | PutStatus::PropertiesSizeExceeded => Failure::new(
            response_code::MESSAGE_ILLEGAL,
            format!(
                "the message is illegal, maybe msg body or properties length not matched. msg body length limit \
                 {}B, msg properties length limit 32KB.",
                state.config.store.max_message_size
            ),
        ),
        PutStatus::OsPageCacheBusy => {
            Failure::new(response_code::SYSTEM_BUSY, "[PC_SYNCHRONIZED]broker busy, start flow control for a while")
        }
        PutStatus::CreateMappedFileFailed => Failure::system("create mapped file failed, server is busy or broken."),
        PutStatus::UnknownError => Failure::system("UNKNOWN_ERROR"),
    }
}

/// NO_PERMISSION for a broker whose `brokerPermission` forbids writes.
fn broker_forbidden(state: &BrokerState) -> Failure {
    Failure::new(
        response_code::NO_PERMISSION,
        format!("the broker[{}] sending message is forbidden", state.config.broker_ip1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_rule() {
        assert!(!to_dead_letters(16, 16, false));
        assert!(to_dead_letters(17, 16, false));
        assert!(to_dead_letters(0, 16, true));
        assert!(to_dead_letters(1, 0, false));
    }

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

    #[test]
    fn property_readers() {
        let mut properties = Properties::new();
        assert_eq!(delay_level(properties.get(property::DELAY)), 0);
        assert!(wait_store_ok(properties.get(property::WAIT)));
        properties.insert(property::DELAY, "3");
        properties.insert(property::WAIT, "FALSE");
        assert_eq!(delay_level(properties.get(property::DELAY)), 3);
        assert!(!wait_store_ok(properties.get(property::WAIT)));
        properties.insert(property::DELAY, "x");
        assert_eq!(delay_level(properties.get(property::DELAY)), 0);
    }
}
