//! POP consumption end to end over loopback, as a Java 5.x client speaks it: the response
//! header and receipt handles, acks, batch acks, changes of invisible time, redelivery
//! through the pop retry topic by the revive service, long polling, orderly pops, and
//! offsets recovered from check points after a restart whose consumer offsets lagged.
//!
//! Receipt handles are built here as Java's `ExtraInfoUtil.buildExtraInfo` builds them (the
//! format written out below), not with the broker's own code.

mod consume_support;

use std::time::{Duration, Instant};

use apogee_broker::Broker;
use apogee_common::message::property;
use apogee_common::message::MessageExt;
use apogee_remoting::body::pop::{BatchAck, BatchAckMessageRequestBody, BitSet};
use apogee_remoting::client::RemotingClient;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    NotificationRequestHeader, NotificationResponseHeader, PollingInfoRequestHeader,
    PollingInfoResponseHeader, PopMessageRequestHeader, PopMessageResponseHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use consume_support::*;

const BROKER_NAME: &str = "broker-test";

/// Settings that make redelivery quick: revive rounds every 50 ms, no retry-first pops (so
/// which topic a pop reads first is not left to chance).
fn quick(config: &mut apogee_broker::BrokerConfig) {
    config.set("reviveInterval", "50").unwrap();
    config.set("popFromRetryProbability", "0").unwrap();
}

fn pop_header(
    group: &str,
    queue_id: i32,
    max: i32,
    invisible_ms: i64,
    poll_ms: i64,
) -> PopMessageRequestHeader {
    PopMessageRequestHeader {
        consumer_group: group.into(),
        topic: "T".into(),
        queue_id,
        max_msg_nums: max,
        invisible_time: invisible_ms,
        poll_time: poll_ms,
        born_time: apogee_common::time::now_ms(),
        init_mode: 0,
        ..PopMessageRequestHeader::default()
    }
}

async fn call(client: &RemotingClient, addr: &str, request: RemotingCommand) -> RemotingCommand {
    client.invoke(addr, request, CALL_TIMEOUT).await.expect("broker answers")
}

async fn pop(client: &RemotingClient, addr: &str, header: &PopMessageRequestHeader) -> RemotingCommand {
    call(client, addr, java_request(request_code::POP_MESSAGE).with_header(header)).await
}

/// A popped message with the receipt handle a Java client builds for it.
struct Popped {
    message: MessageExt,
    handle: String,
    /// The topic an ack names (the pop retry topic for a redelivery).
    ack_topic: String,
}

/// The messages of a pop response with their handles, built as Java's client does: from the
/// message's `POP_CK` when the broker put one there, else from the header's start offsets.
fn popped(response: &RemotingCommand, group: &str) -> Vec<Popped> {
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    let header: PopMessageResponseHeader = response.decode_header().unwrap();
    let starts: std::collections::HashMap<String, i64> = header
        .start_offset_info
        .unwrap_or_default()
        .split(';')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let parts: Vec<&str> = entry.split(' ').collect();
            (format!("{}@{}", parts[0], parts[1]), parts[2].parse().unwrap())
        })
        .collect();
    messages(response)
        .into_iter()
        .map(|message| {
            let handle = match message.message.properties.get(property::POP_CK) {
                Some(handle) => handle.to_owned(),
                None => {
                    let start = starts[&format!("0@{}", message.queue_id)];
                    format!(
                        "{start} {} {} {} 0 {BROKER_NAME} {} {}",
                        header.pop_time,
                        header.invisible_time,
                        header.revive_qid,
                        message.queue_id,
                        message.queue_offset
                    )
                }
            };
            let retry_flag = handle.split(' ').nth(4).unwrap().to_owned();
            let ack_topic = if retry_flag == "1" { format!("%RETRY%{group}_T") } else { "T".to_owned() };
            Popped { message, handle, ack_topic }
        })
        .collect()
}

fn body_of(popped: &Popped) -> String {
    String::from_utf8(popped.message.message.body.to_vec()).unwrap()
}

