//! Topic and subscription-group administration over the wire: create, read back, refuse bad
//! input, delete; topic statistics; runtime info and config dumps.

mod admin_support;

use admin_support::{assert_code_and_remark, TestBroker};
use apogee_common::{MessageQueue, TopicConfig};
use apogee_remoting::body::admin::{
    GroupList, SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicStatsTable,
};
use apogee_remoting::body::namesrv::{KVTable, TopicConfigAndMappingSerializeWrapper};
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::admin::{
    CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader, DeleteTopicRequestHeader,
    GetAllTopicConfigResponseHeader, GetConsumerConnectionListRequestHeader,
    GetProducerConnectionListRequestHeader, GetTopicConfigRequestHeader, GetTopicStatsInfoRequestHeader,
    QueryTopicConsumeByWhoRequestHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};

fn create_topic(topic: &str, queues: i32, perm: i32, attributes: Option<&str>) -> RemotingCommand {
    let header = CreateTopicRequestHeader {
        topic: topic.to_owned(),
        default_topic: "TBW102".to_owned(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        topic_filter_type: "SINGLE_TAG".to_owned(),
        topic_sys_flag: Some(0),
        order: false,
        attributes: attributes.map(str::to_owned),
        force: Some(false),
        bname: Some("broker-test".to_owned()),
    };
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC).with_header(&header)
}

