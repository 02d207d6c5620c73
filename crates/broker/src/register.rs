//! (stub) Registration with the NameServers.

use std::sync::Arc;

use crate::BrokerState;

/// Registers at start and every `registerNameServerPeriod` until the broker stops.
pub async fn run(_state: Arc<BrokerState>) {}

/// Registers with every NameServer now (after a topic change).
pub async fn register_all(_state: &BrokerState) {}

/// Tells every NameServer the broker leaves.
pub async fn unregister_all(_state: &BrokerState) {}
