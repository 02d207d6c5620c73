//! The route table: which broker serves which topic queues (behaviour spec §1.2–§1.6).
//!
//! All tables sit behind one read/write lock, as in the Java NameServer: lookups take the
//! read lock, registrations and expiries the write lock, and nothing does I/O under it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use apogee_common::{perm, DataVersion, TopicConfig};
use apogee_remoting::body::route::{BrokerData, ClusterInfo, QueueData, TopicRouteData};
use parking_lot::RwLock;

/// Master broker id.
pub const MASTER_ID: i64 = 0;

/// Topic-sys-flag bit: unit topic.
const UNIT_FLAG: i32 = 0x1;
/// Topic-sys-flag bit: unit-sub topic.
const UNIT_SUB_FLAG: i32 = 0x2;

/// One REGISTER_BROKER request, decoded.
#[derive(Debug, Clone, Default)]
pub struct BrokerRegistration {
    /// Cluster the broker belongs to.
    pub cluster_name: String,
    /// `ip:port` clients connect to.
    pub broker_addr: String,
    /// Broker group name.
    pub broker_name: String,
    /// 0 for the master, ≥ 1 for slaves.
    pub broker_id: i64,
    /// `ip:port` of the HA service.
    pub ha_server_addr: String,
    /// Zone (`__ZONE_NAME` ext field).
    pub zone_name: Option<String>,
    /// Expiry the broker asks for; the NameServer default when absent.
    pub heartbeat_timeout_ms: Option<u64>,
    /// Acting-master mode; absent (old broker) means false.
    pub enable_acting_master: Option<bool>,
    /// Version of the topic table below.
    pub data_version: DataVersion,
    /// The broker's topics.
    pub topic_configs: Vec<TopicConfig>,
    /// Legacy filter servers.
    pub filter_server_list: Vec<String>,
    /// Connection the registration came on, so a closed connection unregisters it.
    pub connection_id: Option<u64>,
}

/// What a successful registration tells the broker (filled for slaves of a live master).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// The master's broker address.
    pub master_addr: Option<String>,
    /// The master's HA address.
    pub ha_server_addr: Option<String>,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// An incremental (single-topic) registration from a broker not yet registered.
    #[error("register broker failed")]
    NotFullyRegistered,
}

/// A broker whose live entry was removed, reported so its connection can be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBroker {
    /// Cluster name.
    pub cluster_name: String,
    /// Broker address.
    pub broker_addr: String,
    /// Connection it registered on.
    pub connection_id: Option<u64>,
}

#[derive(Debug, Clone)]
struct BrokerLiveInfo {
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    connection_id: Option<u64>,
    ha_server_addr: String,
}

type LiveKey = (String, String);

#[derive(Debug, Default)]
struct Tables {
    /// topic → broker name → queue data.
    topic_queue: HashMap<String, BTreeMap<String, QueueData>>,
    /// broker name → broker data.
    broker_addr: HashMap<String, BrokerData>,
    /// cluster name → broker names.
    cluster_addr: HashMap<String, BTreeSet<String>>,
    /// (cluster, broker address) → liveness.
    broker_live: HashMap<LiveKey, BrokerLiveInfo>,
    /// (cluster, broker address) → filter servers.
    filter_server: HashMap<LiveKey, Vec<String>>,
}

/// The NameServer's route registry.
#[derive(Debug)]
pub struct RouteTable {
    tables: RwLock<Tables>,
    default_timeout: Duration,
    delete_topic_with_broker_registration: bool,
}

impl RouteTable {
    /// An empty table; brokers that announce no expiry expire after `default_timeout`.
    pub fn new(default_timeout: Duration, delete_topic_with_broker_registration: bool) -> Self {
        Self { tables: RwLock::default(), default_timeout, delete_topic_with_broker_registration }
    }

