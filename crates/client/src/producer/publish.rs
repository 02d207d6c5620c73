//! The queues a producer writes to for one topic (Java `TopicPublishInfo`, behaviour spec §3.2)
//! and how it picks one for each attempt (§3.3).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apogee_common::{perm, MessageQueue};
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};

use super::latency::LatencyFaultTolerance;
use super::random_u32;

/// Most queues in one publish list; a route announcing more is cut (in list order).
pub const MAX_PUBLISH_QUEUES: usize = 65_536;

/// Where a publish list came from.
#[derive(Debug, Clone)]
pub enum RouteSource {
    /// The topic's own route, as cached by the client instance (compared by pointer to
    /// notice refreshes).
    Own(Arc<TopicRouteData>),
    /// Borrowed from the auto-create template topic (TBW102) while the topic has no route of
    /// its own (behaviour spec §2.3).
    Borrowed(Arc<TopicRouteData>),
}

/// The write queues of one topic and the round-robin counter over them.
#[derive(Debug)]
pub struct TopicPublishInfo {
    /// Whether the list came from `orderTopicConf` (stable across broker outages).
    pub order_topic: bool,
    /// The queues, in Java's order.
    pub queues: Vec<MessageQueue>,
    /// The route the list was built from.
    pub source: RouteSource,
    /// Round-robin position; starts random so producers spread out.
    counter: AtomicU32,
}

impl TopicPublishInfo {
    /// The publish list of `topic` from `route` (Java `topicRouteData2TopicPublishInfo`):
    /// with `orderTopicConf`, its `brokerName:queueNum` entries in the listed order (even for
    /// brokers without a master); otherwise, by broker name, every writable queue data entry
    /// whose group has a master, queues `0..writeQueueNums`.
    pub fn from_route(topic: &str, source: RouteSource) -> Self {
        let route = match &source {
            RouteSource::Own(route) | RouteSource::Borrowed(route) => Arc::clone(route),
        };
        let mut queues = Vec::new();
        let order_conf = route.order_topic_conf.as_deref().filter(|conf| !conf.is_empty());
        let order_topic = order_conf.is_some();
        if let Some(conf) = order_conf {
            for entry in conf.split(';') {
                let Some((broker_name, count)) = entry.split_once(':') else { continue };
                let Ok(count) = count.trim().parse::<i32>() else { continue };
                push_queues(&mut queues, topic, broker_name.trim(), count);
            }
        } else {
            let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
            queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
            for queue_data in queue_datas {
                if !perm::is_writeable(queue_data.perm) {
                    continue;
                }
                let has_master = route.broker_datas.iter().any(|broker| {
                    broker.broker_name == queue_data.broker_name
                        && broker.broker_addrs.contains_key(&MASTER_ID)
                });
                if has_master {
                    push_queues(&mut queues, topic, &queue_data.broker_name, queue_data.write_queue_nums);
                }
            }
        }
        Self { order_topic, queues, source, counter: AtomicU32::new(random_u32()) }
    }

    /// Whether there is any queue to send to.
    pub fn ok(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Whether this list was borrowed from the template topic.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.source, RouteSource::Borrowed(_))
    }

    /// Restarts the round robin at a random position (a retry with fault tolerance on).
    pub fn reset_index(&self) {
        self.counter.store(random_u32(), Ordering::Relaxed);
    }

    /// The queue at round-robin position `position`.
    fn at(&self, position: u32) -> Option<&MessageQueue> {
        let len = self.queues.len();
        if len == 0 {
            return None;
        }
        let index = usize::try_from(position & 0x7fff_ffff).unwrap_or(0) % len;
        self.queues.get(index)
    }

    /// The first queue, scanning at most the whole list from the next round-robin position,
    /// that `accept` takes; the counter moves past what was scanned.
    fn scan(&self, accept: impl Fn(&MessageQueue) -> bool) -> Option<&MessageQueue> {
        let len = u32::try_from(self.queues.len()).unwrap_or(u32::MAX);
        let base = self.counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        for step in 0..len {
            let queue = self.at(base.wrapping_add(step))?;
            if accept(queue) {
                if step > 0 {
                    self.counter.fetch_add(step, Ordering::Relaxed);
                }
                return Some(queue);
            }
        }
        None
    }

    /// The next queue in round-robin order, whatever its broker.
    pub fn next_queue(&self) -> Option<&MessageQueue> {
        self.scan(|_| true)
    }

    /// Picks the queue of the next attempt (Java `MQFaultStrategy.selectOneMessageQueue`).
    /// `last_broker` is the broker of the previous attempt of the same send, avoided whenever
    /// another broker has a queue. With fault tolerance on: first a queue of an available
    /// (not isolated) broker, then of a reachable one, then any; `reset` restarts the round
    /// robin at random first.
    pub fn select(
        &self,
        last_broker: Option<&str>,
        faults: &LatencyFaultTolerance,
        reset: bool,
    ) -> Option<MessageQueue> {
        let other_broker = |queue: &MessageQueue| last_broker != Some(queue.broker_name.as_str());
        let picked = if faults.enabled() {
            if reset {
                self.reset_index();
            }
            self.scan(|queue| faults.is_available(&queue.broker_name) && other_broker(queue))
                .or_else(|| self.scan(|queue| faults.is_reachable(&queue.broker_name) && other_broker(queue)))
                .or_else(|| self.next_queue())
        } else {
            self.scan(other_broker).or_else(|| self.next_queue())
        };
        picked.cloned()
    }
}

