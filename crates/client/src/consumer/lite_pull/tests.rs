//! The lite pull consumer against a real NameServer and broker, over [`DirectLink`] in place of
//! the client instance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::MessageQueue;
use apogee_remoting::body::enums::ConsumeFromWhere;

use super::link::Link;
use super::standin::fetch_committed_offset;
use super::testkit::{eventually, DirectLink, TestCluster, WAIT_LIMIT};
use super::LitePullConsumer;
use crate::{ClientError, MessageExt};

/// A consumer of `group` over `link`, reading queues from their start, manual commits.
fn consumer(link: &Arc<DirectLink>, group: &str) -> LitePullConsumer {
    LitePullConsumer::builder()
        .group(group)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(false)
        .start_on(link.clone())
        .expect("consumer starts")
}

/// Polls until `count` messages arrived (or the wait limit passed).
async fn poll_until(consumer: &LitePullConsumer, count: usize) -> Vec<MessageExt> {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    let mut got = Vec::new();
    while got.len() < count && tokio::time::Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(500)).await);
    }
    got
}

fn offsets_by_queue(messages: &[MessageExt]) -> BTreeMap<i32, Vec<i64>> {
    let mut by_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for message in messages {
        by_queue.entry(message.queue_id).or_default().push(message.queue_offset);
    }
    by_queue
}

fn body(message: &MessageExt) -> String {
    String::from_utf8_lossy(&message.message.body).into_owned()
}

