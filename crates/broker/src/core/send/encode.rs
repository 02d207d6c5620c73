//! Turning a send into stored records: one message after the delay or timer rewrite (a
//! transaction half message parked in the half topic), the common message with its properties kept as
//! sent, and batches.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use apogee_common::message::batch::batch_item_refs;
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties, RecordProperties, SentProperties};
use apogee_common::message::record::{self, RecordParts};
use apogee_common::message::{sysflag, IdText, Message, MessageExt};
use apogee_common::time::now_ms;
use apogee_common::topic::{self, TopicConfig, TopicFilterType};
use apogee_remoting::code::response_code;
use apogee_remoting::recall::RecallHandle;
use apogee_store::PutStatus;

use super::{put_error, Answer, PreparedSend, Receipt, SendRequest};
use crate::core::caller::Caller;
use crate::core::error::{CoreResult, Error};
use crate::core::timer::{self, Ingress};
use crate::core::transaction;
use crate::BrokerState;

/// Longest topic of a batch, in bytes: batch records always use the 1-byte topic length.
pub const MAX_BATCH_TOPIC_BYTES: usize = i8::MAX as usize;
/// Longest properties string a message may carry, in bytes (an `i16` length on disk).
pub const MAX_PROPERTIES_BYTES: usize = property::MAX_ENCODED_BYTES;
/// Property values Java's `Boolean.parseBoolean` reads as true (case-insensitively).
const TRUE: &str = "true";
/// Topic attribute naming the retention policy.
const CLEANUP_POLICY_ATTRIBUTE: &str = "cleanup.policy";
/// Retention policy value of compacted topics.
const COMPACTION: &str = "COMPACTION";
/// Bytes reserved per batch record for the properties the broker adds (`UNIQ_KEY`,
/// `CLUSTER`), so the batch buffer is allocated once.
const ADDED_PROPERTIES_ALLOWANCE: usize = 128;

/// Where a single message is stored, after the retry and delay rewrites.
pub(super) struct Destination {
    pub(super) topic: String,
    pub(super) queue_id: i32,
    /// The queue the send chose before any rewrite.
    pub(super) chosen_queue_id: i32,
    pub(super) config: Arc<TopicConfig>,
}

/// One message, after any retry redirect: the stored record after the delay rewrite, or a
/// transaction half message parked in the half topic (refused with
/// `rejectTransactionMessage`).
pub(super) fn one(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
    mut destination: Destination,
    mut properties: Properties,
) -> CoreResult<PreparedSend> {
    // The result names the queue the producer chose, wherever the message is parked.
    let queue_id = destination.chosen_queue_id;
    let reconsume_times = request.reconsume_times.unwrap_or(0);
    let uniq_key = IdText::from(ensure_uniq_key(state, &mut properties));
    if is_compaction_topic(&destination.config) && property::keys(&properties).next().is_none() {
        return Err(Error::new(response_code::MESSAGE_ILLEGAL, "Required message key is missing"));
    }
    properties.insert(property::CLUSTER, state.config.broker_cluster_name.as_str());

    let mut sys_flag = stored_sys_flag(request.sys_flag, &destination.config);
    let mut timer_out_ms = None;
    let delay_level = delay_level(properties.get(property::DELAY));
    if is_half_message(&properties, sys_flag, reconsume_times, delay_level) {
        if state.config.reject_transaction_message {
            return Err(half_message_refused(state));
        }
        transaction::park_half(
            &mut destination.topic,
            &mut destination.queue_id,
            &mut properties,
            &mut sys_flag,
        );
    } else if matches!(
        sysflag::transaction_type(sys_flag),
        sysflag::TRANSACTION_NOT_TYPE | sysflag::TRANSACTION_COMMIT_TYPE
    ) {
        if delay_level > 0 {
            // The level wins: the redirect drops any timer property, as Java does.
            crate::schedule::redirect_fields_to_schedule_topic(
                &mut destination.topic,
                &mut destination.queue_id,
                &mut properties,
                delay_level,
                state.schedule.max_level(),
            );
        } else if let Ingress::Parked { out_ms } = timer::apply_on_send(
            &state.timer,
            &mut destination.topic,
            &mut destination.queue_id,
            &mut properties,
            now_ms(),
        )? {
            timer_out_ms = Some(out_ms);
        }
    }

    let wait_store_ok = wait_store_ok(properties.get(property::WAIT));
    let recall_handle = recall_handle(state, &properties, timer_out_ms, &uniq_key);
    let ext = MessageExt {
        message: Message {
            topic: destination.topic,
            flag: request.flag,
            properties,
            body: request.body.clone(),
        },
        queue_id: destination.queue_id,
        sys_flag,
        born_timestamp: request.born_timestamp_ms,
        born_host: caller.remote_addr,
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
        return Err(put_error(state, PutStatus::MessageIllegal));
    }
    Ok(PreparedSend {
        records,
        wait_store_ok,
        receipt: Receipt::new(Answer::One { queue_id, uniq_key, recall_handle }),
    })
}

