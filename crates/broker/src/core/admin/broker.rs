//! The broker itself: runtime figures, its effective configuration, delay-level progress
//! and maintenance on request.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use apogee_common::message::record::RecordView;
use apogee_common::topic as topic_names;
use apogee_store::StoreConfig;

use crate::core::blocking;
use crate::core::error::{CoreResult, Error};
use crate::{BrokerConfig, BrokerState};

/// The version the runtime figures report (`brokerVersionDesc`): the Apache RocketMQ release
/// whose protocol Apogee speaks (version ordinal 479).
pub const BROKER_VERSION_DESC: &str = "V5_3_3";

/// The runtime figures (see [`runtime_figures`]), gathered on the blocking pool: they read
/// the file system and the commit log.
pub async fn runtime_info(state: &Arc<BrokerState>) -> CoreResult<BTreeMap<String, String>> {
    blocking(state, runtime_figures).await
}

/// The runtime figures Apogee can give truthfully: version, whether it serves, store offsets
/// and disk use, earliest message, delay-level progress, the timer store's figures (as Java
/// reports them with the wheel on: read lag in seconds, entries not yet enqueued, timers
/// waiting, enqueued and delivered per second over the last second). Left out:
/// `startAcceptSendRequestTimeStamp`
/// (a Java setting Apogee does not have), throughput counters and thread-pool figures (until
/// the broker keeps them).
fn runtime_figures(state: &BrokerState) -> BTreeMap<String, String> {
    let store = &state.store;
    let store_config = store.config();
    let mut table = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        table.insert(key.to_owned(), value);
    };
    put("brokerVersionDesc", BROKER_VERSION_DESC.to_owned());
    // Java: its master-only services run. Apogee's (serving, delay levels) run until it stops.
    put("brokerActive", (!*state.stopping.borrow()).to_string());
    let commit_log_dir = store_config.commit_log_dir();
    let commit_log_ratio = disk_used_ratio(&commit_log_dir);
    put("commitLogDiskRatio", java_double(commit_log_ratio));
    put(&format!("commitLogDiskRatio_{}", commit_log_dir.display()), java_double(commit_log_ratio));
    put("consumeQueueDiskRatio", java_double(disk_used_ratio(&store_config.consume_queue_dir())));
    if let Some(space) = disk_space(&store_config.store_path_root_dir) {
        put(
            "commitLogDirCapacity",
            format!("Total : {}, Free : {}.", human_bytes(space.total), human_bytes(space.free)),
        );
    }
    let (min, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    put("remainHowManyDataToFlush", human_bytes(max.saturating_sub(store.commit_log_flushed_offset())));
    // The store dispatches each record as it appends it, so nothing is ever left to dispatch.
    put("dispatchBehindBytes", "0".to_owned());
    let earliest = store
        .message_at(min)
        .and_then(|record| {
            RecordView::parse(record.as_slice(), false).ok().map(|view| view.store_timestamp())
        })
        .unwrap_or(-1);
    put("earliestMessageTimeStamp", earliest.to_string());
    timer_figures(state, &mut put);
    for (level, offset) in state.schedule.offsets() {
        let queue_max = store.max_offset(topic_names::SCHEDULE_TOPIC, level - 1);
        put(&format!("scheduleMessageOffset_{level}"), format!("{offset},{queue_max}"));
    }
    table
}

/// The timer store's figures under Java's keys (`0` and `0.0` with the wheel off, as Java).
fn timer_figures(state: &BrokerState, put: &mut impl FnMut(&str, String)) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &state.timer.stats;
    if !state.timer.config.wheel_enable || !stats.running.load(Relaxed) {
        for key in ["timerReadBehind", "timerOffsetBehind", "timerCongestNum"] {
            put(key, "0".to_owned());
        }
        put("timerEnqueueTps", "0.0".to_owned());
        put("timerDequeueTps", "0.0".to_owned());
        return;
    }
    let now = apogee_common::time::now_ms();
    // Java: (now - currReadTimeMs) / 1000, the read time being the slot not yet delivered.
    let read_behind_sec = (now - stats.read_time_ms.load(Relaxed)).max(0) / 1000;
    let queue_max = state.store.max_offset(topic_names::TIMER_TOPIC, 0);
    let offset_behind = (queue_max - stats.queue_offset.load(Relaxed)).max(0);
    put("timerReadBehind", read_behind_sec.to_string());
    put("timerOffsetBehind", offset_behind.to_string());
    put("timerCongestNum", stats.pending.load(Relaxed).max(0).to_string());
    put("timerEnqueueTps", java_double(stats.enqueue_per_sec.load(Relaxed) as f64));
    put("timerDequeueTps", java_double(stats.dequeue_per_sec.load(Relaxed) as f64));
}

