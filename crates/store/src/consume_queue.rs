//! One consume queue: the index of one topic queue into the commit log (storage spec §2).
//!
//! Entry `n` (the queue offset) sits at byte `n * 20` of the queue's logical file space:
//! `[commitLogOffset i64][size i32][tagsCode i64]`, big-endian. Files hold 300,000 entries
//! and are named by their first byte offset, exactly as Apache RocketMQ writes them.
//!
//! Only the appender writes entries. Readers see entries below [`ConsumeQueue::max_offset`],
//! which the appender publishes once the entries' messages are visible (after the flush under
//! SYNC_FLUSH).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use memmap2::Advice;
use parking_lot::Mutex;

use crate::mapped_file::MappedFile;
use crate::mapped_file_queue::MappedFileQueue;

/// Bytes of one entry (`CQ_STORE_UNIT_SIZE`).
pub const ENTRY_SIZE_BYTES: u64 = 20;

/// Most files made ahead by [`ConsumeQueue::ensure_room`]: one append's entries span at
/// most this many files.
pub const MAX_PREPARED_FILES: usize = 8;

/// One consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Commit-log offset of the record.
    pub commit_log_offset: i64,
    /// Size of the record in bytes.
    pub size: i32,
    /// Tag hash (Java `String.hashCode` of TAGS), or the delivery time for delay queues.
    pub tags_code: i64,
}

impl CqEntry {
    fn to_bytes(self) -> [u8; ENTRY_SIZE_BYTES as usize] {
        let mut bytes = [0u8; ENTRY_SIZE_BYTES as usize];
        bytes[0..8].copy_from_slice(&self.commit_log_offset.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.size.to_be_bytes());
        bytes[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            commit_log_offset: i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            size: i32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
            tags_code: i64::from_be_bytes(bytes.get(12..20)?.try_into().ok()?),
        })
    }

    /// Java's validity test during recovery: filler entries are valid, zeroed ones are not.
    fn is_valid(&self) -> bool {
        self.commit_log_offset >= 0 && self.size > 0
    }

    /// The entry written before the first real one when a queue starts mid-stream.
    const FILLER: CqEntry = CqEntry { commit_log_offset: 0, size: i32::MAX, tags_code: 0 };

    /// True for a filler entry.
    pub fn is_filler(&self) -> bool {
        *self == Self::FILLER
    }
}

/// The consume queue of one (topic, queue id).
#[derive(Debug)]
pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    files: MappedFileQueue,
    /// First valid entry (queue offset).
    min_offset: AtomicI64,
    /// Entries written (queue offset of the next entry); the appender's view.
    written_offset: AtomicI64,
    /// Entries readers may see.
    visible_offset: AtomicI64,
    /// Queue offsets the appender has handed out but not written yet (-1: none beyond
    /// `written_offset`).
    assigned_offset: AtomicI64,
    /// End (`offset + size`) of the commit-log record of the last entry; entries at or below
    /// it are already present (idempotent rebuild during recovery).
    max_physic_offset: AtomicI64,
    /// Files allocated ahead by [`Self::ensure_room`] for entries not written yet, oldest
    /// first; [`Self::put`] takes them as it reaches them.
    prepared: Mutex<VecDeque<MappedFile>>,
}

impl ConsumeQueue {
    /// Loads the queue stored under `dir` and finds its last valid entry.
    pub fn load(dir: &Path, topic: &str, queue_id: i32, file_size_bytes: u64) -> io::Result<Self> {
        assert_eq!(file_size_bytes % ENTRY_SIZE_BYTES, 0);
        let files = MappedFileQueue::load(dir, file_size_bytes)?;
        let queue = Self {
            topic: topic.to_owned(),
            queue_id,
            files,
            min_offset: AtomicI64::new(0),
            written_offset: AtomicI64::new(0),
            visible_offset: AtomicI64::new(0),
            assigned_offset: AtomicI64::new(-1),
            max_physic_offset: AtomicI64::new(-1),
            prepared: Mutex::new(VecDeque::new()),
        };
        queue.recover()?;
        Ok(queue)
    }

