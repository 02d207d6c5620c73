//! `config/timercheck` (storage spec §9.2): where the timer pipeline stood at its last flush,
//! Java's 4 KiB file of big-endian longs: `[lastReadTimeMs][lastTimerLogFlushPos]
//! [lastTimerQueueOffset][masterTimerQueueOffset][dataVersion.stateVersion]
//! [dataVersion.timestamp][dataVersion.counter]`. Written only after the timer log and the
//! wheel are on disk, so what it claims is always there.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use apogee_store::file_space;

/// Size of the file (Java maps one OS page).
pub const FILE_SIZE_BYTES: u64 = 4096;
/// Bytes in use.
const USED_BYTES: usize = 7 * 8;

/// The saved positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every slot before this due time was delivered.
    pub last_read_time_ms: i64,
    /// The timer log is on disk up to here.
    pub last_timer_log_flush_pos: i64,
    /// Every timer-topic entry below this queue offset is in the log or was delivered.
    pub last_timer_queue_offset: i64,
    /// The master's queue offset (a single broker: the same).
    pub master_timer_queue_offset: i64,
    /// Data version: state version.
    pub state_version: i64,
    /// Data version: time of the last change.
    pub timestamp_ms: i64,
    /// Data version: changes so far.
    pub counter: i64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; USED_BYTES] {
        let mut out = [0u8; USED_BYTES];
        let fields = [
            self.last_read_time_ms,
            self.last_timer_log_flush_pos,
            self.last_timer_queue_offset,
            self.master_timer_queue_offset,
            self.state_version,
            self.timestamp_ms,
            self.counter,
        ];
        for (index, field) in fields.iter().enumerate() {
            out[index * 8..index * 8 + 8].copy_from_slice(&field.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8; USED_BYTES]) -> Self {
        let field = |index: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
            i64::from_be_bytes(word)
        };
        Self {
            last_read_time_ms: field(0),
            last_timer_log_flush_pos: field(1),
            last_timer_queue_offset: field(2),
            master_timer_queue_offset: field(3),
            state_version: field(4),
            timestamp_ms: field(5),
            counter: field(6),
        }
    }
}

/// The open checkpoint file.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    file: File,
}

impl CheckpointFile {
    /// Opens the file, creating it (allocated, zeroed) when absent; the checkpoint read is
    /// `None` for a file that never held one (all zeroes).
    pub fn open(path: &Path) -> io::Result<(Self, Option<Checkpoint>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let existed = path.exists();
        let file = file_space::create_allocated(path, FILE_SIZE_BYTES, false)?;
        let mut bytes = [0u8; USED_BYTES];
        let checkpoint = if existed {
            file.read_exact_at(&mut bytes, 0)?;
            Some(Checkpoint::decode(&bytes)).filter(|read| *read != Checkpoint::default())
        } else {
            None
        };
        Ok((Self { path: path.to_path_buf(), file }, checkpoint))
    }

    /// Writes `checkpoint` and waits until it is on disk.
    pub fn write(&self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.file.write_all_at(&checkpoint.encode(), 0)?;
        self.file.sync_data()
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("timercheck");
        let (file, read) = CheckpointFile::open(&path).unwrap();
        assert_eq!(read, None);
        let checkpoint = Checkpoint {
            last_read_time_ms: 1_700_000_000_000,
            last_timer_log_flush_pos: 520,
            last_timer_queue_offset: 10,
            master_timer_queue_offset: 10,
            state_version: 0,
            timestamp_ms: 1_700_000_000_123,
            counter: 3,
        };
        file.write(&checkpoint).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(&bytes[0..8], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&bytes[8..16], &520i64.to_be_bytes());
        assert_eq!(&bytes[16..24], &10i64.to_be_bytes());
        assert_eq!(&bytes[48..56], &3i64.to_be_bytes());
        drop(file);
        let (_, read) = CheckpointFile::open(&path).unwrap();
        assert_eq!(read, Some(checkpoint));
    }
}
