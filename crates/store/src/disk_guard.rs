//! The disk-full refusal: appends stop while the disk is too full to take the next files.
//!
//! Java checks `diskSpaceWarningLevelRatio` every `cleanResourceInterval` (10 s). A writer at
//! full speed fills a small volume in less than that, so the guard runs every
//! [`CHECK_INTERVAL_MS`] and before every new commit-log file, and refuses on either of two
//! rules: disk use above the warning ratio, or less room left than the store needs to make
//! its next files ([`StoreConfig::disk_reserve_bytes`]). Files are allocated whole before
//! they are written (`file_space`), so the refusal is a courtesy to clients (a clear
//! SERVICE_NOT_AVAILABLE before the disk is full); the allocation is what keeps a write from
//! ever faulting.

use std::path::PathBuf;

use crate::config::StoreConfig;
use crate::disk::DiskSpace;
use crate::running;
use crate::store::StoreInner;

/// How often the guard looks at the disk.
pub const CHECK_INTERVAL_MS: u64 = 100;

/// Why appends are refused, if they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Room enough.
    Room,
    /// Disk use is above `diskSpaceWarningLevelRatio`.
    AboveWarningRatio,
    /// Less room than the next commit-log, consume-queue and index files need.
    BelowReserve,
}

/// The fullest of the file systems the store writes to (`None` when none could be read).
pub(crate) fn measure(inner: &StoreInner) -> Option<DiskSpace> {
    let config = &inner.config;
    let mut paths: Vec<PathBuf> = vec![config.commit_log_dir(), config.consume_queue_dir()];
    if config.message_index_enable {
        paths.push(config.index_dir());
    }
    paths
        .iter()
        .filter_map(|path| match inner.disk.space(path) {
            Ok(space) => Some(space),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "disk usage unknown");
                None
            }
        })
        .reduce(|fullest, space| DiskSpace {
            used_percent: fullest.used_percent.max(space.used_percent),
            available_bytes: fullest.available_bytes.min(space.available_bytes),
        })
}

/// Room the store still needs: [`StoreConfig::disk_reserve_bytes`], less the next
/// commit-log file when it is already made (its blocks are taken, not still to take).
pub(crate) fn reserve_bytes(inner: &StoreInner) -> u64 {
    let config = &inner.config;
    if inner.commit_log.next_file_ready() {
        config.disk_reserve_bytes().saturating_sub(config.mapped_file_size_commit_log)
    } else {
        config.disk_reserve_bytes()
    }
}

/// What the rules say of `space`, the store needing `reserve_bytes` more.
pub fn judge(config: &StoreConfig, space: DiskSpace, reserve_bytes: u64) -> Verdict {
    if space.used_percent > config.disk_space_warning_level_ratio.clamp(35, 90) {
        Verdict::AboveWarningRatio
    } else if space.available_bytes < reserve_bytes {
        Verdict::BelowReserve
    } else {
        Verdict::Room
    }
}

/// Measures the disk and raises or clears the store's DISK_FULL flag. Returns the
/// measurement for retention.
pub(crate) fn check(inner: &StoreInner) -> Option<DiskSpace> {
    let space = measure(inner)?;
    let reserve = reserve_bytes(inner);
    let verdict = judge(&inner.config, space, reserve);
    let was_full = inner.running.is_set(running::DISK_FULL);
    match verdict {
        Verdict::Room if was_full => {
            tracing::info!(
                used_percent = space.used_percent,
                available_bytes = space.available_bytes,
                "disk has room again: appends accepted"
            );
            inner.running.clear(running::DISK_FULL);
        }
        Verdict::Room => {}
        full => {
            if !was_full {
                tracing::error!(
                    used_percent = space.used_percent,
                    limit_percent = inner.config.disk_space_warning_level_ratio.clamp(35, 90),
                    available_bytes = space.available_bytes,
                    reserve_bytes = reserve,
                    reason = ?full,
                    "disk full: appends are refused until space is freed"
                );
            }
            inner.running.set(running::DISK_FULL);
        }
    }
    Some(space)
}

/// Marks the store full after a file could not be allocated (`ENOSPC`). The guard clears it
/// once the disk has room by its rules again.
pub(crate) fn out_of_space(inner: &StoreInner, what: &str, error: &std::io::Error) {
    if !inner.running.is_set(running::DISK_FULL) {
        tracing::error!(%error, what, "no room on the disk: appends are refused until space is freed");
    }
    inner.running.set(running::DISK_FULL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_rule_refuses() {
        let config = StoreConfig {
            mapped_file_size_commit_log: 64 << 20,
            max_hash_slot_num: 50_000,
            max_index_num: 200_000,
            ..StoreConfig::default()
        };
        let reserve = config.disk_reserve_bytes();
        assert!(reserve >= 64 << 20, "room for the next commit-log file at least");
        let roomy = DiskSpace { used_percent: 50, available_bytes: reserve * 2 };
        assert_eq!(judge(&config, roomy, reserve), Verdict::Room);
        assert_eq!(
            judge(&config, DiskSpace { used_percent: 91, ..roomy }, reserve),
            Verdict::AboveWarningRatio
        );
        assert_eq!(
            judge(&config, DiskSpace { available_bytes: reserve - 1, ..roomy }, reserve),
            Verdict::BelowReserve
        );
    }
}
