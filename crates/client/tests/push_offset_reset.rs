//! An admin's offset reset (INVOKE_BROKER_TO_RESET_OFFSET) reaches a push consumer that is
//! online, both ways the broker can do it: server side (the next pull is moved) and by
//! RESET_CONSUMER_CLIENT_OFFSET pushed to the consumer. After a reset to a time before the
//! first message, every message comes again, once more each.

mod push_support;

use std::collections::BTreeMap;
use std::time::Duration;

use apogee_client::{Admin, MessageQueue, PushConsumer};
use apogee_common::time::now_ms;
use apogee_common::{perm, TopicConfig};
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::header::send::SendMessageRequestHeader;
use apogee_remoting::RemotingCommand;
use apogee_testkit::{eventually, Cluster};
use push_support::{init_tracing, wait_until, Log};

const BROKER_NAME: &str = "broker-reset";
const TOPIC: &str = "ResetTopic";
const GROUP: &str = "cg-reset";
const FIRST_BODIES: [&str; 5] = ["m0", "m1", "m2", "m3", "m4"];
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// How many times each body was delivered.
fn deliveries(log: &Log) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for delivery in log.all() {
        *counts.entry(delivery.body()).or_default() += 1;
    }
    counts
}

async fn send(cluster: &Cluster, body: &str) {
    let header = SendMessageRequestHeader::plain("PG_RESET", TOPIC, 0, "", BROKER_NAME);
    let response = cluster.call_broker(0, header.into_v2_request(body.as_bytes().to_vec())).await;
    assert_eq!(response.code, response_code::SUCCESS, "send refused: {:?}", response.remark);
}

/// A NameServer and a broker resetting offsets `server_side` or not, with `TOPIC` (one queue)
/// routed.
async fn start(server_side: bool) -> Cluster {
    init_tracing();
    let cluster = Cluster::builder()
        .broker_names(&[BROKER_NAME])
        .configure(move |_, config| config.use_server_side_reset_offset = server_side)
        .start()
        .await;
    let state = cluster.broker_state(0);
    state.topics.create_or_update(TopicConfig::with_queues(TOPIC, 1, 1, perm::READ_WRITE)).expect("topic");
    eventually("a route for the topic", WAIT_LIMIT, || async {
        let header = GetRouteInfoRequestHeader { topic: TOPIC.to_owned(), ..Default::default() };
        let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
        (cluster.call_namesrv(request).await.code == response_code::SUCCESS).then_some(())
    })
    .await;
    cluster
}

async fn reset_reaches_an_online_consumer(server_side: bool) {
    let cluster = start(server_side).await;
    let state = cluster.broker_state(0);

    let before_first_ms = now_ms() - 1;
    for body in FIRST_BODIES {
        send(&cluster, body).await;
    }
    let log = Log::default();
    let consumer = PushConsumer::builder()
        .group(GROUP)
        .namesrv(cluster.namesrv_addr())
        .subscribe(TOPIC, "*")
        .start(log.listener("c"))
        .await
        .expect("consumer starts");
    wait_until("the first pass", WAIT_LIMIT, || deliveries(&log).len() == FIRST_BODIES.len()).await;
    wait_until("the group's offset at the end", WAIT_LIMIT, || {
        state.offsets.query(GROUP, TOPIC, 0) == Some(5)
    })
    .await;

    let admin =
        Admin::builder().namesrv(cluster.namesrv_addr().to_owned()).start().await.expect("admin starts");
    let moved = admin.reset_offset_by_time(GROUP, TOPIC, before_first_ms, true).await.expect("reset");
    assert_eq!(moved, BTreeMap::from([(MessageQueue::new(TOPIC, BROKER_NAME, 0), 0)]));
    // A held pull only comes back on arrival (or after its suspension): wake it.
    send(&cluster, "after").await;

    let expected: BTreeMap<String, usize> =
        FIRST_BODIES.iter().map(|body| ((*body).to_owned(), 2)).chain([("after".to_owned(), 1)]).collect();
    wait_until("the second pass", WAIT_LIMIT, || deliveries(&log) == expected).await;
    // Long enough for a third pass or a stray redelivery to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(deliveries(&log), expected, "every message once more after the reset, and no more");
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_side_reset_moves_the_next_pull() {
    reset_reaches_an_online_consumer(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_pushed_to_the_consumer_moves_it() {
    reset_reaches_an_online_consumer(false).await;
}

/// Without a consumer online the client-side way is refused (CONSUMER_NOT_ONLINE) and the admin
/// commits directly, moving offsets back only, unless forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_consumer_online_the_admin_commits_backwards_only() {
    let cluster = start(false).await;
    let state = cluster.broker_state(0);
    let before_first_ms = now_ms() - 1;
    for body in FIRST_BODIES {
        send(&cluster, body).await;
    }
    state.groups.update(SubscriptionGroupConfig::new(GROUP)).expect("group");
    state.offsets.commit(GROUP, TOPIC, 0, 2);
    let queue = MessageQueue::new(TOPIC, BROKER_NAME, 0);
    let admin =
        Admin::builder().namesrv(cluster.namesrv_addr().to_owned()).start().await.expect("admin starts");

    let not_forward = admin.reset_offset_by_time(GROUP, TOPIC, -1, false).await.expect("reset");
    assert!(not_forward.is_empty(), "{not_forward:?}");
    assert_eq!(state.offsets.query(GROUP, TOPIC, 0), Some(2));
    let back = admin.reset_offset_by_time(GROUP, TOPIC, before_first_ms, false).await.expect("reset");
    assert_eq!(back, BTreeMap::from([(queue.clone(), 0)]));
    assert_eq!(state.offsets.query(GROUP, TOPIC, 0), Some(0));
    let forced = admin.reset_offset_by_time(GROUP, TOPIC, -1, true).await.expect("reset");
    assert_eq!(forced, BTreeMap::from([(queue, 5)]));
    assert_eq!(state.offsets.query(GROUP, TOPIC, 0), Some(5));
    cluster.shutdown().await;
}
