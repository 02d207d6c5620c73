//! Harness of the client integration tests: a testkit NameServer and broker over a temporary
//! store, and a raw remoting client that produces with SEND_MESSAGE_V2 and
//! commits offsets directly (the SDK's producer is not needed).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use apogee_client::consumer::lite_pull::LitePullConsumerBuilder;
use apogee_client::{Admin, ClientError, LitePullConsumer, MessageExt, MessageQueue};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::header::consumer::UpdateConsumerOffsetRequestHeader;
use apogee_remoting::header::send::SendMessageResponseHeader;
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_testkit::Cluster;

/// Cluster of the test broker.
pub const CLUSTER: &str = "ClientTestCluster";
/// Name of the test broker.
pub const BROKER_NAME: &str = "broker-client-test";
/// Longest a test waits for something asynchronous.
pub use apogee_testkit::WAIT_LIMIT;
/// Timeout of one raw request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A testkit NameServer and broker, and a raw client.
pub struct TestCluster {
    cluster: Cluster,
    /// `ip:port` of the NameServer.
    pub namesrv_addr: String,
    /// `ip:port` of the broker.
    pub broker_addr: String,
    /// A raw remoting client.
    pub client: RemotingClient,
}

impl TestCluster {
    /// Starts both servers (the broker is registered when this returns).
    pub async fn start() -> Self {
        let cluster = Cluster::builder().cluster_name(CLUSTER).broker_names(&[BROKER_NAME]).start().await;
        Self {
            namesrv_addr: cluster.namesrv_addr().to_owned(),
            broker_addr: cluster.broker_addr(0),
            client: RemotingClient::new(ClientConfig::default(), Router::new()),
            cluster,
        }
    }

    /// Starts both servers holding `topic` of `queues` queues, routed.
    pub async fn with_topic(topic: &str, queues: i32) -> Self {
        let cluster = Self::start().await;
        cluster.create_topic(topic, queues).await;
        cluster
    }

    /// Creates `topic` with `queues` queues on the broker and waits for its route.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        self.cluster.create_topic(topic, queues, apogee_common::perm::READ_WRITE).await;
    }

    /// Sends one message with SEND_MESSAGE_V2; returns the broker's answer header.
    pub async fn send(
        &self,
        topic: &str,
        queue_id: i32,
        tags: Option<&str>,
        keys: Option<&str>,
        body: &str,
    ) -> SendMessageResponseHeader {
        let mut properties = Properties::new();
        if let Some(tags) = tags {
            properties.insert(property::TAGS, tags);
        }
        if let Some(keys) = keys {
            properties.insert(property::KEYS, keys);
        }
        properties.insert(property::UNIQ_KEY, UniqIdGenerator::global().next_id());
        self.cluster.send_v2(0, "PG_CLIENT_TEST", topic, queue_id, &properties, body.as_bytes()).await
    }

    /// Sends `count` messages without tags or keys to queue `queue_id` of `topic`, with bodies
    /// `{prefix}0`, `{prefix}1`, …: the numbered backlog most tests start from.
    pub async fn send_numbered(&self, topic: &str, queue_id: i32, prefix: &str, count: usize) {
        for index in 0..count {
            self.send(topic, queue_id, None, None, &format!("{prefix}{index}")).await;
        }
    }

    /// Commits `offset` for `group` on `queue` directly.
    pub async fn commit(&self, group: &str, queue: &MessageQueue, offset: i64) {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            commit_offset: offset,
            bname: None,
        };
        let request = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&header);
        let response =
            self.client.invoke(&self.broker_addr, request, CALL_TIMEOUT).await.expect("broker answers");
        assert_eq!(response.code, response_code::SUCCESS, "offset committed: {:?}", response.remark);
    }

    /// A lite pull consumer of `group` on this cluster, named `instance`, that starts a queue
    /// without committed offset at its first message.
    pub fn lite_pull(&self, group: &str, instance: &str) -> LitePullConsumerBuilder {
        LitePullConsumer::builder()
            .group(group)
            .namesrv(self.namesrv_addr.clone())
            .instance_name(instance)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
    }

    /// An admin client of this cluster.
    pub async fn admin(&self) -> Admin {
        Admin::builder().namesrv(self.namesrv_addr.clone()).start().await.expect("admin starts")
    }

    /// A queue of `topic` on the test broker.
    pub fn queue(&self, topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue::new(topic, BROKER_NAME, queue_id)
    }

    /// The broker, for tests that look at what it knows or speak from it to the clients.
    pub fn broker(&self) -> &apogee_broker::Broker {
        self.cluster.broker(0)
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.client.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// Polls a check until it returns `Some`, for at most [`WAIT_LIMIT`].
pub use apogee_testkit::wait_for as eventually;

/// Polls until `count` messages arrived or the wait limit passed.
pub async fn poll_until(consumer: &LitePullConsumer, count: usize) -> Vec<MessageExt> {
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(500)).await);
    }
    got
}

/// The body of a message as text.
pub fn body(message: &MessageExt) -> String {
    String::from_utf8_lossy(&message.message.body).into_owned()
}

/// Whether `result` is a broker refusal with `code`.
pub fn refused_with<T>(result: &Result<T, ClientError>, code: i32) -> bool {
    matches!(result, Err(ClientError::Broker { code: actual, .. }) if *actual == code)
}
