//! The admin requests as commands, and the reading of their answers: pure functions, so the
//! wire form of every call is checked without a server.

use std::collections::BTreeMap;

use apogee_common::message::record::decode_all_shared;
use apogee_common::properties;
use apogee_common::topic::AUTO_CREATE_TOPIC_KEY;
use apogee_common::{MessageQueue, TopicConfig};
use apogee_remoting::acl::UNIQUE_KEY_QUERY;
use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::body::heartbeat::SubscriptionData;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::flags::pull as pull_sys_flag;
use apogee_remoting::header::admin::{
    CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader, DeleteTopicRequestHeader,
    GetConsumeStatsRequestHeader, GetConsumerConnectionListRequestHeader,
    GetProducerConnectionListRequestHeader, GetTopicStatsInfoRequestHeader,
    QueryTopicConsumeByWhoRequestHeader,
};
use apogee_remoting::header::consumer::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    PullMessageRequestHeader, QueryMessageRequestHeader, QueryMessageResponseHeader,
    ResetOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
    ViewMessageRequestHeader,
};
use apogee_remoting::header::namesrv::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    DeleteTopicFromNamesrvRequestHeader, GetKVConfigRequestHeader, GetKVConfigResponseHeader,
    GetRouteInfoRequestHeader, PutKVConfigRequestHeader, WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
};
use apogee_remoting::header::CommandHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use serde::de::DeserializeOwned;

use crate::{ClientError, MessageExt};

/// The response itself when it is SUCCESS, otherwise the refusal as [`ClientError::Broker`]
/// (also for NameServer answers: `addr` names who answered).
pub(crate) fn expect_success(addr: &str, response: RemotingCommand) -> Result<RemotingCommand, ClientError> {
    if response.code == response_code::SUCCESS {
        Ok(response)
    } else {
        Err(refusal(addr, &response))
    }
}

/// A non-SUCCESS answer as [`ClientError::Broker`].
pub(crate) fn refusal(addr: &str, response: &RemotingCommand) -> ClientError {
    ClientError::from_response(response, addr)
}

/// The JSON body of a SUCCESS answer.
pub(crate) fn success_body<T: DeserializeOwned>(
    addr: &str,
    response: RemotingCommand,
) -> Result<T, ClientError> {
    let response = expect_success(addr, response)?;
    fastjson::from_slice(&response.body)
        .map_err(|error| ClientError::Malformed(format!("body from {addr}: {error}")))
}

/// The custom header of an answer.
pub(crate) fn answer_header<H: CommandHeader>(
    addr: &str,
    response: &RemotingCommand,
) -> Result<H, ClientError> {
    response
        .decode_header::<H>()
        .map_err(|error| ClientError::Malformed(format!("header from {addr}: {error}")))
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206).
pub(crate) fn topic_list() -> RemotingCommand {
    RemotingCommand::request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
}

/// GET_BROKER_CLUSTER_INFO (106).
pub(crate) fn cluster_info() -> RemotingCommand {
    RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO)
}

/// GET_ROUTEINFO_BY_TOPIC (105).
pub(crate) fn topic_route(topic: &str) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: None };
    RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header)
}

/// A NameServer's answer to [`topic_route`]: TOPIC_NOT_EXIST becomes [`ClientError::NoRoute`].
pub(crate) fn read_topic_route<T: DeserializeOwned>(
    topic: &str,
    addr: &str,
    response: RemotingCommand,
) -> Result<T, ClientError> {
    if response.code == response_code::TOPIC_NOT_EXIST {
        return Err(ClientError::NoRoute { topic: topic.to_owned() });
    }
    success_body(addr, response)
}

/// The `attributes` header text of a topic config: `+key=value` per entry, joined by commas;
/// keys already marked `+` (set) or `-` (remove) are sent as they are. `None` without
/// attributes.
pub(crate) fn attributes_text(attributes: &BTreeMap<String, String>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let entries: Vec<String> = attributes
        .iter()
        .map(|(key, value)| {
            let key =
                if key.starts_with('+') || key.starts_with('-') { key.clone() } else { format!("+{key}") };
            if value.is_empty() {
                key
            } else {
                format!("{key}={value}")
            }
        })
        .collect();
    Some(entries.join(","))
}

