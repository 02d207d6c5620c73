//! The timer store's state: the log, the wheel and the checkpoint, and the two positions the
//! pipeline moves (storage spec §9.3): the timer-topic queue offset enqueued up to, and the
//! read time, the due time of the next slot to deliver. Owned by the timer service thread;
//! it never touches the message store itself (callers hand in what it needs), so it is
//! tested on its own.
//!
//! Memory does not grow with the timers waiting: each is a 52-byte unit in the mapped log,
//! linked into its slot's list. Delivering a slot walks its list in bounded chunks; the only
//! per-slot memory is the set of unique keys recalled in that slot.
//!
//! Delivery progress inside a slot is kept in the wheel: the slot is marked
//! [`CONSUMED`](super::wheel::CONSUMED) and its `lastPos` moved to the first unit not yet
//! delivered after each chunk. A clean restart resumes exactly there; after a kill -9 the
//! chunk whose puts were in flight is delivered again (at least once).

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::{Checkpoint, CheckpointFile};
use super::config::TimerConfig;
use super::log::{magic, TimerLog, Unit, UnitError, UNIT_SIZE_BYTES};
use super::wheel::{Slot, TimerWheel, CONSUMED, SLOTS_TOTAL};

/// Slots left blank behind the read time after a long stop (Java `TIMER_BLANK_SLOTS`).
const BLANK_SLOTS: i64 = 60;
/// Most empty slots skipped in one [`Engine::start_due_slot`] call.
const MAX_EMPTY_SLOTS_PER_CALL: usize = 100_000;

/// A timer-topic message to place.
#[derive(Debug, Clone, Copy)]
pub struct EnqueueItem<'a> {
    /// Commit-log offset of its record.
    pub commit_log_offset: i64,
    /// Size of its record.
    pub size_bytes: i32,
    /// `TIMER_OUT_MS`: the rounded due time.
    pub deliver_ms: i64,
    /// Whether it is a delete marker (`TIMER_DEL_UNIQKEY`).
    pub delete: bool,
    /// `REAL_TOPIC`, for the unit's topic hash.
    pub real_topic: &'a str,
}

/// Where an enqueued message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A unit at this log position.
    InWheel(u64),
    /// Its slot already fired (or is firing): the caller delivers it now.
    DueNow,
}

/// A chunk of the slot being delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Due time of the slot.
    pub slot_time_ms: i64,
    /// Units in list order (newest first), with their positions.
    pub units: Vec<(i64, Unit)>,
    /// Where the list continues after this chunk, −1 at its end.
    pub next_pos: i64,
}

/// The slot being delivered.
#[derive(Debug)]
struct Cursor {
    slot_time_ms: i64,
    next_pos: i64,
    /// `topic+uniqKey` of every delete marker of the slot.
    deletes: HashSet<String>,
}

/// What recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// End of the valid units.
    pub log_end: u64,
    /// Units re-linked into their slot.
    pub revised_units: u64,
    /// Read time restarted at.
    pub read_time_ms: i64,
    /// Queue offset restarted at.
    pub queue_offset: i64,
}

/// The timer store.
#[derive(Debug)]
pub struct Engine {
    log: TimerLog,
    wheel: Arc<TimerWheel>,
    checkpoint_file: CheckpointFile,
    saved: Option<Checkpoint>,
    precision_ms: i64,
    roll_window_slots: i64,
    read_time_ms: i64,
    queue_offset: i64,
    cursor: Option<Cursor>,
    counter: i64,
}

impl Engine {
    /// Opens the log under `<root>/timerlog`, the checkpoint `<root>/config/timercheck`, with
    /// the already open `wheel`. [`Self::recover`] must run before anything else.
    pub fn open(root: &Path, config: &TimerConfig, wheel: Arc<TimerWheel>) -> io::Result<Self> {
        assert_eq!(wheel.precision_ms(), config.precision_ms, "wheel opened with another precision");
        let log = TimerLog::open(&root.join("timerlog"), config.log_file_size_bytes)?;
        let (checkpoint_file, saved) = CheckpointFile::open(&root.join("config").join("timercheck"))?;
        Ok(Self {
            log,
            wheel,
            checkpoint_file,
            saved,
            precision_ms: config.precision_ms,
            roll_window_slots: config.effective_roll_window_slots(),
            read_time_ms: 0,
            queue_offset: 0,
            cursor: None,
            counter: saved.map_or(0, |saved| saved.counter),
        })
    }