#[tokio::test]
async fn assigned_queues_are_polled_in_order_and_committed() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteAssign", 2).await;
    for index in 0..15 {
        cluster.send("LiteAssign", 0, Some("TagA"), None, &format!("q0-{index}")).await;
    }
    for index in 0..5 {
        cluster.send("LiteAssign", 1, None, None, &format!("q1-{index}")).await;
    }
    let link = cluster.link("127.0.0.1@assign");
    let consumer = consumer(&link, "GroupAssign");
    let queues = consumer.fetch_message_queues("LiteAssign").await.unwrap();
    assert_eq!(queues.len(), 2);
    consumer.assign(queues.clone()).unwrap();
    assert_eq!(consumer.assignment(), queues);

    let messages = poll_until(&consumer, 20).await;
    assert_eq!(messages.len(), 20);
    let by_queue = offsets_by_queue(&messages);
    assert_eq!(by_queue[&0], (0..15).collect::<Vec<_>>());
    assert_eq!(by_queue[&1], (0..5).collect::<Vec<_>>());
    assert!(messages.iter().all(|message| message.message.topic == "LiteAssign"));
    assert!(messages.iter().all(|message| message.message.property("MAX_OFFSET").is_some()));
    assert!(messages.iter().any(|message| body(message) == "q0-14"));

    // Before any commit the broker answers its young-topic rule (0) or nothing.
    assert_ne!(consumer.committed(&queues[0]).await.unwrap(), Some(15));
    consumer.commit_sync().await.unwrap();
    assert_eq!(consumer.committed(&queues[0]).await.unwrap(), Some(15));
    assert_eq!(fetch_committed_offset(&*link, "GroupAssign", &queues[0]).await.unwrap(), Some(15));
    assert_eq!(fetch_committed_offset(&*link, "GroupAssign", &queues[1]).await.unwrap(), Some(5));

    consumer.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_new_consumer_resumes_from_the_committed_offset() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteResume", 1).await;
    for index in 0..6 {
        cluster.send("LiteResume", 0, None, None, &format!("m{index}")).await;
    }
    let queue = MessageQueue::new("LiteResume", super::testkit::BROKER_NAME, 0);
    let link = cluster.link("127.0.0.1@resume1");
    let first = LitePullConsumer::builder()
        .group("GroupResume")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(false)
        .pull_batch_size(2)
        .start_on(link.clone())
        .unwrap();
    first.assign([queue.clone()]).unwrap();
    let got = first.poll(Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|message| message.queue_offset).collect::<Vec<_>>(), [0, 1]);
    first.commit_sync().await.unwrap();
    let committed = first.committed(&queue).await.unwrap().unwrap();
    first.shutdown().await;

    let second = consumer(&link, "GroupResume");
    second.assign([queue.clone()]).unwrap();
    let rest = poll_until(&second, 6 - got.len()).await;
    assert_eq!(rest.first().map(|message| message.queue_offset), Some(committed));
    assert_eq!(got.len() + rest.len(), 6);
    second.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn subscriptions_filter_by_tag() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteTags", 2).await;
    let link = cluster.link("127.0.0.1@tags");
    let consumer = consumer(&link, "GroupTags");
    consumer.subscribe("LiteTags", "TagA").await.unwrap();
    eventually("both queues allocated", || async { (consumer.assignment().len() == 2).then_some(()) }).await;
    assert!(matches!(
        consumer.assign([MessageQueue::new("LiteTags", "x", 0)]),
        Err(ClientError::IllegalArgument(_))
    ));

    for index in 0..12 {
        let tag = if index % 2 == 0 { "TagA" } else { "TagB" };
        cluster.send("LiteTags", index % 2, Some(tag), None, &format!("{tag}-{index}")).await;
    }
    let messages = poll_until(&consumer, 6).await;
    assert_eq!(messages.len(), 6);
    assert!(messages.iter().all(|message| message.message.tags() == Some("TagA")));
    assert!(consumer.poll(Duration::from_millis(300)).await.is_empty());
    consumer.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn seeking_pausing_and_resuming() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteSeek", 1).await;
    for index in 0..10 {
        cluster.send("LiteSeek", 0, None, None, &format!("m{index}")).await;
    }
    let link = cluster.link("127.0.0.1@seek");
    let consumer = consumer(&link, "GroupSeek");
    let queue = MessageQueue::new("LiteSeek", super::testkit::BROKER_NAME, 0);
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
    cluster.send("LiteSeek", 0, None, None, "while paused").await;
    assert!(consumer.poll(Duration::from_millis(1500)).await.is_empty());
    consumer.resume([&queue]);
    let resumed = poll_until(&consumer, 1).await;
    assert_eq!(resumed.iter().map(body).collect::<Vec<_>>(), ["while paused"]);
    assert_eq!(resumed[0].queue_offset, 10);

    consumer.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn auto_commit_happens_at_poll_time_and_at_shutdown() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteAuto", 1).await;
    for index in 0..4 {
        cluster.send("LiteAuto", 0, None, None, &format!("m{index}")).await;
    }
    let link = cluster.link("127.0.0.1@auto");
    let consumer = LitePullConsumer::builder()
        .group("GroupAuto")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit_interval(Duration::from_millis(10))
        .start_on(link.clone())
        .unwrap();
    let queue = MessageQueue::new("LiteAuto", super::testkit::BROKER_NAME, 0);
    consumer.assign([queue.clone()]).unwrap();
    assert_eq!(poll_until(&consumer, 4).await.len(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(consumer.poll(Duration::ZERO).await.is_empty());
    eventually("the auto-commit reached the broker", || async {
        (fetch_committed_offset(&*link, "GroupAuto", &queue).await.ok()? == Some(4)).then_some(())
    })
    .await;

    cluster.send("LiteAuto", 0, None, None, "last").await;
    assert_eq!(poll_until(&consumer, 1).await.len(), 1);
    consumer.shutdown().await;
    assert_eq!(fetch_committed_offset(&*link, "GroupAuto", &queue).await.unwrap(), Some(5));
    assert!(consumer.poll(Duration::from_millis(10)).await.is_empty());
    assert!(matches!(consumer.subscribe("LiteAuto", "*").await, Err(ClientError::ShutDown)));
    consumer.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn two_members_of_a_group_share_the_queues() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteShare", 4).await;
    let links = [cluster.link("127.0.0.1@one"), cluster.link("127.0.0.1@two")];
    let consumers: Vec<LitePullConsumer> = links.iter().map(|link| consumer(link, "GroupShare")).collect();
    for consumer in &consumers {
        consumer.subscribe("LiteShare", "*").await.unwrap();
    }
    eventually("a two-two split", || async {
        let (one, two) = (consumers[0].assignment(), consumers[1].assignment());
        let union: BTreeSet<MessageQueue> = one.iter().chain(two.iter()).cloned().collect();
        (one.len() == 2 && two.len() == 2 && union.len() == 4).then_some(())
    })
    .await;

    for index in 0..40 {
        cluster.send("LiteShare", index % 4, None, None, &format!("m{index}")).await;
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
    for link in &links {
        link.shutdown().await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_consumer_registers_and_unregisters_with_the_instance() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteRegister", 1).await;
    let link = cluster.link("127.0.0.1@register");
    let consumer = consumer(&link, "GroupRegister");
    assert!(matches!(
        LitePullConsumer::builder().group("GroupRegister").start_on(link.clone()),
        Err(ClientError::IllegalArgument(_))
    ));
    consumer.subscribe("LiteRegister", "TagA || TagB").await.unwrap();
    let admin = crate::Admin::on(link.clone());
    let connection =
        eventually("the group online", || async { admin.consumer_connections("GroupRegister").await.ok() })
            .await;
    assert_eq!(connection.connection_set.len(), 1);
    assert_eq!(connection.connection_set[0].client_id, "127.0.0.1@register");
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
    assert!(LitePullConsumer::builder().group("").start_on(link.clone()).is_err());
    assert!(LitePullConsumer::builder().group("g").pull_batch_size(0).start_on(link.clone()).is_err());
    link.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn broker_requests_reach_the_consumer_handle() {
    let cluster = TestCluster::start().await;
    cluster.create_topic("LiteHandle", 1).await;
    for index in 0..5 {
        cluster.send("LiteHandle", 0, None, None, &format!("m{index}")).await;
    }
    let link = cluster.link("127.0.0.1@handle");
    let consumer = consumer(&link, "GroupHandle");
    let queue = MessageQueue::new("LiteHandle", super::testkit::BROKER_NAME, 0);
    consumer.assign([queue.clone()]).unwrap();
    assert_eq!(poll_until(&consumer, 5).await.len(), 5);

    let handle = consumer.handle_for_tests();
    assert_eq!(handle.group(), "GroupHandle");
    assert_eq!(handle.subscribed_topics(), ["LiteHandle"]);
    let data = handle.consumer_data();
    assert_eq!(data.group_name, "GroupHandle");
    assert_eq!(data.consume_type.map(|kind| kind.name()), Some("CONSUME_ACTIVELY"));
    assert_eq!(handle.running_info()["properties"]["consumerGroup"], "GroupHandle");
    assert_eq!(handle.consume_directly(MessageExt::default())["consumeResult"], "CR_THROW_EXCEPTION");

    handle.reset_offsets("LiteHandle", [(queue.clone(), 2)].into_iter().collect());
    let replayed = poll_until(&consumer, 3).await;
    assert_eq!(replayed.iter().map(|message| message.queue_offset).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(consumer.committed(&queue).await.unwrap(), Some(2));
    handle.rebalance_now();
    consumer.shutdown().await;
    link.shutdown().await;
    cluster.shutdown().await;
}

impl LitePullConsumer {
    /// The handle the instance would hold, for tests that play the instance's part.
    fn handle_for_tests(&self) -> Arc<dyn crate::instance::ConsumerHandle> {
        Arc::new(super::Registration {
            group: self.shared.group.clone(),
            shared: Arc::downgrade(&self.shared),
        })
    }
}

#[test]
fn readable_queues_skip_unreadable_data() {
    use apogee_remoting::body::route::{QueueData, TopicRouteData};
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
    let queues = super::readable_queues("T", &route);
    assert_eq!(
        queues,
        [MessageQueue::new("T", "b", 0), MessageQueue::new("T", "b", 1), MessageQueue::new("T", "c", 0)]
    );
}

#[test]
fn a_consumer_needs_a_runtime_and_a_group() {
    let link = DirectLink::new("127.0.0.1:1", "x@1");
    let outside = LitePullConsumer::builder().group("g").start_on(link.clone());
    assert!(matches!(outside, Err(ClientError::IllegalArgument(_))));
    let _unused: &dyn Link = &*link;
}
