//! Subscription groups: the broker-side settings of every consumer group (may it consume, how
//! many retry queues, how often to retry, whether members are told about each other), kept in
//! `config/subscriptionGroup.json` in Apache RocketMQ's format so a Java broker's file loads.
//!
//! Unknown groups are created with Java's defaults on first use when `autoCreateSubscriptionGroup`
//! is on (behaviour spec §2.4); names must pass the group-name rules. Changes made by admin
//! requests are written at once ([`SubscriptionGroupManager::update`], [`SubscriptionGroupManager::delete`]
//! block on the file write); groups auto-created on the request path are written in the
//! background so no handler waits on the disk.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use apogee_common::topic::GROUP_MAX_LENGTH;
use apogee_common::DataVersion;
use apogee_remoting::body::admin::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use apogee_remoting::fastjson::{self, Dialect};
use parking_lot::{Mutex, RwLock};

use crate::BrokerConfig;

/// File name under the config directory.
pub const FILE_NAME: &str = "subscriptionGroup.json";

/// Groups every Java broker has from the start (Java `SubscriptionGroupManager.init`).
const PREDEFINED_GROUPS: [&str; 8] = [
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "SELF_TEST_C_GROUP",
    "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PULL",
    "CID_ONSAPI_PERMISSION",
    "CID_ONSAPI_OWNER",
    "CID_RMQ_SYS_TRANS",
];

/// Why a group name was refused (Java `TopicValidator.validateGroup`, same wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupNameError {
    /// Empty or only white space.
    #[error("The specified group is blank.")]
    Blank,
    /// A character outside `[%|a-zA-Z0-9_-]`.
    #[error("The specified group: {0}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")]
    IllegalCharacter(String),
    /// Longer than [`GROUP_MAX_LENGTH`] characters.
    #[error("The specified group: {0}, is longer than group max length: {GROUP_MAX_LENGTH}")]
    TooLong(String),
}

/// Checks a consumer group name against RocketMQ's rules (behaviour spec §0.3).
pub fn validate_group_name(group: &str) -> Result<(), GroupNameError> {
    if group.trim().is_empty() {
        return Err(GroupNameError::Blank);
    }
    let legal = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    if !group.bytes().all(legal) {
        return Err(GroupNameError::IllegalCharacter(group.to_owned()));
    }
    if group.len() > GROUP_MAX_LENGTH {
        return Err(GroupNameError::TooLong(group.to_owned()));
    }
    Ok(())
}

/// The broker's consumer groups. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub struct SubscriptionGroupManager {
    shared: Arc<Shared>,
    auto_create: bool,
}

/// What background writers need: the table and the file.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    table: RwLock<Table>,
    /// Held while a snapshot is taken and written, so writes land in change order.
    writer: Mutex<u64>,
}

#[derive(Debug, Default)]
struct Table {
    groups: BTreeMap<String, SubscriptionGroupConfig>,
    forbidden: BTreeMap<String, BTreeMap<String, i32>>,
    data_version: DataVersion,
    /// Bumped on every change; compared with what the writer last wrote.
    changes: u64,
}

/// A group read from `subscriptionGroup.json` or from the master as a table entry: Java keys
/// each group by its name, so one read without a name takes its key.
fn table_entry((name, mut group): (String, SubscriptionGroupConfig)) -> (String, SubscriptionGroupConfig) {
    if group.group_name.is_empty() {
        group.group_name.clone_from(&name);
    }
    (name, group)
}

