//! The timer settings, under the names of Java's `MessageStoreConfig` (`timer*`,
//! `mappedFileSizeTimerLog`) and `BrokerConfig` (`recallMessageEnable`), so a `broker.conf`
//! carries over.

/// Every timer setting. Times in milliseconds unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerConfig {
    /// `timerWheelEnable` (true): timer messages are accepted; without it a timer message is
    /// refused with SYSTEM_ERROR, as in Java.
    pub wheel_enable: bool,
    /// `timerPrecisionMs` (1000): the slot width; a timer fires within this after its time.
    pub precision_ms: i64,
    /// `timerMaxDelaySec` (259,200 = 3 days): the longest accepted delay.
    pub max_delay_sec: i64,
    /// `timerRollWindowSlot` (2 days of slots): timers further away are parked at the window's
    /// edge and placed again when they get there.
    pub roll_window_slots: i64,
    /// `mappedFileSizeTimerLog` (100 MiB): size of each timer-log file.
    pub log_file_size_bytes: u64,
    /// `timerFlushIntervalMs` (1000): how often the log, wheel and checkpoint are flushed.
    pub flush_interval_ms: u64,
    /// `timerCongestNumEachSlot` (`i32::MAX`): a slot holding more timers refuses new ones,
    /// at random in proportion, always at twice as many.
    pub congest_num_each_slot: i32,
    /// `timerEnableRetryUntilSuccess` (false): a delivery the store refuses is retried until
    /// it is stored instead of three times.
    pub retry_until_success: bool,
    /// `recallMessageEnable` (false, Java's default): RECALL_MESSAGE is served.
    pub recall_enable: bool,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            wheel_enable: true,
            precision_ms: 1_000,
            max_delay_sec: 3 * 86_400,
            roll_window_slots: 2 * 86_400,
            log_file_size_bytes: 100 * 1024 * 1024,
            flush_interval_ms: 1_000,
            congest_num_each_slot: i32::MAX,
            retry_until_success: false,
            recall_enable: false,
        }
    }
}

/// Precisions Java accepts; another value is lowered to the nearest one below it (Java
/// `setTimerPrecisionMs`).
const PRECISION_CANDIDATES_MS: [i64; 4] = [100, 200, 500, 1000];

/// Whether `key` is a timer setting.
pub fn is_timer_key(key: &str) -> bool {
    matches!(
        key,
        "timerWheelEnable"
            | "timerPrecisionMs"
            | "timerMaxDelaySec"
            | "timerRollWindowSlot"
            | "mappedFileSizeTimerLog"
            | "timerFlushIntervalMs"
            | "timerCongestNumEachSlot"
            | "timerEnableRetryUntilSuccess"
            | "recallMessageEnable"
    )
}

impl TimerConfig {
    /// Sets one setting by its Java name; `Err(())` for a value that does not parse.
    #[allow(clippy::result_unit_err)]
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ()> {
        let text = value.trim();
        let flag = || match text {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(()),
        };
        let positive = || text.parse::<i64>().ok().filter(|value| *value > 0).ok_or(());
        match key {
            "timerWheelEnable" => self.wheel_enable = flag()?,
            "timerPrecisionMs" => self.precision_ms = Self::precision_for(positive()?),
            "timerMaxDelaySec" => self.max_delay_sec = positive()?,
            "timerRollWindowSlot" => self.roll_window_slots = positive()?,
            "mappedFileSizeTimerLog" => {
                self.log_file_size_bytes = u64::try_from(positive()?).map_err(|_| ())?.max(1024)
            }
            "timerFlushIntervalMs" => self.flush_interval_ms = u64::try_from(positive()?).map_err(|_| ())?,
            "timerCongestNumEachSlot" => {
                self.congest_num_each_slot = i32::try_from(positive()?).unwrap_or(i32::MAX)
            }
            "timerEnableRetryUntilSuccess" => self.retry_until_success = flag()?,
            "recallMessageEnable" => self.recall_enable = flag()?,
            _ => return Err(()),
        }
        Ok(())
    }

    /// Java's precision rule: the largest candidate not above `wanted` (the smallest one if
    /// all are).
    fn precision_for(wanted: i64) -> i64 {
        PRECISION_CANDIDATES_MS.iter().rev().copied().find(|candidate| *candidate <= wanted).unwrap_or(100)
    }

    /// The roll window in slots as the wheel uses it: Java's bounds (at least 2, at most a
    /// wheel turn less 60 blank slots).
    pub fn effective_roll_window_slots(&self) -> i64 {
        let most = super::wheel::SLOTS_TOTAL - 60;
        if self.roll_window_slots < 2 || self.roll_window_slots > most {
            most
        } else {
            self.roll_window_slots
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_names_defaults_and_precision_rule() {
        let mut config = TimerConfig::default();
        assert_eq!((config.precision_ms, config.max_delay_sec), (1_000, 259_200));
        assert!(!config.recall_enable);
        config.set("timerPrecisionMs", "700").unwrap();
        assert_eq!(config.precision_ms, 500);
        config.set("timerPrecisionMs", "50").unwrap();
        assert_eq!(config.precision_ms, 100);
        config.set("timerPrecisionMs", "3000").unwrap();
        assert_eq!(config.precision_ms, 1_000);
        config.set("recallMessageEnable", "TRUE").unwrap();
        assert!(config.recall_enable);
        assert!(config.set("timerMaxDelaySec", "x").is_err());
        assert!(is_timer_key("timerRollWindowSlot") && !is_timer_key("timerFoo"));
        config.set("timerRollWindowSlot", "1").unwrap();
        assert_eq!(config.effective_roll_window_slots(), 604_740);
        config.set("timerRollWindowSlot", "3").unwrap();
        assert_eq!(config.effective_roll_window_slots(), 3);
    }
}
