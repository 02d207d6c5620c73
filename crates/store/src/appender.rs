//! The appender: the one thread that writes the commit log and the consume queues.
//!
//! It takes every pending append at once, and for each assigns the commit-log offset and
//! the queue offset in the same step, copies the records into the mapped file, writes their
//! consume-queue entries and index keys, and then either publishes them and answers
//! (ASYNC_FLUSH) or hands them to the group commit (SYNC_FLUSH).

use std::io;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::record::{self, RecordView};
use apogee_common::time::now_ms;

use crate::config::FlushDiskType;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::dispatch::dispatch_info;
use crate::flush::PendingFlush;
use crate::put::{AppendInfo, PutCallback, PutRequest, PutResult, PutStatus};
use crate::running;
use crate::store::StoreInner;

/// Most appends taken in one round.
pub const MAX_APPENDS_PER_ROUND: usize = 4096;
/// Most bytes taken in one round.
pub const MAX_BYTES_PER_ROUND: usize = 32 * 1024 * 1024;
/// Longest topic the record layout allows (2-byte length in magic V2).
const MAX_TOPIC_BYTES: usize = 255;
/// Largest properties string (`i16` length).
const MAX_PROPERTIES_BYTES: usize = 32_767;

/// One queued append.
pub(crate) struct Pending {
    pub request: PutRequest,
    pub callback: PutCallback,
}

/// Scratch space reused across rounds so the steady state allocates nothing per message.
#[derive(Default)]
struct Round {
    pending: Vec<Pending>,
    answered: Vec<(PutCallback, PutResult)>,
    waiting: Vec<(PutCallback, PutResult)>,
    touched: Vec<(Arc<ConsumeQueue>, i64)>,
    record_spans: Vec<(usize, usize)>,
}

/// Runs until every sender is gone (store shutdown).
pub(crate) fn run(inner: Arc<StoreInner>, requests: Receiver<Pending>) {
    let mut round = Round::default();
    let mut last_store_timestamp = inner.commit_log.last_store_timestamp();
    while let Ok(first) = requests.recv() {
        let mut bytes = first.request.records.len();
        round.pending.push(first);
        while round.pending.len() < MAX_APPENDS_PER_ROUND && bytes < MAX_BYTES_PER_ROUND {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.request.records.len();
                    round.pending.push(next);
                }
                Err(_) => break,
            }
        }
        // Store times never go backwards in log order, whatever the wall clock does.
        let store_timestamp = now_ms().max(last_store_timestamp);
        last_store_timestamp = store_timestamp;
        let sync_flush = inner.config.flush_disk_type == FlushDiskType::SyncFlush;

        for Pending { mut request, callback } in round.pending.drain(..) {
            let result = append_one(
                &inner,
                &mut request,
                store_timestamp,
                &mut round.touched,
                &mut round.record_spans,
            );
            if sync_flush && request.wait_store_ok && result.status.is_stored() {
                round.waiting.push((callback, result));
            } else {
                round.answered.push((callback, result));
            }
        }
        inner.dispatched_store_timestamp.store(store_timestamp, std::sync::atomic::Ordering::Release);
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
        for (callback, result) in round.answered.drain(..) {
            callback(result);
        }
    }
}

