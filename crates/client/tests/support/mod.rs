//! Harness of the client integration tests: a NameServer and a broker on free loopback ports
//! over a temporary store, and a raw remoting client that produces with SEND_MESSAGE_V2 and
//! commits offsets directly (the SDK's producer is not needed).

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use apogee_broker::{Broker, BrokerConfig};
use apogee_client::{ClientError, LitePullConsumer, MessageExt, MessageQueue};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_namesrv::{NameServer, NamesrvConfig};
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::header::admin::CreateTopicRequestHeader;
use apogee_remoting::header::consumer::UpdateConsumerOffsetRequestHeader;
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use tempfile::TempDir;

/// Cluster of the test broker.
pub const CLUSTER: &str = "ClientTestCluster";
/// Name of the test broker.
pub const BROKER_NAME: &str = "broker-client-test";
/// Longest a test waits for something asynchronous.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// Timeout of one raw request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A NameServer, a broker registered with it, and a raw client.
pub struct TestCluster {
    _dir: TempDir,
    namesrv: Option<NameServer>,
    broker: Option<Broker>,
    /// `ip:port` of the NameServer.
    pub namesrv_addr: String,
    /// `ip:port` of the broker.
    pub broker_addr: String,
    /// A raw remoting client.
    pub client: RemotingClient,
}

impl TestCluster {
    /// Starts both servers and waits for the broker's registration.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let namesrv = NameServer::start(NamesrvConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            kv_config_path: dir.path().join("namesrv").join("kvConfig.json"),
            ..NamesrvConfig::default()
        })
        .await
        .expect("name server starts");
        let namesrv_addr = namesrv.local_addr().to_string();
        let mut config = BrokerConfig {
            broker_cluster_name: CLUSTER.to_owned(),
            broker_name: BROKER_NAME.to_owned(),
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen_port: free_port(),
            fast_channel_enable: false,
            namesrv_addr: Some(namesrv_addr.clone()),
            ..BrokerConfig::default()
        };
        let store = &mut config.store;
        store.store_path_root_dir = dir.path().join("store");
        store.mapped_file_size_commit_log = 4 * 1024 * 1024;
        store.mapped_file_size_consume_queue = 20 * 1024;
        store.max_hash_slot_num = 1024;
        store.max_index_num = 4096;
        let broker = Broker::start(config).await.expect("broker starts");
        let broker_addr = broker.local_addr().expect("broker listens").to_string();
        let cluster = Self {
            _dir: dir,
            namesrv: Some(namesrv),
            broker: Some(broker),
            namesrv_addr,
            broker_addr,
            client: RemotingClient::new(ClientConfig::default(), Router::new()),
        };
        eventually("the broker registered", || async {
            let request = RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO);
            let response = cluster.client.invoke(&cluster.namesrv_addr, request, CALL_TIMEOUT).await.ok()?;
            String::from_utf8_lossy(&response.body).contains(BROKER_NAME).then_some(())
        })
        .await;
        cluster
    }

    /// Creates `topic` with `queues` queues on the broker and waits for its route.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        let header = CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            ..CreateTopicRequestHeader::default()
        };
        let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC).with_header(&header);
        let response =
            self.client.invoke(&self.broker_addr, request, CALL_TIMEOUT).await.expect("broker answers");
        assert_eq!(response.code, response_code::SUCCESS, "topic created: {:?}", response.remark);
        eventually(&format!("a route for {topic}"), || async {
            let header =
                GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: None };
            let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
            let response = self.client.invoke(&self.namesrv_addr, request, CALL_TIMEOUT).await.ok()?;
            (response.code == response_code::SUCCESS).then_some(())
        })
        .await;
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
        let header = SendMessageRequestHeader::plain(
            "PG_CLIENT_TEST",
            topic,
            queue_id,
            &property::encode(&properties),
            BROKER_NAME,
        );
        let request = header.into_v2_request(body.as_bytes().to_vec());
        let response =
            self.client.invoke(&self.broker_addr, request, CALL_TIMEOUT).await.expect("broker answers");
        assert_eq!(response.code, response_code::SUCCESS, "message stored: {:?}", response.remark);
        response.decode_header().expect("send response header")
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

    /// A queue of `topic` on the test broker.
    pub fn queue(&self, topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue::new(topic, BROKER_NAME, queue_id)
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.client.shutdown().await;
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown().await;
        }
    }
}

/// Polls `check` until it returns `Some`, for at most [`WAIT_LIMIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
