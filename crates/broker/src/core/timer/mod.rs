//! Timer messages (RIP-43; behaviour spec §5.2, storage spec §9): a message with an arbitrary
//! delivery time, given by the producer as `TIMER_DELIVER_MS` (absolute), `TIMER_DELAY_SEC`
//! or `TIMER_DELAY_MS` (relative to its arrival).
//!
//! - Send side ([`apply_on_send`]): the time is checked and rounded to the precision, and the
//!   message is stored in `rmq_sys_wheel_timer` queue 0 with `TIMER_OUT_MS`, `REAL_TOPIC` and
//!   `REAL_QID`; the send result carries a recall handle.
//! - The timer store: [`log`] (52-byte units chained per slot), [`wheel`] (the slots),
//!   [`checkpoint`] (`config/timercheck`), driven by [`engine`].
//! - [`service`]: the thread that enqueues the timer topic into the store and delivers due
//!   slots to their real topics, and flushes.
//! - [`recall`]: RECALL_MESSAGE, a delete marker stored as a timer into the same slot.
//!
//! Delay levels (`DELAY`) keep their own path ([`crate::schedule`]) and win over timer
//! properties, which are then removed, as in Java. Batches are not transformed: Java's put
//! hook sees a batch's own properties only, which its clients never give timer properties,
//! so timer properties of batch items are stored as sent and the items are delivered at once.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod log;
pub mod recall;
pub mod service;
pub mod wheel;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use apogee_common::message::property::{self, Properties};
use apogee_common::topic::TIMER_TOPIC;
use apogee_remoting::code::response_code;
use parking_lot::Mutex;

pub use config::TimerConfig;

use super::error::{CoreResult, Error};
use engine::Engine;
use wheel::TimerWheel;

/// The timer store as the broker holds it: the settings, the wheel (shared with the send
/// path's congestion check), the engine until the service thread takes it, and the figures
/// the runtime information reports.
#[derive(Debug)]
pub struct TimerState {
    /// Settings.
    pub config: TimerConfig,
    wheel: Option<Arc<TimerWheel>>,
    engine: Mutex<Option<Engine>>,
    /// What the pipeline reports.
    pub stats: TimerStats,
}

/// Figures the service publishes for the runtime information.
#[derive(Debug, Default)]
pub struct TimerStats {
    /// Due time of the next slot to deliver.
    pub read_time_ms: AtomicI64,
    /// Next timer-topic queue offset to enqueue.
    pub queue_offset: AtomicI64,
    /// Timers waiting in the wheel.
    pub pending: AtomicI64,
    /// Timers enqueued in the last second.
    pub enqueue_per_sec: AtomicU64,
    /// Timers delivered in the last second.
    pub dequeue_per_sec: AtomicU64,
    /// Whether the service runs.
    pub running: AtomicBool,
}

impl TimerState {
    /// Opens the timer store's files under the store root (`timerwheel`, `timerlog/`,
    /// `config/timercheck`); with `timerWheelEnable` off nothing is opened.
    pub fn open(root: &Path, config: &TimerConfig) -> io::Result<Self> {
        if !config.wheel_enable {
            return Ok(Self {
                config: config.clone(),
                wheel: None,
                engine: Mutex::new(None),
                stats: TimerStats::default(),
            });
        }
        let wheel = Arc::new(TimerWheel::open(&root.join("timerwheel"), config.precision_ms)?);
        let engine = Engine::open(root, config, Arc::clone(&wheel))?;
        Ok(Self {
            config: config.clone(),
            wheel: Some(wheel),
            engine: Mutex::new(Some(engine)),
            stats: TimerStats::default(),
        })
    }

    /// The engine, for the service thread (once).
    pub(crate) fn take_engine(&self) -> Option<Engine> {
        self.engine.lock().take()
    }

    /// Java `isReject`: a slot holding more than `timerCongestNumEachSlot` timers refuses new
    /// ones at random in proportion to the excess, and always at twice the limit.
    fn is_congested(&self, slot_time_ms: i64) -> bool {
        let limit = self.config.congest_num_each_slot;
        let Some(wheel) = self.wheel.as_ref().filter(|_| limit < i32::MAX) else { return false };
        let num = i64::from(wheel.num(slot_time_ms));
        let limit = i64::from(limit);
        if num <= limit {
            return false;
        }
        if num >= 2 * limit {
            return true;
        }
        let excess_per_mille = 1000 * (num - limit) / limit.max(1);
        (pseudo_random() % 1000) as i64 > excess_per_mille
    }
}

/// A cheap random number for the congestion check (no cryptographic use).
fn pseudo_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x
}

/// What the send path did with a message's timer properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Stored as it is: no timer properties, already a timer-topic message, or already due.
    Unchanged,
    /// Parked in the timer topic until `out_ms` (`TIMER_OUT_MS`).
    Parked {
        /// The rounded due time.
        out_ms: i64,
    },
}

