//! Retention (storage spec §5.7): commit-log files older than `fileReservedTime` go at
//! `deleteWhen`, or at once when the disk passes `diskMaxUsedSpaceRatio`; past
//! `diskSpaceCleanForciblyRatio` the oldest go even if young (when `cleanFileForciblyEnable`,
//! each such deletion logged at WARN with the offsets it held). The refusal of appends on a
//! full disk is `disk_guard`'s. Consume queues, index files and the entries of the epoch file
//! follow the commit log's new minimum offset. The newest commit-log file is never deleted.

use std::time::{Duration, SystemTime};

use crate::disk_guard;
use crate::store::StoreInner;

/// What a retention pass remembers between runs.
#[derive(Debug, Default)]
pub struct RetentionState {
    /// Passes still allowed to delete regardless of the hour (admin request).
    manual_rounds: u32,
}

impl RetentionState {
    /// A state that deletes expired files now, whatever the hour.
    pub fn forced() -> Self {
        Self { manual_rounds: 1 }
    }
}

/// One retention pass.
pub(crate) fn run_once(inner: &StoreInner, state: &mut RetentionState) {
    let config = &inner.config;
    let space = disk_guard::check(inner);
    let used_percent = space.map_or(0, |space| space.used_percent);
    let below_reserve = space.is_some_and(|space| space.available_bytes < disk_guard::reserve_bytes(inner));
    let forcibly = config.disk_space_clean_forcibly_ratio.clamp(30, 85);
    let max_used = config.disk_max_used_space_ratio.clamp(10, 95);

    // Also below the reserve: the disk cannot take the next files, and forced cleaning is
    // what keeps such a broker writable.
    let clean_forcibly = (used_percent > forcibly || below_reserve) && config.clean_file_forcibly_enable;
    let hour_matches = local_hour().is_some_and(|hour| config.delete_hours().contains(&hour));
    let manual = state.manual_rounds > 0;
    state.manual_rounds = state.manual_rounds.saturating_sub(1);
    if !(hour_matches || used_percent > max_used || clean_forcibly || manual) {
        return;
    }

    let reserved = Duration::from_secs(config.file_reserved_time_hours.saturating_mul(3600));
    // Never while the tail is being truncated: both change the files and the epoch file.
    let _maintenance = inner.maintenance.lock();
    let deleted = delete_expired_commit_log(inner, reserved, clean_forcibly);
    if deleted > 0 {
        tracing::info!(deleted, used_percent, "commit-log files deleted by retention");
    }
    clean_epochs(inner);
    clean_logics(inner);
}

/// Drops the epoch entries wholly below the commit log's minimum offset (Java does so after
/// deleting commit-log files). Every pass, so a failed write is retried; a failure only
/// leaves entries for bytes no longer stored, which nothing compares against.
fn clean_epochs(inner: &StoreInner) {
    let min_offset = inner.commit_log.min_offset();
    if let Err(error) = inner.epochs.lock().truncate_below_offset(min_offset) {
        tracing::warn!(%error, min_offset, "epoch entries below the oldest stored byte not dropped");
    }
}

/// Deletes commit-log files oldest first, at most `deleteFileBatchMax`, stopping at the
/// first one to keep; never the newest.
fn delete_expired_commit_log(inner: &StoreInner, reserved: Duration, forcibly: bool) -> usize {
    let files = inner.commit_log.files();
    let now = SystemTime::now();
    let mut deleted = 0;
    while deleted < inner.config.delete_file_batch_max && files.len() > 1 {
        let Some(oldest) = files.first() else { break };
        let expired = oldest
            .modified()
            .map(|modified| now.duration_since(modified).unwrap_or_default() >= reserved)
            .unwrap_or(false);
        if !(expired || forcibly) {
            break;
        }
        match files.delete_first() {
            Ok(Some(file)) if expired => {
                tracing::info!(file = %file.path().display(), "expired commit-log file deleted");
                deleted += 1;
            }
            Ok(Some(file)) => {
                // Messages nobody may have consumed yet: say exactly which went.
                tracing::warn!(
                    file = %file.path().display(),
                    first_offset = file.start_offset(),
                    end_offset = file.start_offset() + file.wrote(),
                    new_min_offset = files.min_offset(),
                    "disk above diskSpaceCleanForciblyRatio or below the reserve: commit-log file deleted before its \
                     fileReservedTime (cleanFileForciblyEnable=false keeps it and refuses writes instead)"
                );
                deleted += 1;
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "commit-log file could not be deleted");
                break;
            }
        }
    }
    deleted
}

/// Drops consume-queue and index files wholly below the commit log's minimum offset.
pub(crate) fn clean_logics(inner: &StoreInner) {
    let min_offset = inner.commit_log.min_offset() as i64;
    for queue in inner.queues.all() {
        if let Err(error) = queue.delete_expired(min_offset) {
            tracing::warn!(topic = queue.topic(), queue_id = queue.queue_id(), %error, "consume queue cleanup failed");
        }
    }
    if let Some(index) = &inner.index {
        if let Err(error) = index.delete_files_below_offset(min_offset) {
            tracing::warn!(%error, "index cleanup failed");
        }
    }
}

/// The current hour of the day in local time.
fn local_hour() -> Option<u32> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as libc::time_t;
    let mut parts: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let result = unsafe { libc::localtime_r(&now, &mut parts) };
    (!result.is_null()).then_some(parts.tm_hour as u32)
}