    /// The due time `time_ms` floored to the precision: its slot's time.
    pub fn floor(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.precision_ms) * self.precision_ms
    }

    /// Recovery (storage spec §9.3): finds the end of the valid units from a file before the
    /// last flushed position, links units whose slot update was lost, restarts the read time
    /// at the checkpoint's (no earlier than a wheel turn ago) and the queue offset after the
    /// last unit's message (`queue_offset_of` reads a timer-topic record's queue offset),
    /// kept inside `queue_bounds`. Writes a checkpoint at once.
    pub fn recover(
        &mut self,
        now_ms: i64,
        queue_bounds: (i64, i64),
        queue_offset_of: impl Fn(i64) -> Option<i64>,
    ) -> io::Result<Recovered> {
        let file_size = self.log.file_size_bytes();
        let saved = self.saved;
        let earliest_read = self.floor(now_ms) - (SLOTS_TOTAL - BLANK_SLOTS) * self.precision_ms;
        self.read_time_ms = match saved {
            Some(saved) => self.floor(saved.last_read_time_ms).max(earliest_read),
            None if self.log.file_starts().is_empty() => self.floor(now_ms),
            None => earliest_read,
        };
        let scan_from = match saved {
            Some(saved) => {
                let flushed = u64::try_from(saved.last_timer_log_flush_pos).unwrap_or(0);
                (flushed - flushed % file_size).saturating_sub(file_size).max(self.log.min_pos())
            }
            None => self.log.min_pos(),
        };
        let mut pos = scan_from;
        let mut last_unit = None;
        let mut revised_units = 0u64;
        let mut torn = false;
        while let Some(bytes) = self.log.bytes_at(pos) {
            match Unit::decode(bytes) {
                Ok(unit) => {
                    if self.revise(pos, &unit) {
                        revised_units += 1;
                    }
                    last_unit = Some(unit);
                    pos += UNIT_SIZE_BYTES as u64;
                }
                Err(UnitError::Blank) | Err(UnitError::Short(_)) => pos = pos - pos % file_size + file_size,
                Err(UnitError::Empty) => break,
                Err(error) => {
                    tracing::warn!(pos, %error, "timer log ends in a torn or corrupt unit; cut there");
                    torn = true;
                    break;
                }
            }
        }
        self.log.set_write_pos(pos, torn)?;
        revised_units += self.relink_cut_slots(pos);
        let mut queue_offset = saved.map_or(0, |saved| saved.last_timer_queue_offset);
        if let Some(after_last) = last_unit.and_then(|unit| queue_offset_of(unit.commit_log_offset)) {
            queue_offset = queue_offset.max(after_last + 1);
        }
        let (min, max) = queue_bounds;
        self.queue_offset = queue_offset.clamp(min, max.max(min));
        self.flush(now_ms)?;
        Ok(Recovered {
            log_end: pos,
            revised_units,
            read_time_ms: self.read_time_ms,
            queue_offset: self.queue_offset,
        })
    }

    /// Slots whose list starts past the log's end (their newest units were cut or lost) are
    /// rebuilt from the units still there, in log order, as Java's `checkPhyPos` recheck does.
    /// Reads one wheel turn of slots; returns the units relinked.
    fn relink_cut_slots(&mut self, end: u64) -> u64 {
        let end = end as i64;
        let mut cut = HashSet::new();
        let mut scan_from = end;
        for step in 0..SLOTS_TOTAL {
            let time = self.read_time_ms + step * self.precision_ms;
            let slot = self.wheel.slot(time);
            if slot.is_empty() || slot.last_pos < end {
                continue;
            }
            cut.insert(time);
            if (0..end).contains(&slot.first_pos) {
                scan_from = scan_from.min(slot.first_pos);
            }
            self.wheel.put(&Slot { first_pos: -1, last_pos: -1, num: 0, ..slot });
        }
        if cut.is_empty() {
            return 0;
        }
        tracing::warn!(slots = cut.len(), end, "timer slots pointed past the timer log's end; relinked");
        let mut relinked = 0;
        let mut pos = u64::try_from(scan_from).unwrap_or(0).max(self.log.min_pos());
        let file_size = self.log.file_size_bytes();
        while let Some(bytes) = self.log.bytes_at(pos) {
            match Unit::decode(bytes) {
                Ok(unit) => {
                    let time = self.floor(unit.slot_time_ms());
                    if cut.contains(&time) {
                        let slot = self.wheel.slot(time);
                        let count = if unit.is_delete() { -1 } else { 1 };
                        self.wheel.put(&Slot {
                            first_pos: if slot.first_pos < 0 { pos as i64 } else { slot.first_pos },
                            last_pos: pos as i64,
                            num: slot.num.saturating_add(count),
                            ..slot
                        });
                        relinked += 1;
                    }
                    pos += UNIT_SIZE_BYTES as u64;
                }
                Err(UnitError::Blank) | Err(UnitError::Short(_)) => pos = pos - pos % file_size + file_size,
                Err(_) => break,
            }
        }
        relinked
    }

    /// Links the unit at `pos` into its slot if the slot does not know it (its update was
    /// lost with a crash); true when the slot changed.
    fn revise(&self, pos: u64, unit: &Unit) -> bool {
        let slot_time = self.floor(unit.slot_time_ms());
        if slot_time < self.read_time_ms {
            return false;
        }
        let pos = pos as i64;
        let slot = self.wheel.slot(slot_time);
        let count = if unit.is_delete() { -1 } else { 1 };
        if slot.is_empty() {
            self.wheel.put(&Slot { time_ms: slot_time, first_pos: pos, last_pos: pos, num: count, magic: 0 });
            return true;
        }
        // In a slot being delivered, units above `lastPos` were delivered.
        if slot.is_consumed() || pos <= slot.last_pos {
            return false;
        }
        self.wheel.put(&Slot { last_pos: pos, num: slot.num.saturating_add(count), ..slot });
        true
    }

    /// Due time of the next slot to deliver.
    pub fn read_time_ms(&self) -> i64 {
        self.read_time_ms
    }

    /// The next timer-topic queue offset to enqueue.
    pub fn queue_offset(&self) -> i64 {
        self.queue_offset
    }

    /// Records that every timer-topic entry below `offset` is placed or delivered.
    pub fn set_queue_offset(&mut self, offset: i64) {
        debug_assert!(offset >= self.queue_offset, "the timer queue offset never moves back");
        self.queue_offset = offset;
    }

    /// Log position units are appended at.
    pub fn log_write_pos(&self) -> u64 {
        self.log.write_pos()
    }

    /// Places a timer: a unit linked into its slot, or [`Placed::DueNow`] when that slot was
    /// delivered already or is being delivered. Timers beyond the roll window are parked at
    /// its edge (half of it when they are due less than a third of a window after it).
    pub fn enqueue(&mut self, item: &EnqueueItem<'_>, now_ms: i64) -> io::Result<Placed> {
        let write_time = self.floor(now_ms);
        let mut slot_time = self.floor(item.deliver_ms);
        let in_progress = self.cursor.as_ref().is_some_and(|cursor| cursor.slot_time_ms == slot_time);
        if slot_time < self.read_time_ms || in_progress || self.wheel.slot(slot_time).is_consumed() {
            return Ok(Placed::DueNow);
        }
        let mut unit_magic = magic::DEFAULT;
        let window_ms = self.roll_window_slots * self.precision_ms;
        if slot_time - write_time >= window_ms {
            unit_magic |= magic::ROLL;
            slot_time = if slot_time - write_time - window_ms < self.roll_window_slots / 3 * self.precision_ms
            {
                write_time + self.roll_window_slots / 2 * self.precision_ms
            } else {
                write_time + window_ms
            };
            // A clock that went back must not park a timer in a slot already delivered.
            slot_time = slot_time.max(self.read_time_ms + self.precision_ms);
        }
        if item.delete {
            unit_magic |= magic::DELETE;
        }
        let slot = self.wheel.slot(slot_time);
        let unit = Unit {
            prev_pos: slot.last_pos,
            magic: unit_magic,
            write_time_ms: write_time,
            delay_relative_ms: i32::try_from(slot_time - write_time).unwrap_or(i32::MAX),
            commit_log_offset: item.commit_log_offset,
            size_bytes: item.size_bytes,
            topic_hash: apogee_common::hash::java_string_hash(item.real_topic),
        };
        debug_assert_eq!(unit.slot_time_ms(), slot_time, "a unit names its own slot");
        let pos = self.log.append(&unit)?;
        let count = if item.delete { -1 } else { 1 };
        self.wheel.put(&Slot {
            time_ms: slot_time,
            first_pos: if slot.is_empty() { pos as i64 } else { slot.first_pos },
            last_pos: pos as i64,
            num: if slot.is_empty() { count } else { slot.num.saturating_add(count) },
            magic: if slot.is_empty() { 0 } else { slot.magic },
        });
        Ok(Placed::InWheel(pos))
    }

    /// Makes sure a due slot is being delivered: skips empty slots up to `now_ms` (a bounded
    /// number per call) and starts the first due one that holds units, collecting its delete
    /// markers' keys through `delete_key_of`. True when a slot is being delivered.
    pub fn start_due_slot(
        &mut self,
        now_ms: i64,
        mut delete_key_of: impl FnMut(&Unit) -> Option<String>,
    ) -> bool {
        for _ in 0..MAX_EMPTY_SLOTS_PER_CALL {
            if self.cursor.is_some() {
                return true;
            }
            // Never early: a slot fires once its whole width has passed.
            if self.read_time_ms + self.precision_ms > now_ms {
                return false;
            }
            let slot_time = self.read_time_ms;
            let slot = self.wheel.slot(slot_time);
            if slot.is_empty() || slot.last_pos < 0 {
                self.read_time_ms += self.precision_ms;
                continue;
            }
            let mut deletes = HashSet::new();
            let mut pos = slot.last_pos;
            while let Some(unit) = self.chain_unit(pos, slot_time) {
                if unit.is_delete() && !unit.is_roll() {
                    if let Some(key) = delete_key_of(&unit) {
                        deletes.insert(key);
                    }
                }
                pos = unit.prev_pos;
            }
            self.wheel.put(&Slot { magic: slot.magic | CONSUMED, ..slot });
            self.cursor = Some(Cursor { slot_time_ms: slot_time, next_pos: slot.last_pos, deletes });
            return true;
        }
        self.cursor.is_some()
    }

    /// The unit at `pos` of the list of `slot_time`, or `None` at the list's end. A unit that
    /// cannot be read, belongs to another slot or points forward ends the list with a warning
    /// (so a corrupt log can neither panic nor loop).
    fn chain_unit(&self, pos: i64, slot_time: i64) -> Option<Unit> {
        if pos < 0 {
            return None;
        }
        let unit = match self.log.unit_at(pos) {
            None => {
                tracing::warn!(
                    pos,
                    slot_time,
                    "timer list points outside the timer log; rest of the slot lost"
                );
                return None;
            }
            Some(Err(error)) => {
                tracing::warn!(pos, slot_time, %error, "corrupt timer-log unit; rest of the slot skipped");
                return None;
            }
            Some(Ok(unit)) => unit,
        };
        if self.floor(unit.slot_time_ms()) != slot_time {
            tracing::warn!(
                pos,
                slot_time,
                unit_slot = unit.slot_time_ms(),
                "timer-log unit of another slot; rest of the slot skipped"
            );
            return None;
        }
        if unit.prev_pos >= pos {
            tracing::warn!(pos, prev = unit.prev_pos, "timer list points forward; cut");
            return Some(Unit { prev_pos: -1, ..unit });
        }
        Some(unit)
    }

    /// Up to `max_units` units of the slot being delivered, from where delivery stands.
    pub fn next_chunk(&self, max_units: usize) -> Option<Chunk> {
        let cursor = self.cursor.as_ref()?;
        let mut units = Vec::with_capacity(max_units.min(1024));
        let mut pos = cursor.next_pos;
        while units.len() < max_units {
            let Some(unit) = self.chain_unit(pos, cursor.slot_time_ms) else {
                pos = -1;
                break;
            };
            units.push((pos, unit));
            pos = unit.prev_pos;
        }
        Some(Chunk { slot_time_ms: cursor.slot_time_ms, units, next_pos: pos })
    }

    /// Whether the slot being delivered holds a delete marker for `key` (`topic+uniqKey`).
    pub fn is_deleted(&self, key: &str) -> bool {
        self.cursor.as_ref().is_some_and(|cursor| cursor.deletes.contains(key))
    }

    /// Records that `chunk` was delivered (`removed` timers left the slot): the slot's list
    /// now starts at `chunk.next_pos`; at its end the read time moves to the next slot.
    pub fn chunk_done(&mut self, chunk: &Chunk, removed: i32) {
        let Some(cursor) = self.cursor.as_mut() else { return };
        assert_eq!(cursor.slot_time_ms, chunk.slot_time_ms, "a chunk of another slot");
        cursor.next_pos = chunk.next_pos;
        let slot = self.wheel.slot(chunk.slot_time_ms);
        let base = if slot.is_empty() { Slot { time_ms: chunk.slot_time_ms, ..Slot::EMPTY } } else { slot };
        self.wheel.put(&Slot {
            last_pos: chunk.next_pos,
            num: base.num.saturating_sub(removed).max(0),
            magic: base.magic | CONSUMED,
            ..base
        });
        if chunk.next_pos < 0 {
            self.cursor = None;
            self.read_time_ms = chunk.slot_time_ms + self.precision_ms;
        }
    }

    /// Writes the log and the wheel to disk, then the checkpoint naming them.
    pub fn flush(&mut self, now_ms: i64) -> io::Result<()> {
        self.log.flush()?;
        self.wheel.flush()?;
        self.counter += 1;
        let checkpoint = Checkpoint {
            last_read_time_ms: self.read_time_ms,
            last_timer_log_flush_pos: i64::try_from(self.log.write_pos()).unwrap_or(i64::MAX),
            last_timer_queue_offset: self.queue_offset,
            master_timer_queue_offset: self.queue_offset,
            state_version: 0,
            timestamp_ms: now_ms,
            counter: self.counter,
        };
        self.checkpoint_file.write(&checkpoint)?;
        self.saved = Some(checkpoint);
        Ok(())
    }

    /// Removes timer-log files whose every unit's slot is behind the read time: a unit is due
    /// at most a roll window after it was written, and the next file's first unit was written
    /// after every unit of the file before.
    pub fn remove_expired_files(&mut self) -> io::Result<usize> {
        let horizon_ms = (self.roll_window_slots + 1) * self.precision_ms;
        let read_time = self.read_time_ms;
        let file_size = self.log.file_size_bytes();
        self.log.remove_expired(|log, start| match log.unit_at((start + file_size) as i64) {
            Some(Ok(next_first)) => next_first.write_time_ms.saturating_add(horizon_ms) < read_time,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn engine(dir: &Path, roll_window_slots: i64) -> Engine {
        let config = TimerConfig { roll_window_slots, log_file_size_bytes: 4096, ..TimerConfig::default() };
        let wheel = Arc::new(TimerWheel::open(&dir.join("timerwheel"), config.precision_ms).unwrap());
        Engine::open(dir, &config, wheel).unwrap()
    }

    /// An engine over an empty directory, recovered at [`NOW`] as a fresh broker's is.
    fn fresh_engine(dir: &Path, roll_window_slots: i64) -> Engine {
        let mut engine = engine(dir, roll_window_slots);
        engine.recover(NOW, (0, 0), |_| None).unwrap();
        engine
    }

    /// Enqueues, at [`NOW`], the messages at commit-log offsets `offsets`, all due at
    /// `deliver_ms`.
    fn enqueue_all(engine: &mut Engine, offsets: std::ops::RangeInclusive<i64>, deliver_ms: i64) {
        for offset in offsets {
            engine.enqueue(&item(offset, deliver_ms), NOW).unwrap();
        }
    }

    fn item(offset: i64, deliver_ms: i64) -> EnqueueItem<'static> {
        EnqueueItem { commit_log_offset: offset, size_bytes: 100, deliver_ms, delete: false, real_topic: "T" }
    }

    /// Every unit's commit-log offset delivered by draining due slots at `now`.
    fn drain(engine: &mut Engine, now: i64) -> Vec<i64> {
        let mut delivered = Vec::new();
        while engine.start_due_slot(now, |_| None) {
            let chunk = engine.next_chunk(2).unwrap();
            delivered.extend(chunk.units.iter().map(|(_, unit)| unit.commit_log_offset));
            engine.chunk_done(&chunk, chunk.units.len() as i32);
        }
        delivered
    }

    #[test]
    fn a_slot_fires_only_after_its_whole_width() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = fresh_engine(dir.path(), 2 * 86_400);
        assert_eq!(engine.read_time_ms(), NOW);
        for (offset, due) in [(1, NOW + 5_000), (2, NOW + 5_000), (3, NOW + 7_000), (4, NOW + 5_999)] {
            assert!(matches!(engine.enqueue(&item(offset, due), NOW).unwrap(), Placed::InWheel(_)));
        }
        assert_eq!(drain(&mut engine, NOW + 5_999), Vec::<i64>::new());
        // Newest first within the slot.
        assert_eq!(drain(&mut engine, NOW + 6_000), vec![4, 2, 1]);
        assert_eq!(engine.read_time_ms(), NOW + 6_000);
        assert_eq!(drain(&mut engine, NOW + 7_999), Vec::<i64>::new());
        assert_eq!(drain(&mut engine, NOW + 8_000), vec![3]);
        // A slot already delivered takes nothing more.
        assert_eq!(engine.enqueue(&item(5, NOW + 5_000), NOW + 8_000).unwrap(), Placed::DueNow);
    }

    #[test]
    fn far_timers_roll_to_the_window_edge() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = fresh_engine(dir.path(), 6);
        // 10 s away, window 6 s: parked at the edge (4 s left is not under a third).
        engine.enqueue(&item(1, NOW + 10_000), NOW).unwrap();
        // 7 s away: 1 s past the edge is under a third of the window: parked at half of it.
        engine.enqueue(&item(2, NOW + 7_000), NOW).unwrap();
        assert_eq!(drain(&mut engine, NOW + 4_000), vec![2]);
        let chunk_slot = engine.wheel.slot(NOW + 6_000);
        let unit = engine.log.unit_at(chunk_slot.first_pos).unwrap().unwrap();
        assert!(unit.is_roll());
        assert_eq!(unit.commit_log_offset, 1);
        assert_eq!(drain(&mut engine, NOW + 7_000), vec![1]);
    }

    #[test]
    fn restart_resumes_inside_a_slot_and_a_lost_slot_update_is_relinked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut engine = fresh_engine(dir.path(), 2 * 86_400);
            enqueue_all(&mut engine, 1..=5, NOW + 2_000);
            engine.set_queue_offset(5);
            assert!(engine.start_due_slot(NOW + 3_000, |_| None));
            let chunk = engine.next_chunk(2).unwrap();
            assert_eq!(
                chunk.units.iter().map(|(_, unit)| unit.commit_log_offset).collect::<Vec<_>>(),
                vec![5, 4]
            );
            engine.chunk_done(&chunk, 2);
            engine.flush(NOW + 3_000).unwrap();
            // A unit whose slot update is lost (as after a crash between the two writes).
            let unit = Unit {
                prev_pos: -1,
                magic: magic::DEFAULT,
                write_time_ms: NOW,
                delay_relative_ms: 9_000,
                commit_log_offset: 6,
                size_bytes: 100,
                topic_hash: 0,
            };
            engine.log.append(&unit).unwrap();
            engine.log.flush().unwrap();
        }
        let mut engine = engine(dir.path(), 2 * 86_400);
        let recovered = engine.recover(NOW + 3_000, (0, 7), Some).unwrap();
        assert_eq!(recovered.revised_units, 1);
        // After the last unit's message (queue offset 6 here).
        assert_eq!(recovered.queue_offset, 7);
        assert_eq!(drain(&mut engine, NOW + 3_000), vec![3, 2, 1]);
        assert_eq!(drain(&mut engine, NOW + 10_000), vec![6]);
    }

    #[test]
    fn a_corrupt_unit_ends_its_slot_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = fresh_engine(dir.path(), 2 * 86_400);
        enqueue_all(&mut engine, 1..=3, NOW + 1_000);
        // Damage the middle unit's magic.
        let file = &mut engine.log;
        let bytes = file.bytes_at(52).unwrap().to_vec();
        let mut broken = bytes.clone();
        broken[12..16].copy_from_slice(&0x40i32.to_be_bytes());
        assert!(Unit::decode(&broken).is_err());
        write_at(file, 52, &broken);
        assert_eq!(drain(&mut engine, NOW + 2_000), vec![3]);
        assert_eq!(engine.read_time_ms(), NOW + 2_000);
    }

    #[test]
    fn a_torn_tail_is_cut_and_its_slot_keeps_the_units_before_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut engine = fresh_engine(dir.path(), 2 * 86_400);
            enqueue_all(&mut engine, 1..=3, NOW + 2_000);
            // The third unit is torn: its size field is garbage.
            let mut torn = engine.log.bytes_at(104).unwrap().to_vec();
            torn[0..4].copy_from_slice(&9i32.to_be_bytes());
            write_at(&mut engine.log, 104, &torn);
            engine.log.flush().unwrap();
        }
        let mut engine = engine(dir.path(), 2 * 86_400);
        let recovered = engine.recover(NOW + 1_000, (0, 0), |_| None).unwrap();
        assert_eq!(recovered.log_end, 104);
        assert_eq!(engine.wheel.slot(NOW + 2_000).num, 2);
        // New units go where the torn one was.
        assert_eq!(engine.enqueue(&item(4, NOW + 2_000), NOW + 1_000).unwrap(), Placed::InWheel(104));
        assert_eq!(drain(&mut engine, NOW + 3_000), vec![4, 2, 1]);
    }

    fn write_at(log: &mut TimerLog, pos: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let path = log.dir_for_tests().join(format!("{:020}", 0));
        std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, pos).unwrap();
    }
}
