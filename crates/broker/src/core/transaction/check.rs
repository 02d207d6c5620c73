//! The check-back service (behaviour spec §6.4): every `transactionCheckInterval` it walks the
//! half queue from where it stopped, and for each half message that no op record marks done
//! and that is older than its immunity time it asks a live producer of the group
//! (CHECK_TRANSACTION_STATE) whether to commit or roll back. The producer answers with
//! END_TRANSACTION ([`super::end`]).
//!
//! As in Java, asking first stores a copy of the half (its check count incremented), so the
//! walk can move on and the answer names the copy. A half asked about `transactionCheckMax`
//! times, or older than `fileReservedTime`, is parked in `TRANS_CHECK_MAX_TIME_TOPIC` and never
//! delivered. How far the walk got is the `CID_RMQ_SYS_TRANS` offset of the half queue; the op
//! queue's offset moves over op records whose halves are all behind it. Both are consumer
//! offsets, persisted with the others, so a restarted broker goes on from there.
//!
//! Beyond Java: op records also carry the transaction id, and a half whose transaction any op
//! record read in the round decided is not asked about, so a copy made for a check is not
//! committed a second time when the producer's own late END_TRANSACTION decided the original.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::msg_id::offset_msg_id;
use apogee_common::message::property;
use apogee_common::message::record::{self, RecordView};
use apogee_common::message::MessageExt;
use apogee_common::perm;
use apogee_common::time::now_ms;
use apogee_common::topic::{TRANS_CHECK_MAX_TIME_TOPIC, TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};
use apogee_remoting::header::send::CheckTransactionStateRequestHeader;
use apogee_remoting::{request_code, RemotingCommand};
use apogee_store::{AcceptAll, GetMessageStatus};

use super::op::{self, OpBatch};
use super::{immunity_ms, CHECK_GROUP, HALF_QUEUE_ID};
use crate::message::{self, InnerMessage};
use crate::BrokerState;

/// Most op records read in one round: they bound the memory of a round. When there are more,
/// halves are only skipped (never asked about) until the ops are read.
const MAX_OPS_PER_ROUND: usize = 50_000;
/// Most halves looked at in one round.
const MAX_HALVES_PER_ROUND: usize = 10_000;
/// Longest a round may walk (Java's `MAX_PROCESS_TIME_LIMIT`).
const MAX_ROUND_MS: u64 = 60_000;
/// Shortest wait between rounds, whatever `transactionCheckInterval` says.
const MIN_CHECK_INTERVAL_MS: u64 = 100;
/// Bytes asked for when reading one half.
const READ_HALF_BYTES: u64 = 8 * 1024 * 1024;
/// Hours to ms.
const MS_PER_HOUR: i64 = 3_600_000;

/// Runs a check round every `transactionCheckInterval` until the broker stops, after
/// remembering the transactions the op records not yet moved past decided.
pub async fn run(state: Arc<BrokerState>) {
    let period = Duration::from_millis(state.config.transaction_check_interval_ms.max(MIN_CHECK_INTERVAL_MS));
    let mut stopping = state.stopping.clone();
    let next_channel = AtomicUsize::new(0);
    let owner = Arc::clone(&state);
    if let Err(error) = tokio::task::spawn_blocking(move || remember_decided(&owner)).await {
        tracing::error!(%error, "decided transactions not read back");
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        if state.replication.is_master() {
            round(&state, &next_channel).await;
        }
    }
}

/// What to do with one half in walk order.
#[derive(Debug)]
enum Step {
    /// Asked `transactionCheckMax` times or too old: park it in `TRANS_CHECK_MAX_TIME_TOPIC`.
    Discard(MessageExt),
    /// Still within its own (longer) immunity time: store a copy at the end of the queue that
    /// remembers this offset, so the walk can go on.
    Defer(MessageExt),
    /// Ask the producer, with this check count.
    Check(MessageExt, u32),
}

/// What one walk found, read on a blocking thread.
#[derive(Debug, Default)]
struct Walk {
    half_offset: i64,
    op_offset: i64,
    /// Halves to act on, with the half offset to record once each is done.
    steps: Vec<(Step, i64)>,
    /// Where the half offset ends when every step succeeded.
    end: i64,
    ops: OpBatch,
}

