//! Opening a store after a clean shutdown or a crash (storage spec §4.5–§4.9).
//!
//! - Clean shutdown (no `abort` file, and the checkpoint holds the exact end offset):
//!   positions are restored from the checkpoint at once.
//! - Otherwise the commit log is scanned from a safe file: every record is checked (magic,
//!   sizes, its own offset field, body CRC), the first bad one ends the log and everything
//!   after it is truncated (a torn tail), and consume-queue entries and index keys are
//!   rebuilt for the records scanned (both writes are idempotent).

use std::io;
use std::sync::Arc;

use apogee_common::message::record::{self, RecordView};

use crate::commit_log::BLANK_RECORD_BYTES;
use crate::consume_queue::CqEntry;
use crate::dispatch::{dispatch_info, is_whole_record};
use crate::mapped_file::MappedFile;
use crate::store::StoreInner;

/// Restores every position; `crashed` means the abort file was present.
pub(crate) fn recover(inner: &StoreInner, crashed: bool) -> io::Result<()> {
    let checkpoint = inner.checkpoint.values();
    let files = inner.commit_log.files().files();

    if !crashed {
        if let Some(end) = checkpoint.clean_shutdown_offset {
            let in_range = files
                .last()
                .map_or(end == 0, |last| end >= files[0].start_offset() && end <= last.end_offset());
            if in_range {
                let last_timestamp = checkpoint.physic_msg_timestamp;
                inner.commit_log.set_recovered_end(end, last_timestamp)?;
                truncate_queues(inner, end)?;
                return Ok(());
            }
            tracing::warn!(end, "checkpoint end offset outside the commit log; scanning instead");
        }
    }

    if crashed {
        if let Some(index) = &inner.index {
            let removed = index.delete_files_after_timestamp(checkpoint.index_msg_timestamp)?;
            if removed > 0 {
                tracing::info!(removed, "index files newer than the checkpoint removed for rebuild");
            }
        }
    }

    let start = if crashed {
        let safe_timestamp =
            if inner.index.is_some() { checkpoint.min_timestamp_index() } else { checkpoint.min_timestamp() };
        start_file_by_time(&files, safe_timestamp)
    } else {
        let dispatched = inner.queues.all().iter().map(|queue| queue.max_physic_offset()).max().unwrap_or(-1);
        start_file_by_offset(&files, dispatched)
    };

    let (end, last_timestamp) = scan_and_dispatch(inner, &files[start.min(files.len())..])?;
    let end =
        if files.is_empty() { 0 } else { end.unwrap_or(files[start.min(files.len() - 1)].start_offset()) };
    inner.commit_log.set_recovered_end(end, last_timestamp)?;
    truncate_queues(inner, end)?;
    Ok(())
}

fn truncate_queues(inner: &StoreInner, end: u64) -> io::Result<()> {
    for queue in inner.queues.all() {
        queue.truncate_after_physic(end as i64)?;
    }
    Ok(())
}

/// The newest file whose first record was stored no later than `timestamp` (file 0 when none).
fn start_file_by_time(files: &[Arc<MappedFile>], timestamp: i64) -> usize {
    (0..files.len())
        .rev()
        .find(|&index| {
            first_record(&files[index]).is_some_and(|(stored, _)| stored != 0 && stored <= timestamp)
        })
        .unwrap_or(0)
}

/// The newest file whose first record is at or below `offset` (file 0 when none).
fn start_file_by_offset(files: &[Arc<MappedFile>], offset: i64) -> usize {
    (0..files.len())
        .rev()
        .find(|&index| {
            first_record(&files[index]).is_some_and(|(stored, at)| stored != 0 && at as i64 <= offset)
        })
        .unwrap_or(0)
}

/// Store time and offset of the first record of `file`, if it parses.
pub(crate) fn first_record(file: &Arc<MappedFile>) -> Option<(i64, u64)> {
    let slice = file.slice_to_end(0)?;
    let view = RecordView::parse(slice.as_slice(), false).ok()?;
    Some((view.store_timestamp(), file.start_offset()))
}

/// Scans `files` record by record, dispatching each valid one. Returns the end of the last
/// valid record (`None` when nothing valid was found) and its store time.
fn scan_and_dispatch(inner: &StoreInner, files: &[Arc<MappedFile>]) -> io::Result<(Option<u64>, i64)> {
    let mut end = None;
    let mut last_timestamp = inner.commit_log.last_store_timestamp();
    let check_crc = inner.config.check_crc_on_recover;
    'files: for file in files {
        let Some(slice) = file.slice_to_end(0) else { break };
        let bytes = slice.as_slice();
        let mut position = 0usize;
        end = Some(file.start_offset());
        loop {
            let rest = &bytes[position..];
            if rest.len() >= BLANK_RECORD_BYTES as usize && is_blank(rest) {
                // The file ends here; the next one continues the log.
                end = Some(file.end_offset());
                continue 'files;
            }
            let Ok(view) = RecordView::parse(rest, check_crc) else { break 'files };
            let offset = file.start_offset() + position as u64;
            if view.physical_offset() != offset as i64 || view.total_size() <= 0 || !is_whole_record(&view) {
                break 'files;
            }
            let size = view.total_size() as u64;
            dispatch_recovered(inner, &view, offset, size)?;
            last_timestamp = view.store_timestamp();
            position += size as usize;
            end = Some(offset + size);
        }
    }
    Ok((end, last_timestamp))
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) == record::BLANK_MAGIC
}

fn dispatch_recovered(inner: &StoreInner, view: &RecordView<'_>, offset: u64, size: u64) -> io::Result<()> {
    if let Some(queue) = dispatch_record(inner, view, offset, size)? {
        queue.publish(queue.next_offset());
    }
    Ok(())
}

/// Writes one stored record's consume-queue entry and index keys, as the appender wrote them
/// (recovery rebuilding, a slave taking its master's records). Returns the queue when it got
/// a new entry, for the caller to publish.
pub(crate) fn dispatch_record(
    inner: &StoreInner,
    view: &RecordView<'_>,
    offset: u64,
    size: u64,
) -> io::Result<Option<Arc<crate::consume_queue::ConsumeQueue>>> {
    let info = dispatch_info(view, view.store_timestamp(), &inner.delay_levels);
    let mut written = None;
    if info.goes_to_consume_queue() {
        let queue = inner.queues.get_or_create(view.topic(), view.queue_id())?;
        let entry =
            CqEntry { commit_log_offset: offset as i64, size: size as i32, tags_code: info.tags_code };
        if queue.put(view.queue_offset(), entry)? {
            written = Some(queue);
        }
    }
    if let Some(index) = &inner.index {
        index.build_index(
            view.topic(),
            info.keys,
            info.uniq_key,
            offset as i64,
            view.store_timestamp(),
            info.transaction_type,
        )?;
    }
    Ok(written)
}
