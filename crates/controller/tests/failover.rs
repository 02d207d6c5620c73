//! Three controllers in this process (testkit's `ControllerGroup`): broker registration, the
//! first election, SyncStateSet changes and their fencing, failover when the master's
//! heartbeats stop, loss of the raft leader, and a controller restarted from its data directory.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_controller::client::{ControllerClient, ControllerClientConfig};
use apogee_controller::header::{
    CleanControllerBrokerDataRequestHeader, NotifyBrokerRoleChangedRequestHeader,
};
use apogee_controller::server::LEADER_ADDRESS_FIELD;
use apogee_controller::state::ControllerState;
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::header::namesrv::BrokerHeartbeatRequestHeader;
use apogee_remoting::router::Router;
use apogee_remoting::server::{RemotingServer, ServerConfig, ServerHandle};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_testkit::{eventually, ControllerGroup, LOOPBACK};
use tokio::sync::mpsc;

const CLUSTER: &str = "DefaultCluster";
const SET: &str = "broker-a";
/// Liveness timeout the test brokers announce.
const BROKER_TIMEOUT_MS: i64 = 1_000;
/// Period of their heartbeats.
const HEARTBEAT_PERIOD: Duration = Duration::from_millis(100);

/// A stand-in broker: a remoting listener that records role-change notifications, and a
/// heartbeat loop that can be stopped.
struct TestBroker {
    server: ServerHandle,
    notified: mpsc::UnboundedReceiver<NotifyBrokerRoleChangedRequestHeader>,
    beating: Arc<AtomicBool>,
}

impl TestBroker {
    async fn start() -> Self {
        let (sender, notified) = mpsc::unbounded_channel();
        let mut router = Router::new();
        router.register(
            request_code::NOTIFY_BROKER_ROLE_CHANGED,
            move |_connection, request: RemotingCommand| {
                let sender = sender.clone();
                async move {
                    if let Ok(header) = request.decode_header::<NotifyBrokerRoleChangedRequestHeader>() {
                        let _ = sender.send(header);
                    }
                    None
                }
            },
        );
        let config = ServerConfig { listen: SocketAddr::new(LOOPBACK, 0), ..ServerConfig::default() };
        let server = RemotingServer::start(config, router).await.expect("broker listener");
        Self { server, notified, beating: Arc::new(AtomicBool::new(true)) }
    }

    fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    /// Heartbeats every controller every [`HEARTBEAT_PERIOD`] while `beating` holds.
    fn heartbeat(&self, client: Arc<ControllerClient>, broker_id: i64) -> tokio::task::JoinHandle<()> {
        let header = BrokerHeartbeatRequestHeader {
            cluster_name: CLUSTER.into(),
            broker_addr: self.addr(),
            broker_name: SET.into(),
            broker_id: Some(broker_id),
            epoch: Some(0),
            max_offset: Some(0),
            confirm_offset: Some(0),
            heartbeat_timeout_mills: Some(BROKER_TIMEOUT_MS),
            election_priority: None,
        };
        let beating = Arc::clone(&self.beating);
        tokio::spawn(async move {
            // Bounded: at most 10 minutes of heartbeats.
            for _ in 0..6_000 {
                if !beating.load(Ordering::Acquire) {
                    return;
                }
                client.heartbeat(&header).await;
                tokio::time::sleep(HEARTBEAT_PERIOD).await;
            }
        })
    }
}

fn client(group: &ControllerGroup) -> Arc<ControllerClient> {
    let config =
        ControllerClientConfig { leader_wait: Duration::from_secs(20), ..ControllerClientConfig::default() };
    Arc::new(ControllerClient::new(group.addrs(), config))
}

/// GET_NEXT_BROKER_ID then APPLY_BROKER_ID, as a new broker does (spec §7.3).
async fn take_id(client: &ControllerClient, broker: &TestBroker) -> i64 {
    let next = client.get_next_broker_id(CLUSTER, SET).await.unwrap();
    assert!(next.is_success(), "{next:?}");
    let id = next.header.next_broker_id.unwrap();
    let check_code = format!("{};{}", broker.addr(), id);
    let applied = client.apply_broker_id(CLUSTER, SET, id, &check_code).await.unwrap();
    assert!(applied.is_success(), "{applied:?}");
    let registered = client.register_broker(CLUSTER, SET, id, &broker.addr()).await.unwrap();
    assert!(registered.is_success(), "{registered:?}");
    id
}

/// The state of the controller at `index` once `done` holds for it.
async fn applied_state(
    group: &ControllerGroup,
    index: usize,
    done: impl Fn(&ControllerState) -> bool,
) -> ControllerState {
    eventually("the controller applied the committed decisions", Duration::from_secs(5), || async {
        let state = group.controller(index)?.state();
        done(&state).then_some(state)
    })
    .await
}

