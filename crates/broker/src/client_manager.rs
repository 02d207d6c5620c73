//! (stub) Live producers and consumers, by group.

use std::sync::Arc;

use apogee_remoting::body::heartbeat::SubscriptionData;

use crate::{BrokerConfig, BrokerState};

/// Live clients.
#[derive(Debug, Default)]
pub struct ClientManager {}

impl ClientManager {
    /// An empty registry.
    pub fn new(_config: &BrokerConfig) -> Self {
        Self {}
    }
    /// The subscription a group registered for a topic.
    pub fn subscription(&self, _group: &str, _topic: &str) -> Option<SubscriptionData> {
        unimplemented!()
    }
}

/// Drops clients silent past `channelExpiredTimeout`, until the broker stops.
pub async fn run_expiry(_state: Arc<BrokerState>) {}