impl SubscriptionGroupManager {
    /// Loads `config/subscriptionGroup.json` (absent: the predefined groups only). A file that
    /// does not parse is an error rather than silently replaced.
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        let path = config.config_dir().join(FILE_NAME);
        let mut table = Table { data_version: DataVersion::new(), ..Table::default() };
        for name in PREDEFINED_GROUPS {
            table.groups.insert(name.to_owned(), SubscriptionGroupConfig::new(name));
        }
        let persisted = apogee_common::fs::read_state_file(&path, |bytes| {
            fastjson::from_slice::<SubscriptionGroupWrapper>(bytes).map_err(|error| error.to_string())
        })?;
        if let Some(wrapper) = persisted {
            table.groups.extend(wrapper.subscription_group_table.into_iter().map(table_entry));
            table.forbidden = wrapper.forbidden_table;
            table.data_version = wrapper.data_version;
        }
        Ok(Self {
            shared: Arc::new(Shared { path, table: RwLock::new(table), writer: Mutex::new(0) }),
            auto_create: config.auto_create_subscription_group,
        })
    }

    /// The group; created with defaults when missing and auto-creation is on (and the name is
    /// valid). `None` means requests for the group get SUBSCRIPTION_GROUP_NOT_EXIST.
    pub fn get_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if let Some(config) = self.get(group) {
            return Some(config);
        }
        let system_group = group.starts_with("CID_RMQ_SYS_");
        if !(self.auto_create || system_group) || validate_group_name(group).is_err() {
            return None;
        }
        let created = {
            let mut table = self.shared.table.write();
            if let Some(config) = table.groups.get(group) {
                return Some(config.clone());
            }
            let config = SubscriptionGroupConfig::new(group);
            table.groups.insert(group.to_owned(), config.clone());
            table.data_version.next_version();
            table.changes += 1;
            config
        };
        tracing::info!(group, "subscription group auto-created");
        self.persist_in_background();
        Some(created)
    }

    /// The group, without creating it.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.shared.table.read().groups.get(group).cloned()
    }

    /// Whether the group exists (Java `containsSubscriptionGroup`; never creates).
    pub fn contains(&self, group: &str) -> bool {
        self.shared.table.read().groups.contains_key(group)
    }

    /// Creates or replaces a group; persists before returning (blocking file write: call it
    /// from `spawn_blocking` in async code).
    pub fn update(&self, config: SubscriptionGroupConfig) -> io::Result<()> {
        {
            let mut table = self.shared.table.write();
            table.groups.insert(config.group_name.clone(), config);
            table.data_version.next_version();
            table.changes += 1;
        }
        self.shared.persist()
    }

    /// Deletes a group (and its forbidden entries); persists before returning (blocking, as
    /// [`Self::update`]). Returns whether it existed.
    pub fn delete(&self, group: &str) -> io::Result<bool> {
        let existed = {
            let mut table = self.shared.table.write();
            let existed = table.groups.remove(group).is_some();
            table.forbidden.remove(group);
            if existed {
                table.data_version.next_version();
                table.changes += 1;
            }
            existed
        };
        if existed {
            self.shared.persist()?;
        }
        Ok(existed)
    }

    /// Every group.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.shared.table.read().groups.values().cloned().collect()
    }

    /// Version of the table (bumped on every change).
    pub fn data_version(&self) -> DataVersion {
        self.shared.table.read().data_version
    }

    /// The whole table as Java's `SubscriptionGroupWrapper`: the body of
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG and the persisted file.
    pub fn wrapper(&self) -> SubscriptionGroupWrapper {
        self.shared.table.read().wrapper()
    }

    /// Permission bits forbidden to `group` on `topic` (0 when none).
    pub fn forbidden(&self, group: &str, topic: &str) -> i32 {
        let table = self.shared.table.read();
        table.forbidden.get(group).and_then(|topics| topics.get(topic)).copied().unwrap_or(0)
    }

    /// Whether `group` may not pull from `topic` (the READ bit is forbidden).
    pub fn is_read_forbidden(&self, group: &str, topic: &str) -> bool {
        let read = apogee_common::perm::READ;
        self.forbidden(group, topic) & read == read
    }

    /// Sets the forbidden permission bits of `group` on `topic` (0 removes the entry) and
    /// persists (blocking, as [`Self::update`]). Returns the bits now in force.
    pub fn set_forbidden(&self, group: &str, topic: &str, bits: i32) -> io::Result<i32> {
        {
            let mut table = self.shared.table.write();
            let topics = table.forbidden.entry(group.to_owned()).or_default();
            if bits == 0 {
                topics.remove(topic);
                if topics.is_empty() {
                    table.forbidden.remove(group);
                }
            } else {
                topics.insert(topic.to_owned(), bits);
            }
            table.data_version.next_version();
            table.changes += 1;
        }
        self.shared.persist()?;
        Ok(bits)
    }

    /// Writes the table to disk now (blocking).
    pub fn persist(&self) -> io::Result<()> {
        self.shared.persist()
    }

    /// Takes the master's groups whole when its version differs (a slave's copy); persists.
    /// Whether anything changed.
    pub fn replace_from_master(&self, master: SubscriptionGroupWrapper) -> io::Result<bool> {
        {
            let mut table = self.shared.table.write();
            if table.data_version == master.data_version {
                return Ok(false);
            }
            table.groups = master.subscription_group_table.into_iter().map(table_entry).collect();
            table.forbidden = master.forbidden_table;
            table.data_version = master.data_version;
            table.changes += 1;
        }
        self.shared.persist()?;
        Ok(true)
    }

    /// Writes the table on the blocking pool when inside a tokio runtime, inline otherwise.
    fn persist_in_background(&self) {
        let shared = Arc::clone(&self.shared);
        let write = move || {
            if let Err(error) = shared.persist() {
                tracing::error!(%error, path = %shared.path.display(), "subscription groups not persisted");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(write)),
            Err(_) => write(),
        }
    }
}

