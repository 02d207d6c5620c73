//! Helpers of the send-path integration tests: a real NameServer and broker on loopback
//! ports, a remoting client, request builders and bounded polling of the store.
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use apogee_common::message::MessageExt;
use apogee_namesrv::{NameServer, NamesrvConfig};
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::code::request_code;
use apogee_remoting::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, GetMessageStatus};
use tempfile::TempDir;

/// Time allowed for one request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a test waits for something asynchronous (dispatch, registration).
pub const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two polls.
pub const POLL_PAUSE: Duration = Duration::from_millis(20);
/// Largest body the test brokers accept.
pub const MAX_MESSAGE_SIZE: u32 = 64 * 1024;
/// Cluster of the test brokers.
pub const CLUSTER: &str = "TestCluster";
/// Broker name of the test brokers.
pub const BROKER_NAME: &str = "broker-send";
/// Born timestamp every test message carries.
pub const BORN_TIMESTAMP: i64 = 1_700_000_000_000;

/// A NameServer, a broker registered with it, and a client; all on loopback.
pub struct TestCluster {
    /// Holds the store and the NameServer's KV file.
    pub dir: TempDir,
    /// The NameServer.
    pub namesrv: Option<NameServer>,
    /// The broker.
    pub broker: Option<Broker>,
    /// A client for both.
    pub client: RemotingClient,
}

impl TestCluster {
    /// Starts everything; `tweak` adjusts the broker config first.
    pub async fn start(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        Self::start_with(ClientConfig::default(), tweak).await
    }

    /// [`Self::start`] with a client of the given config.
    pub async fn start_with(client_config: ClientConfig, tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let namesrv = NameServer::start(NamesrvConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            kv_config_path: dir.path().join("namesrv").join("kvConfig.json"),
            ..NamesrvConfig::default()
        })
        .await
        .expect("name server starts");
        let mut config = broker_config(&dir.path().join("store"), namesrv.local_addr());
        tweak(&mut config);
        let broker = Broker::start(config).await.expect("broker starts");
        let client = RemotingClient::new(client_config, Router::new());
        Self { dir, namesrv: Some(namesrv), broker: Some(broker), client }
    }

    /// The running broker.
    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("broker running")
    }

    /// `ip:port` of the broker.
    pub fn broker_addr(&self) -> String {
        self.broker().local_addr().expect("broker listens").to_string()
    }

    /// `ip:port` of the NameServer.
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.as_ref().expect("name server running").local_addr().to_string()
    }

    /// Sends `request` to the broker.
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.broker_addr(), request, CALL_TIMEOUT).await.expect("broker answers")
    }

    /// Sends `request` to the NameServer.
    pub async fn call_namesrv(&self, request: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.namesrv_addr(), request, CALL_TIMEOUT).await.expect("name server answers")
    }

    /// The address the broker sees for this client (the born host of its messages).
    pub async fn client_addr(&self) -> SocketAddr {
        self.client.connection(&self.broker_addr()).await.expect("connected").local_addr()
    }

    /// Stops the broker only, keeping its store directory.
    pub async fn stop_broker(&mut self) -> BrokerConfig {
        let broker = self.broker.take().expect("broker running");
        let config = broker.state().config.clone();
        broker.shutdown().await;
        config
    }

    /// Starts a broker again on the same store, on a fresh port.
    pub async fn restart_broker(&mut self, mut config: BrokerConfig) {
        config.listen_port = free_port();
        self.broker = Some(Broker::start(config).await.expect("broker restarts"));
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

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A loopback broker with small store files, registered with `namesrv`.
pub fn broker_config(root: &Path, namesrv: SocketAddr) -> BrokerConfig {
    let mut config = BrokerConfig {
        broker_cluster_name: CLUSTER.to_owned(),
        broker_name: BROKER_NAME.to_owned(),
        broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: free_port(),
        fast_channel_enable: false,
        namesrv_addr: Some(namesrv.to_string()),
        ..BrokerConfig::default()
    };
    let store = &mut config.store;
    store.store_path_root_dir = root.to_path_buf();
    store.mapped_file_size_commit_log = 1024 * 1024;
    store.mapped_file_size_consume_queue = 20 * 1024;
    store.max_message_size = MAX_MESSAGE_SIZE;
    store.max_hash_slot_num = 1024;
    store.max_index_num = 4096;
    store.flush_interval_commit_log_ms = 50;
    store.flush_interval_consume_queue_ms = 50;
    store.clean_resource_interval_ms = 3_600_000;
    config
}

/// The long-key send header of a plain message to `topic`.
pub fn send_header(topic: &str, queue_id: i32, properties: &Properties) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        born_timestamp: BORN_TIMESTAMP,
        flag: 7,
        ..SendMessageRequestHeader::plain(
            "PG_TEST",
            topic,
            queue_id,
            &property::encode(properties),
            BROKER_NAME,
        )
    }
}

/// SEND_MESSAGE (10) with the long keys.
pub fn send_v1(header: SendMessageRequestHeader, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE).with_header(&header).with_body(body.to_vec())
}

/// SEND_MESSAGE_V2 (310) with the one-letter keys.
pub fn send_v2(header: SendMessageRequestHeader, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_header(&SendMessageRequestHeaderV2::from(header))
        .with_body(body.to_vec())
}

/// SEND_BATCH_MESSAGE (320) of an encoded batch body.
pub fn send_batch(mut header: SendMessageRequestHeader, body: Vec<u8>) -> RemotingCommand {
    header.batch = Some(true);
    RemotingCommand::request(request_code::SEND_BATCH_MESSAGE)
        .with_header(&SendMessageRequestHeaderV2::from(header))
        .with_body(body)
}

/// Properties from pairs.
pub fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs.iter().copied().collect()
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

/// Reads `count` records of (`topic`, `queue_id`) from `offset`, waiting for dispatch.
pub async fn read_records(
    broker: &Broker,
    topic: &str,
    queue_id: i32,
    offset: i64,
    count: usize,
) -> Vec<MessageExt> {
    let store = &broker.state().store;
    eventually(&format!("{count} records in {topic}/{queue_id}"), || async {
        let result = store.get_messages(topic, queue_id, offset, 64, u64::MAX, &AcceptAll);
        if result.status != GetMessageStatus::Found || result.messages.len() < count {
            return None;
        }
        let records = result
            .messages
            .iter()
            .take(count)
            .map(|slice| {
                RecordView::parse(slice.as_slice(), true).expect("stored record parses").to_message_ext()
            })
            .collect::<Vec<_>>();
        Some(records)
    })
    .await
}