/// UPDATE_AND_CREATE_TOPIC (17) of `config` for broker group `broker_name`.
pub(crate) fn create_topic(config: &TopicConfig, broker_name: Option<&str>) -> RemotingCommand {
    let header = CreateTopicRequestHeader {
        topic: config.topic_name.clone(),
        default_topic: AUTO_CREATE_TOPIC_KEY.to_owned(),
        read_queue_nums: config.read_queue_nums,
        write_queue_nums: config.write_queue_nums,
        perm: config.perm,
        topic_filter_type: config.topic_filter_type.as_str().to_owned(),
        topic_sys_flag: Some(config.topic_sys_flag),
        order: config.order,
        attributes: attributes_text(&config.attributes),
        force: None,
        bname: broker_name.map(str::to_owned),
    };
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC).with_header(&header)
}

/// DELETE_TOPIC_IN_BROKER (215).
pub(crate) fn delete_topic_in_broker(topic: &str, broker_name: Option<&str>) -> RemotingCommand {
    let header = DeleteTopicRequestHeader { topic: topic.to_owned(), bname: broker_name.map(str::to_owned) };
    RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER).with_header(&header)
}

/// DELETE_TOPIC_IN_NAMESRV (216), limited to `cluster`'s queue data.
pub(crate) fn delete_topic_in_namesrv(topic: &str, cluster: &str) -> RemotingCommand {
    let header = DeleteTopicFromNamesrvRequestHeader {
        topic: topic.to_owned(),
        cluster_name: Some(cluster.to_owned()),
    };
    RemotingCommand::request(request_code::DELETE_TOPIC_IN_NAMESRV).with_header(&header)
}

/// GET_TOPIC_STATS_INFO (202).
pub(crate) fn topic_stats(topic: &str, broker_name: &str) -> RemotingCommand {
    let header =
        GetTopicStatsInfoRequestHeader { topic: topic.to_owned(), bname: Some(broker_name.to_owned()) };
    RemotingCommand::request(request_code::GET_TOPIC_STATS_INFO).with_header(&header)
}

/// GET_CONSUME_STATS (208) of `group`, on `topic` or on every topic it has offsets for.
pub(crate) fn consume_stats(group: &str, topic: Option<&str>, broker_name: &str) -> RemotingCommand {
    let header = GetConsumeStatsRequestHeader {
        consumer_group: group.to_owned(),
        topic: topic.map(str::to_owned),
        topic_list: None,
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::GET_CONSUME_STATS).with_header(&header)
}

/// GET_CONSUMER_CONNECTION_LIST (203).
pub(crate) fn consumer_connections(group: &str, broker_name: &str) -> RemotingCommand {
    let header = GetConsumerConnectionListRequestHeader {
        consumer_group: group.to_owned(),
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::GET_CONSUMER_CONNECTION_LIST).with_header(&header)
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): no header, the config as the body.
pub(crate) fn create_subscription_group(
    config: &SubscriptionGroupConfig,
) -> Result<RemotingCommand, ClientError> {
    let body = fastjson::to_vec(config, Dialect::Fastjson)
        .map_err(|error| ClientError::IllegalArgument(format!("subscription group config: {error}")))?;
    Ok(RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body))
}

/// DELETE_SUBSCRIPTIONGROUP (207).
pub(crate) fn delete_subscription_group(group: &str, clean_offset: bool) -> RemotingCommand {
    let header = DeleteSubscriptionGroupRequestHeader {
        group_name: group.to_owned(),
        clean_offset: Some(clean_offset),
        bname: None,
    };
    RemotingCommand::request(request_code::DELETE_SUBSCRIPTIONGROUP).with_header(&header)
}

/// GET_BROKER_RUNTIME_INFO (28).
pub(crate) fn broker_runtime_info() -> RemotingCommand {
    RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO)
}

