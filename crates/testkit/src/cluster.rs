//! [`Cluster`]: NameServers and broker groups in this process, on ports the system chose.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use apogee_broker::{Broker, BrokerConfig, BrokerState};
use apogee_common::message::property::{self, Properties};
use apogee_common::TopicConfig;
use apogee_namesrv::NameServer;
use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::header::send::{SendMessageRequestHeader, SendMessageResponseHeader};
use apogee_remoting::router::Router;
use apogee_remoting::{fastjson, request_code, response_code, RemotingCommand};
use tempfile::TempDir;

use crate::config::{broker_config, namesrv_config, start_broker};
use crate::wait::eventually;

/// Time allowed for one request made through [`Cluster::call_broker`] or
/// [`Cluster::call_namesrv`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest [`Cluster::wait_route`] waits for the NameServer to route a topic.
pub const ROUTE_WAIT: Duration = Duration::from_secs(30);
/// Cluster name of the brokers unless [`ClusterBuilder::cluster_name`] says otherwise.
pub const DEFAULT_CLUSTER_NAME: &str = "TestCluster";

/// A change a test makes to each broker's settings: `(group index, config)`.
type Configure = Arc<dyn Fn(usize, &mut BrokerConfig) + Send + Sync>;

/// How a [`Cluster`] is laid out; from [`Cluster::builder`].
///
/// Each broker group is one master (`brokerId` 0) today. Replication will add slaves per
/// group here (a `slaves(n)` setting: members 1..=n of every group, each with a store of its
/// own under the group's directory), and [`Cluster`] will index brokers by group and member.
pub struct ClusterBuilder {
    namesrvs: usize,
    broker_names: Vec<String>,
    cluster_name: String,
    configure: Configure,
    client_config: ClientConfig,
}

impl fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("namesrvs", &self.namesrvs)
            .field("broker_names", &self.broker_names)
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// How many NameServers (default 1). With 0 the brokers register nowhere.
    pub fn namesrvs(mut self, count: usize) -> Self {
        self.namesrvs = count;
        self
    }

    /// How many broker groups, named `broker-0`, `broker-1`, … (default 1).
    pub fn broker_groups(mut self, count: usize) -> Self {
        self.broker_names = (0..count).map(|index| format!("broker-{index}")).collect();
        self
    }

    /// One broker group per name, in this order.
    pub fn broker_names(mut self, names: &[&str]) -> Self {
        self.broker_names = names.iter().map(|name| (*name).to_owned()).collect();
        self
    }

    /// `brokerClusterName` of every broker (default [`DEFAULT_CLUSTER_NAME`]).
    pub fn cluster_name(mut self, name: &str) -> Self {
        self.cluster_name = name.to_owned();
        self
    }

    /// Changes every broker's settings before it starts (flush type, file sizes, automatic
    /// topic creation…); called with the group index. Leave `listenPort` at 0.
    pub fn configure(mut self, configure: impl Fn(usize, &mut BrokerConfig) + Send + Sync + 'static) -> Self {
        self.configure = Arc::new(configure);
        self
    }

    /// Settings of the raw client behind [`Cluster::client`].
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client_config = config;
        self
    }

    /// Starts the NameServers, then the brokers (each registered with every NameServer when
    /// this returns). Fails the test if a server cannot start.
    pub async fn start(self) -> Cluster {
        let dir = crate::data_dir();
        let mut namesrvs = Vec::with_capacity(self.namesrvs);
        for index in 0..self.namesrvs {
            let config = namesrv_config(&dir.path().join(format!("namesrv-{index}")));
            let namesrv = NameServer::start(config).await.expect("name server starts");
            namesrvs.push(Some(namesrv));
        }
        let namesrv_addr = namesrvs
            .iter()
            .flatten()
            .map(|namesrv| namesrv.local_addr().to_string())
            .collect::<Vec<_>>()
            .join(";");
        let mut cluster = Cluster {
            namesrvs,
            brokers: Vec::with_capacity(self.broker_names.len()),
            broker_names: self.broker_names,
            namesrv_addr,
            cluster_name: self.cluster_name,
            configure: self.configure,
            client: RemotingClient::new(self.client_config, Router::new()),
            dir,
        };
        for index in 0..cluster.broker_names.len() {
            let broker = start_broker(cluster.group_config(index)).await;
            cluster.brokers.push(Some(broker));
        }
        cluster
    }
}

