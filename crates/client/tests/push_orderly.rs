//! Orderly push consumers: per-queue order holds while a second member joins and takes over
//! half of the queues (broker locks hand each queue from one member to the other).

mod push_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apogee_client::{ConsumeResult, MessageExt};
use push_support::{init_tracing, queues_of, wait_for_every_queue, wait_until, Cluster};

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
async fn per_queue_order_holds_while_a_member_joins() {
    let cluster = Cluster::with_topic(TOPIC, QUEUES).await;
    let timeline: Timeline = Arc::default();
    let start = |name: &'static str| {
        cluster.consumer(GROUP).subscribe(TOPIC, "*").start_orderly(listener(name, &timeline))
    };
    let first = start("first").await.expect("first consumer starts");
    wait_for_every_queue(
        "the first member to lock every queue",
        Duration::from_secs(20),
        &first,
        TOPIC,
        QUEUES,
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_message_is_retried_in_place_then_dead_lettered() {
    init_tracing();
    let cluster = Cluster::start().await;
    let topic = "PushOrderlyRetryTopic";
    let group = "cg-push-orderly-retry";
    cluster.create_topic(topic, 1).await;
    let attempts: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let seen = attempts.clone();
    let consumer = cluster
        .consumer(group)
        .subscribe(topic, "*")
        .max_reconsume_times(2)
        .suspend_current_queue_time(Duration::from_millis(50))
        .start_orderly(move |messages: Vec<MessageExt>| {
            let seen = seen.clone();
            async move {
                let mut result = ConsumeResult::Success;
                for message in messages {
                    let body = String::from_utf8_lossy(&message.message.body).into_owned();
                    if body == "poison" {
                        result = ConsumeResult::ReconsumeLater;
                    }
                    seen.lock().expect("lock").push((body, message.reconsume_times));
                }
                result
            }
        })
        .await
        .expect("consumer starts");
    wait_for_every_queue("the queue", Duration::from_secs(20), &consumer, topic, 1).await;
    for body in ["before", "poison", "after"] {
        cluster.send(topic, 0, None, body).await;
    }
    wait_until("the message after the poison", Duration::from_secs(20), || {
        attempts.lock().expect("lock").iter().any(|(body, _)| body == "after")
    })
    .await;
    let attempts = attempts.lock().expect("lock").clone();
    let expected: Vec<(String, i32)> =
        [("before", 0), ("poison", 0), ("poison", 1), ("poison", 2), ("after", 0)]
            .iter()
            .map(|(b, n)| ((*b).to_owned(), *n))
            .collect();
    assert_eq!(attempts, expected, "retried in place, in order, then given up");
    consumer.shutdown().await;

    // The poison message went to the group's dead-letter topic.
    let dlq = format!("%DLQ%{group}");
    let header = apogee_remoting::header::consumer::GetMaxOffsetRequestHeader {
        topic: dlq.clone(),
        queue_id: 0,
        committed: None,
        bname: None,
    };
    let request =
        apogee_remoting::RemotingCommand::request(apogee_remoting::code::request_code::GET_MAX_OFFSET)
            .with_header(&header);
    let response = cluster.call(request).await;
    let max: apogee_remoting::header::consumer::GetMaxOffsetResponseHeader =
        response.decode_header().expect("max offset header");
    assert_eq!(max.offset, 1, "one message in {dlq}");
    cluster.shutdown().await;
}
