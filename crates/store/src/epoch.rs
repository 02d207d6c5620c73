//! The epoch file of controller mode (storage spec §7.7, Java `EpochFileCache` over
//! `CheckpointFile`): which master epoch wrote which range of the commit log. A broker that
//! becomes master appends `(epoch, its log end)`; a slave compares its entries with its
//! master's to find the last offset both logs agree on, and truncates there.
//!
//! The file is Java's text, so a store moves between implementations:
//! ```text
//! <entry count>
//! <CRC32 of the entry lines, masked to 31 bits; 0 means unchecked>
//! <epoch>-<start offset>
//! ...
//! ```
//! It is written atomically with a `.bak` kept, and read from the `.bak` when the file is
//! missing or fails its count or CRC.
//!
//! Invariants: epochs and start offsets strictly increase from entry to entry; each entry ends
//! where the next starts, the last at [`OPEN_END`]. So no entry has an empty range: a broker
//! elected twice without writing in between (Java keeps both entries, the first owning
//! nothing) keeps only the newer epoch, which starts at the same offset.

use std::io;
use std::path::{Path, PathBuf};

/// Java's name of the file, under `storePathRootDir`.
pub const EPOCH_FILE_NAME: &str = "epochFileCheckpoint";
/// The end offset of the newest entry: it owns everything written from its start on.
pub const OPEN_END: u64 = u64::MAX;
/// Most entries kept; a broker changes master far less often (a file past this is refused).
pub const MAX_ENTRIES: usize = 100_000;

/// One epoch's range of the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The master epoch.
    pub epoch: i32,
    /// First commit-log offset this epoch wrote.
    pub start_offset: u64,
    /// One past its last offset: the next entry's start, or [`OPEN_END`].
    pub end_offset: u64,
}

/// Why an entry was not appended.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The new entry does not move the epoch forward, or starts below the newest entry.
    #[error(
        "epoch {epoch} at offset {start_offset} does not follow epoch {last_epoch} at offset {last_start}"
    )]
    NotAfterLast {
        /// The refused entry's epoch.
        epoch: i32,
        /// The refused entry's start.
        start_offset: u64,
        /// The newest entry's epoch.
        last_epoch: i32,
        /// The newest entry's start.
        last_start: u64,
    },
    /// Already [`MAX_ENTRIES`] entries.
    #[error("the epoch file holds its limit of {MAX_ENTRIES} entries")]
    Full,
    /// The file could not be written.
    #[error("epoch file: {0}")]
    Io(#[from] io::Error),
}

/// The epoch entries of a store and the file behind them.
#[derive(Debug)]
pub struct EpochFile {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl EpochFile {
    /// Reads `<root>/epochFileCheckpoint` (its `.bak` when the file is missing or damaged);
    /// empty when neither exists. Damage in both is an error.
    pub fn open(root: &Path) -> io::Result<Self> {
        let path = root.join(EPOCH_FILE_NAME);
        let pairs = apogee_common::fs::read_state_file(&path, parse)?.unwrap_or_default();
        let mut file = Self { path, entries: Vec::with_capacity(pairs.len()) };
        for (epoch, start_offset) in pairs {
            file.push_in_memory(epoch, start_offset).map_err(|error| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", file.path.display()))
            })?;
        }
        Ok(file)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn last_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Appends `epoch` starting at `start_offset` and persists. The epoch must be above the
    /// newest entry's and the start not below it (as Java's `appendEntry` demands). A start
    /// equal to the newest entry's replaces that entry: it owned no byte yet (a broker elected
    /// twice without writing in between), and keeping it would give it an empty range.
    pub fn append(&mut self, epoch: i32, start_offset: u64) -> Result<(), EpochError> {
        let count_before = self.entries.len();
        let last_before = self.entries.last().copied();
        self.push_in_memory(epoch, start_offset)?;
        if let Err(error) = self.persist() {
            // Back to exactly what was there: the pushed entry goes, a replaced one returns.
            self.entries.truncate(count_before);
            if let (Some(before), Some(last)) = (last_before, self.entries.last_mut()) {
                *last = before;
            }
            return Err(error.into());
        }
        Ok(())
    }

