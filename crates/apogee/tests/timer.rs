//! Timer messages end to end on the real binary, through the Rust SDK: timers due in 1 s, 5 s
//! and 65 s arrive within the precision after their time and never before; a recalled timer
//! never arrives; timers pending across a clean restart and a kill -9 arrive once, on time,
//! and a timer delivered before a restart is not delivered again. Every check compares
//! bodies, ids and times with what was sent.

mod standalone;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apogee_client::{Message, MessageExt, Producer};
use apogee_common::time::now_ms;
use apogee_testkit::ApogeeProcess;

/// The default `timerPrecisionMs`.
const PRECISION_MS: i64 = 1_000;
/// Scheduling slack on top of the precision (a loaded test machine).
const SLACK_MS: i64 = 1_000;
/// How long a consumer keeps polling after it got everything, for a duplicate.
const QUIET_PERIOD: Duration = Duration::from_secs(3);

/// One delivery: the message and when the consumer got it.
struct Delivery {
    message: MessageExt,
    received_ms: i64,
}

async fn producer(apogee: &ApogeeProcess, group: &str) -> Producer {
    Producer::builder().group(group).namesrv(apogee.namesrv_addr()).start().await.expect("producer started")
}

/// Polls `topic` from its start until `expected` bodies arrived (or `limit`), then for
/// [`QUIET_PERIOD`] more; every delivery by body.
async fn receive(
    apogee: &ApogeeProcess,
    group: &str,
    topic: &str,
    expected: usize,
    limit: Duration,
) -> BTreeMap<String, Vec<Delivery>> {
    let consumer = standalone::pull_consumer(apogee, group, topic).await;
    let mut got: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    let mut quiet_until = None;
    loop {
        for message in consumer.poll(Duration::from_millis(200)).await {
            let body = String::from_utf8_lossy(&message.message.body).into_owned();
            got.entry(body).or_default().push(Delivery { message, received_ms: now_ms() });
        }
        match quiet_until {
            None if got.len() >= expected || Instant::now() >= deadline => {
                quiet_until = Some(Instant::now() + QUIET_PERIOD)
            }
            Some(until) if Instant::now() >= until => break,
            _ => {}
        }
    }
    consumer.shutdown().await;
    got
}

/// `body` arrived exactly once, with id `msg_id`, stored (and so received) no earlier than
/// `due_ms` and within the precision and slack after it.
fn assert_once_on_time(got: &BTreeMap<String, Vec<Delivery>>, body: &str, msg_id: &str, due_ms: i64) {
    let deliveries = got.get(body).unwrap_or_else(|| panic!("{body:?} not delivered; got {:?}", got.keys()));
    assert_eq!(deliveries.len(), 1, "{body:?} delivered {} times", deliveries.len());
    let delivery = &deliveries[0];
    assert_eq!(delivery.message.msg_id(), msg_id, "{body:?}: the id the producer got");
    let stored_late = delivery.message.store_timestamp - due_ms;
    assert!(stored_late >= 0, "{body:?} stored {} ms early", -stored_late);
    assert!(stored_late <= PRECISION_MS + SLACK_MS, "{body:?} stored {stored_late} ms late");
    assert!(delivery.received_ms >= due_ms, "{body:?} received {} ms early", due_ms - delivery.received_ms);
    assert_eq!(delivery.message.message.tags(), Some("TagTimer"));
    assert_eq!(delivery.message.message.property("REAL_TOPIC"), None);
}

/// Sends a timer message due at `due_ms`; returns its id and recall handle.
async fn send_timer(producer: &Producer, topic: &str, body: &str, due_ms: i64) -> (String, String) {
    let message =
        Message::new(topic, body.as_bytes().to_vec()).with_tags("TagTimer").with_deliver_time_ms(due_ms);
    let result = producer.send(message).await.expect("timer sent");
    (result.msg_id, result.recall_handle.expect("a timer's send result has a recall handle"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_due_in_1_5_and_65_seconds_arrive_on_time() {
    let apogee = standalone::start();
    let topic = "TimerOnTime";
    let producer = producer(&apogee, "timer-on-time").await;
    let mut sent = Vec::new();
    for (body, delay_ms) in [("in 1 s", 1_000), ("in 5 s", 5_000), ("in 65 s", 65_000)] {
        let due = now_ms() + delay_ms;
        let (msg_id, _) = send_timer(&producer, topic, body, due).await;
        sent.push((body, msg_id, due));
    }
    producer.shutdown().await;
    let got = receive(&apogee, "timer-on-time-consumer", topic, sent.len(), Duration::from_secs(90)).await;
    for (body, msg_id, due) in &sent {
        assert_once_on_time(&got, body, msg_id, *due);
    }
    assert_eq!(got.len(), sent.len(), "nothing else delivered: {:?}", got.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_timer_never_arrives() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), "recallMessageEnable=true\n");
    let topic = "TimerRecall";
    let producer = producer(&apogee, "timer-recall").await;
    let due = now_ms() + 3_000;
    let (recalled_id, handle) = send_timer(&producer, topic, "recalled", due).await;
    let (kept_id, _) = send_timer(&producer, topic, "kept", due).await;
    assert_eq!(producer.recall(topic, &handle).await.expect("recalled"), recalled_id);
    producer.shutdown().await;
    let got = receive(&apogee, "timer-recall-consumer", topic, 1, Duration::from_secs(20)).await;
    assert_once_on_time(&got, "kept", &kept_id, due);
    assert!(!got.contains_key("recalled"), "a recalled timer was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_pending_across_a_clean_restart_and_a_kill_9_arrive_once_on_time() {
    let mut apogee = standalone::start();
    let topic = "TimerRestarts";
    let producer = producer(&apogee, "timer-restarts").await;
    let start = now_ms();
    let early = ("early", start + 1_500);
    let pending = [("pending A", start + 10_000), ("pending B", start + 15_000)];
    let mut ids = BTreeMap::new();
    for (body, due) in std::iter::once(early).chain(pending) {
        let (msg_id, _) = send_timer(&producer, topic, body, due).await;
        ids.insert(body, msg_id);
    }
    producer.shutdown().await;
    // The early one arrives before the restarts.
    let before = receive(&apogee, "timer-restarts-before", topic, 1, Duration::from_secs(15)).await;
    assert_once_on_time(&before, early.0, &ids[early.0], early.1);
    assert_eq!(before.len(), 1, "only the early timer is due: {:?}", before.keys());

    apogee.stop();
    apogee.restart();
    apogee.kill_9();
    apogee.restart();
    assert!(now_ms() < pending[0].1, "the restarts took too long to leave the timers pending");

    let after = receive(&apogee, "timer-restarts-after", topic, 3, Duration::from_secs(40)).await;
    // The early timer delivered before the clean restart is not delivered again.
    assert_once_on_time(&after, early.0, &ids[early.0], early.1);
    for (body, due) in pending {
        assert_once_on_time(&after, body, &ids[body], due);
    }
    assert_eq!(after.len(), 3, "{:?}", after.keys());
}
