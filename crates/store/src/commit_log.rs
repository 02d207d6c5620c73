//! The commit log: every message of every topic, appended in arrival order to 1 GiB mapped
//! segments (storage spec §1). Records never span two files: a record that does not fit is
//! preceded by a blank record filling the rest of the file.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use apogee_common::message::record::{self, RecordView};
use parking_lot::Mutex;

use crate::mapped_file::{MappedFile, MappedSlice};
use crate::mapped_file_queue::MappedFileQueue;

/// Bytes of the blank record that closes a file: size and magic.
pub const BLANK_RECORD_BYTES: u64 = 8;

/// The commit log.
#[derive(Debug)]
pub struct CommitLog {
    files: MappedFileQueue,
    file_size_bytes: u64,
    /// Everything below is on disk.
    flushed_where: AtomicU64,
    /// Store time of the newest appended record (for the checkpoint).
    last_store_timestamp: AtomicI64,
    /// The next file, made ahead of time by [`CommitLog::prepare_next_file`].
    prepared: Mutex<Option<MappedFile>>,
    /// The appender's write cursor: current file and the end of the last reservation.
    cursor: Mutex<Option<(Arc<MappedFile>, u64)>>,
    /// Held by [`Self::flush`] and [`Self::truncate_durably`], so a flush that started
    /// before a truncation cannot record a flushed position past the new end.
    flush_lock: Mutex<()>,
}

/// Bytes reserved for one append.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// File the bytes go to.
    pub file: Arc<MappedFile>,
    /// Position in that file.
    pub position: u64,
    /// The previous file, closed with a blank record to make room; publish it whole.
    pub closed: Option<Arc<MappedFile>>,
}

impl Reservation {
    /// Commit-log offset of the first reserved byte.
    pub fn offset(&self) -> u64 {
        self.file.start_offset() + self.position
    }
}

/// The 8-byte record that fills the rest of a file: its size and the BLANK magic.
fn blank_record(remaining: u64) -> [u8; BLANK_RECORD_BYTES as usize] {
    let mut blank = [0u8; BLANK_RECORD_BYTES as usize];
    blank[0..4].copy_from_slice(&(remaining as i32).to_be_bytes());
    blank[4..8].copy_from_slice(&record::BLANK_MAGIC.to_be_bytes());
    blank
}

impl CommitLog {
    /// Loads the segments under `dir`.
    pub fn load(dir: &Path, file_size_bytes: u64) -> io::Result<Self> {
        let files = MappedFileQueue::load(dir, file_size_bytes)?;
        Ok(Self {
            files,
            file_size_bytes,
            flushed_where: AtomicU64::new(0),
            last_store_timestamp: AtomicI64::new(0),
            prepared: Mutex::new(None),
            cursor: Mutex::new(None),
            flush_lock: Mutex::new(()),
        })
    }

    /// The segments.
    pub fn files(&self) -> &MappedFileQueue {
        &self.files
    }

    /// Size of every segment.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// Offset of the oldest stored byte.
    pub fn min_offset(&self) -> u64 {
        self.files.min_offset()
    }

    /// Offset one past the newest appended byte.
    pub fn max_offset(&self) -> u64 {
        self.files.max_offset()
    }

