//! Timer messages through a broker of the testkit: a message with a delivery time waits in
//! `rmq_sys_wheel_timer` and reaches its topic no earlier than asked and within the
//! precision after; far timers roll and still come on time; RECALL_MESSAGE drops a timer;
//! refusals carry Java's codes and remarks; a clean restart neither loses a pending timer
//! nor delivers a delivered one again.

mod send_common;

use std::collections::BTreeMap;
use std::time::Duration;

use apogee_common::message::batch::{encode_batch, BatchItem};
use apogee_common::message::{property, MessageExt};
use apogee_common::time::now_ms;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::header::send::{
    RecallMessageRequestHeader, RecallMessageResponseHeader, SendMessageResponseHeader,
};
use apogee_remoting::recall::RecallHandle;
use apogee_remoting::RemotingCommand;
use apogee_store::{AcceptAll, GetMessageStatus};
use bytes::Bytes;
use send_common::*;

const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// The default `timerPrecisionMs`.
const PRECISION_MS: i64 = 1_000;
/// Scheduling slack allowed on top of the precision (a busy test machine).
const SLACK_MS: i64 = 700;

fn response_header(response: &RemotingCommand) -> SendMessageResponseHeader {
    response.decode_header().expect("send response header")
}

async fn send(
    cluster: &TestCluster,
    topic: &str,
    queue_id: i32,
    pairs: &[(&str, &str)],
    body: &[u8],
) -> RemotingCommand {
    cluster.call(send_v2(send_header(topic, queue_id, &props(pairs)), body)).await
}

fn recall_request(topic: &str, handle: &str) -> RemotingCommand {
    let header = RecallMessageRequestHeader {
        producer_group: Some("PG_TEST".to_owned()),
        topic: topic.to_owned(),
        recall_handle: handle.to_owned(),
        bname: Some(BROKER_NAME.to_owned()),
    };
    RemotingCommand::request(request_code::RECALL_MESSAGE).with_header(&header)
}

/// Every record of (`topic`, `queue_id`) stored so far.
fn all_records(cluster: &TestCluster, topic: &str, queue_id: i32) -> Vec<MessageExt> {
    let store = &cluster.broker().state().store;
    let result = store.get_messages(topic, queue_id, 0, 1024, u64::MAX, &AcceptAll);
    if result.status != GetMessageStatus::Found {
        return Vec::new();
    }
    result
        .messages
        .iter()
        .map(|slice| {
            apogee_common::message::record::RecordView::parse(slice.as_slice(), true)
                .unwrap()
                .to_message_ext()
        })
        .collect()
}

/// Records of the queue by body, once `count` arrived.
async fn delivered(
    cluster: &TestCluster,
    topic: &str,
    queue_id: i32,
    count: usize,
) -> BTreeMap<String, MessageExt> {
    let records = read_records(cluster.broker(), topic, queue_id, 0, count).await;
    records
        .into_iter()
        .map(|record| (String::from_utf8_lossy(&record.message.body).into_owned(), record))
        .collect()
}

