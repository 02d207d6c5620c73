//! The admin client over the public API against a NameServer and a broker.

mod support;

use apogee_client::admin::QueryResult;
use apogee_client::{Admin, ClientError, MessageQueue};
use apogee_common::{perm, TopicConfig};
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::response_code;
use support::{eventually, refused_with, TestCluster, BROKER_NAME, CLUSTER};

async fn committed(admin: &Admin, group: &str, queue: &MessageQueue) -> i64 {
    let stats = admin.consume_stats(group, Some(&queue.topic)).await.expect("consume stats");
    stats.offset_table.get(queue).map(|offsets| offsets.consumer_offset).expect("queue listed")
}

/// Creates the subscription group `group` on the broker and commits `offset` for it on `queue`.
async fn group_committed_at(
    cluster: &TestCluster,
    admin: &Admin,
    group: &str,
    queue: &MessageQueue,
    offset: i64,
) {
    admin
        .create_subscription_group(&cluster.broker_addr, &SubscriptionGroupConfig::new(group))
        .await
        .unwrap();
    cluster.commit(group, queue, offset).await;
}

/// What a query for `key` in `topic` (messages stored until `end_ms`) finds once the broker
/// indexed it.
async fn indexed(admin: &Admin, topic: &str, key: &str, end_ms: i64) -> QueryResult {
    eventually("the key indexed", || async {
        let result = admin.query_messages_by_key(topic, key, 32, 0, end_ms).await.ok()?;
        (!result.messages.is_empty()).then_some(result)
    })
    .await
}

#[tokio::test]
async fn topics_clusters_and_routes() {
    let cluster = TestCluster::start().await;
    let admin = cluster.admin().await;
    let info = admin.cluster_info().await.unwrap();
    assert!(info.cluster_addr_table[CLUSTER].contains(BROKER_NAME));
    assert_eq!(info.broker_addr_table[BROKER_NAME].broker_addrs[&0], cluster.broker_addr);

    let config = TopicConfig::with_queues("AdminTopic", 3, 3, perm::READ_WRITE);
    assert_eq!(
        admin.create_topic(CLUSTER, &config).await.unwrap(),
        std::slice::from_ref(&cluster.broker_addr)
    );
    let route = eventually("the new route", || async { admin.topic_route("AdminTopic").await.ok() }).await;
    assert_eq!(route.queue_datas[0].read_queue_nums, 3);
    assert!(admin.topic_list().await.unwrap().topic_list.contains("AdminTopic"));
    assert_eq!(admin.topic_stats("AdminTopic").await.unwrap().offset_table.len(), 3);

    let wider = TopicConfig::with_queues("AdminTopic", 5, 5, perm::READ_WRITE);
    assert_eq!(
        admin.create_topic(&cluster.broker_addr, &wider).await.unwrap(),
        std::slice::from_ref(&cluster.broker_addr)
    );
    eventually("the wider route", || async {
        let route = admin.topic_route("AdminTopic").await.ok()?;
        (route.queue_datas[0].read_queue_nums == 5).then_some(())
    })
    .await;
    assert!(matches!(
        admin.create_topic("NoSuchCluster", &config).await,
        Err(ClientError::IllegalArgument(_))
    ));
    let bad = TopicConfig::with_queues("bad topic", 1, 1, perm::READ_WRITE);
    assert!(matches!(admin.create_topic(CLUSTER, &bad).await, Err(ClientError::IllegalArgument(_))));

    admin.delete_topic(CLUSTER, "AdminTopic").await.unwrap();
    assert!(matches!(admin.topic_route("AdminTopic").await, Err(ClientError::NoRoute { .. })));
    assert!(matches!(admin.topic_stats("AdminTopic").await, Err(ClientError::NoRoute { .. })));
    cluster.shutdown().await;
}

