//! One fixed-size file mapped into memory: a commit-log segment or a consume-queue file.
//!
//! Exactly one thread writes a file (the appender, or recovery before the store opens),
//! always past the positions readers may see; readers get slices below the published write
//! position. The write position is published with release ordering after the bytes are
//! copied, so a reader that loads it with acquire ordering sees whole records.
//!
//! A slice holds an `Arc` of its file, so the mapping stays valid while anyone reads it,
//! even after retention unlinked the file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use memmap2::MmapRaw;

use crate::file_space;

/// Page size assumed for flush accounting (Java `OS_PAGE_SIZE`).
pub const OS_PAGE_SIZE_BYTES: u64 = 4096;

/// A mapped segment file.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: File,
    start_offset: u64,
    size_bytes: u64,
    map: MmapRaw,
    /// Bytes appended so far; readers may read below it.
    wrote: AtomicU64,
    /// Bytes known to be on disk.
    flushed: AtomicU64,
    /// End of the whole pages whose writeback [`Self::start_writeback`] has started.
    writeback_started: AtomicU64,
}

/// The start of the page holding byte `offset`.
fn page_floor(offset: u64) -> u64 {
    offset - offset % OS_PAGE_SIZE_BYTES
}

/// The 20-digit zero-padded file name of a segment starting at `offset` (Java `offset2FileName`).
pub fn file_name(offset: u64) -> String {
    format!("{offset:020}")
}