/// The delivery of `record` happened at or after `deliver_ms` and within the precision (and
/// slack) after it.
fn assert_on_time(record: &MessageExt, deliver_ms: i64) {
    let late = record.store_timestamp - deliver_ms;
    assert!(late >= 0, "delivered {} ms early", -late);
    assert!(late <= PRECISION_MS + SLACK_MS, "delivered {late} ms late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_arrive_never_early_and_within_the_precision() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "TimerOnTime";
    let now = now_ms();
    // On a precision boundary, just past one, and relative in ms and in s.
    let boundary = (now / PRECISION_MS + 2) * PRECISION_MS;
    let cases = [
        ("on a boundary", ("TIMER_DELIVER_MS", boundary.to_string()), boundary),
        ("past a boundary", ("TIMER_DELIVER_MS", (boundary + 1).to_string()), boundary + 1),
        ("1.7 s from now", ("TIMER_DELAY_MS", "1700".to_owned()), now + 1_700),
        ("2 s from now", ("TIMER_DELAY_SEC", "2".to_owned()), now + 2_000),
    ];
    let mut expected = BTreeMap::new();
    for (index, (body, (key, value), due)) in cases.iter().enumerate() {
        let uniq = format!("7F0000010000000000000000000010{index:02X}");
        let sent_at = now_ms();
        let response = send(
            &cluster,
            topic,
            2,
            &[(key, value.as_str()), ("TAGS", "TagT"), ("UNIQ_KEY", &uniq)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
        let header = response_header(&response);
        assert_eq!(header.queue_id, 2, "the answer names the queue asked for");
        assert_eq!(header.transaction_id.as_deref(), Some(uniq.as_str()));
        // Relative times count from the broker's receipt, between our send and its answer.
        let due = if key.starts_with("TIMER_DELAY") { due + (sent_at - now) } else { *due };
        let handle = RecallHandle::decode(header.recall_handle.as_deref().expect("a recall handle")).unwrap();
        assert_eq!((handle.topic.as_str(), handle.broker_name.as_str()), (topic, BROKER_NAME));
        assert_eq!(handle.message_id, uniq);
        let out_ms: i64 = handle.timestamp.parse::<i64>().unwrap() - 1;
        assert_eq!(out_ms % PRECISION_MS, 0);
        assert!(out_ms < due && due <= out_ms + PRECISION_MS, "{body}: slot {out_ms} for {due}");
        expected.insert(body.to_string(), (uniq, due, out_ms));
    }
    // Parked in the timer topic with the destination kept.
    let parked = all_records(&cluster, TIMER_TOPIC, 0);
    assert_eq!(parked.len(), cases.len());
    for record in &parked {
        let (_, _, out_ms) = &expected[&String::from_utf8_lossy(&record.message.body).into_owned()];
        assert_eq!(record.message.property(property::REAL_TOPIC), Some(topic));
        assert_eq!(record.message.property(property::REAL_QID), Some("2"));
        assert_eq!(record.message.property(property::TIMER_OUT_MS), Some(out_ms.to_string().as_str()));
    }
    assert_eq!(cluster.broker().state().store.max_offset(topic, 2), 0, "nothing delivered at once");

    let got = delivered(&cluster, topic, 2, cases.len()).await;
    assert_eq!(got.len(), cases.len());
    for (body, (uniq, due, _)) in &expected {
        let record = &got[body];
        assert_on_time(record, *due);
        assert_eq!(record.message.uniq_key(), Some(uniq.as_str()), "the id the producer got");
        assert_eq!(record.message.tags(), Some("TagT"));
        assert_eq!(record.message.property(property::REAL_TOPIC), None);
        assert_eq!(record.message.property(property::REAL_QID), None);
        assert!(record.message.property(property::TIMER_ENQUEUE_MS).is_some());
        let dequeued: i64 = record.message.property(property::TIMER_DEQUEUE_MS).unwrap().parse().unwrap();
        assert!(dequeued >= *due, "dequeued before its time");
        assert_eq!(record.message.flag, 7);
    }
    // And nothing else, nor twice.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(all_records(&cluster, topic, 2).len(), cases.len());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_beyond_the_roll_window_roll_and_still_come_on_time() {
    // A roll window of 2 slots: a timer 5 s away is parked and put back twice at least.
    let cluster = TestCluster::start(|config| config.timer.roll_window_slots = 2).await;
    let topic = "TimerRoll";
    let due = now_ms() + 5_000;
    let response = send(&cluster, topic, 0, &[("TIMER_DELIVER_MS", &due.to_string())], b"rolled").await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    let got = delivered(&cluster, topic, 0, 1).await;
    let record = &got["rolled"];
    assert_on_time(record, due);
    let rolls: i32 = record.message.property(property::TIMER_ROLL_TIMES).expect("rolled").parse().unwrap();
    assert!(rolls >= 1, "rolled {rolls} times");
    // Each roll is a record put back into the timer topic.
    assert_eq!(all_records(&cluster, TIMER_TOPIC, 0).len(), 1 + rolls as usize);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_timer_is_never_delivered() {
    let cluster = TestCluster::start(|config| config.timer.recall_enable = true).await;
    let topic = "TimerRecall";
    let due = now_ms() + 3_000;
    let mut handles = Vec::new();
    for body in ["recalled", "kept"] {
        let response =
            send(&cluster, topic, 1, &[("TIMER_DELIVER_MS", &due.to_string())], body.as_bytes()).await;
        assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
        let header = response_header(&response);
        handles.push((header.recall_handle.unwrap(), header.transaction_id.unwrap().to_string()));
    }
    let (handle, uniq) = &handles[0];

    // Refusals first, with Java's codes and remarks.
    let refused = |response: RemotingCommand, code: i32, remark: &str| {
        assert_eq!(response.code, code, "{response:?}");
        assert_eq!(response.remark.as_deref(), Some(remark));
    };
    refused(
        cluster.call(recall_request("OtherTopic", handle)).await,
        response_code::TOPIC_NOT_EXIST,
        "recall failed, the topic[OtherTopic] not exist",
    );
    refused(
        cluster.call(recall_request(topic, "not base64!")).await,
        response_code::ILLEGAL_OPERATION,
        "recall handle is invalid",
    );
    let send_other = send(&cluster, "TimerRecallOther", 0, &[], b"x").await;
    assert_eq!(send_other.code, response_code::SUCCESS);
    refused(
        cluster.call(recall_request("TimerRecallOther", handle)).await,
        response_code::ILLEGAL_OPERATION,
        "recall failed, topic not match",
    );
    let other_broker = RecallHandle::build(topic, "broker-elsewhere", &due.to_string(), uniq);
    refused(
        cluster.call(recall_request(topic, &other_broker)).await,
        response_code::ILLEGAL_OPERATION,
        "recall failed, broker service not available",
    );
    let passed = RecallHandle::build(topic, BROKER_NAME, &(now_ms() - 1).to_string(), uniq);
    refused(
        cluster.call(recall_request(topic, &passed)).await,
        response_code::ILLEGAL_OPERATION,
        "recall failed, timestamp invalid",
    );

    let response = cluster.call(recall_request(topic, handle)).await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    let answer: RecallMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!(&answer.msg_id, uniq);
    // The delete marker waits in the timer topic too.
    let parked = all_records(&cluster, TIMER_TOPIC, 0);
    let marker =
        parked.iter().find(|record| record.message.property(property::TIMER_DEL_UNIQKEY).is_some()).unwrap();
    assert_eq!(
        marker.message.property(property::TIMER_DEL_UNIQKEY),
        Some(format!("{topic}+{uniq}").as_str())
    );

    let got = delivered(&cluster, topic, 1, 1).await;
    assert_on_time(&got["kept"], due);
    // Well past the slot: still only the kept one.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let all = all_records(&cluster, topic, 1);
    let bodies: Vec<&[u8]> = all.iter().map(|record| &record.message.body[..]).collect();
    assert_eq!(bodies, vec![&b"kept"[..]]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_batches() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "TimerRefusals";
    let illegal =
        "timer message illegal, the delay time should not be bigger than the max delay 259200000ms; or if \
                   set del msg, the delay time should be bigger than the current time";
    for pairs in
        [[("TIMER_DELAY_SEC", "259201")], [("TIMER_DELIVER_MS", "tomorrow")], [("TIMER_DELAY_MS", "1e3")]]
    {
        let response = send(&cluster, topic, 0, &pairs, b"x").await;
        assert_eq!(response.code, response_code::MESSAGE_ILLEGAL, "{pairs:?}");
        assert_eq!(response.remark.as_deref(), Some(illegal));
    }
    // The longest delay is accepted.
    let response = send(&cluster, topic, 0, &[("TIMER_DELAY_SEC", "259200")], b"x").await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    // A time already passed stores the message as it is, at once, without a recall handle.
    let response = send(&cluster, topic, 3, &[("TIMER_DELIVER_MS", "1000")], b"past").await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    assert_eq!(response_header(&response).recall_handle, None);
    assert_eq!(
        read_records(cluster.broker(), topic, 3, 0, 1).await[0].message.body,
        Bytes::from_static(b"past")
    );
    // A delay level wins over timer properties, which are dropped (the schedule topic).
    let response = send(&cluster, topic, 0, &[("DELAY", "1"), ("TIMER_DELAY_SEC", "100")], b"level").await;
    assert_eq!(response.code, response_code::SUCCESS);
    assert_eq!(response_header(&response).recall_handle, None);
    let scheduled = read_records(cluster.broker(), "SCHEDULE_TOPIC_XXXX", 0, 0, 1).await;
    assert_eq!(scheduled[0].message.property(property::TIMER_DELAY_SEC), None);
    // Batch items keep timer properties as sent and are stored at once (Java's put hook sees
    // only the batch's own properties).
    let items = vec![BatchItem {
        flag: 0,
        body: Bytes::from_static(b"batched"),
        properties: props(&[("TIMER_DELAY_SEC", "60")]),
    }];
    let response = cluster.call(send_batch(send_header(topic, 2, &props(&[])), encode_batch(&items))).await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    let stored = read_records(cluster.broker(), topic, 2, 0, 1).await;
    assert_eq!(stored[0].message.property(property::TIMER_DELAY_SEC), Some("60"));
    // Recall is off by default, as in Java.
    let handle = RecallHandle::build(topic, BROKER_NAME, &(now_ms() + 60_000).to_string(), "ID");
    let response = cluster.call(recall_request(topic, &handle)).await;
    assert_eq!(response.code, response_code::NO_PERMISSION);
    assert_eq!(response.remark.as_deref(), Some("recall failed, operation is forbidden"));
    cluster.shutdown().await;

    let cluster = TestCluster::start(|config| config.timer.wheel_enable = false).await;
    let response = send(&cluster, topic, 0, &[("TIMER_DELAY_SEC", "5")], b"x").await;
    assert_eq!(response.code, response_code::SYSTEM_ERROR);
    assert_eq!(
        response.remark.as_deref(),
        Some("accurate timer message is not enabled, timerWheelEnable is false")
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_pending_timers_and_repeats_no_delivery() {
    let mut cluster = TestCluster::start(|_| {}).await;
    let topic = "TimerRestart";
    let early_due = now_ms() + 1_200;
    let response = send(&cluster, topic, 0, &[("TIMER_DELIVER_MS", &early_due.to_string())], b"before").await;
    assert_eq!(response.code, response_code::SUCCESS);
    let late_due = now_ms() + 6_000;
    let response = send(&cluster, topic, 0, &[("TIMER_DELIVER_MS", &late_due.to_string())], b"after").await;
    assert_eq!(response.code, response_code::SUCCESS);
    let got = delivered(&cluster, topic, 0, 1).await;
    assert_on_time(&got["before"], early_due);

    cluster.stop_broker().await;
    cluster.restart_broker().await;
    let got = delivered(&cluster, topic, 0, 2).await;
    assert_on_time(&got["after"], late_due);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let bodies: Vec<Vec<u8>> =
        all_records(&cluster, topic, 0).iter().map(|record| record.message.body.to_vec()).collect();
    assert_eq!(bodies, vec![b"before".to_vec(), b"after".to_vec()], "each delivered once");
    cluster.shutdown().await;
}
