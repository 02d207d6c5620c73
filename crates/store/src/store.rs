//! `MessageStore`: the store's public face and the threads behind it.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::append_queue::AppendQueue;
use crate::appender::{Pending, Rounds};
use crate::checkpoint::Checkpoint;
use crate::commit_log::CommitLog;
use crate::config::{FlushDiskType, StoreConfig};
use crate::consume_queue::ConsumeQueue;
use crate::disk::{DiskUsage, StatvfsDiskUsage};
use crate::dispatch::DelayLevels;
use crate::epoch::{EpochFile, EPOCH_FILE_NAME};
use crate::flush::{self, GroupCommit};
use crate::index::{IndexConfig, IndexService};
use crate::put::{ArrivalListener, PutCallback, PutRequest, PutResult, PutStatus};
use crate::queue_table::QueueTable;
use crate::replica::Replication;
use crate::running::{self, RunningFlags};
use crate::service::{self, StopSignal};
use crate::{disk_guard, file_space, recovery, retention};

pub use crate::append_queue::MAX_QUEUED_APPENDS;

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read, written or mapped.
    #[error("store i/o at {path}: {source}")]
    Io {
        /// What was being touched.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A setting is unusable.
    #[error("store config: {0}")]
    Config(String),
    /// Another process owns the directory.
    #[error("store directory {0} is locked by another process")]
    Locked(PathBuf),
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// State shared by the store's threads.
pub(crate) struct StoreInner {
    pub config: StoreConfig,
    pub commit_log: CommitLog,
    pub queues: QueueTable,
    pub index: Option<IndexService>,
    pub checkpoint: Checkpoint,
    pub running: RunningFlags,
    pub delay_levels: DelayLevels,
    pub group_commit: GroupCommit,
    pub listener: RwLock<Option<Arc<dyn ArrivalListener>>>,
    /// Store time of the newest record whose queue entries are written.
    pub dispatched_store_timestamp: AtomicI64,
    pub disk: Box<dyn DiskUsage>,
    allocator_wake: Mutex<Option<SyncSender<()>>>,
    /// A master's replication service (see [`crate::replica`]).
    pub replication: OnceLock<Arc<dyn Replication>>,
    /// A slave's store: ordinary appends are refused.
    pub replica_only: AtomicBool,
    /// Controller mode's epoch file (see [`crate::epoch`]): the store owns it because
    /// retention and truncation must change it together with the commit log.
    pub epochs: Mutex<EpochFile>,
    /// Held while stored bytes are removed other than by appending (retention at the head of
    /// the log, [`MessageStore::truncate_to`] at its tail) and while consume queues and the
    /// index are flushed, so none of them sees the others half done.
    pub maintenance: Mutex<()>,
}

impl StoreInner {
    /// Makes queue entries visible and tells the listener.
    pub(crate) fn publish(&self, touched: &mut Vec<(Arc<ConsumeQueue>, i64)>) {
        let listener = self.listener.read().clone();
        for (queue, max_offset) in touched.drain(..) {
            queue.publish(max_offset);
            if let Some(listener) = &listener {
                listener.arrived(queue.topic(), queue.queue_id(), max_offset);
            }
        }
    }

    pub(crate) fn wake_allocator(&self) {
        if let Some(wake) = self.allocator_wake.lock().as_ref() {
            let _ = wake.try_send(());
        }
    }
}

/// Counters of a running store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Flushes done by the SYNC_FLUSH group commit.
    pub group_commit_flushes: u64,
    /// Appends answered after those flushes (divide for the mean group size).
    pub group_commit_appends: u64,
}

/// The message store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct MessageStore {
    pub(crate) inner: Arc<StoreInner>,
    pub(crate) appends: Arc<AppendQueue>,
    stop: Arc<StopSignal>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: fs::File,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore").field("root", &self.inner.config.store_path_root_dir).finish()
    }
}

