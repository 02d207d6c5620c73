//! The route cache of a client instance: topic → route, and the broker address table
//! (brokerName → brokerId → address) learned from those routes (behaviour spec §3.7).
//!
//! Routes come from the network, so they are sanitized before use: entries are sorted by
//! broker name (so two fetches of the same route compare equal whatever the order) and queue
//! counts are clamped, so a hostile or broken NameServer cannot make the client allocate
//! without bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};

/// Most queues of one broker group a route may announce for one topic; more is clamped.
pub const MAX_QUEUE_NUMS_PER_BROKER: i32 = 65_536;

/// Most broker groups one route may list; the rest are dropped.
pub const MAX_BROKERS_PER_ROUTE: usize = 4_096;

/// Most routes kept; past this, routes of topics no producer or consumer uses are evicted.
pub const MAX_CACHED_ROUTES: usize = 16_384;

/// The cached routes and broker addresses of one client instance.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Arc<TopicRouteData>>,
    brokers: HashMap<String, BTreeMap<i64, String>>,
}

/// One address to call: which group it belongs to, its id in the group, and `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Broker group name.
    pub broker_name: String,
    /// Id in the group (0 = master).
    pub broker_id: i64,
    /// `ip:port`.
    pub addr: String,
}

/// Puts a route fetched from a NameServer into canonical form: broker and queue entries sorted
/// by broker name, at most [`MAX_BROKERS_PER_ROUTE`] of each, queue counts clamped to
/// `0..=`[`MAX_QUEUE_NUMS_PER_BROKER`], addresses trimmed and empty ones dropped.
pub fn sanitize(mut route: TopicRouteData) -> TopicRouteData {
    route.broker_datas.truncate(MAX_BROKERS_PER_ROUTE);
    route.queue_datas.truncate(MAX_BROKERS_PER_ROUTE);
    route.broker_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    route.queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for broker in &mut route.broker_datas {
        broker.broker_addrs.retain(|_, addr| !addr.trim().is_empty());
        for addr in broker.broker_addrs.values_mut() {
            if addr.trim().len() != addr.len() {
                *addr = addr.trim().to_owned();
            }
        }
    }
    for queue in &mut route.queue_datas {
        queue.read_queue_nums = queue.read_queue_nums.clamp(0, MAX_QUEUE_NUMS_PER_BROKER);
        queue.write_queue_nums = queue.write_queue_nums.clamp(0, MAX_QUEUE_NUMS_PER_BROKER);
    }
    route
}

impl RouteTable {
    /// The cached route of `topic`.
    pub fn get(&self, topic: &str) -> Option<Arc<TopicRouteData>> {
        self.routes.get(topic).cloned()
    }

    /// Stores a (sanitized) route for `topic` and learns its broker addresses. When the route
    /// equals the cached one, the cached `Arc` is kept and returned, so holders can tell "same
    /// route" by pointer. `in_use` names the topics that must survive eviction.
    pub fn update(
        &mut self,
        topic: &str,
        route: TopicRouteData,
        in_use: impl FnOnce() -> HashSet<String>,
    ) -> Arc<TopicRouteData> {
        for broker in &route.broker_datas {
            self.brokers.insert(broker.broker_name.clone(), broker.broker_addrs.clone());
        }
        if let Some(current) = self.routes.get(topic) {
            if **current == route {
                return Arc::clone(current);
            }
        }
        if !self.routes.contains_key(topic) && self.routes.len() >= MAX_CACHED_ROUTES {
            let keep = in_use();
            self.routes.retain(|cached, _| keep.contains(cached));
        }
        let route = Arc::new(route);
        self.routes.insert(topic.to_owned(), Arc::clone(&route));
        route
    }

