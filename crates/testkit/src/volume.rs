//! A small file system a test mounts for itself, to fill it: a full disk for real. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small file system mounted for the test, unmounted and removed on drop. Loop-mounted
/// ext4 (as real full disks are), else tmpfs where loop devices are missing.
///
/// `APOGEE_FULL_DISK_IMAGE_DIR` puts the loop image elsewhere (in memory, say, so SYNC_FLUSH
/// runs are quick); `APOGEE_FULL_DISK_FS=tmpfs` skips the loop device.
#[derive(Debug)]
pub struct SmallVolume {
    mount_point: PathBuf,
    kind: &'static str,
    image: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallVolume {
    /// Mounts `size_mb` of ext4 on a loop device, else of tmpfs; `Err` says why neither
    /// (the test then skips).
    pub fn mount(size_mb: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let mount_point = dir.path().join("volume");
        std::fs::create_dir(&mount_point).map_err(|error| error.to_string())?;
        let image_dir = std::env::var_os("APOGEE_FULL_DISK_IMAGE_DIR")
            .map_or_else(|| dir.path().to_path_buf(), PathBuf::from);
        let image = image_dir.join(format!("apogee-full-disk-{}-{size_mb}.img", std::process::id()));
        let want_tmpfs = std::env::var("APOGEE_FULL_DISK_FS").is_ok_and(|fs| fs == "tmpfs");
        let loop_result = (|| {
            if want_tmpfs {
                return Err("APOGEE_FULL_DISK_FS=tmpfs".to_owned());
            }
            let file = std::fs::File::create(&image).map_err(|error| error.to_string())?;
            file.set_len(size_mb << 20).map_err(|error| error.to_string())?;
            succeed(Command::new("mkfs.ext4").arg("-q").arg(&image))?;
            succeed(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount_point))
        })();
        let kind = match loop_result {
            Ok(()) => "ext4 on a loop device",
            Err(loop_error) => {
                let _ = std::fs::remove_file(&image);
                succeed(
                    Command::new("mount")
                        .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
                        .arg(&mount_point),
                )
                .map_err(|tmpfs_error| format!("loop ext4: {loop_error}; tmpfs: {tmpfs_error}"))?;
                "tmpfs"
            }
        };
        Ok(Self { mount_point, kind, image, _dir: dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// "ext4 on a loop device" or "tmpfs".
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Used percent and available bytes, as `df` counts them.
    pub fn usage(&self) -> (u32, u64) {
        let c_path =
            std::ffi::CString::new(self.mount_point.to_str().unwrap_or_default()).unwrap_or_default();
        // SAFETY: a valid C string and a zeroed statvfs to fill.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the pointers live for the call.
        assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) }, 0, "statvfs of the volume");
        let fragment = stats.f_frsize;
        let used = (stats.f_blocks - stats.f_bfree) * fragment;
        let available = stats.f_bavail * fragment;
        (((used * 100).div_ceil((used + available).max(1))) as u32, available)
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        // Lazy: a process still holding a file must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

fn succeed(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|error| format!("{command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}
