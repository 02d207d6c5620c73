//! Test harness shared by the in-crate lite pull and admin tests: a NameServer and a broker on
//! free loopback ports over a temporary store, a raw producer, and [`DirectLink`], which plays
//! the client instance over one remoting connection per server (routes fetched from the
//! NameServer, heartbeats sent on demand, NOTIFY_CONSUMER_IDS_CHANGED routed to consumers).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_broker::{Broker, BrokerConfig};
use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::message::property::{self, Properties};
use apogee_common::{perm, TopicConfig};
use apogee_namesrv::{NameServer, NamesrvConfig};
use apogee_remoting::body::heartbeat::HeartbeatData;
use apogee_remoting::body::route::{ClusterInfo, TopicRouteData};
use apogee_remoting::client::{ClientConfig as RemotingConfig, RemotingClient};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader,
};
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use parking_lot::Mutex;
use tempfile::TempDir;

use super::link::{BoxFuture, Link};
use crate::admin::AdminLink;
use crate::instance::ConsumerHandle;
use crate::ClientError;

/// Cluster of the test broker.
pub(crate) const CLUSTER: &str = "LiteCluster";
/// Name of the test broker.
pub(crate) const BROKER_NAME: &str = "broker-lite";
/// Longest a test waits for something asynchronous.
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// Timeout of one request.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A NameServer and a broker registered with it.
pub(crate) struct TestCluster {
    _dir: TempDir,
    namesrv: Option<NameServer>,
    broker: Option<Broker>,
    /// `ip:port` of the NameServer.
    pub namesrv_addr: String,
    /// `ip:port` of the broker.
    pub broker_addr: String,
    producer: RemotingClient,
}

impl TestCluster {
    /// Starts both servers.
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
            producer: RemotingClient::new(RemotingConfig::default(), Router::new()),
        };
        let probe = cluster.link("probe@0");
        eventually("the broker registered", || async {
            let info = probe.cluster_info().await.ok()?;
            info.broker_addr_table.contains_key(BROKER_NAME).then_some(())
        })
        .await;
        cluster
    }

    /// A direct link to this cluster for a client with id `client_id`.
    pub fn link(&self, client_id: &str) -> Arc<DirectLink> {
        DirectLink::new(&self.namesrv_addr, client_id)
    }

    /// Creates `topic` with `queues` queues on the broker and waits for its route.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        let config = TopicConfig::with_queues(topic, queues, queues, perm::READ_WRITE);
        let request = crate::admin::requests::create_topic(&config, Some(BROKER_NAME));
        let response =
            self.producer.invoke(&self.broker_addr, request, CALL_TIMEOUT).await.expect("broker answers");
        assert_eq!(response.code, response_code::SUCCESS, "topic created: {:?}", response.remark);
        let probe = self.link("probe@0");
        eventually(&format!("a route for {topic}"), || async {
            let route = probe.fetch_route(topic).await.ok()?;
            (route.queue_datas.iter().map(|data| data.read_queue_nums).sum::<i32>() == queues).then_some(())
        })
        .await;
    }

    /// Sends one message with SEND_MESSAGE_V2 to (`topic`, `queue_id`); returns the broker's
    /// answer header (offset message id, queue offset).
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
            "PG_LITE_TEST",
            topic,
            queue_id,
            &property::encode(&properties),
            BROKER_NAME,
        );
        let request = header.into_v2_request(body.as_bytes().to_vec());
        let response =
            self.producer.invoke(&self.broker_addr, request, CALL_TIMEOUT).await.expect("broker answers");
        assert_eq!(response.code, response_code::SUCCESS, "message stored: {:?}", response.remark);
        response.decode_header().expect("send response header")
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.producer.shutdown().await;
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown().await;
        }
    }
}

/// Polls `check` until it returns `Some`, for at most [`WAIT_LIMIT`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
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

/// The client instance's part, played over direct connections.
pub(crate) struct DirectLink {
    client: RemotingClient,
    namesrv: String,
    client_id: String,
    consumers: Arc<Mutex<Vec<Arc<dyn ConsumerHandle>>>>,
    routes: Mutex<HashMap<String, (Instant, Arc<TopicRouteData>)>>,
}

/// How long a fetched route is reused.
const ROUTE_TTL: Duration = Duration::from_millis(500);

impl DirectLink {
    /// A link for `client_id` to the cluster of NameServer `namesrv`.
    pub fn new(namesrv: &str, client_id: &str) -> Arc<Self> {
        let consumers: Arc<Mutex<Vec<Arc<dyn ConsumerHandle>>>> = Arc::new(Mutex::new(Vec::new()));
        let mut router = Router::new();
        let notified = consumers.clone();
        router.register(
            request_code::NOTIFY_CONSUMER_IDS_CHANGED,
            move |_connection, request: RemotingCommand| {
                let consumers = notified.clone();
                async move {
                    if let Ok(header) = request.decode_header::<NotifyConsumerIdsChangedRequestHeader>() {
                        for consumer in consumers
                            .lock()
                            .iter()
                            .filter(|consumer| consumer.group() == header.consumer_group)
                        {
                            consumer.rebalance_now();
                        }
                    }
                    None
                }
            },
        );
        Arc::new(Self {
            client: RemotingClient::new(RemotingConfig::default(), router),
            namesrv: namesrv.to_owned(),
            client_id: client_id.to_owned(),
            consumers,
            routes: Mutex::new(HashMap::new()),
        })
    }

