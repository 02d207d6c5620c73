//! Where a queue starts: CONSUME_FROM_FIRST_OFFSET for a group without offsets, and an
//! illegal stored offset repaired from the broker's answer (PULL_OFFSET_MOVED).
//!
//! (CONSUME_FROM_LAST_OFFSET and CONSUME_FROM_TIMESTAMP only apply when the broker has no
//! offset to give; on a young topic it answers 0 for a new group, spec §4.5, so they are not
//! observable here.)

mod push_support;

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_remoting::code::request_code;
use apogee_remoting::header::consumer::UpdateConsumerOffsetRequestHeader;
use apogee_remoting::RemotingCommand;
use push_support::{wait_for_every_queue, wait_until, Cluster, Log, BROKER_NAME};

const TOPIC: &str = "PushStartTopic";

fn bodies(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_group_from_the_first_offset_reads_existing_messages() {
    let cluster = Cluster::with_topic(TOPIC, 1).await;
    for body in ["old-0", "old-1", "old-2"] {
        cluster.send(TOPIC, 0, None, body).await;
    }
    let log = Log::default();
    let consumer = cluster
        .consumer("cg-push-first")
        .subscribe(TOPIC, "*")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .start(log.listener("first"))
        .await
        .expect("consumer starts");
    cluster.send(TOPIC, 0, None, "new-0").await;
    wait_until("the consumer to catch up", Duration::from_secs(20), || log.bodies(None).len() == 4).await;
    assert_eq!(log.bodies(None), bodies(&["old-0", "old-1", "old-2", "new-0"]));
    // Offsets are "next to consume": the whole queue is consumed.
    wait_until("the offset to reach the end", Duration::from_secs(10), || {
        consumer.offset_store().offset_table(Some(TOPIC)).values().any(|offset| *offset == 4)
    })
    .await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offset_beyond_the_queue_restarts_from_the_brokers_offset() {
    let cluster = Cluster::with_topic(TOPIC, 1).await;
    let group = "cg-push-moved";
    let log = Log::default();
    let start = || cluster.consumer(group).subscribe(TOPIC, "*").start(log.listener("c"));
    // A first run creates the group at the broker.
    let consumer = start().await.expect("consumer starts");
    wait_for_every_queue("the queue", Duration::from_secs(20), &consumer, TOPIC, 1).await;
    consumer.shutdown().await;
    for body in ["skipped-0", "skipped-1"] {
        cluster.send(TOPIC, 0, None, body).await;
    }
    // Far past the end of the queue.
    let header = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.to_owned(),
        topic: TOPIC.to_owned(),
        queue_id: 0,
        commit_offset: 1000,
        bname: Some(BROKER_NAME.to_owned()),
    };
    let request = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&header);
    assert_eq!(cluster.call(request).await.code, 0, "offset committed");

    let consumer = start().await.expect("consumer starts again");
    wait_for_every_queue("the queue again", Duration::from_secs(20), &consumer, TOPIC, 1).await;
    // The repaired queue is dropped and taken again from the broker's max offset.
    wait_until("the corrected offset", Duration::from_secs(20), || {
        consumer.offset_store().offset_table(Some(TOPIC)).values().any(|offset| *offset == 2)
    })
    .await;
    cluster.send(TOPIC, 0, None, "after-repair").await;
    wait_until("the message after the repair", Duration::from_secs(20), || {
        log.bodies(None).contains("after-repair")
    })
    .await;
    assert_eq!(log.bodies(None), bodies(&["after-repair"]));
    consumer.shutdown().await;
    cluster.shutdown().await;
}
