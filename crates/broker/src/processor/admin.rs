//! Admin requests (remoting spec §3.5, behaviour spec §9): what `mqadmin`, the dashboard and
//! slaves ask a broker. Topic and subscription-group maintenance (changes persist through
//! their managers, which also re-register with the NameServers), statistics (topic offsets,
//! group progress, runtime figures), live connections and configuration dumps.
//!
//! Bodies are written in the fastjson dialect: `MessageQueue` map keys as bare objects, the
//! only form Java admin tools read.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use apogee_common::message::record::RecordView;
use apogee_common::topic::{self as topic_names, TopicNameError};
use apogee_common::{perm, DataVersion, MessageQueue, TopicConfig, TopicFilterType};
use apogee_remoting::body::admin::{
    ConsumeStats, GroupList, OffsetWrapper, SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicOffset,
    TopicStatsTable,
};
use apogee_remoting::body::namesrv::{KVTable, TopicList};
use apogee_remoting::command_header;
use apogee_remoting::fastjson;
use apogee_remoting::header::admin::{
    CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader, DeleteTopicRequestHeader,
    GetAllTopicConfigRequestHeader, GetAllTopicConfigResponseHeader, GetConsumeStatsRequestHeader,
    GetConsumerConnectionListRequestHeader, GetProducerConnectionListRequestHeader,
    GetTopicConfigRequestHeader, GetTopicStatsInfoRequestHeader, QueryTopicConsumeByWhoRequestHeader,
};
use apogee_remoting::reply::{body_response, decode_body, finish, header, Failure, Outcome};
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};
use apogee_store::StoreConfig;
use serde::{Deserialize, Serialize};

use super::{blocking, route};
use crate::{BrokerConfig, BrokerState};

/// The version GET_BROKER_RUNTIME_INFO reports (`brokerVersionDesc`): the Apache RocketMQ
/// release whose protocol Apogee speaks (version ordinal 479).
pub const BROKER_VERSION_DESC: &str = "V5_3_3";

/// Topics (or groups) per page when a 5.x peer reads the tables by pages (Java
/// `splitMetadataSize`).
pub const SPLIT_METADATA_SIZE: usize = 2000;

/// Most read or write queues a topic may be given here: stats walk every queue, and 16 384
/// queues already make a 2 MiB stats body.
pub const MAX_QUEUE_NUMS: i32 = 16_384;

/// Separator of the 5.x `topicList` header of GET_CONSUME_STATS.
const TOPIC_LIST_SEPARATOR: char = ';';

/// Topic changes run one at a time (Java's handlers are `synchronized`), so two updates of
/// one topic cannot both merge their attribute changes into the same old table.
fn topic_changes() -> &'static tokio::sync::Mutex<()> {
    static CHANGES: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    CHANGES.get_or_init(|| tokio::sync::Mutex::new(()))
}

command_header! {
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): 5.x peers page through the groups; older ones
    /// send nothing and get the whole table.
    pub struct GetAllSubscriptionGroupRequestHeader {
        /// Index of the first group of the page.
        group_seq: Option<i32> => "groupSeq",
        /// DataVersion JSON of the caller's copy.
        data_version: Option<String> => "dataVersion",
        /// Page size.
        max_group_num: Option<i32> => "maxGroupNum",
    }
}

command_header! {
    /// Answer to GET_ALL_SUBSCRIPTIONGROUP_CONFIG: the number of groups, for paging.
    pub struct GetAllSubscriptionGroupResponseHeader {
        /// Groups on the broker.
        total_group_num: Option<i32> => "totalGroupNum",
    }
}

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352) and QUERY_TOPICS_BY_CONSUMER (343): one group.
    pub struct GroupRequestHeader {
        /// Consumer group.
        group: String => "group",
    }
}

