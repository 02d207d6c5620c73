//! Registration with a real NameServer: topic changes re-register at once, the order-topic
//! table comes back, a read-only broker narrows its permissions, shutdown unregisters.

mod send_common;

use apogee_common::{perm, TopicConfig};
use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson;
use apogee_remoting::header::namesrv::{GetRouteInfoRequestHeader, PutKVConfigRequestHeader};
use apogee_remoting::RemotingCommand;
use send_common::*;

/// The NameServer's route of `topic`, or the refusal code.
async fn route(cluster: &TestCluster, topic: &str) -> Result<TopicRouteData, i32> {
    let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC)
        .with_header(&GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: None });
    let response = cluster.call_namesrv(request).await;
    if response.code != response_code::SUCCESS {
        return Err(response.code);
    }
    Ok(fastjson::from_slice(&response.body).expect("route body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_changes_register_at_once_and_order_flags_come_back() {
    let cluster = TestCluster::start(|_| {}).await;
    let state = cluster.broker().state();

    // The system topics are registered at start.
    let self_test =
        eventually("the broker-name topic route", || async { route(&cluster, BROKER_NAME).await.ok() }).await;
    assert_eq!(self_test.queue_datas[0].perm, perm::READ_WRITE | perm::INHERIT);

    let put = RemotingCommand::request(request_code::PUT_KV_CONFIG).with_header(&PutKVConfigRequestHeader {
        namespace: "ORDER_TOPIC_CONFIG".to_owned(),
        key: "OrderedTopic".to_owned(),
        value: format!("{BROKER_NAME}:4"),
    });
    assert_eq!(cluster.call_namesrv(put).await.code, response_code::SUCCESS);

    state.topics.create_or_update(TopicConfig::with_queues("OrderedTopic", 4, 4, 6)).expect("created");
    let routed = eventually("the route of the admin-created topic", || async {
        route(&cluster, "OrderedTopic").await.ok()
    })
    .await;
    assert_eq!(routed.queue_datas[0].write_queue_nums, 4);
    eventually("the order flag from the name server", || async {
        state.topics.is_order_topic("OrderedTopic").then_some(())
    })
    .await;
    assert!(state.topics.get("OrderedTopic").expect("topic").order);

    // Deleting bumps the version too; shutdown unregisters, and the routes go with the broker.
    let before = state.topics.data_version();
    assert!(state.topics.delete("OrderedTopic").expect("deleted"));
    assert!(state.topics.data_version().counter > before.counter);

    let mut cluster = cluster;
    cluster.stop_broker().await;
    eventually("the routes to disappear", || async {
        (route(&cluster, BROKER_NAME).await.err() == Some(response_code::TOPIC_NOT_EXIST)).then_some(())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_broker_registers_narrowed_permissions_and_refuses_sends() {
    let cluster = TestCluster::start(|config| config.broker_permission = perm::READ).await;
    let state = cluster.broker().state();
    state.topics.create_or_update(TopicConfig::with_queues("ReadOnlyBrokerTopic", 2, 2, 6)).expect("created");
    let routed =
        eventually("the route of the topic", || async { route(&cluster, "ReadOnlyBrokerTopic").await.ok() })
            .await;
    assert_eq!(routed.queue_datas[0].perm, perm::READ);
    // The broker's own copy keeps its permissions.
    assert_eq!(state.topics.get("ReadOnlyBrokerTopic").expect("topic").perm, perm::READ_WRITE);

    let response = cluster.call(send_v2(send_header("ReadOnlyBrokerTopic", 0, &props(&[])), b"x")).await;
    assert_eq!(response.code, response_code::NO_PERMISSION, "{response:?}");
    assert!(response
        .remark
        .as_deref()
        .unwrap_or("")
        .contains("the broker[127.0.0.1] sending message is forbidden"));
    cluster.shutdown().await;
}
