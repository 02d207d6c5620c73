//! The timer wheel (`<store>/timerwheel`, storage spec §9.2): one mapped file of
//! `2 × 604,800` slots of 32 bytes, a slot per `timerPrecisionMs` of due time, reused
//! cyclically. Slot layout (big-endian): `[timeMs / precision i64][firstPos i64][lastPos i64]
//! [num i32][magic i32]`; the slot for due time `t` is at index `(t / precision) mod slots`
//! and is valid for `t` only if its stored time equals `t / precision` (else it is empty).
//!
//! The timer service writes slots; the send path reads a slot's count for the congestion
//! check. A mutex around the mapping makes both safe; a slot operation holds it for
//! nanoseconds.
//!
//! Apogee's own slot magic bit [`CONSUMED`] records delivery progress inside a slot: with it
//! set, the units of the slot at positions above `lastPos` were delivered, so a restart
//! resumes where delivery stopped. Java leaves the slot magic at 0; the layout is the same.

use std::fs::File;
use std::io;
use std::path::Path;

use apogee_store::file_space;
use memmap2::MmapMut;
use parking_lot::Mutex;

/// Bytes of one slot.
pub const SLOT_SIZE_BYTES: usize = 32;
/// Slots of one wheel turn: seven days of seconds (Java `TIMER_WHEEL_TTL_DAY × DAY_SECS`).
pub const SLOTS_TOTAL: i64 = 7 * 86_400;
/// Slots in the file: two turns.
pub const FILE_SLOTS: i64 = 2 * SLOTS_TOTAL;
/// Size of the wheel file (38,707,200 bytes).
pub const FILE_SIZE_BYTES: u64 = FILE_SLOTS as u64 * SLOT_SIZE_BYTES as u64;
/// Slot magic bit: delivery of the slot started; units above `lastPos` are delivered.
pub const CONSUMED: i32 = 1 << 8;

/// One slot as read for a due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The slot's due time (floored to the precision), or −1 for an empty slot.
    pub time_ms: i64,
    /// Log position of the oldest unit, −1 for none.
    pub first_pos: i64,
    /// Log position of the newest unit (the head of the list), −1 for none.
    pub last_pos: i64,
    /// Timers in the slot (delete markers count −1).
    pub num: i32,
    /// Slot magic ([`CONSUMED`]).
    pub magic: i32,
}

impl Slot {
    /// The empty slot.
    pub const EMPTY: Slot = Slot { time_ms: -1, first_pos: -1, last_pos: -1, num: 0, magic: 0 };

    /// Whether nothing is stored for the time asked.
    pub fn is_empty(&self) -> bool {
        self.time_ms == -1
    }

    /// Whether delivery of the slot started.
    pub fn is_consumed(&self) -> bool {
        self.magic & CONSUMED != 0
    }

    fn encode(&self, precision_ms: i64) -> [u8; SLOT_SIZE_BYTES] {
        let mut out = [0u8; SLOT_SIZE_BYTES];
        out[0..8].copy_from_slice(&(self.time_ms / precision_ms).to_be_bytes());
        out[8..16].copy_from_slice(&self.first_pos.to_be_bytes());
        out[16..24].copy_from_slice(&self.last_pos.to_be_bytes());
        out[24..28].copy_from_slice(&self.num.to_be_bytes());
        out[28..32].copy_from_slice(&self.magic.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8], time_ms: i64, precision_ms: i64) -> Slot {
        let long = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(word)
        };
        let int = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&bytes[at..at + 4]);
            i32::from_be_bytes(word)
        };
        if long(0) != time_ms / precision_ms {
            return Slot::EMPTY;
        }
        Slot {
            time_ms: time_ms / precision_ms * precision_ms,
            first_pos: long(8),
            last_pos: long(16),
            num: int(24),
            magic: int(28),
        }
    }
}

/// The mapped wheel.
#[derive(Debug)]
pub struct TimerWheel {
    precision_ms: i64,
    file: File,
    map: Mutex<MmapMut>,
}

