//! The 40-byte index file header and the geometry of an index file (storage spec §3.1).
//!
//! All integers are big-endian. Offsets inside the file:
//! `[header 40][slot table: slots × i32][entries: max_index × 20]`, entry `n` at
//! `40 + slots*4 + n*20`, with entry 0 never written.

use std::io;

use super::IndexConfig;

/// Size of the header at the start of every index file, in bytes.
pub const INDEX_HEADER_SIZE: usize = 40;

/// Size of one hash slot (an i32 entry number, 0 = empty), in bytes.
pub const INDEX_SLOT_SIZE: usize = 4;

/// Size of one entry `[keyHash i32][phyOffset i64][timeDiffSeconds i32][prevIndex i32]`, in bytes.
pub const INDEX_ENTRY_SIZE: usize = 20;

/// Largest index file accepted, in bytes: Java computes the file size as an `int`, so a larger
/// geometry could never be shared with a Java broker.
pub const MAX_INDEX_FILE_SIZE: u64 = i32::MAX as u64;

const BEGIN_TIMESTAMP_AT: usize = 0;
const END_TIMESTAMP_AT: usize = 8;
const BEGIN_PHY_OFFSET_AT: usize = 16;
const END_PHY_OFFSET_AT: usize = 24;
const HASH_SLOT_COUNT_AT: usize = 32;
const INDEX_COUNT_AT: usize = 36;

/// Entry offset within an entry: the key hash.
pub(crate) const ENTRY_KEY_HASH_AT: usize = 0;
/// Entry offset within an entry: the commit-log offset.
pub(crate) const ENTRY_PHY_OFFSET_AT: usize = 4;
/// Entry offset within an entry: seconds since the file's begin timestamp.
pub(crate) const ENTRY_TIME_DIFF_AT: usize = 12;
/// Entry offset within an entry: the previous entry number in the same slot's chain.
pub(crate) const ENTRY_PREV_INDEX_AT: usize = 16;

/// The header of one index file: the time and commit-log range it covers and how full it is.
///
/// Kept in memory by the writer and copied into the file as it changes, so readers and the
/// service (rolling, deletion, recovery) never parse the mapped bytes on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Store timestamp (ms) of the first entry, or the previous file's end for a new file.
    pub begin_timestamp: i64,
    /// Store timestamp (ms) of the newest entry.
    pub end_timestamp: i64,
    /// Commit-log offset of the first entry, or the previous file's end for a new file.
    pub begin_phy_offset: i64,
    /// Commit-log offset of the newest entry.
    pub end_phy_offset: i64,
    /// Number of slots in use (informational; never trusted for reading).
    pub hash_slot_count: i32,
    /// Number of the next entry to write; entries `1..index_count` are written.
    pub index_count: i32,
}

impl Default for IndexHeader {
    fn default() -> Self {
        Self {
            begin_timestamp: 0,
            end_timestamp: 0,
            begin_phy_offset: 0,
            end_phy_offset: 0,
            hash_slot_count: 0,
            index_count: 1,
        }
    }
}

impl IndexHeader {
    /// Reads a header as stored; `index_count ≤ 0` (a file whose header was never flushed) reads
    /// as 1, an empty file, like the Java loader.
    pub fn decode(bytes: &[u8; INDEX_HEADER_SIZE]) -> Self {
        let mut header = Self {
            begin_timestamp: get_i64(bytes, BEGIN_TIMESTAMP_AT),
            end_timestamp: get_i64(bytes, END_TIMESTAMP_AT),
            begin_phy_offset: get_i64(bytes, BEGIN_PHY_OFFSET_AT),
            end_phy_offset: get_i64(bytes, END_PHY_OFFSET_AT),
            hash_slot_count: get_i32(bytes, HASH_SLOT_COUNT_AT),
            index_count: get_i32(bytes, INDEX_COUNT_AT),
        };
        if header.index_count <= 0 {
            header.index_count = 1;
        }
        header
    }

    /// The 40 stored bytes of this header.
    pub fn encode(&self) -> [u8; INDEX_HEADER_SIZE] {
        let mut bytes = [0u8; INDEX_HEADER_SIZE];
        bytes[BEGIN_TIMESTAMP_AT..BEGIN_TIMESTAMP_AT + 8]
            .copy_from_slice(&self.begin_timestamp.to_be_bytes());
        bytes[END_TIMESTAMP_AT..END_TIMESTAMP_AT + 8].copy_from_slice(&self.end_timestamp.to_be_bytes());
        bytes[BEGIN_PHY_OFFSET_AT..BEGIN_PHY_OFFSET_AT + 8]
            .copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        bytes[END_PHY_OFFSET_AT..END_PHY_OFFSET_AT + 8].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        bytes[HASH_SLOT_COUNT_AT..HASH_SLOT_COUNT_AT + 4]
            .copy_from_slice(&self.hash_slot_count.to_be_bytes());
        bytes[INDEX_COUNT_AT..INDEX_COUNT_AT + 4].copy_from_slice(&self.index_count.to_be_bytes());
        bytes
    }

    /// Whether this file's time range overlaps `[begin, end]`, with the Java broker's exact test
    /// (`IndexFile.isTimeMatched`), so both pick the same files for a query.
    pub fn is_time_matched(&self, begin: i64, end: i64) -> bool {
        let (file_begin, file_end) = (self.begin_timestamp, self.end_timestamp);
        (begin < file_begin && end > file_end)
            || (begin >= file_begin && begin <= file_end)
            || (end >= file_begin && end <= file_end)
    }
}

