//! Delay levels (behaviour spec §5.1): a message stored with a `DELAY` level waits in
//! `SCHEDULE_TOPIC_XXXX`, queue `level − 1`, until its delivery time, and is then stored again
//! under the topic and queue it was meant for (`REAL_TOPIC`, `REAL_QID`). Consumer retries
//! (CONSUMER_SEND_MSG_BACK) travel the same way.
//!
//! The store writes each schedule-topic entry's delivery time (store time + the level's delay)
//! as its consume-queue tag code, so the service only walks each level's queue in order from
//! where it stopped. How far each level got is kept in `config/delayOffset.json`, Java's
//! `{"dataVersion":{...},"offsetTable":{1:5,2:0}}`, so a restarted broker neither loses nor
//! repeats deliveries (a crash between a delivery and the next persist repeats at most the
//! deliveries of one `flushDelayOffsetInterval`, as in Java).
//!
//! Reads touch the mapped commit log, so each pass reads on a blocking thread and stores the
//! due messages from async code; work per pass is bounded so one busy level starves neither
//! the others nor shutdown.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use apogee_common::time::now_ms;
use apogee_common::topic::{SCHEDULE_TOPIC, TRANS_HALF_TOPIC};
use apogee_common::DataVersion;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_store::dispatch::DelayLevels;
use apogee_store::{GetMessageStatus, MessageFilter, MessageStore};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::message::{self, InnerMessage};
use crate::{BrokerConfig, BrokerState};

/// Name of the progress file in the config directory (Java's name).
pub const DELAY_OFFSET_FILE: &str = "delayOffset.json";

/// Longest sleep between two passes (ms): a message that arrives while the service sleeps is
/// delivered at most this late after its due time (Java re-checks every 100 ms too).
const MAX_IDLE_MS: u64 = 100;
/// Wait before retrying an entry whose delivery failed (ms), as Java does.
const RETRY_AFTER_FAILURE_MS: u64 = 100;
/// Wait after a pass that could not run at all (ms), as Java's 10 s error back-off.
const PAUSE_AFTER_ERROR_MS: u64 = 10_000;
/// Most messages delivered per level in one pass.
const MAX_DELIVERIES_PER_LEVEL: usize = 256;
/// Most store reads per level in one pass (bounds the scan over removed or filler entries).
const MAX_READS_PER_LEVEL: usize = 64;
/// Messages asked for per store read.
const READ_BATCH_MESSAGES: u32 = 32;
/// Bytes asked for per store read (the first message is returned even if larger).
const READ_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Shortest persist period (ms), whatever `flushDelayOffsetInterval` says.
const MIN_PERSIST_INTERVAL_MS: u64 = 100;

/// `delayOffset.json` (Java `DelayOffsetSerializeWrapper`): delay level → next queue offset
/// to deliver, with the version of the table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DelayOffsetFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_version: Option<DataVersion>,
    offset_table: BTreeMap<i32, i64>,
}

/// What the service knows of each level's progress.
#[derive(Debug)]
struct Progress {
    /// Delay level → next queue offset to deliver.
    offsets: BTreeMap<i32, i64>,
    /// Bumped whenever an offset moves.
    data_version: DataVersion,
    /// Offsets moved since the last persist.
    dirty: bool,
}

/// Delivery progress per delay level (Java `ScheduleMessageService`), shared by the delivery
/// task, the send-back handler (which needs the levels) and the runtime statistics.
#[derive(Debug)]
pub struct ScheduleMessageService {
    levels: DelayLevels,
    path: PathBuf,
    progress: Mutex<Progress>,
    /// Serializes writers of the file (the periodic task and shutdown).
    writing: Mutex<()>,
}