/// VIEW_MESSAGE_BY_ID (33) of the record at commit-log `offset`.
pub(crate) fn view_message(offset: i64) -> RemotingCommand {
    let header = ViewMessageRequestHeader { topic: None, offset };
    RemotingCommand::request(request_code::VIEW_MESSAGE_BY_ID).with_header(&header)
}

/// The message of a VIEW_MESSAGE_BY_ID answer, body inflated.
pub(crate) fn read_view_message(addr: &str, response: RemotingCommand) -> Result<MessageExt, ClientError> {
    let response = expect_success(addr, response)?;
    let records = decode_all_shared(&response.body)
        .map_err(|error| ClientError::Malformed(format!("message from {addr}: {error}")))?;
    let mut message = records.into_iter().next().ok_or_else(|| {
        ClientError::Malformed(format!("{addr} answered VIEW_MESSAGE_BY_ID without a message"))
    })?;
    if let Err(error) = message.decompress_body() {
        tracing::warn!(%error, "viewed message body does not inflate; kept as stored");
    }
    Ok(message)
}

/// QUERY_MESSAGE (12) by business key in a store-time range.
pub(crate) fn query_message(
    topic: &str,
    key: &str,
    max: i32,
    begin_ms: i64,
    end_ms: i64,
    broker_name: &str,
) -> RemotingCommand {
    let header = QueryMessageRequestHeader {
        topic: topic.to_owned(),
        key: key.to_owned(),
        max_num: max,
        begin_timestamp: begin_ms,
        end_timestamp: end_ms,
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::QUERY_MESSAGE)
        .with_header(&header)
        .with_ext(UNIQUE_KEY_QUERY, "false")
}

/// A QUERY_MESSAGE answer: the index freshness and the records (bodies inflated), or `None`
/// for QUERY_NOT_FOUND.
pub(crate) fn read_query_message(
    addr: &str,
    response: RemotingCommand,
) -> Result<Option<(i64, Vec<MessageExt>)>, ClientError> {
    if response.code == response_code::QUERY_NOT_FOUND {
        return Ok(None);
    }
    let response = expect_success(addr, response)?;
    let header: QueryMessageResponseHeader = answer_header(addr, &response)?;
    let mut messages = decode_all_shared(&response.body)
        .map_err(|error| ClientError::Malformed(format!("messages from {addr}: {error}")))?;
    for message in &mut messages {
        if let Err(error) = message.decompress_body() {
            tracing::warn!(%error, "queried message body does not inflate; kept as stored");
        }
    }
    Ok(Some((header.index_last_update_timestamp, messages)))
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222) of `group` on `topic` to `timestamp_ms` (−1 = the end).
pub(crate) fn reset_offset(
    group: &str,
    topic: &str,
    timestamp_ms: i64,
    force: bool,
    broker_name: &str,
) -> RemotingCommand {
    let header = ResetOffsetRequestHeader {
        group: group.to_owned(),
        topic: topic.to_owned(),
        queue_id: None,
        offset: None,
        timestamp: timestamp_ms,
        is_force: force,
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::INVOKE_BROKER_TO_RESET_OFFSET).with_header(&header)
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222) of `group` on one queue to exactly `offset` (Java's
/// `resetOffsetByQueueId`; the timestamp is unused then).
pub(crate) fn reset_queue_offset(group: &str, queue: &MessageQueue, offset: i64) -> RemotingCommand {
    let header = ResetOffsetRequestHeader {
        group: group.to_owned(),
        topic: queue.topic.clone(),
        queue_id: Some(queue.queue_id),
        offset: Some(offset),
        timestamp: 0,
        is_force: true,
        bname: Some(queue.broker_name.clone()),
    };
    RemotingCommand::request(request_code::INVOKE_BROKER_TO_RESET_OFFSET).with_header(&header)
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29) of one queue.
pub(crate) fn search_offset(queue: &MessageQueue, timestamp_ms: i64) -> RemotingCommand {
    let header = SearchOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        timestamp: timestamp_ms,
        boundary_type: None,
        bname: Some(queue.broker_name.clone()),
    };
    RemotingCommand::request(request_code::SEARCH_OFFSET_BY_TIMESTAMP).with_header(&header)
}

