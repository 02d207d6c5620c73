//! Latency fault tolerance (behaviour spec §3.4): after each send attempt the producer notes
//! how long the broker took and whether it failed; slow or failing brokers are avoided for a
//! while when queues are selected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Latency thresholds in ms; an attempt at least this slow gets the isolation of the same index
/// in [`NOT_AVAILABLE_DURATION_MS`].
pub const LATENCY_MAX_MS: [u64; 7] = [50, 100, 550, 1_800, 3_000, 5_000, 15_000];

/// Isolation in ms for each step of [`LATENCY_MAX_MS`].
pub const NOT_AVAILABLE_DURATION_MS: [u64; 7] = [0, 0, 2_000, 5_000, 6_000, 10_000, 30_000];

/// The latency an attempt marked "isolate" is treated as having (so it gets 10 s).
pub const ISOLATION_LATENCY_MS: u64 = 10_000;

/// Most brokers tracked; past this, items whose isolation is over are forgotten first.
pub const MAX_FAULT_ITEMS: usize = 4_096;

/// How long a broker is avoided after an attempt that took `latency_ms`: the duration of the
/// largest threshold the latency reaches, 0 below the first.
pub fn not_available_duration_ms(latency_ms: u64) -> u64 {
    LATENCY_MAX_MS
        .iter()
        .zip(NOT_AVAILABLE_DURATION_MS)
        .rev()
        .find(|(max, _)| latency_ms >= **max)
        .map_or(0, |(_, duration)| duration)
}

/// What is known of one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FaultItem {
    /// Latency of the last attempt, ms.
    latency_ms: u64,
    /// The broker is available again from this instant on.
    available_from: Instant,
    /// Whether the last attempt reached the broker.
    reachable: bool,
}

/// The fault table of one producer. Does nothing unless enabled
/// (`sendLatencyFaultEnable`, off by default).
#[derive(Debug)]
pub struct LatencyFaultTolerance {
    enabled: bool,
    items: Mutex<HashMap<String, FaultItem>>,
}