/// Appends one request; never panics on its contents.
fn append_one(
    inner: &StoreInner,
    request: &mut PutRequest,
    store_timestamp: i64,
    touched: &mut Vec<(Arc<ConsumeQueue>, i64)>,
    spans: &mut Vec<(usize, usize)>,
) -> PutResult {
    if !inner.running.is_writeable() {
        return PutResult::failed(PutStatus::ServiceNotAvailable);
    }
    let records = &mut request.records;
    spans.clear();

    // Validate every record and learn the topic and queue of the request.
    let (topic, queue_id, transaction_type) = {
        let mut position = 0;
        let mut first: Option<(String, i32, i32)> = None;
        while position < records.len() {
            let view = match RecordView::parse(&records[position..], false) {
                Ok(view) => view,
                Err(error) => {
                    tracing::debug!(%error, "append refused: malformed record");
                    return PutResult::failed(PutStatus::MessageIllegal);
                }
            };
            let size = view.total_size() as usize;
            if view.body().len() > inner.config.max_message_size as usize
                || view.topic().len() > MAX_TOPIC_BYTES
            {
                return PutResult::failed(PutStatus::MessageIllegal);
            }
            if view.properties_str().len() > MAX_PROPERTIES_BYTES {
                return PutResult::failed(PutStatus::PropertiesSizeExceeded);
            }
            if !crate::dispatch::is_whole_record(&view) {
                tracing::debug!("append refused: properties not ended by U+0002 or NUL in the topic");
                return PutResult::failed(PutStatus::MessageIllegal);
            }
            let transaction_type = apogee_common::message::sysflag::transaction_type(view.sys_flag());
            match &first {
                None => first = Some((view.topic().to_owned(), view.queue_id(), transaction_type)),
                Some((topic, queue_id, _)) if topic == view.topic() && *queue_id == view.queue_id() => {}
                Some(_) => return PutResult::failed(PutStatus::MessageIllegal),
            }
            spans.push((position, size));
            position += size;
        }
        match first {
            Some(first) => first,
            None => return PutResult::failed(PutStatus::MessageIllegal),
        }
    };
    if records.len() as u64 + crate::commit_log::BLANK_RECORD_BYTES > inner.commit_log.file_size_bytes() {
        return PutResult::failed(PutStatus::MessageIllegal);
    }

    let queue = match inner.queues.get_or_create(&topic, queue_id) {
        Ok(queue) => queue,
        Err(error) => {
            tracing::warn!(%topic, queue_id, %error, "append refused: consume queue unavailable");
            return PutResult::failed(PutStatus::MessageIllegal);
        }
    };
    let in_queue = matches!(
        transaction_type,
        apogee_common::message::sysflag::TRANSACTION_NOT_TYPE
            | apogee_common::message::sysflag::TRANSACTION_COMMIT_TYPE
    );
    let first_queue_offset = if in_queue { queue.next_offset() } else { 0 };

    let placed = inner.commit_log.append(records, store_timestamp, |buffer, commit_log_offset| {
        for (index, (position, size)) in spans.iter().enumerate() {
            let record = &mut buffer[*position..*position + *size];
            let queue_offset = if in_queue { first_queue_offset + index as i64 } else { 0 };
            let physical_offset = (commit_log_offset + *position as u64) as i64;
            let patched = record::set_queue_offset(record, queue_offset)
                .and_then(|()| record::set_physical_offset(record, physical_offset))
                .and_then(|()| record::set_store_timestamp(record, store_timestamp));
            debug_assert!(patched.is_ok(), "every record was parsed before the append");
        }
    });
    let placement = match placed {
        Ok(placement) => placement,
        Err(error) => return append_failed(inner, &error),
    };

    for (index, (position, size)) in spans.iter().enumerate() {
        let Ok(view) = RecordView::parse(&records[*position..*position + *size], false) else { continue };
        let info = dispatch_info(&view, &inner.delay_levels);
        let commit_log_offset = placement.offset as i64 + *position as i64;
        if info.goes_to_consume_queue() {
            let entry = CqEntry { commit_log_offset, size: *size as i32, tags_code: info.tags_code };
            if let Err(error) = queue.put(first_queue_offset + index as i64, entry) {
                tracing::error!(%topic, queue_id, %error, "consume queue write failed; store stops accepting writes");
                inner.running.set(running::WRITE_LOGICS_QUEUE_ERROR);
            }
        }
        if let Some(index_service) = &inner.index {
            if let Err(error) = index_service.build_index(
                &topic,
                info.keys,
                info.uniq_key,
                commit_log_offset,
                store_timestamp,
                info.transaction_type,
            ) {
                tracing::error!(%error, "index write failed; store stops accepting writes");
                inner.running.set(running::WRITE_INDEX_FILE_ERROR);
            }
        }
    }
    if in_queue {
        touched.push((queue, first_queue_offset + spans.len() as i64));
    }
    PutResult {
        status: PutStatus::PutOk,
        append: Some(AppendInfo {
            commit_log_offset: placement.offset,
            wrote_bytes: records.len() as u32,
            queue_offset: first_queue_offset,
            message_count: spans.len() as u32,
            store_timestamp,
        }),
    }
}

fn append_failed(inner: &StoreInner, error: &io::Error) -> PutResult {
    tracing::error!(%error, "commit log append failed");
    if error.raw_os_error() == Some(libc::ENOSPC) {
        inner.running.set(running::DISK_FULL);
        return PutResult::failed(PutStatus::CreateMappedFileFailed);
    }
    PutResult::failed(PutStatus::UnknownError)
}
