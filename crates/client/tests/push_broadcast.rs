//! Broadcasting push consumers: every member consumes every message, offsets in a local file.

mod push_support;

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_client::consumer::offset_store::OffsetStore;
use apogee_remoting::body::enums::MessageModel;
use push_support::{all_queues, queues_of, wait_until, Cluster, Log};

const TOPIC: &str = "PushBroadcastTopic";
const GROUP: &str = "cg-push-broadcast";
const QUEUES: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_member_gets_every_message() {
    let cluster = Cluster::with_topic(TOPIC, QUEUES).await;
    let offsets_dir = cluster.dir().join("offsets");
    let log = Log::default();
    let start = |name: &'static str| {
        cluster
            .consumer(GROUP)
            // Broadcasting keeps the instance name; two members in one process need two.
            .instance_name(name)
            .message_model(MessageModel::Broadcasting)
            .offset_store_dir(&offsets_dir)
            .subscribe(TOPIC, "*")
            .start(log.listener(name))
    };
    let first = start("first").await.expect("first consumer starts");
    let second = start("second").await.expect("second consumer starts");
    wait_until("both members to hold every queue", Duration::from_secs(20), || {
        queues_of(&first, TOPIC) == all_queues(TOPIC, QUEUES)
            && queues_of(&second, TOPIC) == all_queues(TOPIC, QUEUES)
    })
    .await;
    assert!(first.assigned_queues().iter().all(|mq| !mq.topic.starts_with("%RETRY%")), "no retry topic");

    let sent: BTreeSet<String> = (0..20).map(|i| format!("broadcast-{i}")).collect();
    for (i, body) in sent.iter().enumerate() {
        cluster.send(TOPIC, i as i32 % QUEUES, None, body).await;
    }
    wait_until("both members to consume everything", Duration::from_secs(20), || {
        log.bodies(Some("first")) == sent && log.bodies(Some("second")) == sent
    })
    .await;
    let OffsetStore::Local(store) = first.offset_store() else { panic!("broadcasting uses the local store") };
    let path = store.path().to_owned();
    wait_until("the offsets to reach the end of every queue", Duration::from_secs(10), || {
        store.offset_table(Some(TOPIC)).values().sum::<i64>() == 20
    })
    .await;
    first.shutdown().await;
    second.shutdown().await;
    assert!(path.starts_with(&offsets_dir));
    let text = std::fs::read_to_string(&path).expect("offsets file written at shutdown");
    assert!(text.contains(TOPIC), "{text}");
    cluster.shutdown().await;
}
