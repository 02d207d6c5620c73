//! The KV config: namespace → key → value, persisted after every change (behaviour spec §1.7).
//!
//! The file is Java's `kvConfig.json` (`{"configTable":{namespace:{key:value}}}`), so a
//! NameServer's file carries over. It is written to a temporary file, synced and renamed
//! over the old one, which is kept as `.bak` first: a crash leaves the old or the new file,
//! never half of one.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// Namespace holding `topic → brokerName:queueNum;...` for ordered topics.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

/// Longest namespace, key or value accepted, so one request cannot bloat the file.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Most entries kept in all namespaces together.
pub const MAX_ENTRIES: usize = 100_000;

type Table = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct KvFile {
    config_table: HashMap<String, HashMap<String, String>>,
}

/// Why a change to the KV config was refused or not persisted.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Too long a namespace, key or value, or too many entries.
    #[error("kv config entry refused: {0}")]
    Refused(String),
    /// The file could not be written.
    #[error("kv config not persisted to {path}: {source}")]
    Io {
        /// File written.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// The KV store of a NameServer.
#[derive(Debug)]
pub struct KvConfig {
    path: PathBuf,
    table: RwLock<Table>,
    /// Serializes writers of the file so renames never interleave.
    file_lock: Mutex<()>,
}

impl KvConfig {
    /// Loads `path` if it exists: a missing file is an empty store, a corrupt one falls back to
    /// its `.bak`, and with no usable backup it is an error, so nothing is overwritten by
    /// accident.
    pub fn load(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let persisted = apogee_common::fs::read_state_file(&path, |bytes| {
            serde_json::from_slice::<KvFile>(bytes).map_err(|error| error.to_string())
        })?;
        let table = persisted
            .map(|file| {
                file.config_table
                    .into_iter()
                    .map(|(namespace, entries)| (namespace, entries.into_iter().collect()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self { path, table: RwLock::new(table), file_lock: Mutex::new(()) })
    }

    /// PUT_KV_CONFIG.
    pub fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), KvError> {
        for (what, text) in [("namespace", namespace), ("key", key), ("value", value)] {
            if text.len() > MAX_ENTRY_BYTES {
                return Err(KvError::Refused(format!("{what} longer than {MAX_ENTRY_BYTES} bytes")));
            }
        }
        {
            let mut table = self.table.write();
            let entries: usize = table.values().map(BTreeMap::len).sum();
            let exists = table.get(namespace).is_some_and(|space| space.contains_key(key));
            if !exists && entries >= MAX_ENTRIES {
                return Err(KvError::Refused(format!("more than {MAX_ENTRIES} entries")));
            }
            table.entry(namespace.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
        }
        self.persist()
    }

    /// GET_KV_CONFIG.
    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.read().get(namespace).and_then(|space| space.get(key)).cloned()
    }

    /// DELETE_KV_CONFIG; deleting what is not there is not an error.
    pub fn delete(&self, namespace: &str, key: &str) -> Result<(), KvError> {
        let removed = {
            let mut table = self.table.write();
            let removed = table.get_mut(namespace).and_then(|space| space.remove(key)).is_some();
            if table.get(namespace).is_some_and(BTreeMap::is_empty) {
                table.remove(namespace);
            }
            removed
        };
        if removed {
            self.persist()?;
        }
        Ok(())
    }

    /// GET_KVLIST_BY_NAMESPACE; `None` when the namespace is empty or unknown.
    pub fn namespace(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.table.read().get(namespace).filter(|space| !space.is_empty()).cloned()
    }

    fn persist(&self) -> Result<(), KvError> {
        let _writer = self.file_lock.lock();
        let file = KvFile {
            config_table: self
                .table
                .read()
                .iter()
                .map(|(namespace, entries)| {
                    (namespace.clone(), entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|error| KvError::Io {
            path: self.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, error),
        })?;
        apogee_common::fs::write_atomically(&self.path, &bytes)
            .map_err(|source| KvError::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_reads_java_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("namesrv").join("kvConfig.json");
        let kv = KvConfig::load(&path).unwrap();
        kv.put(ORDER_TOPIC_CONFIG, "T", "broker-a:4").unwrap();
        kv.put("ns", "k", "v").unwrap();
        kv.delete("ns", "k").unwrap();
        drop(kv);

        let kv = KvConfig::load(&path).unwrap();
        assert_eq!(kv.get(ORDER_TOPIC_CONFIG, "T").as_deref(), Some("broker-a:4"));
        assert_eq!(kv.get("ns", "k"), None);
        assert!(kv.namespace("ns").is_none());

        std::fs::write(&path, r#"{"configTable":{"A":{"x":"1"}}}"#).unwrap();
        assert_eq!(KvConfig::load(&path).unwrap().get("A", "x").as_deref(), Some("1"));
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(KvConfig::load(&path).is_err());
    }

    #[test]
    fn oversized_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvConfig::load(dir.path().join("kv.json")).unwrap();
        assert!(matches!(kv.put("ns", "k", &"v".repeat(MAX_ENTRY_BYTES + 1)), Err(KvError::Refused(_))));
    }
}
