//! The lite pull consumer in assign mode over the public API: polling in order, commits,
//! seeking, pausing, and resuming from committed offsets.

mod support;

use std::time::Duration;

use apogee_client::{ClientError, LitePullConsumer};
use apogee_remoting::body::enums::ConsumeFromWhere;
use support::{body, poll_until, TestCluster};

async fn consumer(cluster: &TestCluster, group: &str, instance: &str) -> LitePullConsumer {
    LitePullConsumer::builder()
        .group(group)
        .namesrv(cluster.namesrv_addr.clone())
        .instance_name(instance)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(false)
        .start()
        .await
        .expect("consumer starts")
}

#[tokio::test]
async fn assigned_queues_are_polled_in_order_and_committed() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("AssignTopic", 2).await;
    for index in 0..15 {
        cluster.send("AssignTopic", 0, Some("TagA"), None, &format!("q0-{index}")).await;
    }
    for index in 0..5 {
        cluster.send("AssignTopic", 1, None, None, &format!("q1-{index}")).await;
    }
    let consumer = consumer(&cluster, "AssignGroup", "assign-1").await;
    let queues = consumer.fetch_message_queues("AssignTopic").await.unwrap();
    assert_eq!(queues, [cluster.queue("AssignTopic", 0), cluster.queue("AssignTopic", 1)]);
    consumer.assign(queues.clone()).unwrap();
    assert_eq!(consumer.assignment(), queues);

    let messages = poll_until(&consumer, 20).await;
    assert_eq!(messages.len(), 20);
    let first_queue: Vec<i64> =
        messages.iter().filter(|message| message.queue_id == 0).map(|message| message.queue_offset).collect();
    assert_eq!(first_queue, (0..15).collect::<Vec<_>>());
    assert!(messages.iter().any(|message| body(message) == "q1-4"));

    consumer.commit_sync().await.unwrap();
    assert_eq!(consumer.committed(&queues[0]).await.unwrap(), Some(15));
    assert_eq!(consumer.committed(&queues[1]).await.unwrap(), Some(5));
    consumer.shutdown().await;

    let again = consumer_of(&cluster, "AssignGroup", "assign-2").await;
    again.assign(queues.clone()).unwrap();
    cluster.send("AssignTopic", 1, None, None, "after restart").await;
    let rest = poll_until(&again, 1).await;
    assert_eq!(rest.iter().map(|message| message.queue_offset).collect::<Vec<_>>(), [5]);
    again.shutdown().await;
    cluster.shutdown().await;
}

async fn consumer_of(cluster: &TestCluster, group: &str, instance: &str) -> LitePullConsumer {
    consumer(cluster, group, instance).await
}

#[tokio::test]
async fn seeking_pausing_and_resuming() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("SeekTopic", 1).await;
    for index in 0..10 {
        cluster.send("SeekTopic", 0, None, None, &format!("m{index}")).await;
    }
    let consumer = consumer(&cluster, "SeekGroup", "seek").await;
    let queue = cluster.queue("SeekTopic", 0);
    assert!(matches!(consumer.seek(&queue, 0).await, Err(ClientError::IllegalArgument(_))));
    consumer.assign([queue.clone()]).unwrap();
    assert_eq!(poll_until(&consumer, 10).await.len(), 10);

    consumer.seek(&queue, 3).await.unwrap();
    let again = poll_until(&consumer, 7).await;
    assert_eq!(
        again.iter().map(|message| message.queue_offset).collect::<Vec<_>>(),
        (3..10).collect::<Vec<_>>()
    );
    assert!(matches!(consumer.seek(&queue, 11).await, Err(ClientError::IllegalArgument(_))));
    consumer.seek_to_begin(&queue).await.unwrap();
    assert_eq!(poll_until(&consumer, 10).await.first().map(|message| message.queue_offset), Some(0));

    consumer.pause([&queue]);
    consumer.seek_to_end(&queue).await.unwrap();
    cluster.send("SeekTopic", 0, None, None, "while paused").await;
    assert!(consumer.poll(Duration::from_millis(1500)).await.is_empty());
    consumer.resume([&queue]);
    let resumed = poll_until(&consumer, 1).await;
    assert_eq!(resumed.iter().map(body).collect::<Vec<_>>(), ["while paused"]);
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn auto_commit_and_shutdown_commit() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("AutoTopic", 1).await;
    for index in 0..4 {
        cluster.send("AutoTopic", 0, None, None, &format!("m{index}")).await;
    }
    let consumer = LitePullConsumer::builder()
        .group("AutoGroup")
        .namesrv(cluster.namesrv_addr.clone())
        .instance_name("auto")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let queue = cluster.queue("AutoTopic", 0);
    consumer.assign([queue.clone()]).unwrap();
    assert_eq!(poll_until(&consumer, 4).await.len(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(consumer.poll(Duration::ZERO).await.is_empty());
    assert_eq!(consumer.committed(&queue).await.unwrap(), Some(4));
    cluster.send("AutoTopic", 0, None, None, "last").await;
    assert_eq!(poll_until(&consumer, 1).await.len(), 1);
    consumer.shutdown().await;
    assert!(consumer.poll(Duration::from_millis(10)).await.is_empty());
    assert!(matches!(consumer.committed(&queue).await, Err(ClientError::ShutDown)));

    let checker = consumer_of(&cluster, "AutoGroup", "auto-check").await;
    checker.assign([queue.clone()]).unwrap();
    assert_eq!(checker.committed(&queue).await.unwrap(), Some(5));
    checker.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_consumer_without_a_group_does_not_start() {
    let result = LitePullConsumer::builder().namesrv("127.0.0.1:1").start().await;
    assert!(matches!(result, Err(ClientError::IllegalArgument(_))));
    let result = LitePullConsumer::builder().group("g").pull_batch_size(5000).start().await;
    assert!(matches!(result, Err(ClientError::IllegalArgument(_))));
}