impl MappedFile {
    /// Creates (or reuses, if a crash left it) the file for `start_offset` with all its blocks
    /// allocated, so that writing through the mapping can never hit a full disk (which would
    /// be a SIGBUS, not an error). When the disk has no room the file is removed and the
    /// error (`ENOSPC`) returned: no half-allocated file is ever left behind.
    pub fn create(dir: &Path, start_offset: u64, size_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(file_name(start_offset));
        if let Ok(metadata) = fs::metadata(&path) {
            if metadata.len() > size_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} has {} bytes, expected {size_bytes}", path.display(), metadata.len()),
                ));
            }
        }
        let file = file_space::create_allocated(&path, size_bytes, false)?;
        Self::map(path, file, start_offset, size_bytes, 0)
    }

    /// Opens an existing segment; its size must be `size_bytes`. Positions start at the end of
    /// the file, as Java loads them; recovery moves them back to the last valid record.
    pub fn open(path: &Path, start_offset: u64, size_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let length = file.metadata()?.len();
        if length != size_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has {length} bytes, expected {size_bytes}", path.display()),
            ));
        }
        Self::map(path.to_path_buf(), file, start_offset, size_bytes, size_bytes)
    }

    fn map(path: PathBuf, file: File, start_offset: u64, size_bytes: u64, position: u64) -> io::Result<Self> {
        let map = MmapRaw::map_raw(&file)?;
        if (map.len() as u64) < size_bytes {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "mapping shorter than the file"));
        }
        Ok(Self {
            path,
            file,
            start_offset,
            size_bytes,
            map,
            wrote: AtomicU64::new(position),
            flushed: AtomicU64::new(position),
            writeback_started: AtomicU64::new(page_floor(position)),
        })
    }

    /// Tells the kernel how the mapping will be touched. A page fault on a file mapping reads
    /// around the faulting page; in a fresh file whose blocks are only reserved, that is
    /// zero-filling up to megabytes per fault, in the append round. `Random` confines each
    /// fault to its page. Only a hint: a refusal is logged and changes nothing else.
    pub(crate) fn advise(&self, advice: memmap2::Advice) {
        if let Err(error) = self.map.advise(advice) {
            tracing::debug!(path = %self.path.display(), ?advice, %error, "madvise refused");
        }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Global offset of the first byte.
    pub fn start_offset(&self) -> u64 {
        self.start_offset
    }

    /// Size of the file.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Global offset one past the last byte.
    pub fn end_offset(&self) -> u64 {
        self.start_offset + self.size_bytes
    }

    /// Bytes written (the read limit).
    pub fn wrote(&self) -> u64 {
        self.wrote.load(Ordering::Acquire)
    }

    /// Bytes known to be on disk.
    pub fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Room left for appends.
    pub fn remaining(&self) -> u64 {
        self.size_bytes - self.wrote()
    }

    /// True when no append fits any more.
    pub fn is_full(&self) -> bool {
        self.wrote() == self.size_bytes
    }

    /// Copies `bytes` at position `at` without publishing them.
    ///
    /// # Safety
    /// The caller is the only writer of this file, and no reader may look at
    /// `at..at + bytes.len()` until it is published with [`Self::publish`]: readers only see
    /// bytes below [`Self::wrote`], so `at` must be at or past it.
    pub(crate) unsafe fn write_unpublished(&self, at: u64, bytes: &[u8]) {
        assert!(at >= self.wrote(), "write below the published position");
        assert!(at + bytes.len() as u64 <= self.size_bytes, "write past the end of the file");
        // SAFETY: the range is inside the mapping (checked above) and, by the caller's
        // contract, written by this thread only and not yet visible to readers.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(at as usize),
                bytes.len(),
            );
        }
    }

    /// Writes `slices` one after another at position `at` through the file descriptor
    /// (`pwritev`), without publishing them. Page-cache writes of whole runs cost one system
    /// call per round instead of a page fault per new page of the mapping; the mapping sees the
    /// same pages. Same contract as [`Self::write_unpublished`]: one writer, at or past the
    /// published position.
    pub(crate) fn write_vectored_unpublished(
        &self,
        at: u64,
        mut slices: &mut [std::io::IoSlice<'_>],
    ) -> io::Result<()> {
        let total: u64 = slices.iter().map(|slice| slice.len() as u64).sum();
        assert!(at >= self.wrote(), "write below the published position");
        assert!(at + total <= self.size_bytes, "write past the end of the file");
        /// Linux's IOV_MAX.
        const MAX_SLICES_PER_CALL: usize = 1024;
        let mut position = at;
        while !slices.is_empty() {
            let count = slices.len().min(MAX_SLICES_PER_CALL);
            // SAFETY: `IoSlice` is ABI-compatible with `iovec`, and the slices are live for
            // the duration of the call.
            let written = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    slices.as_ptr().cast::<libc::iovec>(),
                    count as libc::c_int,
                    position as libc::off_t,
                )
            };
            if written < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "pwritev wrote nothing"));
            }
            position += written as u64;
            // A short write resumes inside a slice.
            std::io::IoSlice::advance_slices(&mut slices, written as usize);
        }
        Ok(())
    }

    /// Publishes everything below `position` to readers.
    pub(crate) fn publish(&self, position: u64) {
        assert!(position <= self.size_bytes);
        self.wrote.store(position, Ordering::Release);
    }

    /// Moves the write position back (recovery, truncation) and zeroes everything after it,
    /// so stale bytes can never be mistaken for records later.
    pub(crate) fn truncate_to(&self, position: u64) -> io::Result<()> {
        assert!(position <= self.size_bytes);
        self.wrote.store(position, Ordering::Release);
        self.flushed.fetch_min(position, Ordering::AcqRel);
        self.writeback_started.fetch_min(page_floor(position), Ordering::AcqRel);
        self.zero_range(position, self.size_bytes)
    }

    /// Bytes `[position, position + length)` as a slice held alive by this file, if they are
    /// all published.
    pub fn slice(self: &Arc<Self>, position: u64, length: u64) -> Option<MappedSlice> {
        let end = position.checked_add(length)?;
        (end <= self.wrote()).then(|| MappedSlice {
            file: Arc::clone(self),
            start: position as usize,
            length: length as usize,
        })
    }

    /// The published bytes from `position` to the write position.
    pub fn slice_to_end(self: &Arc<Self>, position: u64) -> Option<MappedSlice> {
        let wrote = self.wrote();
        (position <= wrote).then(|| MappedSlice {
            file: Arc::clone(self),
            start: position as usize,
            length: (wrote - position) as usize,
        })
    }

    fn bytes(&self, start: usize, length: usize) -> &[u8] {
        debug_assert!((start + length) as u64 <= self.size_bytes);
        // SAFETY: slices are only handed out for published bytes inside the mapping, which
        // the single writer never touches again, except `truncate_to`: at recovery (no reader
        // yet), and on a slave whose log is cut back (a bad replicated tail, or
        // `MessageStore::truncate_to` on a role change). A reader still holding a slice of the
        // dropped bytes then sees them turn to zeros; the mapping stays valid (the file keeps
        // its length), only its content changes, as with any shared file mapping.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), length) }
    }

    /// Writes the dirty pages to disk when at least `least_pages` are dirty (0: any), and
    /// returns the new flushed position.
    pub fn flush(&self, least_pages: u64) -> io::Result<u64> {
        let wrote = self.wrote();
        let flushed = self.flushed();
        if wrote <= flushed {
            return Ok(flushed);
        }
        let dirty_pages = wrote / OS_PAGE_SIZE_BYTES - flushed / OS_PAGE_SIZE_BYTES;
        if least_pages > 0 && dirty_pages < least_pages && wrote != self.size_bytes {
            return Ok(flushed);
        }
        // fdatasync: covers pages dirtied through the mapping and through pwrite alike.
        self.file.sync_data()?;
        self.flushed.fetch_max(wrote, Ordering::AcqRel);
        Ok(wrote)
    }

    /// Syncs the file whatever its positions say (after [`Self::truncate_to`], whose zeroing
    /// they do not count as dirty), then counts everything written as flushed.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let wrote = self.wrote();
        self.file.sync_data()?;
        self.flushed.fetch_max(wrote, Ordering::AcqRel);
        Ok(())
    }

    /// Starts writing to disk the whole pages appended since the last call, and returns at
    /// once. The periodic flush's `fdatasync` then finds them written or on their way, so
    /// the writeback's CPU work is spread over the period instead of done in one burst that
    /// takes a core from the appenders for milliseconds. A page still being appended to is
    /// left alone: writeback would only have to write it again. Durability is unchanged:
    /// nothing counts as flushed until [`Self::flush`] returns.
    pub fn start_writeback(&self) -> io::Result<()> {
        let whole_pages_end = page_floor(self.wrote());
        let started = self.writeback_started.load(Ordering::Acquire);
        if whole_pages_end <= started {
            return Ok(());
        }
        // SAFETY: plain syscall on a descriptor we own; the range lies inside the file.
        let result = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                started as libc::off64_t,
                (whole_pages_end - started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        self.writeback_started.fetch_max(whole_pages_end, Ordering::AcqRel);
        Ok(())
    }

    /// Last modification time of the file (retention).
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.file.metadata()?.modified()
    }

    /// Unlinks the file; readers holding slices keep their mapping.
    pub fn destroy(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        if from >= to {
            return Ok(());
        }
        file_space::zero_in_place(&self.file, from, to - from)
    }
}

