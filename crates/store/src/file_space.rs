//! Disk blocks for files written through mappings.
//!
//! A store through a shared mapping into a file block that the file system has not
//! allocated, on a full disk, is a SIGBUS that kills the process: there is no error to
//! handle. So every mapped file is fully allocated before it is mapped, and nothing that
//! zeroes part of a mapped file gives its blocks back. Running out of space is then an
//! `ENOSPC` from [`create_allocated`], where the caller can refuse the write.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Bytes of zeros written per call where the file system cannot allocate or zero ranges.
const ZERO_CHUNK_BYTES: usize = 64 * 1024;

/// True when `error` means the file system is out of space (or of quota).
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Opens (creating if missing; with `create_new`, failing if it exists) the file at `path`
/// and allocates all `size_bytes` of it. When the allocation fails, the file is removed, so a
/// half-allocated file is never left for a later write or start to trip over.
pub fn create_allocated(path: &Path, size_bytes: u64, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    let file = options.open(path)?;
    match allocate(&file, 0, size_bytes) {
        Ok(()) => Ok(file),
        Err(error) => {
            drop(file);
            if let Err(remove_error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %remove_error, "could not remove a file whose allocation failed");
            }
            Err(error)
        }
    }
}

/// Allocates the blocks of `[offset, offset + length)`, extending the file if needed. File
/// systems without `fallocate` get the range written with zeros, which allocates it just
/// the same (never a sparse file: writing a hole through a mapping is what faults).
pub fn allocate(file: &File, offset: u64, length: u64) -> io::Result<()> {
    if length == 0 {
        return Ok(());
    }
    let (offset_arg, length_arg) = range_args(offset, length)?;
    // SAFETY: plain syscall on a file descriptor we own.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset_arg, length_arg) };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return write_zeros(file, offset, length);
    }
    Err(error)
}

/// Zeroes `[offset, offset + length)` of an allocated file and keeps its blocks allocated
/// (no hole is ever punched: a later write through the mapping must not need new blocks).
pub fn zero_in_place(file: &File, offset: u64, length: u64) -> io::Result<()> {
    if length == 0 {
        return Ok(());
    }
    let (offset_arg, length_arg) = range_args(offset, length)?;
    // SAFETY: plain syscall on a file descriptor we own.
    let result = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset_arg,
            length_arg,
        )
    };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // tmpfs and others: overwrite. The blocks exist already, so this needs no space.
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => write_zeros(file, offset, length),
        _ => Err(error),
    }
}

fn write_zeros(file: &File, offset: u64, length: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let end = offset.checked_add(length).ok_or_else(range_too_large)?;
    let mut at = offset;
    while at < end {
        let count = ZERO_CHUNK_BYTES.min((end - at) as usize);
        file.write_all_at(&zeros[..count], at)?;
        at += count as u64;
    }
    Ok(())
}

fn range_args(offset: u64, length: u64) -> io::Result<(libc::off_t, libc::off_t)> {
    let offset = libc::off_t::try_from(offset).map_err(|_| range_too_large())?;
    let length = libc::off_t::try_from(length).map_err(|_| range_too_large())?;
    offset.checked_add(length).ok_or_else(range_too_large)?;
    Ok((offset, length))
}

fn range_too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "file range past the largest file offset")
}

/// True when the first `probe_bytes` of the file at `path` (or all of it, if shorter) are
/// zero: a file that never held a record, as a failed or interrupted allocation leaves it.
pub fn starts_empty(path: &Path, probe_bytes: usize) -> io::Result<bool> {
    let file = File::open(path)?;
    let length = file.metadata()?.len().min(probe_bytes as u64) as usize;
    let mut bytes = vec![0u8; length];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes.iter().all(|byte| *byte == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn allocation_is_whole_and_zeroing_keeps_the_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = create_allocated(&path, 1 << 20, true).unwrap();
        let metadata = file.metadata().unwrap();
        assert_eq!(metadata.len(), 1 << 20);
        assert!(metadata.blocks() * 512 >= 1 << 20, "every block allocated, no hole");
        file.write_all_at(b"record", 4096).unwrap();
        zero_in_place(&file, 4096, (1 << 20) - 4096).unwrap();
        let mut back = [1u8; 6];
        file.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back, [0; 6]);
        assert!(file.metadata().unwrap().blocks() * 512 >= 1 << 20, "zeroing punched no hole");
        assert!(starts_empty(&path, 8192).unwrap());
        assert!(create_allocated(&path, 4096, true).is_err(), "create_new refuses an existing file");
    }

    #[test]
    fn a_failed_allocation_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let probe = File::create(dir.path().join("probe")).unwrap();
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::fallocate(probe.as_raw_fd(), 0, 0, 4096) } != 0 {
            eprintln!(
                "this file system has no fallocate: the zero-writing fallback is not tried with a huge size"
            );
            return;
        }
        let path = dir.path().join("huge");
        // Larger than any file system this runs on can hold.
        let error = create_allocated(&path, 1 << 62, false).unwrap_err();
        assert!(is_out_of_space(&error) || error.raw_os_error() == Some(libc::EFBIG), "{error}");
        assert!(!path.exists(), "the half-allocated file is removed");
    }
}
