//! Topic configurations: `config/topics.json`, the system topics every broker has, and the
//! auto-creation of unknown topics from a template (behaviour spec §0.4, §2.3).
//!
//! The table lives behind a read/write lock and hands out `Arc`s, so the send path's lookup
//! is a read lock and a reference-count bump. Every change bumps the [`DataVersion`],
//! rewrites `topics.json` (outside the table lock) and wakes the registration loop
//! ([`crate::register::run`]), which re-registers with every NameServer at once.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apogee_common::topic::{self, TopicConfig};
use apogee_common::{perm, DataVersion};
use apogee_remoting::body::namesrv::{TopicConfigAndMappingSerializeWrapper, TopicConfigSerializeWrapper};
use apogee_remoting::fastjson::{self, Dialect};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;

use crate::BrokerConfig;

/// File name of the persisted table inside the config directory (Java's name).
pub const TOPICS_FILE: &str = "topics.json";
/// Queues of `SCHEDULE_TOPIC_XXXX`: one per delay level of the default level table.
pub const SCHEDULE_TOPIC_QUEUE_NUMS: i32 = 18;
/// Queues of `BenchmarkTest`.
pub const BENCHMARK_TOPIC_QUEUE_NUMS: i32 = 1024;
/// Queues of the topic named after the cluster.
pub const CLUSTER_TOPIC_QUEUE_NUMS: i32 = 16;
/// Queues of the POP revive topic (Java `reviveQueueNum`).
pub const REVIVE_TOPIC_QUEUE_NUMS: i32 = 8;
/// Suffix of the request/reply topic, `<cluster>_REPLY_TOPIC`.
pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";
/// Prefix of the POP revive topic, `rmq_sys_REVIVE_LOG_<cluster>`.
pub const REVIVE_TOPIC_PREFIX: &str = "rmq_sys_REVIVE_LOG_";
/// Prefix of the broker-member sync topic, `rmq_sys_SYNC_BROKER_MEMBER_<brokerName>`.
pub const SYNC_BROKER_MEMBER_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";
/// `topicSysFlag` bit of a unit topic (Java `TopicSysFlag.FLAG_UNIT`).
pub const TOPIC_SYS_FLAG_UNIT: i32 = 1;
/// `topicSysFlag` bit of a topic with unit subscriptions (Java `TopicSysFlag.FLAG_UNIT_SUB`).
pub const TOPIC_SYS_FLAG_UNIT_SUB: i32 = 2;
/// Namespace of the NameServer KV table whose keys are the ordered topics.
pub const ORDER_TOPIC_CONFIG_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

pub use apogee_common::topic::{is_not_allowed_send_topic, NOT_ALLOWED_SEND_TOPICS};

/// What auto-creation needs to know about the request (behaviour spec §2.3).
#[derive(Debug, Clone, Copy)]
pub struct AutoCreateRequest<'a> {
    /// The unknown topic.
    pub topic: &'a str,
    /// The template the producer named (`defaultTopic`, normally `TBW102`).
    pub default_topic: &'a str,
    /// Queue count the producer asked for (`defaultTopicQueueNums`).
    pub queue_nums: i32,
    /// Unit flags for the new topic.
    pub topic_sys_flag: i32,
}

/// The table and its version, always changed together.
#[derive(Debug)]
struct Table {
    topics: HashMap<String, Arc<TopicConfig>>,
    data_version: DataVersion,
}

/// `topics.json` as written: Java's `TopicConfigSerializeWrapper`, from borrowed parts so the
/// table lock is held only while the bytes are produced.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PersistedRef<'a> {
    data_version: &'a DataVersion,
    topic_config_table: BTreeMap<&'a str, &'a TopicConfig>,
}

/// The broker's topics.
#[derive(Debug)]
pub struct TopicConfigManager {
    path: PathBuf,
    table: RwLock<Table>,
    /// Serializes file writes, so an older snapshot never lands after a newer one.
    persist_lock: Mutex<()>,
    /// Woken on every change; the registration loop waits on it.
    changed: Notify,
    /// `autoCreateTopicEnable`: when off, TBW102 loses its INHERIT bit on first use.
    auto_create_topic_enable: bool,
}