/// Fills the broker's decided transactions from the op records after the recorded op offset.
fn remember_decided(state: &BrokerState) {
    let op_offset = state
        .offsets
        .query(CHECK_GROUP, TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID)
        .unwrap_or_else(|| state.store.min_offset(TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID));
    let ops = op::read(state, op_offset, super::decided::MAX_DECIDED_IDS);
    for id in ops.ops.into_iter().filter_map(|op| op.transaction_id) {
        state.transactions.insert(id);
    }
    if !state.transactions.is_empty() {
        tracing::info!(
            decided = state.transactions.len(),
            "decided transactions read back from the op records"
        );
    }
}

/// One check round: walk, act on each half in order, record progress. A step that fails
/// stops the round at that half, which the next round takes again.
async fn round(state: &Arc<BrokerState>, next_channel: &AtomicUsize) {
    let started_ms = now_ms();
    let owner = Arc::clone(state);
    let walk = match tokio::task::spawn_blocking(move || walk(&owner, started_ms)).await {
        Ok(Some(walk)) => walk,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, "transaction check walk failed");
            return;
        }
    };
    let mut reached = walk.end;
    let mut checked = 0usize;
    for (step, next) in walk.steps {
        let done = match step {
            Step::Discard(half) => discard(state, half).await,
            Step::Defer(half) => defer(state, half).await,
            Step::Check(half, times) => {
                let asked = check(state, half, times, next_channel).await;
                checked += usize::from(asked);
                asked
            }
        };
        if !done {
            reached = next - 1;
            break;
        }
    }
    if reached != walk.half_offset {
        state.offsets.commit(CHECK_GROUP, TRANS_HALF_TOPIC, HALF_QUEUE_ID, reached);
    }
    let op_offset = done_op_offset(&walk.ops, walk.op_offset, reached);
    if op_offset != walk.op_offset {
        state.offsets.commit(CHECK_GROUP, TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID, op_offset);
    }
    if checked > 0 || reached != walk.half_offset {
        tracing::info!(half_offset = reached, op_offset, checked, "transaction check round done");
    }
}

/// Walks the half queue from the recorded offset (on a blocking thread: reads touch the
/// mapped commit log). `None` when there is nothing to walk.
fn walk(state: &BrokerState, started_ms: i64) -> Option<Walk> {
    let store = &state.store;
    let half_offset = state
        .offsets
        .query(CHECK_GROUP, TRANS_HALF_TOPIC, HALF_QUEUE_ID)
        .unwrap_or_else(|| store.min_offset(TRANS_HALF_TOPIC, HALF_QUEUE_ID));
    let op_offset = state
        .offsets
        .query(CHECK_GROUP, TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID)
        .unwrap_or_else(|| store.min_offset(TRANS_OP_HALF_TOPIC, HALF_QUEUE_ID));
    let half_max = store.max_offset(TRANS_HALF_TOPIC, HALF_QUEUE_ID);
    if half_offset >= half_max {
        return None;
    }
    let ops = op::read(state, op_offset, MAX_OPS_PER_ROUND);
    let decided = Decided::from(&ops);
    let config = &state.config;
    let reserved_ms =
        i64::try_from(config.store.file_reserved_time_hours).unwrap_or(i64::MAX / MS_PER_HOUR) * MS_PER_HOUR;
    let walk_started = Instant::now();
    let mut walk =
        Walk { half_offset, op_offset, steps: Vec::new(), end: half_offset, ops: OpBatch::default() };
    let mut offset = half_offset;
    let mut looked = 0usize;
    // Transactions already acted on this round: an older copy of one (left behind when a
    // restart lost the recorded offset) is passed over, so each is asked about once.
    let mut acted_on: HashSet<String> = HashSet::new();
    while offset < half_max
        && looked < MAX_HALVES_PER_ROUND
        && walk_started.elapsed().as_millis() < u128::from(MAX_ROUND_MS)
    {
        looked += 1;
        if decided.offsets.contains(&offset) {
            offset += 1;
            walk.end = offset;
            continue;
        }
        let half = match read_half(state, offset) {
            HalfRead::Found(half) => *half,
            HalfRead::Gone { next } => {
                offset = next;
                walk.end = offset;
                continue;
            }
            HalfRead::End => break,
        };
        let transaction_id = half.message.properties.get(property::TRANSACTION_ID).map(str::to_owned);
        if decided.covers(&half) || transaction_id.as_ref().is_some_and(|id| acted_on.contains(id)) {
            offset += 1;
            walk.end = offset;
            continue;
        }
        let times = check_times(&half);
        let now = now_ms();
        if times >= config.transaction_check_max || now.saturating_sub(half.born_timestamp) > reserved_ms {
            offset += 1;
            acted_on.extend(transaction_id);
            walk.steps.push((Step::Discard(half), offset));
            walk.end = offset;
            continue;
        }
        if half.store_timestamp >= started_ms {
            break;
        }
        let immunity = half.message.properties.get(property::CHECK_IMMUNITY_TIME_IN_SECONDS);
        let immunity_ms = immunity_ms(immunity, config.transaction_timeout_ms);
        let age_ms = now.saturating_sub(half.born_timestamp);
        if (0..=immunity_ms).contains(&age_ms) {
            if immunity.is_none() {
                // Halves behind this one are younger still.
                break;
            }
            offset += 1;
            acted_on.extend(transaction_id);
            walk.steps.push((Step::Defer(half), offset));
            walk.end = offset;
            continue;
        }
        if ops.truncated {
            // An unread op record may decide this half: do not ask until it is read.
            break;
        }
        offset += 1;
        acted_on.extend(transaction_id);
        walk.steps.push((Step::Check(half, times.saturating_add(1)), offset));
        walk.end = offset;
    }
    walk.ops = ops;
    Some(walk)
}