fn push_queues(queues: &mut Vec<MessageQueue>, topic: &str, broker_name: &str, count: i32) {
    let room = MAX_PUBLISH_QUEUES.saturating_sub(queues.len());
    let count = usize::try_from(count).unwrap_or(0).min(room);
    queues.extend(
        (0..count).map(|queue_id| {
            MessageQueue::new(topic, broker_name, i32::try_from(queue_id).unwrap_or(i32::MAX))
        }),
    );
}

/// The route a producer uses for a topic with no route of its own (behaviour spec §2.3): the
/// template's route with every queue data entry's read and write counts set to
/// `min(default_topic_queue_nums, readQueueNums)`.
pub fn borrow_template_route(template: &TopicRouteData, default_topic_queue_nums: i32) -> TopicRouteData {
    let mut route = template.clone();
    for queue_data in &mut route.queue_datas {
        let count = default_topic_queue_nums.min(queue_data.read_queue_nums).max(0);
        queue_data.read_queue_nums = count;
        queue_data.write_queue_nums = count;
    }
    route
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use apogee_remoting::body::route::{BrokerData, QueueData};

    use super::*;

    fn broker(name: &str, ids: &[i64]) -> BrokerData {
        BrokerData {
            broker_name: name.into(),
            cluster: "C".into(),
            broker_addrs: ids.iter().map(|id| (*id, format!("{name}-{id}:10911"))).collect(),
            ..BrokerData::default()
        }
    }

    fn queue_data(name: &str, write: i32, perm: i32) -> QueueData {
        QueueData {
            broker_name: name.into(),
            perm,
            read_queue_nums: write,
            write_queue_nums: write,
            topic_sys_flag: 0,
        }
    }

    fn info(route: TopicRouteData) -> TopicPublishInfo {
        TopicPublishInfo::from_route("T", RouteSource::Own(Arc::new(route)))
    }

    fn names(info: &TopicPublishInfo) -> Vec<String> {
        info.queues.iter().map(|queue| format!("{}:{}", queue.broker_name, queue.queue_id)).collect()
    }

    #[test]
    fn list_is_sorted_writable_and_mastered() {
        let route = TopicRouteData {
            broker_datas: vec![broker("c", &[0]), broker("b", &[1]), broker("a", &[0, 1]), broker("d", &[0])],
            queue_datas: vec![
                queue_data("c", 2, perm::READ_WRITE),
                queue_data("b", 2, perm::READ_WRITE), // no master
                queue_data("a", 2, perm::READ_WRITE | perm::INHERIT),
                queue_data("d", 2, perm::READ),       // not writable
                queue_data("e", 2, perm::READ_WRITE), // no broker data at all
            ],
            ..TopicRouteData::default()
        };
        let info = info(route);
        assert!(!info.order_topic);
        assert_eq!(names(&info), ["a:0", "a:1", "c:0", "c:1"]);
        assert!(info.queues.iter().all(|queue| queue.topic == "T"));
    }

    #[test]
    fn order_topic_conf_wins_even_without_masters() {
        let route = TopicRouteData {
            broker_datas: vec![broker("a", &[0]), broker("b", &[1])],
            queue_datas: vec![queue_data("a", 8, perm::READ_WRITE)],
            order_topic_conf: Some("b:2;a:1;broken;x:notanumber".into()),
            ..TopicRouteData::default()
        };
        let info = info(route);
        assert!(info.order_topic);
        assert_eq!(names(&info), ["b:0", "b:1", "a:0"]);
    }

    #[test]
    fn hostile_counts_are_bounded() {
        let route = TopicRouteData {
            broker_datas: vec![broker("a", &[0])],
            order_topic_conf: Some(format!("a:{};a:5", i32::MAX)),
            ..TopicRouteData::default()
        };
        assert_eq!(info(route).queues.len(), MAX_PUBLISH_QUEUES);
        let negative = TopicRouteData {
            broker_datas: vec![broker("a", &[0])],
            queue_datas: vec![queue_data("a", -5, perm::READ_WRITE)],
            ..TopicRouteData::default()
        };
        assert!(!info(negative).ok());
    }

    #[test]
    fn borrowed_route_uses_min_of_default_and_template() {
        let template = TopicRouteData {
            broker_datas: vec![broker("a", &[0])],
            queue_datas: vec![
                queue_data("a", 8, 7),
                QueueData { read_queue_nums: 2, ..queue_data("b", 8, 7) },
            ],
            ..TopicRouteData::default()
        };
        let route = borrow_template_route(&template, 4);
        assert_eq!((route.queue_datas[0].read_queue_nums, route.queue_datas[0].write_queue_nums), (4, 4));
        assert_eq!((route.queue_datas[1].read_queue_nums, route.queue_datas[1].write_queue_nums), (2, 2));
        let info = TopicPublishInfo::from_route("New", RouteSource::Borrowed(Arc::new(route)));
        assert!(info.is_borrowed());
        assert_eq!(info.queues.len(), 4);
        assert!(info.queues.iter().all(|queue| queue.topic == "New"));
    }

    fn two_brokers() -> TopicPublishInfo {
        info(TopicRouteData {
            broker_datas: vec![broker("a", &[0]), broker("b", &[0])],
            queue_datas: vec![queue_data("a", 4, 6), queue_data("b", 1, 6)],
            ..TopicRouteData::default()
        })
    }

    #[test]
    fn round_robin_covers_every_queue() {
        let info = two_brokers();
        let faults = LatencyFaultTolerance::new(false);
        let picked: HashSet<MessageQueue> =
            (0..5).filter_map(|_| info.select(None, &faults, false)).collect();
        assert_eq!(picked.len(), 5);
    }

    #[test]
    fn retry_never_picks_the_same_broker_when_another_exists() {
        for enabled in [false, true] {
            let faults = LatencyFaultTolerance::new(enabled);
            let info = two_brokers();
            for round in 0..200 {
                let first = info.select(None, &faults, false).unwrap();
                let retry = info.select(Some(&first.broker_name), &faults, round % 2 == 0).unwrap();
                assert_ne!(first.broker_name, retry.broker_name, "fault tolerance {enabled}, round {round}");
            }
        }
        // With one broker only, the retry goes back to it.
        let single = info(TopicRouteData {
            broker_datas: vec![broker("a", &[0])],
            queue_datas: vec![queue_data("a", 2, 6)],
            ..TopicRouteData::default()
        });
        let faults = LatencyFaultTolerance::new(true);
        assert_eq!(single.select(Some("a"), &faults, true).unwrap().broker_name, "a");
    }

    #[test]
    fn fault_tolerance_avoids_isolated_then_unreachable_brokers() {
        let faults = LatencyFaultTolerance::new(true);
        let info = info(TopicRouteData {
            broker_datas: vec![broker("a", &[0]), broker("b", &[0]), broker("c", &[0])],
            queue_datas: vec![queue_data("a", 2, 6), queue_data("b", 2, 6), queue_data("c", 2, 6)],
            ..TopicRouteData::default()
        });
        // a: isolated but reachable; b: isolated and unreachable; c: fine.
        faults.update("a", Duration::ZERO, true, true);
        faults.update("b", Duration::ZERO, true, false);
        for _ in 0..50 {
            assert_eq!(info.select(None, &faults, false).unwrap().broker_name, "c");
        }
        // c was the last broker: the isolated-but-reachable a comes next, never b.
        for _ in 0..50 {
            assert_eq!(info.select(Some("c"), &faults, true).unwrap().broker_name, "a");
        }
        // Everything isolated and unreachable: any queue still goes.
        faults.update("a", Duration::ZERO, true, false);
        faults.update("c", Duration::ZERO, true, false);
        assert!(info.select(Some("c"), &faults, false).is_some());
    }

    #[test]
    fn empty_list_selects_nothing() {
        let info = info(TopicRouteData::default());
        assert!(!info.ok());
        assert!(info.select(None, &LatencyFaultTolerance::new(true), true).is_none());
    }
}
