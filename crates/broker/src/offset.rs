//! Committed consumer offsets: for every (topic, group) the next offset to consume of each
//! queue, kept in `config/consumerOffset.json` in Apache RocketMQ's format (behaviour spec §4.5):
//! `{"offsetTable":{"topic@group":{0:5,1:7}}}`, with fastjson's bare numeric queue keys.
//!
//! Commits only touch memory; the broker writes the table every `flushConsumerOffsetInterval`
//! and at shutdown ([`ConsumerOffsetManager::persist`], which skips the write when nothing
//! changed). Alongside, in memory only: where each group's last pull ended (for consume stats)
//! and offsets an admin reset is waiting to hand to the group's next pull.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;

use apogee_common::DataVersion;
use apogee_remoting::fastjson::{self, Dialect};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::BrokerConfig;

/// File name under the config directory.
pub const FILE_NAME: &str = "consumerOffset.json";

/// Separator of the `topic@group` keys (Java `TOPIC_GROUP_SEPARATOR`).
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// Queue id → offset.
type QueueOffsets = BTreeMap<i32, i64>;

/// The persisted form (Java `ConsumerOffsetManager` as fastjson writes it).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetFile {
    data_version: DataVersion,
    offset_table: BTreeMap<String, QueueOffsets>,
}

/// Offsets by (topic, group, queue).
#[derive(Debug)]
pub struct ConsumerOffsetManager {
    path: PathBuf,
    tables: Mutex<Tables>,
    /// Held while a snapshot is taken and written, so writes land in change order; holds
    /// the change count last written.
    writer: Mutex<u64>,
}

#[derive(Debug, Default)]
struct Tables {
    committed: HashMap<String, QueueOffsets>,
    pulled: HashMap<String, QueueOffsets>,
    reset: HashMap<String, QueueOffsets>,
    data_version: DataVersion,
    /// Bumped on every change of `committed`.
    changes: u64,
}

/// The `topic@group` key.
fn key(group: &str, topic: &str) -> String {
    let mut key = String::with_capacity(topic.len() + group.len() + 1);
    key.push_str(topic);
    key.push(TOPIC_GROUP_SEPARATOR);
    key.push_str(group);
    key
}

/// Splits a `topic@group` key; topics cannot contain `@`, so the first one separates.
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once(TOPIC_GROUP_SEPARATOR)
}