/// Whether the send path treats the message as a timer message (Java `checkIfTimerMessage`
/// after the delay-level case): a timer property, and neither in the timer topic already nor
/// carrying `TIMER_OUT_MS` (a delivered or rolled timer).
pub fn is_timer_message(topic: &str, properties: &Properties) -> bool {
    if topic == TIMER_TOPIC || properties.get(property::TIMER_OUT_MS).is_some() {
        return false;
    }
    properties.get(property::TIMER_DELIVER_MS).is_some()
        || properties.get(property::TIMER_DELAY_MS).is_some()
        || properties.get(property::TIMER_DELAY_SEC).is_some()
}

/// The delivery time the producer asked for, by Java's precedence: `TIMER_DELAY_SEC`, then
/// `TIMER_DELAY_MS` (both relative to `now_ms`), then `TIMER_DELIVER_MS`. `None` when the
/// value does not parse as a Java `long` (or overflows).
pub fn requested_deliver_ms(properties: &Properties, now_ms: i64) -> Option<i64> {
    let long = |key| properties.get(key).map(|value: &str| value.parse::<i64>().ok());
    match (long(property::TIMER_DELAY_SEC), long(property::TIMER_DELAY_MS)) {
        (Some(seconds), _) => seconds?.checked_mul(1000)?.checked_add(now_ms),
        (None, Some(millis)) => millis?.checked_add(now_ms),
        (None, None) => long(property::TIMER_DELIVER_MS)?,
    }
}

/// Rounds a delivery time to the slot it is stored under (Java's rule): a time on a
/// precision boundary moves one precision earlier, any other is floored. A slot fires once
/// its whole width has passed, so the timer is never delivered before the time asked and at
/// most one precision after it.
pub fn round_to_slot(deliver_ms: i64, precision_ms: i64) -> i64 {
    assert!(precision_ms > 0, "timer precision must be positive");
    if deliver_ms % precision_ms == 0 {
        deliver_ms - precision_ms
    } else {
        deliver_ms / precision_ms * precision_ms
    }
}

/// The remark of a timer message refused as illegal (Java's).
fn illegal(config: &TimerConfig) -> Error {
    Error::new(
        response_code::MESSAGE_ILLEGAL,
        format!(
            "timer message illegal, the delay time should not be bigger than the max delay {}ms; or if set del msg, \
             the delay time should be bigger than the current time",
            config.max_delay_sec.saturating_mul(1000)
        ),
    )
}

/// The send path's timer rewrite (Java `HookUtils.transformTimerMessage`), for a message that
/// is not a half message and has no delay level: checks the time and parks the message in
/// `rmq_sys_wheel_timer` queue 0, keeping its destination in `REAL_TOPIC`/`REAL_QID`. A time
/// not in the future stores the message as it is (a delete marker is then illegal).
pub fn apply_on_send(
    timer: &TimerState,
    topic: &mut String,
    queue_id: &mut i32,
    properties: &mut Properties,
    now_ms: i64,
) -> CoreResult<Ingress> {
    if !is_timer_message(topic, properties) {
        return Ok(Ingress::Unchanged);
    }
    let config = &timer.config;
    if !config.wheel_enable {
        return Err(Error::system(format!(
            "accurate timer message is not enabled, timerWheelEnable is {}",
            config.wheel_enable
        )));
    }
    let Some(deliver_ms) = requested_deliver_ms(properties, now_ms) else {
        return Err(illegal(config));
    };
    if deliver_ms <= now_ms {
        if properties.get(property::TIMER_DEL_UNIQKEY).is_some() {
            return Err(illegal(config));
        }
        return Ok(Ingress::Unchanged);
    }
    if deliver_ms - now_ms > config.max_delay_sec.saturating_mul(1000) {
        return Err(illegal(config));
    }
    let out_ms = round_to_slot(deliver_ms, config.precision_ms);
    if timer.is_congested(out_ms) {
        let limit = i64::from(config.congest_num_each_slot);
        return Err(Error::system(format!(
            "timer message is under flow control, max num limit is {} or the current value is greater than {} and \
             less than {}, trigger random flow control",
            limit * 2,
            limit,
            limit * 2
        )));
    }
    properties.insert(property::TIMER_OUT_MS, out_ms.to_string());
    properties.insert(property::REAL_TOPIC, topic.as_str());
    properties.insert(property::REAL_QID, queue_id.to_string());
    *topic = TIMER_TOPIC.to_owned();
    *queue_id = 0;
    Ok(Ingress::Parked { out_ms })
}

