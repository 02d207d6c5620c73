//! A histogram with fixed bucket bounds that many threads record into without a lock: RocketMQ
//! fixes its bounds per metric (spec §1.3), and a send path cannot take a lock per message.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::MetricEncoder;

/// Counts of observations per bucket, their number and their sum.
#[derive(Debug)]
pub struct FixedHistogram {
    /// Upper bounds, ascending; a last bucket without bound (+Inf) follows them.
    bounds: &'static [f64],
    /// One count per bound, then the +Inf bucket.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum, as the bits of an f64.
    sum_bits: AtomicU64,
}

impl FixedHistogram {
    /// An empty histogram over `bounds` (ascending, finite).
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "bounds must ascend");
        assert!(bounds.iter().all(|bound| bound.is_finite()), "bounds must be finite");
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self.sum_bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// Observations recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the histogram's samples (`_sum`, `_count`, `_bucket{le}`).
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)))
            .collect();
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, self.count(), &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_falls_in_that_bound() {
        static BOUNDS: [f64; 3] = [1.0, 3.0, 5.0];
        let histogram = FixedHistogram::new(&BOUNDS);
        for value in [0.5, 1.0, 2.0, 3.0, 9.0] {
            histogram.observe(value);
        }
        let counts: Vec<u64> =
            histogram.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![2, 2, 0, 1]);
        assert_eq!(histogram.count(), 5);
        assert_eq!(f64::from_bits(histogram.sum_bits.load(Ordering::Relaxed)), 15.5);
    }
}