    /// Topic of the queue.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queue id.
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    /// Scans from the third-last file for the last valid entry (storage spec §4.6) and
    /// truncates after it.
    fn recover(&self) -> io::Result<()> {
        let files = self.files.files();
        let Some(first) = files.first() else { return Ok(()) };
        self.min_offset.store((first.start_offset() / ENTRY_SIZE_BYTES) as i64, Ordering::Release);
        // Files allocated ahead (`ensure_room`) may trail the last written one, empty.
        let newest_written = files
            .iter()
            .rposition(|file| {
                let first_entry = file.slice(0, ENTRY_SIZE_BYTES);
                first_entry
                    .and_then(|bytes| CqEntry::from_bytes(bytes.as_slice()))
                    .is_some_and(|entry| entry.is_valid())
            })
            .unwrap_or(0);
        let start = newest_written.saturating_sub(2);
        let mut end_offset = files[start].start_offset();
        let mut max_physic = -1i64;
        'files: for file in &files[start..] {
            let Some(slice) = file.slice_to_end(0) else { break };
            for chunk in slice.as_slice().chunks_exact(ENTRY_SIZE_BYTES as usize) {
                let Some(entry) = CqEntry::from_bytes(chunk) else { break 'files };
                if !entry.is_valid() {
                    break 'files;
                }
                if !entry.is_filler() {
                    max_physic = entry.commit_log_offset + i64::from(entry.size);
                }
                end_offset += ENTRY_SIZE_BYTES;
            }
        }
        self.files.truncate(end_offset)?;
        let next = (end_offset / ENTRY_SIZE_BYTES) as i64;
        self.written_offset.store(next, Ordering::Release);
        self.visible_offset.store(next, Ordering::Release);
        self.max_physic_offset.store(max_physic, Ordering::Release);
        self.correct_first_file_min_offset();
        Ok(())
    }

    /// Skips filler entries at the head of the first file so min offset names a real entry.
    fn correct_first_file_min_offset(&self) {
        let mut offset = self.min_offset();
        let max = self.written_offset.load(Ordering::Acquire);
        while offset < max {
            match self.entry(offset) {
                Some(entry) if entry.is_filler() => offset += 1,
                _ => break,
            }
        }
        self.min_offset.store(offset, Ordering::Release);
    }

    /// Queue offset of the first stored entry.
    pub fn min_offset(&self) -> i64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Queue offset of the next entry readers will see (exclusive maximum).
    pub fn max_offset(&self) -> i64 {
        self.visible_offset.load(Ordering::Acquire)
    }

    /// Queue offset the appender assigns next.
    pub fn next_offset(&self) -> i64 {
        self.written_offset.load(Ordering::Acquire)
    }

    /// Hands out `count` consecutive queue offsets for records about to be appended (appender
    /// only): their entries are written later in the same round, in the same order.
    pub(crate) fn reserve_offsets(&self, count: i64) -> i64 {
        let written = self.next_offset();
        let first = self.assigned_offset.load(Ordering::Acquire).max(written);
        self.assigned_offset.store(first + count, Ordering::Release);
        first
    }

    /// End of the commit-log record of the last entry (-1 when empty).
    pub fn max_physic_offset(&self) -> i64 {
        self.max_physic_offset.load(Ordering::Acquire)
    }

