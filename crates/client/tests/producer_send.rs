//! The producer against a real NameServer and broker: every send flavour, read back from the
//! broker's store with its topic, tags, keys, properties and body.

mod producer_support;

use std::collections::HashSet;
use std::time::Duration;

use apogee_client::producer::select_by_hash;
use apogee_client::{ClientError, Message, MessageQueue, Producer, SendStatus};
use apogee_common::message::{property, sysflag};
use producer_support::{eventually, stored, stored_all, stored_at, Cluster};

const BROKER: &str = "broker-a";

#[tokio::test]
async fn sync_send_round_trips_every_field() {
    let cluster = Cluster::with_topic(BROKER, "SyncTopic", 4).await;
    let producer = cluster.producer("PG_SYNC").await;
    let mut queues_used = HashSet::new();
    for index in 0..8 {
        let mut message = Message::new("SyncTopic", format!("body-{index}").into_bytes())
            .with_tags("TagA")
            .with_keys([format!("key-{index}"), "shared".to_owned()])
            .with_property("color", "blue");
        message.flag = 7;
        let result = producer.send(message).await.expect("send succeeds");
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.queue.topic, "SyncTopic");
        assert_eq!(result.queue.broker_name, BROKER);
        assert_eq!(result.msg_id.len(), 32, "{}", result.msg_id);
        assert_eq!(result.offset_msg_id.len(), 32, "{}", result.offset_msg_id);
        assert_eq!(result.transaction_id.as_deref(), Some(result.msg_id.as_str()));
        queues_used.insert(result.queue.queue_id);

        let ext = stored_at(cluster.broker(0), "SyncTopic", result.queue.queue_id, result.queue_offset).await;
        assert_eq!(ext.message.topic, "SyncTopic");
        assert_eq!(ext.message.tags(), Some("TagA"));
        assert_eq!(ext.message.keys().collect::<Vec<_>>(), [format!("key-{index}").as_str(), "shared"]);
        assert_eq!(ext.message.property("color"), Some("blue"));
        assert_eq!(ext.message.uniq_key(), Some(result.msg_id.as_str()));
        assert_eq!(ext.message.flag, 7);
        assert_eq!(&ext.message.body[..], format!("body-{index}").as_bytes());
        assert_eq!(ext.offset_msg_id(), result.offset_msg_id);
        assert_eq!(ext.sys_flag & sysflag::COMPRESSED_FLAG, 0);
    }
    assert_eq!(queues_used.len(), 4, "round robin reaches every queue: {queues_used:?}");
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn large_bodies_are_stored_compressed() {
    let cluster = Cluster::with_topic(BROKER, "ZipTopic", 1).await;
    let producer = cluster.producer("PG_ZIP").await;
    let body: Vec<u8> = (0..20_000u32).map(|index| (index % 13) as u8 + b'a').collect();
    let result = producer.send(Message::new("ZipTopic", body.clone())).await.expect("send succeeds");
    let mut ext = stored_at(cluster.broker(0), "ZipTopic", 0, result.queue_offset).await;
    assert_eq!(ext.sys_flag & sysflag::COMPRESSION_TYPE_MASK, sysflag::COMPRESSION_ZLIB_TYPE);
    assert!(sysflag::is_compressed(ext.sys_flag));
    assert!(ext.message.body.len() < body.len());
    assert_eq!(ext.decompress_body(), Ok(true));
    assert_eq!(&ext.message.body[..], &body[..]);

    // Just under the threshold: stored as is.
    let small = vec![b'x'; 4095];
    let result = producer.send(Message::new("ZipTopic", small.clone())).await.expect("send succeeds");
    let ext = stored_at(cluster.broker(0), "ZipTopic", 0, result.queue_offset).await;
    assert!(!sysflag::is_compressed(ext.sys_flag));
    assert_eq!(&ext.message.body[..], &small[..]);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn callback_oneway_batch_selector_and_explicit_queue() {
    let cluster = Cluster::with_topic(BROKER, "FlavourTopic", 4).await;
    let producer = cluster.producer("PG_FLAVOURS").await;
    let broker = cluster.broker(0);

    // Callback.
    let (tx, rx) = tokio::sync::oneshot::channel();
    producer
        .send_with_callback(Message::new("FlavourTopic", &b"async"[..]).with_tags("Async"), move |result| {
            let _ = tx.send(result);
        })
        .expect("accepted");
    let result = rx.await.expect("callback called").expect("async send succeeds");
    let ext = stored_at(broker, "FlavourTopic", result.queue.queue_id, result.queue_offset).await;
    assert_eq!(&ext.message.body[..], b"async");
    assert_eq!(ext.message.tags(), Some("Async"));

    // Oneway: no result; the message shows up in one of the queues.
    let mut oneway = Message::new("FlavourTopic", &b"fire-and-forget"[..]).with_tags("Oneway");
    oneway.set_uniq_key("ONEWAY-ID-0001");
    producer.send_oneway(oneway).await.expect("oneway queued");
    let found = eventually("the oneway message", || async {
        (0..4)
            .flat_map(|queue_id| stored(broker, "FlavourTopic", queue_id, 0))
            .find(|ext| ext.message.uniq_key() == Some("ONEWAY-ID-0001"))
    })
    .await;
    assert_eq!(&found.message.body[..], b"fire-and-forget");

    // Batch: one queue, consecutive offsets, the ids joined in order.
    let batch: Vec<Message> = (0..3)
        .map(|index| {
            Message::new("FlavourTopic", format!("batch-{index}").into_bytes())
                .with_tags("Batch")
                .with_keys([format!("bk-{index}")])
                .with_property("seq", index.to_string())
        })
        .collect();
    let result = producer.send_batch(batch).await.expect("batch succeeds");
    let ids: Vec<&str> = result.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(result.offset_msg_id.split(',').count(), 3);
    for (index, id) in ids.iter().enumerate() {
        let offset = result.queue_offset + index as i64;
        let ext = stored_at(broker, "FlavourTopic", result.queue.queue_id, offset).await;
        assert_eq!(&ext.message.body[..], format!("batch-{index}").as_bytes());
        assert_eq!(ext.message.uniq_key(), Some(*id));
        assert_eq!(ext.message.tags(), Some("Batch"));
        assert_eq!(ext.message.property(property::KEYS), Some(format!("bk-{index}").as_str()));
        assert_eq!(ext.message.property("seq"), Some(index.to_string().as_str()));
    }

    // Selector: the same key always lands in the same queue.
    let mut selected = HashSet::new();
    for index in 0..5 {
        let message = Message::new("FlavourTopic", format!("ordered-{index}").into_bytes());
        let result =
            producer.send_with_selector(message, select_by_hash("order-42")).await.expect("ordered send");
        selected.insert(result.queue.clone());
        let ext = stored_at(broker, "FlavourTopic", result.queue.queue_id, result.queue_offset).await;
        assert_eq!(&ext.message.body[..], format!("ordered-{index}").as_bytes());
    }
    assert_eq!(selected.len(), 1);
    let out_of_range = producer.send_with_selector(Message::new("FlavourTopic", &b"x"[..]), |_, _| 99).await;
    assert!(matches!(out_of_range, Err(ClientError::IllegalArgument(_))));

    // Explicit queue.
    let queue = MessageQueue::new("FlavourTopic", BROKER, 2);
    let result =
        producer.send_to_queue(Message::new("FlavourTopic", &b"q2"[..]), queue.clone()).await.unwrap();
    assert_eq!(result.queue, queue);
    let wrong = producer.send_to_queue(Message::new("Other", &b"x"[..]), queue).await;
    assert!(matches!(wrong, Err(ClientError::IllegalArgument(_))));

    assert_eq!(producer.publish_queues("FlavourTopic").await.unwrap().len(), 4);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn topics_are_created_from_tbw102_on_first_send() {
    let cluster = Cluster::start(&[BROKER], |_| {}).await;
    // The broker announces its TBW102 template when it registers.
    cluster.wait_route("TBW102", 1).await;
    let producer = cluster.producer("PG_AUTO").await;
    assert!(!cluster.broker(0).state().topics.contains("AutoTopic"));
    let result = producer
        .send(Message::new("AutoTopic", &b"first"[..]).with_tags("New"))
        .await
        .expect("send succeeds");
    assert_eq!(result.status, SendStatus::SendOk);
    let config = cluster.broker(0).state().topics.get("AutoTopic").expect("topic created");
    // min(defaultTopicQueueNums 4, TBW102's 8 queues).
    assert_eq!((config.read_queue_nums, config.write_queue_nums), (4, 4));
    let ext = stored_at(cluster.broker(0), "AutoTopic", result.queue.queue_id, result.queue_offset).await;
    assert_eq!(&ext.message.body[..], b"first");
    // The broker registers the new topic; more sends keep working.
    cluster.wait_route("AutoTopic", 1).await;
    for _ in 0..4 {
        producer.send(Message::new("AutoTopic", &b"more"[..])).await.expect("send succeeds");
    }
    assert_eq!(stored_all(cluster.broker(0), "AutoTopic", 4, 5).await.len(), 5);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn heartbeats_register_the_group_and_shutdown_unregisters_it() {
    let cluster = Cluster::with_topic(BROKER, "BeatTopic", 1).await;
    let producer = cluster.producer("PG_BEAT").await;
    producer.send(Message::new("BeatTopic", &b"x"[..])).await.expect("send succeeds");
    producer.instance().send_heartbeat_to_all_brokers().await;
    let clients = &cluster.broker(0).state().clients;
    let channels = clients.producer_channels("PG_BEAT");
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].client_id, producer.instance().client_id());
    let instance = std::sync::Arc::clone(producer.instance());
    producer.shutdown().await;
    assert!(instance.is_released());
    eventually("the producer group to leave", || async {
        clients.producer_channels("PG_BEAT").is_empty().then_some(())
    })
    .await;
    assert!(matches!(producer.send(Message::new("BeatTopic", &b"x"[..])).await, Err(ClientError::ShutDown)));
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_background_heartbeat_reaches_the_broker() {
    let cluster = Cluster::with_topic(BROKER, "PeriodicTopic", 1).await;
    let producer = Producer::builder()
        .group("PG_PERIODIC")
        .client_config(cluster.client_config().with_heartbeat_broker_interval(Duration::from_millis(200)))
        .start()
        .await
        .expect("producer starts");
    producer.send(Message::new("PeriodicTopic", &b"x"[..])).await.expect("send succeeds");
    let clients = &cluster.broker(0).state().clients;
    let last_beat_ms =
        || clients.producer_channels("PG_PERIODIC").first().map(|channel| channel.last_update_ms);
    // The beat at start reaches the broker at once (the template topic's route names it); the
    // periodic ones begin after the first delay, as Java's do.
    let start_beat = eventually("the heartbeat at start", || async { last_beat_ms() }).await;
    let mut previous =
        eventually("a periodic heartbeat", || async { last_beat_ms().filter(|beat| *beat != start_beat) })
            .await;
    // Successive beats come at the configured 200 ms, not the default 30 s nor a 1 s tick:
    // three gaps, each well under 1 s, and the three within 2 s of waiting.
    let waited_from = std::time::Instant::now();
    for _ in 0..3 {
        let next =
            eventually("the next heartbeat", || async { last_beat_ms().filter(|beat| *beat != previous) })
                .await;
        assert!(next - previous < 700, "heartbeats {} ms apart; configured 200 ms", next - previous);
        previous = next;
    }
    assert!(waited_from.elapsed() < Duration::from_secs(2), "three beats took {:?}", waited_from.elapsed());
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn two_producers_of_one_group_need_two_instances() {
    let cluster = Cluster::start(&[BROKER], |_| {}).await;
    let config = cluster.client_config().with_instance_name("shared-instance");
    let first = Producer::builder()
        .group("PG_TWICE")
        .client_config(config.clone())
        .start()
        .await
        .expect("first starts");
    let again = Producer::builder().group("PG_TWICE").client_config(config.clone()).start().await;
    assert!(matches!(again, Err(ClientError::IllegalArgument(_))));
    let other =
        Producer::builder().group("PG_OTHER").client_config(config).start().await.expect("other starts");
    assert!(std::sync::Arc::ptr_eq(first.instance(), other.instance()));
    first.shutdown().await;
    assert!(!other.instance().is_released(), "still used by PG_OTHER");
    other.shutdown().await;
    assert!(other.instance().is_released());
    cluster.shutdown().await;
}
