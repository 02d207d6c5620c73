//! The client instance shared per process and NameServer set: route cache and refresh, broker
//! addresses, heartbeats, and the requests brokers send to clients.
//!
//! Producers and consumers never talk to the network on their own: they ask the
//! [`ClientInstance`] of their `(namesrv_addr, instance_name)` pair, which owns one
//! [`RemotingClient`] (one connection per address), the route cache, and two background
//! tasks — route refresh every `poll_name_server_interval` and heartbeats every
//! `heartbeat_broker_interval`. The instance leaves the process-wide registry, stops its tasks
//! and closes its connections when its last producer or consumer unregisters.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use apogee_common::message::msg_id::UniqIdGenerator;
use apogee_common::MessageQueue;
use apogee_remoting::body::heartbeat::{ConsumerData, HeartbeatData, ProducerData};
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::client::{ClientConfig as RemotingConfig, RemotingClient, RemotingError};
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{HeartbeatRequestHeader, UnregisterClientRequestHeader};
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::tls::ClientTls;
use apogee_remoting::RemotingCommand;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::config::MIN_TASK_INTERVAL;
use crate::producer::transaction::{Checker, TransactionListener};
use crate::{ClientConfig, ClientError, MessageExt};

pub(crate) mod handlers;
pub mod route;

use crate::producer::request::ReplyTable;
use handlers::{CheckerTable, ConsumerTable};
use route::RouteTable;

/// Delay before the first route refresh after an instance starts (Java: 10 ms).
pub const FIRST_ROUTE_REFRESH_DELAY: Duration = Duration::from_millis(10);

/// Delay before the first heartbeat round after an instance starts (Java: 1 s).
pub const FIRST_HEARTBEAT_DELAY: Duration = Duration::from_secs(1);

/// Most heartbeat or unregister requests in flight at once during one round.
pub const MAX_CONCURRENT_BROKER_CALLS: usize = 32;

/// Most topics one producer group keeps fresh in the background; sends to more topics still
/// work, their routes are then fetched on demand only.
pub const MAX_TOPICS_PER_PRODUCER: usize = 10_000;

/// The address the local outbound interface is discovered against: TEST-NET-1 (RFC 5737),
/// which is never routed. Connecting a UDP socket sends nothing; the kernel only picks the
/// interface a packet to it would leave through.
const OUTBOUND_PROBE_ADDR: (Ipv4Addr, u16) = (Ipv4Addr::new(192, 0, 2, 1), 9);

/// What the instance needs of a consumer: its heartbeat data, its topics, and hooks for
/// the requests brokers send (rebalance now, reset offsets, running info, consume directly).
pub trait ConsumerHandle: Send + Sync + 'static {
    /// Consumer group.
    fn group(&self) -> &str;
    /// What goes into the heartbeat for this consumer.
    fn consumer_data(&self) -> ConsumerData;
    /// Topics whose routes the instance must keep fresh (retry topic included).
    fn subscribed_topics(&self) -> Vec<String>;
    /// NOTIFY_CONSUMER_IDS_CHANGED: rebalance soon (must not block).
    fn rebalance_now(&self);
    /// RESET_CONSUMER_CLIENT_OFFSET: restart these queues at these offsets.
    fn reset_offsets(&self, topic: &str, offsets: HashMap<MessageQueue, i64>);
    /// GET_CONSUMER_RUNNING_INFO: a ConsumerRunningInfo JSON body.
    fn running_info(&self) -> serde_json::Value;
    /// CONSUME_MESSAGE_DIRECTLY: consume one message now; returns the ConsumeMessageDirectlyResult
    /// JSON body.
    fn consume_directly(&self, message: MessageExt) -> serde_json::Value;
}

/// Registry key: the NameServer list as configured (normalized) and the instance name.
type InstanceKey = (String, String);

/// The process-wide registry of live instances.
fn registry() -> &'static Mutex<HashMap<InstanceKey, Arc<ClientInstance>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<InstanceKey, Arc<ClientInstance>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// This machine's address as brokers should see it: the IPv4 address of the interface that
/// outbound traffic leaves through, else 127.0.0.1. Computed once; it also seeds the
/// process-wide `UNIQ_KEY` generator, as Java's does.
pub fn local_ip() -> IpAddr {
    static LOCAL_IP: OnceLock<IpAddr> = OnceLock::new();
    *LOCAL_IP.get_or_init(|| {
        let ip = outbound_ipv4().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        UniqIdGenerator::init_global(ip);
        ip
    })
}