/// A topic read from `topics.json` or from the master as a table entry: Java keys each topic
/// by its name, so one read without a name takes its key.
fn table_entry((name, mut topic): (String, TopicConfig)) -> (String, Arc<TopicConfig>) {
    if topic.topic_name.is_empty() {
        topic.topic_name.clone_from(&name);
    }
    (name, Arc::new(topic))
}

impl TopicConfigManager {
    /// Loads `config/topics.json` and adds the system topics. Persisted entries override the
    /// built-in ones (as Java's load after init does); a corrupt file falls back to its
    /// `.bak` copy, and fails the start when that is unreadable too.
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        let path = config.config_dir().join(TOPICS_FILE);
        let mut topics: HashMap<String, Arc<TopicConfig>> = system_topics(config)
            .into_iter()
            .map(|topic| (topic.topic_name.clone(), Arc::new(topic)))
            .collect();
        let data_version = match read_persisted(&path)? {
            Some(persisted) => {
                topics.extend(persisted.topic_config_table.into_iter().map(table_entry));
                persisted.data_version
            }
            None => DataVersion::new(),
        };
        tracing::info!(topics = topics.len(), path = %path.display(), "topic configs loaded");
        Ok(Self {
            path,
            table: RwLock::new(Table { topics, data_version }),
            persist_lock: Mutex::new(()),
            changed: Notify::new(),
            auto_create_topic_enable: config.auto_create_topic_enable,
        })
    }

    /// One topic.
    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.lookup(topic).map(|config| (*config).clone())
    }

    /// One topic, shared rather than copied: the send path's lookup.
    pub fn lookup(&self, topic: &str) -> Option<Arc<TopicConfig>> {
        self.table.read().topics.get(topic).cloned()
    }

    /// Whether the topic exists.
    pub fn contains(&self, topic: &str) -> bool {
        self.table.read().topics.contains_key(topic)
    }

    /// Every topic.
    pub fn all(&self) -> Vec<TopicConfig> {
        self.table.read().topics.values().map(|config| (**config).clone()).collect()
    }

    /// Creates or replaces a topic; persists and bumps the data version.
    pub fn create_or_update(&self, config: TopicConfig) -> io::Result<()> {
        self.edit_table(|table| {
            table.topics.insert(config.topic_name.clone(), Arc::new(config));
            true
        });
        self.changed_and_persist()
    }

    /// Deletes a topic; persists and bumps the data version.
    pub fn delete(&self, topic: &str) -> io::Result<bool> {
        let removed = self.edit_table(|table| table.topics.remove(topic).is_some());
        if removed {
            self.changed_and_persist()?;
        }
        Ok(removed)
    }

    /// The topic, created with `queue_nums` queues and `perm` when missing (retry and DLQ topics).
    pub fn get_or_create_system(&self, topic: &str, queue_nums: i32, perm: i32) -> io::Result<TopicConfig> {
        self.get_or_create_shared(topic, queue_nums, perm, 0).map(|config| (*config).clone())
    }

    /// [`Self::get_or_create_system`] with unit flags, returning the shared entry.
    pub fn get_or_create_shared(
        &self,
        topic: &str,
        queue_nums: i32,
        perm: i32,
        topic_sys_flag: i32,
    ) -> io::Result<Arc<TopicConfig>> {
        if let Some(existing) = self.lookup(topic) {
            return Ok(existing);
        }
        let created = {
            let mut table = self.table.write();
            if let Some(existing) = table.topics.get(topic) {
                return Ok(Arc::clone(existing));
            }
            let mut config = TopicConfig::with_queues(topic, queue_nums, queue_nums, perm);
            config.topic_sys_flag = topic_sys_flag;
            let config = Arc::new(config);
            table.topics.insert(topic.to_owned(), Arc::clone(&config));
            table.data_version.next_version();
            config
        };
        tracing::info!(topic, queue_nums, perm, "topic created");
        self.changed_and_persist()?;
        Ok(created)
    }

    /// Creates an unknown topic a producer sends to, from the template it named (behaviour
    /// spec §2.3): with INHERIT on the template, read = write = `min(asked, template write
    /// queues)` (at least 0), the template's perm without INHERIT, its filter type and the
    /// request's unit flags; otherwise a `%RETRY%` topic gets 1 read-write queue; otherwise
    /// `None` (TOPIC_NOT_EXIST). An existing topic is returned as it is.
    pub fn create_for_send(&self, request: AutoCreateRequest<'_>) -> io::Result<Option<Arc<TopicConfig>>> {
        let created = {
            let mut table = self.table.write();
            if let Some(existing) = table.topics.get(request.topic) {
                return Ok(Some(Arc::clone(existing)));
            }
            let mut template = table.topics.get(request.default_topic).cloned();
            if request.default_topic == topic::AUTO_CREATE_TOPIC_KEY && !self.auto_create_topic_enable {
                // Java strips the template bit from TBW102 in place when auto-creation is off.
                if let Some(current) = template.as_mut().filter(|config| config.perm != perm::READ_WRITE) {
                    let mut stripped = (**current).clone();
                    stripped.perm = perm::READ_WRITE;
                    *current = Arc::new(stripped);
                    table.topics.insert(request.default_topic.to_owned(), Arc::clone(current));
                }
            }
            let config = match template {
                Some(template) if perm::is_inherited(template.perm) => {
                    let queues = request.queue_nums.min(template.write_queue_nums).max(0);
                    let mut config = TopicConfig::with_queues(
                        request.topic,
                        queues,
                        queues,
                        template.perm & !perm::INHERIT,
                    );
                    config.topic_sys_flag = request.topic_sys_flag;
                    config.topic_filter_type = template.topic_filter_type;
                    Some(config)
                }
                _ if topic::is_retry_topic(request.topic) => {
                    let mut config = TopicConfig::with_queues(request.topic, 1, 1, perm::READ_WRITE);
                    config.topic_sys_flag = request.topic_sys_flag;
                    Some(config)
                }
                _ => None,
            };
            let Some(config) = config else {
                tracing::warn!(
                    topic = request.topic,
                    default_topic = request.default_topic,
                    "topic not created: the default topic is missing or has no inherit permission"
                );
                return Ok(None);
            };
            let config = Arc::new(config);
            table.topics.insert(request.topic.to_owned(), Arc::clone(&config));
            table.data_version.next_version();
            config
        };
        tracing::info!(
            topic = %created.topic_name,
            default_topic = request.default_topic,
            queues = created.write_queue_nums,
            perm = created.perm,
            "topic auto-created on send"
        );
        self.changed_and_persist()?;
        Ok(Some(created))
    }

    /// Marks the given topics ordered (the `ORDER_TOPIC_CONFIG` table a NameServer returns to
    /// a registration); persists when anything changed. Returns whether anything did. Does
    /// not wake the registration loop: the change came from a registration.
    pub fn mark_order_topics<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> io::Result<bool> {
        let changed = self.edit_table(|table| {
            let mut changed = false;
            for name in topics {
                if let Some(config) = table.topics.get_mut(name) {
                    if !config.order {
                        Arc::make_mut(config).order = true;
                        changed = true;
                    }
                }
            }
            changed
        });
        if changed {
            self.persist()?;
        }
        Ok(changed)
    }

    /// Takes the master's table whole when its version differs from this one (a slave's
    /// copy, Java `SlaveSynchronize.syncTopicConfig`); persists. Whether anything changed.
    pub fn replace_from_master(&self, master: TopicConfigAndMappingSerializeWrapper) -> io::Result<bool> {
        {
            let mut table = self.table.write();
            if table.data_version == master.data_version {
                return Ok(false);
            }
            table.topics = master.topic_config_table.into_iter().map(table_entry).collect();
            table.data_version = master.data_version;
        }
        self.changed.notify_one();
        self.persist()?;
        Ok(true)
    }

    /// Current data version.
    pub fn data_version(&self) -> DataVersion {
        self.table.read().data_version
    }

    /// The body of GET_ALL_TOPIC_CONFIG and of REGISTER_BROKER.
    pub fn serialize_wrapper(&self) -> TopicConfigAndMappingSerializeWrapper {
        let table = self.table.read();
        TopicConfigAndMappingSerializeWrapper {
            data_version: table.data_version,
            topic_config_table: table
                .topics
                .iter()
                .map(|(name, config)| (name.clone(), (**config).clone()))
                .collect(),
            ..TopicConfigAndMappingSerializeWrapper::default()
        }
    }

    /// Whether the topic is ordered.
    pub fn is_order_topic(&self, topic: &str) -> bool {
        self.table.read().topics.get(topic).is_some_and(|config| config.order)
    }

    /// Resolves after the next change of the table (or at once if one happened since the
    /// last call): the registration loop's trigger.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Where the table is persisted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the table to `topics.json` atomically. The table lock is held only while the
    /// JSON is produced, never during the write.
    pub fn persist(&self) -> io::Result<()> {
        let _writer = self.persist_lock.lock();
        let bytes = {
            let table = self.table.read();
            let persisted = PersistedRef {
                data_version: &table.data_version,
                topic_config_table: table
                    .topics
                    .iter()
                    .map(|(name, config)| (name.as_str(), config.as_ref()))
                    .collect(),
            };
            fastjson::to_vec(&persisted, Dialect::Fastjson).map_err(io::Error::other)?
        };
        apogee_common::fs::write_atomically(&self.path, &bytes)
    }

    /// Moves the data version on without changing a topic, so the NameServers take the next
    /// registration's topic configs again (after the broker's permission changed, which
    /// narrows every registered topic's).
    pub fn bump_data_version(&self) {
        self.edit_table(|_| true);
    }

    /// Applies `edit` to the table under its lock and, when `edit` says it changed anything,
    /// bumps the data version with it, so the two never drift apart. Whether anything changed.
    fn edit_table(&self, edit: impl FnOnce(&mut Table) -> bool) -> bool {
        let mut table = self.table.write();
        let changed = edit(&mut table);
        if changed {
            table.data_version.next_version();
        }
        changed
    }

    fn changed_and_persist(&self) -> io::Result<()> {
        self.changed.notify_one();
        let result = self.persist();
        if let Err(error) = &result {
            tracing::error!(%error, path = %self.path.display(), "topic configs not persisted");
        }
        result
    }
}