    /// Offset below which everything is on disk.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_where.load(Ordering::Acquire)
    }

    /// Store time of the newest record.
    pub fn last_store_timestamp(&self) -> i64 {
        self.last_store_timestamp.load(Ordering::Acquire)
    }

    /// Sets positions after recovery: everything below `offset` is valid and on disk.
    pub(crate) fn set_recovered_end(&self, offset: u64, last_store_timestamp: i64) -> io::Result<()> {
        *self.cursor.lock() = None;
        self.files.truncate(offset)?;
        self.flushed_where.store(offset, Ordering::Release);
        self.last_store_timestamp.store(last_store_timestamp, Ordering::Release);
        Ok(())
    }

    /// Reserves `length` contiguous bytes for the next append. When they do not fit in the
    /// current file, a blank record closes it (written, not yet published) and the reservation
    /// starts the next file. Called by the appender thread only; the bytes are written with
    /// [`MappedFile::write_vectored_unpublished`] and published by [`Self::publish`].
    pub(crate) fn reserve(&self, length: u64) -> io::Result<Reservation> {
        assert!(length + BLANK_RECORD_BYTES <= self.file_size_bytes, "record larger than a commit-log file");
        let mut cursor = self.cursor.lock();
        let (file, position) = match cursor.take() {
            Some(current) => current,
            None => match self.files.last() {
                Some(last) => {
                    let position = last.wrote();
                    (last, position)
                }
                None => (self.files.push_new(0, self.prepared.lock().take())?, 0),
            },
        };
        let (file, position, closed) = if file.size_bytes() - position < length + BLANK_RECORD_BYTES {
            let blank = blank_record(file.size_bytes() - position);
            file.write_vectored_unpublished(position, &mut [std::io::IoSlice::new(&blank)])?;
            let next = self.next_file(&file)?;
            (next, 0, Some(file))
        } else {
            (file, position, None)
        };
        *cursor = Some((Arc::clone(&file), position + length));
        Ok(Reservation { file, position, closed })
    }

    /// Drops the appender's cached write position, so the next reservation starts from the
    /// files (after a replicated write moved the end).
    pub(crate) fn forget_cursor(&self) {
        *self.cursor.lock() = None;
    }

    /// Drops everything from `offset` on, where no queue entry points (a slave's bad
    /// replicated tail).
    pub(crate) fn truncate_unreferenced(&self, offset: u64) -> io::Result<()> {
        *self.cursor.lock() = None;
        self.files.truncate(offset)?;
        self.flushed_where.fetch_min(offset, Ordering::AcqRel);
        Ok(())
    }

    /// Drops everything from `offset` on, durably (see [`MappedFileQueue::truncate_durably`]),
    /// and takes the newest store time back to `last_store_timestamp`, that of the newest
    /// record kept (or an earlier time). A file made ahead for the old end is deleted too:
    /// left on disk past a gap, it would stop the next open. The caller is the single writer
    /// and `offset` ends a whole record; positions below it are then flushed by [`Self::flush`].
    pub(crate) fn truncate_durably(&self, offset: u64, last_store_timestamp: i64) -> io::Result<()> {
        let _flush = self.flush_lock.lock();
        *self.cursor.lock() = None;
        // Held throughout, so the allocator never makes a file for the old end after this.
        let mut prepared = self.prepared.lock();
        self.files.truncate_durably(offset)?;
        let next_start = self.files.last().map_or(offset, |file| file.end_offset());
        if let Some(stale) = prepared.take_if(|file| file.start_offset() != next_start) {
            stale.destroy()?;
            self.files.sync_dir()?;
        }
        // The new end: `offset`, or 0 when no file is left.
        let end = self.max_offset();
        debug_assert!(end <= offset, "the log ends at {end}, past the truncation point {offset}");
        self.flushed_where.fetch_min(end, Ordering::AcqRel);
        self.last_store_timestamp.store(last_store_timestamp, Ordering::Release);
        Ok(())
    }

    /// The file a replicated write at `offset` goes to: the newest file when `offset` is
    /// inside it, else a new file starting at `offset` (which must then be the end of the
    /// newest file, or a file boundary of an empty log).
    pub(crate) fn file_for_replica(&self, offset: u64) -> io::Result<Arc<MappedFile>> {
        if let Some(last) = self.files.last() {
            if offset < last.end_offset() {
                return Ok(last);
            }
        }
        let prepared = self.prepared.lock().take();
        let prepared = match prepared {
            Some(file) if file.start_offset() == offset => Some(file),
            other => {
                *self.prepared.lock() = other;
                None
            }
        };
        self.files.push_new(offset, prepared)
    }

    /// Publishes written bytes of `file` up to `end`, and records the newest store time.
    pub(crate) fn publish(&self, file: &MappedFile, end: u64, store_timestamp: i64) {
        file.publish(end);
        self.last_store_timestamp.fetch_max(store_timestamp, Ordering::AcqRel);
    }

    fn next_file(&self, current: &MappedFile) -> io::Result<Arc<MappedFile>> {
        let start = current.end_offset();
        let prepared = self.prepared.lock().take().filter(|file| file.start_offset() == start);
        self.files.push_new(start, prepared)
    }

    /// Creates the file after the newest one ahead of time, so an append rarely waits for a
    /// file to be made. Called from a background thread.
    pub fn prepare_next_file(&self) -> io::Result<()> {
        // Locked before the end is read: a truncation then cannot move the end in between.
        let mut prepared = self.prepared.lock();
        let next_start = self.files.last().map_or(0, |file| file.end_offset());
        if prepared.as_ref().is_some_and(|file| file.start_offset() == next_start) {
            return Ok(());
        }
        *prepared = Some(MappedFile::create(self.files.dir(), next_start, self.file_size_bytes)?);
        Ok(())
    }

    /// True when the file after the newest one is already made (its space is taken).
    pub fn next_file_ready(&self) -> bool {
        let next_start = self.files.last().map_or(0, |file| file.end_offset());
        self.prepared.lock().as_ref().is_some_and(|file| file.start_offset() == next_start)
    }

    /// True when the newest file is more than half full and its successor is not made yet.
    pub fn wants_next_file(&self) -> bool {
        let Some(last) = self.files.last() else { return self.prepared.lock().is_none() };
        let next_start = last.end_offset();
        last.wrote() * 2 >= last.size_bytes()
            && self.prepared.lock().as_ref().is_none_or(|file| file.start_offset() != next_start)
    }

    /// Starts writeback of the whole pages appended since the last call, in every file not yet
    /// flushed entirely (see [`MappedFile::start_writeback`]); returns at once.
    pub fn start_writeback(&self) -> io::Result<()> {
        let flushed = self.flushed_offset();
        for file in self.files.files().iter().rev() {
            if file.end_offset() <= flushed {
                break;
            }
            file.start_writeback()?;
        }
        Ok(())
    }

    /// Flushes up to the newest byte when at least `least_pages` pages are dirty (0: always).
    /// Returns the flushed offset.
    pub fn flush(&self, least_pages: u64) -> io::Result<u64> {
        let _flush = self.flush_lock.lock();
        let mut flushed = self.flushed_offset();
        // Every file from the one holding the flushed point on: a full file is flushed whole
        // and the flush carries on into its successor.
        while let Some(file) = self.files.find(flushed).or_else(|| self.files.last()) {
            let file_flushed = file.flush(least_pages)?;
            flushed = flushed.max(file.start_offset() + file_flushed);
            if !(file.is_full() && file_flushed == file.size_bytes())
                || file.end_offset() >= self.max_offset()
            {
                break;
            }
        }
        self.flushed_where.fetch_max(flushed, Ordering::AcqRel);
        Ok(self.flushed_offset())
    }

    /// The record stored at `offset`, if it is a whole record below the write position that
    /// says it lies at `offset`: an offset from elsewhere (a message id, an index entry of a
    /// record since truncated) may point into the middle of another record.
    pub fn record_at(&self, offset: u64) -> Option<MappedSlice> {
        let file = self.files.find(offset)?;
        let position = offset - file.start_offset();
        let header = file.slice(position, 4)?;
        let size = i32::from_be_bytes(header.as_slice().try_into().ok()?);
        let size = u64::try_from(size).ok().filter(|size| *size > BLANK_RECORD_BYTES)?;
        let slice = file.slice(position, size)?;
        let view = RecordView::parse(slice.as_slice(), false).ok()?;
        (u64::try_from(view.physical_offset()).ok() == Some(offset)).then_some(slice)
    }

    /// `size` bytes at `offset` (a record whose size a consume-queue entry gave).
    pub fn slice(&self, offset: u64, size: u64) -> Option<MappedSlice> {
        let file = self.files.find(offset)?;
        file.slice(offset - file.start_offset(), size)
    }

    /// Store time of the record at `offset` (binary searches by time).
    pub fn store_timestamp_at(&self, offset: u64) -> Option<i64> {
        let slice = self.record_at(offset)?;
        RecordView::parse(slice.as_slice(), false).ok().map(|view| view.store_timestamp())
    }
}