fn outbound_ipv4() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(OUTBOUND_PROBE_ADDR).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The shared client instance.
pub struct ClientInstance {
    config: ClientConfig,
    key: InstanceKey,
    client_id: String,
    namesrv_addrs: Vec<String>,
    /// Index into `namesrv_addrs` of the NameServer in use; moves on when it fails.
    namesrv_index: AtomicUsize,
    remoting: RemotingClient,
    routes: RwLock<RouteTable>,
    /// Producer group → topics it sent to (kept fresh by the route task).
    producers: Mutex<BTreeMap<String, HashSet<String>>>,
    consumers: ConsumerTable,
    /// Transaction checkers by producer group.
    checkers: CheckerTable,
    /// Requests waiting for their reply, by correlation id.
    replies: ReplyTable,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    released: AtomicBool,
    /// One heartbeat round at a time.
    heartbeat_round: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ClientInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientInstance")
            .field("client_id", &self.client_id)
            .field("namesrv_addrs", &self.namesrv_addrs)
            .field("producers", &self.producers.lock().keys().collect::<Vec<_>>())
            .field("consumers", &self.consumers.read().keys().collect::<Vec<_>>())
            .field("routes", &self.routes.read().len())
            .field("released", &self.released.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClientInstance {
    /// The instance for this NameServer set and instance name, created and started on first
    /// use (route refresh and heartbeat tasks).
    pub async fn get(config: &ClientConfig) -> Result<Arc<ClientInstance>, ClientError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ClientError::IllegalArgument("a client instance needs a tokio runtime".into()))?;
        let key: InstanceKey = (config.namesrv_addrs().join(";"), config.instance_name.clone());
        let tls = match &config.tls {
            Some(trust) => Some(Arc::new(
                ClientTls::new(trust.clone())
                    .map_err(|error| ClientError::IllegalArgument(format!("TLS settings: {error}")))?,
            )),
            None => None,
        };
        let mut registry = registry().lock();
        if let Some(existing) = registry.get(&key) {
            if !existing.is_released() {
                return Ok(Arc::clone(existing));
            }
        }
        let instance = Arc::new(ClientInstance::new(config.clone(), key.clone(), tls));
        instance.start_tasks(&runtime);
        registry.insert(key, Arc::clone(&instance));
        tracing::info!(client_id = %instance.client_id, namesrv = %instance.key.0, "client instance started");
        Ok(instance)
    }

    fn new(config: ClientConfig, key: InstanceKey, tls: Option<Arc<ClientTls>>) -> Self {
        let consumers: ConsumerTable = Arc::default();
        let checkers: CheckerTable = Arc::default();
        let replies: ReplyTable = Arc::default();
        let remoting_config =
            RemotingConfig { credentials: config.credentials.clone(), tls, ..RemotingConfig::default() };
        let remoting =
            RemotingClient::new(remoting_config, handlers::router(&consumers, &checkers, &replies));
        let namesrv_addrs = config.namesrv_addrs();
        // Spread clients over the NameServers, as Java's random start index does.
        let start = usize::try_from(crate::producer::random_u32()).unwrap_or(0) % namesrv_addrs.len().max(1);
        Self {
            client_id: format!("{}@{}", local_ip(), config.instance_name),
            namesrv_addrs,
            namesrv_index: AtomicUsize::new(start),
            remoting,
            routes: RwLock::default(),
            producers: Mutex::default(),
            consumers,
            checkers,
            replies,
            tasks: Mutex::default(),
            released: AtomicBool::new(false),
            heartbeat_round: tokio::sync::Mutex::new(()),
            config,
            key,
        }
    }

