//! The timer log (`<store>/timerlog/`, storage spec §9.2): fixed 52-byte units, one per timer
//! put in the wheel, appended to 20-digit-named files of `mappedFileSizeTimerLog` bytes. Each
//! unit points to the previous unit of its wheel slot (`prevPos`), so a slot's timers form a
//! singly linked list, newest first, that lives on disk and not in memory.
//!
//! Unit layout (big-endian, as Java's `ByteBuffer`): `[size i32 = 52][prevPos i64][magic i32]
//! [currWriteTimeMs i64][delayedTime i32, relative to currWriteTime][offsetPy i64][sizePy i32]
//! [realTopicHash i32][reserved i64]`. A file whose room is less than a unit plus the 16-byte
//! end marker is closed with `[remaining i32][0 i64][magic i32 = BLANK]` and the next unit
//! goes to the next file.
//!
//! Only the timer service thread writes; nothing here is shared.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use apogee_store::file_space;
use memmap2::MmapMut;

/// Bytes of one unit.
pub const UNIT_SIZE_BYTES: usize = 52;
/// Bytes of the end-of-file marker.
pub const BLANK_SIZE_BYTES: usize = 16;
/// Magic of the end-of-file marker (Java `TimerLog.BLANK_MAGIC_CODE`, `0xBBCCDDEE ^ 1880681586
/// + 8` with Java's precedence: the commit log's blank code).
pub const BLANK_MAGIC: i32 = 0xCBD4_3194u32 as i32;

/// Unit magic bits (Java `TimerMessageStore.MAGIC_*`).
pub mod magic {
    /// An ordinary timer.
    pub const DEFAULT: i32 = 1;
    /// Parked at the edge of the roll window: put back into the timer topic when its slot
    /// fires, to be placed again.
    pub const ROLL: i32 = 1 << 1;
    /// A delete marker (recall): the timer of the same topic and unique key in the slot is
    /// dropped.
    pub const DELETE: i32 = 1 << 2;

    /// Whether only the four defined bits are set (Java `isMagicOK`).
    pub fn is_valid(magic: i32) -> bool {
        (magic | 0xF) == 0xF
    }
}

/// One decoded unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Log position of the previous unit of the same slot, −1 for none.
    pub prev_pos: i64,
    /// [`magic`] bits.
    pub magic: i32,
    /// Wall time (floored to the precision) when the unit was written.
    pub write_time_ms: i64,
    /// Due time of the slot, relative to `write_time_ms`.
    pub delay_relative_ms: i32,
    /// Commit-log offset of the timer-topic record.
    pub commit_log_offset: i64,
    /// Size of that record.
    pub size_bytes: i32,
    /// Java `String.hashCode` of the real topic (metrics).
    pub topic_hash: i32,
}

/// Why bytes are not a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Fewer than 52 bytes.
    #[error("a timer-log unit needs {UNIT_SIZE_BYTES} bytes, {0} given")]
    Short(usize),
    /// The end-of-file marker, not a unit.
    #[error("end-of-file marker")]
    Blank,
    /// Zeroes: never written.
    #[error("never written")]
    Empty,
    /// The size field is not 52.
    #[error("unit size field {0} is not {UNIT_SIZE_BYTES}")]
    Size(i32),
    /// Unknown magic bits.
    #[error("unit magic {0:#x} is not valid")]
    Magic(i32),
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(word)
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(word)
}

impl Unit {
    /// The slot time the unit belongs to (the slot's due time, floored to the precision).
    pub fn slot_time_ms(&self) -> i64 {
        self.write_time_ms.saturating_add(i64::from(self.delay_relative_ms))
    }

    /// Whether the unit is a delete marker.
    pub fn is_delete(&self) -> bool {
        self.magic & magic::DELETE != 0
    }

    /// Whether the unit is parked at the roll window's edge.
    pub fn is_roll(&self) -> bool {
        self.magic & magic::ROLL != 0
    }

    /// The 52 bytes of the unit.
    pub fn encode(&self) -> [u8; UNIT_SIZE_BYTES] {
        let mut out = [0u8; UNIT_SIZE_BYTES];
        out[0..4].copy_from_slice(&(UNIT_SIZE_BYTES as i32).to_be_bytes());
        out[4..12].copy_from_slice(&self.prev_pos.to_be_bytes());
        out[12..16].copy_from_slice(&self.magic.to_be_bytes());
        out[16..24].copy_from_slice(&self.write_time_ms.to_be_bytes());
        out[24..28].copy_from_slice(&self.delay_relative_ms.to_be_bytes());
        out[28..36].copy_from_slice(&self.commit_log_offset.to_be_bytes());
        out[36..40].copy_from_slice(&self.size_bytes.to_be_bytes());
        out[40..44].copy_from_slice(&self.topic_hash.to_be_bytes());
        // 44..52: reserved, zero.
        out
    }

