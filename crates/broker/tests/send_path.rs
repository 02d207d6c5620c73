//! The send path end to end: a real NameServer and broker on loopback, requests from a
//! remoting client, stored records read back from the store.

mod send_common;

use apogee_common::message::batch::{encode_batch, BatchItem};
use apogee_common::message::msg_id::decode_offset_msg_id;
use apogee_common::message::property;
use apogee_common::message::sysflag;
use apogee_remoting::body::route::TopicRouteData;
use apogee_remoting::client::ClientConfig;
use apogee_remoting::code::{request_code, response_code};
use apogee_remoting::fastjson;
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::header::send::{EndTransactionRequestHeader, SendMessageResponseHeader};
use apogee_remoting::{RemotingCommand, SerializeType};
use bytes::Bytes;
use send_common::*;

fn response_header(response: &RemotingCommand) -> SendMessageResponseHeader {
    response.decode_header().expect("send response header")
}

fn assert_region(response: &RemotingCommand) {
    assert_eq!(response.ext(property::MSG_REGION), Some("DefaultRegion"), "{response:?}");
    assert_eq!(response.ext(property::TRACE_ON), Some("true"), "{response:?}");
}

fn assert_refused(response: &RemotingCommand, code: i32, remark_part: &str) {
    assert_eq!(response.code, code, "{response:?}");
    let remark = response.remark.as_deref().unwrap_or("");
    assert!(remark.contains(remark_part), "remark {remark:?} lacks {remark_part:?}");
    assert_region(response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_sends_are_stored_intact_and_the_new_topic_is_routed() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "SendTopicA";
    let properties = props(&[
        ("TAGS", "TagA"),
        ("KEYS", "k1 k2"),
        ("UNIQ_KEY", "7F0000010001AAAABBBBCCCC00000001"),
        ("WAIT", "true"),
        ("color", "blue"),
    ]);

    let first = cluster.call_ok(send_v2(send_header(topic, 2, &properties), b"hello v2")).await;
    assert_region(&first);
    let first_header = response_header(&first);
    assert_eq!((first_header.queue_id, first_header.queue_offset), (2, 0));
    assert_eq!(first_header.transaction_id.as_deref(), Some("7F0000010001AAAABBBBCCCC00000001"));
    let (store_host, first_offset) = decode_offset_msg_id(&first_header.msg_id).expect("offset msg id");
    assert_eq!(store_host, cluster.broker().state().store_host);

    // V1 without a UNIQ_KEY: the broker makes one.
    let v1_properties = props(&[("TAGS", "TagB"), ("KEYS", "only"), ("size", "XL")]);
    let second = cluster.call_ok(send_v1(send_header(topic, 2, &v1_properties), b"hello v1")).await;
    assert_region(&second);
    let second_header = response_header(&second);
    assert_eq!((second_header.queue_id, second_header.queue_offset), (2, 1));
    let generated = second_header.transaction_id.clone().expect("generated UNIQ_KEY");
    assert_eq!(generated.len(), 32);
    let (_, second_offset) = decode_offset_msg_id(&second_header.msg_id).expect("offset msg id");
    assert!(second_offset > first_offset);

    let born_host = cluster.client_addr().await;
    let records = read_records(cluster.broker(), topic, 2, 0, 2).await;
    let stored = &records[0];
    assert_eq!(stored.message.topic, topic);
    assert_eq!(&stored.message.body[..], b"hello v2");
    assert_eq!(stored.message.flag, 7);
    assert_eq!(stored.queue_id, 2);
    assert_eq!(stored.queue_offset, 0);
    assert_eq!(stored.commit_log_offset, first_offset);
    assert_eq!(stored.born_timestamp, BORN_TIMESTAMP);
    assert_eq!(stored.born_host, born_host);
    assert_eq!(stored.store_host, store_host);
    assert_eq!(stored.message.tags(), Some("TagA"));
    assert_eq!(stored.message.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(stored.message.property("color"), Some("blue"));
    assert_eq!(stored.message.uniq_key(), Some("7F0000010001AAAABBBBCCCC00000001"));
    assert_eq!(stored.message.property(property::CLUSTER), Some(CLUSTER));
    assert_eq!(stored.offset_msg_id(), first_header.msg_id);
    let stored = &records[1];
    assert_eq!(&stored.message.body[..], b"hello v1");
    assert_eq!(stored.message.uniq_key(), Some(generated.as_str()));
    assert_eq!(stored.message.property("size"), Some("XL"));
    assert_eq!(stored.message.property(property::CLUSTER), Some(CLUSTER));

    // A negative queue id picks one of the 4 write queues.
    let picked = cluster.call_ok(send_v2(send_header(topic, -1, &props(&[])), b"any queue")).await;
    assert!((0..4).contains(&response_header(&picked).queue_id));

    // Auto-created from TBW102 with the producer's 4 queues, and routed by the NameServer.
    let created = cluster.broker().state().topics.get(topic).expect("topic created");
    assert_eq!((created.read_queue_nums, created.write_queue_nums, created.perm), (4, 4, 6));
    let route = eventually("the route of the new topic", || async {
        let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(
            &GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: None },
        );
        let response = cluster.call_namesrv(request).await;
        (response.code == response_code::SUCCESS)
            .then(|| fastjson::from_slice::<TopicRouteData>(&response.body).expect("route body"))
    })
    .await;
    assert_eq!(route.queue_datas.len(), 1);
    let queues = &route.queue_datas[0];
    assert_eq!(
        (queues.broker_name.as_str(), queues.read_queue_nums, queues.write_queue_nums),
        (BROKER_NAME, 4, 4)
    );
    assert_eq!(route.broker_datas[0].broker_addrs.get(&0), Some(&cluster.broker_addr()));

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_gets_consecutive_offsets_and_one_id_per_message() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "SendBatchTopic";
    // A first single message so the batch does not start at offset 0.
    cluster.call_ok(send_v2(send_header(topic, 1, &props(&[])), b"before")).await;

    let items: Vec<BatchItem> = (0..10)
        .map(|index| BatchItem {
            flag: index,
            body: Bytes::from(format!("batch body {index}")),
            properties: if index == 3 {
                props(&[("TAGS", "T3")])
            } else {
                props(&[("UNIQ_KEY", &format!("7F00000100019999AAAABBBB{index:08X}")), ("KEYS", "bk")])
            },
        })
        .collect();
    let header = send_header(topic, 1, &props(&[("WAIT", "true")]));
    let response = cluster.call_ok(send_batch(header, encode_batch(&items))).await;
    assert_region(&response);
    let header = response_header(&response);
    assert_eq!((header.queue_id, header.queue_offset), (1, 1));
    let ids: Vec<&str> = header.msg_id.split(',').collect();
    assert_eq!(ids.len(), 10);

    let records = read_records(cluster.broker(), topic, 1, 1, 10).await;
    for (index, (stored, id)) in records.iter().zip(&ids).enumerate() {
        assert_eq!(stored.queue_offset, 1 + index as i64);
        assert_eq!(stored.offset_msg_id(), *id);
        assert_eq!(stored.message.flag, index as i32);
        assert_eq!(&stored.message.body[..], format!("batch body {index}").as_bytes());
        assert_eq!(stored.message.property(property::CLUSTER), Some(CLUSTER));
        assert_eq!(stored.born_timestamp, BORN_TIMESTAMP);
        if index == 3 {
            assert_eq!(stored.message.tags(), Some("T3"));
            assert_eq!(stored.message.uniq_key().map(str::len), Some(32));
        } else {
            assert_eq!(
                stored.message.uniq_key(),
                Some(format!("7F00000100019999AAAABBBB{index:08X}").as_str())
            );
            assert_eq!(stored.message.property("KEYS"), Some("bk"));
        }
    }

    // Batches to retry topics, with delays, or with a broken body are refused.
    let retry = send_batch(send_header("%RETRY%some_group", 0, &props(&[])), encode_batch(&items[..1]));
    assert_refused(&cluster.call(retry).await, response_code::MESSAGE_ILLEGAL, "retry");
    let delayed = vec![BatchItem { properties: props(&[("DELAY", "3")]), ..items[0].clone() }];
    let delayed = send_batch(send_header(topic, 1, &props(&[])), encode_batch(&delayed));
    assert_refused(&cluster.call(delayed).await, response_code::MESSAGE_ILLEGAL, "delay");
    let mut broken = encode_batch(&items[..2]);
    broken.truncate(broken.len() - 3);
    let broken = send_batch(send_header(topic, 1, &props(&[])), broken);
    assert_refused(&cluster.call(broken).await, response_code::MESSAGE_ILLEGAL, "batch");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_java_codes_and_remarks() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "SendRefusals";
    cluster.call_ok(send_v2(send_header(topic, 0, &props(&[])), b"x")).await;

    let too_big = vec![b'b'; MAX_MESSAGE_SIZE as usize + 1];
    let response = cluster.call(send_v2(send_header(topic, 0, &props(&[])), &too_big)).await;
    assert_refused(&response, response_code::MESSAGE_ILLEGAL, "body");

    let huge_property = "v".repeat(40_000);
    let response =
        cluster.call(send_v2(send_header(topic, 0, &props(&[("big", huge_property.as_str())])), b"x")).await;
    assert_refused(&response, response_code::MESSAGE_ILLEGAL, "properties");

    let response = cluster.call(send_v2(send_header("bad topic!", 0, &props(&[])), b"x")).await;
    assert_refused(&response, response_code::INVALID_PARAMETER, "illegal characters");
    let long_name = "t".repeat(200);
    let response = cluster.call(send_v2(send_header(&long_name, 0, &props(&[])), b"x")).await;
    assert_refused(&response, response_code::INVALID_PARAMETER, "longer");

    let response = cluster.call(send_v2(send_header(topic, 4, &props(&[])), b"x")).await;
    assert_refused(&response, response_code::INVALID_PARAMETER, "queueId[4] is illegal");

    for forbidden in ["SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC", "SELF_TEST_TOPIC"] {
        let response = cluster.call(send_v2(send_header(forbidden, 0, &props(&[])), b"x")).await;
        assert_refused(&response, response_code::NO_PERMISSION, "forbidden");
    }

    // A topic without the write bit.
    let state = cluster.broker().state();
    state
        .topics
        .create_or_update(apogee_common::TopicConfig::with_queues("ReadOnlyTopic", 2, 2, 4))
        .expect("topic created");
    let response = cluster.call(send_v2(send_header("ReadOnlyTopic", 0, &props(&[])), b"x")).await;
    assert_refused(&response, response_code::NO_PERMISSION, "forbidden");

    // A compacted topic needs keys.
    let mut compacted = apogee_common::TopicConfig::with_queues("CompactedTopic", 1, 1, 6);
    compacted.attributes.insert("cleanup.policy".into(), "COMPACTION".into());
    state.topics.create_or_update(compacted).expect("topic created");
    let response = cluster.call(send_v2(send_header("CompactedTopic", 0, &props(&[])), b"x")).await;
    assert_refused(&response, response_code::MESSAGE_ILLEGAL, "Required message key is missing");
    cluster.call_ok(send_v2(send_header("CompactedTopic", 0, &props(&[("KEYS", "k")])), b"x")).await;

    // Missing header fields: SYSTEM_ERROR naming the field, still with the region fields.
    let mut bare = RemotingCommand::request(request_code::SEND_MESSAGE_V2).with_body(b"x".to_vec());
    bare.ext_fields_mut().insert("b", topic);
    assert_refused(&cluster.call(bare).await, response_code::SYSTEM_ERROR, "is null");

    // Nothing of the refused sends was stored.
    let stored = state.store.max_offset(topic, 0);
    assert_eq!(stored, 1);

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_refused_without_auto_creation_and_transactions_when_rejected() {
    let cluster = TestCluster::start(|config| {
        config.auto_create_topic_enable = false;
        config.reject_transaction_message = true;
    })
    .await;
    let response = cluster.call(send_v2(send_header("NeverCreated", 0, &props(&[])), b"x")).await;
    assert_refused(
        &response,
        response_code::TOPIC_NOT_EXIST,
        "topic[NeverCreated] not exist, apply first please!",
    );
    assert!(cluster.broker().state().topics.get("NeverCreated").is_none());

    let state = cluster.broker().state();
    state
        .topics
        .create_or_update(apogee_common::TopicConfig::with_queues("TxTopic", 4, 4, 6))
        .expect("created");
    let half = props(&[("TRAN_MSG", "true"), ("PGROUP", "PG_TEST")]);
    let mut header = send_header("TxTopic", 0, &half);
    header.sys_flag = sysflag::TRANSACTION_PREPARED_TYPE;
    let response = cluster.call(send_v2(header, b"x")).await;
    assert_refused(&response, response_code::NO_PERMISSION, "transaction");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_are_parked_in_the_schedule_topic() {
    let cluster = TestCluster::start(|_| {}).await;
    let topic = "SendDelayTopic";

    let delayed = props(&[("DELAY", "2"), ("TAGS", "late"), ("TIMER_DELAY_SEC", "30")]);
    let response = cluster.call_ok(send_v2(send_header(topic, 3, &delayed), b"later")).await;
    let header = response_header(&response);
    assert_eq!(header.queue_id, 3);
    let records = read_records(cluster.broker(), "SCHEDULE_TOPIC_XXXX", 1, header.queue_offset, 1).await;
    let stored = &records[0];
    assert_eq!(stored.message.topic, "SCHEDULE_TOPIC_XXXX");
    assert_eq!(stored.queue_id, 1);
    assert_eq!(stored.message.property(property::REAL_TOPIC), Some(topic));
    assert_eq!(stored.message.property(property::REAL_QID), Some("3"));
    assert_eq!(stored.message.property(property::DELAY), Some("2"));
    assert_eq!(stored.message.property(property::TIMER_DELAY_SEC), None);
    assert_eq!(stored.message.tags(), Some("late"));
    assert_eq!(stored.offset_msg_id(), header.msg_id);
    assert_eq!(cluster.broker().state().store.max_offset(topic, 3), 0);

    // Levels past the table are clamped to the last one.
    let response = cluster.call_ok(send_v2(send_header(topic, 0, &props(&[("DELAY", "99")])), b"max")).await;
    let offset = response_header(&response).queue_offset;
    let records = read_records(cluster.broker(), "SCHEDULE_TOPIC_XXXX", 17, offset, 1).await;
    assert_eq!(records[0].message.property(property::DELAY), Some("18"));

    cluster.shutdown().await;
}

/// An END_TRANSACTION for the half a send answered with `header`.
fn end_transaction(
    header: &SendMessageResponseHeader,
    group: &str,
    commit_or_rollback: i32,
) -> RemotingCommand {
    let (_, commit_log_offset) = decode_offset_msg_id(&header.msg_id).expect("offset msg id");
    let end = EndTransactionRequestHeader {
        producer_group: group.to_owned(),
        tran_state_table_offset: header.queue_offset,
        commit_log_offset,
        commit_or_rollback,
        from_transaction_check: Some(false),
        msg_id: header.transaction_id.as_deref().unwrap_or_default().to_owned(),
        transaction_id: header.transaction_id.as_deref().map(str::to_owned),
        ..EndTransactionRequestHeader::default()
    };
    RemotingCommand::request(request_code::END_TRANSACTION).with_header(&end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_messages_wait_in_the_half_topic_until_committed_or_rolled_back() {
    let cluster = TestCluster::start(|_| {}).await;
    let state = cluster.broker().state();
    let topic = "SendHalfTopic";

    // Flagged by the property (with the sysflag, as producers send it), by the property alone
    // and by the sysflag alone: each is parked in the half topic, nothing in the real topic.
    let flagged = props(&[("TRAN_MSG", "true"), ("PGROUP", "PG_TEST"), ("TAGS", "tx"), ("KEYS", "order-1")]);
    let cases = [
        (&flagged, sysflag::TRANSACTION_PREPARED_TYPE),
        (&flagged, 0),
        (&props(&[("PGROUP", "PG_TEST")]), sysflag::TRANSACTION_PREPARED_TYPE),
    ];
    let mut halves = Vec::new();
    for (index, (properties, sys_flag)) in cases.into_iter().enumerate() {
        let mut header = send_header(topic, 2, properties);
        header.sys_flag = sys_flag;
        let response = cluster.call_ok(send_v2(header, format!("half-{index}").as_bytes())).await;
        let answered = response_header(&response);
        assert_eq!(answered.queue_id, 2, "the answer names the producer's queue");
        assert_eq!(answered.queue_offset, index as i64, "the half queue offset");
        let records =
            read_records(cluster.broker(), "RMQ_SYS_TRANS_HALF_TOPIC", 0, answered.queue_offset, 1).await;
        let half = &records[0];
        assert_eq!(half.message.property(property::REAL_TOPIC), Some(topic));
        assert_eq!(half.message.property(property::REAL_QID), Some("2"));
        let uniq_key = half.message.property(property::UNIQ_KEY).expect("UNIQ_KEY");
        assert_eq!(half.message.property(property::TRANSACTION_ID), Some(uniq_key));
        assert_eq!(answered.transaction_id.as_deref(), Some(uniq_key));
        assert_eq!(sysflag::transaction_type(half.sys_flag), sysflag::TRANSACTION_NOT_TYPE);
        halves.push(answered);
    }
    assert_eq!(state.store.max_offset(topic, 2), 0, "nothing in the real topic before a commit");

    // A mismatched group or offset is refused as Java refuses it, and changes nothing.
    let response =
        cluster.call(end_transaction(&halves[0], "PG_OTHER", sysflag::TRANSACTION_COMMIT_TYPE)).await;
    assert_eq!(
        (response.code, response.remark.as_deref()),
        (response_code::SYSTEM_ERROR, Some("The producer group wrong"))
    );
    let mut moved = halves[0].clone();
    moved.queue_offset += 1;
    let response = cluster.call(end_transaction(&moved, "PG_TEST", sysflag::TRANSACTION_COMMIT_TYPE)).await;
    assert_eq!(
        (response.code, response.remark.as_deref()),
        (response_code::SYSTEM_ERROR, Some("The transaction state table offset wrong"))
    );
    assert_eq!(state.store.max_offset("RMQ_SYS_TRANS_OP_HALF_TOPIC", 0), 0, "no op record for a refused end");

    // Commit delivers the first, intact; rollback drops the second.
    cluster.call_ok(end_transaction(&halves[0], "PG_TEST", sysflag::TRANSACTION_COMMIT_TYPE)).await;
    cluster.call_ok(end_transaction(&halves[1], "PG_TEST", sysflag::TRANSACTION_ROLLBACK_TYPE)).await;
    assert_eq!(state.store.max_offset(topic, 2), 1, "exactly the committed message is delivered");
    let records = read_records(cluster.broker(), topic, 2, 0, 1).await;
    let real = &records[0];
    assert_eq!(&real.message.body[..], b"half-0");
    assert_eq!(real.message.tags(), Some("tx"));
    assert_eq!(real.message.property(property::KEYS), Some("order-1"));
    assert_eq!(real.message.property(property::REAL_TOPIC), None);
    assert_eq!(real.message.property(property::TRAN_MSG), None);
    assert_eq!(real.message.property(property::UNIQ_KEY), halves[0].transaction_id.as_deref());
    assert_eq!(sysflag::transaction_type(real.sys_flag), sysflag::TRANSACTION_COMMIT_TYPE);
    let (_, half_offset) = decode_offset_msg_id(&halves[0].msg_id).expect("offset msg id");
    assert_eq!(real.prepared_transaction_offset, half_offset);

    // One op record per decision, each naming its half's queue offset.
    let ops = read_records(cluster.broker(), "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0, 0, 2).await;
    let bodies: Vec<&[u8]> = ops.iter().map(|op| &op.message.body[..]).collect();
    assert_eq!(bodies, [&b"0,"[..], &b"1,"[..]]);
    assert!(ops.iter().all(|op| op.message.tags() == Some("d")));

    // A reconsumed message with a delay level still carrying the flag (clients before 4.6.1
    // send retries so) is no half message: it goes to the delay topic.
    let mut header = send_header(topic, 2, &props(&[("TRAN_MSG", "true"), ("DELAY", "3")]));
    header.reconsume_times = Some(1);
    let response = cluster.call_ok(send_v2(header, b"retry")).await;
    let records =
        read_records(cluster.broker(), "SCHEDULE_TOPIC_XXXX", 2, response_header(&response).queue_offset, 1)
            .await;
    assert_eq!(&records[0].message.body[..], b"retry");
    assert_eq!(records[0].message.property(property::REAL_TOPIC), Some(topic));

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_header_serialization_works_too() {
    let client_config = ClientConfig { serialize_type: SerializeType::RocketMq, ..ClientConfig::default() };
    let cluster = TestCluster::start_with(client_config, |_| {}).await;
    let properties = props(&[("TAGS", "Bin"), ("KEYS", "binary key")]);
    let response = cluster.call_ok(send_v1(send_header("SendBinaryTopic", 1, &properties), b"binary")).await;
    assert_eq!(response.serialize_type, SerializeType::RocketMq);
    assert_region(&response);
    let header = response_header(&response);
    let records = read_records(cluster.broker(), "SendBinaryTopic", 1, header.queue_offset, 1).await;
    assert_eq!(records[0].message.tags(), Some("Bin"));
    assert_eq!(&records[0].message.body[..], b"binary");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_survive_a_broker_restart() {
    let mut cluster = TestCluster::start(|_| {}).await;
    let topic = "SendRestartTopic";
    cluster.call_ok(send_v2(send_header(topic, 1, &props(&[])), b"one")).await;
    let version = cluster.broker().state().topics.data_version();

    cluster.stop_broker().await;
    cluster.restart_broker().await;
    let state = cluster.broker().state();
    let topic_config = state.topics.get(topic).expect("topic reloaded");
    assert_eq!((topic_config.read_queue_nums, topic_config.write_queue_nums), (4, 4));
    assert_eq!(state.topics.data_version(), version);
    assert!(state.topics.get("SCHEDULE_TOPIC_XXXX").is_some());

    let response = cluster.call_ok(send_v2(send_header(topic, 1, &props(&[])), b"two")).await;
    assert_eq!(response_header(&response).queue_offset, 1);
    cluster.shutdown().await;
}

/// Retries past their limit go to the group's dead-letter topic, created on first use with
/// one writable queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_sends_past_the_limit_land_in_the_dead_letter_queue() {
    let cluster = TestCluster::start(|_| {}).await;
    let retry_topic = "%RETRY%send_dlq_group";
    let mut header = send_header(retry_topic, 0, &props(&[("UNIQ_KEY", "7F000001000100000000000000000077")]));
    header.reconsume_times = Some(3);
    header.max_reconsume_times = Some(2);
    let response = cluster.call_ok(send_v2(header, b"dead")).await;
    let offset = response_header(&response).queue_offset;
    let records = read_records(cluster.broker(), "%DLQ%send_dlq_group", 0, offset, 1).await;
    assert_eq!(records[0].message.uniq_key(), Some("7F000001000100000000000000000077"));
    assert_eq!(records[0].reconsume_times, 3);
    assert_eq!(records[0].message.property(property::DELAY), Some("-1"));
    let dlq = cluster.broker().state().topics.get("%DLQ%send_dlq_group").expect("DLQ created");
    assert_eq!((dlq.write_queue_nums, dlq.perm), (1, 6));

    // Within the limit, the message stays in the retry topic.
    let mut header = send_header(retry_topic, 0, &props(&[]));
    header.reconsume_times = Some(1);
    header.max_reconsume_times = Some(2);
    let response = cluster.call_ok(send_v2(header, b"alive")).await;
    let offset = response_header(&response).queue_offset;
    let records = read_records(cluster.broker(), retry_topic, 0, offset, 1).await;
    assert_eq!(records[0].message.topic, retry_topic);
    cluster.shutdown().await;
}
