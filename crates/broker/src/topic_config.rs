//! (temporary, in-memory) Topic configurations.
//!
//! TEMPORARY: a minimal in-memory table so the consumer side can be tested on its own branch.
//! The real manager (persistence in `config/topics.json`, system topics, TBW102 auto-creation)
//! replaces this file at merge; only the public signatures are shared.

use std::collections::BTreeMap;
use std::io;

use apogee_common::{DataVersion, TopicConfig};
use apogee_remoting::body::namesrv::TopicConfigAndMappingSerializeWrapper;
use parking_lot::RwLock;

use crate::BrokerConfig;

/// The broker's topics.
#[derive(Debug, Default)]
pub struct TopicConfigManager {
    table: RwLock<(BTreeMap<String, TopicConfig>, DataVersion)>,
}

impl TopicConfigManager {
    /// Loads `config/topics.json` and adds the system topics (temporary: starts empty).
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self { table: RwLock::new((BTreeMap::new(), DataVersion::new())) })
    }
    /// One topic.
    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table.read().0.get(topic).cloned()
    }
    /// Every topic.
    pub fn all(&self) -> Vec<TopicConfig> {
        self.table.read().0.values().cloned().collect()
    }
    /// Creates or replaces a topic; persists and bumps the data version.
    pub fn create_or_update(&self, config: TopicConfig) -> io::Result<()> {
        let mut table = self.table.write();
        table.0.insert(config.topic_name.clone(), config);
        table.1.next_version();
        Ok(())
    }
    /// Deletes a topic; persists and bumps the data version.
    pub fn delete(&self, topic: &str) -> io::Result<bool> {
        let mut table = self.table.write();
        let removed = table.0.remove(topic).is_some();
        table.1.next_version();
        Ok(removed)
    }
    /// The topic, created with `queue_nums` queues and `perm` when missing (retry and DLQ topics).
    pub fn get_or_create_system(&self, topic: &str, queue_nums: i32, perm: i32) -> io::Result<TopicConfig> {
        let mut table = self.table.write();
        if let Some(config) = table.0.get(topic) {
            return Ok(config.clone());
        }
        let config = TopicConfig::with_queues(topic, queue_nums, queue_nums, perm);
        table.0.insert(topic.to_owned(), config.clone());
        table.1.next_version();
        Ok(config)
    }
    /// Current data version.
    pub fn data_version(&self) -> DataVersion {
        self.table.read().1
    }
    /// The body of GET_ALL_TOPIC_CONFIG and of REGISTER_BROKER.
    pub fn serialize_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        let table = self.table.read();
        TopicConfigAndMappingSerializeWrapper {
            data_version: table.1,
            topic_config_table: table.0.clone(),
            ..TopicConfigAndMappingSerializeWrapper::default()
        }
    }
    /// Whether the topic is ordered.
    pub fn is_order_topic(&self, topic: &str) -> bool {
        self.table.read().0.get(topic).is_some_and(|config| config.order)
    }
}
