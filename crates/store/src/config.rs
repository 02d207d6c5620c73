//! Store settings, named as in Apache RocketMQ's `MessageStoreConfig` so a `broker.conf`
//! carries over (storage spec §10 defaults).

use std::path::PathBuf;

/// When an append counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushDiskType {
    /// Answered after the copy into the page cache; a flusher writes back periodically.
    #[default]
    AsyncFlush,
    /// Answered after the data reached the disk (group commit).
    SyncFlush,
}

/// Every store setting. Sizes in bytes, times in milliseconds unless the name says otherwise.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`: checkpoint, abort, consume queues, index and config live here.
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog`; `<root>/commitlog` when unset.
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` (also read as 4.x's `mapedFileSizeCommitLog`): 1 GiB.
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue`: 300,000 entries of 20 bytes.
    pub mapped_file_size_consume_queue: u64,
    /// `flushDiskType`.
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`: period of the asynchronous flusher.
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages`: the asynchronous flusher waits for this many dirty pages.
    pub flush_commit_log_least_pages: u64,
    /// `flushCommitLogThoroughInterval`: at least this often everything is flushed.
    pub flush_commit_log_thorough_interval_ms: u64,
    /// `flushIntervalConsumeQueue`: period of the consume-queue and index flusher.
    pub flush_interval_consume_queue_ms: u64,
    /// `syncFlushTimeout`: a SYNC_FLUSH waiter past this gets FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout_ms: u64,
    /// `maxMessageSize`: largest body accepted (4 MiB).
    pub max_message_size: u32,
    /// `fileReservedTime`: commit-log files older than this many hours may be deleted.
    pub file_reserved_time_hours: u64,
    /// `deleteWhen`: hours of the day (local time, `;`-separated) when expired files go.
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio`: above this disk use (percent) expired files go at once.
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceCleanForciblyRatio`: above this, the oldest files go even if not expired.
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskSpaceWarningLevelRatio`: above this, appends are refused.
    pub disk_space_warning_level_ratio: u32,
    /// `cleanFileForciblyEnable`.
    pub clean_file_forcibly_enable: bool,
    /// `cleanResourceInterval`: period of the retention check.
    pub clean_resource_interval_ms: u64,
    /// `deleteFileBatchMax`: most commit-log files deleted per retention run.
    pub delete_file_batch_max: usize,
    /// `messageIndexEnable`: build index files.
    pub message_index_enable: bool,
    /// `maxHashSlotNum` of an index file.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum` of an index file.
    pub max_index_num: u32,
    /// `checkCRCOnRecover`.
    pub check_crc_on_recover: bool,
    /// `maxTransferBytesOnMessageInMemory`: byte budget of one read.
    pub max_transfer_bytes_on_message_in_memory: u64,
    /// `maxTransferCountOnMessageInMemory`: message budget of one read.
    pub max_transfer_count_on_message_in_memory: u32,
    /// `messageDelayLevel`: delay of each level, for the schedule topic's tag codes.
    pub message_delay_level: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            store_path_root_dir: home.join("store"),
            store_path_commit_log: None,
            mapped_file_size_commit_log: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval_ms: 10_000,
            flush_interval_consume_queue_ms: 1_000,
            sync_flush_timeout_ms: 5_000,
            max_message_size: 4 * 1024 * 1024,
            file_reserved_time_hours: 72,
            delete_when: "04".to_owned(),
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            disk_space_warning_level_ratio: 90,
            clean_file_forcibly_enable: true,
            clean_resource_interval_ms: 10_000,
            delete_file_batch_max: 10,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            check_crc_on_recover: true,
            max_transfer_bytes_on_message_in_memory: 256 * 1024,
            max_transfer_count_on_message_in_memory: 32,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".to_owned(),
        }
    }
}

/// Why a setting could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreConfigError {
    /// Not a store setting.
    #[error("unknown store config key {0}")]
    UnknownKey(String),
    /// The value does not parse.
    #[error("invalid value {value:?} for store config key {key}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Text given.
        value: String,
    },
}