    /// Writes the entry for queue offset `queue_offset`, if not already present. Called by the
    /// appender (or recovery) only. Returns false when it was already there.
    pub(crate) fn put(&self, queue_offset: i64, entry: CqEntry) -> io::Result<bool> {
        if entry.commit_log_offset + i64::from(entry.size) <= self.max_physic_offset() {
            return Ok(false);
        }
        let written = self.next_offset();
        if queue_offset < written {
            return Ok(false);
        }
        if self.files.is_empty() && queue_offset > 0 {
            // A queue created mid-stream: fill its first file up to the first entry.
            let file_entries = (self.files.file_size_bytes() / ENTRY_SIZE_BYTES) as i64;
            let first_file_offset = queue_offset - queue_offset % file_entries;
            let start = first_file_offset as u64 * ENTRY_SIZE_BYTES;
            let file = self.files.push_new(start, self.take_prepared(start))?;
            file.advise(Advice::Random);
            for _ in first_file_offset..queue_offset {
                self.append_in_file(&file, CqEntry::FILLER)?;
            }
            self.min_offset.store(queue_offset, Ordering::Release);
            self.written_offset.store(queue_offset, Ordering::Release);
            self.visible_offset.store(queue_offset, Ordering::Release);
        } else if queue_offset > written {
            tracing::warn!(
                topic = %self.topic,
                queue_id = self.queue_id,
                expected = written,
                got = queue_offset,
                "consume queue offset jumps forward; writing at the expected position"
            );
        }
        let file = match self.files.last().filter(|file| !file.is_full()) {
            Some(file) => file,
            None => {
                let full = self.files.last();
                let start = full.as_ref().map_or(0, |file| file.end_offset());
                let file = self.files.push_new(start, self.take_prepared(start))?;
                // The file being written is touched page by page, in order; a full one is
                // read by consumers catching up, for whom read-around pays.
                file.advise(Advice::Random);
                if let Some(full) = full {
                    full.advise(Advice::Normal);
                }
                file
            }
        };
        self.append_in_file(&file, entry)?;
        self.written_offset.fetch_add(1, Ordering::AcqRel);
        self.max_physic_offset.store(entry.commit_log_offset + i64::from(entry.size), Ordering::Release);
        Ok(true)
    }

