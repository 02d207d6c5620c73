//! Cutting a slave's log back to the point it agrees on with its new master (storage spec
//! §4.9, §7.7). In controller mode a broker whose role changes to slave may hold bytes its
//! new master never had (its old master wrote them, or it was the master and they never
//! replicated). Before it takes its new master's bytes, [`MessageStore::truncate_to`] drops
//! everything past the consistent point: commit log, consume-queue entries, the index's
//! notion of what is indexed, and the epoch entries, so the next
//! [`MessageStore::append_replica`] continues from there as if the dropped bytes never came.
//!
//! The point is always the end of a whole record: the local log may end inside a record (a
//! replicated frame cut it), and the offset asked for may fall inside one. Files start at
//! record boundaries, so the file holding the offset is scanned from its start.
//!
//! Order, so that a crash at any step recovers to a log that is the old one or the
//! truncated one, with the queues and the epoch file to match:
//! 1. queued SYNC_FLUSH rounds are completed (their queue entries published), so no
//!    publication from before lands after the queues are cut;
//! 2. the commit log is cut and the cut synced (a crash before brings the old log back
//!    whole; after, recovery finds nothing past the point and drops queue entries past it);
//! 3. consume queues and the index follow, each synced;
//! 4. the epoch file last, once the log can no longer come back longer than its entries
//!    say: an epoch entry dropped while the bytes it owned survived a crash would hand those
//!    bytes to the epoch before it.
//!
//! Invariants: runs as the store's single writer (the combiner of [`crate::append_queue`])
//! and only while the store is replica-only, so no append races it or follows it other than
//! a replicated one; loops are bounded by the size of one file.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::message::record::{RecordView, BLANK_MAGIC};

use crate::commit_log::{CommitLog, BLANK_RECORD_BYTES};
use crate::dispatch::is_whole_record;
use crate::mapped_file::MappedFile;
use crate::store::{flush_logics_locked, MessageStore};
use crate::{flush, recovery, running};

/// Longest [`MessageStore::truncate_to`] waits for the epoch file's lock before giving up
/// (a caller holding [`MessageStore::epochs`] while it truncates would otherwise deadlock).
pub const EPOCHS_LOCK_WAIT_MS: u64 = 1_000;

/// Why the log was not truncated.
#[derive(Debug, thiserror::Error)]
pub enum TruncateError {
    /// Ordinary appends are still accepted: the store must be a slave's first
    /// ([`MessageStore::set_replica_only`]), or a producer's append could land after the cut.
    #[error("the store still takes ordinary appends; make it replica-only before truncating its log")]
    NotReplicaOnly,
    /// The store is shutting down.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The offset is below the oldest stored byte: no record there to keep the log from (Java
    /// refuses too: the offset is not message-aligned, and the log needs a manual fix).
    #[error("offset {offset} is below the oldest stored commit-log byte {min_offset}")]
    BelowLogStart {
        /// The offset asked for.
        offset: u64,
        /// The oldest stored byte.
        min_offset: u64,
    },
    /// The epoch file's lock stayed taken for [`EPOCHS_LOCK_WAIT_MS`]; nothing was changed.
    #[error("the epoch file stayed locked for {EPOCHS_LOCK_WAIT_MS} ms; do not hold MessageStore::epochs while truncating")]
    EpochsLocked,
    /// A file could not be read, cut or synced. The log may be cut already; calling again
    /// with the same offset finishes the job (every step is idempotent).
    #[error("truncation failed: {0}")]
    Io(#[from] io::Error),
}

/// Where the log is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    /// The first dropped offset: the end of the last whole record kept.
    point: u64,
    /// Store time of the last record kept, or of an earlier one; 0 when unknown.
    last_store_timestamp: i64,
    /// A record below the offset asked for that does not parse, where the cut moved down to.
    bad_record_at: Option<u64>,
}

impl MessageStore {
    /// Drops every commit-log byte from the end of the last whole record at or below
    /// `offset` on, with the consume-queue entries, index watermark and epoch entries of the
    /// dropped records, and returns that point: a following `append_replica(point, ..)` is
    /// taken and dispatched as if the dropped bytes had never come. An `offset` past the local
    /// end drops only a trailing partial record. A record below `offset` that does not parse
    /// moves the point down to it (logged): the master sends it again.
    ///
    /// Only while [`Self::is_replica_only`]: a broker becoming a slave sets that first. Runs as
    /// the store's single writer, so it waits for a running append round or replicated
    /// append, and blocks those that come until it is done. Synced before it returns: a crash
    /// after it recovers to the truncated log. Do not hold [`Self::epochs`] while calling it.
    pub fn truncate_to(&self, offset: u64) -> Result<u64, TruncateError> {
        self.check_may_truncate()?;
        self.appends.run_exclusive(|rounds| {
            // Again as the single writer: the role may have changed while it waited.
            self.check_may_truncate()?;
            let inner = &self.inner;
            let _maintenance = inner.maintenance.lock();
            let mut epochs = inner
                .epochs
                .try_lock_for(Duration::from_millis(EPOCHS_LOCK_WAIT_MS))
                .ok_or(TruncateError::EpochsLocked)?;
            flush::settle(inner)?;

            let old_end = inner.commit_log.max_offset();
            let cut = find_cut(&inner.commit_log, offset)?;
            if let Some(bad) = cut.bad_record_at {
                tracing::warn!(
                    offset,
                    bad,
                    "a stored record below the truncation offset does not parse; cutting there"
                );
            }
            let point = cut.point;
            debug_assert!(point <= offset, "the cut never moves up");

            inner.commit_log.truncate_durably(point, cut.last_store_timestamp)?;
            inner.commit_log.flush(0)?;
            let point_signed = i64::try_from(point).map_err(|_| io::Error::other("offset beyond i64"))?;
            for queue in inner.queues.all() {
                queue.truncate_after_physic(point_signed)?;
            }
            if let Some(index) = &inner.index {
                index.forget_from_offset(point_signed)?;
            }
            // Dispatch restarts with the next replicated range, from wherever it starts.
            rounds.replica_dispatched = None;
            inner.dispatched_store_timestamp.store(cut.last_store_timestamp, Ordering::Release);
            inner.checkpoint.update(|values| {
                values.physic_msg_timestamp = values.physic_msg_timestamp.min(cut.last_store_timestamp);
                values.logics_msg_timestamp = values.logics_msg_timestamp.min(cut.last_store_timestamp);
            });
            flush_logics_locked(inner);
            inner.checkpoint.flush()?;

            epochs.truncate_from_offset(point)?;
            inner.wake_allocator();
            tracing::info!(
                offset,
                point,
                dropped_bytes = old_end.saturating_sub(point),
                "commit log truncated"
            );
            Ok(point)
        })
    }

