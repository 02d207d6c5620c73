//! Route reading of the lite pull consumer; its behaviour against a broker is tested over the
//! public API in the crate's tests/lite_pull_*.rs.

use apogee_common::MessageQueue;
use apogee_remoting::body::route::{BrokerData, QueueData, TopicRouteData};

use super::{broker_addr_in_route, readable_queues};

#[test]
fn readable_queues_skip_unreadable_data() {
    let route = TopicRouteData {
        queue_datas: vec![
            QueueData {
                broker_name: "b".into(),
                perm: 6,
                read_queue_nums: 2,
                write_queue_nums: 2,
                topic_sys_flag: 0,
            },
            QueueData {
                broker_name: "a".into(),
                perm: 2,
                read_queue_nums: 4,
                write_queue_nums: 4,
                topic_sys_flag: 0,
            },
            QueueData {
                broker_name: "c".into(),
                perm: 4,
                read_queue_nums: 1,
                write_queue_nums: 0,
                topic_sys_flag: 0,
            },
        ],
        ..TopicRouteData::default()
    };
    let queues = readable_queues("T", &route);
    assert_eq!(
        queues,
        [MessageQueue::new("T", "b", 0), MessageQueue::new("T", "b", 1), MessageQueue::new("T", "c", 0)]
    );
}

#[test]
fn broker_addresses_prefer_the_asked_member_then_the_master() {
    let mut route = TopicRouteData::default();
    let mut broker = BrokerData { broker_name: "b".into(), ..BrokerData::default() };
    broker.broker_addrs.insert(0, "m:1".into());
    broker.broker_addrs.insert(1, "s:1".into());
    route.broker_datas.push(broker);
    assert_eq!(broker_addr_in_route(&route, "b", 1).as_deref(), Some("s:1"));
    assert_eq!(broker_addr_in_route(&route, "b", 7).as_deref(), Some("m:1"));
    assert_eq!(broker_addr_in_route(&route, "other", 0), None);
    route.broker_datas[0].broker_addrs.remove(&0);
    assert_eq!(broker_addr_in_route(&route, "b", 0).as_deref(), Some("s:1"));
}