    /// Number of cached routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no route is cached.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The master (id 0) address of a broker group.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.brokers.get(broker_name).and_then(|addrs| addrs.get(&MASTER_ID)).cloned()
    }

    /// `broker_id`'s address if known, else the master's, else any member's.
    pub fn broker_addr(&self, broker_name: &str, broker_id: i64) -> Option<String> {
        let addrs = self.brokers.get(broker_name)?;
        addrs.get(&broker_id).or_else(|| addrs.get(&MASTER_ID)).or_else(|| addrs.values().next()).cloned()
    }

    /// Every known address; only masters when `masters_only`.
    pub fn addresses(&self, masters_only: bool) -> Vec<BrokerAddr> {
        let mut out: Vec<BrokerAddr> = self
            .brokers
            .iter()
            .flat_map(|(broker_name, addrs)| {
                addrs.iter().filter(move |(id, _)| !masters_only || **id == MASTER_ID).map(|(id, addr)| {
                    BrokerAddr { broker_name: broker_name.clone(), broker_id: *id, addr: addr.clone() }
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.broker_name, a.broker_id).cmp(&(&b.broker_name, b.broker_id)));
        out
    }

    /// Java `cleanOfflineBroker`: forgets addresses that no cached route lists any more (and
    /// groups left without any address).
    pub fn prune_brokers(&mut self) {
        let mut live: HashMap<&str, HashSet<&str>> = HashMap::new();
        for route in self.routes.values() {
            for broker in &route.broker_datas {
                live.entry(broker.broker_name.as_str())
                    .or_default()
                    .extend(broker.broker_addrs.values().map(String::as_str));
            }
        }
        let mut pruned: HashMap<String, BTreeMap<i64, String>> = HashMap::new();
        for (name, addrs) in &self.brokers {
            let Some(live_addrs) = live.get(name.as_str()) else { continue };
            let kept: BTreeMap<i64, String> = addrs
                .iter()
                .filter(|(_, addr)| live_addrs.contains(addr.as_str()))
                .map(|(id, addr)| (*id, addr.clone()))
                .collect();
            if !kept.is_empty() {
                pruned.insert(name.clone(), kept);
            }
        }
        self.brokers = pruned;
    }
}

#[cfg(test)]
mod tests {
    use apogee_remoting::body::route::{BrokerData, QueueData};

    use super::*;
    use crate::test_data::broker;

    fn queues(name: &str, write: i32) -> QueueData {
        QueueData {
            broker_name: name.into(),
            perm: 6,
            read_queue_nums: write,
            write_queue_nums: write,
            topic_sys_flag: 0,
        }
    }

    fn route(brokers: Vec<BrokerData>, queue_datas: Vec<QueueData>) -> TopicRouteData {
        sanitize(TopicRouteData { broker_datas: brokers, queue_datas, ..TopicRouteData::default() })
    }

    #[test]
    fn sanitize_sorts_and_clamps() {
        let route = route(
            vec![broker("b", &[(0, " 10.0.0.2:1 ")]), broker("a", &[(0, "10.0.0.1:1"), (1, "")])],
            vec![queues("b", i32::MAX), queues("a", -3)],
        );
        assert_eq!(route.broker_datas[0].broker_name, "a");
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 1);
        assert_eq!(route.broker_datas[1].broker_addrs[&0], "10.0.0.2:1");
        assert_eq!(route.queue_datas[0].write_queue_nums, 0);
        assert_eq!(route.queue_datas[1].write_queue_nums, MAX_QUEUE_NUMS_PER_BROKER);
    }

    #[test]
    fn equal_routes_keep_their_arc() {
        let mut table = RouteTable::default();
        let first =
            table.update("T", route(vec![broker("a", &[(0, "x:1")])], vec![queues("a", 4)]), HashSet::new);
        let again =
            table.update("T", route(vec![broker("a", &[(0, "x:1")])], vec![queues("a", 4)]), HashSet::new);
        assert!(Arc::ptr_eq(&first, &again));
        let changed =
            table.update("T", route(vec![broker("a", &[(0, "x:1")])], vec![queues("a", 8)]), HashSet::new);
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(Arc::ptr_eq(&table.get("T").unwrap(), &changed));
    }

    #[test]
    fn broker_addresses_and_pruning() {
        let mut table = RouteTable::default();
        table.update(
            "T",
            route(vec![broker("a", &[(0, "a0:1"), (1, "a1:1")]), broker("b", &[(1, "b1:1")])], vec![]),
            HashSet::new,
        );
        assert_eq!(table.master_addr("a").as_deref(), Some("a0:1"));
        assert_eq!(table.master_addr("b"), None);
        assert_eq!(table.broker_addr("a", 1).as_deref(), Some("a1:1"));
        assert_eq!(table.broker_addr("a", 7).as_deref(), Some("a0:1"));
        assert_eq!(table.broker_addr("b", 0).as_deref(), Some("b1:1"));
        assert_eq!(table.addresses(true).len(), 1);
        assert_eq!(table.addresses(false).len(), 3);
        // The route changes: b left, a lost its slave.
        table.update("T", route(vec![broker("a", &[(0, "a0:1")])], vec![]), HashSet::new);
        table.prune_brokers();
        let left: Vec<String> = table.addresses(false).into_iter().map(|b| b.addr).collect();
        assert_eq!(left, ["a0:1"]);
    }

    #[test]
    fn eviction_keeps_topics_in_use() {
        let mut table = RouteTable::default();
        for index in 0..MAX_CACHED_ROUTES {
            table.routes.insert(format!("T{index}"), Arc::new(TopicRouteData::default()));
        }
        table.update("new", TopicRouteData::default(), || HashSet::from(["T7".to_owned()]));
        assert_eq!(table.len(), 2);
        assert!(table.get("T7").is_some() && table.get("new").is_some());
    }
}
