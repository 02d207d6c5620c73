//! `rocketmq_rpc_latency`: the time from a remoting request's dispatch to its response being
//! queued, per request code, response code and result (spec §1.3), told by the transport
//! through [`RequestObserver`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apogee_metrics::prometheus_client::encoding::DescriptorEncoder;
use apogee_metrics::prometheus_client::metrics::MetricType;
use apogee_metrics::prometheus_client::registry::Unit;
use apogee_metrics::FixedHistogram;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::router::{RequestObserver, RequestOutcome};
use parking_lot::RwLock;

/// Bucket bounds in ms (Java's `RemotingMetricsManager` view).
pub static RPC_LATENCY_BOUNDS_MS: [f64; 9] = [1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

/// Most series kept: request codes come from the network, and an unknown one is still answered.
pub const MAX_SERIES: usize = 1024;

/// One histogram per request code and outcome.
#[derive(Debug, Default)]
pub struct RpcLatency {
    series: RwLock<HashMap<(i32, RequestOutcome), Arc<FixedHistogram>>>,
    limit_reported: AtomicBool,
}

impl RpcLatency {
    fn series(&self, key: (i32, RequestOutcome)) -> Option<Arc<FixedHistogram>> {
        if let Some(histogram) = self.series.read().get(&key) {
            return Some(Arc::clone(histogram));
        }
        let mut series = self.series.write();
        if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            if !self.limit_reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limit = MAX_SERIES,
                    "rpc latency series at their limit: new codes not recorded"
                );
            }
            return None;
        }
        Some(Arc::clone(
            series.entry(key).or_insert_with(|| Arc::new(FixedHistogram::new(&RPC_LATENCY_BOUNDS_MS))),
        ))
    }

    /// Writes the histograms.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut series: Vec<((i32, RequestOutcome), Arc<FixedHistogram>)> =
            self.series.read().iter().map(|(key, histogram)| (*key, Arc::clone(histogram))).collect();
        series.sort_by_key(|((code, outcome), _)| (*code, outcome_order(*outcome)));
        let unit = Unit::Other("milliseconds".into());
        let mut metric = encoder.encode_descriptor(
            "rocketmq_rpc_latency",
            "Time from a request's dispatch to its response, in ms.",
            Some(&unit),
            MetricType::Histogram,
        )?;
        for ((code, outcome), histogram) in series {
            let request = code_label(request_code::name(code), code);
            let (response, result) = match outcome {
                RequestOutcome::Answered(code) => (code_label(response_code::name(code), code), "success"),
                RequestOutcome::Oneway => (String::new(), "oneway"),
            };
            let labels = [
                ("protocol_type", "remoting"),
                ("request_code", request.as_str()),
                ("response_code", response.as_str()),
                ("is_long_polling", "false"),
                ("result", result),
            ];
            histogram.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn outcome_order(outcome: RequestOutcome) -> i64 {
    match outcome {
        RequestOutcome::Answered(code) => i64::from(code),
        RequestOutcome::Oneway => i64::MAX,
    }
}

/// Java's label: the constant's name in lower case, or the number when it has none.
fn code_label(name: Option<&str>, code: i32) -> String {
    name.map_or_else(|| code.to_string(), str::to_ascii_lowercase)
}

impl RequestObserver for RpcLatency {
    fn observe(&self, request_code: i32, outcome: RequestOutcome, elapsed: Duration) {
        if let Some(histogram) = self.series((request_code, outcome)) {
            histogram.observe(elapsed.as_secs_f64() * 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_java_constant_names() {
        assert_eq!(code_label(request_code::name(310), 310), "send_message_v2");
        assert_eq!(code_label(response_code::name(0), 0), "success");
        assert_eq!(code_label(request_code::name(99_999), 99_999), "99999");
    }

    #[test]
    fn series_are_capped() {
        let latency = RpcLatency::default();
        for code in 0..(MAX_SERIES as i32 + 10) {
            latency.observe(code, RequestOutcome::Answered(0), Duration::from_millis(2));
        }
        assert_eq!(latency.series.read().len(), MAX_SERIES);
    }
}
