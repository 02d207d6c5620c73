//! The append round: how the combiner (the appender thread, or a caller that queued
//! several appends, see [`crate::append_queue`]) writes the commit log and the consume queues.
//!
//! A round takes every pending append at once and, for each, assigns the commit-log offset and
//! the queue offset in the same step and patches them into the records. Then it writes the
//! whole round to the commit log with one `pwritev` per file, writes the consume-queue
//! entries and index keys, and either publishes them and answers (ASYNC_FLUSH) or hands the
//! round to the group commit (SYNC_FLUSH).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::record::{self, RecordView};
use apogee_common::time::now_ms;
use smallvec::SmallVec;

use crate::commit_log::{Reservation, BLANK_RECORD_BYTES};
use crate::config::FlushDiskType;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::dispatch::{dispatch_info, is_whole_record};
use crate::flush::PendingFlush;
use crate::mapped_file::MappedFile;
use crate::put::{AppendInfo, PutCallback, PutRequest, PutResult, PutStatus};
use crate::replica::AwaitReplicas;
use crate::running;
use crate::store::StoreInner;
use crate::{disk_guard, file_space};

/// Most appends taken in one round.
pub const MAX_APPENDS_PER_ROUND: usize = 4096;
/// Most bytes taken in one round.
pub const MAX_BYTES_PER_ROUND: usize = 32 * 1024 * 1024;
/// A round taking this long is logged: every append in it waited that long.
const SLOW_ROUND_WARN_MS: u64 = 20;
/// Longest topic accepted (the 2-byte length of magic V2 allows more; RocketMQ does not).
const MAX_TOPIC_BYTES: usize = 255;
/// Largest properties string (`i16` length).
const MAX_PROPERTIES_BYTES: usize = 32_767;

/// One queued append.
pub(crate) struct Pending {
    pub request: PutRequest,
    pub callback: PutCallback,
}

/// What dispatch needs of one record, as byte ranges into its request's buffer (the buffer is
/// patched between parse and dispatch, so no borrow can be kept).
struct RecordMeta {
    span: Range<usize>,
    tags_code: i64,
    keys: Option<Range<usize>>,
    uniq_key: Option<Range<usize>>,
    transaction_type: i32,
}

/// An append of the round, accepted so far.
struct Accepted {
    pending: Pending,
    queue: Arc<ConsumeQueue>,
    in_queue: bool,
    first_queue_offset: i64,
    records: Range<usize>,
    reservation: Reservation,
}

/// Scratch space reused across rounds so the steady state allocates little per message.
#[derive(Default)]
struct Round {
    pending: Vec<Pending>,
    accepted: Vec<Accepted>,
    metas: Vec<RecordMeta>,
    answered: Vec<(PutCallback, PutResult)>,
    waiting: Vec<(PutCallback, PutResult)>,
    touched: Vec<(Arc<ConsumeQueue>, i64)>,
}

/// What the combiner keeps between rounds (see [`crate::append_queue`]).
pub(crate) struct Rounds {
    round: Round,
    /// Store times never go backwards in log order, whatever the wall clock does.
    pub last_store_timestamp: i64,
    /// On a slave: how far the records written by replication are dispatched (`None` until
    /// the first replicated range; recovery dispatched everything whole before it).
    pub replica_dispatched: Option<u64>,
}

impl Rounds {
    /// Rounds continuing a commit log whose newest record was stored at
    /// `last_store_timestamp`.
    pub fn new(last_store_timestamp: i64) -> Self {
        Self { round: Round::default(), last_store_timestamp, replica_dispatched: None }
    }

    /// Answers every append a panicked round still holds: those it had answered already get
    /// their result, the others UNKNOWN_ERROR (they may be written but are not published).
    pub fn abandon(&mut self) {
        let round = &mut self.round;
        let unanswered = round
            .pending
            .drain(..)
            .map(|pending| pending.callback)
            .chain(round.accepted.drain(..).map(|accepted| accepted.pending.callback));
        let mut answers: Vec<(PutCallback, PutResult)> =
            unanswered.map(|callback| (callback, PutResult::failed(PutStatus::UnknownError))).collect();
        answers.extend(
            round
                .waiting
                .drain(..)
                .map(|(callback, _)| (callback, PutResult::failed(PutStatus::UnknownError))),
        );
        answers.append(&mut round.answered);
        round.metas.clear();
        round.touched.clear();
        for (callback, result) in answers {
            // Another panicking callback must not take the rest down with it.
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback.done(result)));
            if answered.is_err() {
                tracing::error!("an append callback panicked");
            }
        }
    }
}