/// The topics every broker creates at start (behaviour spec §0.4, Java
/// `TopicConfigManager.init`), in Java's order so a clash resolves the same way.
fn system_topics(config: &BrokerConfig) -> Vec<TopicConfig> {
    let rw = perm::READ_WRITE;
    let single = |name: &str| TopicConfig::with_queues(name, 1, 1, rw);
    let mut topics = vec![single(topic::SELF_TEST_TOPIC)];
    if config.auto_create_topic_enable {
        let queues = config.default_topic_queue_nums;
        topics.push(TopicConfig::with_queues(
            topic::AUTO_CREATE_TOPIC_KEY,
            queues,
            queues,
            rw | perm::INHERIT,
        ));
    }
    topics.push(TopicConfig::with_queues(
        topic::BENCHMARK_TOPIC,
        BENCHMARK_TOPIC_QUEUE_NUMS,
        BENCHMARK_TOPIC_QUEUE_NUMS,
        rw,
    ));
    let cluster_perm = if config.cluster_topic_enable { perm::INHERIT | rw } else { perm::INHERIT };
    topics.push(TopicConfig::with_queues(
        config.broker_cluster_name.as_str(),
        CLUSTER_TOPIC_QUEUE_NUMS,
        CLUSTER_TOPIC_QUEUE_NUMS,
        cluster_perm,
    ));
    let broker_perm = if config.broker_topic_enable { perm::INHERIT | rw } else { perm::INHERIT };
    topics.push(TopicConfig::with_queues(config.broker_name.as_str(), 1, 1, broker_perm));
    topics.push(single(topic::OFFSET_MOVED_EVENT));
    topics.push(TopicConfig::with_queues(
        topic::SCHEDULE_TOPIC,
        SCHEDULE_TOPIC_QUEUE_NUMS,
        SCHEDULE_TOPIC_QUEUE_NUMS,
        rw,
    ));
    topics.push(single(&format!("{}{REPLY_TOPIC_SUFFIX}", config.broker_cluster_name)));
    topics.push(TopicConfig::with_queues(
        format!("{REVIVE_TOPIC_PREFIX}{}", config.broker_cluster_name),
        REVIVE_TOPIC_QUEUE_NUMS,
        REVIVE_TOPIC_QUEUE_NUMS,
        rw,
    ));
    topics.push(TopicConfig::with_queues(
        format!("{SYNC_BROKER_MEMBER_PREFIX}{}", config.broker_name),
        1,
        1,
        perm::INHERIT,
    ));
    topics.push(single(topic::TRANS_HALF_TOPIC));
    topics.push(single(topic::TRANS_OP_HALF_TOPIC));
    topics.push(single(topic::TIMER_TOPIC));
    topics
}