fn get_i64(bytes: &[u8; INDEX_HEADER_SIZE], at: usize) -> i64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(field)
}

fn get_i32(bytes: &[u8; INDEX_HEADER_SIZE], at: usize) -> i32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(field)
}

/// Geometry of an index file derived from a validated [`IndexConfig`]: where each slot and entry
/// lives and how large the file is. Every position it returns lies inside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    slots: u32,
    max_index: u32,
}

impl Layout {
    /// Checks the configuration: at least one slot, room for at least one entry besides the unused
    /// entry 0, counts that fit Java's `int`, and a file no larger than [`MAX_INDEX_FILE_SIZE`].
    pub(crate) fn new(config: IndexConfig) -> io::Result<Self> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let java_int_max = i32::MAX as u32;
        if config.max_hash_slot_num == 0 || config.max_hash_slot_num > java_int_max {
            return Err(invalid(format!(
                "index max_hash_slot_num {} outside 1..={java_int_max}",
                config.max_hash_slot_num
            )));
        }
        if config.max_index_num < 2 || config.max_index_num > java_int_max {
            return Err(invalid(format!(
                "index max_index_num {} outside 2..={java_int_max}",
                config.max_index_num
            )));
        }
        let layout = Self { slots: config.max_hash_slot_num, max_index: config.max_index_num };
        if layout.file_size() > MAX_INDEX_FILE_SIZE {
            return Err(invalid(format!(
                "index file of {} bytes exceeds the {MAX_INDEX_FILE_SIZE}-byte limit",
                layout.file_size()
            )));
        }
        if usize::try_from(layout.file_size()).is_err() {
            return Err(invalid(format!("index file of {} bytes cannot be mapped", layout.file_size())));
        }
        Ok(layout)
    }

    /// Total size of one file in bytes.
    pub(crate) fn file_size(&self) -> u64 {
        INDEX_HEADER_SIZE as u64
            + u64::from(self.slots) * INDEX_SLOT_SIZE as u64
            + u64::from(self.max_index) * INDEX_ENTRY_SIZE as u64
    }

    /// Number of entry positions, entry 0 included.
    pub(crate) fn max_index(&self) -> u32 {
        self.max_index
    }

    /// Byte position of the slot for a (non-negative) stored key hash.
    pub(crate) fn slot_pos(&self, key_hash: i32) -> usize {
        let slot = key_hash.unsigned_abs() % self.slots;
        // Fits: the whole file size was checked to fit usize.
        INDEX_HEADER_SIZE + slot as usize * INDEX_SLOT_SIZE
    }

    /// Byte position of entry `n`, if `n` is an entry position of this file.
    pub(crate) fn entry_pos(&self, n: i32) -> Option<usize> {
        let n = u32::try_from(n).ok().filter(|n| *n < self.max_index)?;
        Some(INDEX_HEADER_SIZE + self.slots as usize * INDEX_SLOT_SIZE + n as usize * INDEX_ENTRY_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_big_endian() {
        let header = IndexHeader {
            begin_timestamp: 0x0102_0304_0506_0708,
            end_timestamp: -2,
            begin_phy_offset: 1 << 40,
            end_phy_offset: 77,
            hash_slot_count: 5,
            index_count: 9,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[36..40], &[0, 0, 0, 9]);
        assert_eq!(IndexHeader::decode(&bytes), header);
    }

    #[test]
    fn non_positive_index_count_reads_as_empty() {
        let mut bytes = [0u8; INDEX_HEADER_SIZE];
        assert_eq!(IndexHeader::decode(&bytes).index_count, 1);
        bytes[36..40].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(IndexHeader::decode(&bytes).index_count, 1);
    }

    #[test]
    fn default_geometry_matches_the_spec() {
        let layout = Layout::new(IndexConfig::default()).expect("default config is valid");
        assert_eq!(layout.file_size(), 420_000_040);
        assert_eq!(layout.entry_pos(1), Some(40 + 5_000_000 * 4 + 20));
        assert_eq!(layout.entry_pos(19_999_999), Some(420_000_040 - 20));
        assert_eq!(layout.entry_pos(20_000_000), None);
        assert_eq!(layout.entry_pos(-1), None);
        assert_eq!(layout.slot_pos(4_999_999), 40 + 4_999_999 * 4);
        assert_eq!(layout.slot_pos(5_000_000), 40);
    }

    #[test]
    fn rejects_unusable_configs() {
        for (slots, max_index) in
            [(0, 10), (1, 1), (1, 0), (u32::MAX, 10), (10, u32::MAX), (100_000_000, 100_000_000)]
        {
            let config = IndexConfig { max_hash_slot_num: slots, max_index_num: max_index };
            assert!(Layout::new(config).is_err(), "{slots}/{max_index}");
        }
        assert!(Layout::new(IndexConfig { max_hash_slot_num: 1, max_index_num: 2 }).is_ok());
    }

    #[test]
    fn time_match_is_javas_overlap() {
        let header = IndexHeader { begin_timestamp: 100, end_timestamp: 200, ..IndexHeader::default() };
        assert!(header.is_time_matched(0, 300));
        assert!(header.is_time_matched(150, 160));
        assert!(header.is_time_matched(200, 300));
        assert!(header.is_time_matched(0, 100));
        assert!(!header.is_time_matched(0, 99));
        assert!(!header.is_time_matched(201, 300));
    }
}