impl ScheduleMessageService {
    /// Parses `messageDelayLevel` and loads `config/delayOffset.json` (falling back to its
    /// `.bak` copy when the file is missing or unreadable, as Java does).
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        let levels = DelayLevels::parse(&config.store.message_delay_level)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let path = config.config_dir().join(DELAY_OFFSET_FILE);
        let file = read_progress(&path)?;
        let progress = Progress {
            offsets: file.offset_table,
            data_version: file.data_version.unwrap_or_else(DataVersion::new),
            dirty: false,
        };
        Ok(Self { levels, path, progress: Mutex::new(progress), writing: Mutex::new(()) })
    }

    /// Writes the progress to `config/delayOffset.json` (atomically, keeping a `.bak`).
    pub fn persist(&self) -> io::Result<()> {
        let _writing = self.writing.lock();
        let bytes = {
            let mut progress = self.progress.lock();
            let file = DelayOffsetFile {
                data_version: Some(progress.data_version),
                offset_table: progress.offsets.clone(),
            };
            progress.dirty = false;
            fastjson::to_vec(&file, Dialect::Fastjson).map_err(io::Error::other)?
        };
        let written = apogee_common::fs::write_atomically(&self.path, &bytes);
        if written.is_err() {
            // Try again at the next period.
            self.progress.lock().dirty = true;
        }
        written
    }

    /// The progress in the layout of `delayOffset.json`: the body of GET_ALL_DELAY_OFFSET,
    /// which slaves and admin tools read.
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let progress = self.progress.lock();
        let file = DelayOffsetFile {
            data_version: Some(progress.data_version),
            offset_table: progress.offsets.clone(),
        };
        drop(progress);
        fastjson::to_vec(&file, Dialect::Fastjson).map_err(io::Error::other)
    }

    /// Takes the master's delay progress (the body of its GET_ALL_DELAY_OFFSET) whole, as a
    /// slave does; it is persisted with the next write.
    pub fn replace_from_master(&self, body: &[u8]) -> Result<(), String> {
        let file: DelayOffsetFile = fastjson::from_slice(body).map_err(|error| error.to_string())?;
        let mut progress = self.progress.lock();
        if progress.offsets != file.offset_table {
            progress.offsets = file.offset_table;
            progress.dirty = true;
        }
        if let Some(version) = file.data_version {
            progress.data_version = version;
        }
        Ok(())
    }

    /// Persists only when an offset moved since the last write.
    fn persist_if_changed(&self) -> io::Result<()> {
        if self.progress.lock().dirty {
            self.persist()
        } else {
            Ok(())
        }
    }

    /// The delay levels (`messageDelayLevel`).
    pub fn delay_levels(&self) -> &DelayLevels {
        &self.levels
    }

    /// The highest delay level; higher levels are clamped to it.
    pub fn max_level(&self) -> i32 {
        self.levels.max_level()
    }

    /// Where `level`'s delivery stands: the next queue offset of `SCHEDULE_TOPIC_XXXX` queue
    /// `level − 1` to deliver, if the level was ever used.
    pub fn offset(&self, level: i32) -> Option<i64> {
        self.progress.lock().offsets.get(&level).copied()
    }

    /// Every level's progress (runtime statistics, `scheduleMessageOffset_<level>`).
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.progress.lock().offsets.clone()
    }

    fn set_offset(&self, level: i32, offset: i64) {
        let mut progress = self.progress.lock();
        // Levels never used stay out of the table (as in Java) until they move past 0.
        let unchanged = progress.offsets.get(&level).copied().unwrap_or(0) == offset;
        if !unchanged {
            progress.offsets.insert(level, offset);
            progress.data_version.next_version();
            progress.dirty = true;
        }
    }

    /// Moves saved offsets back inside their queue's stored range (Java
    /// `correctDelayOffset`): the store may have lost or aged out entries since the save.
    fn correct_offsets(&self, store: &MessageStore) {
        for (level, offset) in self.offsets() {
            if level < 1 || level > self.max_level() {
                continue;
            }
            let queue_id = level - 1;
            let (min, max) =
                (store.min_offset(SCHEDULE_TOPIC, queue_id), store.max_offset(SCHEDULE_TOPIC, queue_id));
            let corrected = offset.clamp(min, max.max(min));
            if corrected != offset {
                tracing::warn!(
                    level,
                    offset,
                    corrected,
                    min,
                    max,
                    "delay offset outside its queue; corrected"
                );
                self.set_offset(level, corrected);
            }
        }
    }
}

/// Reads the progress file, or its backup; neither present means nothing delivered yet.
fn read_progress(path: &Path) -> io::Result<DelayOffsetFile> {
    apogee_common::fs::read_state_file(path, |bytes| {
        fastjson::from_slice(bytes).map_err(|error| error.to_string())
    })
    .map(Option::unwrap_or_default)
}