/// The recall handle of a message parked in the timer topic until `timer_out_ms` (Java
/// `attachRecallHandle`): none for other messages and for retry topics.
fn recall_handle(
    state: &BrokerState,
    properties: &Properties,
    timer_out_ms: Option<i64>,
    uniq_key: &str,
) -> Option<String> {
    let out_ms = timer_out_ms?;
    let real_topic = properties.get(property::REAL_TOPIC)?;
    if topic::is_retry_topic(real_topic) {
        return None;
    }
    // One past the slot time, so the recall's own timer rounds into the same slot.
    let timestamp = out_ms.saturating_add(1).to_string();
    Some(RecallHandle::build(real_topic, &state.config.broker_name, &timestamp, uniq_key))
}

/// [`one`] for the common message, without a properties map: the producer's string is stored
/// as sent with `UNIQ_KEY` (when missing) and `CLUSTER` appended, which is what decoding it,
/// adding both and encoding the map again stores. `Ok(None)` for what needs the map: a
/// transaction half message, a delay level, a compacted topic (its key check), a string the
/// map would normalise (see [`SentProperties::parse`]).
pub(super) fn as_sent(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
    config: &TopicConfig,
    queue_id: i32,
) -> CoreResult<Option<PreparedSend>> {
    if is_compaction_topic(config) {
        return Ok(None);
    }
    let Some(sent) = SentProperties::parse(request.properties.unwrap_or_default()) else {
        return Ok(None);
    };
    let prepared = sysflag::transaction_type(request.sys_flag) == sysflag::TRANSACTION_PREPARED_TYPE;
    if prepared || sent.get(property::TRAN_MSG).is_some() || sent.get(property::DELAY).is_some() {
        return Ok(None);
    }
    let timer = [property::TIMER_DELIVER_MS, property::TIMER_DELAY_SEC, property::TIMER_DELAY_MS];
    if timer.iter().any(|key| sent.get(key).is_some()) {
        return Ok(None);
    }
    let mut generated = None;
    let Some(properties) = stamp_sent(state, sent, &mut generated) else { return Ok(None) };
    let template = RecordTemplate::new(state, caller, request, config, queue_id);
    let mut records = Vec::new();
    template.encode(&mut records, request.body, request.flag, &properties)?;
    Ok(Some(PreparedSend {
        records,
        wait_store_ok: wait_store_ok(properties.get(property::WAIT)),
        receipt: Receipt::new(Answer::One {
            queue_id,
            uniq_key: IdText::from(properties.get(property::UNIQ_KEY).unwrap_or_default()),
            recall_handle: None,
        }),
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

/// What every record of one send shares, and how one is encoded.
struct RecordTemplate<'a> {
    state: &'a BrokerState,
    request: &'a SendRequest<'a>,
    born_host: SocketAddr,
    queue_id: i32,
    sys_flag: i32,
}

impl<'a> RecordTemplate<'a> {
    fn new(
        state: &'a BrokerState,
        caller: &Caller,
        request: &'a SendRequest<'a>,
        config: &TopicConfig,
        queue_id: i32,
    ) -> Self {
        let sys_flag = stored_sys_flag(request.sys_flag, config);
        Self { state, request, born_host: caller.remote_addr, queue_id, sys_flag }
    }

    /// Appends the record of one message to `records`; one that cannot be stored (too long a
    /// topic or properties string) is MESSAGE_ILLEGAL.
    fn encode(
        &self,
        records: &mut Vec<u8>,
        body: &[u8],
        flag: i32,
        properties: &dyn RecordProperties,
    ) -> CoreResult<()> {
        let parts = RecordParts {
            topic: self.request.topic,
            body,
            properties,
            flag,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.request.born_timestamp_ms,
            born_host: self.born_host,
            store_host: self.state.store_host,
            reconsume_times: self.request.reconsume_times.unwrap_or(0),
            queue_offset: 0,
            commit_log_offset: 0,
            store_timestamp: 0,
            prepared_transaction_offset: 0,
        };
        record::encode_parts(&parts, record::body_crc(body), records).map_err(|error| {
            tracing::debug!(%error, topic = %self.request.topic, "message refused: cannot encode");
            put_error(self.state, PutStatus::MessageIllegal)
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

/// Whether the topic keeps only the latest message per key (`cleanup.policy=COMPACTION`), so
/// every message needs a key.
fn is_compaction_topic(config: &TopicConfig) -> bool {
    config
        .attributes
        .get(CLEANUP_POLICY_ATTRIBUTE)
        .is_some_and(|policy| policy.eq_ignore_ascii_case(COMPACTION))
}

/// Whether a send is a transaction half message: one flagged `TRAN_MSG=true` or with the
/// prepared sysflag, except the retry of a consumed one (a reconsumed message with a delay
/// level, which clients before 4.6.1 send with the flag still set), as Java tells them apart.
fn is_half_message(properties: &Properties, sys_flag: i32, reconsume_times: i32, delay_level: i32) -> bool {
    let flagged = properties.get(property::TRAN_MSG).is_some_and(|flag| flag.eq_ignore_ascii_case(TRUE))
        || sysflag::transaction_type(sys_flag) == sysflag::TRANSACTION_PREPARED_TYPE;
    flagged && !(reconsume_times > 0 && delay_level > 0)
}

/// The answer to a half message when `rejectTransactionMessage` is set: Java's code and remark.
fn half_message_refused(state: &BrokerState) -> Error {
    tracing::warn!(broker = %state.config.broker_ip1, "transaction half message refused: rejectTransactionMessage is set");
    Error::new(
        response_code::NO_PERMISSION,
        format!("the broker[{}] sending transaction message is forbidden", state.config.broker_ip1),
    )
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

/// A batch: every item becomes a full record of the batch's topic and queue, all stored by
/// one append with consecutive queue offsets.
pub(super) fn batch(
    state: &BrokerState,
    caller: &Caller,
    request: &SendRequest<'_>,
    config: &TopicConfig,
    queue_id: i32,
) -> CoreResult<PreparedSend> {
    let illegal = |remark: String| Error::new(response_code::MESSAGE_ILLEGAL, remark);
    if request.topic.len() > MAX_BATCH_TOPIC_BYTES {
        return Err(illegal(format!("message topic length too long {}", request.topic.len())));
    }
    if topic::is_retry_topic(request.topic) {
        return Err(illegal(format!("batch request does not support retry group {}", request.topic)));
    }
    if sysflag::transaction_type(request.sys_flag) != sysflag::TRANSACTION_NOT_TYPE {
        return Err(illegal("batch messages cannot be transactional".to_owned()));
    }
    let batch_properties = request.properties.map(property::decode).unwrap_or_default();
    if delay_level(batch_properties.get(property::DELAY)) > 0 {
        return Err(illegal("batch messages cannot be delayed".to_owned()));
    }
    let malformed = |error| illegal(format!("malformed batch body: {error}"));
    let body = request.body;
    // Every item is checked before any is encoded, as Java decodes the whole batch first.
    let count = batch_item_refs(body).try_fold(0usize, |count, item| item.map(|_| count + 1));
    let count = count.map_err(malformed)?;
    if count == 0 {
        return Err(illegal("the batch holds no message".to_owned()));
    }

    let template = RecordTemplate::new(state, caller, request, config, queue_id);
    let cluster = state.config.broker_cluster_name.as_str();
    let per_record_overhead =
        record::encoded_len(request.topic.len(), 0, ADDED_PROPERTIES_ALLOWANCE, template.sys_flag);
    let capacity = body.len().saturating_add(count.saturating_mul(per_record_overhead));
    let mut records = Vec::with_capacity(capacity);
    let mut record_lengths = Vec::with_capacity(count);
    let refuse_delayed = |delay: Option<&str>| match delay_level(delay) {
        level if level > 0 => Err(illegal("batch messages cannot be delayed".to_owned())),
        _ => Ok(()),
    };
    for item in batch_item_refs(body) {
        let item = item.map_err(malformed)?;
        let item_body = &body[item.body.clone()];
        let before = records.len();
        // Kept as sent when the string allows it (see `as_sent`); otherwise through the map,
        // as Java does.
        let mut generated = None;
        match SentProperties::parse(item.properties).and_then(|sent| stamp_sent(state, sent, &mut generated))
        {
            Some(properties) => {
                refuse_delayed(properties.get(property::DELAY))?;
                template.encode(&mut records, item_body, item.flag, &properties)?;
            }
            None => {
                let mut properties = property::decode(item.properties);
                refuse_delayed(properties.get(property::DELAY))?;
                ensure_uniq_key(state, &mut properties);
                properties.insert(property::CLUSTER, cluster);
                template.encode(&mut records, item_body, item.flag, &properties)?;
            }
        }
        record_lengths.push(records.len() - before);
    }

    Ok(PreparedSend {
        records,
        wait_store_ok: wait_store_ok(batch_properties.get(property::WAIT)),
        receipt: Receipt::new(Answer::Batch {
            queue_id,
            record_lengths,
            transaction_id: batch_properties.get(property::UNIQ_KEY).map(IdText::from),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