/// Adds this module's request codes to `router`.
pub fn register(router: &mut Router, state: &Arc<BrokerState>) {
    route(router, request_code::UPDATE_AND_CREATE_TOPIC, state, |state, _, request| async move {
        let outcome = update_and_create_topic(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::UPDATE_AND_CREATE_TOPIC_LIST, state, |state, _, request| async move {
        let outcome = update_and_create_topic_list(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::DELETE_TOPIC_IN_BROKER, state, |state, _, request| async move {
        let outcome = delete_topic(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_ALL_TOPIC_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, all_topic_config(&state, &request)))
    });
    route(router, request_code::GET_TOPIC_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, topic_config(&state, &request)))
    });
    route(router, request_code::GET_TOPIC_STATS_INFO, state, |state, _, request| async move {
        let outcome = topic_stats(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_CONSUME_STATS, state, |state, _, request| async move {
        let outcome = consume_stats(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_CONSUMER_CONNECTION_LIST, state, |state, _, request| async move {
        Some(finish(&request, consumer_connections(&state, &request)))
    });
    route(router, request_code::GET_PRODUCER_CONNECTION_LIST, state, |state, _, request| async move {
        Some(finish(&request, producer_connections(&state, &request)))
    });
    route(router, request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, state, |state, _, request| async move {
        let outcome = update_and_create_group(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(
        router,
        request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST,
        state,
        |state, _, request| async move {
            let outcome = update_and_create_group_list(&state, &request).await;
            Some(finish(&request, outcome))
        },
    );
    route(router, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, all_group_config(&state, &request)))
    });
    route(router, request_code::GET_SUBSCRIPTIONGROUP_CONFIG, state, |state, _, request| async move {
        Some(finish(&request, group_config(&state, &request)))
    });
    route(router, request_code::DELETE_SUBSCRIPTIONGROUP, state, |state, _, request| async move {
        let outcome = delete_group(&state, &request).await;
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_BROKER_RUNTIME_INFO, state, |state, _, request| async move {
        let outcome = match blocking(&state, runtime_info).await {
            Ok(table) => body_response(&request, &KVTable { table }),
            Err(failure) => Err(failure),
        };
        Some(finish(&request, outcome))
    });
    route(router, request_code::QUERY_TOPIC_CONSUME_BY_WHO, state, |state, _, request| async move {
        Some(finish(&request, topic_consumed_by(&state, &request)))
    });
    route(router, request_code::QUERY_TOPICS_BY_CONSUMER, state, |state, _, request| async move {
        Some(finish(&request, topics_of_consumer(&state, &request)))
    });
    route(router, request_code::GET_ALL_DELAY_OFFSET, state, |state, _, request| async move {
        let outcome = state
            .schedule
            .encode()
            .map(|body| RemotingCommand::success_for(&request).with_body(body))
            .map_err(|error| Failure::system(error.to_string()));
        Some(finish(&request, outcome))
    });
    route(router, request_code::DELETE_EXPIRED_COMMITLOG, state, |state, _, request| async move {
        // `mqadmin deleteExpiredCommitLog`: delete expired files now, whatever `deleteWhen` says.
        tracing::warn!("deleting expired commit-log files on request");
        let outcome = blocking(&state, |state| state.store.run_retention())
            .await
            .map(|()| RemotingCommand::success_for(&request));
        Some(finish(&request, outcome))
    });
    route(router, request_code::GET_BROKER_CONFIG, state, |state, _, request| async move {
        let text = apogee_common::properties::render(broker_config_properties(&state.config));
        Some(RemotingCommand::success_for(&request).with_body(text.into_bytes()))
    });
}

/// INVALID_PARAMETER with `remark`.
fn invalid(remark: impl Into<String>) -> Failure {
    Failure::new(response_code::INVALID_PARAMETER, remark)
}

/// Java's remark for a refused topic name.
fn topic_name_remark(topic: &str, error: &TopicNameError) -> String {
    match error {
        TopicNameError::Blank => "The specified topic is blank.".to_owned(),
        TopicNameError::IllegalCharacter => format!(
            "The specified topic: {topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ),
        TopicNameError::TooLong { limit, .. } => {
            format!("The specified topic: {topic}, is longer than topic max length: {limit}")
        }
    }
}

/// Checks a group name as Java's `TopicValidator.validateGroup` does, with its remarks.
fn validate_group_name(group: &str) -> Result<(), Failure> {
    if group.trim().is_empty() {
        return Err(invalid("The specified group is blank."));
    }
    let legal = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    if !group.bytes().all(legal) {
        return Err(invalid(format!(
            "The specified group: {group}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        )));
    }
    if group.len() > topic_names::GROUP_MAX_LENGTH {
        return Err(invalid(format!(
            "The specified group: {group}, is longer than group max length: {}",
            topic_names::GROUP_MAX_LENGTH
        )));
    }
    Ok(())
}

/// A topic as an admin asks for it: the wanted config with its attributes still as changes
/// (`+key` → value, `-key` → ""), as both UPDATE_AND_CREATE_TOPIC and its list form carry it.
fn check_requested_topic(requested: &TopicConfig) -> Result<(), Failure> {
    let topic = &requested.topic_name;
    topic_names::validate_topic_name(topic).map_err(|error| invalid(topic_name_remark(topic, &error)))?;
    if topic_names::is_system_topic(topic) {
        return Err(invalid(format!("The topic[{topic}] is conflict with system topic.")));
    }
    for (what, count) in
        [("readQueueNums", requested.read_queue_nums), ("writeQueueNums", requested.write_queue_nums)]
    {
        if !(0..=MAX_QUEUE_NUMS).contains(&count) {
            return Err(invalid(format!("{what} {count} is out of range [0, {MAX_QUEUE_NUMS}]")));
        }
    }
    if !(0..perm::PRIORITY).contains(&requested.perm) {
        return Err(invalid(format!("perm {} is invalid", requested.perm)));
    }
    refuse_mixed_type(&requested.attributes)
}

/// Topics of mixed message types are refused (Java's default `enableMixedMessageType=false`).
fn refuse_mixed_type(changes: &BTreeMap<String, String>) -> Result<(), Failure> {
    if changes.get(&format!("+{}", attributes::MESSAGE_TYPE)).map(String::as_str) == Some("MIXED") {
        return Err(invalid("MIXED message type is not supported."));
    }
    Ok(())
}

/// The config to store for a checked request: its attribute changes applied to the topic's
/// current attributes. `None` when the topic already is exactly that.
fn merged_topic_config(state: &BrokerState, requested: &TopicConfig) -> Result<Option<TopicConfig>, Failure> {
    let existing = state.topics.get(&requested.topic_name);
    let current = existing.as_ref().map(|config| config.attributes.clone()).unwrap_or_default();
    let mut config = requested.clone();
    config.attributes =
        attributes::alter(existing.is_none(), &current, &requested.attributes).map_err(Failure::system)?;
    if existing.as_ref() == Some(&config) {
        tracing::info!(topic = %config.topic_name, "topic unchanged; nothing to update");
        return Ok(None);
    }
    Ok(Some(config))
}

/// Stores checked, merged topic configs (off the async workers: the manager persists).
async fn store_topic_configs(state: &Arc<BrokerState>, configs: Vec<TopicConfig>) -> Result<(), Failure> {
    if configs.is_empty() {
        return Ok(());
    }
    blocking(state, move |state| {
        for config in configs {
            tracing::info!(topic = %config.topic_name, ?config, "creating or updating topic");
            let topic = config.topic_name.clone();
            state
                .topics
                .create_or_update(config)
                .map_err(|error| Failure::system(format!("update topic {topic} failed: {error}")))?;
        }
        Ok(())
    })
    .await?
}

/// UPDATE_AND_CREATE_TOPIC (17).
async fn update_and_create_topic(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: CreateTopicRequestHeader = header(request)?;
    let mut requested = TopicConfig::new(request_header.topic.clone());
    requested.read_queue_nums = request_header.read_queue_nums;
    requested.write_queue_nums = request_header.write_queue_nums;
    requested.perm = request_header.perm;
    requested.topic_sys_flag = request_header.topic_sys_flag.unwrap_or(0);
    requested.order = request_header.order;
    check_requested_topic(&requested)?;
    requested.topic_filter_type =
        TopicFilterType::parse(&request_header.topic_filter_type).ok_or_else(|| {
            Failure::system(format!("unknown topicFilterType {}", request_header.topic_filter_type))
        })?;
    requested.attributes =
        attributes::parse_changes(request_header.attributes.as_deref()).map_err(Failure::system)?;
    refuse_mixed_type(&requested.attributes)?;
    let _one_at_a_time = topic_changes().lock().await;
    let merged = merged_topic_config(state, &requested)?;
    store_topic_configs(state, merged.into_iter().collect()).await?;
    Ok(RemotingCommand::success_for(request))
}

/// The body of UPDATE_AND_CREATE_TOPIC_LIST (Java `CreateTopicListRequestBody`): topic configs
/// whose attributes are changes (`+key` → value).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateTopicListRequestBody {
    topic_config_list: Vec<TopicConfig>,
}

/// UPDATE_AND_CREATE_TOPIC_LIST (18): every topic is checked before any is stored; topics
/// already as asked are left alone.
async fn update_and_create_topic_list(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let body: CreateTopicListRequestBody = decode_body(request, "CreateTopicListRequestBody")?;
    for requested in &body.topic_config_list {
        check_requested_topic(requested)?;
    }
    let _one_at_a_time = topic_changes().lock().await;
    let mut configs = Vec::new();
    for requested in &body.topic_config_list {
        configs.extend(merged_topic_config(state, requested)?);
    }
    store_topic_configs(state, configs).await?;
    Ok(RemotingCommand::success_for(request))
}

/// DELETE_TOPIC_IN_BROKER (215): drops the topic, its consume queues and every group's offsets
/// on it, plus the pop retry topics of the groups that consumed it.
async fn delete_topic(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: DeleteTopicRequestHeader = header(request)?;
    let topic = request_header.topic;
    if topic.trim().is_empty() {
        return Err(invalid("The specified topic is blank."));
    }
    if topic_names::is_system_topic(&topic) {
        return Err(invalid(format!("The topic[{topic}] is conflict with system topic.")));
    }
    let _one_at_a_time = topic_changes().lock().await;
    tracing::info!(%topic, "deleting topic");
    blocking(state, move |state| {
        let mut doomed = vec![topic.clone()];
        for group in state.offsets.groups_of_topic(&topic) {
            for pop_retry in [
                format!("{}{group}+{topic}", topic_names::RETRY_GROUP_TOPIC_PREFIX),
                format!("{}{group}_{topic}", topic_names::RETRY_GROUP_TOPIC_PREFIX),
            ] {
                if state.topics.get(&pop_retry).is_some() {
                    doomed.push(pop_retry);
                }
            }
        }
        for name in doomed {
            state.topics.delete(&name)?;
            state.offsets.remove_topic(&name);
            state.store.delete_topic(&name)?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await?
    .map_err(|error| Failure::system(error.to_string()))?;
    Ok(RemotingCommand::success_for(request))
}

/// Whether a paging request's data version names the current table (otherwise paging restarts).
fn same_version(text: Option<&str>, current: &DataVersion) -> bool {
    match text {
        Some(text) if !text.trim().is_empty() => {
            fastjson::from_slice::<DataVersion>(text.as_bytes()).is_ok_and(|version| version == *current)
        }
        _ => false,
    }
}

/// Entries `[seq, seq + size)` of a sorted table, for paged reads.
fn page<V>(table: BTreeMap<String, V>, seq: usize, size: usize) -> BTreeMap<String, V> {
    table.into_iter().skip(seq).take(size).collect()
}

/// The page a 5.x paging request asks for: `(first index, page size)`, or `None` for the
/// whole table (nothing paging-related sent, as older peers do).
fn requested_page(
    seq: Option<i32>,
    version: Option<&str>,
    max: Option<i32>,
    current: &DataVersion,
) -> Option<(usize, usize)> {
    if seq.is_none() && version.is_none() && max.is_none() {
        return None;
    }
    let size = max.and_then(|max| usize::try_from(max).ok()).unwrap_or(usize::MAX).min(SPLIT_METADATA_SIZE);
    let start = if same_version(version, current) {
        seq.and_then(|seq| usize::try_from(seq).ok()).unwrap_or(0)
    } else {
        0
    };
    Some((start, size))
}

/// GET_ALL_TOPIC_CONFIG (21): the topic table (whole, or a page for 5.x peers that ask).
fn all_topic_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetAllTopicConfigRequestHeader = header(request)?;
    let mut wrapper = state.topics.serialize_wrapper();
    let total = wrapper.topic_config_table.len();
    if total == 0 {
        return Err(Failure::system("No topic in this broker"));
    }
    if let Some((start, size)) = requested_page(
        request_header.topic_seq,
        request_header.data_version.as_deref(),
        request_header.max_topic_num,
        &wrapper.data_version,
    ) {
        wrapper.topic_config_table = page(wrapper.topic_config_table, start, size);
        let kept: BTreeSet<&String> = wrapper.topic_config_table.keys().collect();
        wrapper.topic_queue_mapping_detail_map.retain(|topic, _| kept.contains(topic));
        wrapper.topic_queue_mapping_info_map.retain(|topic, _| kept.contains(topic));
    }
    let response_header = GetAllTopicConfigResponseHeader { total_topic_num: Some(saturating_i32(total)) };
    Ok(body_response(request, &wrapper)?.with_header(&response_header))
}

/// GET_TOPIC_CONFIG (351): one topic's config.
fn topic_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetTopicConfigRequestHeader = header(request)?;
    let config = state.topics.get(&request_header.topic).ok_or_else(|| {
        Failure::new(
            response_code::TOPIC_NOT_EXIST,
            format!("No topic in this broker. topic: {}", request_header.topic),
        )
    })?;
    body_response(request, &config)
}

/// GET_TOPIC_STATS_INFO (202): min, max and last store time of every queue of the topic.
async fn topic_stats(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetTopicStatsInfoRequestHeader = header(request)?;
    let topic = request_header.topic;
    let config = state
        .topics
        .get(&topic)
        .ok_or_else(|| Failure::new(response_code::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist")))?;
    let queues = config.read_queue_nums.max(config.write_queue_nums).clamp(0, MAX_QUEUE_NUMS);
    let table = blocking(state, move |state| {
        let mut table = TopicStatsTable::default();
        for queue_id in 0..queues {
            let min_offset = state.store.min_offset(&topic, queue_id).max(0);
            let max_offset = state.store.max_offset(&topic, queue_id).max(0);
            let last_update_timestamp = if max_offset > 0 {
                state.store.store_timestamp_at(&topic, queue_id, max_offset - 1).unwrap_or(0)
            } else {
                0
            };
            table.offset_table.insert(
                MessageQueue::new(topic.clone(), state.config.broker_name.clone(), queue_id),
                TopicOffset { last_update_timestamp, max_offset, min_offset },
            );
        }
        table
    })
    .await?;
    body_response(request, &table)
}

/// The topics GET_CONSUME_STATS reports: the 5.x `topicList` exactly; otherwise `topic`, or
/// every topic the group has offsets for, minus (while the group is online) topics it does
/// not subscribe to.
fn consume_stats_topics(
    state: &BrokerState,
    request_header: &GetConsumeStatsRequestHeader,
) -> BTreeSet<String> {
    let listed: BTreeSet<String> = request_header
        .topic_list
        .as_deref()
        .unwrap_or("")
        .split(TOPIC_LIST_SEPARATOR)
        .map(str::trim)
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let group = &request_header.consumer_group;
    let mut topics: BTreeSet<String> = match request_header.topic.as_deref().map(str::trim) {
        Some(topic) if !topic.is_empty() => [topic.to_owned()].into(),
        _ => state.offsets.topics_of_group(group).into_iter().collect(),
    };
    if let Some(online) = state.clients.consumer_connection(group) {
        if !online.subscription_table.is_empty() {
            topics.retain(|topic| online.subscription_table.contains_key(topic));
        }
    }
    topics
}

/// GET_CONSUME_STATS (208): per read queue the queue's max offset, the group's committed and
/// pulled offsets and the store time of the last consumed message.
async fn consume_stats(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: GetConsumeStatsRequestHeader = header(request)?;
    let topics = consume_stats_topics(state, &request_header);
    let group = request_header.consumer_group;
    let stats = blocking(state, move |state| {
        let mut stats = ConsumeStats::default();
        for topic in topics {
            let Some(config) = state.topics.get(&topic) else {
                tracing::warn!(%topic, %group, "consume stats: topic does not exist");
                continue;
            };
            for queue_id in 0..config.read_queue_nums.clamp(0, MAX_QUEUE_NUMS) {
                let broker_offset = state.store.max_offset(&topic, queue_id).max(0);
                let consumer_offset = state.offsets.query(&group, &topic, queue_id).unwrap_or(0).max(0);
                let pulled = state.offsets.pull_offset(&group, &topic, queue_id).unwrap_or(0);
                let last_timestamp = if consumer_offset > 0 {
                    state.store.store_timestamp_at(&topic, queue_id, consumer_offset - 1).unwrap_or(0).max(0)
                } else {
                    0
                };
                stats.offset_table.insert(
                    MessageQueue::new(topic.clone(), state.config.broker_name.clone(), queue_id),
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        last_timestamp,
                        pull_offset: consumer_offset.max(pulled),
                    },
                );
            }
        }
        stats
    })
    .await?;
    body_response(request, &stats)
}

/// GET_CONSUMER_CONNECTION_LIST (203).
fn consumer_connections(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetConsumerConnectionListRequestHeader = header(request)?;
    let group = request_header.consumer_group;
    let connection = state.clients.consumer_connection(&group).ok_or_else(|| {
        Failure::new(response_code::CONSUMER_NOT_ONLINE, format!("the consumer group[{group}] not online"))
    })?;
    body_response(request, &connection)
}

/// GET_PRODUCER_CONNECTION_LIST (204).
fn producer_connections(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetProducerConnectionListRequestHeader = header(request)?;
    let group = request_header.producer_group;
    let connection = state
        .clients
        .producer_connection(&group)
        .ok_or_else(|| Failure::system(format!("the producer group[{group}] not exist")))?;
    body_response(request, &connection)
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): the body is the whole group config; an empty
/// body changes nothing (as in Java).
async fn update_and_create_group(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RemotingCommand::success_for(request));
    }
    let config: SubscriptionGroupConfig = decode_body(request, "SubscriptionGroupConfig")?;
    validate_group_name(&config.group_name)?;
    let group = config.group_name.clone();
    tracing::info!(%group, "creating or updating subscription group");
    blocking(state, move |state| state.groups.update(config))
        .await?
        .map_err(|error| Failure::system(format!("update subscription group {group} failed: {error}")))?;
    Ok(RemotingCommand::success_for(request))
}

/// The body of UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (Java `SubscriptionGroupList`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SubscriptionGroupList {
    group_config_list: Vec<SubscriptionGroupConfig>,
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225): every name is checked before any group is
/// stored.
async fn update_and_create_group_list(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let body: SubscriptionGroupList = decode_body(request, "SubscriptionGroupList")?;
    for config in &body.group_config_list {
        validate_group_name(&config.group_name)?;
    }
    blocking(state, move |state| {
        for config in body.group_config_list {
            let group = config.group_name.clone();
            tracing::info!(%group, "creating or updating subscription group");
            state.groups.update(config).map_err(|error| {
                Failure::system(format!("update subscription group {group} failed: {error}"))
            })?;
        }
        Ok::<(), Failure>(())
    })
    .await??;
    Ok(RemotingCommand::success_for(request))
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): every group (or a page for 5.x peers that ask).
fn all_group_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetAllSubscriptionGroupRequestHeader = header(request)?;
    let mut wrapper: SubscriptionGroupWrapper = state.groups.wrapper();
    let total = wrapper.subscription_group_table.len();
    if let Some((start, size)) = requested_page(
        request_header.group_seq,
        request_header.data_version.as_deref(),
        request_header.max_group_num,
        &wrapper.data_version,
    ) {
        wrapper.subscription_group_table = page(wrapper.subscription_group_table, start, size);
        let kept: BTreeSet<String> = wrapper.subscription_group_table.keys().cloned().collect();
        wrapper.forbidden_table.retain(|group, _| kept.contains(group));
    }
    let response_header =
        GetAllSubscriptionGroupResponseHeader { total_group_num: Some(saturating_i32(total)) };
    Ok(body_response(request, &wrapper)?.with_header(&response_header))
}

/// GET_SUBSCRIPTIONGROUP_CONFIG (352): one group's config.
fn group_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GroupRequestHeader = header(request)?;
    let config = state.groups.get(&request_header.group).ok_or_else(|| {
        Failure::new(response_code::SUBSCRIPTION_GROUP_NOT_EXIST, "No group in this broker")
    })?;
    body_response(request, &config)
}

/// DELETE_SUBSCRIPTIONGROUP (207): removes the group's config and, with `cleanOffset`, its
/// offsets.
async fn delete_group(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: DeleteSubscriptionGroupRequestHeader = header(request)?;
    let group = request_header.group_name;
    let clean_offset = request_header.clean_offset.unwrap_or(false);
    tracing::info!(%group, clean_offset, "deleting subscription group");
    blocking(state, move |state| {
        state.groups.delete(&group)?;
        if clean_offset {
            state.offsets.remove_group(&group);
        }
        Ok::<(), std::io::Error>(())
    })
    .await?
    .map_err(|error| Failure::system(error.to_string()))?;
    Ok(RemotingCommand::success_for(request))
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300): groups online on the topic plus groups with offsets on it.
fn topic_consumed_by(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: QueryTopicConsumeByWhoRequestHeader = header(request)?;
    let mut group_list: BTreeSet<String> =
        state.clients.groups_subscribing(&request_header.topic).into_iter().collect();
    group_list.extend(state.offsets.groups_of_topic(&request_header.topic));
    body_response(request, &GroupList { group_list })
}

/// QUERY_TOPICS_BY_CONSUMER (343): topics a group has offsets for, with this broker's address.
fn topics_of_consumer(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GroupRequestHeader = header(request)?;
    let topic_list = state.offsets.topics_of_group(&request_header.group).into_iter().collect();
    body_response(request, &TopicList { broker_addr: Some(state.store_host.to_string()), topic_list })
}

/// The figures of GET_BROKER_RUNTIME_INFO (28) Apogee can give truthfully: version, store
/// offsets and disk use, earliest message, delay-level progress; the timer wheel's figures are
/// zero because Apogee has none (as Java reports with `timerWheelEnable=false`). Throughput
/// counters and thread-pool figures are left out until the broker keeps them.
fn runtime_info(state: &BrokerState) -> BTreeMap<String, String> {
    let store = &state.store;
    let store_config = store.config();
    let mut table = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        table.insert(key.to_owned(), value);
    };
    put("brokerVersionDesc", BROKER_VERSION_DESC.to_owned());
    put("brokerActive", "true".to_owned());
    let commit_log_dir = store_config.commit_log_dir();
    let commit_log_ratio = disk_used_ratio(&commit_log_dir);
    put("commitLogDiskRatio", java_double(commit_log_ratio));
    put(&format!("commitLogDiskRatio_{}", commit_log_dir.display()), java_double(commit_log_ratio));
    put("consumeQueueDiskRatio", java_double(disk_used_ratio(&store_config.consume_queue_dir())));
    if let Some(space) = disk_space(&store_config.store_path_root_dir) {
        put(
            "commitLogDirCapacity",
            format!("Total : {}, Free : {}.", human_bytes(space.total), human_bytes(space.free)),
        );
    }
    let (min, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    put("remainHowManyDataToFlush", human_bytes(max.saturating_sub(store.commit_log_flushed_offset())));
    put("dispatchBehindBytes", "0".to_owned());
    let earliest = store
        .message_at(min)
        .and_then(|record| {
            RecordView::parse(record.as_slice(), false).ok().map(|view| view.store_timestamp())
        })
        .unwrap_or(-1);
    put("earliestMessageTimeStamp", earliest.to_string());
    put("startAcceptSendRequestTimeStamp", "0".to_owned());
    for (level, offset) in state.schedule.offsets() {
        let queue_max = store.max_offset(topic_names::SCHEDULE_TOPIC, level - 1);
        put(&format!("scheduleMessageOffset_{level}"), format!("{offset},{queue_max}"));
    }
    put("timerReadBehind", "0".to_owned());
    put("timerOffsetBehind", "0".to_owned());
    put("timerCongestNum", "0".to_owned());
    put("timerEnqueueTps", "0.0".to_owned());
    put("timerDequeueTps", "0.0".to_owned());
    table
}

/// Size and unallocated bytes of a partition.
#[derive(Debug, Clone, Copy)]
struct DiskSpace {
    total: u64,
    free: u64,
}

/// `statvfs` of the partition holding `path`; `None` when the path does not exist.
fn disk_space(path: &Path) -> Option<DiskSpace> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `stats` a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = (stats.f_frsize as u64).max(1);
    Some(DiskSpace {
        total: (stats.f_blocks as u64).saturating_mul(block),
        free: (stats.f_bfree as u64).saturating_mul(block),
    })
}

/// Used share of the partition (Java `getDiskPartitionSpaceUsedPercent`: (total − free) /
/// total); -1 when the path does not exist.
fn disk_used_ratio(path: &Path) -> f64 {
    match disk_space(path) {
        Some(space) if space.total > 0 => space.total.saturating_sub(space.free) as f64 / space.total as f64,
        Some(_) => 0.0,
        None => -1.0,
    }
}

/// A double as Java's `String.valueOf` writes it for ordinary magnitudes (`0.0`, `0.25`).
fn java_double(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Bytes in binary units the way Java's `MixAll.humanReadableByteCount(bytes, false)` writes
/// them (`512 B`, `1.5 KiB`, `3.0 GiB`).
fn human_bytes(bytes: u64) -> String {
    const UNIT: f64 = 1024.0;
    const PREFIXES: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut index = 0;
    while value >= UNIT && index < PREFIXES.len() {
        value /= UNIT;
        index += 1;
    }
    format!("{value:.1} {}iB", PREFIXES[index - 1])
}

/// A count as the `i32` a header carries.
fn saturating_i32(count: usize) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The effective configuration as `key=value` lines with Apache RocketMQ's names
/// (GET_BROKER_CONFIG), broker settings then store settings, each sorted by name.
fn broker_config_properties(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let mut broker: Vec<(&'static str, String)> = vec![
        ("autoCreateSubscriptionGroup", config.auto_create_subscription_group.to_string()),
        ("autoCreateTopicEnable", config.auto_create_topic_enable.to_string()),
        ("brokerClusterName", config.broker_cluster_name.clone()),
        ("brokerIP1", config.broker_ip1.to_string()),
        ("brokerId", config.broker_id.to_string()),
        ("brokerName", config.broker_name.clone()),
        ("brokerPermission", config.broker_permission.to_string()),
        ("brokerTopicEnable", config.broker_topic_enable.to_string()),
        ("channelExpiredTimeout", config.channel_expired_timeout_ms.to_string()),
        ("clusterTopicEnable", config.cluster_topic_enable.to_string()),
        ("defaultTopicQueueNums", config.default_topic_queue_nums.to_string()),
        ("enablePropertyFilter", config.enable_property_filter.to_string()),
        ("fastChannelEnable", config.fast_channel_enable.to_string()),
        ("flushConsumerOffsetInterval", config.flush_consumer_offset_interval_ms.to_string()),
        ("flushDelayOffsetInterval", config.flush_delay_offset_interval_ms.to_string()),
        ("listenPort", config.listen_port.to_string()),
        ("longPollingEnable", config.long_polling_enable.to_string()),
        ("notifyConsumerIdsChangedEnable", config.notify_consumer_ids_changed_enable.to_string()),
        ("regionId", config.region_id.clone()),
        ("registerBrokerTimeoutMills", config.register_broker_timeout_ms.to_string()),
        ("registerNameServerPeriod", config.register_name_server_period_ms.to_string()),
        ("rejectTransactionMessage", config.reject_transaction_message.to_string()),
        ("shortPollingTimeMills", config.short_polling_time_ms.to_string()),
        ("traceOn", config.trace_on.to_string()),
    ];
    if let Some(addr) = &config.namesrv_addr {
        // Java leaves unset (null) settings out.
        let at = broker.partition_point(|(key, _)| *key < "namesrvAddr");
        broker.insert(at, ("namesrvAddr", addr.clone()));
    }
    broker.extend(store_config_properties(&config.store));
    broker
}

/// The store part of [`broker_config_properties`].
fn store_config_properties(store: &StoreConfig) -> Vec<(&'static str, String)> {
    let flush_disk_type = match store.flush_disk_type {
        apogee_store::FlushDiskType::SyncFlush => "SYNC_FLUSH",
        apogee_store::FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
    };
    vec![
        ("checkCRCOnRecover", store.check_crc_on_recover.to_string()),
        ("cleanFileForciblyEnable", store.clean_file_forcibly_enable.to_string()),
        ("cleanResourceInterval", store.clean_resource_interval_ms.to_string()),
        ("deleteFileBatchMax", store.delete_file_batch_max.to_string()),
        ("deleteWhen", store.delete_when.clone()),
        ("diskMaxUsedSpaceRatio", store.disk_max_used_space_ratio.to_string()),
        ("diskSpaceCleanForciblyRatio", store.disk_space_clean_forcibly_ratio.to_string()),
        ("diskSpaceWarningLevelRatio", store.disk_space_warning_level_ratio.to_string()),
        ("fileReservedTime", store.file_reserved_time_hours.to_string()),
        ("flushCommitLogLeastPages", store.flush_commit_log_least_pages.to_string()),
        ("flushCommitLogThoroughInterval", store.flush_commit_log_thorough_interval_ms.to_string()),
        ("flushDiskType", flush_disk_type.to_owned()),
        ("flushIntervalCommitLog", store.flush_interval_commit_log_ms.to_string()),
        ("flushIntervalConsumeQueue", store.flush_interval_consume_queue_ms.to_string()),
        ("mappedFileSizeCommitLog", store.mapped_file_size_commit_log.to_string()),
        ("mappedFileSizeConsumeQueue", store.mapped_file_size_consume_queue.to_string()),
        ("maxHashSlotNum", store.max_hash_slot_num.to_string()),
        ("maxIndexNum", store.max_index_num.to_string()),
        ("maxMessageSize", store.max_message_size.to_string()),
        ("maxTransferBytesOnMessageInMemory", store.max_transfer_bytes_on_message_in_memory.to_string()),
        ("maxTransferCountOnMessageInMemory", store.max_transfer_count_on_message_in_memory.to_string()),
        ("messageDelayLevel", store.message_delay_level.clone()),
        ("messageIndexEnable", store.message_index_enable.to_string()),
        ("storePathCommitLog", store.commit_log_dir().display().to_string()),
        ("storePathRootDir", store.store_path_root_dir.display().to_string()),
        ("syncFlushTimeout", store.sync_flush_timeout_ms.to_string()),
    ]
}

/// Topic attribute changes (`+key=value,-key`) and the attributes Apogee knows, as Java's
/// `AttributeParser`, `AttributeUtil` and `TopicAttributes` define them.
mod attributes {
    use std::collections::{BTreeMap, BTreeSet};

    /// `message.type`: what kind of messages a topic takes.
    pub const MESSAGE_TYPE: &str = "message.type";

    /// One known attribute.
    struct Rule {
        name: &'static str,
        /// May change after the topic was created.
        changeable: bool,
        /// Allowed values; `None` for a number in `-1..=i64::MAX`.
        values: Option<&'static [&'static str]>,
    }

    /// Java `TopicAttributes.ALL`.
    const RULES: &[Rule] = &[
        Rule { name: "queue.type", changeable: false, values: Some(&["BatchCQ", "SimpleCQ"]) },
        Rule { name: "cleanup.policy", changeable: false, values: Some(&["DELETE", "COMPACTION"]) },
        Rule {
            name: MESSAGE_TYPE,
            changeable: true,
            values: Some(&["UNSPECIFIED", "NORMAL", "FIFO", "DELAY", "TRANSACTION", "MIXED"]),
        },
        Rule { name: "reserve.time", changeable: true, values: None },
    ];

    /// Parses `+k1=v1,+k2=v2,-k3` into sign-prefixed key → value (`""` for deletions).
    pub fn parse_changes(text: Option<&str>) -> Result<BTreeMap<String, String>, String> {
        let mut changes = BTreeMap::new();
        let Some(text) = text.filter(|text| !text.is_empty()) else { return Ok(changes) };
        for item in text.split(',') {
            let (key, value) = if item.contains('=') {
                let mut parts: Vec<&str> = item.split('=').collect();
                while parts.last() == Some(&"") {
                    parts.pop();
                }
                let (Some(key), Some(value)) = (parts.first(), parts.get(1)) else {
                    return Err(format!("add/alter attribute format is wrong: {item}"));
                };
                if !key.contains('+') {
                    return Err(format!("add/alter attribute format is wrong: {key}"));
                }
                (key.to_string(), value.to_string())
            } else {
                if !item.contains('-') {
                    return Err(format!("delete attribute format is wrong: {item}"));
                }
                (item.to_owned(), String::new())
            };
            if changes.insert(key.clone(), value).is_some() {
                return Err(format!("key duplication: {key}"));
            }
        }
        Ok(changes)
    }

    /// Applies parsed `changes` to a topic's `current` attributes; on creation only additions
    /// are allowed. Fails with Java's message on unknown keys, unchangeable attributes, bad
    /// values or deleting what is not there.
    pub fn alter(
        create: bool,
        current: &BTreeMap<String, String>,
        changes: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut result = current.clone();
        let mut seen = BTreeSet::new();
        for (key, value) in changes {
            let sign = key.chars().next();
            let name = key.get(1..).unwrap_or("");
            if name.is_empty() || name.contains('+') || name.contains('-') {
                return Err("kv string format wrong.".to_owned());
            }
            if !seen.insert(name) {
                return Err(format!("alter duplication key. key: {name}"));
            }
            let rule =
                RULES.iter().find(|rule| rule.name == name).ok_or(format!("unsupported key: {name}"))?;
            match sign {
                Some('+') => {
                    if !create && !rule.changeable {
                        return Err(format!("attempt to update an unchangeable attribute. key: {name}"));
                    }
                    verify(rule, value)?;
                    result.insert(name.to_owned(), value.clone());
                }
                Some('-') if create => {
                    return Err(format!("only add attribute is supported while creating topic. key: {name}"));
                }
                Some('-') => {
                    if !current.contains_key(name) {
                        return Err(format!("attempt to delete a nonexistent key: {name}"));
                    }
                    if !rule.changeable {
                        return Err(format!("attempt to update an unchangeable attribute. key: {name}"));
                    }
                    result.remove(name);
                }
                _ if create => {
                    return Err(format!("only add attribute is supported while creating topic. key: {name}"));
                }
                _ => return Err(format!("wrong format key: {name}")),
            }
        }
        Ok(result)
    }

    fn verify(rule: &Rule, value: &str) -> Result<(), String> {
        match rule.values {
            Some(values) if values.contains(&value) => Ok(()),
            Some(values) => Err(format!("value is not in set: {values:?}")),
            None => match value.parse::<i64>() {
                Ok(number) if number >= -1 => Ok(()),
                Ok(number) => Err(format!("value is not in range(-1, {}): {number}", i64::MAX)),
                Err(_) => Err(format!("not a number: {value}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_changes_parse_like_java() {
        let changes = attributes::parse_changes(Some("+message.type=FIFO,-reserve.time")).unwrap();
        assert_eq!(changes.get("+message.type").map(String::as_str), Some("FIFO"));
        assert_eq!(changes.get("-reserve.time").map(String::as_str), Some(""));
        assert!(attributes::parse_changes(Some("message.type=FIFO")).is_err());
        assert!(attributes::parse_changes(Some("reserve.time")).is_err());
        assert!(attributes::parse_changes(Some("+a=1,+a=2")).is_err());
        assert!(attributes::parse_changes(Some("+a=")).is_err());
        assert!(attributes::parse_changes(None).unwrap().is_empty());
    }

    #[test]
    fn attributes_alter_like_java() {
        let none = BTreeMap::new();
        let add = attributes::parse_changes(Some("+message.type=FIFO,+queue.type=SimpleCQ")).unwrap();
        let created = attributes::alter(true, &none, &add).unwrap();
        assert_eq!(created.get("message.type").map(String::as_str), Some("FIFO"));
        // Unchangeable after creation; deletions only of what exists; values checked.
        let change_queue_type = attributes::parse_changes(Some("+queue.type=BatchCQ")).unwrap();
        assert!(attributes::alter(false, &created, &change_queue_type).is_err());
        let delete_missing = attributes::parse_changes(Some("-reserve.time")).unwrap();
        assert!(attributes::alter(false, &created, &delete_missing).is_err());
        assert!(attributes::alter(true, &none, &delete_missing).is_err());
        let bad_value = attributes::parse_changes(Some("+message.type=WHATEVER")).unwrap();
        assert!(attributes::alter(false, &created, &bad_value).is_err());
        let unknown = attributes::parse_changes(Some("+colour=red")).unwrap();
        assert!(attributes::alter(true, &none, &unknown).is_err());
        let update = attributes::parse_changes(Some("+message.type=NORMAL,+reserve.time=24")).unwrap();
        let updated = attributes::alter(false, &created, &update).unwrap();
        assert_eq!(updated.get("message.type").map(String::as_str), Some("NORMAL"));
        assert_eq!(updated.get("reserve.time").map(String::as_str), Some("24"));
        let delete = attributes::parse_changes(Some("-reserve.time")).unwrap();
        assert!(!attributes::alter(false, &updated, &delete).unwrap().contains_key("reserve.time"));
    }

    #[test]
    fn group_names() {
        assert!(validate_group_name("GID_a-b|c%d").is_ok());
        assert_eq!(validate_group_name(" ").unwrap_err().code, response_code::INVALID_PARAMETER);
        assert!(validate_group_name("a b").is_err());
        assert!(validate_group_name(&"g".repeat(121)).is_err());
    }

    #[test]
    fn paging_requests() {
        let version = DataVersion { counter: 2, state_version: 0, timestamp: 5 };
        assert_eq!(requested_page(None, None, None, &version), None);
        let text = r#"{"counter":2,"stateVersion":0,"timestamp":5}"#;
        assert_eq!(requested_page(Some(10), Some(text), Some(50), &version), Some((10, 50)));
        // A stale version restarts from the beginning; the page size is capped.
        let stale = r#"{"counter":1,"stateVersion":0,"timestamp":5}"#;
        assert_eq!(requested_page(Some(10), Some(stale), None, &version), Some((0, SPLIT_METADATA_SIZE)));
        let table: BTreeMap<String, i32> = (0..5).map(|index| (format!("t{index}"), index)).collect();
        assert_eq!(page(table, 3, 10).into_values().collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn java_number_formats() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(0.25), "0.25");
        assert_eq!(java_double(-1.0), "-1.0");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