    /// Reads a unit, refusing anything that is not one (a torn or corrupt unit is an error
    /// the reader skips, never a panic).
    pub fn decode(bytes: &[u8]) -> Result<Self, UnitError> {
        if bytes.len() < UNIT_SIZE_BYTES {
            return Err(UnitError::Short(bytes.len()));
        }
        let size = be_i32(bytes, 0);
        let magic = be_i32(bytes, 12);
        if magic == BLANK_MAGIC {
            return Err(UnitError::Blank);
        }
        if size == 0 && magic == 0 {
            return Err(UnitError::Empty);
        }
        if size != UNIT_SIZE_BYTES as i32 {
            return Err(UnitError::Size(size));
        }
        if magic == 0 || !magic::is_valid(magic) {
            return Err(UnitError::Magic(magic));
        }
        Ok(Self {
            prev_pos: be_i64(bytes, 4),
            magic,
            write_time_ms: be_i64(bytes, 16),
            delay_relative_ms: be_i32(bytes, 24),
            commit_log_offset: be_i64(bytes, 28),
            size_bytes: be_i32(bytes, 36),
            topic_hash: be_i32(bytes, 40),
        })
    }
}

/// One mapped log file.
#[derive(Debug)]
struct LogFile {
    start: u64,
    path: PathBuf,
    file: File,
    map: MmapMut,
    /// Written since the last flush.
    dirty: bool,
}

/// The timer log's files and its write position.
#[derive(Debug)]
pub struct TimerLog {
    dir: PathBuf,
    file_size_bytes: u64,
    /// Files by start offset, ascending, contiguous.
    files: Vec<LogFile>,
    /// Global position of the next unit.
    write_pos: u64,
}

