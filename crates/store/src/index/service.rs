//! The ordered set of index files in `index/` (Java `IndexService`): the dispatcher appends keys to
//! the newest file and rolls to a new one when it is full; queries walk the files newest first.
//!
//! Threading: the file list is behind an `RwLock` that is held only to copy or edit the list, never
//! during disk work. Appends are serialised by the writer mutex (the store has one dispatch
//! thread, but the API does not rely on it). Queries run concurrently with appends: they clone the
//! list of `Arc`s and step through chains under each file's own short read locks. A full file is
//! synced on a background thread (`index-flush`) so the appender never waits for ~420 MB of
//! writeback; its end timestamp becomes visible through
//! [`IndexService::last_flushed_full_file_end_timestamp`] only after that sync succeeded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use apogee_common::time::now_ms;
use parking_lot::{Mutex, RwLock};

use super::file::IndexFile;
use super::header::INDEX_HEADER_SIZE;
use super::header::{IndexHeader, Layout};
use super::name::{is_index_file_name, next_file_name, successor};
use super::{
    index_key_hash, IndexConfig, QueryOffsetResult, KEY_SEPARATOR, MAX_QUERY_RESULTS,
    TRANSACTION_ROLLBACK_TYPE, TRANSACTION_TYPE_MASK,
};
use crate::file_space;

/// Attempts to create a new index file before giving up (Java `MAX_TRY_IDX_CREATE`).
const MAX_FILE_CREATE_ATTEMPTS: u32 = 3;