/// The handle's queue offset (its last field).
fn handle_offset(handle: &str) -> i64 {
    handle.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn ack(client: &RemotingClient, addr: &str, group: &str, popped: &Popped) -> RemotingCommand {
    let header = AckMessageRequestHeader {
        consumer_group: group.into(),
        topic: popped.ack_topic.clone(),
        queue_id: popped.handle.split(' ').nth(6).unwrap().parse().unwrap(),
        extra_info: popped.handle.clone(),
        offset: handle_offset(&popped.handle),
        ..AckMessageRequestHeader::default()
    };
    call(client, addr, java_request(request_code::ACK_MESSAGE).with_header(&header)).await
}

/// Pops until nothing comes for `quiet`; fails after `limit`.
async fn drain(client: &RemotingClient, addr: &str, group: &str, invisible_ms: i64) -> Vec<Popped> {
    let mut all = Vec::new();
    loop {
        let response = pop(client, addr, &pop_header(group, -1, 32, invisible_ms, 0)).await;
        if response.code == response_code::POLLING_TIMEOUT {
            return all;
        }
        all.extend(popped(&response, group));
        assert!(all.len() < 1_000, "pops never end");
    }
}

async fn start_pop_broker(dir: &std::path::Path, queues: i32) -> (Broker, String, RemotingClient) {
    start_with_topic(dir, queues, quick).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop_answers_with_javas_header_and_the_stored_records() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 2).await;
    for body in ["a", "b", "c"] {
        put(&broker, "T", 1, Some("TagA"), body).await;
    }
    put(&broker, "T", 1, Some("TagB"), "d").await;

    let too_many = pop(&client, &addr, &pop_header("PG", 1, 33, 10_000, 0)).await;
    assert_eq!(too_many.code, response_code::INVALID_PARAMETER);
    assert_eq!(
        too_many.remark.as_deref(),
        Some("the broker[127.0.0.1] pop message's num is greater than 32")
    );
    let bad_queue = pop(&client, &addr, &pop_header("PG", 2, 1, 10_000, 0)).await;
    assert_eq!(bad_queue.code, response_code::INVALID_PARAMETER);
    let mut no_topic = pop_header("PG", 0, 1, 10_000, 0);
    no_topic.topic = "Nope".into();
    assert_eq!(pop(&client, &addr, &no_topic).await.code, response_code::TOPIC_NOT_EXIST);

    let before = apogee_common::time::now_ms();
    let mut tagged = pop_header("PG", 1, 32, 10_000, 0);
    tagged.exp_type = Some("TAG".into());
    tagged.exp = Some("TagA".into());
    let response = pop(&client, &addr, &tagged).await;
    let after = apogee_common::time::now_ms();
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    assert_eq!(response.remark.as_deref(), Some("FOUND"));
    let header: PopMessageResponseHeader = response.decode_header().unwrap();
    assert!(
        (before..=after).contains(&header.pop_time),
        "pop time {} outside [{before}, {after}]",
        header.pop_time
    );
    assert_eq!(header.invisible_time, 10_000);
    assert!((0..8).contains(&header.revive_qid), "revive queue {}", header.revive_qid);
    assert_eq!(header.start_offset_info.as_deref(), Some("0 1 0"));
    assert_eq!(header.msg_offset_info.as_deref(), Some("0 1 0,1,2"));
    assert_eq!(header.order_count_info, None);
    assert_eq!(header.rest_num, 0, "the TagB message does not pass the filter: nothing left behind");
    let got = popped(&response, "PG");
    assert_eq!(got.iter().map(body_of).collect::<Vec<_>>(), ["a", "b", "c"]);
    // The body is the stored records, as PULL sends them: no receipt handle inside.
    assert!(got.iter().all(|popped| popped.message.message.properties.get(property::POP_CK).is_none()));
    assert_eq!(got.iter().map(|popped| popped.message.queue_offset).collect::<Vec<_>>(), [0, 1, 2]);

    // The group's offset moved past what was handed out: the next pop of TagA finds nothing.
    let again = pop(&client, &addr, &tagged).await;
    assert_eq!(again.code, response_code::POLLING_TIMEOUT);
    assert_eq!(again.remark.as_deref(), Some("NO_MESSAGE_IN_QUEUE"));
    assert_eq!(broker.state().offsets.query("PG", "T", 1), Some(4));

    // Acks: an offset outside the queue is NO_MESSAGE; a good one SUCCESS.
    let mut outside = AckMessageRequestHeader {
        consumer_group: "PG".into(),
        topic: "T".into(),
        queue_id: 1,
        extra_info: got[0].handle.clone(),
        offset: 5,
        ..AckMessageRequestHeader::default()
    };
    let refused = call(&client, &addr, java_request(request_code::ACK_MESSAGE).with_header(&outside)).await;
    assert_eq!(refused.code, response_code::NO_MESSAGE);
    outside.offset = 0;
    outside.extra_info = "not a handle".into();
    let refused = call(&client, &addr, java_request(request_code::ACK_MESSAGE).with_header(&outside)).await;
    assert_eq!(refused.code, response_code::MESSAGE_ILLEGAL);
    for popped in &got {
        assert_eq!(ack(&client, &addr, "PG", popped).await.code, response_code::SUCCESS);
    }
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_come_back_once_with_one_more_reconsume_time() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    for body in ["keep", "lose"] {
        put(&broker, "T", 0, Some("TagA"), body).await;
    }
    let first = pop(&client, &addr, &pop_header("PG", -1, 32, 400, 0)).await;
    let first_pop_time = first.decode_header::<PopMessageResponseHeader>().unwrap().pop_time;
    let got = popped(&first, "PG");
    assert_eq!(got.iter().map(body_of).collect::<Vec<_>>(), ["keep", "lose"]);
    assert_eq!(ack(&client, &addr, "PG", &got[0]).await.code, response_code::SUCCESS);

    // Not before the invisible time: nothing.
    let early = pop(&client, &addr, &pop_header("PG", -1, 32, 400, 0)).await;
    assert_eq!(early.code, response_code::POLLING_TIMEOUT);

    // After it, with long polling: the un-acked one only, from the pop retry topic.
    let started = Instant::now();
    let back = pop(&client, &addr, &pop_header("PG", -1, 32, 400, 5_000)).await;
    let waited = started.elapsed();
    let back = popped(&back, "PG");
    assert_eq!(back.iter().map(body_of).collect::<Vec<_>>(), ["lose"]);
    assert!(waited < Duration::from_secs(3), "redelivery took {waited:?}");
    let retried = &back[0];
    assert_eq!(retried.message.message.topic, "T", "the retry topic is rewritten to the consumed one");
    assert_eq!(retried.message.reconsume_times, 1);
    assert_eq!(
        retried.message.message.properties.get(property::FIRST_POP_TIME),
        Some(first_pop_time.to_string().as_str())
    );
    assert_eq!(
        retried.message.message.properties.get(property::UNIQ_KEY),
        got[1].message.message.properties.get(property::UNIQ_KEY)
    );
    let fields: Vec<&str> = retried.handle.split(' ').collect();
    assert_eq!((fields.len(), fields[4], fields[5], fields[6], fields[7]), (8, "1", BROKER_NAME, "0", "0"));
    assert_eq!(ack(&client, &addr, "PG", retried).await.code, response_code::SUCCESS);

    // Both settled: nothing more ever comes (waiting well past another invisible time).
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(drain(&client, &addr, "PG", 400).await.is_empty());
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_invisible_time_postpones_redelivery_and_hands_out_a_new_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    put(&broker, "T", 0, None, "slow").await;
    let got = popped(&pop(&client, &addr, &pop_header("PG", 0, 1, 300, 0)).await, "PG");
    let old_revive_qid: i32 = got[0].handle.split(' ').nth(3).unwrap().parse().unwrap();
    let change = ChangeInvisibleTimeRequestHeader {
        consumer_group: "PG".into(),
        topic: "T".into(),
        queue_id: 0,
        extra_info: got[0].handle.clone(),
        offset: 0,
        invisible_time: 3_000,
        ..ChangeInvisibleTimeRequestHeader::default()
    };
    let before = apogee_common::time::now_ms();
    let response =
        call(&client, &addr, java_request(request_code::CHANGE_MESSAGE_INVISIBLETIME).with_header(&change))
            .await;
    assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
    let changed: ChangeInvisibleTimeResponseHeader = response.decode_header().unwrap();
    assert!(changed.pop_time >= before);
    assert_eq!((changed.invisible_time, changed.revive_qid), (3_000, old_revive_qid));

    // Past the first invisible time the message stays away.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(drain(&client, &addr, "PG", 300).await.is_empty());
    // Acked with the new handle (Java's client builds it from the answer: start = offset).
    let new_handle = Popped {
        message: got[0].message.clone(),
        handle: format!("0 {} 3000 {} 0 {BROKER_NAME} 0 0", changed.pop_time, changed.revive_qid),
        ack_topic: "T".into(),
    };
    assert_eq!(ack(&client, &addr, "PG", &new_handle).await.code, response_code::SUCCESS);
    let settle = Duration::from_millis(
        u64::try_from(changed.pop_time + 3_300 - apogee_common::time::now_ms()).unwrap_or(0),
    );
    tokio::time::sleep(settle).await;
    assert!(
        drain(&client, &addr, "PG", 300).await.is_empty(),
        "acked with the new handle: never redelivered"
    );
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_acks_settle_the_set_bits_only() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    for body in ["m0", "m1", "m2"] {
        put(&broker, "T", 0, None, body).await;
    }
    let response = pop(&client, &addr, &pop_header("PG", 0, 3, 500, 0)).await;
    let header: PopMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!(popped(&response, "PG").len(), 3);
    let mut bits = BitSet::default();
    bits.set(0);
    bits.set(2);
    let body = BatchAckMessageRequestBody {
        broker_name: BROKER_NAME.into(),
        acks: vec![BatchAck {
            bit_set: bits,
            consumer_group: "PG".into(),
            invisible_time: 500,
            pop_time: header.pop_time,
            queue_id: 0,
            retry: "0".into(),
            revive_queue_id: header.revive_qid,
            start_offset: 0,
            topic: "T".into(),
        }],
    };
    let request = java_request(request_code::BATCH_ACK_MESSAGE)
        .with_body(fastjson::to_vec(&body, Dialect::Fastjson).unwrap());
    assert_eq!(call(&client, &addr, request).await.code, response_code::SUCCESS);
    let empty = java_request(request_code::BATCH_ACK_MESSAGE).with_body(b"{\"acks\":[]}".to_vec());
    assert_eq!(call(&client, &addr, empty).await.code, response_code::NO_MESSAGE);

    let back = popped(&pop(&client, &addr, &pop_header("PG", -1, 32, 500, 5_000)).await, "PG");
    assert_eq!(back.iter().map(body_of).collect::<Vec<_>>(), ["m1"]);
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_pop_is_woken_by_an_arrival_and_counted_by_polling_info() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 2).await;
    let waiting = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let waiter = new_client();
            let started = Instant::now();
            (pop(&waiter, &addr, &pop_header("PG", -1, 32, 10_000, 10_000)).await, started.elapsed())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.state().pop.polling.parked() == 0 {
        assert!(Instant::now() < deadline, "the pop was never parked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info = PollingInfoRequestHeader {
        consumer_group: "PG".into(),
        topic: "T".into(),
        queue_id: 1,
        ..Default::default()
    };
    let response = call(&client, &addr, java_request(request_code::POLLING_INFO).with_header(&info)).await;
    assert_eq!(response.code, response_code::SUCCESS);
    assert_eq!(response.decode_header::<PollingInfoResponseHeader>().unwrap().polling_num, 1);

    assert!(!waiting.is_finished(), "answered before anything arrived");
    let arrived = Instant::now();
    put(&broker, "T", 1, None, "late").await;
    let (response, waited) = waiting.await.unwrap();
    let got = popped(&response, "PG");
    assert_eq!(got.iter().map(body_of).collect::<Vec<_>>(), ["late"]);
    assert!(arrived.elapsed() < Duration::from_secs(2), "woken {:?} after the arrival", arrived.elapsed());
    assert!(waited < Duration::from_secs(5), "held {waited:?}");

    // NOTIFICATION: nothing left now, and with a message there, at once.
    let notification = NotificationRequestHeader {
        consumer_group: "PG".into(),
        topic: "T".into(),
        queue_id: -1,
        poll_time: 0,
        born_time: apogee_common::time::now_ms(),
        ..Default::default()
    };
    let response =
        call(&client, &addr, java_request(request_code::NOTIFICATION).with_header(&notification)).await;
    assert_eq!(response.code, response_code::SUCCESS);
    assert!(!response.decode_header::<NotificationResponseHeader>().unwrap().has_msg);
    put(&broker, "T", 0, None, "more").await;
    let response =
        call(&client, &addr, java_request(request_code::NOTIFICATION).with_header(&notification)).await;
    assert!(response.decode_header::<NotificationResponseHeader>().unwrap().has_msg);
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_pops_block_the_queue_until_the_batch_is_acked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    for body in ["o0", "o1", "o2", "o3"] {
        put(&broker, "T", 0, None, body).await;
    }
    let orderly = |attempt: &str, max: i32| {
        let mut header = pop_header("OG", 0, max, 2_000, 0);
        header.order = Some(true);
        header.attempt_id = Some(attempt.into());
        header
    };
    let response = pop(&client, &addr, &orderly("a1", 3)).await;
    let header: PopMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!((header.revive_qid, header.order_count_info.as_deref()), (999, Some("0 0 0")));
    let batch = popped(&response, "OG");
    assert_eq!(batch.iter().map(body_of).collect::<Vec<_>>(), ["o0", "o1", "o2"]);

    // Another attempt waits: the queue is blocked.
    assert_eq!(pop(&client, &addr, &orderly("a2", 3)).await.code, response_code::POLLING_TIMEOUT);
    // The same attempt gets the same batch again.
    let again = pop(&client, &addr, &orderly("a1", 3)).await;
    assert_eq!(popped(&again, "OG").iter().map(body_of).collect::<Vec<_>>(), ["o0", "o1", "o2"]);
    let again_header: PopMessageResponseHeader = again.decode_header().unwrap();
    let batch = popped(&again, "OG");

    // Acks commit only past messages whose predecessors are acked.
    assert_eq!(ack(&client, &addr, "OG", &batch[1]).await.code, response_code::SUCCESS);
    assert_eq!(broker.state().offsets.query("OG", "T", 0), Some(0));
    assert_eq!(ack(&client, &addr, "OG", &batch[0]).await.code, response_code::SUCCESS);
    assert_eq!(broker.state().offsets.query("OG", "T", 0), Some(2));
    assert_eq!(
        pop(&client, &addr, &orderly("a3", 3)).await.code,
        response_code::POLLING_TIMEOUT,
        "o2 still in flight"
    );
    assert_eq!(ack(&client, &addr, "OG", &batch[2]).await.code, response_code::SUCCESS);
    assert_eq!(broker.state().offsets.query("OG", "T", 0), Some(3));
    let next = popped(&pop(&client, &addr, &orderly("a4", 3)).await, "OG");
    assert_eq!(next.iter().map(body_of).collect::<Vec<_>>(), ["o3"]);
    assert!(again_header.pop_time > 0);

    // Not acked within its invisible time: the same message comes again, counted.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let redelivered = pop(&client, &addr, &orderly("a5", 3)).await;
    let header: PopMessageResponseHeader = redelivered.decode_header().unwrap();
    assert_eq!(header.order_count_info.as_deref(), Some("0 qo0%3 1;0 0 1"));
    assert_eq!(popped(&redelivered, "OG").iter().map(body_of).collect::<Vec<_>>(), ["o3"]);
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_with_lagging_offsets_nothing_popped_is_popped_again() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    for body in ["r0", "r1", "r2"] {
        put(&broker, "T", 0, None, body).await;
    }
    // The consumer offsets as persisted before the pop: what a crash would leave.
    broker.state().offsets.persist().unwrap();
    let offsets_file = broker.state().config.config_dir().join("consumerOffset.json");
    // (No offset was committed yet, so there may be no file at all: that is the state.)
    let before_pop = std::fs::read(&offsets_file).ok();
    let got = popped(&pop(&client, &addr, &pop_header("PG", 0, 32, 1_500, 0)).await, "PG");
    assert_eq!(got.len(), 3);
    assert_eq!(ack(&client, &addr, "PG", &got[0]).await.code, response_code::SUCCESS);
    assert_eq!(ack(&client, &addr, "PG", &got[2]).await.code, response_code::SUCCESS);
    stop(client, broker).await;
    match before_pop {
        Some(bytes) => std::fs::write(&offsets_file, bytes).unwrap(),
        None => std::fs::remove_file(&offsets_file).unwrap(),
    }
    let _ = std::fs::remove_file(offsets_file.with_extension("json.bak"));

    let (broker, addr) = start(dir.path(), quick).await;
    let client = new_client();
    assert_eq!(broker.state().offsets.query("PG", "T", 0), Some(3), "raised past the stored check point");
    assert!(
        drain(&client, &addr, "PG", 1_500).await.is_empty(),
        "nothing popped is handed out again at once"
    );
    let back = popped(&pop(&client, &addr, &pop_header("PG", -1, 32, 1_500, 5_000)).await, "PG");
    assert_eq!(back.iter().map(body_of).collect::<Vec<_>>(), ["r1"], "only the un-acked one comes back");
    assert_eq!(back[0].message.reconsume_times, 1);
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_pops_filter_by_properties_and_a_full_parking_answers_polling_full() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 1, |config| {
        quick(config);
        config.set("enablePropertyFilter", "true").unwrap();
        config.set("maxPopPollingSize", "0").unwrap();
    })
    .await;
    for (index, region) in ["eu", "us", "eu"].iter().enumerate() {
        put_with(&broker, "T", 0, &[("region", region)], &format!("m{index}")).await;
    }
    let mut selected = pop_header("SG", 0, 32, 10_000, 0);
    selected.exp_type = Some("SQL92".into());
    selected.exp = Some("region = 'eu'".into());
    let got = popped(&pop(&client, &addr, &selected).await, "SG");
    assert_eq!(got.iter().map(body_of).collect::<Vec<_>>(), ["m0", "m2"]);
    selected.exp = Some("region = ".into());
    let refused = pop(&client, &addr, &selected).await;
    assert_eq!(refused.code, response_code::SUBSCRIPTION_PARSE_FAILED);

    // Nothing left, a poll time, and no room to park: POLLING_FULL at once.
    let started = Instant::now();
    let full = pop(&client, &addr, &pop_header("SG", 0, 32, 10_000, 5_000)).await;
    assert_eq!(full.code, response_code::POLLING_FULL);
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_check_point_cap_the_revive_service_still_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_with_topic(dir.path(), 1, |config| {
        quick(config);
        config.set("reviveQueueNum", "1").unwrap();
        config.set("popCkMaxBufferSize", "1").unwrap();
    })
    .await;
    for body in ["c0", "c1", "c2"] {
        put(&broker, "T", 0, None, body).await;
    }
    // Three pops, three check points in the one revive queue; the service holds one at a time.
    for expected in ["c0", "c1", "c2"] {
        let got = popped(&pop(&client, &addr, &pop_header("PG", 0, 1, 300, 0)).await, "PG");
        assert_eq!(got.iter().map(body_of).collect::<Vec<_>>(), [expected]);
    }
    let mut back = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while back.len() < 3 && Instant::now() < deadline {
        let response = pop(&client, &addr, &pop_header("PG", -1, 32, 10_000, 1_000)).await;
        if response.code == response_code::SUCCESS {
            back.extend(popped(&response, "PG").iter().map(body_of));
        }
    }
    back.sort();
    assert_eq!(back, ["c0", "c1", "c2"], "every un-acked message came back once");
    stop(client, broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_acks_survive_a_restart_whose_offsets_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr, client) = start_pop_broker(dir.path(), 1).await;
    for body in ["f0", "f1", "f2"] {
        put(&broker, "T", 0, None, body).await;
    }
    let offsets_file = broker.state().config.config_dir().join("consumerOffset.json");
    let orderly = |attempt: &str| {
        let mut header = pop_header("FG", 0, 2, 60_000, 0);
        header.order = Some(true);
        header.attempt_id = Some(attempt.into());
        header
    };
    // The group's offset is committed and on disk before the batch: what a crash would leave.
    let batch = popped(&pop(&client, &addr, &orderly("a1")).await, "FG");
    assert_eq!(batch.iter().map(body_of).collect::<Vec<_>>(), ["f0", "f1"]);
    broker.state().offsets.persist().unwrap();
    let before_acks = std::fs::read(&offsets_file).unwrap();
    for message in &batch {
        assert_eq!(ack(&client, &addr, "FG", message).await.code, response_code::SUCCESS);
    }
    assert_eq!(broker.state().offsets.query("FG", "T", 0), Some(2));
    stop(client, broker).await;
    std::fs::write(&offsets_file, before_acks).unwrap();
    let _ = std::fs::remove_file(offsets_file.with_extension("json.bak"));

    let (broker, addr) = start(dir.path(), quick).await;
    let client = new_client();
    assert_eq!(broker.state().offsets.query("FG", "T", 0), Some(2), "the acks' commit read back");
    let next = popped(&pop(&client, &addr, &orderly("a2")).await, "FG");
    assert_eq!(next.iter().map(body_of).collect::<Vec<_>>(), ["f2"], "nothing acked comes again");
    stop(client, broker).await;
}
