//! Helpers of the producer integration tests: a testkit NameServer and brokers with temporary
//! stores, topic creation, and reading stored messages back.
#![allow(dead_code)]

use std::time::Duration;

use apogee_broker::{Broker, BrokerConfig};
use apogee_client::{ClientConfig, Producer};
use apogee_common::message::record::RecordView;
use apogee_common::message::MessageExt;
use apogee_common::perm;
use apogee_remoting::body::TopicRouteData;
use apogee_store::{AcceptAll, GetMessageStatus};
use apogee_testkit::Cluster as TestCluster;

/// Time allowed for one raw request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body the test brokers accept.
pub const BROKER_MAX_MESSAGE_BYTES: u32 = 1024 * 1024;
/// Cluster of the test brokers.
pub const CLUSTER: &str = "ClientTestCluster";

/// A testkit NameServer and brokers registered with it.
pub struct Cluster {
    cluster: TestCluster,
}

impl Cluster {
    /// Starts a NameServer and one broker per name; `tweak` adjusts each broker's config.
    pub async fn start(
        broker_names: &[&str],
        tweak: impl Fn(&mut BrokerConfig) + Send + Sync + 'static,
    ) -> Self {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let cluster = TestCluster::builder()
            .cluster_name(CLUSTER)
            .broker_names(broker_names)
            .configure(move |_, config| {
                config.store.max_message_size = BROKER_MAX_MESSAGE_BYTES;
                tweak(config);
            })
            .start()
            .await;
        Self { cluster }
    }

    /// Starts a NameServer and one broker named `broker_name` with the test settings, holding
    /// `topic` of `queues` read/write queues, routed.
    pub async fn with_topic(broker_name: &str, topic: &str, queues: i32) -> Self {
        let cluster = Self::start(&[broker_name], |_| {}).await;
        cluster.create_topic(topic, queues).await;
        cluster
    }

    /// `ip:port` of the NameServer.
    pub fn namesrv_addr(&self) -> String {
        self.cluster.namesrv_addr().to_owned()
    }

    /// Broker `index`, which must be running.
    pub fn broker(&self, index: usize) -> &Broker {
        self.cluster.broker(index)
    }

    /// Client settings pointing at this cluster.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.namesrv_addr())
    }

    /// A started producer of `group` with a generous send budget.
    pub async fn producer(&self, group: &str) -> Producer {
        Producer::builder()
            .group(group)
            .client_config(self.client_config())
            .send_timeout(Duration::from_secs(10))
            .start()
            .await
            .expect("producer starts")
    }

    /// Creates `topic` with `queues` read/write queues on every running broker (the broker
    /// registers it at once) and waits until the NameServer routes it to all of them.
    pub async fn create_topic(&self, topic: &str, queues: i32) -> TopicRouteData {
        self.create_topic_with_perm(topic, queues, perm::READ_WRITE).await
    }

    /// [`Self::create_topic`] with explicit permission bits.
    pub async fn create_topic_with_perm(&self, topic: &str, queues: i32, perm: i32) -> TopicRouteData {
        self.cluster.create_topic(topic, queues, perm).await
    }

    /// Waits until the NameServer has a route for `topic` naming `brokers` broker groups.
    pub async fn wait_route(&self, topic: &str, brokers: usize) -> TopicRouteData {
        self.cluster.wait_route(topic, brokers).await
    }

    /// Stops broker `index` (it unregisters from the NameServer).
    pub async fn stop_broker(&mut self, index: usize) {
        self.cluster.stop_broker(index).await;
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}

/// Polls a check until it returns `Some`, for at most [`apogee_testkit::WAIT_LIMIT`].
pub use apogee_testkit::wait_for as eventually;

/// The records of (`topic`, `queue_id`) from `offset` on that are dispatched now (at most 64).
pub fn stored(broker: &Broker, topic: &str, queue_id: i32, offset: i64) -> Vec<MessageExt> {
    let result = broker.state().store.get_messages(topic, queue_id, offset, 64, u64::MAX, &AcceptAll);
    if result.status != GetMessageStatus::Found {
        return Vec::new();
    }
    result
        .messages
        .iter()
        .map(|slice| {
            RecordView::parse(slice.as_slice(), true).expect("stored record parses").to_message_ext()
        })
        .collect()
}

/// The record at (`topic`, `queue_id`, `offset`), waiting for dispatch.
pub async fn stored_at(broker: &Broker, topic: &str, queue_id: i32, offset: i64) -> MessageExt {
    eventually(&format!("record {topic}/{queue_id}@{offset}"), || async {
        stored(broker, topic, queue_id, offset).into_iter().next()
    })
    .await
}

/// Every record of `topic` on `broker` (queues `0..queues`), waiting until there are `count`.
pub async fn stored_all(broker: &Broker, topic: &str, queues: i32, count: usize) -> Vec<MessageExt> {
    eventually(&format!("{count} records in {topic}"), || async {
        let all: Vec<MessageExt> =
            (0..queues).flat_map(|queue_id| stored(broker, topic, queue_id, 0)).collect();
        (all.len() >= count).then_some(all)
    })
    .await
}
