use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;

use apogee_common::{DataVersion, MessageQueue, TopicConfig, TopicFilterType};
use flate2::write::ZlibEncoder;
use flate2::Compression;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::namesrv::parse_topic_config_text;
use super::*;
use crate::fastjson::{self, Dialect};
use crate::language::LanguageCode;

fn text<T: Serialize>(value: &T, dialect: Dialect) -> String {
    String::from_utf8(fastjson::to_vec(value, dialect).unwrap()).unwrap()
}

fn one_broker_route() -> TopicRouteData {
    TopicRouteData {
        broker_datas: vec![BrokerData {
            broker_addrs: [(0, "10.0.0.1:10911".to_owned())].into(),
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            enable_acting_master: false,
            zone_name: None,
        }],
        queue_datas: vec![QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            topic_sys_flag: 0,
            write_queue_nums: 4,
        }],
        ..TopicRouteData::default()
    }
}

#[test]
fn route_in_standard_dialect_matches_the_spec_example() {
    let expected = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
    assert_eq!(text(&one_broker_route(), Dialect::Standard), expected);
    assert_eq!(fastjson::from_slice::<TopicRouteData>(expected.as_bytes()).unwrap(), one_broker_route());
}

#[test]
fn route_in_fastjson_dialect_has_bare_broker_ids() {
    let mut route = one_broker_route();
    route.order_topic_conf = Some("broker-a:4".into());
    route.broker_datas[0].broker_addrs.insert(1, "10.0.0.2:10911".into());
    let expected = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
    assert_eq!(text(&route, Dialect::Fastjson), expected);
    assert_eq!(fastjson::from_slice::<TopicRouteData>(expected.as_bytes()).unwrap(), route);
}

