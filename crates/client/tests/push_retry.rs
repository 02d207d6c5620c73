//! Concurrent clustering consumers send failed messages back; they return through the
//! group's retry topic with their original topic and a higher reconsume count.

mod push_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apogee_client::{ConsumeResult, MessageExt};
use push_support::{all_queues, queues_of, wait_until, Cluster};

const TOPIC: &str = "PushRetryTopic";
const GROUP: &str = "cg-push-retry";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_message_comes_back_from_the_retry_topic() {
    let cluster = Cluster::with_topic(TOPIC, 2).await;
    let deliveries: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let seen = deliveries.clone();
    let consumer = cluster
        .consumer(GROUP)
        .subscribe(TOPIC, "*")
        // The retry topic appears at the broker only with the first heartbeat.
        .rebalance_interval(Duration::from_secs(2))
        .start(move |messages: Vec<MessageExt>| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().expect("lock");
                let first_time = messages.iter().all(|m| m.reconsume_times == 0);
                seen.extend(messages);
                if first_time {
                    ConsumeResult::ReconsumeLater
                } else {
                    ConsumeResult::Success
                }
            }
        })
        .await
        .expect("consumer starts");
    let retry = format!("%RETRY%{GROUP}");
    wait_until("the consumer to hold its queues", Duration::from_secs(20), || {
        queues_of(&consumer, TOPIC) == all_queues(TOPIC, 2) && queues_of(&consumer, &retry).len() == 1
    })
    .await;
    cluster.send(TOPIC, 1, Some("TagR"), "fails once").await;
    wait_until("the redelivery", Duration::from_secs(30), || deliveries.lock().expect("lock").len() >= 2)
        .await;
    let deliveries = deliveries.lock().expect("lock").clone();
    let (first, again) = (&deliveries[0], &deliveries[1]);
    assert_eq!(first.reconsume_times, 0);
    assert_eq!(again.reconsume_times, 1);
    assert_eq!(again.message.topic, TOPIC, "the retry topic is hidden from the listener");
    assert_eq!(&again.message.body[..], b"fails once");
    assert_eq!(again.msg_id(), first.msg_id(), "the message keeps its id");
    assert_eq!(again.message.tags(), Some("TagR"));
    consumer.shutdown().await;
    cluster.shutdown().await;
}
