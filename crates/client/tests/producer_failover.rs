//! Two brokers in one cluster, one of them stopped while the producer's route still lists it:
//! every send retries on the other broker.

mod producer_support;

use std::time::Duration;

use apogee_client::{Message, Producer, SendStatus};
use producer_support::{stored_at, Cluster};

async fn sends_survive_a_stopped_broker(latency_fault_tolerance: bool) {
    let mut cluster = Cluster::start(&["broker-a", "broker-b"], |_| {}).await;
    cluster.create_topic("FailoverTopic", 2).await;
    let producer = Producer::builder()
        .group(if latency_fault_tolerance { "PG_FAILOVER_LFT" } else { "PG_FAILOVER" })
        .client_config(cluster.client_config())
        .send_timeout(Duration::from_secs(10))
        .latency_fault_tolerance(latency_fault_tolerance)
        .start()
        .await
        .expect("producer starts");
    // Both brokers take messages while both run.
    let mut brokers = std::collections::HashSet::new();
    for _ in 0..4 {
        brokers.insert(
            producer.send(Message::new("FailoverTopic", &b"warm"[..])).await.unwrap().queue.broker_name,
        );
    }
    assert_eq!(brokers.len(), 2);

    // Let the instance's first route refresh (10 ms after start) pass, so the route cached
    // now, listing broker-a, stays until the next poll 30 s later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // broker-a goes away.
    cluster.stop_broker(0).await;
    assert_eq!(
        producer.publish_queues("FailoverTopic").await.unwrap().len(),
        4,
        "route still lists broker-a"
    );
    for index in 0..10 {
        let body = format!("after-stop-{index}");
        let result =
            producer.send(Message::new("FailoverTopic", body.clone().into_bytes())).await.expect("retried");
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.queue.broker_name, "broker-b");
        let ext =
            stored_at(cluster.broker(1), "FailoverTopic", result.queue.queue_id, result.queue_offset).await;
        assert_eq!(&ext.message.body[..], body.as_bytes());
    }
    if latency_fault_tolerance {
        assert!(!producer.fault_tolerance().is_available("broker-a"), "{:?}", producer.fault_tolerance());
        assert!(producer.fault_tolerance().is_available("broker-b"));
    }
    // The asynchronous path retries transport failures too.
    for _ in 0..4 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        producer
            .send_with_callback(Message::new("FailoverTopic", &b"async"[..]), move |result| {
                let _ = tx.send(result);
            })
            .unwrap();
        assert_eq!(rx.await.unwrap().expect("async retried").queue.broker_name, "broker-b");
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn retries_go_to_the_other_broker() {
    sends_survive_a_stopped_broker(false).await;
}

#[tokio::test]
async fn retries_go_to_the_other_broker_with_fault_tolerance() {
    sends_survive_a_stopped_broker(true).await;
}