    /// Makes sure the files that the next `count` entries go to exist, allocating any that
    /// do not yet. The appender calls it before it writes the entries' records to the commit
    /// log: an entry that could not be written after its record was would leave a message
    /// acknowledged but invisible to consumers until the next crash recovery. Appender only.
    pub(crate) fn ensure_room(&self, count: i64) -> io::Result<()> {
        assert!(count > 0, "room for no entry");
        let file_size_bytes = self.files.file_size_bytes();
        let per_file = (file_size_bytes / ENTRY_SIZE_BYTES) as i64;
        let first = self.assigned_offset.load(Ordering::Acquire).max(self.next_offset());
        let last = first + count - 1;
        let last_file_start = (last - last.rem_euclid(per_file)) as u64 * ENTRY_SIZE_BYTES;
        let newest = self.files.last();
        if newest.as_ref().is_some_and(|file| last_file_start < file.end_offset()) {
            return Ok(());
        }
        let mut prepared = self.prepared.lock();
        let mut next_start = match (prepared.back(), newest) {
            (Some(file), _) => file.end_offset(),
            (None, Some(file)) => file.end_offset(),
            (None, None) => (first - first.rem_euclid(per_file)) as u64 * ENTRY_SIZE_BYTES,
        };
        while next_start <= last_file_start {
            if prepared.len() >= MAX_PREPARED_FILES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{count} entries span more than {MAX_PREPARED_FILES} consume-queue files"),
                ));
            }
            prepared.push_back(MappedFile::create(self.files.dir(), next_start, file_size_bytes)?);
            next_start += file_size_bytes;
        }
        Ok(())
    }

    /// The file made ahead for `start`, if any; files made for offsets the queue has moved
    /// past (it was truncated) are deleted.
    fn take_prepared(&self, start: u64) -> Option<MappedFile> {
        let mut prepared = self.prepared.lock();
        while let Some(front) = prepared.front() {
            if front.start_offset() > start {
                return None;
            }
            let file = prepared.pop_front()?;
            if file.start_offset() == start {
                return Some(file);
            }
            if let Err(error) = file.destroy() {
                tracing::warn!(path = %file.path().display(), %error, "stale consume-queue file left in place");
            }
        }
        None
    }

    fn append_in_file(&self, file: &Arc<MappedFile>, entry: CqEntry) -> io::Result<()> {
        let at = file.wrote();
        // SAFETY: the appender is the only writer of consume queues, and readers only look
        // below the published position.
        unsafe { file.write_unpublished(at, &entry.to_bytes()) };
        file.publish(at + ENTRY_SIZE_BYTES);
        Ok(())
    }

    /// Makes entries below `offset` visible to readers.
    pub(crate) fn publish(&self, offset: i64) {
        self.visible_offset.fetch_max(offset, Ordering::AcqRel);
    }

    /// The entry at `queue_offset`, if stored (visible or not).
    pub fn entry(&self, queue_offset: i64) -> Option<CqEntry> {
        let byte_offset = u64::try_from(queue_offset).ok()? * ENTRY_SIZE_BYTES;
        let file = self.files.find(byte_offset)?;
        let slice = file.slice(byte_offset - file.start_offset(), ENTRY_SIZE_BYTES)?;
        CqEntry::from_bytes(slice.as_slice())
    }

    /// Up to `max_count` visible entries from `queue_offset` on, within one file (as Java
    /// reads), with their queue offsets.
    pub fn entries(&self, queue_offset: i64, max_count: usize) -> Vec<(i64, CqEntry)> {
        let visible = self.max_offset();
        let Ok(start_byte) = u64::try_from(queue_offset) else { return Vec::new() };
        if queue_offset >= visible {
            return Vec::new();
        }
        let start_byte = start_byte * ENTRY_SIZE_BYTES;
        let Some(file) = self.files.find(start_byte) else { return Vec::new() };
        let visible_bytes = (visible as u64 * ENTRY_SIZE_BYTES).min(file.end_offset());
        let length = (visible_bytes - start_byte).min(max_count as u64 * ENTRY_SIZE_BYTES);
        let Some(slice) = file.slice(start_byte - file.start_offset(), length) else { return Vec::new() };
        slice
            .as_slice()
            .chunks_exact(ENTRY_SIZE_BYTES as usize)
            .filter_map(CqEntry::from_bytes)
            .enumerate()
            .map(|(index, entry)| (queue_offset + index as i64, entry))
            .collect()
    }

    /// Queue offset of the first entry of the file after the one holding `queue_offset`
    /// (Java `rollNextFile`): where a read that ran off the end of a file continues.
    pub fn roll_next_file(&self, queue_offset: i64) -> i64 {
        let per_file = (self.files.file_size_bytes() / ENTRY_SIZE_BYTES) as i64;
        queue_offset + per_file - queue_offset.rem_euclid(per_file)
    }

    /// Drops entries whose record starts at or after commit-log `offset` (recovery, and
    /// [`crate::store::MessageStore::truncate_to`]), durably: a crash must not bring dropped
    /// entries back between the entries written after them. Files allocated ahead for the
    /// dropped offsets go too. Appender (or recovery) only.
    pub(crate) fn truncate_after_physic(&self, offset: i64) -> io::Result<()> {
        let mut keep = self.next_offset();
        let min = self.min_offset();
        // At most one step per stored entry.
        while keep > min {
            match self.entry(keep - 1) {
                Some(entry) if entry.commit_log_offset >= offset && !entry.is_filler() => keep -= 1,
                _ => break,
            }
        }
        if keep == self.next_offset() {
            return Ok(());
        }
        let prepared: Vec<MappedFile> = self.prepared.lock().drain(..).collect();
        for file in &prepared {
            file.destroy()?;
        }
        self.files.truncate_durably(keep as u64 * ENTRY_SIZE_BYTES)?;
        if !prepared.is_empty() {
            self.files.sync_dir()?;
        }
        self.assigned_offset.store(-1, Ordering::Release);
        self.written_offset.store(keep, Ordering::Release);
        self.visible_offset.store(keep, Ordering::Release);
        let max_physic = match keep.checked_sub(1).and_then(|last| self.entry(last)) {
            Some(entry) if !entry.is_filler() => entry.commit_log_offset + i64::from(entry.size),
            _ => -1,
        };
        self.max_physic_offset.store(max_physic, Ordering::Release);
        Ok(())
    }

    /// Deletes files whose entries all point below commit-log `min_physic_offset` (never the
    /// last file) and moves the min offset to the first entry at or above it.
    pub fn delete_expired(&self, min_physic_offset: i64) -> io::Result<usize> {
        let mut deleted = 0;
        while self.files.len() > 1 {
            let Some(first) = self.files.first() else { break };
            let last_in_file = (first.end_offset() / ENTRY_SIZE_BYTES) as i64 - 1;
            match self.entry(last_in_file) {
                Some(entry) if entry.commit_log_offset + i64::from(entry.size) <= min_physic_offset => {
                    self.files.delete_first()?;
                    deleted += 1;
                }
                _ => break,
            }
        }
        let mut offset = self.min_offset().max((self.files.min_offset() / ENTRY_SIZE_BYTES) as i64);
        let max = self.next_offset();
        // Entries are in commit-log order: binary search the first one still stored.
        let (mut low, mut high) = (offset, max);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.entry(middle) {
                Some(entry) if entry.is_filler() || entry.commit_log_offset < min_physic_offset => {
                    low = middle + 1
                }
                _ => high = middle,
            }
        }
        offset = low;
        self.min_offset.fetch_max(offset, Ordering::AcqRel);
        Ok(deleted)
    }

    /// Flushes dirty entries to disk.
    pub fn flush(&self) -> io::Result<()> {
        for file in self.files.files().iter().rev() {
            if file.flushed() >= file.wrote() {
                break;
            }
            file.flush(0)?;
        }
        Ok(())
    }

    /// Deletes every file (topic deleted).
    pub fn destroy(&self) -> io::Result<()> {
        for file in self.prepared.lock().drain(..) {
            file.destroy()?;
        }
        self.files.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64) -> CqEntry {
        CqEntry { commit_log_offset: offset, size: 100, tags_code: offset * 7 }
    }

    #[test]
    fn put_read_publish_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let queue = ConsumeQueue::load(dir.path(), "T", 0, 5 * ENTRY_SIZE_BYTES).unwrap();
        for n in 0..12 {
            assert!(queue.put(n, entry(n * 100)).unwrap());
        }
        assert_eq!(queue.max_offset(), 0, "nothing visible before publish");
        queue.publish(12);
        assert_eq!(queue.max_offset(), 12);
        let read = queue.entries(3, 10);
        assert_eq!(read.len(), 2, "a read stops at the end of a file");
        assert_eq!(read[0], (3, entry(300)));
        assert_eq!(queue.roll_next_file(3), 5);
        assert!(!queue.put(5, entry(500)).unwrap(), "idempotent");
        drop(queue);

        let queue = ConsumeQueue::load(dir.path(), "T", 0, 5 * ENTRY_SIZE_BYTES).unwrap();
        assert_eq!((queue.min_offset(), queue.max_offset()), (0, 12));
        assert_eq!(queue.max_physic_offset(), 1200);
        assert!(dir.path().join("00000000000000000100").exists());
    }

    #[test]
    fn queue_created_mid_stream_starts_with_fillers() {
        let dir = tempfile::tempdir().unwrap();
        let queue = ConsumeQueue::load(dir.path(), "T", 1, 5 * ENTRY_SIZE_BYTES).unwrap();
        queue.put(7, entry(0)).unwrap();
        queue.publish(8);
        assert_eq!((queue.min_offset(), queue.max_offset()), (7, 8));
        drop(queue);
        let queue = ConsumeQueue::load(dir.path(), "T", 1, 5 * ENTRY_SIZE_BYTES).unwrap();
        assert_eq!((queue.min_offset(), queue.max_offset()), (7, 8));
    }

    #[test]
    fn truncation_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let queue = ConsumeQueue::load(dir.path(), "T", 0, 5 * ENTRY_SIZE_BYTES).unwrap();
        for n in 0..12 {
            queue.put(n, entry(n * 100)).unwrap();
        }
        queue.publish(12);
        queue.truncate_after_physic(1000).unwrap();
        assert_eq!(queue.max_offset(), 10);
        assert_eq!(queue.max_physic_offset(), 1000);
        assert_eq!(queue.delete_expired(650).unwrap(), 1);
        assert_eq!(queue.min_offset(), 7);
    }
}