    /// REGISTER_BROKER (behaviour spec §1.3).
    pub fn register_broker(
        &self,
        registration: BrokerRegistration,
    ) -> Result<RegisterOutcome, RegisterError> {
        let BrokerRegistration {
            cluster_name,
            broker_addr,
            broker_name,
            broker_id,
            ha_server_addr,
            zone_name,
            heartbeat_timeout_ms,
            enable_acting_master,
            data_version,
            topic_configs,
            filter_server_list,
            connection_id,
        } = registration;
        let live_key = (cluster_name.clone(), broker_addr.clone());
        let mut guard = self.tables.write();
        let tables = &mut *guard;

        tables.cluster_addr.entry(cluster_name.clone()).or_default().insert(broker_name.clone());
        let mut first_registration = !tables.broker_addr.contains_key(&broker_name);
        let broker_data = tables.broker_addr.entry(broker_name.clone()).or_insert_with(|| BrokerData {
            cluster: cluster_name.clone(),
            broker_name: broker_name.clone(),
            ..BrokerData::default()
        });
        broker_data.enable_acting_master = enable_acting_master.unwrap_or(false);
        if zone_name.is_some() {
            broker_data.zone_name = zone_name;
        }

        // One address has one id: a slave promoted to master (or back) drops its old entry.
        broker_data.broker_addrs.retain(|id, addr| *addr != broker_addr || *id == broker_id);

        // A different address holding this id with a newer state version wins.
        if let Some(old_addr) = broker_data.broker_addrs.get(&broker_id).filter(|addr| **addr != broker_addr)
        {
            let old_key = (cluster_name.clone(), old_addr.clone());
            if let Some(old_live) = tables.broker_live.get(&old_key) {
                if old_live.data_version.state_version > data_version.state_version {
                    tables.broker_live.remove(&live_key);
                    return Ok(RegisterOutcome::default());
                }
            }
        }

        if !broker_data.broker_addrs.contains_key(&broker_id) && topic_configs.len() == 1 {
            return Err(RegisterError::NotFullyRegistered);
        }
        let previous_addr = broker_data.broker_addrs.insert(broker_id, broker_addr.clone());
        first_registration |= previous_addr.is_none();

        let is_master = broker_id == MASTER_ID;
        let is_prime_slave = !is_master
            && broker_data.enable_acting_master
            && broker_data.broker_addrs.keys().next().is_some_and(|lowest| *lowest == broker_id);
        if is_master || is_prime_slave {
            let changed = first_registration
                || tables.broker_live.get(&live_key).is_none_or(|live| live.data_version != data_version);
            for config in &topic_configs {
                let queues = tables.topic_queue.entry(config.topic_name.clone()).or_default();
                if changed || !queues.contains_key(&broker_name) {
                    let mut queue_data = queue_data_of(&broker_name, config);
                    if is_prime_slave {
                        queue_data.perm &= !perm::WRITE;
                    }
                    queues.insert(broker_name.clone(), queue_data);
                }
            }
            if self.delete_topic_with_broker_registration && topic_configs.len() > 1 {
                let registered: BTreeSet<&str> =
                    topic_configs.iter().map(|config| config.topic_name.as_str()).collect();
                for (topic, queues) in tables.topic_queue.iter_mut() {
                    if !registered.contains(topic.as_str()) {
                        queues.remove(&broker_name);
                    }
                }
                tables.topic_queue.retain(|_, queues| !queues.is_empty());
            }
        }

        let timeout = heartbeat_timeout_ms.map_or(self.default_timeout, Duration::from_millis);
        tables.broker_live.insert(
            live_key.clone(),
            BrokerLiveInfo {
                last_update: Instant::now(),
                timeout,
                data_version,
                connection_id,
                ha_server_addr: ha_server_addr.clone(),
            },
        );
        if filter_server_list.is_empty() {
            tables.filter_server.remove(&live_key);
        } else {
            tables.filter_server.insert(live_key, filter_server_list);
        }

        let mut outcome = RegisterOutcome::default();
        if !is_master {
            let master_addr =
                tables.broker_addr.get(&broker_name).and_then(|data| data.broker_addrs.get(&MASTER_ID));
            if let Some(master_addr) = master_addr {
                let master_live = tables.broker_live.get(&(cluster_name.clone(), master_addr.clone()));
                if let Some(master_live) = master_live {
                    outcome.master_addr = Some(master_addr.clone());
                    outcome.ha_server_addr = Some(master_live.ha_server_addr.clone());
                }
            }
        }
        Ok(outcome)
    }