/// GET_MIN_OFFSET (31) of one queue.
pub(crate) fn min_offset(queue: &MessageQueue) -> RemotingCommand {
    let header = GetMinOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        bname: Some(queue.broker_name.clone()),
    };
    RemotingCommand::request(request_code::GET_MIN_OFFSET).with_header(&header)
}

/// GET_MAX_OFFSET (30) of one queue.
pub(crate) fn max_offset(queue: &MessageQueue) -> RemotingCommand {
    let header = GetMaxOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        committed: Some(true),
        bname: Some(queue.broker_name.clone()),
    };
    RemotingCommand::request(request_code::GET_MAX_OFFSET).with_header(&header)
}

/// The offset of a GET_MIN_OFFSET, GET_MAX_OFFSET or SEARCH_OFFSET_BY_TIMESTAMP answer: their
/// three answer headers are alike, the `offset` alone, so one reader serves them all.
pub(crate) fn read_offset(addr: &str, response: RemotingCommand) -> Result<i64, ClientError> {
    let response = expect_success(addr, response)?;
    Ok(answer_header::<GetMaxOffsetResponseHeader>(addr, &response)?.offset)
}

/// UPDATE_CONSUMER_OFFSET (15) of `group` on `queue`.
pub(crate) fn update_consumer_offset(group: &str, queue: &MessageQueue, offset: i64) -> RemotingCommand {
    let header = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.to_owned(),
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        commit_offset: offset,
        bname: Some(queue.broker_name.clone()),
    };
    RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&header)
}

/// GET_KV_CONFIG (101).
pub(crate) fn get_kv_config(namespace: &str, key: &str) -> RemotingCommand {
    let header = GetKVConfigRequestHeader { namespace: namespace.to_owned(), key: key.to_owned() };
    RemotingCommand::request(request_code::GET_KV_CONFIG).with_header(&header)
}

/// A GET_KV_CONFIG answer: the value, `None` for QUERY_NOT_FOUND.
pub(crate) fn read_kv_config(addr: &str, response: RemotingCommand) -> Result<Option<String>, ClientError> {
    if response.code == response_code::QUERY_NOT_FOUND {
        return Ok(None);
    }
    let response = expect_success(addr, response)?;
    Ok(answer_header::<GetKVConfigResponseHeader>(addr, &response)?.value)
}

/// PUT_KV_CONFIG (100).
pub(crate) fn put_kv_config(namespace: &str, key: &str, value: &str) -> RemotingCommand {
    let header = PutKVConfigRequestHeader {
        namespace: namespace.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    RemotingCommand::request(request_code::PUT_KV_CONFIG).with_header(&header)
}

/// GET_BROKER_CONFIG (26).
pub(crate) fn broker_config() -> RemotingCommand {
    RemotingCommand::request(request_code::GET_BROKER_CONFIG)
}

/// UPDATE_BROKER_CONFIG (25): the entries as Java properties text in the body.
pub(crate) fn update_broker_config(entries: &BTreeMap<String, String>) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_BROKER_CONFIG).with_body(properties_body(entries))
}

/// GET_NAMESRV_CONFIG (319).
pub(crate) fn namesrv_config() -> RemotingCommand {
    RemotingCommand::request(request_code::GET_NAMESRV_CONFIG)
}

/// UPDATE_NAMESRV_CONFIG (318): the entries as Java properties text in the body.
pub(crate) fn update_namesrv_config(entries: &BTreeMap<String, String>) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_NAMESRV_CONFIG).with_body(properties_body(entries))
}

/// `key=value` lines, as Java's `MixAll.properties2String` writes a config update.
fn properties_body(entries: &BTreeMap<String, String>) -> Vec<u8> {
    properties::render(entries.iter().map(|(key, value)| (key.as_str(), value.clone()))).into_bytes()
}