    fn push_in_memory(&mut self, epoch: i32, start_offset: u64) -> Result<(), EpochError> {
        if let Some(last) = self.entries.last_mut() {
            if epoch <= last.epoch || start_offset < last.start_offset {
                return Err(EpochError::NotAfterLast {
                    epoch,
                    start_offset,
                    last_epoch: last.epoch,
                    last_start: last.start_offset,
                });
            }
            if start_offset == last.start_offset {
                // The newest entry's range is empty: the new epoch takes its place (the entry
                // before it already ends at this start).
                *last = EpochEntry { epoch, start_offset, end_offset: OPEN_END };
                return Ok(());
            }
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(EpochError::Full);
        }
        if let Some(last) = self.entries.last_mut() {
            last.end_offset = start_offset;
        }
        self.entries.push(EpochEntry { epoch, start_offset, end_offset: OPEN_END });
        Ok(())
    }

    /// Drops the entries of `epoch` and later (a master taking a new epoch drops any it
    /// had not confirmed) and persists.
    pub fn truncate_from_epoch(&mut self, epoch: i32) -> io::Result<()> {
        self.truncate_suffix(|entry| entry.epoch >= epoch)
    }

    /// Drops the entries starting at or after `offset` (the log was truncated there) and
    /// persists.
    pub fn truncate_from_offset(&mut self, offset: u64) -> io::Result<()> {
        self.truncate_suffix(|entry| entry.start_offset >= offset)
    }

    fn truncate_suffix(&mut self, doomed: impl Fn(&EpochEntry) -> bool) -> io::Result<()> {
        let keep = self.entries.iter().position(doomed).unwrap_or(self.entries.len());
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if let Some(last) = self.entries.last_mut() {
            last.end_offset = OPEN_END;
        }
        self.persist()
    }

    /// Drops the entries wholly below `offset` (retention deleted their files) and persists.
    pub fn truncate_below_offset(&mut self, offset: u64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.end_offset > offset);
        if self.entries.len() == before {
            return Ok(());
        }
        self.persist()
    }

    /// The offset up to which this log and a log with `other` entries (the master's, its last
    /// entry ending at the master's log end) agree: the newest epoch both have with the same
    /// start, ended at the nearer of the two ends. `None` when they share no epoch (Java
    /// `findConsistentPoint` returns -1).
    pub fn consistent_point(&self, other: &[EpochEntry]) -> Option<u64> {
        self.entries.iter().rev().find_map(|local| {
            other
                .iter()
                .find(|theirs| theirs.epoch == local.epoch && theirs.start_offset == local.start_offset)
                .map(|theirs| local.end_offset.min(theirs.end_offset))
        })
    }

    /// The same entries with the newest ending at `log_end` instead of [`OPEN_END`]: what a
    /// log that ends there owns, for [`Self::consistent_point`].
    pub fn ended_at(&self, log_end: u64) -> Vec<EpochEntry> {
        let mut entries = self.entries.clone();
        if let Some(last) = entries.last_mut() {
            last.end_offset = log_end.max(last.start_offset);
        }
        entries
    }

    fn persist(&self) -> io::Result<()> {
        debug_assert!(keeps_invariants(&self.entries), "epoch entries out of order: {:?}", self.entries);
        apogee_common::fs::write_atomically(&self.path, render(&self.entries).as_bytes())
    }
}

/// The module's invariants: epochs and starts strictly increase, each entry ends where the
/// next starts, and the newest is open.
fn keeps_invariants(entries: &[EpochEntry]) -> bool {
    let chained = entries.windows(2).all(|pair| {
        pair[0].epoch < pair[1].epoch
            && pair[0].start_offset < pair[1].start_offset
            && pair[0].end_offset == pair[1].start_offset
    });
    chained && entries.last().is_none_or(|last| last.end_offset == OPEN_END)
}

/// The file's text for `entries`, as Java's `CheckpointFile.write` makes it.
pub fn render(entries: &[EpochEntry]) -> String {
    let lines: String =
        entries.iter().map(|entry| format!("{}-{}\n", entry.epoch, entry.start_offset)).collect();
    format!("{}\n{}\n{lines}", entries.len(), masked_crc32(lines.as_bytes()))
}

/// Java `UtilAll.crc32`: CRC-32 with the top bit cleared.
fn masked_crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) & 0x7FFF_FFFF
}

