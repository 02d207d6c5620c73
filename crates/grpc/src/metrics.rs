//! Per-RPC counters and latencies of the gRPC endpoint, kept where the work happens so the
//! metrics exporter (a later issue) only reads them: calls, calls whose body status was not a
//! success, and a latency histogram with fixed bucket bounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The RPCs measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// QueryRoute.
    QueryRoute,
    /// Heartbeat.
    Heartbeat,
    /// SendMessage.
    SendMessage,
    /// QueryAssignment.
    QueryAssignment,
    /// ReceiveMessage.
    ReceiveMessage,
    /// AckMessage.
    AckMessage,
    /// ForwardMessageToDeadLetterQueue.
    ForwardMessageToDeadLetterQueue,
    /// EndTransaction.
    EndTransaction,
    /// NotifyClientTermination.
    NotifyClientTermination,
    /// ChangeInvisibleDuration.
    ChangeInvisibleDuration,
    /// RecallMessage.
    RecallMessage,
}

impl Rpc {
    /// Every measured RPC, in the service's order.
    pub const ALL: [Rpc; 11] = [
        Rpc::QueryRoute,
        Rpc::Heartbeat,
        Rpc::SendMessage,
        Rpc::QueryAssignment,
        Rpc::ReceiveMessage,
        Rpc::AckMessage,
        Rpc::ForwardMessageToDeadLetterQueue,
        Rpc::EndTransaction,
        Rpc::NotifyClientTermination,
        Rpc::ChangeInvisibleDuration,
        Rpc::RecallMessage,
    ];

    /// The RPC's name in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::QueryRoute => "QueryRoute",
            Rpc::Heartbeat => "Heartbeat",
            Rpc::SendMessage => "SendMessage",
            Rpc::QueryAssignment => "QueryAssignment",
            Rpc::ReceiveMessage => "ReceiveMessage",
            Rpc::AckMessage => "AckMessage",
            Rpc::ForwardMessageToDeadLetterQueue => "ForwardMessageToDeadLetterQueue",
            Rpc::EndTransaction => "EndTransaction",
            Rpc::NotifyClientTermination => "NotifyClientTermination",
            Rpc::ChangeInvisibleDuration => "ChangeInvisibleDuration",
            Rpc::RecallMessage => "RecallMessage",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds; the last bucket takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 5_000_000, 30_000_000];

/// One RPC's figures.
#[derive(Debug, Default)]
struct RpcStats {
    calls: AtomicU64,
    failures: AtomicU64,
    latency_total_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// The figures of every RPC.
#[derive(Debug, Default)]
pub struct RpcMetrics {
    rpcs: [RpcStats; Rpc::ALL.len()],
}

/// A copy of one RPC's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcSnapshot {
    /// The RPC.
    pub rpc: &'static str,
    /// Calls answered.
    pub calls: u64,
    /// Calls whose body status was not a success.
    pub failures: u64,
    /// Sum of the latencies, in microseconds.
    pub latency_total_us: u64,
    /// Calls per latency bucket ([`LATENCY_BUCKETS_US`], then the overflow bucket).
    pub buckets: Vec<u64>,
}

impl RpcMetrics {
    /// Records one answered call.
    pub fn record(&self, rpc: Rpc, elapsed: Duration, succeeded: bool) {
        let stats = &self.rpcs[rpc as usize];
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        stats.latency_total_us.fetch_add(micros, Ordering::Relaxed);
        let bucket =
            LATENCY_BUCKETS_US.iter().position(|bound| micros <= *bound).unwrap_or(LATENCY_BUCKETS_US.len());
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The figures of every RPC now.
    pub fn snapshot(&self) -> Vec<RpcSnapshot> {
        Rpc::ALL
            .iter()
            .map(|rpc| {
                let stats = &self.rpcs[*rpc as usize];
                RpcSnapshot {
                    rpc: rpc.name(),
                    calls: stats.calls.load(Ordering::Relaxed),
                    failures: stats.failures.load(Ordering::Relaxed),
                    latency_total_us: stats.latency_total_us.load(Ordering::Relaxed),
                    buckets: stats.buckets.iter().map(|count| count.load(Ordering::Relaxed)).collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_their_rpc_and_bucket() {
        let metrics = RpcMetrics::default();
        metrics.record(Rpc::SendMessage, Duration::from_micros(300), true);
        metrics.record(Rpc::SendMessage, Duration::from_secs(60), false);
        let snapshot = metrics.snapshot();
        let send = snapshot.iter().find(|rpc| rpc.rpc == "SendMessage").expect("SendMessage");
        assert_eq!((send.calls, send.failures), (2, 1));
        assert_eq!(send.buckets[2], 1, "300 µs is in the ≤ 500 µs bucket");
        assert_eq!(send.buckets[LATENCY_BUCKETS_US.len()], 1, "a minute overflows");
        let route = snapshot.iter().find(|rpc| rpc.rpc == "QueryRoute").expect("QueryRoute");
        assert_eq!(route.calls, 0);
    }
}