    /// UNREGISTER_BROKER, a closed connection or an expiry: forgets one broker address.
    pub fn unregister_broker(
        &self,
        cluster_name: &str,
        broker_addr: &str,
        broker_name: &str,
        broker_id: i64,
    ) {
        let mut tables = self.tables.write();
        remove_broker(&mut tables, cluster_name, broker_addr, Some((broker_name, broker_id)));
    }

    /// Unregisters every broker that registered on connection `connection_id`.
    pub fn unregister_connection(&self, connection_id: u64) -> Vec<RemovedBroker> {
        let mut tables = self.tables.write();
        let keys: Vec<LiveKey> = tables
            .broker_live
            .iter()
            .filter(|(_, live)| live.connection_id == Some(connection_id))
            .map(|(key, _)| key.clone())
            .collect();
        keys.into_iter()
            .map(|(cluster_name, broker_addr)| {
                remove_broker(&mut tables, &cluster_name, &broker_addr, None);
                RemovedBroker { cluster_name, broker_addr, connection_id: Some(connection_id) }
            })
            .collect()
    }

    /// Removes brokers silent past their timeout (behaviour spec §1.5); returns them.
    pub fn scan_not_active_brokers(&self, now: Instant) -> Vec<RemovedBroker> {
        let mut tables = self.tables.write();
        let expired: Vec<(LiveKey, Option<u64>)> = tables
            .broker_live
            .iter()
            .filter(|(_, live)| now.saturating_duration_since(live.last_update) > live.timeout)
            .map(|(key, live)| (key.clone(), live.connection_id))
            .collect();
        expired
            .into_iter()
            .map(|((cluster_name, broker_addr), connection_id)| {
                remove_broker(&mut tables, &cluster_name, &broker_addr, None);
                RemovedBroker { cluster_name, broker_addr, connection_id }
            })
            .collect()
    }

    /// BROKER_HEARTBEAT: refreshes liveness only. False when the broker is unknown.
    pub fn heartbeat(&self, cluster_name: &str, broker_addr: &str) -> bool {
        let mut tables = self.tables.write();
        let key = (cluster_name.to_owned(), broker_addr.to_owned());
        match tables.broker_live.get_mut(&key) {
            Some(live) => {
                live.last_update = Instant::now();
                true
            }
            None => false,
        }
    }

    /// QUERY_DATA_VERSION: refreshes liveness and returns (changed, stored version).
    pub fn query_data_version(
        &self,
        cluster_name: &str,
        broker_addr: &str,
        version: &DataVersion,
    ) -> (bool, Option<DataVersion>) {
        let mut tables = self.tables.write();
        let key = (cluster_name.to_owned(), broker_addr.to_owned());
        match tables.broker_live.get_mut(&key) {
            Some(live) => {
                live.last_update = Instant::now();
                (live.data_version != *version, Some(live.data_version))
            }
            None => (true, None),
        }
    }

