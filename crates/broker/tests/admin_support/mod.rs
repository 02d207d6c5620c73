//! Shared by the admin integration tests: a broker on free loopback ports with its store in a
//! temporary directory, a remoting client to drive it, and helpers to store and read messages
//! without the send and pull handlers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apogee_broker::message::{self, InnerMessage};
use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::record::RecordView;
use apogee_common::message::{MessageExt, Properties};
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::router::Router;
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, AppendInfo};
use bytes::Bytes;

/// How long one request may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often polling loops look again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// A running broker and a client connected to it.
pub struct TestBroker {
    pub broker: Broker,
    pub addr: String,
    pub client: RemotingClient,
    pub dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Settings of a small test broker rooted at `root`.
pub fn test_config(root: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig {
        broker_name: "broker-test".to_owned(),
        broker_ip1: "127.0.0.1".parse().expect("loopback"),
        listen_port: free_port(),
        fast_channel_enable: false,
        namesrv_addr: None,
        flush_delay_offset_interval_ms: 200,
        ..BrokerConfig::default()
    };
    config.store.store_path_root_dir = root.to_path_buf();
    config.store.mapped_file_size_commit_log = 8 * 1024 * 1024;
    config.store.mapped_file_size_consume_queue = 20 * 1024;
    config.store.max_hash_slot_num = 1024;
    config.store.max_index_num = 4096;
    config
}

impl TestBroker {
    /// Starts a broker with the default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `adjust` changed the test settings.
    pub async fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let broker = Broker::start(config).await.expect("broker starts");
        let addr = broker.local_addr().expect("listening").to_string();
        let client = RemotingClient::new(ClientConfig::default(), Router::new());
        Self { broker, addr, client, dir }
    }

    /// Stops the broker and starts a new one on the same store directory (new ports).
    pub async fn restart(self, adjust: impl FnOnce(&mut BrokerConfig)) -> Self {
        let Self { broker, client, dir, .. } = self;
        client.shutdown().await;
        broker.shutdown().await;
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let broker = Broker::start(config).await.expect("broker restarts");
        let addr = broker.local_addr().expect("listening").to_string();
        let client = RemotingClient::new(ClientConfig::default(), Router::new());
        Self { broker, addr, client, dir }
    }

    /// Sends `request` and waits for the answer.
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.addr, request, CALL_TIMEOUT).await.expect("broker answers")
    }

    /// The address stored records carry.
    pub fn store_host(&self) -> SocketAddr {
        self.broker.state().store_host
    }

    /// Stores one message directly (as the send handler would) and returns where it landed.
    pub async fn store(
        &self,
        topic: &str,
        queue_id: i32,
        body: &str,
        properties: &[(&str, &str)],
    ) -> AppendInfo {
        let mut message = inner(topic, queue_id, body, properties);
        message.properties.insert("WAIT", "false");
        self.store_inner(&message).await
    }

    /// Stores a prepared message.
    pub async fn store_inner(&self, message: &InnerMessage) -> AppendInfo {
        let result = message::put_message(self.broker.state(), message, false).await;
        assert!(result.status.is_stored(), "message stored: {:?}", result.status);
        result.append.expect("placement of a stored message")
    }

    /// Every message of a queue, decoded.
    pub fn read_queue(&self, topic: &str, queue_id: i32) -> Vec<MessageExt> {
        let result =
            self.broker.state().store.get_messages(topic, queue_id, 0, 1024, 64 * 1024 * 1024, &AcceptAll);
        result
            .messages
            .iter()
            .map(|record| RecordView::parse(record.as_slice(), false).expect("valid record").to_message_ext())
            .collect()
    }

    /// Waits until the queue holds at least `count` messages (bounded by `limit`).
    pub async fn wait_for_messages(
        &self,
        topic: &str,
        queue_id: i32,
        count: usize,
        limit: Duration,
    ) -> Vec<MessageExt> {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.read_queue(topic, queue_id);
            if messages.len() >= count || Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Stops the broker and the client.
    pub async fn stop(self) {
        self.client.shutdown().await;
        self.broker.shutdown().await;
    }
}

/// A message for `topic`/`queue_id` with `properties`.
pub fn inner(topic: &str, queue_id: i32, body: &str, properties: &[(&str, &str)]) -> InnerMessage {
    let mut props = Properties::new();
    for (key, value) in properties {
        props.insert(*key, *value);
    }
    InnerMessage {
        topic: topic.to_owned(),
        queue_id,
        flag: 0,
        body: Bytes::copy_from_slice(body.as_bytes()),
        properties: props,
        sys_flag: 0,
        born_timestamp: apogee_common::time::now_ms(),
        born_host: "127.0.0.1:50000".parse().expect("address"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}
