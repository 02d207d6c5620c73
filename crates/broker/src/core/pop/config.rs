//! POP settings, under Java's `BrokerConfig` key names. They live apart from
//! [`BrokerConfig`](crate::BrokerConfig)'s own fields so POP's keys are added in one place.

/// The POP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopConfig {
    /// `reviveQueueNum`: queues of the revive topic check points are spread over.
    pub revive_queue_num: i32,
    /// `reviveInterval`: how often each revive queue is scanned, in ms.
    pub revive_interval_ms: u64,
    /// `popFromRetryProbability`: percent of pops that read the pop retry topic first.
    pub pop_from_retry_probability: u32,
    /// `popPollingSize`: most pops parked per topic and group.
    pub pop_polling_size: usize,
    /// `maxPopPollingSize`: most pops parked in all.
    pub max_pop_polling_size: usize,
    /// `popCkMaxBufferSize`: most check points the revive service keeps in memory per revive
    /// queue. When reached it stops reading that queue until check points are settled (acked
    /// or revived); acks written past that point are read late, so their messages may be
    /// redelivered once (never lost).
    pub pop_ck_max_buffer_size: usize,
}

impl Default for PopConfig {
    fn default() -> Self {
        Self {
            revive_queue_num: 8,
            revive_interval_ms: 1_000,
            pop_from_retry_probability: 20,
            pop_polling_size: 1_024,
            max_pop_polling_size: 100_000,
            pop_ck_max_buffer_size: 200_000,
        }
    }
}

/// The Java names of the POP settings.
pub const KEYS: [&str; 6] = [
    "reviveQueueNum",
    "reviveInterval",
    "popFromRetryProbability",
    "popPollingSize",
    "maxPopPollingSize",
    "popCkMaxBufferSize",
];

/// Whether `key` names a POP setting.
pub fn is_pop_key(key: &str) -> bool {
    KEYS.contains(&key)
}

/// Why a POP setting was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Not a POP key.
    UnknownKey,
    /// The value does not parse or is out of range.
    InvalidValue,
}

impl PopConfig {
    /// Sets one POP setting by its Java name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SetError> {
        fn number<T: std::str::FromStr>(value: &str) -> Result<T, SetError> {
            value.trim().parse().map_err(|_| SetError::InvalidValue)
        }
        match key {
            "reviveQueueNum" => {
                // Revive queue ids travel in receipt handles; 999 is the orderly marker.
                self.revive_queue_num = number::<i32>(value)
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or(SetError::InvalidValue)?;
            }
            "reviveInterval" => self.revive_interval_ms = number::<u64>(value)?.max(10),
            "popFromRetryProbability" => {
                self.pop_from_retry_probability = number::<u32>(value)?.min(100);
            }
            "popPollingSize" => self.pop_polling_size = number(value)?,
            "maxPopPollingSize" => self.max_pop_polling_size = number(value)?,
            "popCkMaxBufferSize" => self.pop_ck_max_buffer_size = number::<usize>(value)?.max(1),
            _ => return Err(SetError::UnknownKey),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_javas() {
        let mut config = PopConfig::default();
        config.set("reviveInterval", "200").unwrap();
        config.set("popFromRetryProbability", "0").unwrap();
        config.set("reviveQueueNum", "2").unwrap();
        assert_eq!(
            (config.revive_interval_ms, config.pop_from_retry_probability, config.revive_queue_num),
            (200, 0, 2)
        );
        assert_eq!(config.set("reviveQueueNum", "0"), Err(SetError::InvalidValue));
        assert_eq!(config.set("listenPort", "1"), Err(SetError::UnknownKey));
    }
}
