//! Turning a stored record into its consume-queue entry and index keys; shared by the
//! appender (as it appends) and recovery (as it rebuilds).

use apogee_common::java_string_hash;
use apogee_common::message::record::RecordView;
use apogee_common::message::{property, sysflag};
use apogee_common::topic::SCHEDULE_TOPIC;

/// The end of every stored properties string: Java (and every client) ends each property with
/// it, and the store refuses records that do not.
const PROPERTY_SEPARATOR: u8 = 0x02;

/// Checks what the record format itself cannot: that a record was written whole. A write torn
/// by a crash leaves zeros where the record's tail should be, and a stored record never ends in
/// a zero it did not have: non-empty properties end with U+0002, and topics contain no NUL
/// (the appender refuses records breaking either rule, so no stored record does).
pub fn is_whole_record(view: &RecordView<'_>) -> bool {
    let properties = view.properties_str().as_bytes();
    let tail_ok = properties.is_empty() || properties.last() == Some(&PROPERTY_SEPARATOR);
    tail_ok && !view.topic().as_bytes().contains(&0)
}

/// Delay times of the delay levels, in milliseconds (`messageDelayLevel`).
#[derive(Debug, Clone)]
pub struct DelayLevels {
    millis: Vec<i64>,
}

impl DelayLevels {
    /// Parses `"1s 5s 10s 30s 1m ... 2h"`; unparsable entries are an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let millis = text
            .split_whitespace()
            .map(|level| {
                let (number, unit) = level.split_at(level.len().saturating_sub(1));
                let factor = match unit {
                    "s" => 1_000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return Err(format!("bad delay level {level:?}")),
                };
                number.parse::<i64>().map(|n| n * factor).map_err(|_| format!("bad delay level {level:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { millis })
    }

    /// Highest level.
    pub fn max_level(&self) -> i32 {
        self.millis.len() as i32
    }

    /// Delay of `level` (capped at the highest level); 0 for level ≤ 0.
    pub fn delay_ms(&self, level: i32) -> i64 {
        if level <= 0 || self.millis.is_empty() {
            return 0;
        }
        let index = (level.min(self.max_level()) - 1) as usize;
        self.millis[index]
    }
}

/// What a record contributes to its queue and to the index.
#[derive(Debug, Clone, Copy)]
pub struct DispatchInfo<'a> {
    /// Tag hash, or the delivery time for the schedule topic.
    pub tags_code: i64,
    /// `KEYS` property.
    pub keys: Option<&'a str>,
    /// `UNIQ_KEY` property.
    pub uniq_key: Option<&'a str>,
    /// Transaction type bits of the sysflag.
    pub transaction_type: i32,
}

impl DispatchInfo<'_> {
    /// Prepared and rolled-back transaction records get no consume-queue entry.
    pub fn goes_to_consume_queue(&self) -> bool {
        matches!(self.transaction_type, sysflag::TRANSACTION_NOT_TYPE | sysflag::TRANSACTION_COMMIT_TYPE)
    }
}

/// Reads what dispatch needs from a parsed record, in one pass over its properties.
/// `store_timestamp` is the record's store time: the appender passes the time it is about to
/// patch in, recovery the one read from the record.
pub fn dispatch_info<'a>(
    view: &RecordView<'a>,
    store_timestamp: i64,
    delay_levels: &DelayLevels,
) -> DispatchInfo<'a> {
    let [tags, keys, uniq_key, delay] =
        view.properties_of([property::TAGS, property::KEYS, property::UNIQ_KEY, property::DELAY]);
    let tags_code = if view.topic() == SCHEDULE_TOPIC {
        let level = delay.and_then(|level| level.parse().ok()).unwrap_or(0);
        store_timestamp + delay_levels.delay_ms(level)
    } else {
        tags.map_or(0, |tags| i64::from(java_string_hash(tags)))
    };
    DispatchInfo { tags_code, keys, uniq_key, transaction_type: sysflag::transaction_type(view.sys_flag()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_levels() {
        let levels =
            DelayLevels::parse("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h").unwrap();
        assert_eq!(levels.max_level(), 18);
        assert_eq!(levels.delay_ms(2), 5_000);
        assert_eq!(levels.delay_ms(99), 7_200_000);
        assert_eq!(levels.delay_ms(0), 0);
        assert!(DelayLevels::parse("1x").is_err());
    }
}