impl LatencyFaultTolerance {
    /// A table; `enabled` = `sendLatencyFaultEnable`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, items: Mutex::default() }
    }

    /// Whether fault tolerance is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records an attempt on `broker_name` that took `latency`. `isolate` applies the
    /// failure isolation (10 s) instead of the latency's; `reachable` says whether the broker
    /// answered at all.
    pub fn update(&self, broker_name: &str, latency: Duration, isolate: bool, reachable: bool) {
        self.update_at(Instant::now(), broker_name, latency, isolate, reachable);
    }

    /// [`Self::update`] as if the clock read `now`.
    pub fn update_at(
        &self,
        now: Instant,
        broker_name: &str,
        latency: Duration,
        isolate: bool,
        reachable: bool,
    ) {
        if !self.enabled {
            return;
        }
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let isolation = Duration::from_millis(not_available_duration_ms(if isolate {
            ISOLATION_LATENCY_MS
        } else {
            latency_ms
        }));
        let mut items = self.items.lock();
        if !items.contains_key(broker_name) && items.len() >= MAX_FAULT_ITEMS {
            items.retain(|_, item| item.available_from > now);
            if items.len() >= MAX_FAULT_ITEMS {
                return;
            }
        }
        let item = items.entry(broker_name.to_owned()).or_insert(FaultItem {
            latency_ms,
            available_from: now,
            reachable,
        });
        item.latency_ms = latency_ms;
        item.reachable = reachable;
        // An update only ever extends the isolation.
        if !isolation.is_zero() {
            item.available_from = item.available_from.max(now + isolation);
        }
        if !reachable {
            tracing::info!(broker = broker_name, latency_ms, "broker marked unreachable");
        }
    }

    /// Whether `broker_name` is out of isolation (unknown brokers are).
    pub fn is_available(&self, broker_name: &str) -> bool {
        self.is_available_at(Instant::now(), broker_name)
    }

    /// [`Self::is_available`] as if the clock read `now`.
    pub fn is_available_at(&self, now: Instant, broker_name: &str) -> bool {
        self.items.lock().get(broker_name).is_none_or(|item| now >= item.available_from)
    }

    /// Whether the last attempt on `broker_name` reached it (unknown brokers are reachable).
    pub fn is_reachable(&self, broker_name: &str) -> bool {
        self.items.lock().get(broker_name).is_none_or(|item| item.reachable)
    }

    /// Forgets `broker_name`.
    pub fn remove(&self, broker_name: &str) {
        self.items.lock().remove(broker_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_table_is_exact() {
        let cases = [
            (0, 0),
            (49, 0),
            (50, 0),
            (99, 0),
            (100, 0),
            (549, 0),
            (550, 2_000),
            (600, 2_000),
            (1_799, 2_000),
            (1_800, 5_000),
            (2_999, 5_000),
            (3_000, 6_000),
            (4_999, 6_000),
            (5_000, 10_000),
            (10_000, 10_000),
            (14_999, 10_000),
            (15_000, 30_000),
            (u64::MAX, 30_000),
        ];
        for (latency, duration) in cases {
            assert_eq!(not_available_duration_ms(latency), duration, "latency {latency}");
        }
    }

    /// Asserts that `broker`, updated at `now`, is unavailable until `now + isolation` (to the
    /// millisecond) and available from then on.
    fn assert_isolated_for(table: &LatencyFaultTolerance, broker: &str, now: Instant, isolation: Duration) {
        let last_isolated = now + isolation - Duration::from_millis(1);
        assert!(!table.is_available_at(last_isolated, broker), "{broker} isolated until {isolation:?}");
        assert!(table.is_available_at(now + isolation, broker), "{broker} available after {isolation:?}");
    }

    #[test]
    fn each_outcome_isolates_for_its_window() {
        // (call latency, failed, isolation window)
        let cases = [
            // A failure isolates for ten seconds.
            (Duration::from_millis(3), true, Duration::from_secs(10)),
            // A slow success isolates by its latency.
            (Duration::from_millis(600), false, Duration::from_secs(2)),
            // A 15 s call isolates for 30 s.
            (Duration::from_secs(15), false, Duration::from_secs(30)),
        ];
        for (latency, failed, isolation) in cases {
            let table = LatencyFaultTolerance::new(true);
            let now = Instant::now();
            table.update_at(now, "a", latency, failed, true);
            assert_isolated_for(&table, "a", now, isolation);
        }
    }

    #[test]
    fn failures_keep_reachability_apart() {
        let table = LatencyFaultTolerance::new(true);
        let now = Instant::now();
        table.update_at(now, "a", Duration::from_millis(3), true, true);
        assert!(table.is_reachable("a"));
        table.update_at(now, "b", Duration::from_millis(3), true, false);
        assert!(!table.is_reachable("b"));
        assert!(table.is_available_at(now, "unknown") && table.is_reachable("unknown"));
    }

    #[test]
    fn updates_only_extend_an_isolation() {
        let table = LatencyFaultTolerance::new(true);
        let now = Instant::now();
        table.update_at(now, "a", Duration::from_millis(600), false, true);
        // A fast success right after does not lift the isolation.
        table.update_at(now + Duration::from_millis(1), "a", Duration::from_millis(1), false, true);
        assert!(!table.is_available_at(now + Duration::from_millis(1_999), "a"));
    }

    #[test]
    fn disabled_table_records_nothing() {
        let table = LatencyFaultTolerance::new(false);
        table.update("a", Duration::from_secs(20), true, false);
        assert!(table.is_available("a") && table.is_reachable("a"));
    }

    #[test]
    fn table_size_is_bounded() {
        let table = LatencyFaultTolerance::new(true);
        let now = Instant::now();
        for index in 0..MAX_FAULT_ITEMS + 10 {
            table.update_at(now, &format!("b{index}"), Duration::ZERO, true, true);
        }
        assert_eq!(table.items.lock().len(), MAX_FAULT_ITEMS);
        table.update_at(now + Duration::from_secs(11), "late", Duration::ZERO, true, true);
        assert_eq!(table.items.lock().len(), 1);
    }
}