impl MessageStore {
    /// Opens (recovering if needed) the store described by `config` and starts its threads.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        Self::open_with_disk(config, Box::new(StatvfsDiskUsage))
    }

    /// [`Self::open`] with a custom disk-usage source (tests inject a full disk with it).
    pub fn open_with_disk(config: StoreConfig, disk: Box<dyn DiskUsage>) -> Result<Self, StoreError> {
        let root = config.store_path_root_dir.clone();
        fs::create_dir_all(&root).map_err(io_error(&root))?;
        let lock = lock_directory(&root)?;
        let delay_levels = DelayLevels::parse(&config.message_delay_level).map_err(StoreError::Config)?;

        let abort_path = root.join("abort");
        let crashed = abort_path.exists();
        let commit_log = CommitLog::load(&config.commit_log_dir(), config.mapped_file_size_commit_log)
            .map_err(io_error(config.commit_log_dir()))?;
        let queues = QueueTable::load(config.consume_queue_dir(), config.mapped_file_size_consume_queue)
            .map_err(io_error(config.consume_queue_dir()))?;
        let checkpoint =
            Checkpoint::open(&root.join("checkpoint")).map_err(io_error(root.join("checkpoint")))?;
        let epochs = EpochFile::open(&root).map_err(io_error(root.join(EPOCH_FILE_NAME)))?;
        let index = if config.message_index_enable {
            let index_config = IndexConfig {
                max_hash_slot_num: config.max_hash_slot_num,
                max_index_num: config.max_index_num,
            };
            Some(
                IndexService::open(&config.index_dir(), index_config)
                    .map_err(io_error(config.index_dir()))?,
            )
        } else {
            None
        };
        let inner = Arc::new(StoreInner {
            config,
            commit_log,
            queues,
            index,
            checkpoint,
            running: RunningFlags::default(),
            delay_levels,
            group_commit: GroupCommit::default(),
            listener: RwLock::new(None),
            dispatched_store_timestamp: AtomicI64::new(0),
            disk,
            allocator_wake: Mutex::new(None),
            replication: OnceLock::new(),
            replica_only: AtomicBool::new(false),
            epochs: Mutex::new(epochs),
            maintenance: Mutex::new(()),
        });

        let started = Instant::now();
        recovery::recover(&inner, crashed).map_err(io_error(&root))?;
        tracing::info!(
            root = %root.display(),
            crashed,
            commit_log_end = inner.commit_log.max_offset(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );
        // From here until a clean shutdown the directory counts as crashed.
        inner.checkpoint.update(|values| values.clean_shutdown_offset = None);
        inner.checkpoint.flush().map_err(io_error(inner.checkpoint.path()))?;
        // Empty, as Java makes it: only its presence counts, and an empty file needs no data
        // block, so a store on a full disk still opens (and serves reads).
        if let Err(error) = fs::File::create(&abort_path) {
            // The checkpoint, flushed above without its clean-shutdown mark, already tells the
            // next start to scan.
            tracing::warn!(path = %abort_path.display(), %error, "could not create the abort file");
        }

        let last_store_timestamp = inner.commit_log.last_store_timestamp();
        let store = Self {
            inner,
            appends: Arc::new(AppendQueue::new(Rounds::new(last_store_timestamp))),
            stop: Arc::new(StopSignal::default()),
            threads: Mutex::new(Vec::new()),
            _lock: lock,
        };
        store.start_threads().map_err(io_error(&root))?;
        Ok(store)
    }

    fn start_threads(&self) -> io::Result<()> {
        let mut threads = self.threads.lock();
        let inner = Arc::clone(&self.inner);
        let appends = Arc::clone(&self.appends);
        threads.push(service::spawn("store-appender", move || appends.run_appender_thread(inner))?);

        match self.inner.config.flush_disk_type {
            FlushDiskType::SyncFlush => {
                let inner = Arc::clone(&self.inner);
                threads.push(service::spawn("store-group-commit", move || flush::run_group_commit(inner))?);
                let inner = Arc::clone(&self.inner);
                threads
                    .push(service::spawn("store-flush-watch", move || flush::run_deadline_watcher(inner))?);
            }
            FlushDiskType::AsyncFlush => {
                let inner = Arc::clone(&self.inner);
                let stop = Arc::clone(&self.stop);
                threads.push(service::spawn("store-flush", move || {
                    let mut flusher = flush::AsyncFlusher::new(&inner);
                    service::periodic(stop, flusher.period(), || flusher.tick(&inner));
                })?);
            }
        }

        let inner = Arc::clone(&self.inner);
        let stop = Arc::clone(&self.stop);
        let period = Duration::from_millis(self.inner.config.flush_interval_consume_queue_ms.max(1));
        threads.push(service::spawn("store-flush-logics", move || {
            service::periodic(stop, period, || flush_logics(&inner));
        })?);

        let (wake, woken) = mpsc::sync_channel::<()>(1);
        *self.inner.allocator_wake.lock() = Some(wake);
        let inner = Arc::clone(&self.inner);
        threads.push(service::spawn("store-allocate", move || {
            while woken.recv().is_ok() {
                // A new file is the largest single use of space: look first, so a fast writer
                // is refused before the disk fills, not after.
                disk_guard::check(&inner);
                if inner.running.is_set(running::DISK_FULL) {
                    continue;
                }
                if let Err(error) = inner.commit_log.prepare_next_file() {
                    if file_space::is_out_of_space(&error) {
                        disk_guard::out_of_space(&inner, "next commit-log file", &error);
                    } else {
                        tracing::warn!(%error, "could not prepare the next commit-log file");
                    }
                }
            }
        })?);

        let inner = Arc::clone(&self.inner);
        let stop = Arc::clone(&self.stop);
        threads.push(service::spawn("store-disk-guard", move || {
            service::periodic(stop, Duration::from_millis(disk_guard::CHECK_INTERVAL_MS), || {
                disk_guard::check(&inner);
            });
        })?);
        self.inner.wake_allocator();

        let inner = Arc::clone(&self.inner);
        let stop = Arc::clone(&self.stop);
        let period = Duration::from_millis(self.inner.config.clean_resource_interval_ms.max(1));
        threads.push(service::spawn("store-retention", move || {
            let mut state = retention::RetentionState::default();
            retention::run_once(&inner, &mut state);
            service::periodic(stop, period, || retention::run_once(&inner, &mut state));
        })?);
        Ok(())
    }

    /// Queues an append; `callback` gets the result on a store thread. Never blocks: when the
    /// appender is too far behind, the append is refused as busy at once.
    pub fn put(&self, request: PutRequest, callback: PutCallback) {
        self.enqueue(Pending { request, callback }, true);
    }

    /// Queues an append for [`Self::append_queued`], which the caller must run once it has
    /// queued the appends it has at hand (a connection reader, after one socket read). The
    /// callback may run on the caller's thread, inside `append_queued`.
    pub fn put_queued(&self, request: PutRequest, callback: PutCallback) {
        self.enqueue(Pending { request, callback }, false);
    }

    fn enqueue(&self, pending: Pending, wake_appender: bool) {
        if !self.inner.running.is_writeable() || self.inner.replica_only.load(Ordering::Acquire) {
            pending.callback.done(PutResult::failed(PutStatus::ServiceNotAvailable));
            return;
        }
        self.appends.push(pending, wake_appender);
    }

    /// Appends what [`Self::put_queued`] queued, on the calling thread, unless a store thread is
    /// already appending (it takes them). Bounded: a few rounds, then the store's appender
    /// thread takes the rest. It writes to the commit log's page cache, which is quick but,
    /// under memory pressure, may block like any write.
    pub fn append_queued(&self) {
        self.appends.run_here(&self.inner);
    }

    /// Appends and waits for the result (tests, tools, benchmarks; not for async code).
    pub fn put_blocking(&self, request: PutRequest) -> PutResult {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.put(
            request,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        receiver.recv().unwrap_or(PutResult::failed(PutStatus::ServiceNotAvailable))
    }

    /// Registers who is told about new messages (the broker's long polling).
    pub fn set_arrival_listener(&self, listener: Arc<dyn ArrivalListener>) {
        *self.inner.listener.write() = Some(listener);
    }

    /// The settings the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// True when appends are accepted.
    pub fn is_writeable(&self) -> bool {
        self.inner.running.is_writeable()
    }

    /// The health bits (see [`crate::running`]).
    pub fn running_flags(&self) -> u32 {
        self.inner.running.bits()
    }

    /// Offset of the oldest stored commit-log byte.
    pub fn commit_log_min_offset(&self) -> u64 {
        self.inner.commit_log.min_offset()
    }

    /// Offset one past the newest commit-log byte.
    pub fn commit_log_max_offset(&self) -> u64 {
        self.inner.commit_log.max_offset()
    }

    /// Offset below which the commit log is on disk.
    pub fn commit_log_flushed_offset(&self) -> u64 {
        self.inner.commit_log.flushed_offset()
    }

    /// Counters for reports and benchmarks.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            group_commit_flushes: self.inner.group_commit.flushes.load(Ordering::Relaxed),
            group_commit_appends: self.inner.group_commit.flushed_appends.load(Ordering::Relaxed),
        }
    }

    /// Runs one retention pass now (admin "delete expired files", tests).
    pub fn run_retention(&self) {
        retention::run_once(&self.inner, &mut retention::RetentionState::forced());
    }

    /// The epoch file of controller mode (which master epoch wrote which range of the log).
    /// The HA service appends to it and reads it to find the consistent point with its
    /// master; retention and [`Self::truncate_to`] drop the entries whose bytes they remove.
    /// Do not hold the lock while calling `truncate_to`: it needs the file too.
    pub fn epochs(&self) -> &Mutex<EpochFile> {
        &self.inner.epochs
    }

    /// Deletes a topic's consume queues (its commit-log records age out with retention).
    pub fn delete_topic(&self, topic: &str) -> io::Result<()> {
        self.inner.queues.remove_topic(topic)
    }

    /// Stops accepting appends, finishes the queued ones, flushes everything, writes the
    /// checkpoint with the clean-shutdown mark and removes the abort file.
    pub fn shutdown(&self) {
        if self.is_replica_only() {
            // The clean-shutdown offset must end on a whole record: the next start trusts it.
            self.drop_partial_replica_tail();
        }
        self.inner.running.set(running::SHUTTING_DOWN);
        self.appends.close();
        let mut threads = std::mem::take(&mut *self.threads.lock());
        // The appender ends first (its channel is closed), then the flushers drain.
        if !threads.is_empty() {
            let appender = threads.remove(0);
            let _ = appender.join();
        }
        self.inner.group_commit.stop();
        self.stop.stop();
        drop(self.inner.allocator_wake.lock().take());
        for thread in threads {
            let _ = thread.join();
        }
        if self.inner.config.flush_disk_type == FlushDiskType::SyncFlush {
            let stats = self.stats();
            // The group commit's effect, for benchmarks: appends per fdatasync.
            tracing::info!(
                flushes = stats.group_commit_flushes,
                appends = stats.group_commit_appends,
                "group commit totals"
            );
        }
        let clean = self.final_flush();
        let root = &self.inner.config.store_path_root_dir;
        if clean {
            if let Err(error) = fs::remove_file(root.join("abort")) {
                tracing::warn!(%error, "could not remove the abort file");
            }
            tracing::info!(root = %root.display(), "store shut down cleanly");
        } else {
            tracing::error!(root = %root.display(), "store shut down with errors; next start recovers");
        }
    }

    fn final_flush(&self) -> bool {
        let inner = &self.inner;
        let mut clean = true;
        let end = inner.commit_log.max_offset();
        if let Err(error) = inner.commit_log.flush(0) {
            tracing::error!(%error, "final commit log flush failed");
            clean = false;
        }
        flush_logics(inner);
        if clean && inner.running.is_set(running::NOT_WRITEABLE | running::WRITE_LOGICS_QUEUE_ERROR) {
            clean = false;
        }
        let timestamp = inner.commit_log.last_store_timestamp();
        inner.checkpoint.update(|values| {
            values.physic_msg_timestamp = timestamp;
            values.clean_shutdown_offset = clean.then_some(end);
        });
        if let Err(error) = inner.checkpoint.flush() {
            tracing::error!(%error, "final checkpoint write failed");
            clean = false;
        }
        if let Some(index) = &inner.index {
            if let Err(error) = index.shutdown() {
                tracing::error!(%error, "index shutdown failed");
            }
        }
        clean
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if !self.appends.is_closed() {
            self.shutdown();
        }
    }
}

