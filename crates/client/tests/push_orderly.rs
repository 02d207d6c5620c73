//! Orderly push consumers: per-queue order holds while a second member joins and takes over
//! half of the queues (broker locks hand each queue from one member to the other).

mod push_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apogee_client::{ConsumeResult, MessageExt, PushConsumer};
use push_support::{all_queues, init_tracing, queues_of, wait_until, Cluster};

const TOPIC: &str = "PushOrderlyTopic";
const GROUP: &str = "cg-push-orderly";
const QUEUES: i32 = 4;
const PER_QUEUE: usize = 30;

/// (consumer, queue id, sequence number) in the order listeners were called.
type Timeline = Arc<Mutex<Vec<(&'static str, i32, usize)>>>;

fn listener(
    name: &'static str,
    timeline: &Timeline,
) -> impl Fn(Vec<MessageExt>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ConsumeResult> + Send>>
       + Send
       + Sync
       + 'static {
    let timeline = timeline.clone();
    move |messages| {
        let timeline = timeline.clone();
        Box::pin(async move {
            for message in messages {
                let body = String::from_utf8_lossy(&message.message.body).into_owned();
                let sequence = body.rsplit('-').next().and_then(|n| n.parse().ok()).expect("numbered body");
                timeline.lock().expect("lock").push((name, message.queue_id, sequence));
            }
            // Slow enough that a queue is mid-stream when it changes hands.
            tokio::time::sleep(Duration::from_millis(25)).await;
            ConsumeResult::Success
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ClientInstance"]
async fn per_queue_order_holds_while_a_member_joins() {
    init_tracing();
    let cluster = Cluster::start().await;
    cluster.create_topic(TOPIC, QUEUES).await;
    let timeline: Timeline = Arc::default();
    let start = |name: &'static str| {
        PushConsumer::builder()
            .group(GROUP)
            .namesrv(cluster.namesrv_addr())
            .subscribe(TOPIC, "*")
            .start_orderly(listener(name, &timeline))
    };
    let first = start("first").await.expect("first consumer starts");
    wait_until("the first member to lock every queue", Duration::from_secs(20), || {
        queues_of(&first, TOPIC) == all_queues(TOPIC, QUEUES)
    })
    .await;
    let third = PER_QUEUE / 3;
    for sequence in 0..third {
        for queue in 0..QUEUES {
            cluster.send(TOPIC, queue, None, &format!("q{queue}-{sequence}")).await;
        }
    }
    let second = start("second").await.expect("second consumer starts");
    // Sent while the queues change hands.
    for sequence in third..2 * third {
        for queue in 0..QUEUES {
            cluster.send(TOPIC, queue, None, &format!("q{queue}-{sequence}")).await;
        }
    }
    wait_until("the queues to be split", Duration::from_secs(30), || {
        let (a, b) = (queues_of(&first, TOPIC), queues_of(&second, TOPIC));
        a.is_disjoint(&b) && a.len() == 2 && b.len() == 2
    })
    .await;
    for sequence in 2 * third..PER_QUEUE {
        for queue in 0..QUEUES {
            cluster.send(TOPIC, queue, None, &format!("q{queue}-{sequence}")).await;
        }
    }
    wait_until("every message to be consumed", Duration::from_secs(30), || {
        let timeline = timeline.lock().expect("lock");
        (0..QUEUES).all(|queue| timeline.iter().any(|(_, q, s)| *q == queue && *s == PER_QUEUE - 1))
    })
    .await;
    second.shutdown().await;
    first.shutdown().await;

    let timeline = timeline.lock().expect("lock").clone();
    for name in ["first", "second"] {
        assert!(timeline.iter().any(|(consumer, _, _)| *consumer == name), "{name} consumed nothing");
    }
    let mut last: BTreeMap<i32, (&str, usize)> = BTreeMap::new();
    for (consumer, queue, sequence) in timeline {
        match last.get(&queue) {
            None => assert_eq!(sequence, 0, "queue {queue} did not start at its first message"),
            Some((previous, previous_sequence)) if *previous == consumer => assert_eq!(
                sequence,
                previous_sequence + 1,
                "queue {queue}: {consumer} went from {previous_sequence} to {sequence}"
            ),
            // A new owner may repeat uncommitted messages but never skips one.
            Some((previous, previous_sequence)) => assert!(
                sequence <= previous_sequence + 1,
                "queue {queue}: {consumer} took over from {previous} at {sequence} after {previous_sequence}"
            ),
        }
        last.insert(queue, (consumer, sequence));
    }
    cluster.shutdown().await;
}
