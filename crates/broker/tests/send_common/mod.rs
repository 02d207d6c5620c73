//! Helpers of the send-path integration tests: a testkit cluster of one NameServer and one
//! broker, request builders and bounded polling of the store.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::property::{self, Properties};
use apogee_common::message::record::RecordView;
use apogee_common::message::MessageExt;
use apogee_remoting::client::ClientConfig;
use apogee_remoting::code::request_code;
use apogee_remoting::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, GetMessageStatus};
use apogee_testkit::Cluster;

/// Longest a test waits for something asynchronous (dispatch, registration).
pub const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// Largest body the test brokers accept.
pub const MAX_MESSAGE_SIZE: u32 = 64 * 1024;
/// Cluster of the test brokers.
pub const CLUSTER: &str = "TestCluster";
/// Broker name of the test brokers.
pub const BROKER_NAME: &str = "broker-send";
/// Born timestamp every test message carries.
pub const BORN_TIMESTAMP: i64 = 1_700_000_000_000;

/// A NameServer and a broker registered with it, from the testkit.
pub struct TestCluster {
    cluster: Cluster,
}

impl TestCluster {
    /// Starts everything; `tweak` adjusts the broker config first.
    pub async fn start(tweak: impl Fn(&mut BrokerConfig) + Send + Sync + 'static) -> Self {
        Self::start_with(ClientConfig::default(), tweak).await
    }

    /// [`Self::start`] with a client of the given config.
    pub async fn start_with(
        client_config: ClientConfig,
        tweak: impl Fn(&mut BrokerConfig) + Send + Sync + 'static,
    ) -> Self {
        let cluster = Cluster::builder()
            .cluster_name(CLUSTER)
            .broker_names(&[BROKER_NAME])
            .client_config(client_config)
            .configure(move |_, config| {
                let store = &mut config.store;
                store.mapped_file_size_commit_log = 1024 * 1024;
                store.max_message_size = MAX_MESSAGE_SIZE;
                tweak(config);
            })
            .start()
            .await;
        Self { cluster }
    }

    /// The running broker.
    pub fn broker(&self) -> &Broker {
        self.cluster.broker(0)
    }

    /// `ip:port` of the broker.
    pub fn broker_addr(&self) -> String {
        self.cluster.broker_addr(0)
    }

    /// `ip:port` of the NameServer.
    pub fn namesrv_addr(&self) -> String {
        self.cluster.namesrv_addr().to_owned()
    }

    /// Sends `request` to the broker.
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_broker(0, request).await
    }

    /// Sends `request` to the broker, which must answer SUCCESS; the answer.
    pub async fn call_ok(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_broker_ok(0, request).await
    }

    /// Sends `request` to the NameServer.
    pub async fn call_namesrv(&self, request: RemotingCommand) -> RemotingCommand {
        self.cluster.call_namesrv(request).await
    }

    /// The address the broker sees for this client (the born host of its messages).
    pub async fn client_addr(&self) -> SocketAddr {
        self.cluster.client().connection(&self.broker_addr()).await.expect("connected").local_addr()
    }

    /// Stops the broker only, keeping its store directory.
    pub async fn stop_broker(&mut self) {
        self.cluster.stop_broker(0).await;
    }

    /// Starts the broker again on the same store, on a fresh port.
    pub async fn restart_broker(&mut self) {
        self.cluster.restart_broker(0, |_| {}).await;
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
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
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    apogee_testkit::eventually(what, WAIT_LIMIT, check).await
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