/// Moves the next round's appends from `queue`: all of them, up to [`MAX_APPENDS_PER_ROUND`]
/// appends and [`MAX_BYTES_PER_ROUND`] bytes (at least one).
pub(crate) fn take_round(queue: &mut VecDeque<Pending>, rounds: &mut Rounds) {
    let pending = &mut rounds.round.pending;
    debug_assert!(pending.is_empty(), "a round starts empty");
    let mut bytes = 0;
    while pending.len() < MAX_APPENDS_PER_ROUND && bytes < MAX_BYTES_PER_ROUND {
        let Some(next) = queue.pop_front() else { break };
        bytes += next.request.records.len();
        pending.push(next);
    }
}

/// Appends the round [`take_round`] took and answers it.
pub(crate) fn run_round(inner: &StoreInner, rounds: &mut Rounds) {
    let store_timestamp = now_ms().max(rounds.last_store_timestamp);
    rounds.last_store_timestamp = store_timestamp;
    let started = Instant::now();
    let appends = rounds.round.pending.len();
    append_round(inner, &mut rounds.round, store_timestamp);
    let elapsed = started.elapsed();
    if elapsed >= Duration::from_millis(SLOW_ROUND_WARN_MS) {
        // Java logs the same ("putMessage in lock cost time"): sends waited this long.
        tracing::warn!(elapsed_ms = elapsed.as_millis() as u64, appends, "slow append round");
    }
}

fn append_round(inner: &StoreInner, round: &mut Round, store_timestamp: i64) {
    let sync_flush = inner.config.flush_disk_type == FlushDiskType::SyncFlush;
    round.metas.clear();
    let mut queue_cache: Option<Arc<ConsumeQueue>> = None;

    // 1. Validate, assign offsets, patch.
    for mut pending in round.pending.drain(..) {
        let first_meta = round.metas.len();
        match prepare(inner, &mut pending.request, store_timestamp, &mut round.metas, &mut queue_cache) {
            Ok((queue, in_queue, first_queue_offset, reservation)) => round.accepted.push(Accepted {
                pending,
                queue,
                in_queue,
                first_queue_offset,
                records: first_meta..round.metas.len(),
                reservation,
            }),
            Err(status) => {
                round.metas.truncate(first_meta);
                round.answered.push((pending.callback, PutResult::failed(status)));
            }
        }
    }

    // 2. Write the round: one pwritev per file, then publish.
    if let Err(error) = write_round(inner, &round.accepted, store_timestamp) {
        tracing::error!(%error, "commit log write failed; store stops accepting writes");
        inner.running.set(if file_space::is_out_of_space(&error) {
            running::DISK_FULL
        } else {
            running::NOT_WRITEABLE
        });
        for accepted in round.accepted.drain(..) {
            round.answered.push((accepted.pending.callback, PutResult::failed(PutStatus::UnknownError)));
        }
    }

    // 3. Consume-queue entries and index keys; answers.
    for accepted in round.accepted.drain(..) {
        let Accepted { pending, queue, in_queue, first_queue_offset, records, reservation } = accepted;
        let buffer = &pending.request.records;
        let base = reservation.offset() as i64;
        let count = records.len();
        for (index, meta) in round.metas[records].iter().enumerate() {
            let commit_log_offset = base + meta.span.start as i64;
            if in_queue {
                let entry =
                    CqEntry { commit_log_offset, size: meta.span.len() as i32, tags_code: meta.tags_code };
                if let Err(error) = queue.put(first_queue_offset + index as i64, entry) {
                    tracing::error!(topic = queue.topic(), %error, "consume queue write failed; store stops accepting writes");
                    inner.running.set(running::WRITE_LOGICS_QUEUE_ERROR);
                }
            }
            if let Some(index_service) = &inner.index {
                let text = |range: &Option<Range<usize>>| {
                    range.as_ref().and_then(|range| std::str::from_utf8(&buffer[range.clone()]).ok())
                };
                let indexed = index_service.build_index(
                    queue.topic(),
                    text(&meta.keys),
                    text(&meta.uniq_key),
                    commit_log_offset,
                    store_timestamp,
                    meta.transaction_type,
                );
                match indexed {
                    Ok(()) => {}
                    // The message is stored and in its queue; only its keys are not
                    // searchable. Refuse more until the disk has room.
                    Err(error) if file_space::is_out_of_space(&error) => {
                        tracing::warn!(commit_log_offset, "message stored without its index keys");
                        disk_guard::out_of_space(inner, "index file", &error);
                    }
                    Err(error) => {
                        tracing::error!(%error, "index write failed; store stops accepting writes");
                        inner.running.set(running::WRITE_INDEX_FILE_ERROR);
                    }
                }
            }
        }
        if in_queue {
            round.touched.push((Arc::clone(&queue), first_queue_offset + count as i64));
        }
        let callback = match inner.replication.get() {
            Some(replication) if pending.request.wait_store_ok && replication.waits_for_replicas() => {
                Box::new(AwaitReplicas {
                    replication: Arc::clone(replication),
                    next_offset: base as u64 + buffer.len() as u64,
                    callback: pending.callback,
                }) as PutCallback
            }
            _ => pending.callback,
        };
        let result = PutResult {
            status: PutStatus::PutOk,
            append: Some(AppendInfo {
                commit_log_offset: base as u64,
                wrote_bytes: buffer.len() as u32,
                queue_offset: first_queue_offset,
                message_count: count as u32,
                store_timestamp,
            }),
        };
        if sync_flush && pending.request.wait_store_ok {
            round.waiting.push((callback, result));
        } else {
            round.answered.push((callback, result));
        }
    }
    inner.dispatched_store_timestamp.store(store_timestamp, Ordering::Release);
    if let Some(replication) = inner.replication.get() {
        replication.appended(inner.commit_log.max_offset());
    }
    if inner.commit_log.wants_next_file() {
        inner.wake_allocator();
    }

    if sync_flush {
        if !round.touched.is_empty() || !round.waiting.is_empty() {
            inner.group_commit.push(PendingFlush {
                end_offset: inner.commit_log.max_offset(),
                deadline: Instant::now() + Duration::from_millis(inner.config.sync_flush_timeout_ms),
                waiters: std::mem::take(&mut round.waiting),
                publications: std::mem::take(&mut round.touched),
            });
        }
    } else {
        inner.publish(&mut round.touched);
    }
    // Popped one by one (oldest first), not drained: should a callback panic, the answers
    // not given yet stay here for `Rounds::abandon`.
    round.answered.reverse();
    while let Some((callback, result)) = round.answered.pop() {
        callback.done(result);
    }
}