/// Pause between two attempts to create an index file (Java sleeps 1 s).
const FILE_CREATE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Names tried per attempt when the chosen name already exists (files rolled within one
/// millisecond); each retry takes the next name up.
const MAX_NAME_COLLISIONS: u32 = 64;

/// Name of the threads that sync full files.
const FLUSH_THREAD_NAME: &str = "index-flush";

/// State only the appender touches, behind the writer mutex.
#[derive(Debug)]
struct WriterState {
    /// Commit-log offset of the newest message whose keys were indexed, if any: a message at or
    /// below it is already in the index (re-dispatch during recovery) and is skipped.
    last_indexed_offset: Option<i64>,
}

/// The index of one store: every index file of its `index/` directory, oldest first.
///
/// `Send + Sync`: the dispatch thread calls [`build_index`](Self::build_index) while broker
/// threads call [`query`](Self::query) and the retention and flush services delete and flush.
#[derive(Debug)]
pub struct IndexService {
    dir: PathBuf,
    layout: Layout,
    files: RwLock<Vec<Arc<IndexFile>>>,
    writer: Mutex<WriterState>,
    flushed_full_end_timestamp: Arc<AtomicI64>,
    background_flushes: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
}

impl IndexService {
    /// Opens `dir` (created if missing) and loads every index file in it, sorted by name. An
    /// empty file, which a crash while creating a file leaves, is removed.
    ///
    /// Fails if the configuration is unusable or if a file has the wrong size or an entry count
    /// beyond the configured geometry: such files were written with another configuration and
    /// would answer queries with garbage. Entries that are not index file names (17 digits) are
    /// skipped with a warning.
    pub fn open(dir: &Path, config: IndexConfig) -> io::Result<Self> {
        let layout = Layout::new(config)?;
        fs::create_dir_all(dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().filter(|name| is_index_file_name(name)) else {
                tracing::warn!(path = %entry.path().display(), "not an index file name, skipped");
                continue;
            };
            if !entry.file_type()?.is_file() {
                tracing::warn!(path = %entry.path().display(), "not a regular file, skipped");
                continue;
            }
            let length = entry.metadata()?.len();
            if length < layout.file_size() && file_space::starts_empty(&entry.path(), INDEX_HEADER_SIZE)? {
                // A crash or a full disk while a new file was being allocated: its header was
                // never written, so it never held an entry, and recovery re-indexes everything
                // after the last synced full file anyway.
                tracing::warn!(
                    path = %entry.path().display(),
                    size_bytes = length,
                    expected_bytes = layout.file_size(),
                    "index file left by an interrupted or failed allocation, removed"
                );
                fs::remove_file(entry.path())?;
                continue;
            }
            names.push(name.to_owned());
        }
        names.sort_unstable();

        let mut files = Vec::with_capacity(names.len());
        for name in &names {
            let file = IndexFile::load(&dir.join(name), layout)?;
            let header = file.header();
            tracing::info!(
                file = %name,
                index_count = header.index_count,
                end_phy_offset = header.end_phy_offset,
                "loaded index file"
            );
            files.push(Arc::new(file));
        }

        let service = Self {
            dir: dir.to_owned(),
            layout,
            writer: Mutex::new(WriterState { last_indexed_offset: last_indexed_offset(&files) }),
            flushed_full_end_timestamp: Arc::new(AtomicI64::new(full_files_end_timestamp(&files))),
            files: RwLock::new(files),
            background_flushes: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        };
        Ok(service)
    }

    /// Indexes one dispatched message: `topic#uniq_key` if present, then `topic#k` for every
    /// non-empty space-separated `k` in `keys`, all pointing at `commit_log_offset`.
    ///
    /// Skipped: transaction rollback records (`transaction_type & 0xC == 0xC`; the full sysFlag may
    /// be passed) and messages at or below the newest indexed offset, so re-dispatching the commit
    /// log during recovery does not index a message twice. (Java skips only offsets below the
    /// newest file's end, which indexes the last message again; the offset of a message is unique,
    /// so skipping it too loses nothing.)
    ///
    /// Errors when no new file can be created after retries (the store then raises its
    /// WRITE_INDEX_FILE_ERROR flag) or after [`shutdown`](Self::shutdown).
    pub fn build_index(
        &self,
        topic: &str,
        keys: Option<&str>,
        uniq_key: Option<&str>,
        commit_log_offset: i64,
        store_timestamp: i64,
        transaction_type: i32,
    ) -> io::Result<()> {
        if transaction_type & TRANSACTION_TYPE_MASK == TRANSACTION_ROLLBACK_TYPE {
            return Ok(());
        }
        // UNIQ_KEY first (even if empty, as in Java), then the non-empty business keys.
        let business_keys =
            keys.into_iter().flat_map(|keys| keys.split(KEY_SEPARATOR)).filter(|k| !k.is_empty());
        let mut all_keys = uniq_key.into_iter().chain(business_keys).peekable();
        if all_keys.peek().is_none() {
            return Ok(());
        }

        let mut writer = self.writer.lock();
        if self.shut_down.load(Ordering::Acquire) {
            return Err(io::Error::other("index service is shut down"));
        }
        if writer.last_indexed_offset.is_some_and(|last| commit_log_offset <= last) {
            return Ok(());
        }
        let mut file = self.writable_file()?;
        for key in all_keys {
            let key_hash = index_key_hash(topic, key);
            file = self.put_key(file, key_hash, commit_log_offset, store_timestamp)?;
            writer.last_indexed_offset = Some(commit_log_offset);
        }
        Ok(())
    }

    /// Commit-log offsets of messages with key (or UNIQ_KEY) `key` in `topic` stored within
    /// `[begin_timestamp, end_timestamp]`, newest first, at most `min(max_num, 64)` of them.
    ///
    /// Files are visited newest first; files whose time range misses the query are skipped, and
    /// the walk stops at the first file that begins before `begin_timestamp`, exactly like Java.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin_timestamp: i64,
        end_timestamp: i64,
    ) -> QueryOffsetResult {
        let max = max_num.min(MAX_QUERY_RESULTS);
        let files = self.files.read().clone();
        let mut result = QueryOffsetResult::default();
        if let Some(newest) = files.last() {
            let header = newest.header();
            result.index_last_update_timestamp = header.end_timestamp;
            result.index_last_update_phy_offset = header.end_phy_offset;
        }
        if max == 0 {
            return result;
        }
        let key_hash = index_key_hash(topic, key);
        let mut offsets = Vec::with_capacity(max);
        for file in files.iter().rev() {
            let header = file.header();
            if header.is_time_matched(begin_timestamp, end_timestamp) {
                file.select_phy_offsets(key_hash, max, begin_timestamp, end_timestamp, &mut offsets);
            }
            if header.begin_timestamp < begin_timestamp || offsets.len() >= max {
                break;
            }
        }
        result.phy_offsets = offsets;
        result
    }

    /// Writes every file's header and syncs its changed pages, after waiting for background syncs
    /// of full files. Returns the first error, having tried every file.
    pub fn flush(&self) -> io::Result<()> {
        self.join_background_flushes();
        let files = self.files.read().clone();
        let mut first_error = None;
        for file in &files {
            if let Err(e) = file.flush() {
                tracing::error!(file = %file.path().display(), error = %e, "index flush failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// End timestamp of the newest full index file known to be on disk: the checkpoint's
    /// `indexMsgTimestamp` (spec §4.3). Starts at the newest full file loaded by
    /// [`open`](Self::open) (0 if none) and advances when a rolled file's background sync ends.
    pub fn last_flushed_full_file_end_timestamp(&self) -> i64 {
        self.flushed_full_end_timestamp.load(Ordering::Acquire)
    }

    /// Abnormal-exit recovery (spec §4.5): deletes every file whose end timestamp is after the
    /// checkpoint's `index_msg_timestamp`, since its unsynced pages may be lost; the commit-log
    /// recovery re-dispatches those messages. Returns how many files were deleted.
    pub fn delete_files_after_timestamp(&self, index_msg_timestamp: i64) -> io::Result<usize> {
        let mut writer = self.writer.lock();
        let (removed, remaining) = {
            let mut files = self.files.write();
            let (removed, kept): (Vec<_>, Vec<_>) =
                files.drain(..).partition(|file| file.header().end_timestamp > index_msg_timestamp);
            *files = kept;
            (removed, files.clone())
        };
        writer.last_indexed_offset = last_indexed_offset(&remaining);
        self.flushed_full_end_timestamp.store(full_files_end_timestamp(&remaining), Ordering::Release);
        drop(writer);
        destroy_all(&removed, "ends after the checkpoint's index timestamp")
    }

    /// Retention (spec §3.4, §5.7): deletes the oldest files whose end offset is below the commit
    /// log's minimum offset, stopping at the first file still needed and never deleting the
    /// newest file. Returns how many files were deleted.
    pub fn delete_files_below_offset(&self, commit_log_min_offset: i64) -> io::Result<usize> {
        let removed: Vec<_> = {
            let mut files = self.files.write();
            let older = files.len().saturating_sub(1);
            let expired = files[..older]
                .iter()
                .take_while(|file| file.header().end_phy_offset < commit_log_min_offset)
                .count();
            files.drain(..expired).collect()
        };
        destroy_all(&removed, "wholly below the commit log's minimum offset")
    }

    /// The commit log was truncated at `commit_log_offset` (a slave taking its new master's
    /// log): messages written from there on must be indexed again when they come, although
    /// the offsets they get may have been indexed before. Files holding only entries at or
    /// after the offset are deleted; the newest indexed offset, in memory and in every
    /// remaining header, moves below it; the headers are flushed. Entries for dropped messages
    /// stay in the remaining files: a query returns candidates only, and the store checks
    /// each one against the record now at its offset.
    pub fn forget_from_offset(&self, commit_log_offset: i64) -> io::Result<()> {
        let below = commit_log_offset.saturating_sub(1);
        // A full file still syncing would publish its end time after the recount below.
        self.join_background_flushes();
        let removed: Vec<_> = {
            let mut writer = self.writer.lock();
            let removed = {
                let mut files = self.files.write();
                let kept = files
                    .iter()
                    .position(|file| {
                        let header = file.header();
                        header.index_count > 1 && header.begin_phy_offset >= commit_log_offset
                    })
                    .unwrap_or(files.len());
                files.drain(kept..).collect()
            };
            let files = self.files.read().clone();
            for file in &files {
                file.lower_end_phy_offset(below);
            }
            if writer.last_indexed_offset.is_some_and(|last| last > below) {
                writer.last_indexed_offset = Some(below);
            }
            self.flushed_full_end_timestamp.store(full_files_end_timestamp(&files), Ordering::Release);
            removed
        };
        destroy_all(&removed, "holds only entries of truncated messages")?;
        if !removed.is_empty() {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        self.flush()
    }

    /// Name and header of every file, oldest first: what an admin status view or a test needs to
    /// see how the index is laid out without reading the files.
    pub fn file_headers(&self) -> Vec<(String, IndexHeader)> {
        self.files.read().iter().map(|file| (file.name().to_owned(), file.header())).collect()
    }

    /// Flushes everything and refuses further appends; queries keep working on the loaded files.
    /// A second call does nothing.
    pub fn shutdown(&self) -> io::Result<()> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Wait for an append in progress, so the flush below sees its entries.
        drop(self.writer.lock());
        self.flush()
    }

    /// The newest file if it has room, otherwise a new one.
    fn writable_file(&self) -> io::Result<Arc<IndexFile>> {
        let newest = self.files.read().last().cloned();
        match newest {
            Some(file) if !file.is_full() => Ok(file),
            full_or_none => self.roll(full_or_none),
        }
    }

    /// Puts one key, rolling to a new file when `file` is full. Returns the file now in use.
    fn put_key(
        &self,
        file: Arc<IndexFile>,
        key_hash: i32,
        phy_offset: i64,
        store_timestamp: i64,
    ) -> io::Result<Arc<IndexFile>> {
        if file.put(key_hash, phy_offset, store_timestamp)? {
            return Ok(file);
        }
        let next = self.roll(Some(file))?;
        if next.put(key_hash, phy_offset, store_timestamp)? {
            Ok(next)
        } else {
            Err(io::Error::other(format!("new index file {} refused its first key", next.name())))
        }
    }

    /// Creates the next file, starting where `full` ended, and syncs `full` in the background.
    fn roll(&self, full: Option<Arc<IndexFile>>) -> io::Result<Arc<IndexFile>> {
        let (end_phy_offset, end_timestamp) =
            full.as_ref().map(|file| file.header()).map_or((0, 0), |h| (h.end_phy_offset, h.end_timestamp));
        let created = Arc::new(self.create_file(end_phy_offset, end_timestamp)?);
        tracing::info!(file = %created.name(), end_phy_offset, "created index file");
        self.files.write().push(Arc::clone(&created));
        if let Some(full) = full {
            self.flush_in_background(full);
        }
        Ok(created)
    }

    /// Creates a file named after the current time, retrying like Java before giving up.
    fn create_file(&self, prev_end_phy_offset: i64, prev_end_timestamp: i64) -> io::Result<IndexFile> {
        let mut last_error = None;
        for attempt in 1..=MAX_FILE_CREATE_ATTEMPTS {
            match self.try_create_file(prev_end_phy_offset, prev_end_timestamp) {
                Ok(file) => return Ok(file),
                Err(e) if file_space::is_out_of_space(&e) => {
                    // Waiting does not make room, and this runs inside the append round.
                    tracing::warn!(dir = %self.dir.display(), attempt, error = %e, "no room for a new index file");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), attempt, error = %e, "cannot create index file");
                    last_error = Some(e);
                    if attempt < MAX_FILE_CREATE_ATTEMPTS {
                        thread::sleep(FILE_CREATE_RETRY_DELAY);
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("index file creation was not attempted")))
    }

    fn try_create_file(&self, prev_end_phy_offset: i64, prev_end_timestamp: i64) -> io::Result<IndexFile> {
        let newest_name = self.files.read().last().map(|file| file.name().to_owned());
        let mut name = next_file_name(now_ms(), newest_name.as_deref());
        for _ in 0..MAX_NAME_COLLISIONS {
            match IndexFile::create(&self.dir, &name, self.layout, prev_end_phy_offset, prev_end_timestamp) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    name = successor(&name).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::AlreadyExists, "no index file name left")
                    })?;
                }
                created => return created,
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "every candidate index file name exists"))
    }

    /// Syncs a full file on its own thread, then publishes its end timestamp for the checkpoint.
    fn flush_in_background(&self, full: Arc<IndexFile>) {
        let published = Arc::clone(&self.flushed_full_end_timestamp);
        let job_file = Arc::clone(&full);
        let job_published = Arc::clone(&published);
        let spawned = thread::Builder::new()
            .name(FLUSH_THREAD_NAME.to_owned())
            .spawn(move || flush_full_file(&job_file, &job_published));
        match spawned {
            Ok(handle) => {
                let mut handles = self.background_flushes.lock();
                handles.retain(|handle| !handle.is_finished());
                handles.push(handle);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start an index flush thread; flushing inline");
                flush_full_file(&full, &published);
            }
        }
    }

    fn join_background_flushes(&self) {
        let handles = std::mem::take(&mut *self.background_flushes.lock());
        for handle in handles {
            if handle.join().is_err() {
                tracing::error!("index flush thread panicked");
            }
        }
    }
}