/// Stops every controller and restarts the one at `index` alone: with no peer to learn from,
/// it must hold `expected` from its own log, vote and snapshot files.
async fn restart_alone(group: &mut ControllerGroup, index: usize, expected: &ControllerState) {
    for stopped in 0..3 {
        group.stop(stopped).await;
    }
    group.restart(index).await.unwrap();
    eventually("the lone controller restored its state from disk", Duration::from_secs(5), || async {
        (group.controller(index)?.state() == *expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_master_is_replaced_and_the_state_survives_leader_loss_and_restart() {
    let mut group = ControllerGroup::start(3, |_| {}).await.unwrap();
    let first_leader = group.wait_leader().await;
    let client = client(&group);

    // Two brokers take ids 1 and 2.
    let mut broker_1 = TestBroker::start().await;
    let mut broker_2 = TestBroker::start().await;
    assert_eq!(take_id(&client, &broker_1).await, 1);
    assert_eq!(take_id(&client, &broker_2).await, 2);
    let stolen = client.apply_broker_id(CLUSTER, SET, 1, "127.0.0.1:1;other").await.unwrap();
    assert_eq!(stolen.code, response_code::CONTROLLER_BROKER_ID_INVALID, "{stolen:?}");
    let beats_1 = broker_1.heartbeat(Arc::clone(&client), 1);
    let beats_2 = broker_2.heartbeat(Arc::clone(&client), 2);

    // Broker 1 asks first and becomes master with epoch 1.
    let elected = client.elect_master(CLUSTER, SET, 1, false).await.unwrap();
    assert!(elected.is_success(), "{elected:?}");
    assert_eq!(elected.header.master_broker_id, Some(1));
    assert_eq!(elected.header.master_epoch, Some(1));
    assert_eq!(elected.header.master_address, Some(broker_1.addr()));
    let again = client.elect_master(CLUSTER, SET, 2, false).await.unwrap();
    assert_eq!(again.code, response_code::CONTROLLER_MASTER_STILL_EXIST, "{again:?}");
    assert_eq!(again.header.master_broker_id, Some(1));

    // The master adds broker 2 to the SyncStateSet.
    let altered = client.alter_sync_state_set(SET, 1, 1, BTreeSet::from([1, 2]), 1).await.unwrap();
    assert!(altered.is_success(), "{altered:?}");
    assert_eq!(altered.header.new_sync_state_set_epoch, Some(2));
    // Stale epochs are fenced.
    let stale_set = client.alter_sync_state_set(SET, 1, 1, BTreeSet::from([1]), 1).await.unwrap();
    assert_eq!(stale_set.code, response_code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH, "{stale_set:?}");
    let stale_master = client.alter_sync_state_set(SET, 1, 0, BTreeSet::from([1]), 2).await.unwrap();
    assert_eq!(stale_master.code, response_code::CONTROLLER_FENCED_MASTER_EPOCH, "{stale_master:?}");
    let not_master = client.alter_sync_state_set(SET, 2, 1, BTreeSet::from([2]), 2).await.unwrap();
    assert_eq!(not_master.code, response_code::CONTROLLER_INVALID_MASTER, "{not_master:?}");
    let info = client.get_replica_info(SET).await.unwrap();
    assert_eq!(info.body.unwrap().sync_state_set, BTreeSet::from([1, 2]));

    // The master's heartbeats stop: within its liveness timeout (plus a scan and a commit)
    // broker 2 becomes master with epoch 2, and is told so.
    broker_1.beating.store(false, Ordering::Release);
    beats_1.await.unwrap();
    let silent_since = Instant::now();
    let info = eventually("broker 2 elected after broker 1 fell silent", Duration::from_secs(15), || async {
        let info = client.get_replica_info(SET).await.ok()?;
        (info.header.master_broker_id == Some(2)).then_some(info)
    })
    .await;
    let failover = silent_since.elapsed();
    eprintln!("new master elected {failover:?} after the old one fell silent (liveness timeout {BROKER_TIMEOUT_MS} ms)");
    assert!(failover < Duration::from_millis(BROKER_TIMEOUT_MS as u64 + 3_000), "failover took {failover:?}");
    assert_eq!(info.header.master_epoch, Some(2));
    assert_eq!(info.header.master_address, Some(broker_2.addr()));
    let sync = info.body.unwrap();
    assert_eq!((sync.sync_state_set, sync.sync_state_set_epoch), (BTreeSet::from([2]), 3));
    // Live members were told of each election (broker 2 of both), the silent one not of the
    // second.
    let notice = async {
        loop {
            let notice = broker_2.notified.recv().await.unwrap();
            if notice.master_epoch == Some(2) {
                return notice;
            }
            assert_eq!((notice.master_broker_id, notice.master_epoch), (Some(1), Some(1)));
        }
    };
    let notice = tokio::time::timeout(Duration::from_secs(5), notice).await.unwrap();
    assert_eq!(notice.master_broker_id, Some(2));
    assert_eq!(notice.master_address, Some(broker_2.addr()));
    while let Ok(seen) = broker_1.notified.try_recv() {
        assert_eq!(seen.master_epoch, Some(1), "a silent broker was notified of the failover");
    }

    // The replicas as an administrator sees them; the dead broker can be forgotten, a live one
    // not.
    let data = client.get_sync_state_data(&[SET.to_owned(), "no-such-set".to_owned()]).await.unwrap();
    assert!(data.is_success(), "{data:?}");
    let table = data.body.unwrap().replicas_info_table;
    assert_eq!(table.keys().collect::<Vec<_>>(), [SET]);
    let replicas = &table[SET];
    assert_eq!(
        (replicas.master_broker_id, replicas.master_epoch, replicas.sync_state_set_epoch),
        (Some(2), 2, 3)
    );
    let in_sync: Vec<(i64, bool)> =
        replicas.in_sync_replicas.iter().map(|r| (r.broker_id, r.alive)).collect();
    let out_of_sync: Vec<(i64, bool)> =
        replicas.not_in_sync_replicas.iter().map(|r| (r.broker_id, r.alive)).collect();
    assert_eq!((in_sync, out_of_sync), (vec![(2, true)], vec![(1, false)]));
    let clean = |ids: &str| CleanControllerBrokerDataRequestHeader {
        cluster_name: Some(CLUSTER.into()),
        broker_name: SET.into(),
        broker_controller_ids_to_clean: Some(ids.into()),
        is_clean_living_broker: Some(false),
        invoke_time: None,
    };
    let refused = client.clean_broker_data(&clean("2")).await.unwrap();
    assert_eq!(refused.code, response_code::CONTROLLER_INVALID_CLEAN_BROKER_METADATA, "{refused:?}");
    let cleaned = client.clean_broker_data(&clean("1")).await.unwrap();
    assert!(cleaned.is_success(), "{cleaned:?}");
    let registered = client.register_broker(CLUSTER, SET, 1, &broker_1.addr()).await.unwrap();
    assert_eq!(registered.code, response_code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED, "{registered:?}");

    // The raft leader dies: a new one keeps every decision and serves writes.
    // Every controller applies what the leader committed, some a heartbeat later.
    let before = applied_state(&group, first_leader, |state| {
        state.set(SET).is_some_and(|set| set.sync.master_broker_id == Some(2))
    })
    .await;
    group.stop(first_leader).await;
    let second_leader = group.wait_leader().await;
    assert_ne!(second_leader, first_leader);
    let info = client.get_replica_info(SET).await.unwrap();
    assert_eq!((info.header.master_broker_id, info.header.master_epoch), (Some(2), Some(2)));
    assert_eq!(group.controller(second_leader).unwrap().state(), before);
    let broker_3 = TestBroker::start().await;
    assert_eq!(take_id(&client, &broker_3).await, 3);

    // The old leader restarts from its data directory and catches up with the decision it
    // missed.
    group.restart(first_leader).await.unwrap();
    let expected = applied_state(&group, second_leader, |state| {
        state.set(SET).is_some_and(|set| set.replicas.brokers.contains_key(&3))
    })
    .await;
    eventually("the restarted controller caught up", Duration::from_secs(15), || async {
        (group.controller(first_leader)?.state() == expected).then_some(())
    })
    .await;

    broker_2.beating.store(false, Ordering::Release);
    beats_2.await.unwrap();

    // Every controller stops; one restarted alone holds the whole state.
    restart_alone(&mut group, first_leader, &expected).await;

    client.shutdown().await;
    group.shutdown().await;
    for broker in [broker_1, broker_2, broker_3] {
        broker.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_with_not_leader_and_names_the_leader() {
    let group = ControllerGroup::start(3, |_| {}).await.unwrap();
    let leader = group.wait_leader().await;
    let follower = (leader + 1) % 3;
    let addrs = group.addrs();
    let raw = RemotingClient::new(ClientConfig::default(), Router::new());
    let request = RemotingCommand::request(request_code::CONTROLLER_GET_NEXT_BROKER_ID)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", SET);
    let answer = raw.invoke(&addrs[follower], request, Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer.code, response_code::CONTROLLER_NOT_LEADER, "{answer:?}");
    assert!(answer
        .remark
        .as_deref()
        .unwrap_or_default()
        .starts_with("The controller is not in leader state"));
    assert_eq!(answer.ext(LEADER_ADDRESS_FIELD), Some(addrs[leader].as_str()));
    // Every controller answers GET_METADATA_INFO and agrees on the leader.
    let client = client(&group);
    for addr in &addrs {
        let metadata = client.metadata(addr).await.unwrap();
        assert_eq!(metadata.header.controller_leader_address.as_deref(), Some(addrs[leader].as_str()));
        assert_eq!(metadata.header.is_leader, *addr == addrs[leader]);
    }
    // A heartbeat without a broker id is refused by any controller.
    let request = RemotingCommand::request(request_code::BROKER_HEARTBEAT)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", SET)
        .with_ext("brokerAddr", "127.0.0.1:1");
    let answer = raw.invoke(&addrs[follower], request, Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer.code, response_code::CONTROLLER_INVALID_REQUEST);
    raw.shutdown().await;
    client.shutdown().await;
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_controller_catches_up_from_a_snapshot_and_keeps_it() {
    // A snapshot every 2 entries and only 2 entries kept after it: a controller that misses
    // ten decisions can only catch up by installing the leader's snapshot.
    let mut group = ControllerGroup::start(3, |config| config.snapshot_every_entries = 2).await.unwrap();
    let leader = group.wait_leader().await;
    let lagging = (leader + 1) % 3;
    group.stop(lagging).await;
    let client = client(&group);
    let mut brokers = Vec::new();
    for expected_id in 1..=10 {
        let broker = TestBroker::start().await;
        assert_eq!(take_id(&client, &broker).await, expected_id);
        brokers.push(broker);
    }
    let expected = applied_state(&group, leader, |state| {
        state.set(SET).is_some_and(|set| set.replicas.brokers.len() == 10)
    })
    .await;

    let purged = eventually("the leader purged its log", Duration::from_secs(5), || async {
        group.controller(leader)?.purged_index().filter(|index| *index >= 5)
    })
    .await;
    eprintln!("leader log purged up to index {purged}");

    group.restart(lagging).await.unwrap();
    eventually("the lagging controller installed the snapshot", Duration::from_secs(15), || async {
        (group.controller(lagging)?.state() == expected).then_some(())
    })
    .await;
    let snapshot = group.data_dir(lagging).unwrap().join("raft-snapshot.json");
    assert!(snapshot.exists(), "no snapshot file at {}", snapshot.display());

    restart_alone(&mut group, lagging, &expected).await;
    client.shutdown().await;
    group.shutdown().await;
    for broker in brokers {
        broker.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_does_not_depose_a_master_it_has_not_heard_yet() {
    let warmup = Duration::from_millis(2_000);
    let mut group = ControllerGroup::start(1, |config| config.liveness_warmup_ms = warmup.as_millis() as u64)
        .await
        .unwrap();
    group.wait_leader().await;
    let client = client(&group);
    let broker_1 = TestBroker::start().await;
    let broker_2 = TestBroker::start().await;
    assert_eq!(take_id(&client, &broker_1).await, 1);
    assert_eq!(take_id(&client, &broker_2).await, 2);
    let beats_1 = broker_1.heartbeat(Arc::clone(&client), 1);
    let beats_2 = broker_2.heartbeat(Arc::clone(&client), 2);
    assert!(client.elect_master(CLUSTER, SET, 1, false).await.unwrap().is_success());
    let altered = client.alter_sync_state_set(SET, 1, 1, BTreeSet::from([1, 2]), 1).await.unwrap();
    assert!(altered.is_success(), "{altered:?}");

    // The controller restarts; broker 2 is heard at once, the master only 500 ms later. Without
    // the warm-up the controller would elect broker 2 within a scan.
    broker_1.beating.store(false, Ordering::Release);
    beats_1.await.unwrap();
    group.stop(0).await;
    group.restart(0).await.unwrap();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker_1.beating.store(true, Ordering::Release);
    let beats_1 = broker_1.heartbeat(Arc::clone(&client), 1);
    tokio::time::sleep(warmup.saturating_sub(restarted.elapsed()) + Duration::from_millis(500)).await;
    let info = client.get_replica_info(SET).await.unwrap();
    assert_eq!((info.header.master_broker_id, info.header.master_epoch), (Some(1), Some(1)), "{info:?}");

    for broker in [&broker_1, &broker_2] {
        broker.beating.store(false, Ordering::Release);
    }
    beats_1.await.unwrap();
    beats_2.await.unwrap();
    client.shutdown().await;
    group.shutdown().await;
    broker_1.server.shutdown().await;
    broker_2.server.shutdown().await;
}
