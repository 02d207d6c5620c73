//! How full the disk is: the input of retention and of the disk-full refusal. A trait, so a
//! test can play a full disk without filling one.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Space on the file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Used space as a percentage of usable space (0–100), rounded up as Java does.
    pub used_percent: u32,
    /// Bytes an unprivileged writer may still allocate (`f_bavail`): the room left for the
    /// next commit-log, consume-queue and index files.
    pub available_bytes: u64,
}

/// Reports disk usage of the partition holding a path.
pub trait DiskUsage: Send + Sync + 'static {
    /// Usage of the file system holding `path`.
    fn space(&self, path: &Path) -> io::Result<DiskSpace>;
}

/// The real disk, through `statvfs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsDiskUsage;

impl DiskUsage for StatvfsDiskUsage {
    fn space(&self, path: &Path) -> io::Result<DiskSpace> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c_path` is a valid C string and `stats` a writable statvfs.
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let fragment_bytes = stats.f_frsize as u128;
        let total = stats.f_blocks as u128 * fragment_bytes;
        let free = stats.f_bfree as u128 * fragment_bytes;
        let available = stats.f_bavail as u128 * fragment_bytes;
        let used = total.saturating_sub(free);
        let usable = used + available;
        let used_percent = if usable == 0 { 100 } else { ((used * 100).div_ceil(usable)).min(100) as u32 };
        Ok(DiskSpace { used_percent, available_bytes: u64::try_from(available).unwrap_or(u64::MAX) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_percentage_and_room() {
        let dir = tempfile::tempdir().unwrap();
        let space = StatvfsDiskUsage.space(dir.path()).unwrap();
        assert!(space.used_percent <= 100);
        // A file system holding a temporary directory (and this test binary) is never empty.
        assert!(space.used_percent > 0, "statvfs reported an empty file system");
        let before = space.available_bytes;
        let file = crate::file_space::create_allocated(&dir.path().join("f"), 256 << 20, true).unwrap();
        let after = StatvfsDiskUsage.space(dir.path()).unwrap().available_bytes;
        drop(file);
        // Other writers share the disk: allow them some, but the 256 MiB must show.
        assert!(after + (128 << 20) <= before, "256 MiB allocated, room went from {before} to {after}");
    }
}
