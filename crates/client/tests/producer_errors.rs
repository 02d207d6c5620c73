//! What a producer reports when the cluster refuses: no route at all, and the broker's own code
//! when a topic does not exist and auto-creation is off.

mod producer_support;

use apogee_client::{ClientError, Message};
use apogee_common::perm;
use apogee_common::topic::AUTO_CREATE_TOPIC_KEY;
use apogee_remoting::response_code;
use producer_support::Cluster;

#[tokio::test]
async fn unknown_topic_without_auto_create_gives_the_brokers_code() {
    let cluster = Cluster::start(&["broker-a"], |config| config.auto_create_topic_enable = false).await;
    let producer = cluster.producer("PG_NO_AUTO").await;

    // Neither the topic nor the TBW102 template has a route: the client knows no queue.
    let error = producer.send(Message::new("NoSuchTopic", &b"x"[..])).await.unwrap_err();
    assert!(matches!(&error, ClientError::NoRoute { topic } if topic == "NoSuchTopic"), "{error}");

    // A TBW102 route exists, but the broker does not create topics from it: its refusal
    // (TOPIC_NOT_EXIST, retried on every attempt) comes back unchanged.
    cluster.create_topic_with_perm(AUTO_CREATE_TOPIC_KEY, 8, perm::READ_WRITE | perm::INHERIT).await;
    let error = producer.send(Message::new("NoSuchTopic", &b"x"[..])).await.unwrap_err();
    assert_eq!(error.response_code(), Some(response_code::TOPIC_NOT_EXIST), "{error}");
    match &error {
        ClientError::Broker { remark, addr, .. } => {
            assert!(remark.contains("NoSuchTopic"), "{remark}");
            assert_eq!(addr, &cluster.broker(0).local_addr().unwrap().to_string());
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!cluster.broker(0).state().topics.contains("NoSuchTopic"));

    // The async path hands the same refusal to the callback.
    let (tx, rx) = tokio::sync::oneshot::channel();
    producer
        .send_with_callback(Message::new("NoSuchTopic", &b"x"[..]), move |result| {
            let _ = tx.send(result);
        })
        .unwrap();
    let error = rx.await.unwrap().unwrap_err();
    assert_eq!(error.response_code(), Some(response_code::TOPIC_NOT_EXIST), "{error}");

    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn oversized_and_forbidden_messages_never_leave_the_client() {
    let cluster = Cluster::with_topic("broker-a", "LimitTopic", 1).await;
    let producer = apogee_client::Producer::builder()
        .group("PG_LIMITS")
        .client_config(cluster.client_config())
        .max_message_size_bytes(1000)
        .start()
        .await
        .unwrap();
    for message in [
        Message::new("LimitTopic", vec![1u8; 1001]),
        Message::new("SCHEDULE_TOPIC_XXXX", &b"x"[..]),
        Message::new("bad topic", &b"x"[..]),
    ] {
        let error = producer.send(message).await.unwrap_err();
        assert!(matches!(error, ClientError::IllegalArgument(_)), "{error}");
    }
    let batch = vec![Message::new("LimitTopic", vec![1u8; 600]), Message::new("LimitTopic", vec![1u8; 600])];
    assert!(matches!(producer.send_batch(batch).await, Err(ClientError::IllegalArgument(_))));
    assert!(producer.send(Message::new("LimitTopic", vec![1u8; 1000])).await.is_ok());
    producer.shutdown().await;
    cluster.shutdown().await;
}
