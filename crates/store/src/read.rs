//! Reads: messages of a queue, offsets, time lookups, single messages and key queries
//! (storage spec §2.3–§2.4, §3.4). Results are slices of the mapped commit log: nothing is
//! copied until the caller decides to.

use apogee_common::message::record::RecordView;

use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::mapped_file::MappedSlice;
use crate::store::MessageStore;

/// Share of physical memory the newest commit-log data is assumed to occupy in the page cache
/// (Java `accessMessageInMemoryMaxRatio`).
const ACCESS_MESSAGE_IN_MEMORY_MAX_PERCENT: u64 = 40;

/// The byte window of [`MessageStore::is_likely_in_memory`], from the machine's RAM.
fn in_memory_window_bytes() -> u64 {
    static WINDOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *WINDOW.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let (pages, page_size) =
            unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        let memory = u64::try_from(pages).unwrap_or(0).saturating_mul(u64::try_from(page_size).unwrap_or(0));
        memory / 100 * ACCESS_MESSAGE_IN_MEMORY_MAX_PERCENT
    })
}

/// Least number of bytes of queue entries examined per read (Java `maxFilterMessageSize`).
const MIN_SCAN_BYTES: usize = 16_000;
/// Most index hits a key query returns (Java `maxMsgsNumBatch`).
pub const MAX_QUERY_MESSAGES: usize = 64;

/// Outcome of a read (Java `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    /// Messages returned.
    Found,
    /// Entries examined, none matched the filter.
    NoMatchedMessage,
    /// The entries point at commit-log files already deleted.
    MessageWasRemoving,
    /// No entry at the offset (end of a queue file).
    OffsetFoundNull,
    /// Offset past the end by more than one.
    OffsetOverflowBadly,
    /// Offset exactly at the end: no new message yet.
    OffsetOverflowOne,
    /// Offset below the first stored entry.
    OffsetTooSmall,
    /// The queue does not exist.
    NoMatchedLogicQueue,
    /// The queue is empty.
    NoMessageInQueue,
}

/// Which messages a read keeps.
pub trait MessageFilter {
    /// First stage, on the consume-queue entry's tag code (cheap).
    fn matches_tags_code(&self, tags_code: i64) -> bool;
    /// Second stage, on the whole record (SQL92 on properties); default keeps everything.
    fn matches_record(&self, _record: &[u8]) -> bool {
        true
    }
}

/// Keeps every message.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl MessageFilter for AcceptAll {
    fn matches_tags_code(&self, _tags_code: i64) -> bool {
        true
    }
}

/// The result of [`MessageStore::get_messages`].
#[derive(Debug, Clone)]
pub struct GetMessageResult {
    /// Status.
    pub status: GetMessageStatus,
    /// Where the next read should start.
    pub next_begin_offset: i64,
    /// Queue min offset.
    pub min_offset: i64,
    /// Queue max offset (exclusive).
    pub max_offset: i64,
    /// The records, in queue order.
    pub messages: Vec<MappedSlice>,
    /// Queue offset of each record.
    pub queue_offsets: Vec<i64>,
    /// Total bytes of the records.
    pub total_bytes: u64,
}

impl GetMessageResult {
    fn empty(status: GetMessageStatus, next_begin_offset: i64, min_offset: i64, max_offset: i64) -> Self {
        Self {
            status,
            next_begin_offset,
            min_offset,
            max_offset,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            total_bytes: 0,
        }
    }
}

/// Which side of a time an offset search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundaryType {
    /// First message stored at or after the time.
    #[default]
    Lower,
    /// Last message stored at or before the time.
    Upper,
}

/// The result of a key query.
#[derive(Debug, Clone, Default)]
pub struct QueryMessageResult {
    /// Matching records, newest index file first.
    pub messages: Vec<MappedSlice>,
    /// End time of the newest index file.
    pub index_last_update_timestamp: i64,
    /// End offset of the newest index file.
    pub index_last_update_phy_offset: i64,
}

