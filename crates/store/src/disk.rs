//! How full the disk is: the input of retention and of the disk-full refusal. A trait, so a
//! test can play a full disk without filling one.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Reports disk usage of the partition holding a path.
pub trait DiskUsage: Send + Sync + 'static {
    /// Used space as a percentage of usable space (0–100), rounded up as Java does.
    fn used_percent(&self, path: &Path) -> io::Result<u32>;
}

/// The real disk, through `statvfs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsDiskUsage;

impl DiskUsage for StatvfsDiskUsage {
    fn used_percent(&self, path: &Path) -> io::Result<u32> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c_path` is a valid C string and `stats` a writable statvfs.
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let total = stats.f_blocks as u128 * stats.f_frsize as u128;
        let free = stats.f_bfree as u128 * stats.f_frsize as u128;
        let available = stats.f_bavail as u128 * stats.f_frsize as u128;
        let used = total.saturating_sub(free);
        let usable = used + available;
        if usable == 0 {
            return Ok(100);
        }
        Ok(((used * 100).div_ceil(usable)).min(100) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_percentage() {
        let dir = tempfile::tempdir().unwrap();
        let used = StatvfsDiskUsage.used_percent(dir.path()).unwrap();
        assert!(used <= 100);
        // A file system holding a temporary directory (and this test binary) is never empty.
        assert!(used > 0, "statvfs reported an empty file system");
    }
}
