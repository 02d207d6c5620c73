//! Delay levels and CONSUMER_SEND_MSG_BACK: a delayed message waits in SCHEDULE_TOPIC_XXXX and
//! reaches its real topic on time, with the progress in delayOffset.json; a handed-back message
//! goes through the schedule topic into the group's retry topic, or into its dead-letter topic
//! once its retries are used up.

mod admin_support;

use std::time::{Duration, Instant};

use admin_support::{assert_code_and_remark, inner, TestBroker, POLL_EVERY};
use apogee_broker::schedule;
use apogee_common::message::msg_id::offset_msg_id;
use apogee_common::message::MessageExt;
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::ConsumerSendMsgBackRequestHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};

const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Longest wait for a delivery the test expects.
const DELIVERY_LIMIT: Duration = Duration::from_secs(5);

fn send_back(
    offset: i64,
    group: &str,
    delay_level: i32,
    max_reconsume_times: Option<i32>,
) -> RemotingCommand {
    let header = ConsumerSendMsgBackRequestHeader {
        offset,
        group: group.to_owned(),
        delay_level,
        origin_msg_id: None,
        origin_topic: Some("Orders".to_owned()),
        unit_mode: Some(false),
        max_reconsume_times,
        bname: None,
    };
    RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK).with_header(&header)
}

