//! (stub) Topic configurations: `config/topics.json`, system topics, auto-creation.

use std::io;

use apogee_common::{DataVersion, TopicConfig};
use apogee_remoting::body::namesrv::TopicConfigAndMappingSerializeWrapper;

use crate::BrokerConfig;

/// The broker's topics.
#[derive(Debug, Default)]
pub struct TopicConfigManager {}

impl TopicConfigManager {
    /// Loads `config/topics.json` and adds the system topics.
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self {})
    }
    /// One topic.
    pub fn get(&self, _topic: &str) -> Option<TopicConfig> {
        unimplemented!()
    }
    /// Every topic.
    pub fn all(&self) -> Vec<TopicConfig> {
        unimplemented!()
    }
    /// Creates or replaces a topic; persists and bumps the data version.
    pub fn create_or_update(&self, _config: TopicConfig) -> io::Result<()> {
        unimplemented!()
    }
    /// Deletes a topic; persists and bumps the data version.
    pub fn delete(&self, _topic: &str) -> io::Result<bool> {
        unimplemented!()
    }
    /// The topic, created with `queue_nums` queues and `perm` when missing (retry and DLQ topics).
    pub fn get_or_create_system(
        &self,
        _topic: &str,
        _queue_nums: i32,
        _perm: i32,
    ) -> io::Result<TopicConfig> {
        unimplemented!()
    }
    /// Current data version.
    pub fn data_version(&self) -> DataVersion {
        unimplemented!()
    }
    /// The body of GET_ALL_TOPIC_CONFIG and of REGISTER_BROKER.
    pub fn serialize_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        unimplemented!()
    }
    /// Whether the topic is ordered.
    pub fn is_order_topic(&self, _topic: &str) -> bool {
        unimplemented!()
    }
}
