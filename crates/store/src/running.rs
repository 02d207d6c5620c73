//! Store health bits (Java `RunningFlags`, storage spec §5.6): why writes are refused.

use std::sync::atomic::{AtomicU32, Ordering};

/// Writes refused (I/O error in the commit log or a flush).
pub const NOT_WRITEABLE: u32 = 0x2;
/// Consume-queue write failed.
pub const WRITE_LOGICS_QUEUE_ERROR: u32 = 0x4;
/// Index write failed.
pub const WRITE_INDEX_FILE_ERROR: u32 = 0x8;
/// Disk use above `diskSpaceWarningLevelRatio`.
pub const DISK_FULL: u32 = 0x10;
/// Shutting down.
pub const SHUTTING_DOWN: u32 = 0x100;

const WRITE_BLOCKERS: u32 =
    NOT_WRITEABLE | WRITE_LOGICS_QUEUE_ERROR | WRITE_INDEX_FILE_ERROR | DISK_FULL | SHUTTING_DOWN;

/// The flags, shared by every store thread.
#[derive(Debug, Default)]
pub struct RunningFlags {
    bits: AtomicU32,
}

impl RunningFlags {
    /// Raises `flag`.
    pub fn set(&self, flag: u32) {
        self.bits.fetch_or(flag, Ordering::AcqRel);
    }

    /// Clears `flag`.
    pub fn clear(&self, flag: u32) {
        self.bits.fetch_and(!flag, Ordering::AcqRel);
    }

    /// True when `flag` is raised.
    pub fn is_set(&self, flag: u32) -> bool {
        self.bits.load(Ordering::Acquire) & flag != 0
    }

    /// True when appends are accepted.
    pub fn is_writeable(&self) -> bool {
        self.bits.load(Ordering::Acquire) & WRITE_BLOCKERS == 0
    }

    /// The raw bits (for status reports).
    pub fn bits(&self) -> u32 {
        self.bits.load(Ordering::Acquire)
    }
}
