//! The cluster kit itself: servers on the ports they were given, registered under those ports
//! with every NameServer, and gone with their data when the cluster is dropped.

use std::time::Duration;

use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_testkit::{eventually, Cluster};

/// Longest a test here waits for a registration to show.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

/// The cluster info body of NameServer `addr`, as text.
async fn cluster_info(cluster: &Cluster, addr: &str) -> String {
    let request = RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO);
    let response = cluster.client().invoke(addr, request, Duration::from_secs(5)).await.expect("answer");
    assert_eq!(response.code, response_code::SUCCESS);
    String::from_utf8_lossy(&response.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nameserver_knows_every_broker_group_at_its_bound_port() {
    let cluster = Cluster::builder().namesrvs(2).broker_groups(2).start().await;
    let namesrvs: Vec<&str> = cluster.namesrv_addr().split(';').collect();
    assert_eq!(namesrvs.len(), 2);
    let brokers = cluster.broker_addrs();
    assert_eq!(brokers.len(), 2);
    for (index, addr) in brokers.iter().enumerate() {
        let bound = cluster.broker(index).local_addr().expect("listening");
        assert_eq!(addr, &bound.to_string(), "the registered address is the bound one");
        assert_ne!(bound.port(), 0);
    }
    for namesrv in namesrvs {
        let info = cluster_info(&cluster, namesrv).await;
        for (index, addr) in brokers.iter().enumerate() {
            assert!(info.contains(cluster.broker_name(index)), "{namesrv} lacks broker {index}: {info}");
            assert!(info.contains(addr.as_str()), "{namesrv} lacks {addr}: {info}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_channel_gets_a_port_of_its_own_and_serves() {
    let cluster =
        Cluster::builder().namesrvs(0).configure(|_, config| config.fast_channel_enable = true).start().await;
    let broker = cluster.broker(0);
    let main = broker.local_addr().expect("main port");
    let fast = broker.fast_channel_addr().expect("fast channel on");
    assert_ne!(main.port(), fast.port());
    let request = RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO);
    let response = cluster.client().invoke(&fast.to_string(), request, Duration::from_secs(5)).await;
    assert_eq!(response.expect("the fast channel answers").code, response_code::SUCCESS);
    let without = Cluster::builder().namesrvs(0).start().await;
    assert_eq!(without.broker(0).fast_channel_addr(), None, "off unless asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_registers_its_new_port_and_dropping_removes_the_data() {
    let mut cluster = Cluster::builder().start().await;
    let namesrv = cluster.namesrv_addr().to_owned();
    let before = cluster.broker_addr(0);
    let config = cluster.stop_broker(0).await;
    assert!(config.store.store_path_root_dir.exists(), "the store is kept across a stop");
    cluster.restart_broker(0, |_| {}).await;
    let after = cluster.broker_addr(0);
    eventually("the new address registered", WAIT_LIMIT, || async {
        let info = cluster_info(&cluster, &namesrv).await;
        (info.contains(after.as_str()) && (before == after || !info.contains(before.as_str()))).then_some(())
    })
    .await;
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(!dir.exists(), "the data directory goes with the cluster");
}