/// The properties text body of a GET_BROKER_CONFIG or GET_NAMESRV_CONFIG answer.
pub(crate) fn read_config(
    addr: &str,
    response: RemotingCommand,
) -> Result<BTreeMap<String, String>, ClientError> {
    let response = expect_success(addr, response)?;
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| ClientError::Malformed(format!("config from {addr} is not UTF-8")))?;
    properties::parse(text).map_err(|error| ClientError::Malformed(format!("config from {addr}: {error}")))
}

/// WIPE_WRITE_PERM_OF_BROKER (205) of broker group `broker_name`.
pub(crate) fn wipe_write_perm(broker_name: &str) -> RemotingCommand {
    let header = WipeWritePermOfBrokerRequestHeader { broker_name: broker_name.to_owned() };
    RemotingCommand::request(request_code::WIPE_WRITE_PERM_OF_BROKER).with_header(&header)
}

/// The topic count of a WIPE_WRITE_PERM_OF_BROKER answer.
pub(crate) fn read_wipe_write_perm(addr: &str, response: RemotingCommand) -> Result<i32, ClientError> {
    let response = expect_success(addr, response)?;
    Ok(answer_header::<WipeWritePermOfBrokerResponseHeader>(addr, &response)?.wipe_topic_count)
}

/// ADD_WRITE_PERM_OF_BROKER (327) of broker group `broker_name`.
pub(crate) fn add_write_perm(broker_name: &str) -> RemotingCommand {
    let header = AddWritePermOfBrokerRequestHeader { broker_name: broker_name.to_owned() };
    RemotingCommand::request(request_code::ADD_WRITE_PERM_OF_BROKER).with_header(&header)
}

/// The topic count of an ADD_WRITE_PERM_OF_BROKER answer.
pub(crate) fn read_add_write_perm(addr: &str, response: RemotingCommand) -> Result<i32, ClientError> {
    let response = expect_success(addr, response)?;
    Ok(answer_header::<AddWritePermOfBrokerResponseHeader>(addr, &response)?.add_topic_count)
}

/// GET_PRODUCER_CONNECTION_LIST (204).
pub(crate) fn producer_connections(group: &str, broker_name: &str) -> RemotingCommand {
    let header = GetProducerConnectionListRequestHeader {
        producer_group: group.to_owned(),
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::GET_PRODUCER_CONNECTION_LIST).with_header(&header)
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300).
pub(crate) fn topic_consumed_by(topic: &str, broker_name: &str) -> RemotingCommand {
    let header =
        QueryTopicConsumeByWhoRequestHeader { topic: topic.to_owned(), bname: Some(broker_name.to_owned()) };
    RemotingCommand::request(request_code::QUERY_TOPIC_CONSUME_BY_WHO).with_header(&header)
}

/// VIEW_BROKER_STATS_DATA (315) of one statistic (`TOPIC_PUT_NUMS`, `GROUP_GET_NUMS`, ...)
/// and key (a topic, or `topic@group`).
pub(crate) fn view_broker_stats(stats_name: &str, stats_key: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::VIEW_BROKER_STATS_DATA)
        .with_ext("statsName", stats_name)
        .with_ext("statsKey", stats_key)
}

/// QUERY_MESSAGE (12) by the client id `UNIQ_KEY`: the broker's unique-key index, any time.
pub(crate) fn query_message_by_unique_key(
    topic: &str,
    id: &str,
    max: i32,
    broker_name: &str,
) -> RemotingCommand {
    let header = QueryMessageRequestHeader {
        topic: topic.to_owned(),
        key: id.to_owned(),
        max_num: max,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::QUERY_MESSAGE)
        .with_header(&header)
        .with_ext(UNIQUE_KEY_QUERY, "true")
}

/// PULL_MESSAGE (11) of up to `max_messages` from `offset`, as Java's pull consumer sends it
/// for admin tools: the subscription in the request, no hold, no offset commit.
pub(crate) fn pull_message(
    group: &str,
    queue: &MessageQueue,
    subscription: &SubscriptionData,
    offset: i64,
    max_messages: i32,
) -> RemotingCommand {
    let header = subscribed_pull_header(group, queue, subscription, offset, max_messages);
    RemotingCommand::request(request_code::PULL_MESSAGE).with_header(&header)
}

