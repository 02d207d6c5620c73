//! The store's side of replication (storage spec §6): what a master hands its slaves and how
//! a slave takes it in.
//!
//! - A master reads verbatim commit-log ranges with [`MessageStore::replica_data`] and is told
//!   of every append round through [`Replication::appended`], so its senders wake at once.
//!   Under SYNC_MASTER, [`Replication::await_replicas`] holds each acknowledged append until
//!   enough slaves confirm it.
//! - A slave writes what it receives with [`MessageStore::append_replica`]: the bytes land at
//!   the master's offsets, and every whole record among them is dispatched to its consume
//!   queue and the index as recovery would, so the slave's queues match the master's
//!   (same queue offsets, same commit-log offsets). A record cut by a frame boundary waits
//!   for the rest. Ordinary appends are refused while [`MessageStore::set_replica_only`] is on.
//!
//! Invariants:
//! - the replica writer holds the combiner role ([`crate::append_queue`]), so the commit log
//!   keeps one writer whatever the role;
//! - bytes land only at the current end of the log (or start an empty log), so the slave's log
//!   is always a prefix-equal copy of the master's from its first byte on;
//! - queue entries are published only for whole records, after the flush under SYNC_FLUSH.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use apogee_common::message::record::RecordView;

use crate::commit_log::BLANK_RECORD_BYTES;
use crate::config::FlushDiskType;
use crate::consume_queue::ConsumeQueue;
use crate::dispatch::is_whole_record;
use crate::mapped_file::MappedSlice;
use crate::put::{PutCallback, PutResult};
use crate::store::{MessageStore, StoreInner};

/// Largest range one [`MessageStore::append_replica`] call takes (the master sends 32 KiB
/// frames by default; a larger configured batch still fits).
pub const MAX_REPLICA_APPEND_BYTES: usize = 64 * 1024 * 1024;

/// What the store tells, and asks of, the replication service of a master.
pub trait Replication: Send + Sync + 'static {
    /// An append round wrote the commit log up to `end_offset` (not yet flushed): senders may
    /// ship it. Called on the appending thread: it must only wake someone.
    fn appended(&self, end_offset: u64);

    /// True when acknowledged appends must wait for slaves (SYNC_MASTER).
    fn waits_for_replicas(&self) -> bool;

    /// Answers `callback` with `result` once enough slaves hold the log up to `next_offset`,
    /// or with a replication failure status (FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE) when
    /// they do not in time. Called once per acknowledged append that waits.
    fn await_replicas(&self, next_offset: u64, callback: PutCallback, result: PutResult);
}

/// Why a replicated range was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaAppendError {
    /// The range does not start where the local log ends: the streams disagree, and the
    /// master must restart from the slave's end.
    #[error("replicated range starts at {offset}, but the local commit log ends at {local_end}")]
    Discontinuous {
        /// Where the range starts.
        offset: u64,
        /// Where the local log ends.
        local_end: u64,
    },
    /// The range is empty, too large, or not at a file boundary when the log is empty.
    #[error("replicated range refused: {0}")]
    Invalid(String),
    /// A whole record in the range does not parse, or lies about its own offset.
    #[error("replicated record at {offset} is corrupt")]
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
    },
    /// A file could not be created or written (a full disk, say).
    #[error("replicated range not written: {0}")]
    Io(#[from] io::Error),
}

/// Wraps an append's callback so that, once the append succeeds, it waits for the slaves.
pub(crate) struct AwaitReplicas {
    pub replication: Arc<dyn Replication>,
    pub next_offset: u64,
    pub callback: PutCallback,
}

impl crate::put::PutDone for AwaitReplicas {
    fn done(self: Box<Self>, result: PutResult) {
        let Self { replication, next_offset, callback } = *self;
        if result.status == crate::put::PutStatus::PutOk {
            replication.await_replicas(next_offset, callback, result);
        } else {
            callback.done(result);
        }
    }
}

impl MessageStore {
    /// Registers the replication service of a master (once; later calls are ignored).
    pub fn set_replication(&self, replication: Arc<dyn Replication>) {
        if self.inner.replication.set(replication).is_err() {
            tracing::warn!("replication service already set; the new one is ignored");
        }
    }

