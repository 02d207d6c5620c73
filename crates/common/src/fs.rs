//! Writing small state files (topics, offsets, KV config) so a crash leaves the old or the
//! new content, never half of one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` through a synced temporary file and a rename, keeping the previous
/// content as `<path>.bak` (as Apache RocketMQ does for its config files).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        fs::create_dir_all(parent)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    if path.exists() {
        fs::copy(path, backup_path(path))?;
    }
    fs::rename(&temporary, path)?;
    if let Some(parent) = parent {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The path of the backup [`write_atomically`] keeps.
pub fn backup_path(path: &Path) -> std::path::PathBuf {
    let mut backup = path.as_os_str().to_owned();
    backup.push(".bak");
    std::path::PathBuf::from(backup)
}

/// Reads a state file written by [`write_atomically`] and parses it with `parse`.
///
/// `Ok(None)` when neither the file nor its backup exists (or both are empty): a fresh
/// start. A file that cannot be read or parsed is replaced by its backup, with a warning;
/// when the backup is unusable too, the error is returned, so a corrupt file never silently
/// turns into an empty table.
pub fn read_state_file<T>(path: &Path, parse: impl Fn(&[u8]) -> Result<T, String>) -> io::Result<Option<T>> {
    let read_one = |candidate: &Path| -> io::Result<Option<T>> {
        let bytes = match fs::read(candidate) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&bytes).map(Some).map_err(|error| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", candidate.display()))
        })
    };
    let backup = backup_path(path);
    match read_one(path) {
        Ok(Some(value)) => Ok(Some(value)),
        Ok(None) => read_one(&backup),
        Err(error) => match read_one(&backup) {
            Ok(Some(value)) => {
                tracing::warn!(%error, backup = %backup.display(), "state file unreadable; loaded its backup");
                Ok(Some(value))
            }
            _ => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_keeps_a_backup() {
        let dir = std::env::temp_dir().join(format!("apogee-fs-{}", std::process::id()));
        let path = dir.join("state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read(dir.join("state.json.bak")).unwrap(), b"one");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn state_files_fall_back_to_the_backup_and_never_to_nothing() {
        let dir = std::env::temp_dir().join(format!("apogee-state-{}", std::process::id()));
        let path = dir.join("state.json");
        let parse = |bytes: &[u8]| std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| e.to_string());
        assert_eq!(read_state_file(&path, parse).unwrap(), None);
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(read_state_file(&path, parse).unwrap().as_deref(), Some("two"));
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert_eq!(read_state_file(&path, parse).unwrap().as_deref(), Some("one"));
        fs::write(backup_path(&path), [0xff]).unwrap();
        assert!(read_state_file(&path, parse).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