/// The persisted table, or `None` when neither the file nor its backup holds one (see
/// [`apogee_common::fs::read_state_file`]: a corrupt file without a usable backup fails the start
/// rather than silently forgetting every topic).
fn read_persisted(path: &Path) -> io::Result<Option<TopicConfigSerializeWrapper>> {
    apogee_common::fs::read_state_file(path, |bytes| {
        fastjson::from_slice(bytes).map_err(|error| error.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path) -> BrokerConfig {
        BrokerConfig {
            broker_cluster_name: "C1".into(),
            broker_name: "broker-t".into(),
            ..BrokerConfig::stored_under(root)
        }
    }

    #[test]
    fn system_topics_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicConfigManager::load(&config(dir.path())).unwrap();
        let tbw = manager.get("TBW102").unwrap();
        assert_eq!((tbw.read_queue_nums, tbw.write_queue_nums, tbw.perm), (8, 8, 7));
        assert_eq!(manager.get("SCHEDULE_TOPIC_XXXX").unwrap().write_queue_nums, 18);
        assert_eq!(manager.get("C1").unwrap().perm, 7);
        assert_eq!(manager.get("broker-t").unwrap().write_queue_nums, 1);
        assert_eq!(manager.get("rmq_sys_SYNC_BROKER_MEMBER_broker-t").unwrap().perm, perm::INHERIT);
        for name in ["SELF_TEST_TOPIC", "BenchmarkTest", "OFFSET_MOVED_EVENT", "RMQ_SYS_TRANS_HALF_TOPIC"] {
            assert!(manager.contains(name), "{name}");
        }
        let mut off = config(dir.path());
        off.auto_create_topic_enable = false;
        off.cluster_topic_enable = false;
        let manager = TopicConfigManager::load(&off).unwrap();
        assert!(!manager.contains("TBW102"));
        assert_eq!(manager.get("C1").unwrap().perm, perm::INHERIT);
    }

    #[test]
    fn auto_creation_follows_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicConfigManager::load(&config(dir.path())).unwrap();
        let request =
            AutoCreateRequest { topic: "T1", default_topic: "TBW102", queue_nums: 4, topic_sys_flag: 0 };
        let created = manager.create_for_send(request).unwrap().unwrap();
        assert_eq!((created.read_queue_nums, created.write_queue_nums, created.perm), (4, 4, 6));
        let wide = AutoCreateRequest { topic: "T2", queue_nums: 100, ..request };
        assert_eq!(manager.create_for_send(wide).unwrap().unwrap().write_queue_nums, 8);
        let negative = AutoCreateRequest { topic: "T3", queue_nums: -5, ..request };
        assert_eq!(manager.create_for_send(negative).unwrap().unwrap().write_queue_nums, 0);
        let no_template = AutoCreateRequest { topic: "T4", default_topic: "Nope", ..request };
        assert!(manager.create_for_send(no_template).unwrap().is_none());
        let not_inherit = AutoCreateRequest { topic: "T5", default_topic: "T1", ..request };
        assert!(manager.create_for_send(not_inherit).unwrap().is_none());
        let retry = AutoCreateRequest { topic: "%RETRY%g", default_topic: "Nope", ..request };
        assert_eq!(manager.create_for_send(retry).unwrap().unwrap().write_queue_nums, 1);
        assert_eq!(manager.data_version().counter, 4);
    }

    #[test]
    fn tbw102_is_no_template_when_auto_creation_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let on = TopicConfigManager::load(&config(dir.path())).unwrap();
        on.create_or_update(TopicConfig::with_queues("Kept", 2, 2, 6)).unwrap();
        // The persisted TBW102 (with INHERIT) comes back, but cannot act as a template.
        let mut off = config(dir.path());
        off.auto_create_topic_enable = false;
        let manager = TopicConfigManager::load(&off).unwrap();
        assert_eq!(manager.get("TBW102").unwrap().perm, 7);
        let request =
            AutoCreateRequest { topic: "T1", default_topic: "TBW102", queue_nums: 4, topic_sys_flag: 0 };
        assert!(manager.create_for_send(request).unwrap().is_none());
        assert_eq!(manager.get("TBW102").unwrap().perm, perm::READ_WRITE);
    }

    #[test]
    fn changes_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicConfigManager::load(&config(dir.path())).unwrap();
        manager.create_or_update(TopicConfig::with_queues("A", 3, 5, 6)).unwrap();
        manager.get_or_create_system("%DLQ%g", 1, 6).unwrap();
        assert!(manager.delete("A").unwrap());
        assert!(!manager.delete("A").unwrap());
        manager.create_or_update(TopicConfig::with_queues("B", 2, 2, 6)).unwrap();
        assert!(manager.mark_order_topics(["B", "missing"]).unwrap());
        assert!(!manager.mark_order_topics(["B"]).unwrap());
        let version = manager.data_version();
        assert_eq!(version.counter, 5);

        let text = std::fs::read_to_string(manager.path()).unwrap();
        assert!(text.starts_with("{\"dataVersion\":{"), "{text}");
        let reloaded = TopicConfigManager::load(&config(dir.path())).unwrap();
        assert_eq!(reloaded.data_version(), version);
        assert!(reloaded.get("B").unwrap().order);
        assert!(reloaded.contains("%DLQ%g"));
        assert!(!reloaded.contains("A"));
        assert!(reloaded.contains("SCHEDULE_TOPIC_XXXX"));
    }

    #[test]
    fn corrupt_file_falls_back_to_backup() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicConfigManager::load(&config(dir.path())).unwrap();
        manager.create_or_update(TopicConfig::with_queues("A", 3, 3, 6)).unwrap();
        manager.create_or_update(TopicConfig::with_queues("B", 3, 3, 6)).unwrap();
        std::fs::write(manager.path(), b"{not json").unwrap();
        let reloaded = TopicConfigManager::load(&config(dir.path())).unwrap();
        assert!(reloaded.contains("A"));
        let mut backup = manager.path().as_os_str().to_owned();
        backup.push(".bak");
        std::fs::write(PathBuf::from(backup), b"[]]").unwrap();
        assert!(TopicConfigManager::load(&config(dir.path())).is_err());
    }

    #[tokio::test]
    async fn changes_wake_the_registration_loop() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicConfigManager::load(&config(dir.path())).unwrap();
        manager.create_or_update(TopicConfig::with_queues("A", 3, 3, 6)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), manager.changed()).await.unwrap();
    }

    #[test]
    fn not_allowed_send_topics() {
        assert!(is_not_allowed_send_topic("SCHEDULE_TOPIC_XXXX"));
        assert!(is_not_allowed_send_topic("SELF_TEST_TOPIC"));
        assert!(!is_not_allowed_send_topic("TBW102"));
        assert!(!is_not_allowed_send_topic("%RETRY%g"));
    }
}