    fn start_tasks(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        let poll = self.config.poll_name_server_interval.max(MIN_TASK_INTERVAL);
        let weak = Arc::downgrade(self);
        let routes = runtime.spawn(async move {
            tokio::time::sleep(FIRST_ROUTE_REFRESH_DELAY).await;
            while let Some(instance) = upgrade(&weak) {
                instance.refresh_all_routes().await;
                drop(instance);
                tokio::time::sleep(poll).await;
            }
        });
        let beat = self.config.heartbeat_broker_interval.max(MIN_TASK_INTERVAL);
        let weak = Arc::downgrade(self);
        let heartbeats = runtime.spawn(async move {
            tokio::time::sleep(FIRST_HEARTBEAT_DELAY).await;
            while let Some(instance) = upgrade(&weak) {
                instance.routes.write().prune_brokers();
                instance.send_heartbeat_to_all_brokers().await;
                drop(instance);
                tokio::time::sleep(beat).await;
            }
        });
        self.tasks.lock().extend([routes, heartbeats]);
    }

    /// `ip@instanceName`: how brokers know this client.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the instance was released (its last producer and consumer left); a released
    /// instance refuses new work with [`ClientError::ShutDown`].
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    fn check_running(&self) -> Result<(), ClientError> {
        if self.is_released() {
            Err(ClientError::ShutDown)
        } else {
            Ok(())
        }
    }

    /// A request to a broker; error responses are returned as responses (the caller decides).
    pub async fn invoke(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        self.check_running()?;
        Ok(self.remoting.invoke(addr, request, timeout).await?)
    }

    /// A oneway request to a broker.
    pub async fn invoke_oneway(&self, addr: &str, request: RemotingCommand) -> Result<(), ClientError> {
        self.check_running()?;
        Ok(self.remoting.invoke_oneway(addr, request).await?)
    }

    /// A request to a NameServer (one of them; fails over to the next).
    pub async fn invoke_namesrv(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        self.invoke_namesrv_from(request, timeout).await.map(|(_, response)| response)
    }

    /// [`Self::invoke_namesrv`], also telling which NameServer answered. The NameServer in use
    /// is kept until a call to it fails without an answer; the next ones are then tried in
    /// turn within the same `timeout`.
    pub async fn invoke_namesrv_from(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<(String, RemotingCommand), ClientError> {
        self.check_running()?;
        let count = self.namesrv_addrs.len();
        if count == 0 {
            return Err(ClientError::IllegalArgument("no NameServer address configured".into()));
        }
        let deadline = Instant::now() + timeout;
        let first = self.namesrv_index.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..count {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let index = first.wrapping_add(step) % count;
            let Some(addr) = self.namesrv_addrs.get(index) else { break };
            match self.remoting.invoke(addr, request.clone(), remaining).await {
                Ok(response) => {
                    self.namesrv_index.store(index, Ordering::Relaxed);
                    return Ok((addr.clone(), response));
                }
                Err(RemotingError::Shutdown) => return Err(ClientError::ShutDown),
                Err(error) => {
                    tracing::debug!(namesrv = %addr, %error, "name server call failed; trying the next one");
                    self.namesrv_index.store(index.wrapping_add(1) % count, Ordering::Relaxed);
                    last_error = Some(error);
                }
            }
        }
        Err(ClientError::Remoting(last_error.unwrap_or_else(|| RemotingError::Timeout {
            addr: self.key.0.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })))
    }

    /// The route of `topic`: cached, fetched when missing. `ClientError::NoRoute` when the
    /// NameServer has none.
    pub async fn topic_route(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        match self.cached_topic_route(topic) {
            Some(route) => Ok(route),
            None => self.refresh_topic_route(topic).await,
        }
    }

    /// The cached route of `topic`, without asking anyone.
    pub fn cached_topic_route(&self, topic: &str) -> Option<Arc<TopicRouteData>> {
        self.routes.read().get(topic)
    }

    /// Fetches the route of `topic` now and updates the caches.
    pub async fn refresh_topic_route(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClientError> {
        let header =
            GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: Some(true) };
        let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
        let (addr, response) = self.invoke_namesrv_from(request, self.config.api_timeout).await?;
        match response.code {
            response_code::SUCCESS => {
                let route: TopicRouteData = fastjson::from_slice(&response.body).map_err(|error| {
                    ClientError::Malformed(format!("route of topic {topic} from {addr}: {error}"))
                })?;
                let route = route::sanitize(route);
                tracing::debug!(topic, brokers = route.broker_datas.len(), namesrv = %addr, "route fetched");
                let needs_eviction = {
                    let routes = self.routes.read();
                    routes.len() >= route::MAX_CACHED_ROUTES && routes.get(topic).is_none()
                };
                // Asking consumers for their topics must not happen under the routes lock.
                let keep = if needs_eviction { self.topics_in_use() } else { HashSet::new() };
                Ok(self.routes.write().update(topic, route, || keep))
            }
            response_code::TOPIC_NOT_EXIST => Err(ClientError::NoRoute { topic: topic.to_owned() }),
            _ => Err(ClientError::from_response(&response, &addr)),
        }
    }

    /// The master (id 0) address of a broker group, from the routes seen.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.routes.read().master_addr(broker_name)
    }

