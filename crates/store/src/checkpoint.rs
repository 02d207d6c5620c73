//! The `checkpoint` file (storage spec §4.3): how far flushed data reaches, by store time.
//!
//! Java's 40 bytes come first, unchanged, so either implementation can read the other's
//! file. Apogee adds a clean-shutdown record after them (Java ignores bytes past 40): the
//! exact commit-log end offset, valid only while its magic is present, which lets a clean
//! restart resume without scanning.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::file_space;

/// Size of the file, as Java creates it.
pub const CHECKPOINT_SIZE_BYTES: u64 = 4096;
/// Marks the clean-shutdown record as valid ("APOGEE01").
const CLEAN_MAGIC: u64 = u64::from_be_bytes(*b"APOGEE01");

/// The values kept in the checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointValues {
    /// Store time of the last message covered by a commit-log flush.
    pub physic_msg_timestamp: i64,
    /// Store time of the last message whose consume-queue entry is flushed.
    pub logics_msg_timestamp: i64,
    /// End time of the last full, flushed index file.
    pub index_msg_timestamp: i64,
    /// Master's flushed offset (HA; kept for Java compatibility).
    pub master_flushed_offset: i64,
    /// Confirmed offset (controller mode; kept for Java compatibility).
    pub confirm_phy_offset: i64,
    /// Commit-log end at the last clean shutdown, when known.
    pub clean_shutdown_offset: Option<u64>,
}

impl CheckpointValues {
    /// Java's `getMinTimestamp`: the earliest of the commit-log and consume-queue times, less
    /// 3 s of margin, never negative.
    pub fn min_timestamp(&self) -> i64 {
        (self.physic_msg_timestamp.min(self.logics_msg_timestamp) - 3000).max(0)
    }

    /// Java's `getMinTimestampIndex`: also no later than the index's time.
    pub fn min_timestamp_index(&self) -> i64 {
        self.min_timestamp().min(self.index_msg_timestamp)
    }
}

/// The checkpoint file and its in-memory values.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    file: File,
    values: Mutex<CheckpointValues>,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if file.metadata()?.len() < CHECKPOINT_SIZE_BYTES {
            // Allocated, not sparse: its later in-place writes then need no new block, so a
            // store on a full disk can still record its flush positions.
            file_space::allocate(&file, 0, CHECKPOINT_SIZE_BYTES)?;
        }
        let mut bytes = [0u8; 64];
        file.read_exact_at(&mut bytes, 0)?;
        let field =
            |index: usize| i64::from_be_bytes(bytes[index * 8..index * 8 + 8].try_into().unwrap_or([0; 8]));
        let clean_magic = field(6) as u64;
        let values = CheckpointValues {
            physic_msg_timestamp: field(0),
            logics_msg_timestamp: field(1),
            index_msg_timestamp: field(2),
            master_flushed_offset: field(3),
            confirm_phy_offset: field(4),
            clean_shutdown_offset: (clean_magic == CLEAN_MAGIC).then_some(field(5) as u64),
        };
        Ok(Self { path: path.to_path_buf(), file, values: Mutex::new(values) })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current values.
    pub fn values(&self) -> CheckpointValues {
        *self.values.lock()
    }

    /// Changes the in-memory values; [`Self::flush`] persists them.
    pub fn update(&self, change: impl FnOnce(&mut CheckpointValues)) {
        change(&mut self.values.lock());
    }

    /// Writes the values and syncs them to disk.
    pub fn flush(&self) -> io::Result<()> {
        let values = self.values();
        let mut bytes = [0u8; 64];
        let fields = [
            values.physic_msg_timestamp,
            values.logics_msg_timestamp,
            values.index_msg_timestamp,
            values.master_flushed_offset,
            values.confirm_phy_offset,
            values.clean_shutdown_offset.map_or(0, |offset| offset as i64),
            if values.clean_shutdown_offset.is_some() { CLEAN_MAGIC as i64 } else { 0 },
        ];
        for (index, value) in fields.iter().enumerate() {
            bytes[index * 8..index * 8 + 8].copy_from_slice(&value.to_be_bytes());
        }
        self.file.write_all_at(&bytes, 0)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopen_and_java_layout_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        let checkpoint = Checkpoint::open(&path).unwrap();
        checkpoint.update(|values| {
            values.physic_msg_timestamp = 10_000;
            values.logics_msg_timestamp = 8_000;
            values.index_msg_timestamp = 2_000;
            values.clean_shutdown_offset = Some(1234);
        });
        checkpoint.flush().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(&bytes[0..8], &10_000i64.to_be_bytes());
        assert_eq!(&bytes[8..16], &8_000i64.to_be_bytes());
        let values = Checkpoint::open(&path).unwrap().values();
        assert_eq!(values.clean_shutdown_offset, Some(1234));
        assert_eq!(values.min_timestamp(), 5_000);
        assert_eq!(values.min_timestamp_index(), 2_000);
    }
}
