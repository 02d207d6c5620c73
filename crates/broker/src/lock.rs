//! (stub) Queue locks for ordered consumption.

/// Locks by (group, queue).
#[derive(Debug, Default)]
pub struct RebalanceLockManager {}

impl RebalanceLockManager {
    /// No locks.
    pub fn new() -> Self {
        Self {}
    }
    /// True when any queue is locked by the group (orderly consumers' retries go to the DLQ).
    pub fn is_group_locked(&self, _group: &str) -> bool {
        unimplemented!()
    }
}