/// Parses the file's text into `(epoch, start)` pairs, checking the count and the CRC.
fn parse(bytes: &[u8]) -> Result<Vec<(i32, u64)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let mut lines = text.lines();
    let count: usize = lines.next().and_then(|line| line.trim().parse().ok()).ok_or("no entry count")?;
    if count > MAX_ENTRIES {
        return Err(format!("{count} entries, more than the limit of {MAX_ENTRIES}"));
    }
    let expected_crc: i64 = lines.next().and_then(|line| line.trim().parse().ok()).ok_or("no CRC line")?;
    let mut body = String::new();
    let mut pairs = Vec::with_capacity(count);
    for line in lines {
        body.push_str(line);
        body.push('\n');
        let (epoch, start) = line.split_once('-').ok_or_else(|| format!("bad entry {line:?}"))?;
        let epoch = epoch.trim().parse().map_err(|_| format!("bad epoch in {line:?}"))?;
        let start = start.trim().parse().map_err(|_| format!("bad offset in {line:?}"))?;
        pairs.push((epoch, start));
    }
    if pairs.len() != count {
        return Err(format!("expected {count} entries, found {}", pairs.len()));
    }
    if expected_crc != 0 && expected_crc != i64::from(masked_crc32(body.as_bytes())) {
        return Err("entries do not match their CRC".to_owned());
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(epoch: i32, start_offset: u64, end_offset: u64) -> EpochEntry {
        EpochEntry { epoch, start_offset, end_offset }
    }

    /// A new epoch file in a directory of its own, with `appended` (epoch, start offset)
    /// entries written; the directory is removed when the returned guard drops.
    fn file_with(appended: &[(i32, u64)]) -> (tempfile::TempDir, EpochFile) {
        let dir = tempfile::tempdir().unwrap();
        let mut file = EpochFile::open(dir.path()).unwrap();
        for &(epoch, start) in appended {
            file.append(epoch, start).unwrap();
        }
        (dir, file)
    }

    #[test]
    fn the_file_is_javas_text_and_survives_a_reopen() {
        let (dir, _) = file_with(&[(1, 0), (2, 1024)]);
        let text = std::fs::read_to_string(dir.path().join(EPOCH_FILE_NAME)).unwrap();
        // CRC-32 of "1-0\n2-1024\n" is 0x13859159 (zlib.crc32 in Python); masked to 31 bits.
        assert_eq!(text, format!("2\n{}\n1-0\n2-1024\n", 0x1385_9159u32 & 0x7FFF_FFFF));
        let reopened = EpochFile::open(dir.path()).unwrap();
        assert_eq!(reopened.entries(), &[entry(1, 0, 1024), entry(2, 1024, OPEN_END)]);
        assert!(matches!(reopened_append(dir.path(), 2, 2048), Err(EpochError::NotAfterLast { .. })));
        assert!(matches!(reopened_append(dir.path(), 3, 1000), Err(EpochError::NotAfterLast { .. })));
    }

    #[test]
    fn an_epoch_at_the_newest_entrys_start_replaces_it() {
        let (dir, mut file) = file_with(&[(1, 0), (2, 500)]);
        // Elected again (epoch 4) before writing anything under epoch 2.
        file.append(4, 500).unwrap();
        assert_eq!(file.entries(), &[entry(1, 0, 500), entry(4, 500, OPEN_END)]);
        // The same start needs a higher epoch; a lower start is refused whatever the epoch.
        assert!(matches!(file.append(4, 500), Err(EpochError::NotAfterLast { .. })));
        assert!(matches!(file.append(3, 500), Err(EpochError::NotAfterLast { .. })));
        assert!(matches!(file.append(9, 499), Err(EpochError::NotAfterLast { .. })));
        assert_eq!(file.entries(), &[entry(1, 0, 500), entry(4, 500, OPEN_END)]);
        let reopened = EpochFile::open(dir.path()).unwrap();
        assert_eq!(reopened.entries(), file.entries());
        let text = std::fs::read_to_string(dir.path().join(EPOCH_FILE_NAME)).unwrap();
        assert!(text.starts_with("2\n") && text.ends_with("1-0\n4-500\n"), "{text:?}");
        // The only entry can be replaced too, and a Java file holding both entries of an empty
        // range reads as the newer one.
        let (single, file) = file_with(&[(1, 0), (2, 0)]);
        assert_eq!(file.entries(), &[entry(2, 0, OPEN_END)]);
        let java = render(&[entry(1, 0, 100), entry(2, 100, 100), entry(3, 100, OPEN_END)]);
        std::fs::write(single.path().join(EPOCH_FILE_NAME), java).unwrap();
        assert_eq!(
            EpochFile::open(single.path()).unwrap().entries(),
            &[entry(1, 0, 100), entry(3, 100, OPEN_END)]
        );
    }

    fn reopened_append(root: &Path, epoch: i32, start: u64) -> Result<(), EpochError> {
        EpochFile::open(root).unwrap().append(epoch, start)
    }

    #[test]
    fn a_damaged_file_falls_back_to_its_backup() {
        let (dir, _) = file_with(&[(1, 0), (2, 500)]);
        // The second write kept the first as the backup; now damage the file itself.
        std::fs::write(dir.path().join(EPOCH_FILE_NAME), "2\n12345\n1-0\n2-999\n").unwrap();
        let reopened = EpochFile::open(dir.path()).unwrap();
        assert_eq!(reopened.entries(), &[entry(1, 0, OPEN_END)]);
        // An unchecked CRC (0) is accepted, as Java accepts it.
        std::fs::write(dir.path().join(EPOCH_FILE_NAME), "1\n0\n7-42\n").unwrap();
        assert_eq!(EpochFile::open(dir.path()).unwrap().entries(), &[entry(7, 42, OPEN_END)]);
    }

    #[test]
    fn truncations_keep_the_last_entry_open() {
        let (dir, mut file) = file_with(&[(1, 0), (2, 100), (4, 300), (5, 600)]);
        file.truncate_from_offset(300).unwrap();
        assert_eq!(file.entries(), &[entry(1, 0, 100), entry(2, 100, OPEN_END)]);
        file.append(6, 400).unwrap();
        file.truncate_from_epoch(6).unwrap();
        assert_eq!(file.last_epoch(), Some(2));
        file.truncate_below_offset(150).unwrap();
        assert_eq!(file.entries(), &[entry(2, 100, OPEN_END)]);
        assert_eq!(EpochFile::open(dir.path()).unwrap().entries(), file.entries());
    }

    #[test]
    fn the_consistent_point_is_the_newest_shared_epoch_at_the_nearer_end() {
        // The old master wrote epoch 2 from 100 up to 900 before it died.
        let (dir, slave) = file_with(&[(1, 0), (2, 100)]);
        // The new master had epoch 2 only up to 700, then took epoch 3 there.
        let master = [entry(1, 0, 100), entry(2, 100, 700), entry(3, 700, 1_200)];
        assert_eq!(slave.consistent_point(&slave.ended_at(900)), Some(900));
        let local = EpochFile { path: dir.path().join("x"), entries: slave.ended_at(900) };
        assert_eq!(local.consistent_point(&master), Some(700));
        // Same epoch number but another start: not the same epoch.
        let other = [entry(2, 150, 700)];
        assert_eq!(local.consistent_point(&other), None);
    }

    proptest! {
        #[test]
        fn any_appends_and_truncations_keep_entries_increasing(
            steps in proptest::collection::vec((0u8..5, 0i32..50, 0u64..10_000), 1..60)
        ) {
            let (dir, mut file) = file_with(&[]);
            for (kind, epoch, offset) in steps {
                let before = file.entries().to_vec();
                let _ = match kind {
                    0 | 1 => file.append(epoch, offset).map_err(|error| error.to_string()),
                    2 => file.truncate_from_offset(offset).map_err(|error| error.to_string()),
                    3 => file.truncate_below_offset(offset).map_err(|error| error.to_string()),
                    _ => {
                        // At the newest entry's start: replaces it when the epoch is higher.
                        let start = before.last().map_or(offset, |last| last.start_offset);
                        let appended = file.append(epoch, start);
                        let replaces = before.last().is_some_and(|last| epoch > last.epoch);
                        prop_assert_eq!(appended.is_ok(), replaces || before.is_empty());
                        if replaces {
                            prop_assert_eq!(file.entries().len(), before.len());
                            prop_assert_eq!(&file.entries()[..before.len() - 1], &before[..before.len() - 1]);
                        }
                        appended.map_err(|error| error.to_string())
                    }
                };
                for pair in file.entries().windows(2) {
                    prop_assert!(pair[0].epoch < pair[1].epoch);
                    prop_assert!(pair[0].start_offset < pair[1].start_offset);
                    prop_assert_eq!(pair[0].end_offset, pair[1].start_offset);
                }
                prop_assert!(file.entries().last().is_none_or(|last| last.end_offset == OPEN_END));
                let reopened = EpochFile::open(dir.path()).unwrap();
                prop_assert_eq!(reopened.entries(), file.entries());
            }
        }
    }
}
