//! An ordered run of equally sized mapped files forming one logical log: the commit log,
//! or one consume queue. File `k` starts at global offset `k * size`, named by that offset.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::file_space;
use crate::mapped_file::MappedFile;

/// The files of one log, oldest first.
#[derive(Debug)]
pub struct MappedFileQueue {
    dir: PathBuf,
    file_size_bytes: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
}

impl MappedFileQueue {
    /// Loads every file of `dir` (created if missing). Names must be 20-digit offsets that are
    /// multiples of `file_size_bytes` and sizes must match; a last file that is shorter than
    /// configured and holds no record (a failed or interrupted allocation) is removed.
    /// Anything else is an error: better to stop than to guess.
    pub fn load(dir: &Path, file_size_bytes: u64) -> io::Result<Self> {
        assert!(file_size_bytes > 0);
        fs::create_dir_all(dir)?;
        let mut entries: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 20 || !name.bytes().all(|byte| byte.is_ascii_digit()) {
                continue;
            }
            let offset: u64 = name.parse().map_err(|_| invalid(dir, "unparsable file name"))?;
            entries.push((offset, entry.path()));
        }
        entries.sort_unstable();
        if let Some((_, last)) = entries.last() {
            if is_abandoned_allocation(last, file_size_bytes)? {
                tracing::warn!(
                    path = %last.display(),
                    size_bytes = fs::metadata(last)?.len(),
                    expected_bytes = file_size_bytes,
                    "removing the newest file: shorter than configured and holding no record \
                     (left by an allocation that failed or was interrupted, e.g. on a full disk)"
                );
                fs::remove_file(last)?;
                entries.pop();
            }
        }
        let mut files = Vec::with_capacity(entries.len());
        for (index, (offset, path)) in entries.iter().enumerate() {
            if offset % file_size_bytes != 0 {
                return Err(invalid(path, "file name is not a multiple of the file size"));
            }
            if index > 0 && *offset != entries[index - 1].0 + file_size_bytes {
                return Err(invalid(path, "gap before this file"));
            }
            files.push(Arc::new(MappedFile::open(path, *offset, file_size_bytes)?));
        }
        Ok(Self { dir: dir.to_path_buf(), file_size_bytes, files: RwLock::new(files) })
    }

    /// Directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of every file.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// Every file, oldest first.
    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read().clone()
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.read().len()
    }

    /// True when there is no file.
    pub fn is_empty(&self) -> bool {
        self.files.read().is_empty()
    }

    /// The newest file.
    pub fn last(&self) -> Option<Arc<MappedFile>> {
        self.files.read().last().cloned()
    }

    /// The oldest file.
    pub fn first(&self) -> Option<Arc<MappedFile>> {
        self.files.read().first().cloned()
    }

    /// Global offset of the first byte still stored (0 when empty).
    pub fn min_offset(&self) -> u64 {
        self.first().map_or(0, |file| file.start_offset())
    }

    /// Global offset one past the last written byte.
    pub fn max_offset(&self) -> u64 {
        self.last().map_or(0, |file| file.start_offset() + file.wrote())
    }

    /// The file holding global `offset`.
    pub fn find(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read();
        let first = files.first()?;
        if offset < first.start_offset() {
            return None;
        }
        let index = ((offset - first.start_offset()) / self.file_size_bytes) as usize;
        files.get(index).filter(|file| offset < file.end_offset()).cloned()
    }

    /// Appends a new file after the last (or at `start_offset` when empty); `prepared` is a
    /// file made ahead of time for that offset, if any.
    pub fn push_new(&self, start_offset: u64, prepared: Option<MappedFile>) -> io::Result<Arc<MappedFile>> {
        let mut files = self.files.write();
        if let Some(last) = files.last() {
            assert_eq!(start_offset, last.end_offset(), "files must be contiguous");
        }
        assert_eq!(start_offset % self.file_size_bytes, 0);
        let file = match prepared {
            Some(file) if file.start_offset() == start_offset => file,
            _ => MappedFile::create(&self.dir, start_offset, self.file_size_bytes)?,
        };
        let file = Arc::new(file);
        files.push(Arc::clone(&file));
        Ok(file)
    }

    /// Drops everything at or after global `offset`: the file containing it is truncated,
    /// later files are deleted.
    pub fn truncate(&self, offset: u64) -> io::Result<()> {
        let mut files = self.files.write();
        while let Some(last) = files.last() {
            if last.start_offset() >= offset {
                last.destroy()?;
                files.pop();
                continue;
            }
            if offset < last.end_offset() {
                last.truncate_to(offset - last.start_offset())?;
            }
            break;
        }
        Ok(())
    }

    /// [`Self::truncate`], made to survive a crash before it returns: the zeroed tail of the
    /// file holding `offset` is synced, and so is the directory when files were deleted. A
    /// crash can then never bring dropped bytes back, to be read as data once later appends
    /// reuse the offsets before them.
    pub fn truncate_durably(&self, offset: u64) -> io::Result<()> {
        let removes_files = self.last().is_some_and(|last| last.start_offset() >= offset);
        self.truncate(offset)?;
        if let Some(last) = self.last().filter(|last| offset < last.end_offset()) {
            last.sync()?;
        }
        if removes_files {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Syncs the directory itself, so file deletions and creations in it survive a crash.
    pub fn sync_dir(&self) -> io::Result<()> {
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes the oldest file from the queue and unlinks it (readers keep their slices).
    pub fn delete_first(&self) -> io::Result<Option<Arc<MappedFile>>> {
        let mut files = self.files.write();
        if files.is_empty() {
            return Ok(None);
        }
        let file = files.remove(0);
        file.destroy()?;
        Ok(Some(file))
    }

    /// Deletes every file and the directory (a deleted topic's queue).
    pub fn destroy(&self) -> io::Result<()> {
        let mut files = self.files.write();
        for file in files.drain(..) {
            file.destroy()?;
        }
        match fs::remove_dir(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                tracing::debug!(dir = %self.dir.display(), %error, "directory left in place");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Bytes read to tell whether a file ever held a record: a commit-log record or a
/// consume-queue entry written at position 0 has a non-zero first field.
const EMPTY_PROBE_BYTES: usize = 4096;

/// True for a file shorter than `file_size_bytes` whose start is all zeros. Files are only
/// written after their whole allocation succeeded, so such a file never held data.
fn is_abandoned_allocation(path: &Path, file_size_bytes: u64) -> io::Result<bool> {
    let length = fs::metadata(path)?.len();
    Ok(length < file_size_bytes && file_space::starts_empty(path, EMPTY_PROBE_BYTES)?)
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_chain_find_truncate_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let queue = MappedFileQueue::load(dir.path(), 4096).unwrap();
        assert!(queue.is_empty());
        let first = queue.push_new(0, None).unwrap();
        unsafe { first.write_unpublished(0, &[1u8; 4096]) };
        first.publish(4096);
        let second = queue.push_new(4096, None).unwrap();
        unsafe { second.write_unpublished(0, &[2u8; 100]) };
        second.publish(100);
        assert_eq!(queue.max_offset(), 4196);
        assert_eq!(queue.find(4100).unwrap().start_offset(), 4096);
        assert!(queue.find(8192).is_none());

        queue.truncate(4000).unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.max_offset(), 4000);
        drop(queue);

        let reloaded = MappedFileQueue::load(dir.path(), 4096).unwrap();
        assert_eq!(reloaded.len(), 1);
        assert_eq!(reloaded.find(0).unwrap().slice(3999, 2).unwrap().as_slice(), &[1, 0]);
    }

    #[test]
    fn a_short_empty_last_file_is_removed_and_a_short_full_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let queue = MappedFileQueue::load(dir.path(), 8192).unwrap();
        let first = queue.push_new(0, None).unwrap();
        unsafe { first.write_unpublished(0, &[1u8; 100]) };
        first.publish(100);
        drop((first, queue));
        // What a failed allocation of the next file leaves on ext4: part of its blocks.
        let next = dir.path().join(crate::mapped_file::file_name(8192));
        fs::write(&next, vec![0u8; 4096]).unwrap();
        let reloaded = MappedFileQueue::load(dir.path(), 8192).unwrap();
        assert_eq!(reloaded.len(), 1);
        assert_eq!(reloaded.max_offset(), 8192, "positions start at the file's end until recovery");
        assert!(!next.exists());
        drop(reloaded);
        // A short file that holds data is not guessed about.
        fs::write(&next, [7u8; 100]).unwrap();
        assert!(MappedFileQueue::load(dir.path(), 8192).is_err());
    }

    #[test]
    fn gaps_and_odd_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        MappedFile::create(dir.path(), 0, 4096).unwrap();
        MappedFile::create(dir.path(), 8192, 4096).unwrap();
        assert!(MappedFileQueue::load(dir.path(), 4096).is_err());
    }
}
