//! The consumer's view of the client instance: the few calls it makes, behind a trait so the
//! pull, offset and rebalance logic can be exercised against a broker without the shared
//! instance (the in-crate tests use a direct remoting connection).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::RemotingCommand;

use crate::instance::{ClientInstance, ConsumerHandle};
use crate::ClientError;

/// A boxed, sendable future: what the object-safe methods of [`Link`] return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a lite pull consumer needs from the client instance.
pub(crate) trait Link: Send + Sync + 'static {
    /// How brokers know this client (`ip@instanceName`).
    fn client_id(&self) -> String;
    /// Timeout of offset and admin-style calls.
    fn api_timeout(&self) -> Duration;
    /// A request to a broker; error responses come back as responses.
    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>>;
    /// A oneway request to a broker.
    fn invoke_oneway<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Result<(), ClientError>>;
    /// The (cached) route of `topic`.
    fn topic_route<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Arc<TopicRouteData>, ClientError>>;
    /// Announces the consumer in heartbeats and routes broker requests for its group to it.
    fn register_consumer(&self, consumer: Arc<dyn ConsumerHandle>) -> Result<(), ClientError>;
    /// Stops announcing the group and tells the brokers.
    fn unregister_consumer<'a>(&'a self, group: &'a str) -> BoxFuture<'a, ()>;
    /// Heartbeats every known broker now (after a subscription change).
    fn send_heartbeat(&self) -> BoxFuture<'_, ()>;
}

impl Link for ClientInstance {
    fn client_id(&self) -> String {
        ClientInstance::client_id(self).to_owned()
    }

    fn api_timeout(&self) -> Duration {
        self.config().api_timeout
    }

    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>> {
        Box::pin(ClientInstance::invoke(self, addr, request, timeout))
    }

    fn invoke_oneway<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(ClientInstance::invoke_oneway(self, addr, request))
    }

    fn topic_route<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Arc<TopicRouteData>, ClientError>> {
        Box::pin(ClientInstance::topic_route(self, topic))
    }

    fn register_consumer(&self, consumer: Arc<dyn ConsumerHandle>) -> Result<(), ClientError> {
        ClientInstance::register_consumer(self, consumer)
    }

    fn unregister_consumer<'a>(&'a self, group: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(ClientInstance::unregister_consumer(self, group))
    }

    fn send_heartbeat(&self) -> BoxFuture<'_, ()> {
        Box::pin(ClientInstance::send_heartbeat_to_all_brokers(self))
    }
}
