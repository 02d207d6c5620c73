//! (stub) Topic configurations: `config/topics.json`, system topics, auto-creation.
//!
//! TEMPORARY in-memory implementation for the admin tests of branch `b-admin`; the real module
//! replaces it at merge.

use std::collections::BTreeMap;
use std::io;

use apogee_common::{perm, topic, DataVersion, TopicConfig};
use apogee_remoting::body::namesrv::TopicConfigAndMappingSerializeWrapper;
use parking_lot::Mutex;

use crate::BrokerConfig;

/// The broker's topics.
#[derive(Debug, Default)]
pub struct TopicConfigManager {
    table: Mutex<(BTreeMap<String, TopicConfig>, DataVersion)>,
}

impl TopicConfigManager {
    /// Loads `config/topics.json` and adds the system topics.
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        let mut table = BTreeMap::new();
        let mut add = |config: TopicConfig| {
            table.insert(config.topic_name.clone(), config);
        };
        add(TopicConfig::with_queues(topic::SCHEDULE_TOPIC, 18, 18, perm::READ_WRITE));
        add(TopicConfig::with_queues(topic::SELF_TEST_TOPIC, 1, 1, perm::READ_WRITE));
        add(TopicConfig::with_queues(
            topic::AUTO_CREATE_TOPIC_KEY,
            config.default_topic_queue_nums,
            config.default_topic_queue_nums,
            perm::READ_WRITE | perm::INHERIT,
        ));
        Ok(Self { table: Mutex::new((table, DataVersion::new())) })
    }
    /// One topic.
    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table.lock().0.get(topic).cloned()
    }
    /// Every topic.
    pub fn all(&self) -> Vec<TopicConfig> {
        self.table.lock().0.values().cloned().collect()
    }
    /// Creates or replaces a topic; persists and bumps the data version.
    pub fn create_or_update(&self, config: TopicConfig) -> io::Result<()> {
        let mut table = self.table.lock();
        table.0.insert(config.topic_name.clone(), config);
        table.1.next_version();
        Ok(())
    }
    /// Deletes a topic; persists and bumps the data version.
    pub fn delete(&self, topic: &str) -> io::Result<bool> {
        let mut table = self.table.lock();
        let removed = table.0.remove(topic).is_some();
        table.1.next_version();
        Ok(removed)
    }
    /// The topic, created with `queue_nums` queues and `perm` when missing (retry and DLQ topics).
    pub fn get_or_create_system(&self, topic: &str, queue_nums: i32, perm: i32) -> io::Result<TopicConfig> {
        let mut table = self.table.lock();
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
        self.table.lock().1
    }
    /// The body of GET_ALL_TOPIC_CONFIG and of REGISTER_BROKER.
    pub fn serialize_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        let table = self.table.lock();
        TopicConfigAndMappingSerializeWrapper {
            data_version: table.1,
            topic_config_table: table.0.clone(),
            ..Default::default()
        }
    }
    /// Whether the topic is ordered.
    pub fn is_order_topic(&self, topic: &str) -> bool {
        self.table.lock().0.get(topic).is_some_and(|config| config.order)
    }
}
