//! Topic maintenance: create or update (one, or a list checked whole before any is
//! stored), delete, and read the topic table (whole or by pages) or one topic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use apogee_common::topic::{self as topic_names, TopicNameError};
use apogee_common::{perm, TopicConfig, TopicFilterType};
use apogee_remoting::body::namesrv::TopicConfigAndMappingSerializeWrapper;
use apogee_remoting::code::response_code;

use super::attributes;
use super::paging::{page, requested_page, PageRequest};
use super::{invalid, MAX_QUEUE_NUMS};
use crate::core::blocking;
use crate::core::error::{CoreResult, Error};
use crate::BrokerState;

/// Topic changes run one at a time (Java's handlers are `synchronized`), so two updates of
/// one topic cannot both merge their attribute changes into the same old table.
fn topic_changes() -> &'static tokio::sync::Mutex<()> {
    static CHANGES: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    CHANGES.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// A topic as an admin asks for it, with its filter type and attribute changes still as text
/// (they are checked after the rest, in Java's order).
#[derive(Debug, Clone, Copy)]
pub struct TopicRequest<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Read queues.
    pub read_queue_nums: i32,
    /// Write queues.
    pub write_queue_nums: i32,
    /// Permission bits.
    pub perm: i32,
    /// `topicSysFlag`; absent means 0.
    pub topic_sys_flag: Option<i32>,
    /// Ordered topic.
    pub order: bool,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    pub topic_filter_type: &'a str,
    /// Attribute changes, `+key=value,-key`.
    pub attributes: Option<&'a str>,
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

/// A topic as an admin asks for it: the wanted config with its attributes still as changes
/// (`+key` → value, `-key` → ""), as both UPDATE_AND_CREATE_TOPIC and its list form carry it.
fn check_requested_topic(requested: &TopicConfig) -> CoreResult<()> {
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
fn refuse_mixed_type(changes: &BTreeMap<String, String>) -> CoreResult<()> {
    if changes.get(&format!("+{}", attributes::MESSAGE_TYPE)).map(String::as_str) == Some("MIXED") {
        return Err(invalid("MIXED message type is not supported."));
    }
    Ok(())
}

/// The config to store for a checked request: its attribute changes applied to the topic's
/// current attributes. `None` when the topic already is exactly that.
fn merged_topic_config(state: &BrokerState, requested: &TopicConfig) -> Result<Option<TopicConfig>, Error> {
    let existing = state.topics.get(&requested.topic_name);
    let current = existing.as_ref().map(|config| config.attributes.clone()).unwrap_or_default();
    let mut config = requested.clone();
    config.attributes =
        attributes::alter(existing.is_none(), &current, &requested.attributes).map_err(Error::system)?;
    if existing.as_ref() == Some(&config) {
        tracing::info!(topic = %config.topic_name, "topic unchanged; nothing to update");
        return Ok(None);
    }
    Ok(Some(config))
}

/// Stores checked, merged topic configs (off the async workers: the manager persists).
async fn store_topic_configs(state: &Arc<BrokerState>, configs: Vec<TopicConfig>) -> CoreResult<()> {
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
                .map_err(|error| Error::system(format!("update topic {topic} failed: {error}")))?;
        }
        Ok(())
    })
    .await?
}

/// Creates or updates one topic.
pub async fn create_or_update_topic(state: &Arc<BrokerState>, request: &TopicRequest<'_>) -> CoreResult<()> {
    let mut requested = TopicConfig::new(request.topic.to_owned());
    requested.read_queue_nums = request.read_queue_nums;
    requested.write_queue_nums = request.write_queue_nums;
    requested.perm = request.perm;
    requested.topic_sys_flag = request.topic_sys_flag.unwrap_or(0);
    requested.order = request.order;
    check_requested_topic(&requested)?;
    requested.topic_filter_type = TopicFilterType::parse(request.topic_filter_type)
        .ok_or_else(|| Error::system(format!("unknown topicFilterType {}", request.topic_filter_type)))?;
    requested.attributes = attributes::parse_changes(request.attributes).map_err(Error::system)?;
    refuse_mixed_type(&requested.attributes)?;
    let _one_at_a_time = topic_changes().lock().await;
    let merged = merged_topic_config(state, &requested)?;
    store_topic_configs(state, merged.into_iter().collect()).await
}

/// Creates or updates topics whose attributes are changes (`+key` → value): every topic is
/// checked before any is stored; topics already as asked are left alone.
pub async fn create_or_update_topics(state: &Arc<BrokerState>, requested: &[TopicConfig]) -> CoreResult<()> {
    for config in requested {
        check_requested_topic(config)?;
    }
    let _one_at_a_time = topic_changes().lock().await;
    let mut configs = Vec::new();
    for config in requested {
        configs.extend(merged_topic_config(state, config)?);
    }
    store_topic_configs(state, configs).await
}

/// Drops the topic, its consume queues and every group's offsets on it, plus the pop retry
/// topics of the groups that consumed it.
pub async fn delete_topic(state: &Arc<BrokerState>, topic: &str) -> CoreResult<()> {
    if topic.trim().is_empty() {
        return Err(invalid("The specified topic is blank."));
    }
    if topic_names::is_system_topic(topic) {
        return Err(invalid(format!("The topic[{topic}] is conflict with system topic.")));
    }
    let topic = topic.to_owned();
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
    .map_err(|error| Error::system(error.to_string()))?;
    Ok(())
}

/// The topic table and how many topics the broker has (a page holds fewer).
#[derive(Debug)]
pub struct TopicTable {
    /// The table (or the page asked for).
    pub table: TopicConfigAndMappingSerializeWrapper,
    /// Topics on the broker.
    pub total: usize,
}

/// The topic table: whole, or the page a 5.x peer asks for. An error when there is no topic.
pub fn topic_table(state: &BrokerState, page_request: Option<&PageRequest>) -> CoreResult<TopicTable> {
    let mut wrapper = state.topics.serialize_wrapper();
    let total = wrapper.topic_config_table.len();
    if total == 0 {
        return Err(Error::system("No topic in this broker"));
    }
    if let Some((start, size)) = requested_page(page_request, &wrapper.data_version) {
        wrapper.topic_config_table = page(wrapper.topic_config_table, start, size);
        let kept: BTreeSet<&String> = wrapper.topic_config_table.keys().collect();
        wrapper.topic_queue_mapping_detail_map.retain(|topic, _| kept.contains(topic));
        wrapper.topic_queue_mapping_info_map.retain(|topic, _| kept.contains(topic));
    }
    Ok(TopicTable { table: wrapper, total })
}

/// One topic's config.
pub fn topic(state: &BrokerState, topic: &str) -> CoreResult<TopicConfig> {
    state.topics.get(topic).ok_or_else(|| {
        Error::new(response_code::TOPIC_NOT_EXIST, format!("No topic in this broker. topic: {topic}"))
    })
}