    /// GET_ROUTEINFO_BY_TOPIC; `None` means TOPIC_NOT_EXIST. `zone` filters brokers by zone.
    pub fn topic_route(&self, topic: &str, zone: Option<&str>) -> Option<TopicRouteData> {
        let tables = self.tables.read();
        let queues = tables.topic_queue.get(topic)?;
        let mut route = TopicRouteData::default();
        for (broker_name, queue_data) in queues {
            let Some(broker_data) = tables.broker_addr.get(broker_name) else { continue };
            if let Some(zone) = zone {
                let has_master = broker_data.broker_addrs.contains_key(&MASTER_ID);
                if has_master && broker_data.zone_name.as_deref().is_some_and(|name| name != zone) {
                    continue;
                }
            }
            route.queue_datas.push(queue_data.clone());
            route.broker_datas.push(broker_data.clone());
            for addr in broker_data.broker_addrs.values() {
                let key = (broker_data.cluster.clone(), addr.clone());
                if let Some(servers) = tables.filter_server.get(&key).filter(|servers| !servers.is_empty()) {
                    route.filter_server_table.insert(addr.clone(), servers.clone());
                }
            }
        }
        if route.queue_datas.is_empty() || route.broker_datas.is_empty() {
            return None;
        }
        Some(route)
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub fn cluster_info(&self) -> ClusterInfo {
        let tables = self.tables.read();
        ClusterInfo {
            broker_addr_table: tables.broker_addr.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cluster_addr_table: tables
                .cluster_addr
                .iter()
                .map(|(cluster, names)| (cluster.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Every topic name, sorted.
    pub fn all_topics(&self) -> Vec<String> {
        let tables = self.tables.read();
        let mut topics: Vec<String> = tables.topic_queue.keys().cloned().collect();
        topics.sort_unstable();
        topics
    }

    /// Topics with queues on any broker of `cluster`, sorted.
    pub fn topics_by_cluster(&self, cluster: &str) -> Vec<String> {
        let tables = self.tables.read();
        let Some(broker_names) = tables.cluster_addr.get(cluster) else { return Vec::new() };
        let mut topics: Vec<String> = tables
            .topic_queue
            .iter()
            .filter(|(_, queues)| queues.keys().any(|name| broker_names.contains(name)))
            .map(|(topic, _)| topic.clone())
            .collect();
        topics.sort_unstable();
        topics
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and broker names (they are topics) and the
    /// address of one broker.
    pub fn system_topics(&self) -> (Vec<String>, Option<String>) {
        let tables = self.tables.read();
        let mut names = BTreeSet::new();
        let mut some_addr = None;
        for (cluster, broker_names) in &tables.cluster_addr {
            names.insert(cluster.clone());
            for broker_name in broker_names {
                names.insert(broker_name.clone());
                if some_addr.is_none() {
                    some_addr = tables
                        .broker_addr
                        .get(broker_name)
                        .and_then(|data| data.broker_addrs.values().next().cloned());
                }
            }
        }
        (names.into_iter().collect(), some_addr)
    }

    /// Topics whose (first) queue data matches `filter` on its topic-sys-flag.
    pub fn topics_by_sys_flag(&self, filter: UnitFilter) -> Vec<String> {
        let tables = self.tables.read();
        let mut topics: Vec<String> = tables
            .topic_queue
            .iter()
            .filter(|(_, queues)| {
                queues.values().next().is_some_and(|data| filter.matches(data.topic_sys_flag))
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        topics.sort_unstable();
        topics
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only the queues of `cluster`'s brokers.
    pub fn delete_topic(&self, topic: &str, cluster: Option<&str>) {
        let mut guard = self.tables.write();
        let tables = &mut *guard;
        match cluster.filter(|name| !name.is_empty()) {
            None => {
                tables.topic_queue.remove(topic);
            }
            Some(cluster) => {
                let Some(broker_names) = tables.cluster_addr.get(cluster) else { return };
                if let Some(queues) = tables.topic_queue.get_mut(topic) {
                    queues.retain(|name, _| !broker_names.contains(name));
                    if queues.is_empty() {
                        tables.topic_queue.remove(topic);
                    }
                }
            }
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV: adds or replaces queue data of known brokers.
    pub fn register_topic(&self, topic: &str, queue_datas: Vec<QueueData>) {
        let mut guard = self.tables.write();
        let tables = &mut *guard;
        for queue_data in queue_datas {
            if !tables.broker_addr.contains_key(&queue_data.broker_name) {
                continue;
            }
            tables
                .topic_queue
                .entry(topic.to_owned())
                .or_default()
                .insert(queue_data.broker_name.clone(), queue_data);
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: returns the topics changed.
    pub fn change_write_perm(&self, broker_name: &str, wipe: bool) -> i32 {
        let mut tables = self.tables.write();
        let mut count = 0;
        for queues in tables.topic_queue.values_mut() {
            if let Some(queue_data) = queues.get_mut(broker_name) {
                queue_data.perm = if wipe { queue_data.perm & !perm::WRITE } else { perm::READ_WRITE };
                count += 1;
            }
        }
        count
    }

    /// The id → address map of one broker group (GET_BROKER_MEMBER_GROUP).
    pub fn broker_members(&self, broker_name: &str) -> BTreeMap<i64, String> {
        let tables = self.tables.read();
        tables.broker_addr.get(broker_name).map(|data| data.broker_addrs.clone()).unwrap_or_default()
    }
}

/// Which unit topics a listing wants (GET_UNIT_TOPIC_LIST and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFilter {
    /// Unit flag set.
    Unit,
    /// Unit-sub flag set.
    HasUnitSub,
    /// Unit-sub flag set, unit flag clear.
    HasUnitSubNotUnit,
}

impl UnitFilter {
    fn matches(self, topic_sys_flag: i32) -> bool {
        let unit = topic_sys_flag & UNIT_FLAG != 0;
        let unit_sub = topic_sys_flag & UNIT_SUB_FLAG != 0;
        match self {
            Self::Unit => unit,
            Self::HasUnitSub => unit_sub,
            Self::HasUnitSubNotUnit => unit_sub && !unit,
        }
    }
}

fn queue_data_of(broker_name: &str, config: &TopicConfig) -> QueueData {
    QueueData {
        broker_name: broker_name.to_owned(),
        perm: config.perm,
        read_queue_nums: config.read_queue_nums,
        topic_sys_flag: config.topic_sys_flag,
        write_queue_nums: config.write_queue_nums,
    }
}

/// Removes the live entry of (cluster, addr) and the address from its broker group; a
/// group left empty disappears with its queue data (behaviour spec §1.5).
fn remove_broker(tables: &mut Tables, cluster_name: &str, broker_addr: &str, hint: Option<(&str, i64)>) {
    let key = (cluster_name.to_owned(), broker_addr.to_owned());
    tables.broker_live.remove(&key);
    tables.filter_server.remove(&key);

    let broker_names: Vec<String> = match hint {
        Some((name, _)) => vec![name.to_owned()],
        None => tables
            .broker_addr
            .iter()
            .filter(|(_, data)| {
                data.cluster == cluster_name && data.broker_addrs.values().any(|a| a == broker_addr)
            })
            .map(|(name, _)| name.clone())
            .collect(),
    };
    for broker_name in broker_names {
        let Some(broker_data) = tables.broker_addr.get_mut(&broker_name) else { continue };
        match hint {
            Some((_, broker_id)) => {
                if broker_data.broker_addrs.get(&broker_id).is_some_and(|addr| addr == broker_addr) {
                    broker_data.broker_addrs.remove(&broker_id);
                }
            }
            None => broker_data.broker_addrs.retain(|_, addr| addr != broker_addr),
        }
        if !broker_data.broker_addrs.is_empty() {
            continue;
        }
        tables.broker_addr.remove(&broker_name);
        if let Some(names) = tables.cluster_addr.get_mut(cluster_name) {
            names.remove(&broker_name);
            if names.is_empty() {
                tables.cluster_addr.remove(cluster_name);
            }
        }
        for queues in tables.topic_queue.values_mut() {
            queues.remove(&broker_name);
        }
        tables.topic_queue.retain(|_, queues| !queues.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, addr: &str, id: i64, topics: &[(&str, i32, i32)]) -> BrokerRegistration {
        BrokerRegistration {
            cluster_name: "C".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            data_version: DataVersion { counter: 1, state_version: 0, timestamp: 1 },
            topic_configs: topics
                .iter()
                .map(|(topic, read, write)| TopicConfig::with_queues(*topic, *read, *write, perm::READ_WRITE))
                .collect(),
            connection_id: Some(id as u64 + 100),
            ..BrokerRegistration::default()
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(Duration::from_secs(120), false)
    }

    #[test]
    fn master_and_slave_share_one_route() {
        let routes = table();
        routes.register_broker(registration("a", "m:1", 0, &[("T", 4, 4), ("U", 8, 2)])).unwrap();
        let outcome =
            routes.register_broker(registration("a", "s:1", 1, &[("T", 4, 4), ("U", 8, 2)])).unwrap();
        assert_eq!(outcome.master_addr.as_deref(), Some("m:1"));
        assert_eq!(outcome.ha_server_addr.as_deref(), Some("m:1-ha"));

        let route = routes.topic_route("U", None).unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!((route.queue_datas[0].read_queue_nums, route.queue_datas[0].write_queue_nums), (8, 2));
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
        assert!(routes.topic_route("missing", None).is_none());
    }

    #[test]
    fn losing_the_last_address_removes_the_group_and_its_topics() {
        let routes = table();
        routes.register_broker(registration("a", "m:1", 0, &[("T", 4, 4), ("X", 1, 1)])).unwrap();
        routes.register_broker(registration("b", "n:1", 0, &[("T", 4, 4), ("Y", 1, 1)])).unwrap();
        routes.unregister_broker("C", "m:1", "a", 0);
        let route = routes.topic_route("T", None).unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_name, "b");
        assert!(routes.topic_route("X", None).is_none());
        assert_eq!(
            routes.cluster_info().cluster_addr_table["C"],
            std::collections::BTreeSet::from(["b".to_owned()])
        );
    }

    #[test]
    fn silent_brokers_expire_and_closed_connections_unregister() {
        let routes = table();
        let mut quick = registration("a", "m:1", 0, &[("T", 4, 4), ("X", 1, 1)]);
        quick.heartbeat_timeout_ms = Some(50);
        routes.register_broker(quick).unwrap();
        routes.register_broker(registration("b", "n:1", 0, &[("T", 4, 4), ("Y", 1, 1)])).unwrap();

        assert!(routes.scan_not_active_brokers(Instant::now()).is_empty());
        let removed = routes.scan_not_active_brokers(Instant::now() + Duration::from_millis(60));
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].broker_addr, "m:1");
        assert!(routes.topic_route("X", None).is_none());

        let removed = routes.unregister_connection(100);
        assert_eq!(removed.len(), 1);
        assert!(routes.topic_route("T", None).is_none());
    }

    #[test]
    fn incremental_registration_needs_a_full_one_first() {
        let routes = table();
        let result = routes.register_broker(registration("a", "m:1", 0, &[("T", 4, 4)]));
        assert_eq!(result, Err(RegisterError::NotFullyRegistered));
    }

    #[test]
    fn write_permission_can_be_wiped_and_restored() {
        let routes = table();
        routes.register_broker(registration("a", "m:1", 0, &[("T", 4, 4), ("U", 4, 4)])).unwrap();
        assert_eq!(routes.change_write_perm("a", true), 2);
        assert_eq!(routes.topic_route("T", None).unwrap().queue_datas[0].perm, perm::READ);
        assert_eq!(routes.change_write_perm("a", false), 2);
        assert_eq!(routes.topic_route("T", None).unwrap().queue_datas[0].perm, perm::READ_WRITE);
    }

    #[test]
    fn delete_topic_by_cluster_keeps_other_clusters() {
        let routes = table();
        routes.register_broker(registration("a", "m:1", 0, &[("T", 4, 4), ("U", 4, 4)])).unwrap();
        let mut other = registration("b", "n:1", 0, &[("T", 4, 4), ("V", 4, 4)]);
        other.cluster_name = "D".into();
        routes.register_broker(other).unwrap();
        routes.delete_topic("T", Some("C"));
        let route = routes.topic_route("T", None).unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "b");
        routes.delete_topic("T", None);
        assert!(routes.topic_route("T", None).is_none());
        assert_eq!(routes.topics_by_cluster("D"), vec!["V".to_owned()]);
    }

    #[test]
    fn zone_filter_drops_other_zones() {
        let routes = table();
        let mut east = registration("a", "m:1", 0, &[("T", 4, 4), ("U", 4, 4)]);
        east.zone_name = Some("east".into());
        routes.register_broker(east).unwrap();
        let mut west = registration("b", "n:1", 0, &[("T", 4, 4), ("U", 4, 4)]);
        west.zone_name = Some("west".into());
        routes.register_broker(west).unwrap();
        let route = routes.topic_route("T", Some("west")).unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_name, "b");
        assert_eq!(routes.topic_route("T", None).unwrap().broker_datas.len(), 2);
    }
}