/// Redirects a message with delay level `level` into the schedule topic, as Java's put hook
/// does for every non-transactional or committed message carrying `DELAY`: the level is
/// clamped to `max_level` (and written back to `DELAY`), the intended topic and queue are kept
/// in `REAL_TOPIC` / `REAL_QID`, timer properties are dropped (the level wins), and the message
/// goes to `SCHEDULE_TOPIC_XXXX` queue `level − 1`. Levels ≤ 0 (or no levels configured)
/// leave the message as it is.
pub fn redirect_to_schedule_topic(message: &mut InnerMessage, level: i32, max_level: i32) {
    redirect_fields_to_schedule_topic(
        &mut message.topic,
        &mut message.queue_id,
        &mut message.properties,
        level,
        max_level,
    );
}

/// [`redirect_to_schedule_topic`] on the parts of a message, for callers (the send path) that
/// hold them separately.
pub fn redirect_fields_to_schedule_topic(
    topic: &mut String,
    queue_id: &mut i32,
    properties: &mut Properties,
    level: i32,
    max_level: i32,
) {
    if level <= 0 || max_level <= 0 {
        return;
    }
    let level = level.min(max_level);
    properties.insert(property::DELAY, level.to_string());
    properties.remove(property::TIMER_DELIVER_MS);
    properties.remove(property::TIMER_DELAY_SEC);
    properties.remove(property::TIMER_DELAY_MS);
    properties.insert(property::REAL_TOPIC, topic.as_str());
    properties.insert(property::REAL_QID, queue_id.to_string());
    *topic = SCHEDULE_TOPIC.to_owned();
    *queue_id = level - 1;
}

/// Delivers due messages of every level until the broker stops, persisting the progress every
/// `flushDelayOffsetInterval`.
pub async fn run(state: Arc<BrokerState>) {
    let mut stopping = state.stopping.clone();
    state.schedule.correct_offsets(&state.store);
    let persist_every =
        Duration::from_millis(state.config.flush_delay_offset_interval_ms.max(MIN_PERSIST_INTERVAL_MS));
    let mut last_persist = Instant::now();
    loop {
        if *stopping.borrow() {
            return;
        }
        // A controller-mode broker that lost mastership pauses (its store refuses writes).
        let pause = if state.replication.is_master() {
            deliver_pass(&state).await
        } else {
            Duration::from_millis(crate::replication::ROLE_POLL_MS)
        };
        if last_persist.elapsed() >= persist_every {
            last_persist = Instant::now();
            let owner = Arc::clone(&state);
            match tokio::task::spawn_blocking(move || owner.schedule.persist_if_changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "delay offsets not persisted"),
                Err(error) => tracing::error!(%error, "delay offset writer failed"),
            }
        }
        if pause.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// One due message of a level: its queue offset and what to store (`None` when the record
/// cannot be delivered and is skipped).
#[derive(Debug)]
struct Due {
    queue_offset: i64,
    message: Option<InnerMessage>,
}

/// What one pass found in one level's queue.
#[derive(Debug)]
struct LevelScan {
    level: i32,
    /// Due messages in queue order.
    due: Vec<Due>,
    /// The level's offset once every due message is delivered.
    end: i64,
    /// Delivery time of the first message not yet due.
    next_due_ms: Option<i64>,
    /// The pass stopped at its bound with more messages possibly due.
    more: bool,
}

/// Reads every level, delivers what is due and says how long to wait before the next pass.
async fn deliver_pass(state: &Arc<BrokerState>) -> Duration {
    let owner = Arc::clone(state);
    let scans = match tokio::task::spawn_blocking(move || scan_levels(&owner)).await {
        Ok(scans) => scans,
        Err(error) => {
            tracing::error!(%error, "delay level scan failed");
            return Duration::from_millis(PAUSE_AFTER_ERROR_MS);
        }
    };
    let mut pause_ms = MAX_IDLE_MS;
    for scan in scans {
        let mut failed = false;
        for due in scan.due {
            if *state.stopping.borrow() {
                return Duration::ZERO;
            }
            if let Some(message) = &due.message {
                let result = message::put_message(state, message, false).await;
                if !result.status.is_stored() {
                    tracing::warn!(
                        level = scan.level,
                        queue_offset = due.queue_offset,
                        topic = %message.topic,
                        status = ?result.status,
                        "delayed message not delivered; retrying"
                    );
                    state.schedule.set_offset(scan.level, due.queue_offset);
                    failed = true;
                    break;
                }
            }
            state.schedule.set_offset(scan.level, due.queue_offset + 1);
        }
        if failed {
            pause_ms = pause_ms.min(RETRY_AFTER_FAILURE_MS);
            continue;
        }
        state.schedule.set_offset(scan.level, scan.end);
        if scan.more {
            pause_ms = 0;
        }
        if let Some(next_due) = scan.next_due_ms {
            let wait = u64::try_from(next_due.saturating_sub(now_ms())).unwrap_or(0);
            pause_ms = pause_ms.min(wait);
        }
    }
    Duration::from_millis(pause_ms)
}

/// Scans every level's queue from its saved offset (on a blocking thread: reads touch the
/// mapped commit log).
fn scan_levels(state: &BrokerState) -> Vec<LevelScan> {
    let now = now_ms();
    (1..=state.schedule.max_level())
        .map(|level| {
            let saved = state.schedule.offset(level).unwrap_or(0);
            scan_level(state, level, saved, now)
        })
        .collect()
}

/// A filter that keeps everything and records, for every record it is shown, the tag code of
/// its queue entry: for the schedule topic, the delivery time the store computed.
#[derive(Debug, Default)]
struct DeliveryTimes {
    pending: Cell<i64>,
    times: RefCell<Vec<i64>>,
}

impl MessageFilter for DeliveryTimes {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        self.pending.set(tags_code);
        true
    }

    fn matches_record(&self, _record: &[u8]) -> bool {
        self.times.borrow_mut().push(self.pending.get());
        true
    }
}