impl Drop for IndexService {
    fn drop(&mut self) {
        // No sync thread outlives the service.
        self.join_background_flushes();
    }
}

fn flush_full_file(file: &IndexFile, published: &AtomicI64) {
    match file.flush() {
        Ok(()) => {
            let end_timestamp = file.header().end_timestamp;
            published.fetch_max(end_timestamp, Ordering::AcqRel);
            tracing::info!(file = %file.name(), end_timestamp, "flushed full index file");
        }
        Err(e) => tracing::error!(file = %file.path().display(), error = %e, "cannot flush full index file"),
    }
}

/// Offset below or at which messages are already indexed: the newest file's end, unless nothing
/// was ever indexed (a lone empty file that did not inherit an end from a predecessor).
fn last_indexed_offset(files: &[Arc<IndexFile>]) -> Option<i64> {
    let newest = files.last()?.header();
    let has_history = newest.index_count > 1 || files.len() > 1 || newest.end_phy_offset != 0;
    has_history.then_some(newest.end_phy_offset)
}

/// Newest end timestamp among full files, 0 if there is none.
fn full_files_end_timestamp(files: &[Arc<IndexFile>]) -> i64 {
    files.iter().filter(|file| file.is_full()).map(|file| file.header().end_timestamp).max().unwrap_or(0)
}

fn destroy_all(files: &[Arc<IndexFile>], why: &str) -> io::Result<usize> {
    let mut first_error = None;
    for file in files {
        match file.destroy() {
            Ok(()) => tracing::info!(file = %file.name(), why, "deleted index file"),
            Err(e) => {
                tracing::error!(file = %file.path().display(), error = %e, "cannot delete index file");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(files.len()), Err)
}