    /// Refuses (`true`) or accepts ordinary appends again: a slave takes writes only from its
    /// master, through [`Self::append_replica`].
    pub fn set_replica_only(&self, replica_only: bool) {
        self.inner.replica_only.store(replica_only, Ordering::Release);
    }

    /// True while ordinary appends are refused because the store is a slave's.
    pub fn is_replica_only(&self) -> bool {
        self.inner.replica_only.load(Ordering::Acquire)
    }

    /// Every topic with consume queues, and the number of queues each needs (highest queue
    /// id + 1): what a slave knows of topics from the messages alone.
    pub fn queue_topics(&self) -> Vec<(String, i32)> {
        let mut topics: std::collections::BTreeMap<String, i32> = std::collections::BTreeMap::new();
        for queue in self.inner.queues.all() {
            let needed = queue.queue_id().saturating_add(1);
            let entry = topics.entry(queue.topic().to_owned()).or_insert(needed);
            *entry = (*entry).max(needed);
        }
        topics.into_iter().collect()
    }

    /// Up to `max_bytes` of published commit log from `offset` on, never across a file end
    /// (Java `getCommitLogData`). `None` when nothing is published there yet, or `offset` is
    /// below the oldest stored byte.
    pub fn replica_data(&self, offset: u64, max_bytes: usize) -> Option<MappedSlice> {
        let file = self.inner.commit_log.files().find(offset)?;
        let slice = file.slice_to_end(offset - file.start_offset())?;
        if slice.as_slice().is_empty() {
            return None;
        }
        let length = slice.as_slice().len().min(max_bytes) as u64;
        file.slice(offset - file.start_offset(), length)
    }

    /// Writes a range the master sent at `offset`, dispatches the whole records it completes
    /// and returns the new end of the local log. Runs as the store's single writer; blocks
    /// (briefly) while an ordinary append round finishes.
    pub fn append_replica(&self, offset: u64, bytes: &[u8]) -> Result<u64, ReplicaAppendError> {
        if bytes.is_empty() || bytes.len() > MAX_REPLICA_APPEND_BYTES {
            return Err(ReplicaAppendError::Invalid(format!("{} bytes", bytes.len())));
        }
        if self.inner.running.is_set(crate::running::DISK_FULL) {
            // The same room the guard keeps for ordinary appends: index and queue files of
            // what is already here must still fit.
            return Err(ReplicaAppendError::Io(io::Error::new(
                io::ErrorKind::StorageFull,
                "the slave's disk is above diskSpaceWarningLevelRatio",
            )));
        }
        self.appends.run_exclusive(|rounds| {
            let inner = &self.inner;
            let written = write_replica(inner, offset, bytes)?;
            let dispatched = rounds.replica_dispatched.unwrap_or(offset).max(inner.commit_log.min_offset());
            let Dispatched { end: dispatched, last_timestamp, mut touched, failure } =
                dispatch_replica(inner, dispatched, written);
            rounds.replica_dispatched = Some(dispatched);
            if last_timestamp > 0 {
                rounds.last_store_timestamp = rounds.last_store_timestamp.max(last_timestamp);
                inner.dispatched_store_timestamp.store(last_timestamp, Ordering::Release);
            }
            if inner.config.flush_disk_type == FlushDiskType::SyncFlush {
                inner.commit_log.flush(0)?;
            }
            inner.publish(&mut touched);
            if let Some(failure) = failure {
                // Nothing refers to the bytes past the last good record: drop them, so the
                // master resends from there.
                inner.commit_log.truncate_unreferenced(dispatched)?;
                return Err(failure);
            }
            if inner.commit_log.wants_next_file() {
                inner.wake_allocator();
            }
            Ok(written)
        })
    }
}

impl MessageStore {
    /// Drops the start of a record whose rest never came, so the log ends on a whole record.
    pub(crate) fn drop_partial_replica_tail(&self) {
        self.appends.run_exclusive(|rounds| {
            let Some(dispatched) = rounds.replica_dispatched else { return };
            if dispatched < self.inner.commit_log.max_offset() {
                if let Err(error) = self.inner.commit_log.truncate_unreferenced(dispatched) {
                    tracing::error!(%error, "could not drop the partial replicated record");
                }
            }
        });
    }
}