/// Published bytes of a mapped file, kept alive by an `Arc` of the file: what a read returns
/// without copying. Convert with [`MappedSlice::into_bytes`] to hand it to the network.
#[derive(Debug, Clone)]
pub struct MappedSlice {
    file: Arc<MappedFile>,
    start: usize,
    length: usize,
}

impl MappedSlice {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.file.bytes(self.start, self.length)
    }

    /// Global offset of the first byte.
    pub fn offset(&self) -> u64 {
        self.file.start_offset() + self.start as u64
    }

    /// A zero-copy `Bytes` owning the slice.
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_publish_slice_flush_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(MappedFile::create(dir.path(), 8192, 8192).unwrap());
        assert_eq!(file.path().file_name().unwrap(), "00000000000000008192");
        // SAFETY: single writer, unpublished range.
        unsafe { file.write_unpublished(0, b"hello world") };
        assert!(file.slice(0, 5).is_none(), "unpublished bytes are invisible");
        file.publish(11);
        assert_eq!(file.slice(6, 5).unwrap().as_slice(), b"world");
        assert_eq!(file.slice(6, 5).unwrap().into_bytes(), &b"world"[..]);
        assert_eq!(file.flush(0).unwrap(), 11);
        file.truncate_to(5).unwrap();
        assert_eq!(file.wrote(), 5);
        drop(file);
        let reopened = Arc::new(MappedFile::open(&dir.path().join(file_name(8192)), 8192, 8192).unwrap());
        assert_eq!(reopened.slice(0, 8).unwrap().as_slice(), b"hello\0\0\0");
    }

    #[test]
    fn writeback_starts_on_whole_pages_only_and_counts_nothing_as_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let file = MappedFile::create(dir.path(), 0, 4 * OS_PAGE_SIZE_BYTES).unwrap();
        let written = vec![7u8; OS_PAGE_SIZE_BYTES as usize + 100];
        // SAFETY: single writer, unpublished range.
        unsafe { file.write_unpublished(0, &written) };
        file.publish(written.len() as u64);
        file.start_writeback().unwrap();
        let started = |file: &MappedFile| file.writeback_started.load(Ordering::Acquire);
        assert_eq!(started(&file), OS_PAGE_SIZE_BYTES, "the page being appended to is left alone");
        file.start_writeback().unwrap();
        assert_eq!(started(&file), OS_PAGE_SIZE_BYTES, "nothing new, nothing started");
        assert_eq!(file.flushed(), 0, "started writeback is not a flush");
        // SAFETY: as above.
        unsafe { file.write_unpublished(written.len() as u64, &written) };
        file.publish(2 * written.len() as u64);
        file.start_writeback().unwrap();
        assert_eq!(started(&file), 2 * OS_PAGE_SIZE_BYTES);
        file.truncate_to(10).unwrap();
        assert_eq!(started(&file), 0, "truncation takes the mark back to the write position's page");
        assert_eq!(file.flush(0).unwrap(), 10);
    }

    #[test]
    fn wrong_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        MappedFile::create(dir.path(), 0, 4096).unwrap();
        assert!(MappedFile::open(&dir.path().join(file_name(0)), 0, 8192).is_err());
        assert!(MappedFile::create(dir.path(), 0, 2048).is_err(), "a longer file is not cut");
        // A shorter one is what a failed allocation left: allocated whole again.
        let extended = MappedFile::create(dir.path(), 0, 8192).unwrap();
        assert_eq!(fs::metadata(extended.path()).unwrap().len(), 8192);
    }

    #[test]
    fn slices_outlive_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(MappedFile::create(dir.path(), 0, 4096).unwrap());
        unsafe { file.write_unpublished(0, b"kept") };
        file.publish(4);
        let slice = file.slice(0, 4).unwrap();
        file.destroy().unwrap();
        drop(file);
        assert_eq!(slice.as_slice(), b"kept");
    }
}
