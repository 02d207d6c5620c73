//! Offset and message lookups over the wire (max/min/earliest/search offsets, view by offset
//! id, query by key and unique key) and a group's consume statistics.

mod admin_support;

use std::time::Duration;

use admin_support::{assert_code_and_remark, inner, TestBroker};
use apogee_common::message::msg_id::{decode_offset_msg_id, offset_msg_id};
use apogee_common::message::record;
use apogee_common::MessageQueue;
use apogee_remoting::body::admin::ConsumeStats;
use apogee_remoting::fastjson;
use apogee_remoting::header::admin::{CreateTopicRequestHeader, GetConsumeStatsRequestHeader};
use apogee_remoting::header::consumer::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader, GetMaxOffsetRequestHeader,
    GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader, GetMinOffsetResponseHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, SearchOffsetRequestHeader,
    SearchOffsetResponseHeader, ViewMessageRequestHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};

async fn max_offset(broker: &TestBroker, topic: &str, queue_id: i32) -> i64 {
    let header =
        GetMaxOffsetRequestHeader { topic: topic.into(), queue_id, committed: Some(true), bname: None };
    let response =
        broker.call_ok(RemotingCommand::request(request_code::GET_MAX_OFFSET).with_header(&header)).await;
    response.decode_header::<GetMaxOffsetResponseHeader>().unwrap().offset
}