/// Copies `bytes` to the end of the local log, file by file; returns the new end.
fn write_replica(inner: &StoreInner, offset: u64, bytes: &[u8]) -> Result<u64, ReplicaAppendError> {
    let commit_log = &inner.commit_log;
    let file_size = commit_log.file_size_bytes();
    let local_end = commit_log.max_offset();
    let empty = commit_log.files().is_empty();
    if empty && !offset.is_multiple_of(file_size) {
        return Err(ReplicaAppendError::Invalid(format!(
            "an empty log must start at a file boundary, not at {offset}"
        )));
    }
    if !empty && offset != local_end {
        return Err(ReplicaAppendError::Discontinuous { offset, local_end });
    }
    // An ordinary append after a promotion must start from the files, not a stale cursor.
    commit_log.forget_cursor();
    let mut at = offset;
    let mut rest = bytes;
    while !rest.is_empty() {
        let file = commit_log.file_for_replica(at)?;
        let position = at - file.start_offset();
        let length = rest.len().min((file.size_bytes() - position) as usize);
        let (now, later) = rest.split_at(length);
        file.write_vectored_unpublished(position, &mut [io::IoSlice::new(now)])?;
        commit_log.publish(&file, position + length as u64, 0);
        at += length as u64;
        rest = later;
    }
    Ok(at)
}

/// What [`dispatch_replica`] did.
struct Dispatched {
    /// How far whole records are dispatched (a record cut at the end waits for its rest).
    end: u64,
    /// Store time of the newest record dispatched (0: none).
    last_timestamp: i64,
    /// Queues to publish, with their new ends.
    touched: Vec<(Arc<ConsumeQueue>, i64)>,
    /// Why dispatch stopped before the end, other than a cut record.
    failure: Option<ReplicaAppendError>,
}

/// Dispatches every whole record between `from` and `to`.
fn dispatch_replica(inner: &StoreInner, from: u64, to: u64) -> Dispatched {
    let mut dispatched = Dispatched { end: from, last_timestamp: 0, touched: Vec::new(), failure: None };
    while dispatched.end < to {
        match dispatch_next(inner, &mut dispatched) {
            Ok(true) => {}
            Ok(false) => break,
            Err(failure) => {
                dispatched.failure = Some(failure);
                break;
            }
        }
    }
    dispatched
}

/// Dispatches the record (or skips the file-closing blank) at `dispatched.end`; false when
/// the record is not whole yet.
fn dispatch_next(inner: &StoreInner, dispatched: &mut Dispatched) -> Result<bool, ReplicaAppendError> {
    let at = dispatched.end;
    let Some(file) = inner.commit_log.files().find(at) else { return Ok(false) };
    let Some(slice) = file.slice_to_end(at - file.start_offset()) else { return Ok(false) };
    let rest = slice.as_slice();
    if rest.len() < BLANK_RECORD_BYTES as usize {
        return Ok(false);
    }
    let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let magic = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if magic == apogee_common::message::record::BLANK_MAGIC {
        dispatched.end = file.end_offset();
        return Ok(true);
    }
    let corrupt = || ReplicaAppendError::Corrupt { offset: at };
    let size = usize::try_from(size).map_err(|_| corrupt())?;
    if size <= BLANK_RECORD_BYTES as usize || size as u64 > file.size_bytes() {
        return Err(corrupt());
    }
    if size > rest.len() {
        // The rest of this record comes in the next frame.
        return Ok(false);
    }
    let view = RecordView::parse(&rest[..size], false).map_err(|_| corrupt())?;
    if view.physical_offset() != at as i64 || !is_whole_record(&view) {
        return Err(corrupt());
    }
    dispatch_one(inner, &view, at, size as u64, &mut dispatched.touched)?;
    dispatched.last_timestamp = view.store_timestamp();
    dispatched.end = at + size as u64;
    Ok(true)
}

/// One record's consume-queue entry and index keys, as the master wrote them; a queue that got
/// an entry joins `touched` with its new end.
fn dispatch_one(
    inner: &StoreInner,
    view: &RecordView<'_>,
    offset: u64,
    size: u64,
    touched: &mut Vec<(Arc<ConsumeQueue>, i64)>,
) -> io::Result<()> {
    if let Some(queue) = crate::recovery::dispatch_record(inner, view, offset, size)? {
        let next = queue.next_offset();
        match touched.last_mut() {
            Some((last, max)) if Arc::ptr_eq(last, &queue) => *max = next,
            _ => touched.push((queue, next)),
        }
    }
    Ok(())
}
