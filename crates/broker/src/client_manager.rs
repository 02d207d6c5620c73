//! (stub) Live producers and consumers, by group.

use std::sync::Arc;

use apogee_remoting::body::admin::{ConsumerConnection, ProducerConnection};
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
    /// The live consumers of `group`, as GET_CONSUMER_CONNECTION_LIST (203) and the consume
    /// stats topic filter need them: one `Connection` per live channel (`clientAddr` = the
    /// channel's remote `ip:port`, `clientId`, `language` and `version` from its heartbeat),
    /// the group's `consumeType`, `messageModel` and `consumeFromWhere` from the latest
    /// heartbeat, and `subscriptionTable` (topic → SubscriptionData) as registered. `None` when
    /// the group has no live channel (the handler answers CONSUMER_NOT_ONLINE).
    /// (Added for the admin handlers; to be implemented by the owner of this module.)
    pub fn consumer_connection(&self, _group: &str) -> Option<ConsumerConnection> {
        unimplemented!()
    }
    /// The live producers of `group` for GET_PRODUCER_CONNECTION_LIST (204): one `Connection`
    /// per live channel, filled as in [`Self::consumer_connection`]. `None` when the group has
    /// no live channel (the handler answers SYSTEM_ERROR "the producer group[g] not exist").
    /// (Added for the admin handlers; to be implemented by the owner of this module.)
    pub fn producer_connection(&self, _group: &str) -> Option<ProducerConnection> {
        unimplemented!()
    }
    /// Names of the online consumer groups whose subscriptions include `topic` (Java
    /// `ConsumerManager.queryTopicConsumeByWho`), for QUERY_TOPIC_CONSUME_BY_WHO (300); any
    /// order, no duplicates. (Added for the admin handlers; to be implemented by the owner of
    /// this module.)
    pub fn groups_subscribing(&self, _topic: &str) -> Vec<String> {
        unimplemented!()
    }
}

/// Drops clients silent past `channelExpiredTimeout`, until the broker stops.
pub async fn run_expiry(_state: Arc<BrokerState>) {}
