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

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Commit-log offset of the first byte.
    pub offset: u64,
    /// The file it is in.
    pub file_start: u64,
}

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
        self.files.truncate(offset)?;
        self.flushed_where.store(offset, Ordering::Release);
        self.last_store_timestamp.store(last_store_timestamp, Ordering::Release);
        Ok(())
    }

    /// Appends `records` (one record, or a batch appended as one unit). `patch` is called with
    /// the final commit-log offset of the first byte, before the copy, to fill in offsets and
    /// times. Called by the appender thread only.
    pub(crate) fn append(
        &self,
        records: &mut [u8],
        store_timestamp: i64,
        patch: impl FnOnce(&mut [u8], u64),
    ) -> io::Result<Placement> {
        let length = records.len() as u64;
        assert!(length + BLANK_RECORD_BYTES <= self.file_size_bytes, "record larger than a commit-log file");
        let mut file = self.writable_file()?;
        if file.remaining() < length + BLANK_RECORD_BYTES {
            self.close_with_blank(&file)?;
            file = self.next_file(&file)?;
        }
        let at = file.wrote();
        let offset = file.start_offset() + at;
        patch(records, offset);
        // SAFETY: the appender is the single writer; `at` is the published end.
        unsafe { file.write_unpublished(at, records) };
        file.publish(at + length);
        self.last_store_timestamp.store(store_timestamp, Ordering::Release);
        Ok(Placement { offset, file_start: file.start_offset() })
    }

    fn writable_file(&self) -> io::Result<Arc<MappedFile>> {
        match self.files.last() {
            Some(file) if !file.is_full() => Ok(file),
            Some(full) => self.next_file(&full),
            None => self.files.push_new(0, self.prepared.lock().take()),
        }
    }

    fn next_file(&self, current: &MappedFile) -> io::Result<Arc<MappedFile>> {
        let start = current.end_offset();
        let prepared = self.prepared.lock().take().filter(|file| file.start_offset() == start);
        self.files.push_new(start, prepared)
    }

    /// Writes the blank record (`size = remaining`, BLANK magic) that ends a file.
    fn close_with_blank(&self, file: &MappedFile) -> io::Result<()> {
        let at = file.wrote();
        let remaining = file.size_bytes() - at;
        let mut blank = [0u8; BLANK_RECORD_BYTES as usize];
        blank[0..4].copy_from_slice(&(remaining as i32).to_be_bytes());
        blank[4..8].copy_from_slice(&record::BLANK_MAGIC.to_be_bytes());
        // SAFETY: single writer, unpublished range (remaining ≥ 8 by the append invariant).
        unsafe { file.write_unpublished(at, &blank) };
        file.publish(file.size_bytes());
        Ok(())
    }

    /// Creates the file after the newest one ahead of time, so an append rarely waits for a
    /// file to be made. Called from a background thread.
    pub fn prepare_next_file(&self) -> io::Result<()> {
        let next_start = self.files.last().map_or(0, |file| file.end_offset());
        let mut prepared = self.prepared.lock();
        if prepared.as_ref().is_some_and(|file| file.start_offset() == next_start) {
            return Ok(());
        }
        *prepared = Some(MappedFile::create(self.files.dir(), next_start, self.file_size_bytes)?);
        Ok(())
    }

    /// True when the newest file is more than half full and its successor is not made yet.
    pub fn wants_next_file(&self) -> bool {
        let Some(last) = self.files.last() else { return self.prepared.lock().is_none() };
        let next_start = last.end_offset();
        last.wrote() * 2 >= last.size_bytes()
            && self.prepared.lock().as_ref().is_none_or(|file| file.start_offset() != next_start)
    }

    /// Flushes up to the newest byte when at least `least_pages` pages are dirty (0: always).
    /// Returns the flushed offset.
    pub fn flush(&self, least_pages: u64) -> io::Result<u64> {
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

    /// The record stored at `offset`, if it is a whole record below the write position.
    pub fn record_at(&self, offset: u64) -> Option<MappedSlice> {
        let file = self.files.find(offset)?;
        let position = offset - file.start_offset();
        let header = file.slice(position, 4)?;
        let size = i32::from_be_bytes(header.as_slice().try_into().ok()?);
        let size = u64::try_from(size).ok().filter(|size| *size > BLANK_RECORD_BYTES)?;
        let slice = file.slice(position, size)?;
        RecordView::parse(slice.as_slice(), false).ok()?;
        Some(slice)
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