    /// An address of a broker group: `broker_id` if known, else the master, else any member.
    pub fn broker_addr(&self, broker_name: &str, broker_id: i64) -> Option<String> {
        self.routes.read().broker_addr(broker_name, broker_id)
    }

    /// The master of `mq`'s broker group (any member without one), refreshing the topic's route
    /// once when the group is unknown.
    pub async fn master_addr_of(&self, mq: &MessageQueue) -> Result<String, ClientError> {
        if let Some(addr) = self.broker_addr(&mq.broker_name, MASTER_ID) {
            return Ok(addr);
        }
        // The route refresh only helps the lookup; its own failure is reported as NoBroker.
        let _ = self.refresh_topic_route(&mq.topic).await;
        self.broker_addr(&mq.broker_name, MASTER_ID)
            .ok_or_else(|| ClientError::NoBroker { broker_name: mq.broker_name.clone() })
    }

    /// Announces a producer group in heartbeats.
    pub fn register_producer(&self, group: &str) -> Result<(), ClientError> {
        let mut producers = self.producers.lock();
        self.check_running()?;
        if producers.contains_key(group) {
            return Err(ClientError::IllegalArgument(format!(
                "the producer group {group} has been started before in this client instance; use another group"
            )));
        }
        producers.insert(group.to_owned(), HashSet::new());
        Ok(())
    }

    /// Remembers that producer `group` sends to `topic`, so the route task keeps the topic's
    /// route fresh (at most [`MAX_TOPICS_PER_PRODUCER`] topics per group).
    pub fn add_producer_topic(&self, group: &str, topic: &str) {
        let mut producers = self.producers.lock();
        if let Some(topics) = producers.get_mut(group) {
            if topics.len() < MAX_TOPICS_PER_PRODUCER && !topics.contains(topic) {
                topics.insert(topic.to_owned());
            }
        }
    }

    /// Stops refreshing `topic` for producer `group`.
    pub fn remove_producer_topic(&self, group: &str, topic: &str) {
        if let Some(topics) = self.producers.lock().get_mut(group) {
            topics.remove(topic);
        }
    }

    /// Answers the brokers' transaction checks for producer `group` with `listener`.
    pub fn register_transaction_checker(&self, group: &str, listener: Arc<dyn TransactionListener>) {
        self.checkers.write().insert(group.to_owned(), Checker::new(listener));
    }

    /// Hands the brokers' transaction checks for producer `group` to `forwarder`, which
    /// answers them later on its own (a relay whose decisions come from its own clients).
    pub fn register_transaction_check_forwarder(
        &self,
        group: &str,
        forwarder: Arc<dyn crate::producer::transaction::TransactionCheckForwarder>,
    ) {
        self.checkers.write().insert(group.to_owned(), Checker::Forward(forwarder));
    }

    /// Where requests of this instance wait for their replies.
    pub(crate) fn reply_table(&self) -> &ReplyTable {
        &self.replies
    }

    /// Stops answering transaction checks for producer `group`.
    pub fn unregister_transaction_checker(&self, group: &str) {
        self.checkers.write().remove(group);
    }

    /// Stops announcing a producer group and tells the brokers (UNREGISTER_CLIENT).
    pub async fn unregister_producer(&self, group: &str) {
        let removed = self.producers.lock().remove(group).is_some();
        if removed {
            self.unregister_client(Some(group), None).await;
        }
        self.release_if_idle().await;
    }

