//! Harness of the push-consumer integration tests: a testkit NameServer and broker, a raw remoting client that produces with SEND_MESSAGE_V2 (so the tests
//! do not depend on the SDK's producer), and bounded waiting.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_client::consumer::push::PushConsumerBuilder;
use apogee_client::{ConsumeResult, MessageExt, MessageQueue, PushConsumer};
use apogee_common::message::property::{self, Properties};
use apogee_remoting::body::admin::ConsumerConnection;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson;
use apogee_remoting::header::admin::GetConsumerConnectionListRequestHeader;
use apogee_remoting::RemotingCommand;
use apogee_testkit::Cluster as TestCluster;

/// Time allowed to one request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two checks of a condition.
pub const POLL_PAUSE: Duration = Duration::from_millis(100);
/// Broker group name of the test broker.
pub const BROKER_NAME: &str = "broker-push";
/// Delay levels of the test broker: every level is one second, so retries come back fast.
pub const FAST_DELAY_LEVELS: &str = "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";

/// A testkit NameServer and one broker registered with it, and a producing client.
pub struct Cluster {
    cluster: TestCluster,
}

impl Cluster {
    /// Starts the NameServer and the broker.
    pub async fn start() -> Self {
        let cluster = TestCluster::builder()
            .cluster_name("PushCluster")
            .broker_names(&[BROKER_NAME])
            .configure(|_, config| config.store.message_delay_level = FAST_DELAY_LEVELS.to_owned())
            .start()
            .await;
        Self { cluster }
    }

    /// Starts the cluster, with test logs on, holding `topic` of `queues` read/write queues.
    pub async fn with_topic(topic: &str, queues: i32) -> Self {
        init_tracing();
        let cluster = Self::start().await;
        cluster.create_topic(topic, queues).await;
        cluster
    }

    /// A push consumer of `group` on this cluster, to be configured and started.
    pub fn consumer(&self, group: impl Into<String>) -> PushConsumerBuilder {
        PushConsumer::builder().group(group).namesrv(self.namesrv_addr())
    }

    /// The directory of the stores and KV files (removed with the cluster).
    pub fn dir(&self) -> &Path {
        self.cluster.dir()
    }

    /// `ip:port` of the NameServer.
    pub fn namesrv_addr(&self) -> String {
        self.cluster.namesrv_addr().to_owned()
    }

    /// `ip:port` of the broker.
    pub fn broker_addr(&self) -> String {
        self.cluster.broker_addr(0)
    }

    /// Creates `topic` with `queues` read/write queues and waits until the NameServer routes it.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        self.cluster.create_topic(topic, queues, apogee_common::perm::READ_WRITE).await;
    }

    /// Sends one message with SEND_MESSAGE_V2 to (`topic`, `queue_id`); returns its queue offset.
    pub async fn send(&self, topic: &str, queue_id: i32, tags: Option<&str>, body: &str) -> i64 {
        let mut properties = Properties::new();
        if let Some(tags) = tags {
            properties.insert(property::TAGS, tags);
        }
        let sent =
            self.cluster.send_v2(0, "PG_PUSH_TEST", topic, queue_id, &properties, body.as_bytes()).await;
        sent.queue_offset
    }

    /// Sends `request` to the broker and returns the answer.
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_broker(0, request).await
    }

    /// What the broker knows of `group` from its members' heartbeats
    /// (GET_CONSUMER_CONNECTION_LIST).
    pub async fn consumer_connection(&self, group: &str) -> ConsumerConnection {
        let header = GetConsumerConnectionListRequestHeader { consumer_group: group.to_owned(), bname: None };
        let request =
            RemotingCommand::request(request_code::GET_CONSUMER_CONNECTION_LIST).with_header(&header);
        let response = self.cluster.call_broker(0, request).await;
        assert_eq!(response.code, response_code::SUCCESS, "connection list refused: {:?}", response.remark);
        fastjson::from_slice(&response.body).expect("connection list body")
    }

    /// Stops the broker and the NameServer.
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}

/// Waits until `check` holds, failing the test after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// One delivery as a listener saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which consumer got it.
    pub consumer: &'static str,
    /// The message.
    pub message: MessageExt,
}

impl Delivery {
    /// The body as text.
    pub fn body(&self) -> String {
        String::from_utf8_lossy(&self.message.message.body).into_owned()
    }
}

/// Deliveries recorded by listeners, in the order the listeners were called.
#[derive(Debug, Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Delivery>>>);

impl Log {
    /// A listener that records every message for `consumer` and reports success.
    pub fn listener(
        &self,
        consumer: &'static str,
    ) -> impl Fn(Vec<MessageExt>) -> std::future::Ready<ConsumeResult> + Send + Sync + 'static {
        let log = self.clone();
        move |messages| {
            log.record(consumer, messages);
            std::future::ready(ConsumeResult::Success)
        }
    }

    /// Records `messages` as delivered to `consumer`.
    pub fn record(&self, consumer: &'static str, messages: Vec<MessageExt>) {
        let mut log = self.0.lock().expect("log lock");
        log.extend(messages.into_iter().map(|message| Delivery { consumer, message }));
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().expect("log lock").clone()
    }

    /// Distinct bodies delivered to `consumer` (any consumer with `None`).
    pub fn bodies(&self, consumer: Option<&str>) -> BTreeSet<String> {
        self.all().iter().filter(|d| consumer.is_none_or(|c| d.consumer == c)).map(Delivery::body).collect()
    }
}

/// The queues of `topic` a consumer holds.
pub fn queues_of(consumer: &PushConsumer, topic: &str) -> BTreeSet<MessageQueue> {
    consumer.assigned_queues().into_iter().filter(|mq| mq.topic == topic).collect()
}

/// Waits until `consumer` holds all `count` queues of `topic`, failing the test after `limit`.
pub async fn wait_for_every_queue(
    what: &str,
    limit: Duration,
    consumer: &PushConsumer,
    topic: &str,
    count: i32,
) {
    wait_until(what, limit, || queues_of(consumer, topic) == all_queues(topic, count)).await;
}

/// Every queue of `topic` on the test broker.
pub fn all_queues(topic: &str, count: i32) -> BTreeSet<MessageQueue> {
    (0..count).map(|id| MessageQueue::new(topic, BROKER_NAME, id)).collect()
}

/// Installs a test log subscriber once (RUST_LOG controls it).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