/// Walks one level's queue from `offset`, collecting due messages until one is not yet due,
/// the queue ends or the pass's bound is reached.
fn scan_level(state: &BrokerState, level: i32, mut offset: i64, now: i64) -> LevelScan {
    let queue_id = level - 1;
    let delay_ms = state.schedule.levels.delay_ms(level);
    let mut scan = LevelScan { level, due: Vec::new(), end: offset, next_due_ms: None, more: false };
    for _ in 0..MAX_READS_PER_LEVEL {
        let times = DeliveryTimes::default();
        let result = state.store.get_messages(
            SCHEDULE_TOPIC,
            queue_id,
            offset,
            READ_BATCH_MESSAGES,
            READ_BATCH_BYTES,
            &times,
        );
        match result.status {
            GetMessageStatus::Found => {}
            GetMessageStatus::NoMatchedLogicQueue
            | GetMessageStatus::NoMessageInQueue
            | GetMessageStatus::OffsetOverflowOne => return scan,
            GetMessageStatus::OffsetTooSmall
            | GetMessageStatus::OffsetOverflowBadly
            | GetMessageStatus::OffsetFoundNull
            | GetMessageStatus::NoMatchedMessage
            | GetMessageStatus::MessageWasRemoving => {
                // Nothing deliverable here (entries gone, or the offset was out of range):
                // move to where the store says reading continues.
                if result.next_begin_offset == offset {
                    return scan;
                }
                if result.status != GetMessageStatus::NoMatchedMessage {
                    tracing::warn!(level, offset, next = result.next_begin_offset, status = ?result.status, "delay queue skipped ahead");
                }
                offset = result.next_begin_offset;
                scan.end = offset;
                if result.status == GetMessageStatus::OffsetOverflowBadly {
                    return scan;
                }
                continue;
            }
        }
        let times = times.times.into_inner();
        for ((record, queue_offset), tags_code) in
            result.messages.iter().zip(&result.queue_offsets).zip(times)
        {
            // A delivery time further away than the level's delay means the clock moved back
            // since the message was stored: deliver now rather than wait (as Java does).
            let deliver_at = if tags_code > now.saturating_add(delay_ms) { now } else { tags_code };
            if deliver_at > now {
                scan.end = *queue_offset;
                scan.next_due_ms = Some(deliver_at);
                return scan;
            }
            scan.due.push(Due { queue_offset: *queue_offset, message: time_up(record.as_slice(), level) });
            if scan.due.len() >= MAX_DELIVERIES_PER_LEVEL {
                scan.end = *queue_offset + 1;
                scan.more = true;
                return scan;
            }
        }
        if result.next_begin_offset <= offset {
            return scan;
        }
        offset = result.next_begin_offset;
        scan.end = offset;
    }
    scan.more = true;
    scan
}