#[tokio::test]
async fn statistics_and_progress() {
    let cluster = TestCluster::with_topic("AdminStats", 2).await;
    cluster.send_numbered("AdminStats", 0, "a", 3).await;
    cluster.send_numbered("AdminStats", 1, "b", 2).await;
    let admin = cluster.admin().await;
    let stats = admin.topic_stats("AdminStats").await.unwrap();
    let queue = |id| cluster.queue("AdminStats", id);
    assert_eq!(stats.offset_table[&queue(0)].max_offset, 3);
    assert_eq!(stats.offset_table[&queue(1)].max_offset, 2);
    assert!(stats.offset_table[&queue(0)].last_update_timestamp > 0);

    group_committed_at(&cluster, &admin, "GroupStats", &queue(0), 1).await;
    let progress = admin.consumer_progress("GroupStats", Some("AdminStats")).await.unwrap();
    let first = progress.queues.iter().find(|line| line.queue == queue(0)).expect("queue 0 listed");
    assert_eq!((first.broker_offset, first.consumer_offset, first.lag), (3, 1, 2));
    assert_eq!(progress.total_lag(), 4);
    assert!(matches!(
        admin.consume_stats("GroupStats", Some("NoSuchTopic")).await,
        Err(ClientError::NoRoute { .. })
    ));

    let runtime = admin.broker_runtime_info(&cluster.broker_addr).await.unwrap();
    assert!(runtime.table.contains_key("brokerVersionDesc"));
    admin.delete_subscription_group(&cluster.broker_addr, "GroupStats", true).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_offline_group_has_no_connections() {
    let cluster = TestCluster::start().await;
    let admin = cluster.admin().await;
    match admin.consumer_connections("NobodyHere").await {
        Err(ClientError::Broker { code, addr, .. }) => {
            assert_eq!(code, response_code::CONSUMER_NOT_ONLINE);
            assert_eq!(addr, cluster.broker_addr);
        }
        other => panic!("expected CONSUMER_NOT_ONLINE, got {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn messages_by_id_and_by_key() {
    let cluster = TestCluster::with_topic("AdminMessages", 1).await;
    let sent = cluster.send("AdminMessages", 0, Some("TagK"), Some("order-1 shared"), "first body").await;
    cluster.send("AdminMessages", 0, None, Some("order-2 shared"), "second body").await;
    let admin = cluster.admin().await;

    let message = admin.view_message(&sent.msg_id).await.unwrap();
    assert_eq!(&message.message.body[..], b"first body");
    assert_eq!(message.message.tags(), Some("TagK"));
    assert_eq!(message.offset_msg_id(), sent.msg_id);
    assert!(matches!(admin.view_message("not-an-id").await, Err(ClientError::IllegalArgument(_))));

    let end = apogee_common::time::now_ms() + 60_000;
    let found = indexed(&admin, "AdminMessages", "order-1", end).await;
    assert_eq!(found.messages.len(), 1);
    assert_eq!(&found.messages[0].message.body[..], b"first body");
    let shared = admin.query_messages_by_key("AdminMessages", "shared", 32, 0, end).await.unwrap();
    assert_eq!(shared.messages.len(), 2);
    let none = admin.query_messages_by_key("AdminMessages", "nothing", 32, 0, end).await.unwrap();
    assert!(none.messages.is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn offsets_are_reset_by_time() {
    let cluster = TestCluster::with_topic("AdminReset", 1).await;
    cluster.send_numbered("AdminReset", 0, "m", 5).await;
    let admin = cluster.admin().await;
    let queue = cluster.queue("AdminReset", 0);
    group_committed_at(&cluster, &admin, "GroupReset", &queue, 5).await;

    let moved = admin.reset_offset_by_time("GroupReset", "AdminReset", 0, false).await.unwrap();
    assert_eq!(moved.get(&queue), Some(&0));
    assert_eq!(committed(&admin, "GroupReset", &queue).await, 0);

    // The broker resets on its side (the 5.x default), forward too: `force` only matters to the
    // client-side way (push_offset_reset.rs covers it and the offline fallback).
    let forward = admin.reset_offset_by_time("GroupReset", "AdminReset", -1, false).await.unwrap();
    assert_eq!(forward.get(&queue), Some(&5));
    assert_eq!(committed(&admin, "GroupReset", &queue).await, 5);
    cluster.shutdown().await;
}

#[tokio::test]
async fn kv_config_round_trip() {
    let cluster = TestCluster::start().await;
    let admin = cluster.admin().await;
    assert_eq!(admin.get_kv_config("ORDER_TOPIC_CONFIG", "AdminKv").await.unwrap(), None);
    admin.put_kv_config("ORDER_TOPIC_CONFIG", "AdminKv", "broker-a:4").await.unwrap();
    assert_eq!(
        admin.get_kv_config("ORDER_TOPIC_CONFIG", "AdminKv").await.unwrap().as_deref(),
        Some("broker-a:4")
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn progress_reset_and_groups() {
    let cluster = TestCluster::with_topic("ProgressTopic", 1).await;
    for index in 0..5 {
        cluster.send("ProgressTopic", 0, None, Some("k"), &format!("m{index}")).await;
    }
    let admin = cluster.admin().await;
    let queue = cluster.queue("ProgressTopic", 0);
    group_committed_at(&cluster, &admin, "ProgressGroup", &queue, 2).await;
    let progress = admin.consumer_progress("ProgressGroup", Some("ProgressTopic")).await.unwrap();
    assert_eq!(progress.queues.len(), 1);
    assert_eq!((progress.queues[0].broker_offset, progress.queues[0].consumer_offset), (5, 2));
    assert_eq!(progress.total_lag(), 3);

    let moved = admin.reset_offset_by_time("ProgressGroup", "ProgressTopic", 0, false).await.unwrap();
    assert_eq!(moved.get(&queue), Some(&0));
    let progress = admin.consumer_progress("ProgressGroup", Some("ProgressTopic")).await.unwrap();
    assert_eq!(progress.total_lag(), 5);

    assert!(refused_with(
        &admin.consumer_connections("ProgressGroup").await,
        response_code::CONSUMER_NOT_ONLINE
    ));
    admin.delete_subscription_group(&cluster.broker_addr, "ProgressGroup", true).await.unwrap();
    let runtime = admin.broker_runtime_info(&cluster.broker_addr).await.unwrap();
    assert!(runtime.table.contains_key("brokerVersionDesc"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn messages_by_id_and_key_and_kv_config() {
    let cluster = TestCluster::with_topic("MessageTopic", 1).await;
    let sent = cluster.send("MessageTopic", 0, Some("TagK"), Some("order-1"), "first body").await;
    let admin = cluster.admin().await;
    let message = admin.view_message(&sent.msg_id).await.unwrap();
    assert_eq!(&message.message.body[..], b"first body");
    assert!(matches!(admin.view_message("xyz").await, Err(ClientError::IllegalArgument(_))));
    let end = apogee_common::time::now_ms() + 60_000;
    let found = indexed(&admin, "MessageTopic", "order-1", end).await;
    assert_eq!(found.messages[0].offset_msg_id(), sent.msg_id);

    assert_eq!(admin.get_kv_config("NS", "k").await.unwrap(), None);
    admin.put_kv_config("NS", "k", "v").await.unwrap();
    assert_eq!(admin.get_kv_config("NS", "k").await.unwrap().as_deref(), Some("v"));
    cluster.shutdown().await;
}
