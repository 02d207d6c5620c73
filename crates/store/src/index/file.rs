//! One index file, mapped into memory: append a key, walk the chain of one slot (spec §3.3, §3.4).
//!
//! The map and the in-memory header sit behind one `RwLock`. The writer holds the write lock for
//! one put (a few stores into the map); a reader holds the read lock for one slot or one entry at
//! a time, so a long chain walk never stalls the appender for more than one step. Written entries
//! never change afterwards, which is what makes stepping between lock acquisitions consistent.
//!
//! Nothing read from the file is trusted: a slot or `prevIndex` outside the written entries ends
//! the walk, a chain must strictly go back in entry numbers, and a walk takes at most
//! `indexCount - 1` steps, so a corrupt file can neither panic nor loop.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};
use parking_lot::RwLock;

use crate::file_space;

use super::header::{
    IndexHeader, Layout, ENTRY_KEY_HASH_AT, ENTRY_PHY_OFFSET_AT, ENTRY_PREV_INDEX_AT, ENTRY_TIME_DIFF_AT,
    INDEX_ENTRY_SIZE, INDEX_HEADER_SIZE,
};

/// Milliseconds per second, for the entries' whole-second time differences.
const MILLIS_PER_SECOND: i64 = 1000;

/// Slot and `prevIndex` value meaning "no entry".
const NO_ENTRY: i32 = 0;

/// One stored entry as read back from the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key_hash: i32,
    phy_offset: i64,
    time_diff_seconds: i32,
    prev_index: i32,
}

/// The mapped bytes and the header the writer keeps for them.
#[derive(Debug)]
struct Mapped {
    map: MmapMut,
    header: IndexHeader,
    /// Set by every put, cleared when a flush has taken the header: the pages need a sync.
    dirty: bool,
}

/// One file of `index/`, mapped read-write for its whole length.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    name: String,
    layout: Layout,
    file: File,
    state: RwLock<Mapped>,
}

