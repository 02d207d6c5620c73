//! (stub) Pulls parked until a message arrives.

use std::sync::Arc;

use apogee_store::ArrivalListener;

use crate::BrokerState;

/// Parked pulls by queue.
#[derive(Debug, Default)]
pub struct PullRequestHoldService {}

impl PullRequestHoldService {
    /// None parked.
    pub fn new() -> Self {
        Self {}
    }
}

impl ArrivalListener for PullRequestHoldService {
    fn arrived(&self, _topic: &str, _queue_id: i32, _max_offset: i64) {}
}

/// Re-checks parked pulls periodically, until the broker stops.
pub async fn run_checker(_state: Arc<BrokerState>) {}