    /// Announces a consumer; the instance refreshes its topics' routes, heartbeats it and
    /// routes broker requests for its group to it.
    pub fn register_consumer(&self, consumer: Arc<dyn ConsumerHandle>) -> Result<(), ClientError> {
        let group = consumer.group().to_owned();
        let mut consumers = self.consumers.write();
        self.check_running()?;
        if consumers.contains_key(&group) {
            return Err(ClientError::IllegalArgument(format!(
                "the consumer group {group} has been started before in this client instance; use another group"
            )));
        }
        consumers.insert(group, consumer);
        Ok(())
    }

    /// Stops announcing a consumer group and tells the brokers (UNREGISTER_CLIENT).
    pub async fn unregister_consumer(&self, group: &str) {
        let removed = self.consumers.write().remove(group).is_some();
        if removed {
            self.unregister_client(None, Some(group)).await;
        }
        self.release_if_idle().await;
    }

    /// Releases the instance if no producer and no consumer is registered: it leaves the
    /// registry (a later [`Self::get`] makes a new one), its background tasks stop and its
    /// connections close. The unregister methods call this; users of an instance that never
    /// register anything (admin tools) call it when done.
    pub async fn release_if_idle(&self) {
        {
            let mut registry = registry().lock();
            let producers = self.producers.lock();
            let consumers = self.consumers.read();
            if !producers.is_empty() || !consumers.is_empty() || self.released.swap(true, Ordering::AcqRel) {
                return;
            }
            if registry.get(&self.key).is_some_and(|entry| std::ptr::eq(Arc::as_ptr(entry), self)) {
                registry.remove(&self.key);
            }
        }
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        self.remoting.shutdown().await;
        tracing::info!(client_id = %self.client_id, "client instance released");
    }

    /// UNREGISTER_CLIENT to every known broker address; failures are only logged.
    async fn unregister_client(&self, producer_group: Option<&str>, consumer_group: Option<&str>) {
        let targets = self.routes.read().addresses(false);
        let header = UnregisterClientRequestHeader {
            client_id: self.client_id.clone(),
            producer_group: producer_group.map(str::to_owned),
            consumer_group: consumer_group.map(str::to_owned),
            bname: None,
        };
        futures::stream::iter(targets)
            .for_each_concurrent(MAX_CONCURRENT_BROKER_CALLS, |target| {
                let request = RemotingCommand::request(request_code::UNREGISTER_CLIENT).with_header(&header);
                async move {
                    match self.invoke(&target.addr, request, self.config.api_timeout).await {
                        Ok(response) if response.code == response_code::SUCCESS => {}
                        Ok(response) => tracing::warn!(
                            addr = %target.addr, code = response.code, remark = ?response.remark,
                            "broker refused UNREGISTER_CLIENT"
                        ),
                        Err(error) => {
                            tracing::debug!(addr = %target.addr, %error, "UNREGISTER_CLIENT failed")
                        }
                    }
                }
            })
            .await;
    }

    /// What the next heartbeat carries: this client's id, producer groups and consumers.
    pub fn heartbeat_data(&self) -> HeartbeatData {
        let producer_data_set =
            self.producers.lock().keys().map(|group| ProducerData { group_name: group.clone() }).collect();
        // Consumer code runs outside the table lock.
        let consumers: Vec<Arc<dyn ConsumerHandle>> = self.consumers.read().values().cloned().collect();
        HeartbeatData {
            client_id: self.client_id.clone(),
            consumer_data_set: consumers.iter().map(|consumer| consumer.consumer_data()).collect(),
            heartbeat_fingerprint: 0,
            producer_data_set,
            without_sub: false,
        }
    }