impl Table {
    fn wrapper(&self) -> SubscriptionGroupWrapper {
        SubscriptionGroupWrapper {
            data_version: self.data_version,
            forbidden_table: self.forbidden.clone(),
            subscription_group_table: self.groups.clone(),
        }
    }
}

impl Shared {
    /// Writes the current table unless what is on disk is already as new.
    fn persist(&self) -> io::Result<()> {
        let mut written = self.writer.lock();
        let (changes, bytes) = {
            let table = self.table.read();
            if table.changes != 0 && table.changes == *written {
                return Ok(());
            }
            let bytes = fastjson::to_vec(&table.wrapper(), Dialect::Fastjson)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
            (table.changes, bytes)
        };
        apogee_common::fs::write_atomically(&self.path, &bytes)?;
        *written = changes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert_eq!(validate_group_name("CG_1-a"), Ok(()));
        assert_eq!(validate_group_name(" "), Err(GroupNameError::Blank));
        assert!(matches!(validate_group_name("a b"), Err(GroupNameError::IllegalCharacter(_))));
        assert!(matches!(validate_group_name(&"g".repeat(121)), Err(GroupNameError::TooLong(_))));
        assert_eq!(
            GroupNameError::TooLong("x".into()).to_string(),
            "The specified group: x, is longer than group max length: 120"
        );
    }

    #[test]
    fn auto_create_defaults_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let manager = SubscriptionGroupManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        assert!(manager.get("CG").is_none());
        assert!(manager.get("TOOLS_CONSUMER").is_some());
        let created = manager.get_or_create("CG").unwrap();
        assert_eq!((created.retry_queue_nums, created.retry_max_times), (1, 16));
        assert!(created.consume_enable && created.notify_consumer_ids_changed_enable);
        assert!(manager.get_or_create("bad name").is_none());

        let mut changed = SubscriptionGroupConfig::new("CG2");
        changed.consume_enable = false;
        changed.retry_queue_nums = 3;
        manager.update(changed.clone()).unwrap();
        manager.set_forbidden("CG2", "T", apogee_common::perm::READ).unwrap();

        let text = std::fs::read_to_string(dir.path().join("config").join(FILE_NAME)).unwrap();
        assert!(text.contains("\"subscriptionGroupTable\""), "{text}");
        assert!(text.contains("\"forbiddenTable\""), "{text}");

        let reloaded = SubscriptionGroupManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        assert_eq!(reloaded.get("CG2"), Some(changed));
        assert!(reloaded.get("CG").is_some());
        assert!(reloaded.is_read_forbidden("CG2", "T"));
        assert!(!reloaded.is_read_forbidden("CG2", "U"));
        assert!(reloaded.delete("CG2").unwrap());
        assert!(!reloaded.delete("CG2").unwrap());
        assert!(SubscriptionGroupManager::load(&BrokerConfig::stored_under(dir.path()))
            .unwrap()
            .get("CG2")
            .is_none());
    }

    #[test]
    fn no_auto_create_when_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::stored_under(dir.path());
        config.auto_create_subscription_group = false;
        let manager = SubscriptionGroupManager::load(&config).unwrap();
        assert!(manager.get_or_create("CG").is_none());
        assert!(manager.get_or_create("CID_RMQ_SYS_X").is_some());
    }

    #[test]
    fn reads_a_java_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(
            path.join(FILE_NAME),
            r#"{"dataVersion":{"counter":3,"timestamp":1700000000000},"subscriptionGroupTable":{
                "G":{"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,
                     "consumeFromMinEnable":true,"groupName":"G","retryMaxTimes":5,"retryQueueNums":2,
                     "whichBrokerWhenConsumeSlowly":1}},"forbiddenTable":{}}"#,
        )
        .unwrap();
        let manager = SubscriptionGroupManager::load(&BrokerConfig::stored_under(dir.path())).unwrap();
        let group = manager.get("G").unwrap();
        assert_eq!((group.retry_max_times, group.retry_queue_nums), (5, 2));
        assert_eq!(manager.data_version().counter, 3);
    }
}
