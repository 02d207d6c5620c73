//! What an append asks for and what it gets back.

/// One append: a single encoded record, or a batch of records (SEND_BATCH) stored as one unit
/// with consecutive queue offsets. Records are in the stored layout; the store fills in the
/// queue offset, commit-log offset and store timestamp.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// The encoded record(s), all of one topic and queue.
    pub records: Vec<u8>,
    /// Under SYNC_FLUSH, answer only once the records are on disk (property `WAIT`, default
    /// true).
    pub wait_store_ok: bool,
}

impl PutRequest {
    /// An append that waits for the flush policy.
    pub fn new(records: Vec<u8>) -> Self {
        Self { records, wait_store_ok: true }
    }
}

/// Outcome of an append (Java `PutMessageStatus`, the values Apogee produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored (and flushed, under SYNC_FLUSH).
    PutOk,
    /// Stored, but the flush did not complete within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// The store refuses writes: disk full, a write error, or shutting down.
    ServiceNotAvailable,
    /// Malformed record, too large, or an illegal topic.
    MessageIllegal,
    /// Properties longer than 32767 bytes.
    PropertiesSizeExceeded,
    /// A commit-log file could not be created.
    CreateMappedFileFailed,
    /// Too many appends waiting: the queue to the appender is full.
    OsPageCacheBusy,
    /// Anything else (an I/O error while writing).
    UnknownError,
    /// Stored, but the slaves did not confirm it within `slaveTimeout` (SYNC_MASTER).
    FlushSlaveTimeout,
    /// Stored, but no slave in sync could take it (SYNC_MASTER).
    SlaveNotAvailable,
    /// Controller mode: the SyncStateSet is smaller than `minInSyncReplicas`, so the append
    /// does not count (Java refuses it before storing; the producer retries either way).
    InSyncReplicasNotEnough,
}

impl PutStatus {
    /// True when the message is in the store (possibly not yet flushed).
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            Self::PutOk | Self::FlushDiskTimeout | Self::FlushSlaveTimeout | Self::SlaveNotAvailable
        )
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendInfo {
    /// Commit-log offset of the first record.
    pub commit_log_offset: u64,
    /// Bytes written (all records).
    pub wrote_bytes: u32,
    /// Queue offset of the first record.
    pub queue_offset: i64,
    /// Number of records.
    pub message_count: u32,
    /// Store timestamp given to the records.
    pub store_timestamp: i64,
}

/// The answer to a [`PutRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    /// Status.
    pub status: PutStatus,
    /// Placement, when stored.
    pub append: Option<AppendInfo>,
}

impl PutResult {
    /// A refusal with nothing stored.
    pub fn failed(status: PutStatus) -> Self {
        Self { status, append: None }
    }
}

/// Told the result of an append, once, on the thread that ran its round (or the flush
/// thread): keep it short (hand the result to a channel or wake a task). A trait rather than
/// a closure so that one allocation can carry both the state an answer needs and the
/// callback (the send path hands the same box on to the connection writer). Closures
/// implement it.
pub trait PutDone: Send {
    /// Takes the result.
    fn done(self: Box<Self>, result: PutResult);
}

impl<F: FnOnce(PutResult) + Send> PutDone for F {
    fn done(self: Box<Self>, result: PutResult) {
        (*self)(result)
    }
}

/// How an append is answered.
pub type PutCallback = Box<dyn PutDone>;

/// Told when new messages become visible in a queue: the broker wakes long-polling pulls.
pub trait ArrivalListener: Send + Sync + 'static {
    /// Messages up to (excluding) `max_offset` are now readable in (`topic`, `queue_id`).
    fn arrived(&self, topic: &str, queue_id: i32, max_offset: i64);
}