/// The message to store for a due schedule-topic record (Java `messageTimeUp`): everything of
/// the record (body, flag, properties incl. `UNIQ_KEY`, sysflag, born time and host,
/// reconsume times) under `REAL_TOPIC` / `REAL_QID`, without `DELAY` and the timer
/// properties, not waiting for a flush. `None` for records that cannot be delivered.
fn time_up(record: &[u8], level: i32) -> Option<InnerMessage> {
    let view = match RecordView::parse(record, false) {
        Ok(view) => view,
        Err(error) => {
            tracing::error!(level, %error, "unreadable delayed record skipped");
            return None;
        }
    };
    let mut message = InnerMessage::from_ext(&view.to_message_ext());
    let properties = &mut message.properties;
    properties.remove(property::DELAY);
    properties.remove(property::TIMER_DELIVER_MS);
    properties.remove(property::TIMER_DELAY_SEC);
    properties.insert(property::WAIT, "false");
    let topic = properties.get(property::REAL_TOPIC).map(str::to_owned);
    let queue_id = properties.get(property::REAL_QID).and_then(|queue| queue.trim().parse::<i32>().ok());
    let (Some(topic), Some(queue_id)) = (topic, queue_id) else {
        tracing::error!(level, "delayed record without REAL_TOPIC/REAL_QID skipped");
        return None;
    };
    if topic == TRANS_HALF_TOPIC {
        tracing::error!(level, "delayed record whose real topic is the half topic discarded");
        return None;
    }
    message.topic = topic;
    message.queue_id = queue_id;
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_file_uses_bare_numeric_keys_and_reads_java_output() {
        let file = DelayOffsetFile { data_version: None, offset_table: [(1, 5), (2, 0)].into() };
        let bytes = fastjson::to_vec(&file, Dialect::Fastjson).unwrap();
        assert_eq!(bytes, br#"{"offsetTable":{1:5,2:0}}"#);
        let java = b"{\n\t\"dataVersion\":{\n\t\t\"counter\":3,\n\t\t\"stateVersion\":0,\n\t\t\"timestamp\":1700000000000\n\t},\n\t\"offsetTable\":{3:12,1:7\n\t}\n}";
        let read: DelayOffsetFile = fastjson::from_slice(java).unwrap();
        assert_eq!(read.offset_table, [(1, 7), (3, 12)].into());
        assert_eq!(read.data_version.map(|version| version.counter), Some(3));
    }

    #[test]
    fn load_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::stored_under(dir.path());
        let service = ScheduleMessageService::load(&config).unwrap();
        assert_eq!(service.max_level(), 18);
        assert_eq!(service.offset(1), None);
        service.set_offset(1, 4);
        service.set_offset(3, 9);
        service.persist().unwrap();
        let text = std::fs::read_to_string(config.config_dir().join(DELAY_OFFSET_FILE)).unwrap();
        assert!(text.contains(r#""offsetTable":{1:4,3:9}"#), "{text}");
        let reloaded = ScheduleMessageService::load(&config).unwrap();
        assert_eq!(reloaded.offsets(), [(1, 4), (3, 9)].into());
        // A broken main file falls back to the backup.
        service.set_offset(1, 5);
        service.persist().unwrap();
        std::fs::write(config.config_dir().join(DELAY_OFFSET_FILE), b"{broken").unwrap();
        assert_eq!(ScheduleMessageService::load(&config).unwrap().offset(1), Some(4));
    }

    #[test]
    fn redirect_keeps_the_real_destination_and_clamps_the_level() {
        let mut message = InnerMessage {
            topic: "T".into(),
            queue_id: 3,
            flag: 0,
            body: bytes::Bytes::from_static(b"x"),
            properties: Default::default(),
            sys_flag: 0,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        message.properties.insert(property::TIMER_DELAY_SEC, "5");
        redirect_to_schedule_topic(&mut message, 40, 18);
        assert_eq!((message.topic.as_str(), message.queue_id), (SCHEDULE_TOPIC, 17));
        assert_eq!(message.properties.get(property::DELAY), Some("18"));
        assert_eq!(message.properties.get(property::REAL_TOPIC), Some("T"));
        assert_eq!(message.properties.get(property::REAL_QID), Some("3"));
        assert_eq!(message.properties.get(property::TIMER_DELAY_SEC), None);

        let record = message.encode("127.0.0.1:10911".parse().unwrap()).unwrap();
        let delivered = time_up(&record, 18).unwrap();
        assert_eq!((delivered.topic.as_str(), delivered.queue_id), ("T", 3));
        assert_eq!(delivered.properties.get(property::DELAY), None);
        assert_eq!(delivered.properties.get(property::WAIT), Some("false"));
    }
}