    /// Sends a heartbeat to every broker now.
    pub async fn send_heartbeat_to_all_brokers(&self) {
        if self.is_released() {
            return;
        }
        let _one_round = self.heartbeat_round.lock().await;
        let data = self.heartbeat_data();
        if data.producer_data_set.is_empty() && data.consumer_data_set.is_empty() {
            return;
        }
        // Producer-only instances beat masters only; consumers may read from slaves too.
        let masters_only = data.consumer_data_set.is_empty();
        let body = match fastjson::to_vec(&data, Dialect::Fastjson) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(%error, "heartbeat cannot be encoded");
                return;
            }
        };
        let targets = self.routes.read().addresses(masters_only);
        futures::stream::iter(targets)
            .for_each_concurrent(MAX_CONCURRENT_BROKER_CALLS, |target| {
                let request = RemotingCommand::request(request_code::HEART_BEAT)
                    .with_header(&HeartbeatRequestHeader::default())
                    .with_body(body.clone());
                async move {
                    match self.invoke(&target.addr, request, self.config.api_timeout).await {
                        Ok(response) if response.code == response_code::SUCCESS => {
                            tracing::trace!(addr = %target.addr, "heartbeat sent");
                        }
                        Ok(response) => tracing::warn!(
                            addr = %target.addr, code = response.code, remark = ?response.remark,
                            "broker refused the heartbeat"
                        ),
                        Err(error) => tracing::debug!(addr = %target.addr, %error, "heartbeat failed"),
                    }
                }
            })
            .await;
    }

    /// Every topic a producer sent to or a consumer subscribes.
    fn topics_in_use(&self) -> HashSet<String> {
        let mut topics: HashSet<String> = self.producers.lock().values().flatten().cloned().collect();
        let consumers: Vec<Arc<dyn ConsumerHandle>> = self.consumers.read().values().cloned().collect();
        for consumer in consumers {
            topics.extend(consumer.subscribed_topics());
        }
        topics
    }

    /// Refreshes the route of every topic in use; failures are logged and the old route kept.
    async fn refresh_all_routes(&self) {
        let topics: BTreeSet<String> = self.topics_in_use().into_iter().collect();
        for topic in topics {
            if self.is_released() {
                return;
            }
            match self.refresh_topic_route(&topic).await {
                Ok(_) => {}
                Err(ClientError::NoRoute { .. }) => tracing::debug!(%topic, "no route yet"),
                Err(error) => tracing::warn!(%topic, %error, "route refresh failed"),
            }
        }
    }
}

fn upgrade(weak: &Weak<ClientInstance>) -> Option<Arc<ClientInstance>> {
    weak.upgrade().filter(|instance| !instance.is_released())
}

impl Drop for ClientInstance {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ip_is_never_unspecified() {
        let ip = local_ip();
        assert!(!ip.is_unspecified());
        assert_eq!(local_ip(), ip);
    }

    #[tokio::test]
    async fn registry_shares_and_releases() {
        let config = ClientConfig::new("127.0.0.1:1").with_instance_name("registry-test");
        let first = ClientInstance::get(&config).await.unwrap();
        let second = ClientInstance::get(&config).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(first.client_id().ends_with("@registry-test"));
        first.register_producer("PG").unwrap();
        assert!(matches!(first.register_producer("PG"), Err(ClientError::IllegalArgument(_))));
        first.unregister_producer("PG").await;
        assert!(first.is_released());
        assert!(matches!(first.register_producer("PG"), Err(ClientError::ShutDown)));
        let third = ClientInstance::get(&config).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        third.release_if_idle().await;
        assert!(third.is_released());
    }

    #[tokio::test]
    async fn namesrv_failover_reports_the_last_transport_error() {
        let config = ClientConfig::new("127.0.0.1:1;127.0.0.1:2")
            .with_instance_name("failover-test")
            .with_api_timeout(Duration::from_secs(2));
        let instance = ClientInstance::get(&config).await.unwrap();
        let error = instance.topic_route("T").await.unwrap_err();
        assert!(error.is_transport(), "{error}");
        instance.release_if_idle().await;
        assert!(matches!(instance.topic_route("T").await, Err(ClientError::ShutDown)));
    }

    #[tokio::test]
    async fn heartbeat_data_lists_groups() {
        let config = ClientConfig::new("127.0.0.1:1").with_instance_name("heartbeat-test");
        let instance = ClientInstance::get(&config).await.unwrap();
        instance.register_producer("PG1").unwrap();
        let data = instance.heartbeat_data();
        assert_eq!(data.client_id, instance.client_id());
        assert_eq!(data.producer_data_set, [ProducerData { group_name: "PG1".into() }]);
        assert!(data.consumer_data_set.is_empty());
        instance.unregister_producer("PG1").await;
        assert!(instance.is_released());
    }
}
