//! (stub) Committed consumer offsets: `config/consumerOffset.json`.

use std::io;

use crate::BrokerConfig;

/// Offsets by (topic, group, queue).
#[derive(Debug, Default)]
pub struct ConsumerOffsetManager {}

impl ConsumerOffsetManager {
    /// Loads `config/consumerOffset.json`.
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self {})
    }
    /// The committed offset.
    pub fn query(&self, _group: &str, _topic: &str, _queue_id: i32) -> Option<i64> {
        unimplemented!()
    }
    /// Commits an offset.
    pub fn commit(&self, _group: &str, _topic: &str, _queue_id: i32, _offset: i64) {
        unimplemented!()
    }
    /// The offset after the last pull (for consume stats).
    pub fn pull_offset(&self, _group: &str, _topic: &str, _queue_id: i32) -> Option<i64> {
        unimplemented!()
    }
    /// Records where the last pull ended.
    pub fn record_pull_offset(&self, _group: &str, _topic: &str, _queue_id: i32, _offset: i64) {
        unimplemented!()
    }
    /// Topics the group has offsets for.
    pub fn topics_of_group(&self, _group: &str) -> Vec<String> {
        unimplemented!()
    }
    /// Groups with offsets on the topic.
    pub fn groups_of_topic(&self, _topic: &str) -> Vec<String> {
        unimplemented!()
    }
    /// Offsets of the group on the topic by queue id.
    pub fn offsets_of(&self, _group: &str, _topic: &str) -> Vec<(i32, i64)> {
        unimplemented!()
    }
    /// Forgets a group's offsets (group deleted with cleanOffset).
    pub fn remove_group(&self, _group: &str) {
        unimplemented!()
    }
    /// Forgets every group's offsets (committed and pulled) on `topic`, when the topic is
    /// deleted (DELETE_TOPIC_IN_BROKER; Java `cleanOffsetByTopic`). In memory only; the next
    /// periodic persist writes it. (Added for the admin handlers; to be implemented by the
    /// owner of this module.)
    pub fn remove_topic(&self, _topic: &str) {
        unimplemented!()
    }
    /// Writes the table to disk (atomically).
    pub fn persist(&self) -> io::Result<()> {
        Ok(())
    }
}