impl ConsumerOffsetManager {
    /// Loads `config/consumerOffset.json` (absent: empty). A file that does not parse is an
    /// error rather than silently dropped offsets.
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        let path = config.config_dir().join(FILE_NAME);
        let mut tables = Tables { data_version: DataVersion::new(), ..Tables::default() };
        let persisted = apogee_common::fs::read_state_file(&path, |bytes| {
            fastjson::from_slice::<OffsetFile>(bytes).map_err(|error| error.to_string())
        })?;
        if let Some(file) = persisted {
            tables.committed = file.offset_table.into_iter().collect();
            tables.data_version = file.data_version;
        }
        Ok(Self { path, tables: Mutex::new(tables), writer: Mutex::new(0) })
    }

    /// The committed offset.
    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.tables.lock().committed.get(&key(group, topic)).and_then(|queues| queues.get(&queue_id)).copied()
    }

    /// Commits an offset (overwrites; a lower value than stored is only logged, as in Java).
    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut tables = self.tables.lock();
        let previous = tables.committed.entry(key(group, topic)).or_default().insert(queue_id, offset);
        tables.changes += 1;
        drop(tables);
        if let Some(previous) = previous.filter(|previous| offset < *previous) {
            tracing::debug!(group, topic, queue_id, offset, previous, "consumer offset moved back");
        }
    }

    /// The offset after the last pull (for consume stats).
    pub fn pull_offset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.tables.lock().pulled.get(&key(group, topic)).and_then(|queues| queues.get(&queue_id)).copied()
    }

    /// Records where the last pull ended.
    pub fn record_pull_offset(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.tables.lock().pulled.entry(key(group, topic)).or_default().insert(queue_id, offset);
    }

    /// Topics the group has offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        self.committed_names(|topic, owner| (owner == group).then(|| topic.to_owned()))
    }

    /// Groups with offsets on the topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        self.committed_names(|subject, group| (subject == topic).then(|| group.to_owned()))
    }

    /// What `pick` takes from the `(topic, group)` of every committed key, sorted.
    fn committed_names(&self, pick: impl Fn(&str, &str) -> Option<String>) -> Vec<String> {
        let tables = self.tables.lock();
        let mut names: Vec<String> = tables
            .committed
            .keys()
            .filter_map(|key| split_key(key))
            .filter_map(|(topic, group)| pick(topic, group))
            .collect();
        names.sort_unstable();
        names
    }

    /// Offsets of the group on the topic by queue id.
    pub fn offsets_of(&self, group: &str, topic: &str) -> Vec<(i32, i64)> {
        let tables = self.tables.lock();
        tables
            .committed
            .get(&key(group, topic))
            .map(|queues| queues.iter().map(|(queue, offset)| (*queue, *offset)).collect())
            .unwrap_or_default()
    }

    /// Forgets a group's offsets (group deleted with cleanOffset).
    pub fn remove_group(&self, group: &str) {
        self.remove_keys(|_, owner| owner == group);
    }

    /// Forgets every group's offsets on a topic (topic deleted).
    pub fn remove_topic(&self, topic: &str) {
        self.remove_keys(|subject, _| subject == topic);
    }

    /// Forgets the committed, pulled and reset offsets of every `(topic, group)` key that
    /// `matches`.
    fn remove_keys(&self, matches: impl Fn(&str, &str) -> bool) {
        let mut tables = self.tables.lock();
        let doomed = |key: &String| split_key(key).is_some_and(|(topic, group)| matches(topic, group));
        tables.committed.retain(|key, _| !doomed(key));
        tables.pulled.retain(|key, _| !doomed(key));
        tables.reset.retain(|key, _| !doomed(key));
        tables.changes += 1;
    }

    /// Copies `source`'s offsets on `topic` to `target` (admin cloneGroupOffset).
    pub fn clone_offsets(&self, source: &str, target: &str, topic: &str) {
        let mut tables = self.tables.lock();
        if let Some(queues) = tables.committed.get(&key(source, topic)).cloned() {
            tables.committed.insert(key(target, topic), queues);
            tables.changes += 1;
        }
    }

    /// Sets an offset the group's next pull of the queue must start from (server-side reset):
    /// the offset is committed now, and the next pull answers PULL_OFFSET_MOVED to it while
    /// offset commits from the client are ignored until then.
    pub fn assign_reset_offset(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let key = key(group, topic);
        let mut tables = self.tables.lock();
        tables.committed.entry(key.clone()).or_default().insert(queue_id, offset);
        tables.reset.entry(key).or_default().insert(queue_id, offset);
        tables.changes += 1;
    }

    /// Whether a server-side reset waits for the group's next pull of the queue.
    pub fn has_reset_offset(&self, group: &str, topic: &str, queue_id: i32) -> bool {
        let tables = self.tables.lock();
        // Every offset commit asks; with no reset pending (the usual case) no key is built.
        !tables.reset.is_empty()
            && tables.reset.get(&key(group, topic)).is_some_and(|queues| queues.contains_key(&queue_id))
    }

    /// Takes the pending server-side reset of the queue, if any.
    pub fn take_reset_offset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let mut tables = self.tables.lock();
        if tables.reset.is_empty() {
            return None;
        }
        let key = key(group, topic);
        let queues = tables.reset.get_mut(&key)?;
        let offset = queues.remove(&queue_id)?;
        if queues.is_empty() {
            tables.reset.remove(&key);
        }
        Some(offset)
    }

    /// Version of the table (bumped by admin-visible changes when persisted).
    pub fn data_version(&self) -> DataVersion {
        self.tables.lock().data_version
    }

    /// Takes the master's committed offsets (the body of its GET_ALL_CONSUMER_OFFSET) over
    /// this table's, as Java's slave does (`putAll`: the master's entries win, others stay).
    /// Whether the body was readable.
    pub fn merge_from_master(&self, body: &[u8]) -> Result<usize, String> {
        let file: OffsetFile = fastjson::from_slice(body).map_err(|error| error.to_string())?;
        let entries = file.offset_table.len();
        let mut tables = self.tables.lock();
        for (key, queues) in file.offset_table {
            tables.committed.insert(key, queues);
        }
        tables.data_version = file.data_version;
        tables.changes += 1;
        Ok(entries)
    }

    /// The table as Java writes it: the persisted file and the body of GET_ALL_CONSUMER_OFFSET.
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        self.snapshot().1
    }

    /// The change count and the encoded table.
    fn snapshot(&self) -> (u64, io::Result<Vec<u8>>) {
        let file = {
            let tables = self.tables.lock();
            let file = OffsetFile {
                data_version: tables.data_version,
                offset_table: tables
                    .committed
                    .iter()
                    .map(|(key, queues)| (key.clone(), queues.clone()))
                    .collect(),
            };
            (tables.changes, file)
        };
        let bytes = fastjson::to_vec(&file.1, Dialect::Fastjson)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()));
        (file.0, bytes)
    }

    /// Writes the table to disk (atomically) when it changed since the last write. Blocking:
    /// the broker calls it from the blocking pool.
    pub fn persist(&self) -> io::Result<()> {
        let mut written = self.writer.lock();
        let changes = self.tables.lock().changes;
        if changes == *written {
            return Ok(());
        }
        {
            let mut tables = self.tables.lock();
            tables.data_version.next_version();
        }
        let (changes, bytes) = self.snapshot();
        apogee_common::fs::write_atomically(&self.path, &bytes?)?;
        *written = changes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_query_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsetManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        assert_eq!(offsets.query("g", "T", 0), None);
        offsets.commit("g", "T", 0, 5);
        offsets.commit("g", "T", 1, 7);
        offsets.commit("h", "T", 0, 1);
        offsets.commit("g", "U", 3, 2);
        offsets.commit("g", "T", 0, 4);
        assert_eq!(offsets.query("g", "T", 0), Some(4));
        assert_eq!(offsets.offsets_of("g", "T"), vec![(0, 4), (1, 7)]);
        assert_eq!(offsets.topics_of_group("g"), vec!["T", "U"]);
        assert_eq!(offsets.groups_of_topic("T"), vec!["g", "h"]);
        offsets.record_pull_offset("g", "T", 0, 9);
        assert_eq!(offsets.pull_offset("g", "T", 0), Some(9));
        offsets.persist().unwrap();

        let text = std::fs::read_to_string(dir.path().join("config").join(FILE_NAME)).unwrap();
        assert!(text.contains(r#""T@g":{0:4,1:7}"#), "{text}");

        let reloaded = ConsumerOffsetManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        assert_eq!(reloaded.query("g", "T", 1), Some(7));
        assert_eq!(reloaded.pull_offset("g", "T", 0), None);
        reloaded.remove_group("g");
        assert_eq!(reloaded.query("g", "T", 1), None);
        assert_eq!(reloaded.query("h", "T", 0), Some(1));
        reloaded.remove_topic("T");
        assert_eq!(reloaded.query("h", "T", 0), None);
    }

    #[test]
    fn reads_java_quoted_keys_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(FILE_NAME), r#"{"offsetTable":{"T@g":{"0":11,"2":"13"}}}"#).unwrap();
        let offsets = ConsumerOffsetManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        assert_eq!(offsets.query("g", "T", 2), Some(13));
        offsets.assign_reset_offset("g", "T", 2, 1);
        assert!(offsets.has_reset_offset("g", "T", 2));
        assert_eq!(offsets.query("g", "T", 2), Some(1));
        assert_eq!(offsets.take_reset_offset("g", "T", 2), Some(1));
        assert_eq!(offsets.take_reset_offset("g", "T", 2), None);
        offsets.clone_offsets("g", "g2", "T");
        assert_eq!(offsets.query("g2", "T", 0), Some(11));
    }
}
