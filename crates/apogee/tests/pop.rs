//! POP consumption end to end on the real binary with the Rust SDK's `SimpleConsumer`:
//! receive, ack, batch ack and change of invisible duration; redelivery after the invisible
//! time with its reconsume count; FIFO order per message group; members of a group sharing
//! the messages; kill -9 and restart with nothing acked redelivered and nothing un-acked
//! lost (also for FIFO groups); a POP group and a PULL group side by side. Every case compares what the consumer got
//! with what was sent.

mod standalone;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use apogee_client::consumer::lite_pull::ConsumeFromWhere as PullFrom;
use apogee_client::consumer::simple::ConsumeFromWhere;
use apogee_client::producer::selector::select_by_hash;
use apogee_client::{FilterExpression, LitePullConsumer, Message, Producer, ReceivedMessage, SimpleConsumer};
use apogee_testkit::ApogeeProcess;

/// Revive rounds every 100 ms so redeliveries come soon after the invisible time; consumer
/// offsets persisted only every 10 minutes, so a kill -9 loses every offset committed since the
/// start: what the broker must then recover from its check points.
const QUICK_REVIVE: &str = "reviveInterval=100\nflushConsumerOffsetInterval=600000\n";
/// How long a test receives for what it must get.
const RECEIVE_LIMIT: Duration = Duration::from_secs(30);
/// How long a test keeps receiving for something that must not come.
const QUIET_PERIOD: Duration = Duration::from_secs(3);
/// The await of one receive: short, so loops check their limits often.
const AWAIT: Duration = Duration::from_millis(500);

async fn producer(apogee: &ApogeeProcess, group: &str) -> Producer {
    Producer::builder().group(group).namesrv(apogee.namesrv_addr()).start().await.expect("producer started")
}

async fn simple_consumer(apogee: &ApogeeProcess, group: &str, topic: &str, fifo: bool) -> SimpleConsumer {
    SimpleConsumer::builder()
        .group(group)
        .namesrv(apogee.namesrv_addr())
        .subscribe(topic, FilterExpression::tag("*"))
        .await_duration(AWAIT)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .fifo(fifo)
        .start()
        .await
        .expect("simple consumer started")
}

/// Sends `count` messages `<prefix>-<i>` with tag `TagPop` and key `K<i>`; returns the bodies.
async fn send(producer: &Producer, topic: &str, prefix: &str, count: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for index in 0..count {
        let body = format!("{prefix}-{index}");
        let message = Message::new(topic, body.clone().into_bytes())
            .with_tags("TagPop")
            .with_keys([format!("K{index}")]);
        producer.send(message).await.expect("sent");
        bodies.push(body);
    }
    bodies
}

fn body(message: &ReceivedMessage) -> String {
    String::from_utf8_lossy(&message.message().message.body).into_owned()
}

/// Receives with `invisible` until `expected` distinct bodies came or the limit; returns
/// every delivery in order.
async fn receive_until(
    consumer: &SimpleConsumer,
    expected: usize,
    invisible: Duration,
) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    let mut distinct = BTreeSet::new();
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while distinct.len() < expected && Instant::now() < deadline {
        for message in consumer.receive(32, invisible).await.expect("received") {
            distinct.insert(body(&message));
            got.push(message);
        }
    }
    got
}

/// Receives for `period` and returns whatever came (for things that must not come).
async fn receive_for(consumer: &SimpleConsumer, period: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let until = Instant::now() + period;
    while Instant::now() < until {
        got.extend(consumer.receive(32, Duration::from_secs(10)).await.expect("received").iter().map(body));
    }
    got
}