impl TimerWheel {
    /// Opens the wheel file, creating it allocated and zeroed (every slot empty) when absent.
    pub fn open(path: &Path, precision_ms: i64) -> io::Result<Self> {
        assert!(precision_ms > 0, "timer precision must be positive");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let existing = std::fs::metadata(path).ok().map(|metadata| metadata.len());
        if let Some(length) = existing.filter(|length| *length != FILE_SIZE_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has {length} bytes, expected {FILE_SIZE_BYTES}", path.display()),
            ));
        }
        let file = file_space::create_allocated(path, FILE_SIZE_BYTES, false)?;
        // SAFETY: the file is allocated to its full length, only this wheel maps it, and it is
        // never truncated.
        let map = unsafe { MmapMut::map_mut(&file)? };
        if (map.len() as u64) < FILE_SIZE_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wheel mapping shorter than the file"));
        }
        Ok(Self { precision_ms, file, map: Mutex::new(map) })
    }

    /// The precision the slots are kept at.
    pub fn precision_ms(&self) -> i64 {
        self.precision_ms
    }

    fn offset(&self, time_ms: i64) -> usize {
        let index = (time_ms / self.precision_ms).rem_euclid(FILE_SLOTS);
        index as usize * SLOT_SIZE_BYTES
    }

    /// The slot of due time `time_ms`, or [`Slot::EMPTY`] when it holds another time.
    pub fn slot(&self, time_ms: i64) -> Slot {
        let at = self.offset(time_ms);
        let map = self.map.lock();
        Slot::decode(&map[at..at + SLOT_SIZE_BYTES], time_ms, self.precision_ms)
    }

    /// Writes the slot of `slot.time_ms`.
    pub fn put(&self, slot: &Slot) {
        assert!(slot.time_ms >= 0, "an empty slot is never written");
        let at = self.offset(slot.time_ms);
        let bytes = slot.encode(self.precision_ms);
        self.map.lock()[at..at + SLOT_SIZE_BYTES].copy_from_slice(&bytes);
    }

    /// Timers in the slot of `time_ms` (the congestion check).
    pub fn num(&self, time_ms: i64) -> i32 {
        self.slot(time_ms).num
    }

    /// Sum of the slot counts from `from_ms` for one wheel turn, skipping consumed slots:
    /// the timers waiting (recomputed at start only; it reads the whole file).
    pub fn pending_from(&self, from_ms: i64) -> i64 {
        let mut total = 0i64;
        let start = from_ms / self.precision_ms * self.precision_ms;
        for step in 0..SLOTS_TOTAL {
            let slot = self.slot(start + step * self.precision_ms);
            if !slot.is_empty() && !slot.is_consumed() {
                total += i64::from(slot.num.max(0));
            }
        }
        total
    }

    /// Writes the changed pages to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_layout_and_validity() {
        let slot = Slot { time_ms: 1_700_000_005_000, first_pos: 52, last_pos: 104, num: 2, magic: CONSUMED };
        let bytes = slot.encode(1_000);
        assert_eq!(&bytes[0..8], &1_700_000_005i64.to_be_bytes());
        assert_eq!(&bytes[8..16], &52i64.to_be_bytes());
        assert_eq!(&bytes[16..24], &104i64.to_be_bytes());
        assert_eq!(&bytes[24..28], &2i32.to_be_bytes());
        assert_eq!(&bytes[28..32], &CONSUMED.to_be_bytes());
        assert_eq!(Slot::decode(&bytes, 1_700_000_005_999, 1_000), slot);
        // Another turn of the wheel maps to the same bytes but is another time.
        assert_eq!(Slot::decode(&bytes, 1_700_000_005_000 + 2 * SLOTS_TOTAL * 1_000, 1_000), Slot::EMPTY);
    }

    #[test]
    fn wheel_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timerwheel");
        let wheel = TimerWheel::open(&path, 1_000).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 38_707_200);
        assert!(wheel.slot(5_000).is_empty());
        wheel.put(&Slot { time_ms: 5_000, first_pos: 0, last_pos: 52, num: 2, magic: 0 });
        wheel.put(&Slot { time_ms: 7_000, first_pos: 104, last_pos: 104, num: 1, magic: CONSUMED });
        assert_eq!(wheel.num(5_500), 2);
        assert_eq!(wheel.pending_from(5_000), 2);
        wheel.flush().unwrap();
        drop(wheel);
        let wheel = TimerWheel::open(&path, 1_000).unwrap();
        assert_eq!(wheel.slot(5_000).last_pos, 52);
        assert!(wheel.slot(7_000).is_consumed());
        std::fs::write(dir.path().join("short"), b"x").unwrap();
        assert!(TimerWheel::open(&dir.path().join("short"), 1_000).is_err());
    }
}
