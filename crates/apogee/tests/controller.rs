//! `apogee controller` as a real process: a lone controller on a port the system chose takes a
//! broker's id and election, is killed with SIGKILL, and after a restart on the same data
//! directory still knows both (its raft log is fsynced before a decision is answered).

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_controller::client::{ControllerClient, ControllerClientConfig};
use apogee_remoting::response_code;
use apogee_testkit::ApogeeProcess;

const CLUSTER: &str = "DefaultCluster";
const SET: &str = "broker-a";
const BROKER_ADDR: &str = "127.0.0.1:10911";

fn client(process: &ApogeeProcess) -> ControllerClient {
    let config =
        ControllerClientConfig { leader_wait: Duration::from_secs(20), ..ControllerClientConfig::default() };
    ControllerClient::new(vec![process.controller_addr().to_owned()], config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_restarts_with_every_decision() {
    let mut process = ApogeeProcess::start(
        env!("CARGO_BIN_EXE_apogee"),
        &["controller", "--id", "1", "--peers", "1=127.0.0.1:0"],
    );
    let controller = client(&process);
    let next = controller.get_next_broker_id(CLUSTER, SET).await.unwrap();
    assert_eq!(next.header.next_broker_id, Some(1), "{next:?}\n{}", process.log());
    let applied = controller.apply_broker_id(CLUSTER, SET, 1, &format!("{BROKER_ADDR};1")).await.unwrap();
    assert!(applied.is_success(), "{applied:?}");
    let registered = controller.register_broker(CLUSTER, SET, 1, BROKER_ADDR).await.unwrap();
    assert!(registered.is_success(), "{registered:?}");
    let elected = controller.elect_master(CLUSTER, SET, 1, false).await.unwrap();
    assert!(elected.is_success(), "{elected:?}");
    assert_eq!((elected.header.master_broker_id, elected.header.master_epoch), (Some(1), Some(1)));
    controller.shutdown().await;

    process.kill_9();
    process.restart();
    let controller = client(&process);
    let info = controller.get_replica_info(SET).await.unwrap();
    assert!(info.is_success(), "{info:?}\n{}", process.log());
    assert_eq!((info.header.master_broker_id, info.header.master_epoch), (Some(1), Some(1)));
    assert_eq!(info.header.master_address.as_deref(), Some(BROKER_ADDR));
    assert_eq!(info.body.unwrap().sync_state_set, BTreeSet::from([1]));
    let next = controller.get_next_broker_id(CLUSTER, SET).await.unwrap();
    assert_eq!(next.header.next_broker_id, Some(2));
    let unknown = controller.get_replica_info("no-such-set").await.unwrap();
    assert_eq!(unknown.code, response_code::CONTROLLER_BROKER_METADATA_NOT_EXIST);
    controller.shutdown().await;
    process.stop();
}