/// Flushes consume queues and the index, then records in the checkpoint how far they reach.
///
/// The index file being written is synced too, though nothing depends on it: recovery after a
/// crash rebuilds every index file newer than the checkpoint's `indexMsgTimestamp`, which only
/// a full file's sync advances, and Java's periodic flusher leaves index files alone. Unsynced,
/// its randomly dirtied hash-slot pages pile up until the kernel writes them back 30 s later
/// (`dirty_expire_centisecs`), hundreds of megabytes at once. Synced each period, the bursts
/// stay small. (Measured both ways in docs/benchmarks-history.md, "Workload 6 in the script's
/// sequence": in isolation not syncing helped, in the sequence it looked worse; too noisy to
/// be sure, so the bounded behaviour is kept.)
pub(crate) fn flush_logics(inner: &StoreInner) {
    let _maintenance = inner.maintenance.lock();
    flush_logics_locked(inner);
}

/// [`flush_logics`] for a caller already holding [`StoreInner::maintenance`].
pub(crate) fn flush_logics_locked(inner: &StoreInner) {
    let timestamp = inner.dispatched_store_timestamp.load(Ordering::Acquire);
    for queue in inner.queues.all() {
        if let Err(error) = queue.flush() {
            tracing::error!(topic = queue.topic(), queue_id = queue.queue_id(), %error, "consume queue flush failed");
            return;
        }
    }
    if let Some(index) = &inner.index {
        if let Err(error) = index.flush() {
            tracing::error!(%error, "index flush failed");
            return;
        }
    }
    let index_timestamp = inner.index.as_ref().map(IndexService::last_flushed_full_file_end_timestamp);
    inner.checkpoint.update(|values| {
        if timestamp > 0 {
            values.logics_msg_timestamp = timestamp;
        }
        if let Some(index_timestamp) = index_timestamp {
            values.index_msg_timestamp = index_timestamp;
        }
    });
    if let Err(error) = inner.checkpoint.flush() {
        tracing::error!(%error, "checkpoint write failed");
    }
}

/// Takes the `lock` file so two processes never share a store directory.
fn lock_directory(root: &std::path::Path) -> Result<fs::File, StoreError> {
    use std::os::unix::io::AsRawFd;
    let path = root.join("lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(&path))?;
    // SAFETY: plain syscall on a descriptor we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        return Err(StoreError::Locked(root.to_path_buf()));
    }
    Ok(file)
}
