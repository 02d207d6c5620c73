//! Tag subscriptions: only messages whose tag is subscribed reach the listener.

mod push_support;

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_remoting::body::enums::{ConsumeType, MessageModel};
use push_support::{wait_for_every_queue, wait_until, Cluster, Log};

const TOPIC: &str = "PushTagTopic";
const GROUP: &str = "cg-push-tags";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_subscribed_tags_are_delivered() {
    let cluster = Cluster::with_topic(TOPIC, 2).await;
    let log = Log::default();
    let consumer = cluster
        .consumer(GROUP)
        .subscribe(TOPIC, "TagA || TagB")
        .start(log.listener("only"))
        .await
        .expect("consumer starts");
    wait_for_every_queue("the consumer to hold the queues", Duration::from_secs(20), &consumer, TOPIC, 2)
        .await;
    // The heartbeat announced the subscription (tags and hash codes) and the retry topic.
    let connection = cluster.consumer_connection(GROUP).await;
    assert_eq!(connection.consume_type, Some(ConsumeType::ConsumePassively));
    assert_eq!(connection.message_model, Some(MessageModel::Clustering));
    assert_eq!(connection.connection_set.len(), 1);
    assert_eq!(connection.connection_set[0].client_id, consumer.client_id());
    let subscription = &connection.subscription_table[TOPIC];
    assert_eq!(subscription.tags_set, BTreeSet::from(["TagA".to_owned(), "TagB".to_owned()]));
    assert!(subscription.code_set.contains(&apogee_common::java_string_hash("TagA")));
    assert_eq!(connection.subscription_table[&format!("%RETRY%{GROUP}")].sub_string, "*");
    for i in 0..6 {
        let tag = ["TagA", "TagB", "TagC"][i % 3];
        cluster.send(TOPIC, (i % 2) as i32, Some(tag), &format!("{tag}-{i}")).await;
    }
    cluster.send(TOPIC, 0, None, "untagged").await;
    cluster.send(TOPIC, 1, Some("TagA"), "last").await;
    let wanted: BTreeSet<String> =
        ["TagA-0", "TagB-1", "TagA-3", "TagB-4", "last"].into_iter().map(str::to_owned).collect();
    wait_until("the subscribed tags", Duration::from_secs(20), || log.bodies(None).is_superset(&wanted))
        .await;
    // "last" was sent after the others on its queue: anything unwanted would have come first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.bodies(None), wanted);
    assert!(log.all().iter().all(|d| matches!(d.message.message.tags(), Some("TagA" | "TagB"))));
    consumer.shutdown().await;
    cluster.shutdown().await;
}
