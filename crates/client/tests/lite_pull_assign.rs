//! The lite pull consumer in assign mode over the public API: polling in order, commits,
//! seeking, pausing, and resuming from committed offsets.

mod support;

use std::time::Duration;

use apogee_client::{ClientConfig, ClientError, LitePullConsumer, MessageExt, MessageQueue};
use apogee_common::message::record;
use apogee_remoting::body::consumer::ResetOffsetBody;
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    ConsumeMessageDirectlyResultRequestHeader, GetConsumerRunningInfoRequestHeader, ResetOffsetRequestHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use support::{body, eventually, poll_until, TestCluster};

async fn consumer(cluster: &TestCluster, group: &str, instance: &str) -> LitePullConsumer {
    cluster.lite_pull(group, instance).auto_commit(false).start().await.expect("consumer starts")
}

#[tokio::test]
async fn assigned_queues_are_polled_in_order_and_committed() {
    let cluster = TestCluster::with_topic("AssignTopic", 2).await;
    for index in 0..15 {
        cluster.send("AssignTopic", 0, Some("TagA"), None, &format!("q0-{index}")).await;
    }
    cluster.send_numbered("AssignTopic", 1, "q1-", 5).await;
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

/// Assigns `queue` alone to `consumer` and polls its first `count` messages.
async fn assign_and_poll(consumer: &LitePullConsumer, queue: &MessageQueue, count: usize) {
    consumer.assign([queue.clone()]).unwrap();
    assert_eq!(poll_until(consumer, count).await.len(), count);
}

/// [`consumer`], for tests whose own consumer shadows that name.
async fn consumer_of(cluster: &TestCluster, group: &str, instance: &str) -> LitePullConsumer {
    consumer(cluster, group, instance).await
}

#[tokio::test]
async fn seeking_pausing_and_resuming() {
    let cluster = TestCluster::with_topic("SeekTopic", 1).await;
    cluster.send_numbered("SeekTopic", 0, "m", 10).await;
    let consumer = consumer(&cluster, "SeekGroup", "seek").await;
    let queue = cluster.queue("SeekTopic", 0);
    assert!(matches!(consumer.seek(&queue, 0).await, Err(ClientError::IllegalArgument(_))));
    assign_and_poll(&consumer, &queue, 10).await;

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
    let cluster = TestCluster::with_topic("AutoTopic", 1).await;
    cluster.send_numbered("AutoTopic", 0, "m", 4).await;
    let consumer = cluster
        .lite_pull("AutoGroup", "auto")
        .auto_commit_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let queue = cluster.queue("AutoTopic", 0);
    assign_and_poll(&consumer, &queue, 4).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(consumer.poll(Duration::ZERO).await.is_empty());
    assert_eq!(consumer.committed(&queue).await.unwrap(), Some(4));
    let offsets = &cluster.broker().state().offsets;
    eventually("the auto-commit reached the broker", || async {
        (offsets.query("AutoGroup", "AutoTopic", 0) == Some(4)).then_some(())
    })
    .await;
    cluster.send("AutoTopic", 0, None, None, "last").await;
    assert_eq!(poll_until(&consumer, 1).await.len(), 1);
    consumer.shutdown().await;
    assert!(consumer.poll(Duration::from_millis(10)).await.is_empty());
    assert!(matches!(consumer.committed(&queue).await, Err(ClientError::ShutDown)));
    assert!(matches!(consumer.subscribe("AutoTopic", "*").await, Err(ClientError::ShutDown)));

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

#[tokio::test]
async fn a_new_consumer_resumes_from_the_committed_offset() {
    let cluster = TestCluster::with_topic("LiteResume", 1).await;
    cluster.send_numbered("LiteResume", 0, "m", 6).await;
    let queue = cluster.queue("LiteResume", 0);
    let first = cluster
        .lite_pull("GroupResume", "resume1")
        .auto_commit(false)
        .pull_batch_size(2)
        .start()
        .await
        .unwrap();
    first.assign([queue.clone()]).unwrap();
    let got = first.poll(Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|message| message.queue_offset).collect::<Vec<_>>(), [0, 1]);
    first.commit_sync().await.unwrap();
    let committed = first.committed(&queue).await.unwrap().unwrap();
    first.shutdown().await;

    let second = consumer(&cluster, "GroupResume", "resume2").await;
    second.assign([queue.clone()]).unwrap();
    let rest = poll_until(&second, 6 - got.len()).await;
    assert_eq!(rest.first().map(|message| message.queue_offset), Some(committed));
    assert_eq!(got.len() + rest.len(), 6);
    second.shutdown().await;
    cluster.shutdown().await;
}

/// Sends `request` from the broker to the member `client_id` of `group`, as the broker does
/// for the admin tools, and returns the client's answer.
async fn ask_client(
    cluster: &TestCluster,
    group: &str,
    client_id: &str,
    request: RemotingCommand,
) -> RemotingCommand {
    let channel = cluster
        .broker()
        .state()
        .clients
        .find_consumer_channel(group, client_id)
        .expect("the member's channel");
    let response =
        channel.connection.invoke(request, Duration::from_secs(10)).await.expect("the client answers");
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    response
}

#[tokio::test]
async fn broker_requests_reach_the_consumer() {
    let cluster = TestCluster::with_topic("LiteHandle", 1).await;
    cluster.send_numbered("LiteHandle", 0, "m", 5).await;
    let mut client_config = ClientConfig::new(cluster.namesrv_addr.clone());
    client_config.instance_name = "handle".to_owned();
    client_config.heartbeat_broker_interval = Duration::from_secs(1);
    let consumer = LitePullConsumer::builder()
        .group("GroupHandle")
        .client_config(client_config)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(false)
        .start()
        .await
        .unwrap();
    let queue = cluster.queue("LiteHandle", 0);
    assign_and_poll(&consumer, &queue, 5).await;

    // What the heartbeats told the broker: the group, pulling actively (an assigning consumer
    // announces no subscription).
    let clients = &cluster.broker().state().clients;
    let info = eventually("the group's heartbeat", || async { clients.consumer_group("GroupHandle") }).await;
    assert_eq!(info.group_name, "GroupHandle");
    assert_eq!(info.consume_type.map(|kind| kind.name()), Some("CONSUME_ACTIVELY"));
    let client_id = info.client_ids().pop().expect("one member");

    let header = GetConsumerRunningInfoRequestHeader {
        consumer_group: "GroupHandle".to_owned(),
        client_id: client_id.clone(),
        jstack_enable: None,
        bname: None,
    };
    consumer.commit_sync().await.unwrap();
    let request = RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO).with_header(&header);
    let running: serde_json::Value =
        fastjson::from_slice(&ask_client(&cluster, "GroupHandle", &client_id, request).await.body).unwrap();
    assert_eq!(running["properties"]["consumerGroup"], "GroupHandle");
    // The held queue with what the consumer knows of it: all 5 polled and committed.
    let held: serde_json::Map<String, serde_json::Value> = running["mqTable"].as_object().cloned().unwrap();
    let keys: Vec<&String> = held.keys().collect();
    assert_eq!(keys, [&serde_json::to_string(&queue).unwrap()], "{running}");
    let info = held.values().next().unwrap();
    assert_eq!(
        (&info["commitOffset"], &info["cachedMsgCount"], &info["droped"]),
        (&5.into(), &0.into(), &false.into())
    );
    assert!(
        info["lastPullTimestamp"].as_i64().unwrap() > 0 && info["lastConsumeTimestamp"].as_i64().unwrap() > 0
    );

    let header = ConsumeMessageDirectlyResultRequestHeader {
        consumer_group: "GroupHandle".to_owned(),
        client_id: Some(client_id.clone()),
        ..ConsumeMessageDirectlyResultRequestHeader::default()
    };
    let mut record = Vec::new();
    record::encode(&MessageExt::default(), &mut record).unwrap();
    let request = RemotingCommand::request(request_code::CONSUME_MESSAGE_DIRECTLY)
        .with_header(&header)
        .with_body(record);
    let direct: serde_json::Value =
        fastjson::from_slice(&ask_client(&cluster, "GroupHandle", &client_id, request).await.body).unwrap();
    assert_eq!(direct["consumeResult"], "CR_THROW_EXCEPTION");

    let header = ResetOffsetRequestHeader {
        group: "GroupHandle".to_owned(),
        topic: "LiteHandle".to_owned(),
        queue_id: None,
        offset: None,
        timestamp: 0,
        is_force: true,
        bname: None,
    };
    let body = ResetOffsetBody { offset_table: [(queue.clone(), 2)].into_iter().collect() };
    let request = RemotingCommand::request(request_code::RESET_CONSUMER_CLIENT_OFFSET)
        .with_header(&header)
        .with_body(fastjson::to_vec(&body, Dialect::Fastjson).unwrap());
    ask_client(&cluster, "GroupHandle", &client_id, request).await;
    let replayed = poll_until(&consumer, 3).await;
    assert_eq!(replayed.iter().map(|message| message.queue_offset).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(consumer.committed(&queue).await.unwrap(), Some(2));
    consumer.shutdown().await;
    cluster.shutdown().await;
}
