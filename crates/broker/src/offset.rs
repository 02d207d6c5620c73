//! (stub) Committed consumer offsets: `config/consumerOffset.json`.
//!
//! TEMPORARY in-memory implementation for the admin tests of branch `b-admin`; the real module
//! replaces it at merge.

use std::collections::BTreeMap;
use std::io;

use parking_lot::Mutex;

use crate::BrokerConfig;

/// (group, topic, queue) → offset.
type Table = BTreeMap<(String, String, i32), i64>;

/// Offsets by (topic, group, queue).
#[derive(Debug, Default)]
pub struct ConsumerOffsetManager {
    committed: Mutex<Table>,
    pulled: Mutex<Table>,
}

impl ConsumerOffsetManager {
    /// Loads `config/consumerOffset.json`.
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self::default())
    }
    /// The committed offset.
    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.committed.lock().get(&(group.to_owned(), topic.to_owned(), queue_id)).copied()
    }
    /// Commits an offset.
    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.committed.lock().insert((group.to_owned(), topic.to_owned(), queue_id), offset);
    }
    /// The offset after the last pull (for consume stats).
    pub fn pull_offset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.pulled.lock().get(&(group.to_owned(), topic.to_owned(), queue_id)).copied()
    }
    /// Records where the last pull ended.
    pub fn record_pull_offset(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.pulled.lock().insert((group.to_owned(), topic.to_owned(), queue_id), offset);
    }
    /// Topics the group has offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let mut topics: Vec<String> =
            self.committed.lock().keys().filter(|key| key.0 == group).map(|key| key.1.clone()).collect();
        topics.dedup();
        topics
    }
    /// Groups with offsets on the topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let mut groups: Vec<String> =
            self.committed.lock().keys().filter(|key| key.1 == topic).map(|key| key.0.clone()).collect();
        groups.sort();
        groups.dedup();
        groups
    }
    /// Offsets of the group on the topic by queue id.
    pub fn offsets_of(&self, group: &str, topic: &str) -> Vec<(i32, i64)> {
        self.committed
            .lock()
            .iter()
            .filter(|(key, _)| key.0 == group && key.1 == topic)
            .map(|(key, offset)| (key.2, *offset))
            .collect()
    }
    /// Forgets a group's offsets (group deleted with cleanOffset).
    pub fn remove_group(&self, group: &str) {
        self.committed.lock().retain(|key, _| key.0 != group);
        self.pulled.lock().retain(|key, _| key.0 != group);
    }
    /// Forgets every group's offsets (committed and pulled) on `topic`, when the topic is
    /// deleted (DELETE_TOPIC_IN_BROKER; Java `cleanOffsetByTopic`). In memory only; the next
    /// periodic persist writes it. (Added for the admin handlers; to be implemented by the
    /// owner of this module.)
    pub fn remove_topic(&self, topic: &str) {
        self.committed.lock().retain(|key, _| key.1 != topic);
        self.pulled.lock().retain(|key, _| key.1 != topic);
    }
    /// Writes the table to disk (atomically).
    pub fn persist(&self) -> io::Result<()> {
        Ok(())
    }
}