/// Validates the records of one request, reserves their place, assigns their offsets and
/// patches them in. Never panics on the request's contents.
fn prepare(
    inner: &StoreInner,
    request: &mut PutRequest,
    store_timestamp: i64,
    metas: &mut Vec<RecordMeta>,
    queue_cache: &mut Option<Arc<ConsumeQueue>>,
) -> Result<(Arc<ConsumeQueue>, bool, i64, Reservation), PutStatus> {
    // Replica-only is checked again here, not only when the append was queued: appends queued
    // just before the store became a slave's must not land after its master's bytes.
    if !inner.running.is_writeable() || inner.replica_only.load(Ordering::Acquire) {
        return Err(PutStatus::ServiceNotAvailable);
    }
    let records = &mut request.records;
    let first_meta = metas.len();
    let mut target: Option<(Arc<ConsumeQueue>, bool)> = None;
    let mut position = 0;
    while position < records.len() {
        let view = RecordView::parse(&records[position..], false).map_err(|error| {
            tracing::debug!(%error, "append refused: malformed record");
            PutStatus::MessageIllegal
        })?;
        if view.body().len() > inner.config.max_message_size as usize || view.topic().len() > MAX_TOPIC_BYTES
        {
            return Err(PutStatus::MessageIllegal);
        }
        if view.properties_str().len() > MAX_PROPERTIES_BYTES {
            return Err(PutStatus::PropertiesSizeExceeded);
        }
        if !is_whole_record(&view) {
            tracing::debug!("append refused: properties not ended by U+0002, or NUL in the topic");
            return Err(PutStatus::MessageIllegal);
        }
        let info = dispatch_info(&view, store_timestamp, &inner.delay_levels);
        match &target {
            None => {
                target = Some((
                    queue_of(inner, view.topic(), view.queue_id(), queue_cache)?,
                    info.goes_to_consume_queue(),
                ))
            }
            Some((queue, _)) => {
                if queue.topic() != view.topic() || queue.queue_id() != view.queue_id() {
                    return Err(PutStatus::MessageIllegal);
                }
            }
        }
        let size = view.total_size() as usize;
        metas.push(RecordMeta {
            span: position..position + size,
            tags_code: info.tags_code,
            keys: info.keys.map(|keys| range_in(records, keys.as_bytes())),
            uniq_key: info.uniq_key.map(|uniq| range_in(records, uniq.as_bytes())),
            transaction_type: info.transaction_type,
        });
        position += size;
    }
    let Some((queue, in_queue)) = target else {
        return Err(PutStatus::MessageIllegal);
    };
    if records.len() as u64 + BLANK_RECORD_BYTES > inner.commit_log.file_size_bytes() {
        return Err(PutStatus::MessageIllegal);
    }
    // Every file this append will write is allocated before any of its bytes are written:
    // past this point only page-cache copies remain, which a full disk cannot fail.
    if in_queue {
        queue
            .ensure_room((metas.len() - first_meta) as i64)
            .map_err(|error| file_creation_failed(inner, "consume-queue file", &error))?;
    }
    let reservation = inner
        .commit_log
        .reserve(records.len() as u64)
        .map_err(|error| file_creation_failed(inner, "commit-log file", &error))?;
    // Nothing can fail from here on, so offsets handed out are always used.
    let first_queue_offset =
        if in_queue { queue.reserve_offsets((metas.len() - first_meta) as i64) } else { 0 };
    let base = reservation.offset();
    for (index, meta) in metas[first_meta..].iter().enumerate() {
        let record = &mut records[meta.span.clone()];
        let queue_offset = if in_queue { first_queue_offset + index as i64 } else { 0 };
        let patched = record::set_queue_offset(record, queue_offset)
            .and_then(|()| record::set_physical_offset(record, (base + meta.span.start as u64) as i64))
            .and_then(|()| record::set_store_timestamp(record, store_timestamp));
        debug_assert!(patched.is_ok(), "every record was parsed before the patch");
    }
    Ok((queue, in_queue, first_queue_offset, reservation))
}

