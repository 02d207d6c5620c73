//! Helpers of the producer integration tests: a real NameServer and brokers on free loopback
//! ports with temporary stores, topic creation, and reading stored messages back.
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use apogee_broker::{Broker, BrokerConfig};
use apogee_client::{ClientConfig, Producer};
use apogee_common::message::record::RecordView;
use apogee_common::message::MessageExt;
use apogee_common::{perm, TopicConfig};
use apogee_namesrv::{NameServer, NamesrvConfig};
use apogee_remoting::body::TopicRouteData;
use apogee_remoting::client::{ClientConfig as RemotingConfig, RemotingClient};
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson;
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, GetMessageStatus};
use tempfile::TempDir;

/// Longest a test waits for something asynchronous (registration, dispatch).
pub const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// Pause between two polls.
pub const POLL_PAUSE: Duration = Duration::from_millis(25);
/// Time allowed for one raw request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body the test brokers accept.
pub const BROKER_MAX_MESSAGE_BYTES: u32 = 1024 * 1024;
/// Cluster of the test brokers.
pub const CLUSTER: &str = "ClientTestCluster";

/// A NameServer and brokers registered with it, all on loopback.
pub struct Cluster {
    /// Holds the stores and the NameServer's KV file.
    pub dir: TempDir,
    /// The NameServer.
    pub namesrv: Option<NameServer>,
    /// The brokers, by index; `None` once stopped.
    pub brokers: Vec<Option<Broker>>,
    /// A plain remoting client for setup calls.
    pub raw: RemotingClient,
}

impl Cluster {
    /// Starts a NameServer and one broker per name; `tweak` adjusts each broker's config.
    pub async fn start(broker_names: &[&str], tweak: impl Fn(&mut BrokerConfig)) -> Self {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let dir = tempfile::tempdir().expect("temporary directory");
        let namesrv = NameServer::start(NamesrvConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            kv_config_path: dir.path().join("namesrv").join("kvConfig.json"),
            ..NamesrvConfig::default()
        })
        .await
        .expect("name server starts");
        let mut brokers = Vec::new();
        for name in broker_names {
            let mut config = broker_config(&dir.path().join(name), namesrv.local_addr(), name);
            tweak(&mut config);
            brokers.push(Some(Broker::start(config).await.expect("broker starts")));
        }
        let raw = RemotingClient::new(RemotingConfig::default(), Router::new());
        Self { dir, namesrv: Some(namesrv), brokers, raw }
    }

    /// `ip:port` of the NameServer.
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.as_ref().expect("name server running").local_addr().to_string()
    }

    /// Broker `index`, which must be running.
    pub fn broker(&self, index: usize) -> &Broker {
        self.brokers.get(index).and_then(Option::as_ref).expect("broker running")
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
        let mut running = 0;
        for broker in self.brokers.iter().flatten() {
            broker
                .state()
                .topics
                .create_or_update(TopicConfig::with_queues(topic, queues, queues, perm))
                .expect("topic created");
            running += 1;
        }
        self.wait_route(topic, running).await
    }

    /// Waits until the NameServer has a route for `topic` naming `brokers` broker groups.
    pub async fn wait_route(&self, topic: &str, brokers: usize) -> TopicRouteData {
        let addr = self.namesrv_addr();
        eventually(&format!("route of {topic} on {brokers} brokers"), || async {
            let header =
                GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: Some(true) };
            let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
            let response = self.raw.invoke(&addr, request, CALL_TIMEOUT).await.ok()?;
            if response.code != response_code::SUCCESS {
                return None;
            }
            let route: TopicRouteData = fastjson::from_slice(&response.body).ok()?;
            (route.queue_datas.len() == brokers && route.broker_datas.len() == brokers).then_some(route)
        })
        .await
    }

    /// Stops broker `index` (it unregisters from the NameServer).
    pub async fn stop_broker(&mut self, index: usize) {
        if let Some(broker) = self.brokers.get_mut(index).and_then(Option::take) {
            broker.shutdown().await;
        }
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.raw.shutdown().await;
        for broker in self.brokers.iter_mut().filter_map(Option::take) {
            broker.shutdown().await;
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown().await;
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A loopback broker named `name` with small store files, registered with `namesrv`.
pub fn broker_config(root: &Path, namesrv: SocketAddr, name: &str) -> BrokerConfig {
    let mut config = BrokerConfig {
        broker_cluster_name: CLUSTER.to_owned(),
        broker_name: name.to_owned(),
        broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: free_port(),
        fast_channel_enable: false,
        namesrv_addr: Some(namesrv.to_string()),
        ..BrokerConfig::default()
    };
    let store = &mut config.store;
    store.store_path_root_dir = root.to_path_buf();
    store.mapped_file_size_commit_log = 4 * 1024 * 1024;
    store.mapped_file_size_consume_queue = 20 * 1024;
    store.max_message_size = BROKER_MAX_MESSAGE_BYTES;
    store.max_hash_slot_num = 1024;
    store.max_index_num = 4096;
    store.flush_interval_commit_log_ms = 50;
    store.flush_interval_consume_queue_ms = 50;
    store.clean_resource_interval_ms = 3_600_000;
    config
}

/// Polls `check` until it returns `Some`, for at most [`WAIT_LIMIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

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