/// Size and unallocated bytes of a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskSpace {
    pub(crate) total: u64,
    pub(crate) free: u64,
}

/// `statvfs` of the partition holding `path`; `None` when the path does not exist.
pub(crate) fn disk_space(path: &Path) -> Option<DiskSpace> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `stats` a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = (stats.f_frsize as u64).max(1);
    Some(DiskSpace {
        total: (stats.f_blocks as u64).saturating_mul(block),
        free: (stats.f_bfree as u64).saturating_mul(block),
    })
}

/// Used share of the partition (Java `getDiskPartitionSpaceUsedPercent`: (total − free) /
/// total); -1 when the path does not exist.
fn disk_used_ratio(path: &Path) -> f64 {
    match disk_space(path) {
        Some(space) if space.total > 0 => space.total.saturating_sub(space.free) as f64 / space.total as f64,
        Some(_) => 0.0,
        None => -1.0,
    }
}

/// A double as Java's `String.valueOf` writes it for ordinary magnitudes (`0.0`, `0.25`).
fn java_double(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Bytes in binary units the way Java's `MixAll.humanReadableByteCount(bytes, false)` writes
/// them (`512 B`, `1.5 KiB`, `3.0 GiB`).
fn human_bytes(bytes: u64) -> String {
    const UNIT: f64 = 1024.0;
    const PREFIXES: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut index = 0;
    while value >= UNIT && index < PREFIXES.len() {
        value /= UNIT;
        index += 1;
    }
    format!("{value:.1} {}iB", PREFIXES[index - 1])
}

/// The effective configuration as `key=value` lines with Apache RocketMQ's names
/// (GET_BROKER_CONFIG), broker settings then store settings, each sorted by name.
pub fn config_properties(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let mut broker: Vec<(&'static str, String)> = vec![
        ("aclEnable", config.acl_enable.to_string()),
        ("autoCreateSubscriptionGroup", config.auto_create_subscription_group.to_string()),
        ("autoCreateTopicEnable", config.auto_create_topic_enable.to_string()),
        ("brokerClusterName", config.broker_cluster_name.clone()),
        ("brokerIP1", config.broker_ip1.to_string()),
        ("brokerId", config.broker_id.to_string()),
        ("brokerName", config.broker_name.clone()),
        ("brokerPermission", config.broker_permission.to_string()),
        ("brokerTopicEnable", config.broker_topic_enable.to_string()),
        ("channelExpiredTimeout", config.channel_expired_timeout_ms.to_string()),
        ("clusterTopicEnable", config.cluster_topic_enable.to_string()),
        ("defaultTopicQueueNums", config.default_topic_queue_nums.to_string()),
        ("enablePropertyFilter", config.enable_property_filter.to_string()),
        ("fastChannelEnable", config.fast_channel_enable.to_string()),
        ("flushConsumerOffsetInterval", config.flush_consumer_offset_interval_ms.to_string()),
        ("flushDelayOffsetInterval", config.flush_delay_offset_interval_ms.to_string()),
        ("grpcServerPort", config.proxy.grpc_server_port.to_string()),
        ("listenPort", config.listen_port.to_string()),
        ("longPollingEnable", config.long_polling_enable.to_string()),
        ("notifyConsumerIdsChangedEnable", config.notify_consumer_ids_changed_enable.to_string()),
        ("regionId", config.region_id.clone()),
        ("registerBrokerTimeoutMills", config.register_broker_timeout_ms.to_string()),
        ("registerNameServerPeriod", config.register_name_server_period_ms.to_string()),
        ("rejectTransactionMessage", config.reject_transaction_message.to_string()),
        ("shortPollingTimeMills", config.short_polling_time_ms.to_string()),
        ("storeReplyMessageEnable", config.store_reply_message_enable.to_string()),
        ("traceOn", config.trace_on.to_string()),
        ("useServerSideResetOffset", config.use_server_side_reset_offset.to_string()),
    ];
    if let Some(addr) = &config.namesrv_addr {
        // Java leaves unset (null) settings out.
        let at = broker.partition_point(|(key, _)| *key < "namesrvAddr");
        broker.insert(at, ("namesrvAddr", addr.clone()));
    }
    for entry in config.metrics.entries() {
        let at = broker.partition_point(|(key, _)| *key < entry.0);
        broker.insert(at, entry);
    }
    broker.extend(store_config_properties(&config.store));
    broker
}

/// The store part of [`config_properties`].
fn store_config_properties(store: &StoreConfig) -> Vec<(&'static str, String)> {
    let flush_disk_type = match store.flush_disk_type {
        apogee_store::FlushDiskType::SyncFlush => "SYNC_FLUSH",
        apogee_store::FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
    };
    vec![
        ("checkCRCOnRecover", store.check_crc_on_recover.to_string()),
        ("cleanFileForciblyEnable", store.clean_file_forcibly_enable.to_string()),
        ("cleanResourceInterval", store.clean_resource_interval_ms.to_string()),
        ("deleteFileBatchMax", store.delete_file_batch_max.to_string()),
        ("deleteWhen", store.delete_when.clone()),
        ("diskMaxUsedSpaceRatio", store.disk_max_used_space_ratio.to_string()),
        ("diskSpaceCleanForciblyRatio", store.disk_space_clean_forcibly_ratio.to_string()),
        ("diskSpaceWarningLevelRatio", store.disk_space_warning_level_ratio.to_string()),
        ("fileReservedTime", store.file_reserved_time_hours.to_string()),
        ("flushCommitLogLeastPages", store.flush_commit_log_least_pages.to_string()),
        ("flushCommitLogThoroughInterval", store.flush_commit_log_thorough_interval_ms.to_string()),
        ("flushDiskType", flush_disk_type.to_owned()),
        ("flushIntervalCommitLog", store.flush_interval_commit_log_ms.to_string()),
        ("flushIntervalConsumeQueue", store.flush_interval_consume_queue_ms.to_string()),
        ("mappedFileSizeCommitLog", store.mapped_file_size_commit_log.to_string()),
        ("mappedFileSizeConsumeQueue", store.mapped_file_size_consume_queue.to_string()),
        ("maxHashSlotNum", store.max_hash_slot_num.to_string()),
        ("maxIndexNum", store.max_index_num.to_string()),
        ("maxMessageSize", store.max_message_size.to_string()),
        ("maxTransferBytesOnMessageInMemory", store.max_transfer_bytes_on_message_in_memory.to_string()),
        ("maxTransferCountOnMessageInMemory", store.max_transfer_count_on_message_in_memory.to_string()),
        ("messageDelayLevel", store.message_delay_level.clone()),
        ("messageIndexEnable", store.message_index_enable.to_string()),
        ("storePathCommitLog", store.commit_log_dir().display().to_string()),
        ("storePathRootDir", store.store_path_root_dir.display().to_string()),
        ("syncFlushTimeout", store.sync_flush_timeout_ms.to_string()),
    ]
}

/// Keys UPDATE_BROKER_CONFIG never changes (Java's default `configBlackList`).
const CONFIG_BLACK_LIST: [&str; 2] = ["configBlackList", "brokerConfigPath"];

/// The settings UPDATE_BROKER_CONFIG (`mqadmin updateBrokerConfig`) can change while the
/// broker runs. Only those whose every reader looks here take effect at once, so only they
/// are accepted; the rest of [`BrokerConfig`] is fixed from start to stop.
#[derive(Debug)]
pub struct RuntimeSettings {
    /// `brokerPermission` (perm bits: 2 write, 4 read, 6 both).
    broker_permission: AtomicI32,
}

impl RuntimeSettings {
    /// The settings as `config` starts them.
    pub fn new(config: &BrokerConfig) -> Self {
        Self { broker_permission: AtomicI32::new(config.broker_permission) }
    }

    /// The current `brokerPermission`.
    pub fn broker_permission(&self) -> i32 {
        self.broker_permission.load(Ordering::Relaxed)
    }
}

/// The configuration GET_BROKER_CONFIG shows: [`config_properties`] with the settings an
/// admin changed at runtime in place of their start values, and in controller mode the id the
/// broker registers under now (0 as master, its controller id otherwise), as Java's broker
/// rewrites `brokerId` at each role change.
pub fn effective_config_properties(state: &BrokerState) -> Vec<(&'static str, String)> {
    let mut entries = config_properties(&state.config);
    for (key, value) in &mut entries {
        match *key {
            "brokerPermission" => *value = state.broker_permission().to_string(),
            "brokerId" if state.replication.is_controller_mode() => {
                *value = state.replication.registered_id().to_string()
            }
            _ => {}
        }
    }
    entries
}

/// UPDATE_BROKER_CONFIG: applies `key=value` properties to the running broker. All are checked
/// before any is applied: a black-listed key is refused with NO_PERMISSION (as Java does), a
/// key Apogee cannot change while running or an unusable value with SYSTEM_ERROR naming it.
/// A new `brokerPermission` is registered with the NameServers at once (with a new data
/// version, so they narrow the topics' permissions), as Java's broker does. Changes last until
/// the broker stops; they are not written back to its config file.
pub async fn update_config(state: &BrokerState, properties: &BTreeMap<String, String>) -> CoreResult<()> {
    if properties.keys().any(|key| CONFIG_BLACK_LIST.contains(&key.as_str())) {
        return Err(Error::new(
            apogee_remoting::response_code::NO_PERMISSION,
            "Can not update config in black list.",
        ));
    }
    let mut permission = None;
    for (key, value) in properties {
        match key.as_str() {
            "brokerPermission" => {
                let bits = value.trim().parse::<i32>().ok().filter(|bits| (0..=7).contains(bits));
                let bits = bits.ok_or_else(|| {
                    Error::system(format!(
                        "brokerPermission {value:?} is not a permission (0..=7, 6 = read-write)"
                    ))
                })?;
                permission = Some(bits);
            }
            other => {
                return Err(Error::system(format!(
                    "{other} cannot be changed while the broker runs (changeable: brokerPermission); \
                     set it in the broker's config file and restart"
                )))
            }
        }
    }
    if let Some(bits) = permission {
        let old = state.runtime.broker_permission.swap(bits, Ordering::Relaxed);
        if old != bits {
            tracing::warn!(old, new = bits, "brokerPermission changed by an admin");
            state.topics.bump_data_version();
            crate::register::register_all(state).await;
        }
    }
    Ok(())
}

/// The delay levels' progress, as `delayOffset.json` holds it.
pub fn delay_offsets(state: &BrokerState) -> CoreResult<Vec<u8>> {
    state.schedule.encode().map_err(|error| Error::system(error.to_string()))
}

/// The committed consumer offsets as `consumerOffset.json` (GET_ALL_CONSUMER_OFFSET): what
/// slaves copy.
pub fn consumer_offsets(state: &BrokerState) -> CoreResult<Vec<u8>> {
    state.offsets.encode().map_err(|error| Error::system(error.to_string()))
}

/// Deletes expired commit-log files now, whatever `deleteWhen` says.
pub async fn delete_expired_commit_log(state: &Arc<BrokerState>) -> CoreResult<()> {
    tracing::warn!("deleting expired commit-log files on request");
    blocking(state, |state| state.store.run_retention()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_number_formats() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(0.25), "0.25");
        assert_eq!(java_double(-1.0), "-1.0");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