impl MessageStore {
    /// Reads up to `max_count` messages of (`topic`, `queue_id`) from `offset`, within
    /// `max_bytes` (the first message is returned even if larger), keeping those `filter`
    /// accepts.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: u32,
        max_bytes: u64,
        filter: &dyn MessageFilter,
    ) -> GetMessageResult {
        use GetMessageStatus::*;
        let Some(queue) = self.inner.queues.get(topic, queue_id) else {
            return GetMessageResult::empty(NoMatchedLogicQueue, 0, 0, 0);
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        if max == 0 {
            return GetMessageResult::empty(NoMessageInQueue, 0, min, max);
        }
        if offset < min {
            return GetMessageResult::empty(OffsetTooSmall, min, min, max);
        }
        if offset == max {
            return GetMessageResult::empty(OffsetOverflowOne, offset, min, max);
        }
        if offset > max {
            return GetMessageResult::empty(OffsetOverflowBadly, max, min, max);
        }

        let max_count = max_count.max(1) as usize;
        let scan_entries = (MIN_SCAN_BYTES / 20).max(max_count);
        let entries = queue.entries(offset, scan_entries);
        if entries.is_empty() {
            return GetMessageResult::empty(OffsetFoundNull, queue.roll_next_file(offset), min, max);
        }
        let commit_log_min = self.inner.commit_log.min_offset() as i64;
        let mut result = GetMessageResult::empty(NoMatchedMessage, offset, min, max);
        let mut removing = false;
        for (queue_offset, entry) in entries {
            if result.messages.len() >= max_count {
                break;
            }
            if !result.messages.is_empty() && result.total_bytes + entry.size as u64 > max_bytes {
                break;
            }
            result.next_begin_offset = queue_offset + 1;
            if entry.is_filler() {
                continue;
            }
            if entry.commit_log_offset < commit_log_min {
                removing = true;
                continue;
            }
            if !filter.matches_tags_code(entry.tags_code) {
                continue;
            }
            let Some(record) = self.record_of(&entry) else {
                removing = true;
                continue;
            };
            if !filter.matches_record(record.as_slice()) {
                continue;
            }
            result.total_bytes += entry.size as u64;
            result.queue_offsets.push(queue_offset);
            result.messages.push(record);
        }
        result.status = if !result.messages.is_empty() {
            Found
        } else if removing {
            MessageWasRemoving
        } else {
            NoMatchedMessage
        };
        result
    }

    fn record_of(&self, entry: &CqEntry) -> Option<MappedSlice> {
        let offset = u64::try_from(entry.commit_log_offset).ok()?;
        let size = u64::try_from(entry.size).ok()?;
        self.inner.commit_log.slice(offset, size)
    }

    fn queue(&self, topic: &str, queue_id: i32) -> Option<std::sync::Arc<ConsumeQueue>> {
        self.inner.queues.get(topic, queue_id)
    }

    /// Whether reading `offset` of the queue most likely touches only the page cache: the
    /// record is within the newest `accessMessageInMemoryMaxRatio` (40 %) of physical memory
    /// of the commit log, Java's test. Callers read such data inline and send older data to a
    /// blocking pool, where a page fault that waits for the disk stalls nobody else.
    pub fn is_likely_in_memory(&self, topic: &str, queue_id: i32, offset: i64) -> bool {
        let Some(entry) = self.queue(topic, queue_id).and_then(|queue| queue.entry(offset)) else {
            return true;
        };
        let Ok(position) = u64::try_from(entry.commit_log_offset) else { return true };
        self.inner.commit_log.max_offset().saturating_sub(position) <= in_memory_window_bytes()
    }

    /// First stored queue offset (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |queue| queue.min_offset())
    }

    /// Queue offset after the newest visible message (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |queue| queue.max_offset())
    }

    /// Store time of the message at `queue_offset`, if readable.
    pub fn store_timestamp_at(&self, topic: &str, queue_id: i32, queue_offset: i64) -> Option<i64> {
        let queue = self.queue(topic, queue_id)?;
        if queue_offset >= queue.max_offset() {
            return None;
        }
        let entry = queue.entry(queue_offset).filter(|entry| !entry.is_filler())?;
        let record = self.record_of(&entry)?;
        RecordView::parse(record.as_slice(), false).ok().map(|view| view.store_timestamp())
    }

    /// Store time of the oldest message of the queue; -1 when empty or unknown.
    pub fn earliest_store_timestamp(&self, topic: &str, queue_id: i32) -> i64 {
        let min = self.min_offset(topic, queue_id);
        self.store_timestamp_at(topic, queue_id, min).unwrap_or(-1)
    }

    /// The queue offset of the message stored at `timestamp` (binary search on store times):
    /// `Lower` gives the first at or after it, `Upper` the last at or before it.
    pub fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp: i64, boundary: BoundaryType) -> i64 {
        let Some(queue) = self.queue(topic, queue_id) else { return 0 };
        let (mut low, mut high) = (queue.min_offset(), queue.max_offset());
        if low >= high {
            return low;
        }
        // Readable range: skip offsets whose records were deleted.
        while low < high && self.store_timestamp_at(topic, queue_id, low).is_none() {
            low += 1;
        }
        let time_at = |offset: i64| self.store_timestamp_at(topic, queue_id, offset).unwrap_or(i64::MAX);
        match boundary {
            BoundaryType::Lower => {
                // First offset with time >= timestamp.
                while low < high {
                    let middle = low + (high - low) / 2;
                    if time_at(middle) < timestamp {
                        low = middle + 1;
                    } else {
                        high = middle;
                    }
                }
                low
            }
            BoundaryType::Upper => {
                // Last offset with time <= timestamp.
                let floor = low;
                while low < high {
                    let middle = low + (high - low) / 2;
                    if time_at(middle) <= timestamp {
                        low = middle + 1;
                    } else {
                        high = middle;
                    }
                }
                (low - 1).max(floor)
            }
        }
    }

    /// The record at commit-log `offset` (VIEW_MESSAGE_BY_ID), if visible.
    pub fn message_at(&self, offset: u64) -> Option<MappedSlice> {
        if offset >= self.visible_commit_log_offset() {
            return None;
        }
        self.inner.commit_log.record_at(offset)
    }

    /// Commit-log offset below which records are visible to readers (flushed under SYNC_FLUSH).
    pub fn visible_commit_log_offset(&self) -> u64 {
        match self.inner.config.flush_disk_type {
            crate::config::FlushDiskType::SyncFlush => self.inner.commit_log.flushed_offset(),
            crate::config::FlushDiskType::AsyncFlush => self.inner.commit_log.max_offset(),
        }
    }

    /// Messages of `topic` whose `KEYS` contain `key` or whose `UNIQ_KEY` is `key`, stored
    /// within `[begin_timestamp, end_timestamp]`, at most `max_count` (≤ 64).
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max_count: usize,
        begin_timestamp: i64,
        end_timestamp: i64,
    ) -> QueryMessageResult {
        let Some(index) = &self.inner.index else { return QueryMessageResult::default() };
        let hits = index.query(topic, key, max_count.min(MAX_QUERY_MESSAGES), begin_timestamp, end_timestamp);
        let mut result = QueryMessageResult {
            messages: Vec::new(),
            index_last_update_timestamp: hits.index_last_update_timestamp,
            index_last_update_phy_offset: hits.index_last_update_phy_offset,
        };
        // After a truncation, an offset may be indexed twice: for the dropped message and for
        // the one that took its place.
        let mut seen: Vec<i64> = Vec::with_capacity(hits.phy_offsets.len());
        for offset in hits.phy_offsets {
            if seen.contains(&offset) {
                continue;
            }
            seen.push(offset);
            // `message_at` checks the record there says it lies at this offset, so an entry of
            // a dropped message pointing into another record finds nothing.
            let Some(record) = u64::try_from(offset).ok().and_then(|offset| self.message_at(offset)) else {
                continue;
            };
            // The index matches hashes; keep only exact matches.
            let Ok(view) = RecordView::parse(record.as_slice(), false) else { continue };
            let by_key = view
                .property(apogee_common::message::property::KEYS)
                .is_some_and(|keys| keys.split(' ').any(|candidate| candidate == key));
            let by_uniq = view.property(apogee_common::message::property::UNIQ_KEY) == Some(key);
            if view.topic() == topic && (by_key || by_uniq) {
                result.messages.push(record);
            }
        }
        result
    }
}