impl IndexFile {
    /// Creates `dir/name` at its full size (sparse) and starts it where the previous file ended:
    /// `prev_end_phy_offset`/`prev_end_timestamp` become its begin and end when positive, as in
    /// Java, so the time range of an empty new file still orders it after its predecessor.
    pub(crate) fn create(
        dir: &Path,
        name: &str,
        layout: Layout,
        prev_end_phy_offset: i64,
        prev_end_timestamp: i64,
    ) -> io::Result<Self> {
        let path = dir.join(name);
        // Every block allocated before the mapping is written: a sparse index file on a full
        // disk made the broker die of SIGBUS on the first key put into a new page.
        let file = file_space::create_allocated(&path, layout.file_size(), true)?;
        let created =
            Self::create_mapped(file, path.clone(), name, layout, prev_end_phy_offset, prev_end_timestamp);
        if created.is_err() {
            // Leave no half-made file behind for the next start to trip over.
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a failed index file");
            }
        }
        created
    }

    fn create_mapped(
        file: File,
        path: PathBuf,
        name: &str,
        layout: Layout,
        prev_end_phy_offset: i64,
        prev_end_timestamp: i64,
    ) -> io::Result<Self> {
        let mut map = map_file(&file, layout)?;
        let mut header = IndexHeader::default();
        if prev_end_phy_offset > 0 {
            header.begin_phy_offset = prev_end_phy_offset;
            header.end_phy_offset = prev_end_phy_offset;
        }
        if prev_end_timestamp > 0 {
            header.begin_timestamp = prev_end_timestamp;
            header.end_timestamp = prev_end_timestamp;
        }
        write_header(&mut map, &header)?;
        Ok(Self {
            path,
            name: name.to_owned(),
            layout,
            file,
            state: RwLock::new(Mapped { map, header, dirty: true }),
        })
    }

    /// Opens an existing file, which must have exactly the configured size and a header whose
    /// entry count fits the configured geometry (a mismatch means the files were written with
    /// another `IndexConfig`, and reading them would return garbage).
    pub(crate) fn load(path: &Path, layout: Layout) -> io::Result<Self> {
        let invalid = |what: String| {
            io::Error::new(io::ErrorKind::InvalidData, format!("index file {}: {what}", path.display()))
        };
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| invalid("name is not UTF-8".to_owned()))?
            .to_owned();
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = file.metadata()?.len();
        if size != layout.file_size() {
            return Err(invalid(format!(
                "size {size} bytes, expected {} from max_hash_slot_num/max_index_num",
                layout.file_size()
            )));
        }
        let map = map_file(&file, layout)?;
        let header_bytes: &[u8; INDEX_HEADER_SIZE] = map
            .get(..INDEX_HEADER_SIZE)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| invalid("shorter than its header".to_owned()))?;
        let header = IndexHeader::decode(header_bytes);
        if i64::from(header.index_count) > i64::from(layout.max_index()) {
            return Err(invalid(format!(
                "header indexCount {} exceeds max_index_num {}",
                header.index_count,
                layout.max_index()
            )));
        }
        Ok(Self {
            path: path.to_owned(),
            name,
            layout,
            file,
            state: RwLock::new(Mapped { map, header, dirty: false }),
        })
    }

    /// The file name (`yyyyMMddHHmmssSSS`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Where the file lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the current header.
    pub(crate) fn header(&self) -> IndexHeader {
        self.state.read().header
    }

    /// Whether every entry position is used (`indexCount >= maxIndexNum`).
    pub(crate) fn is_full(&self) -> bool {
        is_full(&self.state.read().header, self.layout)
    }

    /// Appends one key: the new entry heads its slot's chain and the header moves its end to this
    /// message. Returns `Ok(false)` when the file is full and the key belongs in a new file.
    pub(crate) fn put(&self, key_hash: i32, phy_offset: i64, store_timestamp: i64) -> io::Result<bool> {
        let mut guard = self.state.write();
        let state = &mut *guard;
        if is_full(&state.header, self.layout) {
            return Ok(false);
        }
        let index = state.header.index_count;
        let entry_pos = self.layout.entry_pos(index).ok_or_else(|| corrupt(&self.path, "entry position"))?;
        let slot_pos = self.layout.slot_pos(key_hash);

        // The old chain head, unless it does not name a written entry.
        let mut prev = read_i32(&state.map, slot_pos).ok_or_else(|| corrupt(&self.path, "slot position"))?;
        if prev <= NO_ENTRY || prev >= index {
            prev = NO_ENTRY;
        }

        let begin = state.header.begin_timestamp;
        // The first entry sets the file's begin timestamp to its own, so it is 0 seconds after it.
        // (Java measures it from the predecessor's end, which it then overwrites, so a Java file's
        // first entry reads late by up to that gap; both are valid files, read the same way.)
        let time_diff_seconds = if begin <= 0 || index <= 1 {
            0
        } else {
            // Java's arithmetic: wrapping subtraction, division toward zero, clamp to an int.
            let seconds = store_timestamp.wrapping_sub(begin) / MILLIS_PER_SECOND;
            i32::try_from(seconds.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
        };

        let mut entry = [0u8; INDEX_ENTRY_SIZE];
        entry[ENTRY_KEY_HASH_AT..ENTRY_KEY_HASH_AT + 4].copy_from_slice(&key_hash.to_be_bytes());
        entry[ENTRY_PHY_OFFSET_AT..ENTRY_PHY_OFFSET_AT + 8].copy_from_slice(&phy_offset.to_be_bytes());
        entry[ENTRY_TIME_DIFF_AT..ENTRY_TIME_DIFF_AT + 4].copy_from_slice(&time_diff_seconds.to_be_bytes());
        entry[ENTRY_PREV_INDEX_AT..ENTRY_PREV_INDEX_AT + 4].copy_from_slice(&prev.to_be_bytes());
        write_at(&mut state.map, entry_pos, &entry).ok_or_else(|| corrupt(&self.path, "entry position"))?;
        write_at(&mut state.map, slot_pos, &index.to_be_bytes())
            .ok_or_else(|| corrupt(&self.path, "slot position"))?;

        let header = &mut state.header;
        if index <= 1 {
            header.begin_phy_offset = phy_offset;
            header.begin_timestamp = store_timestamp;
        }
        if prev == NO_ENTRY {
            header.hash_slot_count = header.hash_slot_count.wrapping_add(1);
        }
        // Cannot overflow: index < max_index <= i32::MAX.
        header.index_count = index + 1;
        header.end_phy_offset = phy_offset;
        header.end_timestamp = store_timestamp;
        let header = *header;
        write_header(&mut state.map, &header)?;
        state.dirty = true;
        Ok(true)
    }

    /// Moves the header's end offset (the newest indexed message) down to `phy_offset` when
    /// it is above: the commit log was truncated, and messages after `phy_offset` must be
    /// indexed again when they come. Entries stay; the next [`Self::flush`] writes the header.
    pub(crate) fn lower_end_phy_offset(&self, phy_offset: i64) {
        let mut state = self.state.write();
        if state.header.end_phy_offset > phy_offset {
            state.header.end_phy_offset = phy_offset;
            state.dirty = true;
        }
    }

    /// Appends to `out` the commit-log offsets of entries with `key_hash` stored within
    /// `[begin, end]`, newest first, until `out` holds `max` offsets (Java `selectPhyOffset`).
    pub(crate) fn select_phy_offsets(
        &self,
        key_hash: i32,
        max: usize,
        begin: i64,
        end: i64,
        out: &mut Vec<i64>,
    ) {
        let (header, head) = {
            let state = self.state.read();
            let head = read_i32(&state.map, self.layout.slot_pos(key_hash)).unwrap_or(NO_ENTRY);
            (state.header, head)
        };
        let count = header.index_count;
        if count <= 1 || head <= NO_ENTRY || head >= count {
            return;
        }
        let mut current = head;
        // Each step moves to a strictly smaller entry number, so `count - 1` steps reach entry 1.
        for _ in 1..count {
            if out.len() >= max {
                break;
            }
            let Some(entry) = self.read_entry(current) else {
                tracing::warn!(file = %self.path.display(), entry = current, "index entry out of range");
                break;
            };
            if entry.time_diff_seconds < 0 {
                break;
            }
            let stored_at =
                header.begin_timestamp.wrapping_add(i64::from(entry.time_diff_seconds) * MILLIS_PER_SECOND);
            if entry.key_hash == key_hash && stored_at >= begin && stored_at <= end {
                out.push(entry.phy_offset);
            }
            let prev = entry.prev_index;
            if prev <= NO_ENTRY || prev >= current || stored_at < begin {
                break;
            }
            current = prev;
        }
    }

    /// Writes the header into the map and syncs the file's dirty pages to disk; a no-op when
    /// nothing changed since the last flush.
    ///
    /// The sync goes through the file descriptor (`fdatasync`), which writes pages dirtied through
    /// the shared mapping as well, so the writer is not locked out while the disk works.
    pub(crate) fn flush(&self) -> io::Result<()> {
        {
            let mut guard = self.state.write();
            let state = &mut *guard;
            if !state.dirty {
                return Ok(());
            }
            let header = state.header;
            write_header(&mut state.map, &header)?;
            state.dirty = false;
        }
        let synced = self.file.sync_data();
        if synced.is_err() {
            // Try again on the next flush.
            self.state.write().dirty = true;
        }
        synced
    }

    /// Removes the file from disk. Readers still holding it keep a valid mapping until they drop
    /// it (the pages of an unlinked file live on while mapped).
    pub(crate) fn destroy(&self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }

    fn read_entry(&self, index: i32) -> Option<Entry> {
        let pos = self.layout.entry_pos(index)?;
        let state = self.state.read();
        let bytes = state.map.get(pos..pos + INDEX_ENTRY_SIZE)?;
        Some(Entry {
            key_hash: read_i32(bytes, ENTRY_KEY_HASH_AT)?,
            phy_offset: read_i64(bytes, ENTRY_PHY_OFFSET_AT)?,
            time_diff_seconds: read_i32(bytes, ENTRY_TIME_DIFF_AT)?,
            prev_index: read_i32(bytes, ENTRY_PREV_INDEX_AT)?,
        })
    }
}

