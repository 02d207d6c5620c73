//! (stub, owned by the core/producer work) The client instance shared per process and
//! NameServer set: route cache and refresh, broker addresses, heartbeats, and the requests
//! brokers send to clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apogee_common::MessageQueue;
use apogee_remoting::body::heartbeat::ConsumerData;
use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::RemotingCommand;

use crate::{ClientConfig, ClientError, MessageExt};

/// What the instance needs of a consumer: its heartbeat data, its topics, and hooks for
/// the requests brokers send (rebalance now, reset offsets, running info, consume directly).
pub trait ConsumerHandle: Send + Sync + 'static {
    /// Consumer group.
    fn group(&self) -> &str;
    /// What goes into the heartbeat for this consumer.
    fn consumer_data(&self) -> ConsumerData;
    /// Topics whose routes the instance must keep fresh (retry topic included).
    fn subscribed_topics(&self) -> Vec<String>;
    /// NOTIFY_CONSUMER_IDS_CHANGED: rebalance soon (must not block).
    fn rebalance_now(&self);
    /// RESET_CONSUMER_CLIENT_OFFSET: restart these queues at these offsets.
    fn reset_offsets(&self, topic: &str, offsets: HashMap<MessageQueue, i64>);
    /// GET_CONSUMER_RUNNING_INFO: a ConsumerRunningInfo JSON body.
    fn running_info(&self) -> serde_json::Value;
    /// CONSUME_MESSAGE_DIRECTLY: consume one message now; returns the ConsumeMessageDirectlyResult
    /// JSON body.
    fn consume_directly(&self, message: MessageExt) -> serde_json::Value;
}

/// The shared client instance.
#[derive(Debug)]
pub struct ClientInstance {}

impl ClientInstance {
    /// The instance for this NameServer set and instance name, created and started on first
    /// use (route refresh and heartbeat tasks).
    pub async fn get(_config: &ClientConfig) -> Result<Arc<ClientInstance>, ClientError> {
        unimplemented!()
    }
    /// `ip@instanceName`: how brokers know this client.
    pub fn client_id(&self) -> &str {
        unimplemented!()
    }
    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        unimplemented!()
    }
    /// A request to a broker; error responses are returned as responses (the caller decides).
    pub async fn invoke(
        &self,
        _addr: &str,
        _request: RemotingCommand,
        _timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        unimplemented!()
    }
    /// A oneway request to a broker.
    pub async fn invoke_oneway(&self, _addr: &str, _request: RemotingCommand) -> Result<(), ClientError> {
        unimplemented!()
    }
    /// A request to a NameServer (one of them; fails over to the next).
    pub async fn invoke_namesrv(
        &self,
        _request: RemotingCommand,
        _timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        unimplemented!()
    }
    /// The route of `topic`: cached, fetched when missing. `ClientError::NoRoute` when the
    /// NameServer has none.
    pub async fn topic_route(&self, _topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        unimplemented!()
    }
    /// Fetches the route of `topic` now and updates the caches.
    pub async fn refresh_topic_route(&self, _topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        unimplemented!()
    }
    /// The master (id 0) address of a broker group, from the routes seen.
    pub fn master_addr(&self, _broker_name: &str) -> Option<String> {
        unimplemented!()
    }
    /// An address of a broker group: `broker_id` if known, else the master, else any member.
    pub fn broker_addr(&self, _broker_name: &str, _broker_id: i64) -> Option<String> {
        unimplemented!()
    }
    /// Announces a producer group in heartbeats.
    pub fn register_producer(&self, _group: &str) -> Result<(), ClientError> {
        unimplemented!()
    }
    /// Stops announcing a producer group and tells the brokers (UNREGISTER_CLIENT).
    pub async fn unregister_producer(&self, _group: &str) {
        unimplemented!()
    }
    /// Announces a consumer; the instance refreshes its topics' routes, heartbeats it and
    /// routes broker requests for its group to it.
    pub fn register_consumer(&self, _consumer: Arc<dyn ConsumerHandle>) -> Result<(), ClientError> {
        unimplemented!()
    }
    /// Stops announcing a consumer group and tells the brokers (UNREGISTER_CLIENT).
    pub async fn unregister_consumer(&self, _group: &str) {
        unimplemented!()
    }
    /// Sends a heartbeat to every broker now.
    pub async fn send_heartbeat_to_all_brokers(&self) {
        unimplemented!()
    }
}