impl TimerLog {
    /// Opens (or creates) the directory and maps every file. The write position is the end of
    /// the newest file until [`Self::set_write_pos`] (recovery) moves it to the last unit.
    /// A newest file of the wrong size (a kill while it was allocated) is removed with a
    /// warning; an older one is an error.
    pub fn open(dir: &Path, file_size_bytes: u64) -> io::Result<Self> {
        assert!(file_size_bytes >= (UNIT_SIZE_BYTES + BLANK_SIZE_BYTES) as u64, "timer-log files too small");
        fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(start) =
                name.to_str().filter(|name| name.len() == 20).and_then(|name| name.parse().ok())
            else {
                tracing::warn!(file = ?entry.path(), "not a timer-log file; ignored");
                continue;
            };
            names.push((start, entry.path()));
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        let count = names.len();
        for (index, (start, path)) in names.into_iter().enumerate() {
            let length = fs::metadata(&path)?.len();
            if length != file_size_bytes || start % file_size_bytes != 0 {
                if index + 1 == count {
                    tracing::warn!(file = %path.display(), length, "newest timer-log file has the wrong size; removed");
                    fs::remove_file(&path)?;
                    continue;
                }
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "timer-log file {} has {length} bytes, expected {file_size_bytes}",
                        path.display()
                    ),
                ));
            }
            if let Some(last) = files.last() {
                let last: &LogFile = last;
                if last.start + file_size_bytes != start {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("timer-log files are not contiguous at {}", path.display()),
                    ));
                }
            }
            let file = fs::OpenOptions::new().read(true).write(true).open(&path)?;
            files.push(LogFile { start, path, map: map_file(&file)?, file, dirty: false });
        }
        let write_pos = files.last().map_or(0, |last| last.start + file_size_bytes);
        Ok(Self { dir: dir.to_path_buf(), file_size_bytes, files, write_pos })
    }

    /// The directory (tests write bytes behind the mapping).
    #[cfg(test)]
    pub fn dir_for_tests(&self) -> &Path {
        &self.dir
    }

    /// Size of each file.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// Global position of the next unit.
    pub fn write_pos(&self) -> u64 {
        self.write_pos
    }

    /// Start of the oldest file still present.
    pub fn min_pos(&self) -> u64 {
        self.files.first().map_or(self.write_pos, |first| first.start)
    }

    /// Start offsets of the files, oldest first.
    pub fn file_starts(&self) -> Vec<u64> {
        self.files.iter().map(|file| file.start).collect()
    }

    /// Moves the write position (recovery: just past the last valid unit) and removes files
    /// past it; with `zero_rest` (the log ended in a torn or corrupt unit) everything after it
    /// in its file is zeroed, so a stale unit is never read as a live one.
    pub fn set_write_pos(&mut self, pos: u64, zero_rest: bool) -> io::Result<()> {
        while let Some(last) = self.files.last() {
            if last.start > pos || (last.start == pos && pos != 0 && self.files.len() > 1) {
                let last = self.files.pop().expect("checked above");
                tracing::warn!(file = %last.path.display(), "timer-log file past the last unit removed");
                drop(last.map);
                fs::remove_file(&last.path)?;
            } else {
                break;
            }
        }
        if let Some(last) = self.files.last_mut().filter(|_| zero_rest) {
            let from = pos.saturating_sub(last.start).min(self.file_size_bytes);
            if from < self.file_size_bytes {
                file_space::zero_in_place(&last.file, from, self.file_size_bytes - from)?;
            }
        }
        self.write_pos = pos;
        Ok(())
    }

    /// Appends a unit and returns its global position.
    pub fn append(&mut self, unit: &Unit) -> io::Result<u64> {
        let file_size = self.file_size_bytes;
        let mut in_file = self.write_pos % file_size;
        let needs_new_file = self.files.last().is_none_or(|last| self.write_pos >= last.start + file_size);
        if !needs_new_file && file_size - in_file < (UNIT_SIZE_BYTES + BLANK_SIZE_BYTES) as u64 {
            // Close the file with the end marker; the unit goes to the next one.
            let remaining = file_size - in_file;
            let last = self.files.last_mut().expect("a file is open");
            if remaining >= BLANK_SIZE_BYTES as u64 {
                let mut blank = [0u8; BLANK_SIZE_BYTES];
                blank[0..4].copy_from_slice(&(remaining as i32).to_be_bytes());
                blank[12..16].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
                let at = in_file as usize;
                last.map[at..at + BLANK_SIZE_BYTES].copy_from_slice(&blank);
                last.dirty = true;
            }
            self.write_pos += remaining;
            in_file = 0;
        }
        if self.files.last().is_none_or(|last| self.write_pos >= last.start + file_size) {
            let start = self.write_pos - self.write_pos % file_size;
            let path = self.dir.join(format!("{start:020}"));
            let file = file_space::create_allocated(&path, file_size, false)?;
            self.files.push(LogFile { start, path, map: map_file(&file)?, file, dirty: false });
            in_file = self.write_pos - start;
        }
        let pos = self.write_pos;
        let last = self.files.last_mut().expect("a file is open");
        debug_assert_eq!(last.start + in_file, pos);
        let at = in_file as usize;
        last.map[at..at + UNIT_SIZE_BYTES].copy_from_slice(&unit.encode());
        last.dirty = true;
        self.write_pos += UNIT_SIZE_BYTES as u64;
        Ok(pos)
    }

    /// The raw bytes at `pos` (at most a unit's worth, fewer at a file's end), if `pos` is in
    /// a file and below the write position.
    pub fn bytes_at(&self, pos: u64) -> Option<&[u8]> {
        if pos >= self.write_pos {
            return None;
        }
        let start = pos - pos % self.file_size_bytes;
        let first = self.files.first()?.start;
        let index = usize::try_from(start.checked_sub(first)? / self.file_size_bytes).ok()?;
        let file = self.files.get(index)?;
        debug_assert_eq!(file.start, start);
        let at = (pos - start) as usize;
        let end = (at + UNIT_SIZE_BYTES).min(self.file_size_bytes as usize);
        Some(&file.map[at..end])
    }

    /// The unit at `pos`: `None` if the position holds no readable bytes, an error if they are
    /// not a unit.
    pub fn unit_at(&self, pos: i64) -> Option<Result<Unit, UnitError>> {
        let pos = u64::try_from(pos).ok()?;
        self.bytes_at(pos).map(Unit::decode)
    }

    /// Writes every file changed since the last flush to disk.
    pub fn flush(&mut self) -> io::Result<()> {
        for file in self.files.iter_mut().filter(|file| file.dirty) {
            file.file.sync_data()?;
            file.dirty = false;
        }
        Ok(())
    }

    /// Removes the oldest file while `expired(start)` says its units are all past (never the
    /// file being written). Returns how many were removed.
    pub fn remove_expired(&mut self, mut expired: impl FnMut(&Self, u64) -> bool) -> io::Result<usize> {
        let mut removed = 0;
        while self.files.len() > 1 {
            let start = self.files[0].start;
            if !expired(self, start) {
                break;
            }
            let file = self.files.remove(0);
            tracing::info!(file = %file.path.display(), "timer-log file past every timer removed");
            drop(file.map);
            fs::remove_file(&file.path)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Maps a whole file read-write.
fn map_file(file: &File) -> io::Result<MmapMut> {
    // SAFETY: the file is allocated to its full length before it is mapped, only this log
    // writes it, and it is never truncated while mapped (`set_write_pos` zeroes in place).
    unsafe { MmapMut::map_mut(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(prev_pos: i64, slot: i64) -> Unit {
        Unit {
            prev_pos,
            magic: magic::DEFAULT,
            write_time_ms: 1_000,
            delay_relative_ms: (slot - 1_000) as i32,
            commit_log_offset: 4_096,
            size_bytes: 300,
            topic_hash: 7,
        }
    }

    #[test]
    fn blank_magic_is_javas() {
        // Java: BLANK_MAGIC_CODE = 0xBBCCDDEE ^ 1880681586 + 8, where + binds first.
        assert_eq!(BLANK_MAGIC, 0xBBCC_DDEEu32 as i32 ^ (1_880_681_586 + 8));
    }

    #[test]
    fn unit_layout_matches_the_spec_offsets() {
        let written = Unit { topic_hash: -5, ..unit(104, 9_000) };
        let bytes = written.encode();
        assert_eq!(&bytes[0..4], &52i32.to_be_bytes());
        assert_eq!(&bytes[4..12], &104i64.to_be_bytes());
        assert_eq!(&bytes[12..16], &1i32.to_be_bytes());
        assert_eq!(&bytes[16..24], &1_000i64.to_be_bytes());
        assert_eq!(&bytes[24..28], &8_000i32.to_be_bytes());
        assert_eq!(&bytes[28..36], &4_096i64.to_be_bytes());
        assert_eq!(&bytes[36..40], &300i32.to_be_bytes());
        assert_eq!(&bytes[40..44], &(-5i32).to_be_bytes());
        assert_eq!(&bytes[44..52], &[0u8; 8]);
        assert_eq!(Unit::decode(&bytes), Ok(written));
        assert_eq!(written.slot_time_ms(), 9_000);
    }

    #[test]
    fn corrupt_units_are_errors() {
        let good = unit(-1, 2_000).encode();
        assert_eq!(Unit::decode(&good[..51]), Err(UnitError::Short(51)));
        assert_eq!(Unit::decode(&[0u8; 52]), Err(UnitError::Empty));
        let mut bad = good;
        bad[3] = 53;
        assert_eq!(Unit::decode(&bad), Err(UnitError::Size(53)));
        let mut bad = good;
        bad[12..16].copy_from_slice(&0x10i32.to_be_bytes());
        assert_eq!(Unit::decode(&bad), Err(UnitError::Magic(0x10)));
        let mut bad = good;
        bad[12..16].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
        assert_eq!(Unit::decode(&bad), Err(UnitError::Blank));
    }

    #[test]
    fn files_roll_over_with_an_end_marker_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // Room for 3 units (156 bytes) and 14 spare: less than a unit and the marker.
        let size = 3 * UNIT_SIZE_BYTES as u64 + 14 + 16;
        let mut log = TimerLog::open(dir.path(), size).unwrap();
        let mut positions = Vec::new();
        for index in 0..5 {
            positions.push(log.append(&unit(index, 3_000)).unwrap());
        }
        // Three units fit; the 30 bytes left are less than a unit and the marker, so the
        // marker closes the file and the fourth unit starts the next one.
        assert_eq!(positions, vec![0, 52, 104, size, size + 52]);
        let marker = log.bytes_at(156).unwrap();
        assert_eq!(Unit::decode(&[marker, &[0u8; 52]].concat()), Err(UnitError::Blank));
        log.flush().unwrap();
        let end = log.write_pos();
        drop(log);
        let mut log = TimerLog::open(dir.path(), size).unwrap();
        assert_eq!(log.file_starts(), vec![0, size]);
        log.set_write_pos(end, false).unwrap();
        for (index, pos) in positions.iter().enumerate() {
            let read = log.unit_at(*pos as i64).unwrap().unwrap();
            assert_eq!(read.prev_pos, index as i64);
        }
        assert!(log.unit_at(end as i64).is_none());
        assert!(log.unit_at(-1).is_none());
    }
}