fn is_full(header: &IndexHeader, layout: Layout) -> bool {
    i64::from(header.index_count) >= i64::from(layout.max_index())
}

fn map_file(file: &File, layout: Layout) -> io::Result<MmapMut> {
    let len = usize::try_from(layout.file_size())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "index file too large to map"))?;
    // SAFETY: memmap2 requires that nobody truncates or rewrites the file behind the mapping. The
    // file lies in the store directory, which one process owns at a time (the store's `lock`
    // file); this process only changes it through this mapping, and its length was set or checked
    // to be exactly `len` before mapping, so every mapped page is backed by the file.
    let map = unsafe { MmapOptions::new().len(len).map_mut(file) }?;
    // Puts and queries touch hash slots at random: read-around on a fault would read (or, in
    // the fresh sparse file, zero-fill) megabytes nobody asked for, in the append round.
    if let Err(error) = map.advise(memmap2::Advice::Random) {
        tracing::debug!(%error, "madvise refused for an index file");
    }
    Ok(map)
}

fn write_header(map: &mut MmapMut, header: &IndexHeader) -> io::Result<()> {
    write_at(map, 0, &header.encode())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "index file shorter than its header"))
}

fn write_at(map: &mut [u8], pos: usize, bytes: &[u8]) -> Option<()> {
    map.get_mut(pos..pos.checked_add(bytes.len())?)?.copy_from_slice(bytes);
    Some(())
}

fn read_i32(bytes: &[u8], pos: usize) -> Option<i32> {
    let field = bytes.get(pos..pos.checked_add(4)?)?;
    Some(i32::from_be_bytes(field.try_into().ok()?))
}

fn read_i64(bytes: &[u8], pos: usize) -> Option<i64> {
    let field = bytes.get(pos..pos.checked_add(8)?)?;
    Some(i64::from_be_bytes(field.try_into().ok()?))
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("index file {}: {what} outside the file", path.display()),
    )
}
