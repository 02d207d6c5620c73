//! The lite pull consumer in subscribe mode over the public API: tag filtering, sharing the
//! queues among a group's members, and the exclusion of assign.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_client::{ClientError, LitePullConsumer, MessageQueue};
use support::{body, eventually, poll_until, TestCluster, WAIT_LIMIT};

async fn consumer(cluster: &TestCluster, group: &str, instance: &str) -> LitePullConsumer {
    cluster.lite_pull(group, instance).start().await.expect("consumer starts")
}

#[tokio::test]
async fn subscriptions_filter_by_tag() {
    let cluster = TestCluster::with_topic("TagTopic", 2).await;
    let consumer = consumer(&cluster, "TagGroup", "tags").await;
    consumer.subscribe("TagTopic", "TagA").await.unwrap();
    eventually("both queues allocated", || async { (consumer.assignment().len() == 2).then_some(()) }).await;
    assert!(matches!(
        consumer.assign([MessageQueue::new("TagTopic", "x", 0)]),
        Err(ClientError::IllegalArgument(_))
    ));
    for index in 0..12 {
        let tag = if index % 2 == 0 { "TagA" } else { "TagB" };
        cluster.send("TagTopic", index % 2, Some(tag), None, &format!("{tag}-{index}")).await;
    }
    let messages = poll_until(&consumer, 6).await;
    assert_eq!(messages.len(), 6);
    assert!(messages.iter().all(|message| message.message.tags() == Some("TagA")));

    let admin = cluster.admin().await;
    let connection = admin.consumer_connections("TagGroup").await.unwrap();
    assert_eq!(connection.connection_set.len(), 1);
    assert!(connection.subscription_table.contains_key("TagTopic"));
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn members_of_a_group_share_the_queues() {
    let cluster = TestCluster::with_topic("ShareTopic", 4).await;
    let consumers = [
        consumer(&cluster, "ShareGroup", "share-1").await,
        consumer(&cluster, "ShareGroup", "share-2").await,
    ];
    for consumer in &consumers {
        consumer.subscribe("ShareTopic", "*").await.unwrap();
    }
    eventually("a two-two split", || async {
        let (one, two) = (consumers[0].assignment(), consumers[1].assignment());
        let union: BTreeSet<MessageQueue> = one.iter().chain(two.iter()).cloned().collect();
        (one.len() == 2 && two.len() == 2 && union.len() == 4).then_some(())
    })
    .await;
    for index in 0..40 {
        cluster.send("ShareTopic", index % 4, None, None, &format!("m{index}")).await;
    }
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while received.len() < 40 && tokio::time::Instant::now() < deadline {
        for consumer in &consumers {
            received.extend(consumer.poll(Duration::from_millis(200)).await.iter().map(body));
        }
    }
    let distinct: BTreeSet<&String> = received.iter().collect();
    assert_eq!((received.len(), distinct.len()), (40, 40));

    consumers[1].shutdown().await;
    eventually("the survivor takes every queue", || async {
        (consumers[0].assignment().len() == 4).then_some(())
    })
    .await;
    consumers[0].shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_consumer_registers_and_unregisters_with_the_instance() {
    let cluster = TestCluster::with_topic("LiteRegister", 1).await;
    let consumer = consumer(&cluster, "GroupRegister", "register").await;
    let same_instance = LitePullConsumer::builder()
        .group("GroupRegister")
        .namesrv(cluster.namesrv_addr.clone())
        .instance_name("register")
        .start()
        .await;
    assert!(matches!(same_instance, Err(ClientError::IllegalArgument(_))));
    consumer.subscribe("LiteRegister", "TagA || TagB").await.unwrap();
    let admin = cluster.admin().await;
    let connection =
        eventually("the group online", || async { admin.consumer_connections("GroupRegister").await.ok() })
            .await;
    assert_eq!(connection.connection_set.len(), 1);
    assert!(connection.connection_set[0].client_id.ends_with("@register"));
    let subscription = &connection.subscription_table["LiteRegister"];
    assert_eq!(subscription.tags_set.len(), 2);
    consumer.shutdown().await;
    eventually("the group offline", || async {
        matches!(
            admin.consumer_connections("GroupRegister").await,
            Err(ClientError::Broker { code: 206, .. })
        )
        .then_some(())
    })
    .await;
    let namesrv = cluster.namesrv_addr.clone();
    assert!(LitePullConsumer::builder().namesrv(namesrv.clone()).group("").start().await.is_err());
    assert!(LitePullConsumer::builder()
        .namesrv(namesrv)
        .group("g")
        .pull_batch_size(0)
        .start()
        .await
        .is_err());
    cluster.shutdown().await;
}
