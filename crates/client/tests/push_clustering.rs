//! Clustering push consumers sharing a topic: every queue held by exactly one member, the
//! queues of a member that leaves taken over within one rebalance, no message lost.

mod push_support;

use std::collections::BTreeSet;
use std::time::Duration;

use apogee_client::PushConsumer;
use push_support::{all_queues, queues_of, wait_for_every_queue, wait_until, Cluster, Log};

const TOPIC: &str = "PushClusterTopic";
const GROUP: &str = "cg-push-clustering";
const QUEUES: i32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_share_the_queues_and_one_takes_over_when_the_other_leaves() {
    let cluster = Cluster::with_topic(TOPIC, QUEUES).await;
    let log = Log::default();
    let start = |log: &Log, name: &'static str| {
        cluster.consumer(GROUP).subscribe(TOPIC, "*").start(log.listener(name))
    };
    let first = start(&log, "first").await.expect("first consumer starts");
    hold_every_queue(&first, "the first member to hold every queue", Duration::from_secs(20)).await;
    let second = start(&log, "second").await.expect("second consumer starts");
    assert_ne!(first.client_id(), second.client_id());
    wait_until("the queues to be split between the members", Duration::from_secs(25), || {
        let (a, b) = (queues_of(&first, TOPIC), queues_of(&second, TOPIC));
        a.is_disjoint(&b) && a.len() == 4 && b.len() == 4
    })
    .await;
    let (a, b) = (queues_of(&first, TOPIC), queues_of(&second, TOPIC));
    assert_eq!(a.union(&b).cloned().collect::<BTreeSet<_>>(), all_queues(TOPIC, QUEUES));
    // The retry topic's single queue is held by exactly one member as well.
    let retry = format!("%RETRY%{GROUP}");
    wait_until("the retry queue to be held once", Duration::from_secs(25), || {
        queues_of(&first, &retry).len() + queues_of(&second, &retry).len() == 1
    })
    .await;

    let mut sent = BTreeSet::new();
    send_and_consume(&cluster, &log, &mut sent, "before", "every message to be consumed").await;
    assert!(!log.bodies(Some("first")).is_empty() && !log.bodies(Some("second")).is_empty());

    second.shutdown().await;
    let left_at = std::time::Instant::now();
    hold_every_queue(&first, "the remaining member to hold every queue", Duration::from_secs(25)).await;
    tracing::info!(after = ?left_at.elapsed(), "queues taken over");
    send_and_consume(&cluster, &log, &mut sent, "after", "every message to be consumed after the takeover")
        .await;
    first.shutdown().await;

    // A new member of the group resumes from the committed offsets: nothing old comes back.
    let log_again = Log::default();
    let third = start(&log_again, "third").await.expect("third consumer starts");
    hold_every_queue(&third, "the new member to hold every queue", Duration::from_secs(20)).await;
    cluster.send(TOPIC, 0, None, "late").await;
    wait_until("the late message", Duration::from_secs(20), || log_again.bodies(None).contains("late")).await;
    assert_eq!(log_again.bodies(None), BTreeSet::from(["late".to_owned()]), "committed messages came back");
    third.shutdown().await;
    cluster.shutdown().await;
}

/// Sends 40 messages `{prefix}-{i}` over the queues, adds them to `sent` and waits until the
/// group consumed everything in `sent`.
async fn send_and_consume(
    cluster: &Cluster,
    log: &Log,
    sent: &mut BTreeSet<String>,
    prefix: &str,
    what: &str,
) {
    for i in 0..40 {
        let body = format!("{prefix}-{i}");
        cluster.send(TOPIC, i % QUEUES, None, &body).await;
        sent.insert(body);
    }
    wait_until(what, Duration::from_secs(20), || log.bodies(None).is_superset(sent)).await;
}

/// Waits until `consumer` holds every queue of the topic, failing the test after `limit`.
async fn hold_every_queue(consumer: &PushConsumer, what: &str, limit: Duration) {
    wait_for_every_queue(what, limit, consumer, TOPIC, QUEUES).await;
}