#[test]
fn route_with_static_topic_mapping() {
    let mut route = one_broker_route();
    let info = TopicQueueMappingInfo {
        bname: Some("broker-a".into()),
        curr_id_map: [(0, 0), (1, 3)].into(),
        epoch: 7,
        topic: Some("T".into()),
        total_queues: 2,
        ..TopicQueueMappingInfo::default()
    };
    route.topic_queue_mapping_by_broker = Some([("broker-a".to_owned(), info)].into());
    let written = text(&route, Dialect::Fastjson);
    assert!(written.contains(r#""topicQueueMappingByBroker":{"broker-a":{"bname":"broker-a","currIdMap":{0:0,1:3},"dirty":false,"epoch":7,"scope":"__global__","topic":"T","totalQueues":2}}"#), "{written}");
    assert_eq!(fastjson::from_slice::<TopicRouteData>(written.as_bytes()).unwrap(), route);
}

#[test]
fn cluster_info_uses_bare_numeric_keys() {
    let route = one_broker_route();
    let info = ClusterInfo {
        broker_addr_table: [("broker-a".to_owned(), route.broker_datas[0].clone())].into(),
        cluster_addr_table: [("DefaultCluster".to_owned(), ["broker-a".to_owned()].into())].into(),
    };
    let expected = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;
    assert_eq!(text(&info, Dialect::Fastjson), expected);
    assert_eq!(fastjson::from_slice::<ClusterInfo>(expected.as_bytes()).unwrap(), info);
}

#[test]
fn consume_stats_matches_the_spec_example() {
    let stats = ConsumeStats {
        consume_tps: 0.0,
        offset_table: [(
            MessageQueue::new("T", "broker-a", 0),
            OffsetWrapper {
                broker_offset: 10,
                consumer_offset: 8,
                last_timestamp: 1_700_000_000_000,
                pull_offset: 10,
            },
        )]
        .into(),
    };
    let expected = r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":10,"consumerOffset":8,"lastTimestamp":1700000000000,"pullOffset":10}}}"#;
    assert_eq!(text(&stats, Dialect::Fastjson), expected);
    assert_eq!(fastjson::from_slice::<ConsumeStats>(expected.as_bytes()).unwrap(), stats);
}

#[test]
fn topic_stats_and_reset_offsets_use_object_keys() {
    let stats = TopicStatsTable {
        offset_table: [(
            MessageQueue::new("T", "broker-a", 1),
            TopicOffset { last_update_timestamp: 5, max_offset: 9, min_offset: 0 },
        )]
        .into(),
        topic_put_tps: 12.5,
    };
    assert_eq!(
        text(&stats, Dialect::Fastjson),
        r#"{"offsetTable":{{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"lastUpdateTimestamp":5,"maxOffset":9,"minOffset":0}},"topicPutTps":12.5}"#
    );
    let reset = ResetOffsetBody { offset_table: [(MessageQueue::new("T", "b", 2), 42)].into() };
    assert_eq!(
        text(&reset, Dialect::Fastjson),
        r#"{"offsetTable":{{"brokerName":"b","queueId":2,"topic":"T"}:42}}"#
    );
}

fn sample_register_body() -> RegisterBrokerBody {
    let mut body = RegisterBrokerBody::default();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    wrapper.data_version = DataVersion { counter: 3, state_version: 0, timestamp: 1_700_000_000_000 };
    wrapper.topic_config_table.insert("TopicTest".into(), TopicConfig::with_queues("TopicTest", 4, 4, 6));
    body
}

#[test]
fn register_broker_body_json_is_byte_exact() {
    let expected = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":0},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;
    let body = sample_register_body();
    assert_eq!(String::from_utf8(body.encode(false, 479).unwrap()).unwrap(), expected);
    assert_eq!(RegisterBrokerBody::decode(expected.as_bytes(), false, 479).unwrap(), body);
}

#[test]
fn register_broker_body_of_ancient_brokers_is_the_bare_wrapper() {
    let body = sample_register_body();
    let bytes = body.encode(false, 36).unwrap();
    assert!(bytes.starts_with(br#"{"dataVersion":{"counter":3,"#));
    assert!(!bytes.windows(16).any(|window| window == b"filterServerList"));
    assert_eq!(RegisterBrokerBody::decode(&bytes, false, 36).unwrap(), body);
    assert_eq!(RegisterBrokerBody::decode(b"", true, 479).unwrap(), RegisterBrokerBody::default());
}

/// Builds a compressed body by hand, following the layout of spec §3.2.
fn hand_built_stream(with_mappings: bool) -> Vec<u8> {
    let mut plain = Vec::new();
    let mut block = |bytes: &[u8]| {
        plain.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        plain.extend_from_slice(bytes);
    };
    block(br#"{"counter":3,"stateVersion":1,"timestamp":1700000000000}"#);
    let mut sections = Vec::new();
    sections.extend_from_slice(&2i32.to_be_bytes());
    plain.extend_from_slice(&sections);
    let mut block = |bytes: &[u8]| {
        plain.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        plain.extend_from_slice(bytes);
    };
    block(br#"TopicA 8 8 6 SINGLE_TAG {"+message.type":"FIFO"}"#);
    // Java writes a trailing separator when attributes are null.
    block(b"TopicB 4 2 2 MULTI_TAG ");
    block(br#"["10.0.0.9:30000"]"#);
    if with_mappings {
        plain.extend_from_slice(&1i32.to_be_bytes());
        let info = br#"{"bname":"broker-a","currIdMap":{0:0,1:1},"dirty":false,"epoch":2,"scope":"__global__","topic":"TopicA","totalQueues":2}"#;
        plain.extend_from_slice(&(info.len() as i32).to_be_bytes());
        plain.extend_from_slice(info);
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&plain).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn decodes_a_hand_built_compressed_register_body() {
    let body = RegisterBrokerBody::decode(&hand_built_stream(true), true, 479).unwrap();
    let wrapper = &body.topic_config_serialize_wrapper;
    assert_eq!(
        wrapper.data_version,
        DataVersion { counter: 3, state_version: 1, timestamp: 1_700_000_000_000 }
    );
    let topic_a = &wrapper.topic_config_table["TopicA"];
    assert_eq!((topic_a.read_queue_nums, topic_a.write_queue_nums, topic_a.perm), (8, 8, 6));
    assert_eq!(topic_a.attributes.get("+message.type").map(String::as_str), Some("FIFO"));
    let topic_b = &wrapper.topic_config_table["TopicB"];
    assert_eq!((topic_b.read_queue_nums, topic_b.write_queue_nums, topic_b.perm), (4, 2, 2));
    assert_eq!(topic_b.topic_filter_type, TopicFilterType::MultiTag);
    assert!(topic_b.attributes.is_empty());
    assert_eq!(body.filter_server_list, ["10.0.0.9:30000"]);
    let mapping = &wrapper.topic_queue_mapping_info_map["TopicA"];
    assert_eq!(mapping.curr_id_map, [(0, 0), (1, 1)].into());
    assert_eq!(mapping.epoch, 2);

    // A 4.x namesrv (or a 4.x broker's version) does not read the mapping section.
    let old = RegisterBrokerBody::decode(&hand_built_stream(true), true, 409).unwrap();
    assert!(old.topic_config_serialize_wrapper.topic_queue_mapping_info_map.is_empty());
    assert_eq!(old.topic_config_serialize_wrapper.topic_config_table.len(), 2);
    // A stream without the section is accepted at any version.
    let without = RegisterBrokerBody::decode(&hand_built_stream(false), true, 479).unwrap();
    assert!(without.topic_config_serialize_wrapper.topic_queue_mapping_info_map.is_empty());
}

#[test]
fn compressed_register_body_round_trips() {
    let mut body = sample_register_body();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    let mut ordered = TopicConfig::with_queues("Ordered", 2, 2, 6);
    ordered.attributes.insert("+queue.type".into(), "BatchCQ".into());
    wrapper.topic_config_table.insert("Ordered".into(), ordered);
    wrapper.topic_queue_mapping_info_map.insert(
        "Ordered".into(),
        TopicQueueMappingInfo {
            topic: Some("Ordered".into()),
            total_queues: 2,
            ..TopicQueueMappingInfo::default()
        },
    );
    body.filter_server_list = vec!["10.0.0.9:30000".into()];
    let bytes = body.encode(true, 479).unwrap();
    assert_eq!(bytes.first(), Some(&0x78), "a zlib header");
    assert_eq!(RegisterBrokerBody::decode(&bytes, true, 479).unwrap(), body);

    let old_bytes = body.encode(true, 409).unwrap();
    let mut expected_old = body.clone();
    expected_old.topic_config_serialize_wrapper.topic_queue_mapping_info_map.clear();
    assert_eq!(RegisterBrokerBody::decode(&old_bytes, true, 409).unwrap(), expected_old);
}

#[test]
fn compressed_register_body_loses_what_java_loses() {
    let mut body = RegisterBrokerBody::default();
    let mut config = TopicConfig::with_queues("T", 1, 1, 6);
    config.order = true;
    config.topic_sys_flag = 1;
    body.topic_config_serialize_wrapper.topic_config_table.insert("T".into(), config);
    let decoded = RegisterBrokerBody::decode(&body.encode(true, 479).unwrap(), true, 479).unwrap();
    let read = &decoded.topic_config_serialize_wrapper.topic_config_table["T"];
    assert!(!read.order);
    assert_eq!(read.topic_sys_flag, 0);
}

#[test]
fn bad_compressed_register_bodies_fail_cleanly() {
    let good = hand_built_stream(true);
    let error = RegisterBrokerBody::decode(&good[..good.len() / 2], true, 479).unwrap_err();
    assert!(error.to_string().starts_with("compressed RegisterBrokerBody"), "{error}");
    let error = RegisterBrokerBody::decode(b"not zlib at all", true, 479).unwrap_err();
    assert!(error.to_string().contains("not a valid zlib stream"), "{error}");

    let compress = |plain: &[u8]| {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(plain).unwrap();
        encoder.finish().unwrap()
    };
    let negative = compress(&(-1i32).to_be_bytes());
    let error = RegisterBrokerBody::decode(&negative, true, 479).unwrap_err();
    assert!(error.to_string().contains("negative length"), "{error}");
    // A huge declared length with little data must not allocate it.
    let mut huge = i32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let error = RegisterBrokerBody::decode(&compress(&huge), true, 479).unwrap_err();
    assert!(error.to_string().contains("ends inside the data version"), "{error}");
}

#[test]
fn topic_config_text_follows_java_split() {
    let config = parse_topic_config_text("T 1 2 6 SINGLE_TAG").unwrap();
    assert_eq!((config.read_queue_nums, config.write_queue_nums, config.perm), (1, 2, 6));
    // An attribute with a space cuts the JSON short; Java then ignores the attributes.
    let spaced = parse_topic_config_text(r#"T 1 2 6 SINGLE_TAG {"a":"b c"}"#).unwrap();
    assert!(spaced.attributes.is_empty());
    assert!(parse_topic_config_text("T 1 2 6").is_err());
    assert!(parse_topic_config_text("T x 2 6 SINGLE_TAG").is_err());
    assert!(parse_topic_config_text("T 1 2 6 NO_SUCH_TYPE").is_err());
}

#[test]
fn heartbeat_is_written_like_java() {
    let heartbeat = HeartbeatData {
        client_id: "10.0.0.5@123".into(),
        consumer_data_set: vec![ConsumerData {
            consume_from_where: Some(ConsumeFromWhere::ConsumeFromLastOffset),
            consume_type: Some(ConsumeType::ConsumePassively),
            group_name: "g".into(),
            message_model: Some(MessageModel::Clustering),
            subscription_data_set: vec![SubscriptionData {
                sub_string: "*".into(),
                sub_version: 1_700_000_000_000,
                topic: "T".into(),
                ..SubscriptionData::default()
            }],
            unit_mode: false,
        }],
        heartbeat_fingerprint: 0,
        producer_data_set: vec![ProducerData { group_name: "CLIENT_INNER_PRODUCER".into() }],
        without_sub: false,
    };
    let expected = r#"{"clientID":"10.0.0.5@123","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"T"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;
    assert_eq!(text(&heartbeat, Dialect::Fastjson), expected);
    assert_eq!(fastjson::from_slice::<HeartbeatData>(expected.as_bytes()).unwrap(), heartbeat);
}

#[test]
fn heartbeat_from_other_clients_is_read_leniently() {
    // Ordinals, an unknown constant, numbers as strings, nulls, extra members, no fingerprint.
    let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"g","consumeType":1,"messageModel":"SOMETHING_NEW","consumeFromWhere":null,"subscriptionDataSet":[{"topic":"T","subString":"a || b","tagsSet":["a","b"],"codeSet":["97",98],"subVersion":"17","expressionType":null,"filterClassSource":"x","extra":{}}],"unitMode":"false"}],"producerDataSet":null,"isWithoutSub":true,"language":"GO"}"#;
    let heartbeat: HeartbeatData = fastjson::from_slice(body).unwrap();
    let consumer = &heartbeat.consumer_data_set[0];
    assert_eq!(consumer.consume_type, Some(ConsumeType::ConsumePassively));
    assert_eq!(consumer.message_model, None);
    assert_eq!(consumer.consume_from_where, None);
    let subscription = &consumer.subscription_data_set[0];
    assert_eq!(subscription.code_set, [97, 98].into());
    assert_eq!(subscription.sub_version, 17);
    assert_eq!(subscription.expression_type, ExpressionType::Tag);
    assert_eq!(subscription.filter_class_source.as_deref(), Some("x"));
    assert!(heartbeat.producer_data_set.is_empty());
    assert!(heartbeat.without_sub);
    assert!(!text(&heartbeat, Dialect::Fastjson).contains("filterClassSource"));
}

#[test]
fn unknown_expression_types_are_kept() {
    let data: SubscriptionData =
        fastjson::from_slice(br#"{"expressionType":"sql92","subString":"a > 1"}"#).unwrap();
    assert_eq!(data.expression_type, ExpressionType::Other("sql92".into()));
    assert!(text(&data, Dialect::Fastjson).contains(r#""expressionType":"sql92""#));
    let sql: SubscriptionData = fastjson::from_slice(br#"{"expressionType":"SQL92"}"#).unwrap();
    assert_eq!(sql.expression_type, ExpressionType::Sql92);
    let empty: SubscriptionData = fastjson::from_slice(br#"{"expressionType":""}"#).unwrap();
    assert_eq!(empty.expression_type, ExpressionType::Tag);
}

#[test]
fn lock_bodies_and_check_client_body() {
    let request = LockBatchRequestBody {
        client_id: "c".into(),
        consumer_group: "g".into(),
        mq_set: [MessageQueue::new("T", "b", 1), MessageQueue::new("T", "b", 0)].into(),
        only_this_broker: true,
    };
    assert_eq!(
        text(&request, Dialect::Fastjson),
        r#"{"clientId":"c","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":0,"topic":"T"},{"brokerName":"b","queueId":1,"topic":"T"}],"onlyThisBroker":true}"#
    );
    let response = LockBatchResponseBody { lock_ok_mq_set: request.mq_set.clone() };
    assert!(text(&response, Dialect::Fastjson).starts_with(r#"{"lockOKMQSet":[{"brokerName""#));
    let check: CheckClientRequestBody = fastjson::from_slice(
        br#"{"clientId":"c","group":"g","subscriptionData":{"topic":"T","subString":"a > 1","expressionType":"SQL92"}}"#,
    )
    .unwrap();
    assert_eq!(check.subscription_data.unwrap().expression_type, ExpressionType::Sql92);
    assert_eq!(check.namespace, None);
}

#[test]
fn connections_carry_language_names() {
    let connection = Connection {
        client_addr: "10.0.0.5:50000".into(),
        client_id: "c".into(),
        language: Some(LanguageCode::Go),
        version: 317,
    };
    assert_eq!(
        text(&connection, Dialect::Fastjson),
        r#"{"clientAddr":"10.0.0.5:50000","clientId":"c","language":"GO","version":317}"#
    );
    let unknown: Connection = fastjson::from_slice(br#"{"language":"COBOL"}"#).unwrap();
    assert_eq!(unknown.language, Some(LanguageCode::Other));
    let by_code: Connection = fastjson::from_slice(br#"{"language":12}"#).unwrap();
    assert_eq!(by_code.language, Some(LanguageCode::Rust));
}

#[test]
fn subscription_group_config_has_java_defaults() {
    let config: SubscriptionGroupConfig =
        fastjson::from_slice(br#"{"groupName":"g","retryMaxTimes":"3"}"#).unwrap();
    assert_eq!(config, SubscriptionGroupConfig { retry_max_times: 3, ..SubscriptionGroupConfig::new("g") });
    assert_eq!(
        text(&SubscriptionGroupConfig::new("g"), Dialect::Fastjson),
        r#"{"attributes":{},"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,"consumeFromMinEnable":true,"consumeMessageOrderly":false,"consumeTimeoutMinute":15,"groupName":"g","groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,"notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}"#
    );
    let odd: SubscriptionGroupConfig = fastjson::from_slice(
        br#"{"groupRetryPolicy":{"type":"LINEAR","exponentialRetryPolicy":{"initial":"1000"}}}"#,
    )
    .unwrap();
    assert_eq!(odd.group_retry_policy.policy_type, GroupRetryPolicyType::Customized);
    assert_eq!(
        odd.group_retry_policy.exponential_retry_policy,
        Some(ExponentialRetryPolicy { initial: 1000, ..ExponentialRetryPolicy::default() })
    );
}

#[test]
fn small_bodies_are_written_like_java() {
    let topics = TopicList { broker_addr: None, topic_list: ["T1".to_owned(), "T2".to_owned()].into() };
    assert_eq!(text(&topics, Dialect::Fastjson), r#"{"topicList":["T1","T2"]}"#);
    let table = KVTable { table: [("brokerVersionDesc".to_owned(), "V5_3_3".to_owned())].into() };
    assert_eq!(text(&table, Dialect::Fastjson), r#"{"table":{"brokerVersionDesc":"V5_3_3"}}"#);
    let groups = GroupList { group_list: ["g".to_owned()].into() };
    assert_eq!(text(&groups, Dialect::Fastjson), r#"{"groupList":["g"]}"#);
    let consumers = GetConsumerListByGroupResponseBody { consumer_id_list: vec!["a".into(), "b".into()] };
    assert_eq!(text(&consumers, Dialect::Fastjson), r#"{"consumerIdList":["a","b"]}"#);
}

// ---- property tests: every body survives encode → decode in both dialects ----

fn check_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for dialect in [Dialect::Fastjson, Dialect::Standard] {
        let bytes =
            fastjson::to_vec(value, dialect).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let decoded: T = fastjson::from_slice(&bytes).map_err(|error| {
            TestCaseError::fail(format!("{error} in {}", String::from_utf8_lossy(&bytes)))
        })?;
        prop_assert_eq!(&decoded, value, "{:?} {}", dialect, String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

/// Any text, control characters and characters beyond the BMP included.
fn any_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter)
}

/// Text without spaces, for the space-separated compressed topic config.
fn spaceless_text() -> impl Strategy<Value = String> {
    any_text().prop_map(|text| text.replace(' ', "_"))
}

fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_map(|value| if value.is_finite() { value } else { 0.0 })
}

fn small_vec<T: Strategy>(element: T) -> impl Strategy<Value = Vec<T::Value>> {
    proptest::collection::vec(element, 0..3)
}

fn small_map<K: Strategy, V: Strategy>(
    key: K,
    value: V,
) -> impl Strategy<Value = BTreeMap<K::Value, V::Value>>
where
    K::Value: Ord,
{
    proptest::collection::btree_map(key, value, 0..3)
}

fn small_set<T: Strategy>(element: T) -> impl Strategy<Value = std::collections::BTreeSet<T::Value>>
where
    T::Value: Ord,
{
    proptest::collection::btree_set(element, 0..3)
}

/// A strategy for a struct that draws each field from its own strategy, naming each field once
/// (instead of once in a tuple pattern and again in the struct literal). The strategies are
/// nested in pairs, so a struct may have more fields than proptest has tuple sizes.
macro_rules! strategy_of {
    ($struct:ident { $($field:ident: $strategy:expr),+ $(,)? }) => {
        strategy_of!(@nest $($strategy),+).prop_map(|strategy_of!(@bind $($field),+)| $struct { $($field),+ })
    };
    (@nest $last:expr) => { $last };
    (@nest $first:expr, $($rest:expr),+) => { ($first, strategy_of!(@nest $($rest),+)) };
    (@bind $last:ident) => { $last };
    (@bind $first:ident, $($rest:ident),+) => { ($first, strategy_of!(@bind $($rest),+)) };
}

fn any_queue() -> impl Strategy<Value = MessageQueue> {
    (any_text(), any_text(), any::<i32>())
        .prop_map(|(topic, broker, id)| MessageQueue::new(topic, broker, id))
}

fn any_data_version() -> impl Strategy<Value = DataVersion> {
    strategy_of!(DataVersion { counter: any::<i64>(), state_version: any::<i64>(), timestamp: any::<i64>() })
}

fn any_topic_config(name: impl Strategy<Value = String>) -> impl Strategy<Value = TopicConfig> {
    let filter_type = prop_oneof![Just(TopicFilterType::SingleTag), Just(TopicFilterType::MultiTag)];
    strategy_of!(TopicConfig {
        attributes: small_map(any_text(), any_text()),
        order: any::<bool>(),
        perm: any::<i32>(),
        read_queue_nums: any::<i32>(),
        topic_filter_type: filter_type,
        topic_name: name,
        topic_sys_flag: any::<i32>(),
        write_queue_nums: any::<i32>(),
    })
}

fn any_mapping_info() -> impl Strategy<Value = TopicQueueMappingInfo> {
    strategy_of!(TopicQueueMappingInfo {
        bname: proptest::option::of(any_text()),
        curr_id_map: small_map(any::<i32>(), any::<i32>()),
        dirty: any::<bool>(),
        epoch: any::<i64>(),
        scope: any_text(),
        topic: proptest::option::of(any_text()),
        total_queues: any::<i32>(),
    })
}

fn any_mapping_item() -> impl Strategy<Value = LogicQueueMappingItem> {
    strategy_of!(LogicQueueMappingItem {
        bname: proptest::option::of(any_text()),
        end_offset: any::<i64>(),
        gen: any::<i32>(),
        logic_offset: any::<i64>(),
        queue_id: any::<i32>(),
        start_offset: any::<i64>(),
        time_of_end: any::<i64>(),
        time_of_start: any::<i64>(),
    })
}

fn any_mapping_detail() -> impl Strategy<Value = TopicQueueMappingDetail> {
    strategy_of!(TopicQueueMappingDetail {
        bname: proptest::option::of(any_text()),
        curr_id_map: small_map(any::<i32>(), any::<i32>()),
        dirty: any::<bool>(),
        epoch: any::<i64>(),
        hosted_queues: small_map(any::<i32>(), small_vec(any_mapping_item())),
        scope: any_text(),
        topic: proptest::option::of(any_text()),
        total_queues: any::<i32>(),
    })
}

fn any_broker_data() -> impl Strategy<Value = BrokerData> {
    strategy_of!(BrokerData {
        broker_addrs: small_map(any::<i64>(), any_text()),
        broker_name: any_text(),
        cluster: any_text(),
        enable_acting_master: any::<bool>(),
        zone_name: proptest::option::of(any_text()),
    })
}

fn any_queue_data() -> impl Strategy<Value = QueueData> {
    strategy_of!(QueueData {
        broker_name: any_text(),
        perm: any::<i32>(),
        read_queue_nums: any::<i32>(),
        topic_sys_flag: any::<i32>(),
        write_queue_nums: any::<i32>(),
    })
}

fn any_route() -> impl Strategy<Value = TopicRouteData> {
    strategy_of!(TopicRouteData {
        broker_datas: small_vec(any_broker_data()),
        filter_server_table: small_map(any_text(), small_vec(any_text())),
        order_topic_conf: proptest::option::of(any_text()),
        queue_datas: small_vec(any_queue_data()),
        topic_queue_mapping_by_broker: proptest::option::of(small_map(any_text(), any_mapping_info())),
    })
}

fn any_expression_type() -> impl Strategy<Value = ExpressionType> {
    prop_oneof![
        Just(ExpressionType::Tag),
        Just(ExpressionType::Sql92),
        any_text().prop_filter_map("a name of its own", |name| {
            matches!(ExpressionType::from_name(&name), ExpressionType::Other(_))
                .then_some(ExpressionType::Other(name))
        }),
    ]
}

fn any_subscription() -> impl Strategy<Value = SubscriptionData> {
    strategy_of!(SubscriptionData {
        class_filter_mode: any::<bool>(),
        code_set: small_set(any::<i32>()),
        expression_type: any_expression_type(),
        filter_class_source: Just(None),
        sub_string: any_text(),
        sub_version: any::<i64>(),
        tags_set: small_set(any_text()),
        topic: any_text(),
    })
}

fn any_consumer_data() -> impl Strategy<Value = ConsumerData> {
    strategy_of!(ConsumerData {
        consume_from_where: proptest::option::of(proptest::sample::select(ConsumeFromWhere::ALL)),
        consume_type: proptest::option::of(proptest::sample::select(ConsumeType::ALL)),
        group_name: any_text(),
        message_model: proptest::option::of(proptest::sample::select(MessageModel::ALL)),
        subscription_data_set: small_vec(any_subscription()),
        unit_mode: any::<bool>(),
    })
}

fn any_heartbeat() -> impl Strategy<Value = HeartbeatData> {
    strategy_of!(HeartbeatData {
        client_id: any_text(),
        consumer_data_set: small_vec(any_consumer_data()),
        heartbeat_fingerprint: any::<i32>(),
        producer_data_set: small_vec(any_text().prop_map(|group_name| ProducerData { group_name })),
        without_sub: any::<bool>(),
    })
}

fn any_connection() -> impl Strategy<Value = Connection> {
    strategy_of!(Connection {
        client_addr: any_text(),
        client_id: any_text(),
        language: proptest::option::of((0u8..14).prop_map(LanguageCode::from_code)),
        version: any::<i32>(),
    })
}

fn any_offset_wrapper() -> impl Strategy<Value = OffsetWrapper> {
    strategy_of!(OffsetWrapper {
        broker_offset: any::<i64>(),
        consumer_offset: any::<i64>(),
        last_timestamp: any::<i64>(),
        pull_offset: any::<i64>(),
    })
}

fn any_topic_offset() -> impl Strategy<Value = TopicOffset> {
    strategy_of!(TopicOffset {
        last_update_timestamp: any::<i64>(),
        max_offset: any::<i64>(),
        min_offset: any::<i64>(),
    })
}

fn any_retry_policy() -> impl Strategy<Value = GroupRetryPolicy> {
    let exponential = strategy_of!(ExponentialRetryPolicy {
        initial: any::<i64>(),
        max: any::<i64>(),
        multiplier: any::<i64>()
    });
    strategy_of!(GroupRetryPolicy {
        customized_retry_policy: proptest::option::of(
            small_vec(any::<i64>()).prop_map(|next| CustomizedRetryPolicy { next })
        ),
        exponential_retry_policy: proptest::option::of(exponential),
        policy_type: proptest::sample::select(GroupRetryPolicyType::ALL),
    })
}

fn any_group_config() -> impl Strategy<Value = SubscriptionGroupConfig> {
    let subscription = strategy_of!(SimpleSubscriptionData {
        expression: any_text(),
        expression_type: any_expression_type(),
        topic: any_text(),
        version: any::<i64>(),
    });
    strategy_of!(SubscriptionGroupConfig {
        attributes: small_map(any_text(), any_text()),
        broker_id: any::<i64>(),
        consume_broadcast_enable: any::<bool>(),
        consume_enable: any::<bool>(),
        consume_from_min_enable: any::<bool>(),
        consume_message_orderly: any::<bool>(),
        consume_timeout_minute: any::<i32>(),
        group_name: any_text(),
        group_retry_policy: any_retry_policy(),
        group_sys_flag: any::<i32>(),
        notify_consumer_ids_changed_enable: any::<bool>(),
        retry_max_times: any::<i32>(),
        retry_queue_nums: any::<i32>(),
        subscription_data_set: proptest::option::of(small_vec(subscription)),
        which_broker_when_consume_slowly: any::<i64>(),
    })
}

fn any_mapping_wrapper() -> impl Strategy<Value = TopicConfigAndMappingSerializeWrapper> {
    strategy_of!(TopicConfigAndMappingSerializeWrapper {
        data_version: any_data_version(),
        mapping_data_version: any_data_version(),
        topic_config_table: small_map(any_text(), any_topic_config(any_text())),
        topic_queue_mapping_detail_map: small_map(any_text(), any_mapping_detail()),
        topic_queue_mapping_info_map: small_map(any_text(), any_mapping_info()),
    })
}

/// A registration the compressed form carries without loss: what it drops is left at defaults,
/// tables are keyed by the topic names inside them, and nothing contains the space separator.
fn any_compressible_registration() -> impl Strategy<Value = RegisterBrokerBody> {
    (
        any_data_version(),
        small_vec(any_topic_config(spaceless_text()).prop_map(|mut config| {
            config.order = false;
            config.topic_sys_flag = 0;
            config.attributes = config
                .attributes
                .into_iter()
                .map(|(key, value)| (key.replace(' ', "_"), value.replace(' ', "_")))
                .collect();
            config
        })),
        small_vec(any_mapping_info().prop_map(|mut info| {
            info.topic = Some(info.topic.unwrap_or_default());
            info
        })),
        small_vec(any_text()),
    )
        .prop_map(|(data_version, topics, infos, filter_server_list)| {
            let mut body = RegisterBrokerBody { filter_server_list, ..RegisterBrokerBody::default() };
            let wrapper = &mut body.topic_config_serialize_wrapper;
            wrapper.data_version = data_version;
            wrapper.topic_config_table =
                topics.into_iter().map(|config| (config.topic_name.clone(), config)).collect();
            wrapper.topic_queue_mapping_info_map =
                infos.into_iter().map(|info| (info.topic.clone().unwrap_or_default(), info)).collect();
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn route_bodies_round_trip(route in any_route(), brokers in small_map(any_text(), any_broker_data()),
                               clusters in small_map(any_text(), small_set(any_text()))) {
        check_round_trip(&route)?;
        check_round_trip(&ClusterInfo { broker_addr_table: brokers, cluster_addr_table: clusters })?;
    }

    #[test]
    fn namesrv_bodies_round_trip(
        topics in small_set(any_text()), broker_addr in proptest::option::of(any_text()),
        table in small_map(any_text(), any_text()),
        data_version in any_data_version(), configs in small_map(any_text(), any_topic_config(any_text())),
        wrapper in any_mapping_wrapper(), filter_server_list in small_vec(any_text()),
    ) {
        check_round_trip(&TopicList { broker_addr, topic_list: topics })?;
        check_round_trip(&KVTable { table })?;
        check_round_trip(&TopicConfigSerializeWrapper { data_version, topic_config_table: configs })?;
        let body = RegisterBrokerBody { filter_server_list, topic_config_serialize_wrapper: wrapper };
        check_round_trip(&body)?;
        let json = body.encode(false, 479).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(RegisterBrokerBody::decode(&json, false, 479).unwrap(), body);
    }

    #[test]
    fn compressed_registration_round_trips(body in any_compressible_registration()) {
        let bytes = body.encode(true, 479).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(RegisterBrokerBody::decode(&bytes, true, 479).unwrap(), body.clone());
        let old = body.encode(true, 409).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let mut expected = body;
        expected.topic_config_serialize_wrapper.topic_queue_mapping_info_map.clear();
        prop_assert_eq!(RegisterBrokerBody::decode(&old, true, 409).unwrap(), expected);
    }

    #[test]
    fn heartbeat_bodies_round_trip(heartbeat in any_heartbeat()) {
        check_round_trip(&heartbeat)?;
    }

    #[test]
    fn consumer_bodies_round_trip(
        client_id in any_text(), group in any_text(), queues in small_set(any_queue()), only in any::<bool>(),
        ids in small_vec(any_text()), namespace in proptest::option::of(any_text()),
        subscription in proptest::option::of(any_subscription()), offsets in small_map(any_queue(), any::<i64>()),
    ) {
        check_round_trip(&LockBatchRequestBody {
            client_id: client_id.clone(), consumer_group: group.clone(), mq_set: queues.clone(), only_this_broker: only,
        })?;
        check_round_trip(&UnlockBatchRequestBody {
            client_id: client_id.clone(), consumer_group: group.clone(), mq_set: queues.clone(), only_this_broker: only,
        })?;
        check_round_trip(&LockBatchResponseBody { lock_ok_mq_set: queues })?;
        check_round_trip(&GetConsumerListByGroupResponseBody { consumer_id_list: ids })?;
        check_round_trip(&CheckClientRequestBody { client_id, group, namespace, subscription_data: subscription })?;
        check_round_trip(&ResetOffsetBody { offset_table: offsets })?;
    }

    #[test]
    fn admin_bodies_round_trip(
        consume_tps in finite(), offsets in small_map(any_queue(), any_offset_wrapper()),
        put_tps in finite(), topic_offsets in small_map(any_queue(), any_topic_offset()),
        connections in small_vec(any_connection()),
        consumer_enums in (
            proptest::option::of(proptest::sample::select(ConsumeFromWhere::ALL)),
            proptest::option::of(proptest::sample::select(ConsumeType::ALL)),
            proptest::option::of(proptest::sample::select(MessageModel::ALL)),
        ),
        subscriptions in small_map(any_text(), any_subscription()),
        groups in small_set(any_text()),
        config in any_group_config(),
        data_version in any_data_version(),
        forbidden in small_map(any_text(), small_map(any_text(), any::<i32>())),
    ) {
        check_round_trip(&ConsumeStats { consume_tps, offset_table: offsets })?;
        check_round_trip(&TopicStatsTable { offset_table: topic_offsets, topic_put_tps: put_tps })?;
        let (consume_from_where, consume_type, message_model) = consumer_enums;
        check_round_trip(&ConsumerConnection {
            connection_set: connections.clone(),
            consume_from_where,
            consume_type,
            message_model,
            subscription_table: subscriptions,
        })?;
        check_round_trip(&ProducerConnection { connection_set: connections })?;
        check_round_trip(&GroupList { group_list: groups })?;
        check_round_trip(&config)?;
        check_round_trip(&SubscriptionGroupWrapper {
            data_version,
            forbidden_table: forbidden,
            subscription_group_table: [(config.group_name.clone(), config)].into(),
        })?;
    }

    #[test]
    fn decoding_mutated_bodies_never_panics(
        route in any_route(), stats in small_map(any_queue(), any_offset_wrapper()),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = fastjson::to_vec(&route, Dialect::Fastjson).unwrap();
        bytes.extend_from_slice(&fastjson::to_vec(&ConsumeStats { consume_tps: 1.0, offset_table: stats }, Dialect::Fastjson).unwrap());
        for (position, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let index = position % bytes.len();
            bytes[index] = byte;
        }
        let _ = fastjson::from_slice::<TopicRouteData>(&bytes);
        let _ = fastjson::from_slice::<ConsumeStats>(&bytes);
        let _ = fastjson::from_slice::<HeartbeatData>(&bytes);
        let _ = RegisterBrokerBody::decode(&bytes, true, 479);
        let _ = RegisterBrokerBody::decode(&bytes, false, 479);
    }
}
