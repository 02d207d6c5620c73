//! The admin client over the public API against a NameServer and a broker.

mod support;

use apogee_client::{Admin, ClientError};
use apogee_common::TopicConfig;
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::response_code;
use support::{eventually, refused_with, TestCluster, BROKER_NAME, CLUSTER};

async fn admin(cluster: &TestCluster) -> Admin {
    Admin::builder().namesrv(cluster.namesrv_addr.clone()).start().await.expect("admin starts")
}

#[tokio::test]
async fn topics_clusters_and_routes() {
    let cluster = TestCluster::start().await;
    let admin = admin(&cluster).await;
    let info = admin.cluster_info().await.unwrap();
    assert!(info.cluster_addr_table[CLUSTER].contains(BROKER_NAME));

    let config = TopicConfig::with_queues("AdminTopic", 3, 3, 6);
    assert_eq!(
        admin.create_topic(CLUSTER, &config).await.unwrap(),
        std::slice::from_ref(&cluster.broker_addr)
    );
    let route = eventually("the new route", || async { admin.topic_route("AdminTopic").await.ok() }).await;
    assert_eq!(route.queue_datas[0].read_queue_nums, 3);
    assert!(admin.topic_list().await.unwrap().topic_list.contains("AdminTopic"));
    assert_eq!(admin.topic_stats("AdminTopic").await.unwrap().offset_table.len(), 3);

    admin.delete_topic(CLUSTER, "AdminTopic").await.unwrap();
    assert!(matches!(admin.topic_route("AdminTopic").await, Err(ClientError::NoRoute { .. })));
    cluster.shutdown().await;
}

#[tokio::test]
async fn progress_reset_and_groups() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("ProgressTopic", 1).await;
    for index in 0..5 {
        cluster.send("ProgressTopic", 0, None, Some("k"), &format!("m{index}")).await;
    }
    let admin = admin(&cluster).await;
    admin
        .create_subscription_group(&cluster.broker_addr, &SubscriptionGroupConfig::new("ProgressGroup"))
        .await
        .unwrap();
    let queue = cluster.queue("ProgressTopic", 0);
    cluster.commit("ProgressGroup", &queue, 2).await;
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
    let cluster = TestCluster::start().await;
    cluster.create_topic("MessageTopic", 1).await;
    let sent = cluster.send("MessageTopic", 0, Some("TagK"), Some("order-1"), "first body").await;
    let admin = admin(&cluster).await;
    let message = admin.view_message(&sent.msg_id).await.unwrap();
    assert_eq!(&message.message.body[..], b"first body");
    assert!(matches!(admin.view_message("xyz").await, Err(ClientError::IllegalArgument(_))));
    let end = apogee_common::time::now_ms() + 60_000;
    let found = eventually("the key indexed", || async {
        let result = admin.query_messages_by_key("MessageTopic", "order-1", 32, 0, end).await.ok()?;
        (!result.messages.is_empty()).then_some(result)
    })
    .await;
    assert_eq!(found.messages[0].offset_msg_id(), sent.msg_id);

    assert_eq!(admin.get_kv_config("NS", "k").await.unwrap(), None);
    admin.put_kv_config("NS", "k", "v").await.unwrap();
    assert_eq!(admin.get_kv_config("NS", "k").await.unwrap().as_deref(), Some("v"));
    cluster.shutdown().await;
}