/// The header of a pull of up to `max_messages` from `offset` of `queue` carrying
/// `subscription`: no hold, no offset commit (what [`pull_message`] sends; the lite pull
/// consumer adds its flags and hold).
pub(crate) fn subscribed_pull_header(
    group: &str,
    queue: &MessageQueue,
    subscription: &SubscriptionData,
    offset: i64,
    max_messages: i32,
) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: group.to_owned(),
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        queue_offset: offset,
        max_msg_nums: max_messages,
        sys_flag: pull_sys_flag::SUBSCRIPTION,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some(subscription.sub_string.clone()),
        sub_version: 0,
        expression_type: Some(subscription.expression_type.name().to_owned()),
        bname: Some(queue.broker_name.clone()),
        ..PullMessageRequestHeader::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use apogee_common::message::record::encode;
    use apogee_common::perm;
    use apogee_remoting::body::namesrv::TopicList;
    use apogee_remoting::body::route::TopicRouteData;
    use bytes::Bytes;

    fn stored(offset: i64, keys: &str) -> MessageExt {
        let mut ext = MessageExt {
            queue_offset: offset,
            commit_log_offset: offset * 100,
            store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
            born_host: "127.0.0.1:4000".parse::<SocketAddr>().unwrap(),
            ..MessageExt::default()
        };
        ext.message.topic = "T".into();
        ext.message.body = Bytes::from_static(b"hello");
        ext.message.set_keys(keys.split(' '));
        ext
    }

    fn records(messages: &[MessageExt]) -> Bytes {
        let mut out = Vec::new();
        for message in messages {
            encode(message, &mut out).unwrap();
        }
        out.into()
    }

    #[test]
    fn create_topic_carries_the_config() {
        let mut config = TopicConfig::with_queues("T", 4, 2, perm::READ_WRITE);
        config.order = true;
        config.attributes.insert("message.type".into(), "FIFO".into());
        config.attributes.insert("-old".into(), String::new());
        let request = create_topic(&config, Some("broker-a"));
        assert_eq!(request.code, 17);
        let header: CreateTopicRequestHeader = request.decode_header().unwrap();
        assert_eq!(header.topic, "T");
        assert_eq!(header.default_topic, "TBW102");
        assert_eq!((header.read_queue_nums, header.write_queue_nums, header.perm), (4, 2, 6));
        assert_eq!(header.topic_filter_type, "SINGLE_TAG");
        assert!(header.order);
        assert_eq!(header.attributes.as_deref(), Some("-old,+message.type=FIFO"));
        assert_eq!(header.bname.as_deref(), Some("broker-a"));
        assert_eq!(attributes_text(&BTreeMap::new()), None);
    }

    #[test]
    fn delete_requests_name_topic_and_cluster() {
        let broker = delete_topic_in_broker("T", Some("b"));
        assert_eq!((broker.code, broker.ext("topic")), (215, Some("T")));
        let namesrv = delete_topic_in_namesrv("T", "C");
        assert_eq!(
            (namesrv.code, namesrv.ext("topic"), namesrv.ext("clusterName")),
            (216, Some("T"), Some("C"))
        );
        let group = delete_subscription_group("G", true);
        assert_eq!(
            (group.code, group.ext("groupName"), group.ext("cleanOffset")),
            (207, Some("G"), Some("true"))
        );
    }

    #[test]
    fn stats_and_connection_requests() {
        let stats = topic_stats("T", "b");
        assert_eq!((stats.code, stats.ext("topic"), stats.ext("bname")), (202, Some("T"), Some("b")));
        let consume = consume_stats("G", Some("T"), "b");
        assert_eq!(
            (consume.code, consume.ext("consumerGroup"), consume.ext("topic")),
            (208, Some("G"), Some("T"))
        );
        assert_eq!(consume_stats("G", None, "b").ext("topic"), None);
        let connections = consumer_connections("G", "b");
        assert_eq!((connections.code, connections.ext("consumerGroup")), (203, Some("G")));
        assert_eq!(broker_runtime_info().code, 28);
        assert_eq!(topic_list().code, 206);
        assert_eq!(cluster_info().code, 106);
    }

    #[test]
    fn the_group_config_travels_as_the_body() {
        let request = create_subscription_group(&SubscriptionGroupConfig::new("G")).unwrap();
        assert_eq!(request.code, 200);
        let config: SubscriptionGroupConfig = fastjson::from_slice(&request.body).unwrap();
        assert_eq!(config, SubscriptionGroupConfig::new("G"));
    }

    #[test]
    fn query_and_reset_requests() {
        let query = query_message("T", "k1", 32, 10, 20, "b");
        assert_eq!(query.code, 12);
        assert_eq!(query.ext("key"), Some("k1"));
        assert_eq!(query.ext("maxNum"), Some("32"));
        assert_eq!((query.ext("beginTimestamp"), query.ext("endTimestamp")), (Some("10"), Some("20")));
        assert_eq!(query.ext("_UNIQUE_KEY_QUERY"), Some("false"));
        let reset = reset_offset("G", "T", 1234, true, "b");
        assert_eq!(reset.code, 222);
        assert_eq!((reset.ext("group"), reset.ext("topic")), (Some("G"), Some("T")));
        assert_eq!((reset.ext("timestamp"), reset.ext("isForce")), (Some("1234"), Some("true")));
        assert_eq!(view_message(77).ext("offset"), Some("77"));
        let queue = MessageQueue::new("T", "b", 3);
        assert_eq!(search_offset(&queue, 5).ext("timestamp"), Some("5"));
        assert_eq!(max_offset(&queue).ext("queueId"), Some("3"));
        assert_eq!(update_consumer_offset("G", &queue, 9).ext("commitOffset"), Some("9"));
    }

    #[test]
    fn kv_requests_and_answers() {
        let put = put_kv_config("NS", "k", "v");
        assert_eq!(
            (put.code, put.ext("namespace"), put.ext("key"), put.ext("value")),
            (100, Some("NS"), Some("k"), Some("v"))
        );
        assert_eq!(get_kv_config("NS", "k").code, 101);
        let found = RemotingCommand::response(0, None).with_ext("value", "v");
        assert_eq!(read_kv_config("n", found).unwrap(), Some("v".to_owned()));
        let missing =
            RemotingCommand::response(response_code::QUERY_NOT_FOUND, Some("No config item".into()));
        assert_eq!(read_kv_config("n", missing).unwrap(), None);
        let refused = RemotingCommand::response(1, Some("boom".into()));
        assert!(matches!(read_kv_config("n:1", refused), Err(ClientError::Broker { code: 1, .. })));
    }

    #[test]
    fn routes_and_bodies_are_read() {
        let missing =
            RemotingCommand::response(response_code::TOPIC_NOT_EXIST, Some("No topic route info".into()));
        assert!(matches!(
            read_topic_route::<TopicRouteData>("T", "ns", missing),
            Err(ClientError::NoRoute { ref topic }) if topic == "T"
        ));
        let list = RemotingCommand::response(0, None).with_body(&br#"{"topicList":["A","B"]}"#[..]);
        let list: TopicList = success_body("ns", list).unwrap();
        assert_eq!(list.topic_list.len(), 2);
        let garbage = RemotingCommand::response(0, None).with_body(&b"{"[..]);
        assert!(matches!(success_body::<TopicList>("ns", garbage), Err(ClientError::Malformed(_))));
        let refused = RemotingCommand::response(1, Some("disable".into()));
        assert!(matches!(
            success_body::<TopicList>("ns:1", refused),
            Err(ClientError::Broker { code: 1, ref remark, ref addr }) if remark == "disable" && addr == "ns:1"
        ));
    }

    #[test]
    fn viewed_and_queried_messages_are_decoded() {
        let answer = RemotingCommand::response(0, None).with_body(records(&[stored(4, "k1")]));
        let message = read_view_message("b", answer).unwrap();
        assert_eq!((message.queue_offset, message.commit_log_offset), (4, 400));
        let empty = RemotingCommand::response(0, None);
        assert!(matches!(read_view_message("b", empty), Err(ClientError::Malformed(_))));
        let gone = RemotingCommand::response(1, Some("can not find message by the offset, 4".into()));
        assert!(matches!(read_view_message("b", gone), Err(ClientError::Broker { code: 1, .. })));

        let found = RemotingCommand::response(0, None)
            .with_ext("indexLastUpdateTimestamp", "99")
            .with_ext("indexLastUpdatePhyoffset", "1000")
            .with_body(records(&[stored(1, "k1"), stored(2, "k1 k2")]));
        let (stamp, messages) = read_query_message("b", found).unwrap().unwrap();
        assert_eq!((stamp, messages.len()), (99, 2));
        let none = RemotingCommand::response(response_code::QUERY_NOT_FOUND, None);
        assert!(read_query_message("b", none).unwrap().is_none());
        let truncated = RemotingCommand::response(0, None)
            .with_ext("indexLastUpdateTimestamp", "99")
            .with_ext("indexLastUpdatePhyoffset", "1000")
            .with_body(records(&[stored(1, "k1")]).slice(..40));
        assert!(matches!(read_query_message("b", truncated), Err(ClientError::Malformed(_))));
    }

    #[test]
    fn config_perm_and_connection_requests() {
        let entries = BTreeMap::from([("brokerPermission".to_owned(), "4".to_owned())]);
        let update = update_broker_config(&entries);
        assert_eq!((update.code, &update.body[..]), (25, &b"brokerPermission=4\n"[..]));
        assert_eq!(update_namesrv_config(&entries).code, 318);
        assert_eq!((broker_config().code, namesrv_config().code), (26, 319));
        let answer = RemotingCommand::response(0, None).with_body(&b"a=1\nb=x y\n"[..]);
        let config = read_config("b", answer).unwrap();
        assert_eq!(config.get("b").map(String::as_str), Some("x y"));
        let wipe = wipe_write_perm("broker-a");
        assert_eq!((wipe.code, wipe.ext("brokerName")), (205, Some("broker-a")));
        let count = RemotingCommand::response(0, None).with_ext("wipeTopicCount", "3");
        assert_eq!(read_wipe_write_perm("n", count).unwrap(), 3);
        assert_eq!(add_write_perm("broker-a").code, 327);
        let count = RemotingCommand::response(0, None).with_ext("addTopicCount", "2");
        assert_eq!(read_add_write_perm("n", count).unwrap(), 2);
        let producers = producer_connections("P", "b");
        assert_eq!((producers.code, producers.ext("producerGroup")), (204, Some("P")));
        assert_eq!(topic_consumed_by("T", "b").code, 300);
        let stats = view_broker_stats("TOPIC_PUT_NUMS", "T");
        assert_eq!(
            (stats.code, stats.ext("statsName"), stats.ext("statsKey")),
            (315, Some("TOPIC_PUT_NUMS"), Some("T"))
        );
        let one = reset_queue_offset("G", &MessageQueue::new("T", "b", 2), 7);
        assert_eq!(
            (one.code, one.ext("queueId"), one.ext("offset"), one.ext("group")),
            (222, Some("2"), Some("7"), Some("G"))
        );
        let unique = query_message_by_unique_key("T", "ID", 32, "b");
        assert_eq!(
            (unique.code, unique.ext("_UNIQUE_KEY_QUERY"), unique.ext("key")),
            (12, Some("true"), Some("ID"))
        );
    }

    #[test]
    fn offsets_are_read_from_answers() {
        let answer = RemotingCommand::response(0, None).with_ext("offset", "12");
        assert_eq!(read_offset("b", answer.clone()).unwrap(), 12);
        assert_eq!(read_offset("b", answer).unwrap(), 12);
        assert!(matches!(
            read_offset("b", RemotingCommand::response(0, None)),
            Err(ClientError::Malformed(_))
        ));
    }
}