/// Checks the deliveries are exactly `bodies`, each once, with the tag and key sent and
/// `reconsume_times`.
fn assert_exactly(got: &[ReceivedMessage], bodies: &[String], reconsume_times: i32) {
    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    for message in got {
        *delivered.entry(body(message)).or_default() += 1;
        let ext = &message.message().message;
        assert_eq!(ext.tags(), Some("TagPop"));
        let index = body(message).rsplit('-').next().unwrap().to_owned();
        assert_eq!(ext.keys().collect::<Vec<_>>(), [format!("K{index}")]);
        assert_eq!(message.reconsume_times(), reconsume_times, "{} reconsume times", body(message));
    }
    let want: BTreeMap<String, usize> = bodies.iter().map(|body| (body.clone(), 1)).collect();
    assert_eq!(delivered, want, "each sent message exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_batch_ack_and_change_invisible_duration() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopBasic";
    let producer = producer(&apogee, "pop-basic-producer").await;
    let bodies = send(&producer, topic, "basic", 10).await;
    let consumer = simple_consumer(&apogee, "pop-basic", topic, false).await;

    let invisible = Duration::from_secs(2);
    let first = receive_until(&consumer, 10, invisible).await;
    let received_at = Instant::now();
    assert_exactly(&first, &bodies, 0);
    let by_body: BTreeMap<String, ReceivedMessage> =
        first.into_iter().map(|message| (body(&message), message)).collect();
    for index in 0..4 {
        consumer.ack(&by_body[&bodies[index]]).await.expect("acked");
    }
    let batch: Vec<ReceivedMessage> = (4..8).map(|index| by_body[&bodies[index]].clone()).collect();
    consumer.ack_batch(&batch).await.expect("batch acked");
    let mut postponed = by_body[&bodies[8]].clone();
    let old_handle = postponed.receipt_handle().to_owned();
    consumer.change_invisible_duration(&mut postponed, Duration::from_secs(6)).await.expect("changed");
    let changed_at = Instant::now();
    assert_ne!(postponed.receipt_handle(), old_handle, "a new receipt handle");

    // Only the one left alone comes back, once its 2 s are over.
    let back = receive_until(&consumer, 1, invisible).await;
    let waited = received_at.elapsed();
    assert_exactly(&back, &bodies[9..10], 1);
    assert!(waited >= invisible, "redelivered after {waited:?}, before the invisible time");
    assert!(waited < invisible + Duration::from_secs(5), "redelivered only after {waited:?}");
    consumer.ack(&back[0]).await.expect("redelivery acked");

    // The postponed one comes back after its new 6 s, not before.
    let postponed_back = receive_until(&consumer, 1, invisible).await;
    let waited = changed_at.elapsed();
    assert_exactly(&postponed_back, &bodies[8..9], 1);
    assert!(waited >= Duration::from_secs(6), "postponed message back after {waited:?}");
    assert!(waited < Duration::from_secs(12), "postponed message back only after {waited:?}");
    consumer.ack(&postponed_back[0]).await.expect("acked");

    let late = receive_for(&consumer, QUIET_PERIOD).await;
    assert!(late.is_empty(), "acked messages came again: {late:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_delivers_each_message_group_in_order() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopFifo";
    let producer = producer(&apogee, "pop-fifo-producer").await;
    let groups = ["order-a", "order-b", "order-c"];
    const PER_GROUP: usize = 6;
    for seq in 0..PER_GROUP {
        for group in groups {
            let message = Message::new(topic, format!("{group}:{seq}").into_bytes()).with_keys([group]);
            producer
                .send_with_selector(message, select_by_hash(group))
                .await
                .expect("sent to the group's queue");
        }
    }
    let consumer = simple_consumer(&apogee, "pop-fifo", topic, true).await;
    let invisible = Duration::from_secs(1);
    let mut acked: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut delivered: BTreeMap<String, Vec<(usize, i32)>> = BTreeMap::new();
    let mut failed_once = false;
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while acked.values().map(Vec::len).sum::<usize>() < groups.len() * PER_GROUP && Instant::now() < deadline
    {
        let mut skip_queue = None;
        for message in consumer.receive(32, invisible).await.expect("received") {
            let text = body(&message);
            let (group, seq) = text.split_once(':').unwrap();
            let seq: usize = seq.parse().unwrap();
            delivered.entry(group.to_owned()).or_default().push((seq, message.reconsume_times()));
            // Once, order-b's message 2 "fails": it and what follows it in its queue are not
            // acked, so they must come again, in the same order, after the invisible time.
            if group == "order-b" && seq == 2 && !failed_once {
                failed_once = true;
                skip_queue = Some(message.message().queue_id);
            }
            if skip_queue == Some(message.message().queue_id) {
                continue;
            }
            consumer.ack(&message).await.expect("acked");
            acked.entry(group.to_owned()).or_default().push(seq);
        }
    }
    assert!(failed_once, "order-b's message 2 was never delivered");
    for group in groups {
        assert_eq!(
            acked.get(group).cloned().unwrap_or_default(),
            (0..PER_GROUP).collect::<Vec<_>>(),
            "{group} acked in order"
        );
        let seqs: Vec<usize> = delivered[group].iter().map(|(seq, _)| *seq).collect();
        if group != "order-b" {
            assert_eq!(seqs, (0..PER_GROUP).collect::<Vec<_>>(), "{group}: each once, in order");
        }
    }
    // order-b: 0, 1, then 2.. once failed, then 2.. again, the redelivery counted.
    let b = &delivered["order-b"];
    let again = b.iter().rposition(|(seq, _)| *seq == 2).unwrap();
    let first = b.iter().position(|(seq, _)| *seq == 2).unwrap();
    assert!(again > first, "order-b's message 2 came again: {b:?}");
    assert_eq!(b[again].1, 1, "the redelivery counts one earlier delivery: {b:?}");
    let after: Vec<usize> = b[again..].iter().map(|(seq, _)| *seq).collect();
    assert_eq!(after, (2..PER_GROUP).collect::<Vec<_>>(), "in order again from the failed one: {b:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_neither_loses_unacked_nor_redelivers_acked_messages() {
    let config_dir = tempfile::tempdir().unwrap();
    let mut apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopCrash";
    let invisible = Duration::from_secs(3);
    for round in 0..2 {
        let producer = producer(&apogee, "pop-crash-producer").await;
        let bodies = send(&producer, topic, &format!("round{round}"), 12).await;
        producer.shutdown().await;
        let consumer = simple_consumer(&apogee, "pop-crash", topic, false).await;
        let got = receive_until(&consumer, bodies.len(), invisible).await;
        assert_exactly(&got, &bodies, 0);
        let (acked, kept): (Vec<ReceivedMessage>, Vec<ReceivedMessage>) =
            got.into_iter().partition(|message| {
                body(message).rsplit('-').next().unwrap().parse::<usize>().unwrap() % 2 == 0
            });
        for message in &acked {
            consumer.ack(message).await.expect("acked");
        }
        consumer.shutdown().await;

        apogee.kill_9();
        apogee.restart();

        let consumer = simple_consumer(&apogee, "pop-crash", topic, false).await;
        let mut kept_bodies: Vec<String> = kept.iter().map(body).collect();
        kept_bodies.sort();
        let back = receive_until(&consumer, kept_bodies.len(), invisible).await;
        let mut back_sorted = back.clone();
        back_sorted.sort_by_key(body);
        assert_exactly(&back_sorted, &kept_bodies, 1);
        for message in &back {
            consumer.ack(message).await.expect("redelivery acked");
        }
        // Nothing acked before the kill, and nothing acked since, comes again.
        let late = receive_for(&consumer, invisible + Duration::from_secs(1)).await;
        assert!(late.is_empty(), "round {round}: delivered again after the kill: {late:?}");
        consumer.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_group_and_a_pull_group_each_get_every_message_once() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopAndPull";
    let producer = producer(&apogee, "pop-pull-producer").await;
    let bodies = send(&producer, topic, "both", 20).await;

    let pop = simple_consumer(&apogee, "pop-side", topic, false).await;
    let pull = LitePullConsumer::builder()
        .group("pull-side")
        .namesrv(apogee.namesrv_addr())
        .consume_from_where(PullFrom::ConsumeFromFirstOffset)
        .start()
        .await
        .expect("pull consumer started");
    pull.subscribe(topic, "*").await.expect("subscribed");

    let popped = receive_until(&pop, bodies.len(), Duration::from_secs(10)).await;
    assert_exactly(&popped, &bodies, 0);
    pop.ack_batch(&popped).await.expect("acked");
    let mut pulled: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while pulled.len() < bodies.len() && Instant::now() < deadline {
        for message in pull.poll(Duration::from_millis(500)).await {
            *pulled.entry(String::from_utf8_lossy(&message.message.body).into_owned()).or_default() += 1;
        }
    }
    for message in pull.poll(Duration::from_secs(1)).await {
        *pulled.entry(String::from_utf8_lossy(&message.message.body).into_owned()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = bodies.iter().map(|body| (body.clone(), 1)).collect();
    assert_eq!(pulled, want, "the pull group got every message once too");
    let late = receive_for(&pop, QUIET_PERIOD).await;
    assert!(late.is_empty(), "pop group got messages again: {late:?}");
    pull.shutdown().await;
    pop.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_one_group_share_the_messages_each_once() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopShared";
    let producer = producer(&apogee, "pop-shared-producer").await;
    // The topic exists (routes to find) before the members start; they all wait for messages
    // when the rest is sent.
    let mut bodies = send(&producer, topic, "shared", 1).await;
    let mut members = Vec::new();
    for name in ["member-a", "member-b", "member-c"] {
        let consumer = SimpleConsumer::builder()
            .group("pop-shared")
            .namesrv(apogee.namesrv_addr())
            .instance_name(name)
            .subscribe(topic, FilterExpression::tag("TagPop"))
            .await_duration(AWAIT)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .start()
            .await
            .expect("member started");
        members.push(tokio::spawn(async move {
            // Small batches, so the members take turns at the queues.
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                for message in consumer.receive(3, Duration::from_secs(30)).await.expect("received") {
                    consumer.ack(&message).await.expect("acked");
                    got.push(message);
                }
            }
            consumer.shutdown().await;
            got
        }));
    }
    for index in 1..60 {
        let body = format!("shared-{index}");
        let message = Message::new(topic, body.clone().into_bytes())
            .with_tags("TagPop")
            .with_keys([format!("K{index}")]);
        producer.send(message).await.expect("sent");
        bodies.push(body);
    }
    let mut all = Vec::new();
    for member in members {
        all.extend(member.await.unwrap());
    }
    assert_exactly(&all, &bodies, 0);
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_after_a_kill_9_resumes_at_the_first_unacked_message_of_each_group() {
    let config_dir = tempfile::tempdir().unwrap();
    let mut apogee = standalone::start_configured(config_dir.path(), QUICK_REVIVE);
    let topic = "PopFifoCrash";
    let groups = ["fifo-a", "fifo-b", "fifo-c"];
    const PER_GROUP: usize = 4;
    const ACKED_PER_GROUP: usize = 2;
    let producer = producer(&apogee, "pop-fifo-crash-producer").await;
    for seq in 0..PER_GROUP {
        for group in groups {
            let message = Message::new(topic, format!("{group}:{seq}").into_bytes()).with_keys([group]);
            producer.send_with_selector(message, select_by_hash(group)).await.expect("sent");
        }
    }
    producer.shutdown().await;

    // Before the kill: the first two of each group acked, the rest received and left in
    // flight (invisible far longer than the test).
    let consumer = simple_consumer(&apogee, "pop-fifo-crash", topic, true).await;
    let mut acked: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut in_flight = BTreeSet::new();
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while in_flight.len() < groups.len() * (PER_GROUP - ACKED_PER_GROUP) && Instant::now() < deadline {
        for message in consumer.receive(32, Duration::from_secs(120)).await.expect("received") {
            let text = body(&message);
            let (group, seq) = text.split_once(':').unwrap();
            let seq: usize = seq.parse().unwrap();
            if seq < ACKED_PER_GROUP {
                consumer.ack(&message).await.expect("acked");
                acked.entry(group.to_owned()).or_default().push(seq);
            } else {
                in_flight.insert(text);
            }
        }
    }
    for group in groups {
        assert_eq!(acked.get(group).cloned().unwrap_or_default(), [0, 1], "{group} acked before the kill");
    }
    assert_eq!(in_flight.len(), groups.len() * (PER_GROUP - ACKED_PER_GROUP));
    consumer.shutdown().await;

    apogee.kill_9();
    apogee.restart();

    // After it: each group again from its first un-acked message, in order, nothing acked.
    let consumer = simple_consumer(&apogee, "pop-fifo-crash", topic, true).await;
    let mut delivered: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let deadline = Instant::now() + RECEIVE_LIMIT;
    while delivered.values().map(Vec::len).sum::<usize>() < in_flight.len() && Instant::now() < deadline {
        for message in consumer.receive(32, Duration::from_secs(120)).await.expect("received") {
            let text = body(&message);
            let (group, seq) = text.split_once(':').unwrap();
            delivered.entry(group.to_owned()).or_default().push(seq.parse().unwrap());
            consumer.ack(&message).await.expect("acked");
        }
    }
    for group in groups {
        assert_eq!(delivered.get(group).cloned().unwrap_or_default(), [2, 3], "{group} after the kill");
    }
    let late = receive_for(&consumer, QUIET_PERIOD).await;
    assert!(late.is_empty(), "delivered again: {late:?}");
    consumer.shutdown().await;
}