/// The delete key of a timer (Java `buildDeleteKey`): its real topic and unique key.
pub fn delete_key(real_topic: &str, uniq_key: &str) -> String {
    format!("{real_topic}+{uniq_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config: TimerConfig) -> TimerState {
        TimerState { config, wheel: None, engine: Mutex::new(None), stats: TimerStats::default() }
    }

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut properties = Properties::new();
        for (key, value) in pairs {
            properties.insert(*key, *value);
        }
        properties
    }

    #[test]
    fn rounding_never_lets_a_slot_fire_early() {
        assert_eq!(round_to_slot(5_000, 1_000), 4_000);
        assert_eq!(round_to_slot(5_001, 1_000), 5_000);
        assert_eq!(round_to_slot(5_999, 1_000), 5_000);
        assert_eq!(round_to_slot(1_700_000_000_250, 100), 1_700_000_000_200);
        // Property: the slot fires at slot + precision, which is at or after the time asked
        // and less than one precision after it.
        let mut x: u64 = 12345;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let deliver = 1_600_000_000_000 + (x >> 20) as i64 % 1_000_000_000;
            for precision in [100, 200, 500, 1000] {
                let slot = round_to_slot(deliver, precision);
                assert_eq!(slot % precision, 0);
                let fires = slot + precision;
                assert!(fires >= deliver && fires - deliver < precision, "{deliver} {precision}");
            }
        }
    }

    #[test]
    fn precedence_and_parsing() {
        let now = 1_000_000;
        let both = props(&[("TIMER_DELAY_SEC", "3"), ("TIMER_DELAY_MS", "10"), ("TIMER_DELIVER_MS", "5")]);
        assert_eq!(requested_deliver_ms(&both, now), Some(now + 3_000));
        let ms = props(&[("TIMER_DELAY_MS", "10"), ("TIMER_DELIVER_MS", "5")]);
        assert_eq!(requested_deliver_ms(&ms, now), Some(now + 10));
        assert_eq!(requested_deliver_ms(&props(&[("TIMER_DELIVER_MS", "5")]), now), Some(5));
        assert_eq!(requested_deliver_ms(&props(&[("TIMER_DELAY_SEC", "x")]), now), None);
        assert_eq!(requested_deliver_ms(&props(&[("TIMER_DELAY_SEC", " 3")]), now), None);
        assert_eq!(requested_deliver_ms(&props(&[("TIMER_DELAY_SEC", "9223372036854775807")]), now), None);
    }

    #[test]
    fn send_side_rewrite() {
        let timer = state(TimerConfig::default());
        let now = 1_700_000_000_300;
        let (mut topic, mut queue) = ("T".to_owned(), 3);
        let mut properties = props(&[("TIMER_DELIVER_MS", "1700000005000"), ("UNIQ_KEY", "U")]);
        let ingress = apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now).unwrap();
        assert_eq!(ingress, Ingress::Parked { out_ms: 1_700_000_004_000 });
        assert_eq!((topic.as_str(), queue), (TIMER_TOPIC, 0));
        assert_eq!(properties.get("TIMER_OUT_MS"), Some("1700000004000"));
        assert_eq!(properties.get("REAL_TOPIC"), Some("T"));
        assert_eq!(properties.get("REAL_QID"), Some("3"));
        // Not transformed twice.
        assert_eq!(
            apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now).unwrap(),
            Ingress::Unchanged
        );

        // Already due: stored as it is.
        let (mut topic, mut queue) = ("T".to_owned(), 1);
        let mut properties = props(&[("TIMER_DELIVER_MS", "1700000000000")]);
        assert_eq!(
            apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now).unwrap(),
            Ingress::Unchanged
        );
        assert_eq!(topic, "T");
        // ...unless it is a delete marker.
        properties.insert("TIMER_DEL_UNIQKEY", "T+U");
        assert_eq!(
            apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now).unwrap_err().code,
            response_code::MESSAGE_ILLEGAL
        );

        // Beyond the maximum delay, or unparsable: illegal.
        for value in ["259201", "soon"] {
            let mut properties = props(&[("TIMER_DELAY_SEC", value)]);
            let error = apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now).unwrap_err();
            assert_eq!(error.code, response_code::MESSAGE_ILLEGAL);
            assert!(error.remark.contains("max delay 259200000ms"), "{}", error.remark);
        }
        let mut properties = props(&[("TIMER_DELAY_SEC", "259200")]);
        assert!(matches!(
            apply_on_send(&timer, &mut topic, &mut queue, &mut properties, now),
            Ok(Ingress::Parked { .. })
        ));

        // The wheel switched off: SYSTEM_ERROR.
        let off = state(TimerConfig { wheel_enable: false, ..TimerConfig::default() });
        let (mut topic, mut queue) = ("T".to_owned(), 1);
        let mut properties = props(&[("TIMER_DELAY_SEC", "5")]);
        let error = apply_on_send(&off, &mut topic, &mut queue, &mut properties, now).unwrap_err();
        assert_eq!(error.code, response_code::SYSTEM_ERROR);
        assert_eq!(error.remark, "accurate timer message is not enabled, timerWheelEnable is false");
    }
}