fn property<'a>(message: &'a MessageExt, key: &str) -> Option<&'a str> {
    message.message.properties.get(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_one_message_is_delivered_after_a_second() {
    let broker = TestBroker::start().await;
    let state = broker.broker().state();
    let uniq = "7F0000010000000000000000000000D1";
    let mut message = inner("Delayed", 2, "later", &[("UNIQ_KEY", uniq), ("TAGS", "TagA")]);
    schedule::redirect_to_schedule_topic(&mut message, 1, state.schedule.max_level());
    let scheduled = broker.store_inner(&message).await;
    assert_eq!(broker.read_queue(SCHEDULE_TOPIC, 0).len(), 1);

    let delivered = broker.wait_for_messages("Delayed", 2, 1, DELIVERY_LIMIT).await;
    assert_eq!(delivered.len(), 1, "delivered to the real topic and queue");
    let waited = delivered[0].store_timestamp - scheduled.store_timestamp;
    assert!((1_000..3_000).contains(&waited), "delivered after {waited} ms");
    let copy = &delivered[0];
    assert_eq!(&copy.message.body[..], b"later");
    assert_eq!(copy.message.uniq_key(), Some(uniq));
    assert_eq!(copy.message.tags(), Some("TagA"));
    assert_eq!(property(copy, "DELAY"), None);
    assert_eq!(property(copy, "REAL_TOPIC"), Some("Delayed"));
    assert_eq!(copy.reconsume_times, 0);

    // The progress reaches delayOffset.json (persisted every 200 ms in these tests).
    let path = broker.store_dir().join("config").join(schedule::DELAY_OFFSET_FILE);
    let deadline = Instant::now() + DELIVERY_LIMIT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(r#""offsetTable":{1:1}"#) {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert!(text.contains(r#""offsetTable":{1:1}"#), "{text}");
    assert_eq!(state.schedule.offset(1), Some(1));

    // Nothing is delivered twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(broker.read_queue("Delayed", 2).len(), 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_back_messages_retry_then_dead_letter() {
    // Level 3 (the first retry) waits one second here, so the default path is quick to test.
    let broker =
        TestBroker::start_with(|config| config.store.message_delay_level = "1s 1s 1s 2s".into()).await;
    let uniq = "7F0000010000000000000000000000B2";
    let original = broker.store("Orders", 0, "pay", &[("UNIQ_KEY", uniq), ("KEYS", "o-1")]).await;
    let original_offset = original.commit_log_offset as i64;

    let response = broker.call_ok(send_back(original_offset, "GID_orders", 0, Some(16))).await;
    assert!(response.ext_fields.clone().unwrap_or_default().is_empty());

    // Waiting in the schedule topic, level 3 = queue 2, bound for the retry topic.
    let waiting = broker.read_queue(SCHEDULE_TOPIC, 2);
    assert_eq!(waiting.len(), 1);
    assert_eq!(property(&waiting[0], "REAL_TOPIC"), Some("%RETRY%GID_orders"));
    assert_eq!(property(&waiting[0], "REAL_QID"), Some("0"));
    assert_eq!(property(&waiting[0], "DELAY"), Some("3"));
    assert!(broker.broker().state().topics.get("%RETRY%GID_orders").is_some());

    let retried = broker.wait_for_messages("%RETRY%GID_orders", 0, 1, DELIVERY_LIMIT).await;
    assert_eq!(retried.len(), 1, "delivered to the retry topic");
    let retry = &retried[0];
    assert_eq!(retry.reconsume_times, 1);
    assert_eq!(property(retry, "RETRY_TOPIC"), Some("Orders"));
    assert_eq!(
        property(retry, "ORIGIN_MESSAGE_ID"),
        Some(offset_msg_id(broker.store_host(), original_offset).as_str())
    );
    assert_eq!(retry.message.uniq_key(), Some(uniq));
    assert_eq!(property(retry, "DELAY"), None);
    assert_eq!(&retry.message.body[..], b"pay");

    // The retry fails too, and the group allows one reconsume only: dead letter.
    broker.call_ok(send_back(retry.commit_log_offset, "GID_orders", 0, Some(1))).await;
    let dead = broker.read_queue("%DLQ%GID_orders", 0);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reconsume_times, 2);
    assert_eq!(property(&dead[0], "RETRY_TOPIC"), Some("Orders"));
    assert_eq!(dead[0].message.uniq_key(), Some(uniq));
    let dlq = broker.broker().state().topics.get("%DLQ%GID_orders").expect("DLQ topic created");
    assert_eq!((dlq.read_queue_nums, dlq.write_queue_nums), (1, 1));

    // A negative level goes straight to the dead-letter topic.
    broker.call_ok(send_back(original_offset, "GID_orders", -1, Some(16))).await;
    assert_eq!(broker.read_queue("%DLQ%GID_orders", 0).len(), 2);

    // An offset with no message behind it.
    let response = broker.call(send_back(1 << 40, "GID_orders", 0, None)).await;
    assert_code_and_remark(
        &response,
        response_code::SYSTEM_ERROR,
        &format!("look message by offset failed, {}", 1_i64 << 40),
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_back_respects_the_group() {
    let broker = TestBroker::start_with(|config| config.auto_create_subscription_group = false).await;
    let original = broker.store("Orders", 0, "pay", &[]).await;
    let offset = original.commit_log_offset as i64;

    let response = broker.call(send_back(offset, "GID_unknown", 0, None)).await;
    assert_eq!(response.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);

    // A group with no retry queues drops what is handed back.
    let mut group = SubscriptionGroupConfig::new("GID_noretry");
    group.retry_queue_nums = 0;
    let body = fastjson::to_vec(&group, Dialect::Fastjson).unwrap();
    let create = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body);
    assert_eq!(broker.call(create).await.code, response_code::SUCCESS);
    broker.call_ok(send_back(offset, "GID_noretry", 0, None)).await;
    assert!(broker.read_queue(SCHEDULE_TOPIC, 2).is_empty());
    assert!(broker.broker().state().topics.get("%RETRY%GID_noretry").is_none());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_a_restart_without_repeats() {
    let levels = |config: &mut apogee_broker::BrokerConfig| config.store.message_delay_level = "1s 2s".into();
    let broker = TestBroker::start_with(levels).await;
    let max_level = broker.broker().state().schedule.max_level();
    let mut first = inner("Resume", 0, "first", &[]);
    schedule::redirect_to_schedule_topic(&mut first, 1, max_level);
    broker.store_inner(&first).await;
    assert_eq!(broker.wait_for_messages("Resume", 0, 1, DELIVERY_LIMIT).await.len(), 1);

    let mut second = inner("Resume", 0, "second", &[]);
    schedule::redirect_to_schedule_topic(&mut second, 2, max_level);
    broker.store_inner(&second).await;
    // Stop before the second is due; shutdown persists the progress.
    let broker = broker.restart(levels).await;
    assert_eq!(broker.broker().state().schedule.offset(1), Some(1));

    let delivered = broker.wait_for_messages("Resume", 0, 2, DELIVERY_LIMIT).await;
    let bodies: Vec<&[u8]> = delivered.iter().map(|message| &message.message.body[..]).collect();
    assert_eq!(bodies, [&b"first"[..], &b"second"[..]]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(broker.read_queue("Resume", 0).len(), 2, "nothing delivered twice");
    broker.stop().await;
}