    fn check_may_truncate(&self) -> Result<(), TruncateError> {
        if self.inner.running.is_set(running::SHUTTING_DOWN) || self.appends.is_closed() {
            return Err(TruncateError::ShuttingDown);
        }
        if !self.is_replica_only() {
            return Err(TruncateError::NotReplicaOnly);
        }
        Ok(())
    }
}

/// The end of the last whole record at or below `offset` (or the local end, if lower).
fn find_cut(commit_log: &CommitLog, offset: u64) -> Result<Cut, TruncateError> {
    let files = commit_log.files();
    let Some(first) = files.first() else {
        // Nothing stored: nothing to drop.
        return Ok(Cut { point: 0, last_store_timestamp: 0, bad_record_at: None });
    };
    let min_offset = first.start_offset();
    if offset < min_offset {
        return Err(TruncateError::BelowLogStart { offset, min_offset });
    }
    let target = offset.min(commit_log.max_offset());
    if target == min_offset {
        return Ok(Cut { point: min_offset, last_store_timestamp: 0, bad_record_at: None });
    }
    // The file whose bytes run up to `target`: it starts below and ends at or past it.
    let file = files
        .find(target - 1)
        .ok_or_else(|| io::Error::other(format!("no commit-log file holds offset {}", target - 1)))?;
    let scanned = scan_file(&file, target);
    let last_store_timestamp = match scanned.last_store_timestamp {
        Some(timestamp) => timestamp,
        // No record kept in this file: the previous file's first record is earlier than any
        // kept, which is all the checkpoint needs.
        None => file
            .start_offset()
            .checked_sub(1)
            .and_then(|before| files.find(before))
            .and_then(|previous| recovery::first_record(&previous))
            .map_or(0, |(timestamp, _)| timestamp),
    };
    Ok(Cut { point: scanned.end, last_store_timestamp, bad_record_at: scanned.bad_record_at })
}

/// What [`scan_file`] found.
#[derive(Debug)]
struct Scanned {
    /// The end of the last whole record at or below the target.
    end: u64,
    /// Store time of that record (`None`: no record kept in the file).
    last_store_timestamp: Option<i64>,
    /// Where a record that does not parse stopped the scan.
    bad_record_at: Option<u64>,
}

/// Scans `file` from its start (a record boundary) over the whole records that end at or
/// below `target`. The closing blank record counts as whole when the file is complete and
/// ends at or below `target`. Stops at a cut or unparsable record; never reads past the file's
/// published bytes.
fn scan_file(file: &Arc<MappedFile>, target: u64) -> Scanned {
    let start = file.start_offset();
    let mut scanned = Scanned { end: start, last_store_timestamp: None, bad_record_at: None };
    let Some(slice) = file.slice_to_end(0) else { return scanned };
    let bytes = slice.as_slice();
    let limit = usize::try_from(target.saturating_sub(start)).unwrap_or(usize::MAX).min(bytes.len());
    let blank_bytes = BLANK_RECORD_BYTES as usize;
    // Every record but the blank one is longer than a blank header, so this many steps
    // reach the end of any file.
    let most_records = bytes.len() / (blank_bytes + 1) + 1;
    let mut position = 0usize;
    for _ in 0..most_records {
        if position >= limit {
            break;
        }
        let rest = &bytes[position..];
        if rest.len() < blank_bytes {
            // A header cut by a replicated frame.
            break;
        }
        let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let magic = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if magic == BLANK_MAGIC {
            // The blank record runs to the end of the file.
            if file.end_offset() <= target && bytes.len() as u64 == file.size_bytes() {
                position = bytes.len();
            }
            break;
        }
        let at = start + position as u64;
        let room = file.size_bytes() - position as u64;
        let Some(size) =
            usize::try_from(size).ok().filter(|size| *size > blank_bytes && *size as u64 <= room)
        else {
            scanned.bad_record_at = Some(at);
            break;
        };
        if position + size > limit {
            // Cut by a replicated frame, or ending past the target.
            break;
        }
        match RecordView::parse(&rest[..size], false) {
            Ok(view)
                if view.physical_offset() == at as i64
                    && view.total_size() as usize == size
                    && is_whole_record(&view) =>
            {
                scanned.last_store_timestamp = Some(view.store_timestamp());
                position += size;
            }
            _ => {
                scanned.bad_record_at = Some(at);
                break;
            }
        }
    }
    scanned.end = start + position as u64;
    scanned
}