/// NameServers and brokers on loopback, with their data in a temporary directory. Dropping
/// it stops every server at once and removes the data; [`Cluster::shutdown`] stops them
/// cleanly (brokers unregister, stores flush).
pub struct Cluster {
    namesrvs: Vec<Option<NameServer>>,
    brokers: Vec<Option<Broker>>,
    broker_names: Vec<String>,
    namesrv_addr: String,
    cluster_name: String,
    configure: Configure,
    client: RemotingClient,
    // Last, so that the servers are dropped before their files are removed.
    dir: TempDir,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("namesrv_addr", &self.namesrv_addr)
            .field("broker_names", &self.broker_names)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// One NameServer and one broker group unless told otherwise.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            namesrvs: 1,
            broker_names: vec!["broker-0".to_owned()],
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            configure: Arc::new(|_, _| {}),
            client_config: ClientConfig::default(),
        }
    }

    /// The NameServer addresses as clients take them: `ip:port;ip:port`.
    pub fn namesrv_addr(&self) -> &str {
        &self.namesrv_addr
    }

    /// The directory holding every store and KV file; removed on drop.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Broker group `index`'s master, which must be running.
    pub fn broker(&self, index: usize) -> &Broker {
        match self.brokers.get(index) {
            Some(Some(broker)) => broker,
            _ => panic!("broker {index} is not running"),
        }
    }

    /// The shared state of broker `index` (its store, topics, clients).
    pub fn broker_state(&self, index: usize) -> &Arc<BrokerState> {
        self.broker(index).state()
    }

    /// `ip:port` of broker `index`, as registered with the NameServers.
    pub fn broker_addr(&self, index: usize) -> String {
        self.broker(index).state().store_host.to_string()
    }

    /// Every running broker, by group index.
    pub fn running_brokers(&self) -> impl Iterator<Item = &Broker> {
        self.brokers.iter().flatten()
    }

    /// `ip:port` of every running broker, by group index.
    pub fn broker_addrs(&self) -> Vec<String> {
        self.running_brokers().map(|broker| broker.state().store_host.to_string()).collect()
    }

    /// `brokerName` of group `index`.
    pub fn broker_name(&self, index: usize) -> &str {
        &self.broker_names[index]
    }

    /// A raw remoting client for setup calls; shut down with the cluster.
    pub fn client(&self) -> &RemotingClient {
        &self.client
    }

    /// Sends `request` to broker `index`, failing the test without an answer.
    pub async fn call_broker(&self, index: usize, request: RemotingCommand) -> RemotingCommand {
        let addr = self.broker_addr(index);
        match self.client.invoke(&addr, request, CALL_TIMEOUT).await {
            Ok(response) => response,
            Err(error) => panic!("broker {addr} does not answer: {error}"),
        }
    }

    /// Sends `request` to broker `index`, failing the test unless it is answered SUCCESS (the
    /// whole answer shown); the answer.
    pub async fn call_broker_ok(&self, index: usize, request: RemotingCommand) -> RemotingCommand {
        let response = self.call_broker(index, request).await;
        assert_eq!(response.code, response_code::SUCCESS, "broker {index} refused: {response:?}");
        response
    }

    /// Sends one message to broker `index` with SEND_MESSAGE_V2, as producer group `group`, with
    /// `properties` (tags, keys…) as given; fails the test unless the broker stored it. Returns
    /// the broker's answer header. For tests that need messages without a client SDK.
    pub async fn send_v2(
        &self,
        index: usize,
        group: &str,
        topic: &str,
        queue_id: i32,
        properties: &Properties,
        body: &[u8],
    ) -> SendMessageResponseHeader {
        let properties = property::encode(properties);
        let header =
            SendMessageRequestHeader::plain(group, topic, queue_id, &properties, self.broker_name(index));
        let response = self.call_broker(index, header.into_v2_request(body.to_vec())).await;
        assert_eq!(response.code, response_code::SUCCESS, "send refused: {:?}", response.remark);
        response.decode_header().expect("send response header")
    }

    /// Sends `request` to the first NameServer, failing the test without an answer.
    pub async fn call_namesrv(&self, request: RemotingCommand) -> RemotingCommand {
        let addr = self.namesrv_addr.split(';').next().unwrap_or_default().to_owned();
        match self.client.invoke(&addr, request, CALL_TIMEOUT).await {
            Ok(response) => response,
            Err(error) => panic!("name server {addr} does not answer: {error}"),
        }
    }

    /// Creates `topic` with `queues` read and write queues and the permission bits `perm` on
    /// every running broker (each registers it at once), then waits until the NameServer routes
    /// it to all of them.
    pub async fn create_topic(&self, topic: &str, queues: i32, perm: i32) -> TopicRouteData {
        let mut running = 0;
        for broker in self.running_brokers() {
            broker
                .state()
                .topics
                .create_or_update(TopicConfig::with_queues(topic, queues, queues, perm))
                .expect("topic created");
            running += 1;
        }
        self.wait_route(topic, running).await
    }

    /// Waits until the first NameServer has a route for `topic` naming `brokers` broker groups.
    pub async fn wait_route(&self, topic: &str, brokers: usize) -> TopicRouteData {
        let addr = self.namesrv_addr.split(';').next().unwrap_or_default().to_owned();
        eventually(&format!("route of {topic} on {brokers} brokers"), ROUTE_WAIT, || async {
            let header =
                GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: Some(true) };
            let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
            let response = self.client.invoke(&addr, request, CALL_TIMEOUT).await.ok()?;
            if response.code != response_code::SUCCESS {
                return None;
            }
            let route: TopicRouteData = fastjson::from_slice(&response.body).ok()?;
            (route.queue_datas.len() == brokers && route.broker_datas.len() == brokers).then_some(route)
        })
        .await
    }

    /// Stops broker `index` cleanly (it unregisters), keeping its store; returns the settings
    /// it ran with.
    pub async fn stop_broker(&mut self, index: usize) -> BrokerConfig {
        let Some(broker) = self.brokers.get_mut(index).and_then(Option::take) else {
            panic!("broker {index} is not running");
        };
        let config = broker.state().config.clone();
        broker.shutdown().await;
        config
    }

    /// Starts broker `index` again on its store, on a new free port, with the group's settings
    /// changed by `adjust`.
    pub async fn restart_broker(&mut self, index: usize, adjust: impl FnOnce(&mut BrokerConfig)) {
        assert!(self.brokers[index].is_none(), "broker {index} is still running");
        let mut config = self.group_config(index);
        adjust(&mut config);
        self.brokers[index] = Some(start_broker(config).await);
    }

    /// Stops everything cleanly: brokers first (they unregister), then the NameServers.
    pub async fn shutdown(mut self) {
        self.client.shutdown().await;
        for broker in self.brokers.iter_mut().filter_map(Option::take) {
            broker.shutdown().await;
        }
        for namesrv in self.namesrvs.iter_mut().filter_map(Option::take) {
            namesrv.shutdown().await;
        }
    }

    /// The settings of group `index`: the test defaults, this cluster's NameServers and the
    /// builder's changes.
    fn group_config(&self, index: usize) -> BrokerConfig {
        let name = &self.broker_names[index];
        let mut config = broker_config(&self.dir.path().join(name), name);
        config.broker_cluster_name = self.cluster_name.clone();
        config.namesrv_addr = (!self.namesrv_addr.is_empty()).then(|| self.namesrv_addr.clone());
        (self.configure)(index, &mut config);
        config
    }
}