    /// The route of `topic`, fresh from the NameServer.
    pub async fn fetch_route(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        let header = GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: None };
        let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
        let response = self.client.invoke(&self.namesrv, request, CALL_TIMEOUT).await?;
        if response.code == response_code::TOPIC_NOT_EXIST {
            return Err(ClientError::NoRoute { topic: topic.to_owned() });
        }
        if response.code != response_code::SUCCESS {
            return Err(ClientError::Broker {
                code: response.code,
                remark: response.remark.unwrap_or_default(),
                addr: self.namesrv.clone(),
            });
        }
        let route: TopicRouteData = fastjson::from_slice(&response.body)
            .map_err(|error| ClientError::Malformed(error.to_string()))?;
        let route = Arc::new(route);
        self.routes.lock().insert(topic.to_owned(), (Instant::now(), route.clone()));
        Ok(route)
    }

    /// The NameServer's cluster info.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let request = RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO);
        let response = self.client.invoke(&self.namesrv, request, CALL_TIMEOUT).await?;
        fastjson::from_slice(&response.body).map_err(|error| ClientError::Malformed(error.to_string()))
    }

    /// Every broker address of the cluster.
    async fn broker_addrs(&self) -> Vec<String> {
        match self.cluster_info().await {
            Ok(info) => info
                .broker_addr_table
                .values()
                .flat_map(|broker| broker.broker_addrs.values().cloned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Closes the connections.
    pub async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}

impl Link for DirectLink {
    fn client_id(&self) -> String {
        self.client_id.clone()
    }

    fn api_timeout(&self) -> Duration {
        CALL_TIMEOUT
    }

    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>> {
        Box::pin(async move { Ok(self.client.invoke(addr, request, timeout).await?) })
    }

    fn invoke_oneway<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move { Ok(self.client.invoke_oneway(addr, request).await?) })
    }

    fn topic_route<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Arc<TopicRouteData>, ClientError>> {
        Box::pin(async move {
            let cached = self
                .routes
                .lock()
                .get(topic)
                .filter(|(at, _)| at.elapsed() < ROUTE_TTL)
                .map(|(_, route)| route.clone());
            match cached {
                Some(route) => Ok(route),
                None => self.fetch_route(topic).await,
            }
        })
    }

    fn register_consumer(&self, consumer: Arc<dyn ConsumerHandle>) -> Result<(), ClientError> {
        let mut consumers = self.consumers.lock();
        if consumers.iter().any(|known| known.group() == consumer.group()) {
            return Err(ClientError::IllegalArgument(format!("group {} registered twice", consumer.group())));
        }
        consumers.push(consumer);
        Ok(())
    }

    fn unregister_consumer<'a>(&'a self, group: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.consumers.lock().retain(|consumer| consumer.group() != group);
            let header = UnregisterClientRequestHeader {
                client_id: self.client_id.clone(),
                producer_group: None,
                consumer_group: Some(group.to_owned()),
                bname: None,
            };
            for addr in self.broker_addrs().await {
                let request = RemotingCommand::request(request_code::UNREGISTER_CLIENT).with_header(&header);
                let _ = self.client.invoke(&addr, request, CALL_TIMEOUT).await;
            }
        })
    }

    fn send_heartbeat(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let consumer_data_set =
                self.consumers.lock().iter().map(|consumer| consumer.consumer_data()).collect();
            let heartbeat = HeartbeatData {
                client_id: self.client_id.clone(),
                consumer_data_set,
                ..HeartbeatData::default()
            };
            let Ok(body) = fastjson::to_vec(&heartbeat, Dialect::Fastjson) else {
                return;
            };
            for addr in self.broker_addrs().await {
                let request = RemotingCommand::request(request_code::HEART_BEAT).with_body(body.clone());
                if let Err(error) = self.client.invoke(&addr, request, CALL_TIMEOUT).await {
                    tracing::warn!(addr, %error, "test heartbeat failed");
                }
            }
        })
    }
}

impl AdminLink for DirectLink {
    fn api_timeout(&self) -> Duration {
        CALL_TIMEOUT
    }

    fn namesrv_addrs(&self) -> Vec<String> {
        vec![self.namesrv.clone()]
    }

    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>> {
        Link::invoke(self, addr, request, timeout)
    }

    fn invoke_namesrv(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<RemotingCommand, ClientError>> {
        Box::pin(async move { Ok(self.client.invoke(&self.namesrv, request, timeout).await?) })
    }
}