/// What the op records of a round decided.
#[derive(Debug, Default)]
struct Decided {
    /// Half queue offsets marked done.
    offsets: HashSet<i64>,
    /// Transactions decided (from op records that name them).
    transaction_ids: HashSet<String>,
}

impl From<&OpBatch> for Decided {
    fn from(ops: &OpBatch) -> Self {
        Self {
            offsets: ops.ops.iter().flat_map(|op| op.half_offsets.iter().copied()).collect(),
            transaction_ids: ops.ops.iter().filter_map(|op| op.transaction_id.clone()).collect(),
        }
    }
}

impl Decided {
    /// Whether a half is decided through another copy of it: the original a deferred copy
    /// names in `TRAN_PREPARED_QUEUE_OFFSET`, or any copy of its transaction.
    fn covers(&self, half: &MessageExt) -> bool {
        let properties = &half.message.properties;
        let original_decided = properties
            .get(property::TRAN_PREPARED_QUEUE_OFFSET)
            .and_then(|offset| offset.trim().parse::<i64>().ok())
            .is_some_and(|original| self.offsets.contains(&original));
        original_decided
            || properties.get(property::TRANSACTION_ID).is_some_and(|id| self.transaction_ids.contains(id))
    }
}

/// How many times a half was asked about so far.
fn check_times(half: &MessageExt) -> u32 {
    half.message
        .properties
        .get(property::TRANSACTION_CHECK_TIMES)
        .and_then(|times| times.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// The op queue offset to record: past every op record, in order, whose halves all lie
/// behind `half_offset` (they can decide nothing any more).
fn done_op_offset(ops: &OpBatch, op_offset: i64, half_offset: i64) -> i64 {
    let mut reached = op_offset;
    for op in &ops.ops {
        if op.half_offsets.iter().any(|&offset| offset >= half_offset) {
            break;
        }
        reached = op.queue_offset + 1;
    }
    reached
}

/// One half read from the half queue.
enum HalfRead {
    Found(Box<MessageExt>),
    /// Nothing readable at the offset; reading goes on at `next`.
    Gone {
        next: i64,
    },
    /// The queue has nothing more.
    End,
}

fn read_half(state: &BrokerState, offset: i64) -> HalfRead {
    let result =
        state.store.get_messages(TRANS_HALF_TOPIC, HALF_QUEUE_ID, offset, 1, READ_HALF_BYTES, &AcceptAll);
    match result.status {
        GetMessageStatus::Found => {}
        _ if result.next_begin_offset > offset => return HalfRead::Gone { next: result.next_begin_offset },
        _ => return HalfRead::End,
    }
    let Some(record) = result.messages.first() else { return HalfRead::End };
    match RecordView::parse(record.as_slice(), false) {
        Ok(view) => HalfRead::Found(Box::new(view.to_message_ext())),
        Err(error) => {
            tracing::error!(offset, %error, "unreadable half message skipped");
            HalfRead::Gone { next: offset + 1 }
        }
    }
}

/// A copy of a half with its offsets cleared, to store again.
fn copy_of(half: &MessageExt, topic: &str, queue_id: i32) -> InnerMessage {
    let mut copy = InnerMessage::from_ext(half);
    copy.topic = topic.to_owned();
    copy.queue_id = queue_id;
    copy
}

/// Parks a half asked about too often (or too old) in `TRANS_CHECK_MAX_TIME_TOPIC`.
async fn discard(state: &Arc<BrokerState>, half: MessageExt) -> bool {
    if let Err(error) = state.topics.get_or_create_system(TRANS_CHECK_MAX_TIME_TOPIC, 1, perm::READ_WRITE) {
        tracing::error!(%error, "TRANS_CHECK_MAX_TIME_TOPIC not created");
        return false;
    }
    let result = message::put_message(state, &copy_of(&half, TRANS_CHECK_MAX_TIME_TOPIC, 0), false).await;
    let stored = result.status.is_stored();
    if stored {
        tracing::warn!(
            uniq_key = half.message.properties.get(property::UNIQ_KEY).unwrap_or_default(),
            real_topic = half.message.properties.get(property::REAL_TOPIC).unwrap_or_default(),
            checks = check_times(&half),
            "transaction never decided: half message parked in TRANS_CHECK_MAX_TIME_TOPIC"
        );
    }
    stored
}

/// Stores a copy of a half within its immunity time at the end of the queue, naming the
/// original's offset so a decision on either is found.
async fn defer(state: &Arc<BrokerState>, half: MessageExt) -> bool {
    let mut copy = copy_of(&half, TRANS_HALF_TOPIC, HALF_QUEUE_ID);
    if copy.properties.get(property::TRAN_PREPARED_QUEUE_OFFSET).is_none() {
        copy.properties.insert(property::TRAN_PREPARED_QUEUE_OFFSET, half.queue_offset.to_string());
    }
    message::put_message(state, &copy, false).await.status.is_stored()
}

/// Stores a copy of the half with its check count, then asks a live producer of the group
/// about the copy (a producer that is not there is asked next round). False only when the
/// copy could not be stored.
async fn check(state: &Arc<BrokerState>, half: MessageExt, times: u32, next_channel: &AtomicUsize) -> bool {
    let mut copy = copy_of(&half, TRANS_HALF_TOPIC, HALF_QUEUE_ID);
    copy.properties.insert(property::TRANSACTION_CHECK_TIMES, times.to_string());
    let result = message::put_message(state, &copy, false).await;
    let Some(append) = result.append.filter(|_| result.status.is_stored()) else {
        tracing::warn!(status = ?result.status, "half message copy for a check not stored");
        return false;
    };
    let Ok(commit_log_offset) = i64::try_from(append.commit_log_offset) else { return false };
    let mut asked = half;
    asked.message.properties = copy.properties;
    asked.queue_offset = append.queue_offset;
    asked.commit_log_offset = commit_log_offset;
    ask_producer(state, &asked, next_channel).await;
    true
}

/// Asks one live producer of `half`'s group about it (as stored now): a remoting producer with
/// CHECK_TRANSACTION_STATE, oneway, the message under its real topic and queue as the body; a
/// group with no remoting producer is asked through another front (gRPC), if one serves it.
async fn ask_producer(state: &BrokerState, half: &MessageExt, next_channel: &AtomicUsize) {
    let properties = &half.message.properties;
    let group = properties.get(property::PGROUP).unwrap_or_default();
    let asked = under_real_topic(half);
    let channels = state.clients.producer_channels(group);
    if channels.is_empty() {
        let through_front =
            state.fronts.producers().is_some_and(|front| front.check_transaction(group, &asked));
        if through_front {
            tracing::info!(
                group,
                queue_offset = half.queue_offset,
                "transaction check sent through another front"
            );
        } else {
            tracing::warn!(group, "transaction check not sent: no live producer in the group");
        }
        return;
    }
    let channel = &channels[next_channel.fetch_add(1, Ordering::Relaxed) % channels.len()];
    let uniq_key = properties.get(property::UNIQ_KEY).map(str::to_owned);
    let offset_msg_id = offset_msg_id(state.store_host, half.commit_log_offset);
    let header = CheckTransactionStateRequestHeader {
        topic: Some(half.message.topic.clone()),
        tran_state_table_offset: half.queue_offset,
        commit_log_offset: half.commit_log_offset,
        msg_id: uniq_key.clone(),
        transaction_id: uniq_key,
        offset_msg_id: Some(offset_msg_id),
        bname: Some(state.config.broker_name.clone()),
    };
    let mut body = Vec::new();
    if let Err(error) = record::encode(&asked, &mut body) {
        tracing::error!(%error, group, "transaction check not sent: the half cannot be encoded");
        return;
    }
    let mut request = RemotingCommand::request(request_code::CHECK_TRANSACTION_STATE)
        .with_header(&header)
        .with_body(bytes::Bytes::from(body));
    request.serialize_type = channel.connection.last_serialize_type();
    match channel.connection.invoke_oneway(request).await {
        Ok(()) => {
            tracing::info!(group, client = %channel.client_id, queue_offset = half.queue_offset, "transaction check sent")
        }
        Err(error) => {
            tracing::warn!(group, client = %channel.client_id, %error, "transaction check not delivered")
        }
    }
}

/// `half` as its producer knows it: under its real topic and queue.
fn under_real_topic(half: &MessageExt) -> MessageExt {
    let properties = &half.message.properties;
    let mut asked = half.clone();
    if let Some(real_topic) = properties.get(property::REAL_TOPIC) {
        asked.message.topic = real_topic.to_owned();
    }
    if let Some(real_queue) = properties.get(property::REAL_QID).and_then(|queue| queue.trim().parse().ok()) {
        asked.queue_id = real_queue;
    }
    asked
}

#[cfg(test)]
mod tests {
    use super::op::Op;
    use super::*;

    fn ops(list: &[(i64, &[i64])]) -> OpBatch {
        OpBatch {
            ops: list
                .iter()
                .map(|(queue_offset, halves)| Op {
                    queue_offset: *queue_offset,
                    half_offsets: halves.to_vec(),
                    transaction_id: None,
                })
                .collect(),
            next_offset: list.last().map_or(0, |(offset, _)| offset + 1),
            truncated: false,
        }
    }

    #[test]
    fn the_op_offset_moves_over_ops_whose_halves_are_all_behind() {
        let read = ops(&[(10, &[1, 2]), (11, &[3]), (12, &[7]), (13, &[4])]);
        assert_eq!(done_op_offset(&read, 10, 4), 12, "op 12 names half 7, not walked yet");
        assert_eq!(done_op_offset(&read, 10, 8), 14);
        assert_eq!(done_op_offset(&read, 10, 0), 10);
        assert_eq!(done_op_offset(&ops(&[]), 10, 8), 10);
    }

    #[test]
    fn a_deferred_copy_is_decided_through_its_original() {
        let decided = Decided::from(&ops(&[(0, &[5])]));
        let mut copy = MessageExt::default();
        assert!(!decided.covers(&copy));
        copy.message.properties.insert(property::TRAN_PREPARED_QUEUE_OFFSET, "5");
        assert!(decided.covers(&copy));
        copy.message.properties.insert(property::TRAN_PREPARED_QUEUE_OFFSET, "6");
        assert!(!decided.covers(&copy));
    }

    #[test]
    fn a_check_copy_is_decided_through_its_transaction_id() {
        let mut read = ops(&[(0, &[5])]);
        read.ops[0].transaction_id = Some("TX1".to_owned());
        let decided = Decided::from(&read);
        let mut copy = MessageExt::default();
        copy.message.properties.insert(property::TRANSACTION_ID, "TX2");
        assert!(!decided.covers(&copy));
        copy.message.properties.insert(property::TRANSACTION_ID, "TX1");
        assert!(decided.covers(&copy));
    }
}