/// The answer to an append whose file could not be made: a full disk refuses like the disk
/// guard does (and raises its flag), anything else is Java's CREATE_MAPPED_FILE_FAILED.
fn file_creation_failed(inner: &StoreInner, what: &str, error: &io::Error) -> PutStatus {
    if file_space::is_out_of_space(error) {
        disk_guard::out_of_space(inner, what, error);
        return PutStatus::ServiceNotAvailable;
    }
    if error.kind() == io::ErrorKind::InvalidInput {
        tracing::debug!(%error, what, "append refused");
        return PutStatus::MessageIllegal;
    }
    tracing::error!(%error, what, "file could not be created");
    PutStatus::CreateMappedFileFailed
}

/// The consume queue of (`topic`, `queue_id`), from the round's one-entry cache when it is
/// the same queue as the previous append (the common case under load).
fn queue_of(
    inner: &StoreInner,
    topic: &str,
    queue_id: i32,
    cache: &mut Option<Arc<ConsumeQueue>>,
) -> Result<Arc<ConsumeQueue>, PutStatus> {
    if let Some(queue) = cache.as_ref().filter(|queue| queue.queue_id() == queue_id && queue.topic() == topic)
    {
        return Ok(Arc::clone(queue));
    }
    let queue = inner.queues.get_or_create(topic, queue_id).map_err(|error| {
        tracing::warn!(%topic, queue_id, %error, "append refused: consume queue unavailable");
        PutStatus::MessageIllegal
    })?;
    *cache = Some(Arc::clone(&queue));
    Ok(queue)
}

/// The range of `part` (a sub-slice of `whole`) within `whole`.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// Writes every accepted append of the round and publishes the bytes.
fn write_round(inner: &StoreInner, accepted: &[Accepted], store_timestamp: i64) -> io::Result<()> {
    let mut index = 0;
    while index < accepted.len() {
        let file = Arc::clone(&accepted[index].reservation.file);
        if let Some(closed) = &accepted[index].reservation.closed {
            inner.commit_log.publish(closed, closed.size_bytes(), store_timestamp);
        }
        let start = accepted[index].reservation.position;
        // On the stack for rounds of up to 64 appends (under load a round holds a socket
        // read's worth of sends).
        let mut slices: SmallVec<[IoSlice<'_>; 64]> = SmallVec::new();
        let mut end = start;
        while index < accepted.len() && same_file(&accepted[index].reservation.file, &file) {
            let records = &accepted[index].pending.request.records;
            debug_assert_eq!(accepted[index].reservation.position, end, "reservations are contiguous");
            slices.push(IoSlice::new(records));
            end += records.len() as u64;
            index += 1;
            if index < accepted.len() && accepted[index].reservation.closed.is_some() {
                break;
            }
        }
        file.write_vectored_unpublished(start, &mut slices)?;
        inner.commit_log.publish(&file, end, store_timestamp);
    }
    Ok(())
}

fn same_file(left: &MappedFile, right: &MappedFile) -> bool {
    std::ptr::eq(left, right)
}
