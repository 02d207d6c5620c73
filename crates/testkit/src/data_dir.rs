//! Where servers started by tests keep their data.

use tempfile::TempDir;

/// The prefix of every server data directory a test makes. A test run that is killed leaves its
/// directories behind (preallocated commit-log files of a GiB each); CI removes stale ones by
/// this prefix before the next run.
pub const DATA_DIR_PREFIX: &str = "apogee-test-";

/// A new data directory under the system's temporary directory, removed on drop.
pub fn data_dir() -> TempDir {
    tempfile::Builder::new().prefix(DATA_DIR_PREFIX).tempdir().expect("a temporary data directory")
}