async fn search(broker: &TestBroker, topic: &str, timestamp: i64, boundary: Option<&str>) -> i64 {
    let header = SearchOffsetRequestHeader {
        topic: topic.into(),
        queue_id: 0,
        timestamp,
        boundary_type: boundary.map(str::to_owned),
        bname: None,
    };
    let request = RemotingCommand::request(request_code::SEARCH_OFFSET_BY_TIMESTAMP).with_header(&header);
    let response = broker.call_ok(request).await;
    response.decode_header::<SearchOffsetResponseHeader>().unwrap().offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_offsets_and_times() {
    let broker = TestBroker::start().await;
    assert_eq!(max_offset(&broker, "Offsets", 0).await, 0);
    let mut placements = Vec::new();
    for index in 0..4 {
        placements.push(broker.store("Offsets", 0, &format!("m{index}"), &[]).await);
        // Distinct store times, so searches have something to tell apart.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(max_offset(&broker, "Offsets", 0).await, 4);

    let header = GetMinOffsetRequestHeader { topic: "Offsets".into(), queue_id: 0, bname: None };
    let response =
        broker.call(RemotingCommand::request(request_code::GET_MIN_OFFSET).with_header(&header)).await;
    assert_eq!(response.decode_header::<GetMinOffsetResponseHeader>().unwrap().offset, 0);

    let header = GetEarliestMsgStoretimeRequestHeader { topic: "Offsets".into(), queue_id: 0, bname: None };
    let request = RemotingCommand::request(request_code::GET_EARLIEST_MSG_STORETIME).with_header(&header);
    let response = broker.call(request).await;
    let earliest = response.decode_header::<GetEarliestMsgStoretimeResponseHeader>().unwrap().timestamp;
    assert_eq!(earliest, placements[0].store_timestamp);
    let header = GetEarliestMsgStoretimeRequestHeader { topic: "Empty".into(), queue_id: 0, bname: None };
    let request = RemotingCommand::request(request_code::GET_EARLIEST_MSG_STORETIME).with_header(&header);
    let response = broker.call(request).await;
    assert_eq!(response.decode_header::<GetEarliestMsgStoretimeResponseHeader>().unwrap().timestamp, -1);

    let third = placements[2].store_timestamp;
    assert_eq!(search(&broker, "Offsets", third, None).await, 2);
    assert_eq!(search(&broker, "Offsets", third, Some("upper")).await, 2);
    assert_eq!(search(&broker, "Offsets", third - 1, Some("LOWER")).await, 2);
    assert_eq!(search(&broker, "Offsets", third - 1, Some("UPPER")).await, 1);
    assert_eq!(search(&broker, "Offsets", 0, None).await, 0);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_by_offset_id_and_query_by_key() {
    let broker = TestBroker::start().await;
    let uniq = "7F0000010000000000000000000000AA";
    let placed = broker.store("Lookup", 0, "hello", &[("KEYS", "order-1 order-2"), ("UNIQ_KEY", uniq)]).await;
    let last = broker.store("Lookup", 0, "other", &[("KEYS", "order-3")]).await;

    // What queryMsgById does: decode the offset id, ask the broker it names for the offset.
    let id = offset_msg_id(broker.store_host(), placed.commit_log_offset as i64);
    let (host, offset) = decode_offset_msg_id(&id).unwrap();
    assert_eq!(host.to_string(), broker.addr);
    let view = RemotingCommand::request(request_code::VIEW_MESSAGE_BY_ID)
        .with_header(&ViewMessageRequestHeader { topic: Some("Lookup".into()), offset });
    let response = broker.call_ok(view).await;
    let messages = record::decode_all(&response.body).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(&messages[0].message.body[..], b"hello");
    assert_eq!(messages[0].message.uniq_key(), Some(uniq));

    let missing = 1 << 40;
    let view = RemotingCommand::request(request_code::VIEW_MESSAGE_BY_ID)
        .with_header(&ViewMessageRequestHeader { topic: None, offset: missing });
    let response = broker.call(view).await;
    assert_code_and_remark(
        &response,
        response_code::SYSTEM_ERROR,
        &format!("can not find message by the offset, {missing}"),
    );

    let query = |key: &str, unique: bool| {
        let header = QueryMessageRequestHeader {
            topic: "Lookup".into(),
            key: key.into(),
            max_num: 32,
            begin_timestamp: 0,
            end_timestamp: i64::MAX,
            bname: None,
        };
        let request = RemotingCommand::request(request_code::QUERY_MESSAGE).with_header(&header);
        if unique {
            request.with_ext("_UNIQUE_KEY_QUERY", "true")
        } else {
            request.with_ext("_UNIQUE_KEY_QUERY", "false")
        }
    };
    let response = broker.call_ok(query("order-2", false)).await;
    let found = record::decode_all(&response.body).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(&found[0].message.body[..], b"hello");
    let freshness: QueryMessageResponseHeader = response.decode_header().unwrap();
    // The index has seen up to the last stored record: its start is the newest indexed offset.
    assert_eq!(freshness.index_last_update_phyoffset, last.commit_log_offset as i64);

    let response = broker.call_ok(query(uniq, true)).await;
    assert_eq!(record::decode_all(&response.body).unwrap()[0].message.uniq_key(), Some(uniq));

    let response = broker.call(query("no-such-key", false)).await;
    assert_code_and_remark(
        &response,
        response_code::QUERY_NOT_FOUND,
        "can not find message, maybe time range not correct",
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_stats_after_a_committed_offset() {
    let broker = TestBroker::start().await;
    let create = CreateTopicRequestHeader {
        topic: "Progress".into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 2,
        write_queue_nums: 2,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        order: false,
        ..Default::default()
    };
    let response = broker
        .call(RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC).with_header(&create))
        .await;
    assert_eq!(response.code, response_code::SUCCESS);
    let mut placements = Vec::new();
    for index in 0..3 {
        placements.push(broker.store("Progress", 0, &format!("m{index}"), &[]).await);
    }
    let state = broker.broker().state();
    state.offsets.commit("GID_progress", "Progress", 0, 2);
    state.offsets.record_pull_offset("GID_progress", "Progress", 0, 3);

    for request_header in [
        GetConsumeStatsRequestHeader {
            consumer_group: "GID_progress".into(),
            topic: Some("Progress".into()),
            ..Default::default()
        },
        GetConsumeStatsRequestHeader { consumer_group: "GID_progress".into(), ..Default::default() },
        GetConsumeStatsRequestHeader {
            consumer_group: "GID_progress".into(),
            topic_list: Some("Progress;".into()),
            ..Default::default()
        },
    ] {
        let request = RemotingCommand::request(request_code::GET_CONSUME_STATS).with_header(&request_header);
        let response = broker.call_ok(request).await;
        let text = String::from_utf8(response.body.to_vec()).unwrap();
        assert!(
            text.starts_with(r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-test""#),
            "{text}"
        );
        let stats: ConsumeStats = fastjson::from_slice(&response.body).unwrap();
        assert_eq!(stats.offset_table.len(), 2, "one entry per read queue");
        let queue0 = stats.offset_table[&MessageQueue::new("Progress", "broker-test", 0)];
        assert_eq!(queue0.broker_offset, 3);
        assert_eq!(queue0.consumer_offset, 2);
        assert_eq!(queue0.pull_offset, 3);
        assert_eq!(queue0.last_timestamp, placements[1].store_timestamp);
        let queue1 = stats.offset_table[&MessageQueue::new("Progress", "broker-test", 1)];
        assert_eq!((queue1.broker_offset, queue1.consumer_offset, queue1.last_timestamp), (0, 0, 0));
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_info_reports_only_what_the_broker_measures() {
    let broker = TestBroker::start().await;
    let response = broker.call_ok(RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO)).await;
    let info: apogee_remoting::body::namesrv::KVTable = fastjson::from_slice(&response.body).unwrap();
    assert_eq!(
        info.table.get("brokerActive").map(String::as_str),
        Some("true"),
        "a serving broker is active"
    );
    // No send-acceptance setting: nothing to report, rather than a made-up value.
    assert!(!info.table.contains_key("startAcceptSendRequestTimeStamp"));
    // The timer store's figures, measured: an idle wheel first.
    let figure = |info: &apogee_remoting::body::namesrv::KVTable, key: &str| {
        info.table.get(key).cloned().unwrap_or_else(|| panic!("{key} not reported"))
    };
    assert_eq!(figure(&info, "timerOffsetBehind"), "0");
    assert_eq!(figure(&info, "timerCongestNum"), "0");
    assert_eq!(figure(&info, "timerEnqueueTps"), "0.0");
    assert_eq!(figure(&info, "timerDequeueTps"), "0.0");
    let read_behind: i64 = figure(&info, "timerReadBehind").parse().unwrap();
    assert!((0..=1).contains(&read_behind), "an idle wheel reads the slot that last ended: {read_behind}");
    // One timer parked a minute ahead: one pending, none left to enqueue.
    let out_ms = (apogee_common::time::now_ms() / 1_000 + 60) * 1_000;
    let out = out_ms.to_string();
    let parked = inner(
        "rmq_sys_wheel_timer",
        0,
        "later",
        &[("TIMER_OUT_MS", out.as_str()), ("REAL_TOPIC", "Later"), ("REAL_QID", "0")],
    );
    broker.store_inner(&parked).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = broker.call(RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO)).await;
        let info: apogee_remoting::body::namesrv::KVTable = fastjson::from_slice(&response.body).unwrap();
        if figure(&info, "timerCongestNum") == "1" {
            assert_eq!(figure(&info, "timerOffsetBehind"), "0");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the parked timer never counted: {:?}", info.table);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.stop().await;
}