fn get_topic(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::GET_TOPIC_CONFIG)
        .with_header(&GetTopicConfigRequestHeader { topic: topic.to_owned(), bname: None })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_topics_show_up_and_deleted_ones_go() {
    let broker = TestBroker::start().await;

    broker.call_ok(create_topic("OrderTopic", 4, 6, Some("+message.type=FIFO"))).await;

    let response = broker.call_ok(RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG)).await;
    let wrapper: TopicConfigAndMappingSerializeWrapper = fastjson::from_slice(&response.body).unwrap();
    let config = &wrapper.topic_config_table["OrderTopic"];
    assert_eq!((config.read_queue_nums, config.write_queue_nums, config.perm), (4, 4, 6));
    assert_eq!(config.attributes.get("message.type").map(String::as_str), Some("FIFO"));
    let total: GetAllTopicConfigResponseHeader = response.decode_header().unwrap();
    assert_eq!(total.total_topic_num, Some(wrapper.topic_config_table.len() as i32));

    // Paging as a 5.x slave does it: a page of one topic.
    let paged = RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG)
        .with_ext("topicSeq", "0")
        .with_ext("maxTopicNum", "1");
    let response = broker.call(paged).await;
    let page: TopicConfigAndMappingSerializeWrapper = fastjson::from_slice(&response.body).unwrap();
    assert_eq!(page.topic_config_table.len(), 1);

    let response = broker.call_ok(get_topic("OrderTopic")).await;
    let config: TopicConfig = fastjson::from_slice(&response.body).unwrap();
    assert_eq!(config.topic_name, "OrderTopic");

    // An update changes the queues and removes the attribute.
    broker.call_ok(create_topic("OrderTopic", 2, 6, Some("-message.type"))).await;
    let config: TopicConfig = fastjson::from_slice(&broker.call(get_topic("OrderTopic")).await.body).unwrap();
    assert_eq!(config.read_queue_nums, 2);
    assert!(config.attributes.is_empty());

    let delete = RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER)
        .with_header(&DeleteTopicRequestHeader { topic: "OrderTopic".to_owned(), bname: None });
    assert_eq!(broker.call(delete).await.code, response_code::SUCCESS);
    let response = broker.call(get_topic("OrderTopic")).await;
    assert_eq!(response.code, response_code::TOPIC_NOT_EXIST);

    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topic_requests_are_refused() {
    let broker = TestBroker::start().await;
    for (topic, perm, attributes, code) in [
        ("a b", 6, None, response_code::INVALID_PARAMETER),
        (&*"t".repeat(128), 6, None, response_code::INVALID_PARAMETER),
        ("SCHEDULE_TOPIC_XXXX", 6, None, response_code::INVALID_PARAMETER),
        ("rmq_sys_anything", 6, None, response_code::INVALID_PARAMETER),
        ("PermTopic", 9, None, response_code::INVALID_PARAMETER),
        ("MixedTopic", 6, Some("+message.type=MIXED"), response_code::INVALID_PARAMETER),
        ("AttrTopic", 6, Some("+colour=red"), response_code::SYSTEM_ERROR),
        ("AttrTopic", 6, Some("-message.type"), response_code::SYSTEM_ERROR),
    ] {
        let response = broker.call(create_topic(topic, 4, perm, attributes)).await;
        assert_eq!(response.code, code, "topic {topic}: {:?}", response.remark);
    }
    let negative = create_topic("NegativeQueues", -1, 6, None);
    assert_eq!(broker.call(negative).await.code, response_code::INVALID_PARAMETER);
    let no_header = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC);
    assert_eq!(broker.call(no_header).await.code, response_code::SYSTEM_ERROR);

    let delete_system = RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER)
        .with_header(&DeleteTopicRequestHeader { topic: "TBW102".to_owned(), bname: None });
    assert_eq!(broker.call(delete_system).await.code, response_code::INVALID_PARAMETER);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_stats_report_every_queue() {
    let broker = TestBroker::start().await;
    assert_eq!(broker.call(create_topic("StatsTopic", 2, 6, None)).await.code, response_code::SUCCESS);
    for index in 0..3 {
        broker.store("StatsTopic", 0, &format!("m{index}"), &[]).await;
    }
    let last = broker.store("StatsTopic", 1, "only", &[]).await;

    let request = RemotingCommand::request(request_code::GET_TOPIC_STATS_INFO)
        .with_header(&GetTopicStatsInfoRequestHeader { topic: "StatsTopic".to_owned(), bname: None });
    let response = broker.call_ok(request).await;
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    assert!(text.contains(r#"{{"brokerName":"broker-test","queueId":0,"topic":"StatsTopic"}:"#), "{text}");
    let stats: TopicStatsTable = fastjson::from_slice(&response.body).unwrap();
    let queue0 = stats.offset_table[&MessageQueue::new("StatsTopic", "broker-test", 0)];
    assert_eq!((queue0.min_offset, queue0.max_offset), (0, 3));
    let queue1 = stats.offset_table[&MessageQueue::new("StatsTopic", "broker-test", 1)];
    assert_eq!((queue1.max_offset, queue1.last_update_timestamp), (1, last.store_timestamp));

    let unknown = RemotingCommand::request(request_code::GET_TOPIC_STATS_INFO)
        .with_header(&GetTopicStatsInfoRequestHeader { topic: "Nope".to_owned(), bname: None });
    let response = broker.call(unknown).await;
    assert_code_and_remark(&response, response_code::TOPIC_NOT_EXIST, "topic[Nope] not exist");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_groups_round_trip() {
    let broker = TestBroker::start().await;
    let mut group = SubscriptionGroupConfig::new("GID_admin");
    group.retry_max_times = 5;
    let body = fastjson::to_vec(&group, Dialect::Fastjson).unwrap();
    let create = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body);
    assert_eq!(broker.call(create).await.code, response_code::SUCCESS);

    let bad = fastjson::to_vec(&SubscriptionGroupConfig::new("bad group"), Dialect::Fastjson).unwrap();
    let create = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(bad);
    assert_eq!(broker.call(create).await.code, response_code::INVALID_PARAMETER);

    let response =
        broker.call_ok(RemotingCommand::request(request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).await;
    let wrapper: SubscriptionGroupWrapper = fastjson::from_slice(&response.body).unwrap();
    assert_eq!(wrapper.subscription_group_table["GID_admin"].retry_max_times, 5);
    // The broker's predefined groups (TOOLS_CONSUMER, ...) are listed too.
    let total = wrapper.subscription_group_table.len().to_string();
    assert_eq!(response.ext("totalGroupNum"), Some(total.as_str()));

    let one =
        RemotingCommand::request(request_code::GET_SUBSCRIPTIONGROUP_CONFIG).with_ext("group", "GID_admin");
    let config: SubscriptionGroupConfig = fastjson::from_slice(&broker.call(one).await.body).unwrap();
    assert_eq!(config.group_name, "GID_admin");

    broker.broker().state().offsets.commit("GID_admin", "SomeTopic", 0, 3);
    let who = RemotingCommand::request(request_code::QUERY_TOPIC_CONSUME_BY_WHO)
        .with_header(&QueryTopicConsumeByWhoRequestHeader { topic: "SomeTopic".to_owned(), bname: None });
    let groups: GroupList = fastjson::from_slice(&broker.call(who).await.body).unwrap();
    assert!(groups.group_list.contains("GID_admin"));

    let delete = RemotingCommand::request(request_code::DELETE_SUBSCRIPTIONGROUP).with_header(
        &DeleteSubscriptionGroupRequestHeader {
            group_name: "GID_admin".to_owned(),
            clean_offset: Some(true),
            bname: None,
        },
    );
    assert_eq!(broker.call(delete).await.code, response_code::SUCCESS);
    assert!(broker.broker().state().groups.get("GID_admin").is_none());
    assert_eq!(broker.broker().state().offsets.query("GID_admin", "SomeTopic", 0), None);
    let one =
        RemotingCommand::request(request_code::GET_SUBSCRIPTIONGROUP_CONFIG).with_ext("group", "GID_admin");
    assert_eq!(broker.call(one).await.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_info_connections_and_config() {
    let broker = TestBroker::start().await;
    broker.store("InfoTopic", 0, "x", &[]).await;

    let response = broker.call_ok(RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO)).await;
    let info: KVTable = fastjson::from_slice(&response.body).unwrap();
    assert_eq!(info.table["brokerVersionDesc"], "V5_3_3");
    assert!(info.table["commitLogMaxOffset"].parse::<u64>().unwrap() > 0);
    let ratio: f64 = info.table["commitLogDiskRatio"].parse().unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(info.table["earliestMessageTimeStamp"].parse::<i64>().unwrap() > 0);

    let consumers = RemotingCommand::request(request_code::GET_CONSUMER_CONNECTION_LIST).with_header(
        &GetConsumerConnectionListRequestHeader { consumer_group: "Offline".to_owned(), bname: None },
    );
    let response = broker.call(consumers).await;
    assert_code_and_remark(
        &response,
        response_code::CONSUMER_NOT_ONLINE,
        "the consumer group[Offline] not online",
    );
    let producers = RemotingCommand::request(request_code::GET_PRODUCER_CONNECTION_LIST).with_header(
        &GetProducerConnectionListRequestHeader { producer_group: "Nobody".to_owned(), bname: None },
    );
    assert_eq!(broker.call(producers).await.code, response_code::SYSTEM_ERROR);

    broker.call_ok(RemotingCommand::request(request_code::DELETE_EXPIRED_COMMITLOG)).await;
    assert_eq!(broker.read_queue("InfoTopic", 0).len(), 1, "nothing expired yet");

    let response = broker.call(RemotingCommand::request(request_code::GET_BROKER_CONFIG)).await;
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    assert!(text.contains("brokerName=broker-test\n"), "{text}");
    assert!(text.contains("messageDelayLevel=1s 5s"), "{text}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_group_lists() {
    let broker = TestBroker::start().await;
    let mut first = TopicConfig::with_queues("ListA", 2, 2, 6);
    first.attributes.insert("+message.type".into(), "NORMAL".into());
    let second = TopicConfig::with_queues("ListB", 3, 3, 6);
    let body = format!(
        r#"{{"topicConfigList":[{},{}]}}"#,
        String::from_utf8(fastjson::to_vec(&first, Dialect::Fastjson).unwrap()).unwrap(),
        String::from_utf8(fastjson::to_vec(&second, Dialect::Fastjson).unwrap()).unwrap()
    );
    let request =
        RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC_LIST).with_body(body.into_bytes());
    broker.call_ok(request).await;
    let state = broker.broker().state();
    assert_eq!(
        state.topics.get("ListA").unwrap().attributes.get("message.type").map(String::as_str),
        Some("NORMAL")
    );
    assert_eq!(state.topics.get("ListB").unwrap().read_queue_nums, 3);

    // One bad name refuses the whole list.
    let bad = r#"{"topicConfigList":[{"topicName":"ListC","readQueueNums":1,"writeQueueNums":1,"perm":6},{"topicName":"bad name","perm":6}]}"#;
    let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC_LIST)
        .with_body(bad.as_bytes().to_vec());
    assert_eq!(broker.call(request).await.code, response_code::INVALID_PARAMETER);
    assert!(state.topics.get("ListC").is_none());

    let groups =
        r#"{"groupConfigList":[{"groupName":"GID_list1","retryMaxTimes":3},{"groupName":"GID_list2"}]}"#;
    let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST)
        .with_body(groups.as_bytes().to_vec());
    assert_eq!(broker.call(request).await.code, response_code::SUCCESS);
    assert_eq!(state.groups.get("GID_list1").unwrap().retry_max_times, 3);
    assert_eq!(state.groups.get("GID_list2").unwrap().retry_max_times, 16);
    broker.stop().await;
}

/// UPDATE_BROKER_CONFIG with Java properties text as the body.
fn update_config(text: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_BROKER_CONFIG).with_body(text.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_permission_changes_at_runtime_and_other_keys_are_refused() {
    let broker = TestBroker::start().await;
    broker.call_ok(update_config("brokerPermission=4\n")).await;
    // What sends and pulls check from now on, and what GET_BROKER_CONFIG reports.
    assert_eq!(broker.broker().state().broker_permission(), 4);
    let response = broker.call(RemotingCommand::request(request_code::GET_BROKER_CONFIG)).await;
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    assert!(text.contains("\nbrokerPermission=4\n"), "{text}");

    // Nothing is applied when one key of the update cannot be.
    let response = broker.call(update_config("brokerPermission=6\nlistenPort=1\n")).await;
    assert_eq!(response.code, response_code::SYSTEM_ERROR);
    assert!(
        response.remark.as_deref().unwrap_or("").starts_with("listenPort cannot be changed"),
        "{:?}",
        response.remark
    );
    assert_eq!(broker.broker().state().broker_permission(), 4);
    let response = broker.call(update_config("brokerConfigPath=/x\n")).await;
    assert_code_and_remark(&response, response_code::NO_PERMISSION, "Can not update config in black list.");
    let response = broker.call(update_config("brokerPermission=9\n")).await;
    assert_eq!(response.code, response_code::SYSTEM_ERROR);
    assert_eq!(broker.broker().state().broker_permission(), 4);

    broker.call_ok(update_config("brokerPermission=6\n")).await;
    assert_eq!(broker.broker().state().broker_permission(), 6);
    broker.stop().await;
}
