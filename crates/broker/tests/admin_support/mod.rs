//! Shared by the admin integration tests: a testkit broker with its store in a temporary
//! directory, a remoting client to drive it, and helpers to store and read messages
//! without the send and pull handlers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use apogee_broker::message::{self, InnerMessage};
use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::record::RecordView;
use apogee_common::message::{MessageExt, Properties};
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, AppendInfo};
use apogee_testkit::Cluster;
use bytes::Bytes;

/// How often polling loops look again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// A running testkit broker (no NameServer) and a client connected to it.
pub struct TestBroker {
    cluster: Cluster,
    /// `ip:port` of the broker.
    pub addr: String,
}

/// This suite's broker settings, on top of the testkit's.
fn configure(config: &mut BrokerConfig) {
    config.flush_delay_offset_interval_ms = 200;
    config.store.mapped_file_size_commit_log = 8 * 1024 * 1024;
}

impl TestBroker {
    /// Starts a broker with the default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `adjust` changed the test settings.
    pub async fn start_with(adjust: impl Fn(&mut BrokerConfig) + Send + Sync + 'static) -> Self {
        let cluster = Cluster::builder()
            .namesrvs(0)
            .broker_names(&["broker-test"])
            .configure(move |_, config| {
                configure(config);
                adjust(config);
            })
            .start()
            .await;
        let addr = cluster.broker_addr(0);
        Self { cluster, addr }
    }

    /// Stops the broker and starts a new one on the same store directory (new ports), with the
    /// test settings changed by `adjust` only.
    pub async fn restart(self, adjust: impl FnOnce(&mut BrokerConfig)) -> Self {
        let Self { mut cluster, .. } = self;
        let defaults = cluster.stop_broker(0).await;
        cluster
            .restart_broker(0, |config| {
                *config = apogee_testkit::broker_config(&defaults.store.store_path_root_dir, "broker-test");
                configure(config);
                adjust(config);
            })
            .await;
        let addr = cluster.broker_addr(0);
        Self { cluster, addr }
    }

    /// The running broker.
    pub fn broker(&self) -> &Broker {
        self.cluster.broker(0)
    }

    /// The broker's store directory.
    pub fn store_dir(&self) -> &Path {
        &self.broker().state().config.store.store_path_root_dir
    }

    /// Sends `request` and waits for the answer.
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_broker(0, request).await
    }

    /// Sends `request`, which must be answered SUCCESS (the remark shown if not); the answer.
    pub async fn call_ok(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_broker_ok(0, request).await
    }

    /// The address stored records carry.
    pub fn store_host(&self) -> SocketAddr {
        self.broker().state().store_host
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
        let result = message::put_message(self.broker().state(), message, false).await;
        assert!(result.status.is_stored(), "message stored: {:?}", result.status);
        result.append.expect("placement of a stored message")
    }

    /// Every message of a queue, decoded.
    pub fn read_queue(&self, topic: &str, queue_id: i32) -> Vec<MessageExt> {
        let result =
            self.broker().state().store.get_messages(topic, queue_id, 0, 1024, 64 * 1024 * 1024, &AcceptAll);
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
        self.cluster.shutdown().await;
    }
}

/// A message for `topic`/`queue_id` with `properties`.
pub fn inner(topic: &str, queue_id: i32, body: &str, properties: &[(&str, &str)]) -> InnerMessage {
    let mut props = Properties::new();
    for (key, value) in properties {
        props.insert(*key, *value);
    }
    let born_host = "127.0.0.1:50000".parse().expect("address");
    InnerMessage::new(topic.to_owned(), queue_id, Bytes::copy_from_slice(body.as_bytes()), props, born_host)
}

/// Asserts that `response` carries `code` and exactly `remark`, as Java answers a request it
/// cannot serve.
pub fn assert_code_and_remark(response: &RemotingCommand, code: i32, remark: &str) {
    assert_eq!(response.code, code);
    assert_eq!(response.remark.as_deref(), Some(remark));
}
