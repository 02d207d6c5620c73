//! Retention (storage spec §5.7): commit-log files older than `fileReservedTime` go at
//! `deleteWhen`, or at once when the disk passes `diskMaxUsedSpaceRatio`; past
//! `diskSpaceCleanForciblyRatio` the oldest go even if young; past
//! `diskSpaceWarningLevelRatio` appends are refused. Consume queues and index files follow
//! the commit log's new minimum offset. The newest commit-log file is never deleted.

use std::time::{Duration, SystemTime};

use crate::running;
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
    let used_percent = [config.commit_log_dir(), config.consume_queue_dir()]
        .iter()
        .filter_map(|path| match inner.disk.used_percent(path) {
            Ok(percent) => Some(percent),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "disk usage unknown");
                None
            }
        })
        .max()
        .unwrap_or(0);

    let warning = config.disk_space_warning_level_ratio.clamp(35, 90);
    let forcibly = config.disk_space_clean_forcibly_ratio.clamp(30, 85);
    let max_used = config.disk_max_used_space_ratio.clamp(10, 95);
    if used_percent > warning {
        if !inner.running.is_set(running::DISK_FULL) {
            tracing::error!(
                used_percent,
                limit = warning,
                "disk full: appends are refused until space is freed"
            );
        }
        inner.running.set(running::DISK_FULL);
    } else if inner.running.is_set(running::DISK_FULL) {
        tracing::info!(used_percent, "disk usage back under the limit: appends accepted again");
        inner.running.clear(running::DISK_FULL);
    }

    let clean_forcibly = used_percent > forcibly && config.clean_file_forcibly_enable;
    let hour_matches = local_hour().is_some_and(|hour| config.delete_hours().contains(&hour));
    let manual = state.manual_rounds > 0;
    state.manual_rounds = state.manual_rounds.saturating_sub(1);
    if !(hour_matches || used_percent > max_used || clean_forcibly || manual) {
        return;
    }

    let reserved = Duration::from_secs(config.file_reserved_time_hours.saturating_mul(3600));
    let deleted = delete_expired_commit_log(inner, reserved, clean_forcibly);
    if deleted > 0 {
        tracing::info!(deleted, used_percent, "commit-log files deleted by retention");
    }
    clean_logics(inner);
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
            Ok(Some(file)) => {
                tracing::info!(file = %file.path().display(), expired, forcibly, "commit-log file deleted");
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