impl StoreConfig {
    /// A config rooted at `root`, other settings default.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { store_path_root_dir: root.into(), ..Self::default() }
    }

    /// Directory of the commit log.
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log.clone().unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    /// Directory of the consume queues.
    pub fn consume_queue_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("consumequeue")
    }

    /// Directory of the index files.
    pub fn index_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("index")
    }

    /// Consume-queue files whose room the disk guard keeps free: queues created while the
    /// disk fills (retry, DLQ and schedule topics among them) each need one.
    pub const RESERVED_CONSUME_QUEUE_FILES: u64 = 4;

    /// Room the disk must keep for the store to make its next files: a commit-log file, an
    /// index file and a few consume-queue files. Below it, appends are refused before an
    /// allocation can fail.
    pub fn disk_reserve_bytes(&self) -> u64 {
        let index_file_bytes = if self.message_index_enable {
            use crate::index::header::{INDEX_ENTRY_SIZE, INDEX_HEADER_SIZE, INDEX_SLOT_SIZE};
            INDEX_HEADER_SIZE as u64
                + u64::from(self.max_hash_slot_num) * INDEX_SLOT_SIZE as u64
                + u64::from(self.max_index_num) * INDEX_ENTRY_SIZE as u64
        } else {
            0
        };
        self.mapped_file_size_commit_log.saturating_add(index_file_bytes).saturating_add(
            self.mapped_file_size_consume_queue.saturating_mul(Self::RESERVED_CONSUME_QUEUE_FILES),
        )
    }

    /// Sets one setting by its Apache RocketMQ name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), StoreConfigError> {
        let text = value.trim();
        let invalid = || StoreConfigError::InvalidValue { key: key.to_owned(), value: value.to_owned() };
        let number = || text.parse::<u64>().map_err(|_| invalid());
        let ratio = || text.parse::<u32>().ok().filter(|ratio| *ratio <= 100).ok_or_else(invalid);
        let flag = || match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid()),
        };
        match key {
            "storePathRootDir" => self.store_path_root_dir = PathBuf::from(text),
            "storePathCommitLog" => self.store_path_commit_log = Some(PathBuf::from(text)),
            "mappedFileSizeCommitLog" | "mapedFileSizeCommitLog" => {
                self.mapped_file_size_commit_log = number()?.max(MIN_FILE_SIZE_BYTES)
            }
            "mappedFileSizeConsumeQueue" | "mapedFileSizeConsumeQueue" => {
                // Whole entries only, as Java rounds it.
                let size = number()?.max(20);
                self.mapped_file_size_consume_queue = size.div_ceil(20) * 20;
            }
            "flushDiskType" => {
                self.flush_disk_type = match text {
                    "ASYNC_FLUSH" => FlushDiskType::AsyncFlush,
                    "SYNC_FLUSH" => FlushDiskType::SyncFlush,
                    _ => return Err(invalid()),
                }
            }
            "flushIntervalCommitLog" => self.flush_interval_commit_log_ms = number()?,
            "flushCommitLogLeastPages" => self.flush_commit_log_least_pages = number()?,
            "flushCommitLogThoroughInterval" => self.flush_commit_log_thorough_interval_ms = number()?,
            "flushIntervalConsumeQueue" => self.flush_interval_consume_queue_ms = number()?,
            "syncFlushTimeout" => self.sync_flush_timeout_ms = number()?,
            "maxMessageSize" => self.max_message_size = text.parse().map_err(|_| invalid())?,
            "fileReservedTime" => self.file_reserved_time_hours = number()?,
            "deleteWhen" => self.delete_when = text.to_owned(),
            "diskMaxUsedSpaceRatio" => self.disk_max_used_space_ratio = ratio()?,
            "diskSpaceCleanForciblyRatio" => self.disk_space_clean_forcibly_ratio = ratio()?,
            "diskSpaceWarningLevelRatio" => self.disk_space_warning_level_ratio = ratio()?,
            "cleanFileForciblyEnable" => self.clean_file_forcibly_enable = flag()?,
            "cleanResourceInterval" => self.clean_resource_interval_ms = number()?,
            "deleteFileBatchMax" => self.delete_file_batch_max = number()? as usize,
            "messageIndexEnable" => self.message_index_enable = flag()?,
            "maxHashSlotNum" => self.max_hash_slot_num = text.parse().map_err(|_| invalid())?,
            "maxIndexNum" => self.max_index_num = text.parse().map_err(|_| invalid())?,
            "checkCRCOnRecover" => self.check_crc_on_recover = flag()?,
            "maxTransferBytesOnMessageInMemory" => self.max_transfer_bytes_on_message_in_memory = number()?,
            "maxTransferCountOnMessageInMemory" => {
                self.max_transfer_count_on_message_in_memory = text.parse().map_err(|_| invalid())?
            }
            "messageDelayLevel" => {
                crate::dispatch::DelayLevels::parse(text).map_err(|_| invalid())?;
                self.message_delay_level = text.to_owned();
            }
            _ => return Err(StoreConfigError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }

    /// Hours of the day at which expired files are deleted (`deleteWhen`).
    pub fn delete_hours(&self) -> Vec<u32> {
        self.delete_when.split(';').filter_map(|hour| hour.trim().parse().ok()).filter(|h| *h < 24).collect()
    }
}

/// Smallest commit-log file accepted: room for the largest record is checked at append.
pub const MIN_FILE_SIZE_BYTES: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_conf_names_carry_over() {
        let mut config = StoreConfig::default();
        config.set("mapedFileSizeCommitLog", "1048576").unwrap();
        config.set("flushDiskType", "SYNC_FLUSH").unwrap();
        config.set("deleteWhen", "04;16").unwrap();
        config.set("mappedFileSizeConsumeQueue", "1001").unwrap();
        assert_eq!(config.mapped_file_size_commit_log, 1_048_576);
        assert_eq!(config.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(config.delete_hours(), vec![4, 16]);
        assert_eq!(config.mapped_file_size_consume_queue, 1020);
        assert!(config.set("diskMaxUsedSpaceRatio", "120").is_err());
        assert!(matches!(config.set("nope", "1"), Err(StoreConfigError::UnknownKey(_))));
    }
}
