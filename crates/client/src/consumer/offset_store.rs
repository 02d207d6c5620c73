//! Where consumers keep "the next offset to consume" per queue (spec behaviour §4.5).
//!
//! - [`RemoteOffsetStore`]: clustering. The broker owns the group's offsets; the client keeps
//!   them in memory, reads them with QUERY_CONSUMER_OFFSET and commits them with
//!   UPDATE_CONSUMER_OFFSET (periodically, on queue removal and at shutdown).
//! - [`LocalOffsetStore`]: broadcasting. Every client consumes every queue, so each keeps its
//!   own offsets in a JSON file (`<dir>/<clientId>/<group>/offsets.json`, the Java layout).
//! - [`OffsetStore`]: either one, for consumers that pick by message model.
//!
//! Offsets read as `Ok(None)` when nothing is stored ("−1" in Java) and as an error when the
//! store could not be asked ("−2"): a consumer must not guess a start offset then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::MessageQueue;
use apogee_remoting::fastjson::{self, Dialect};
use apogee_remoting::header::consumer::{
    QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use apogee_remoting::{request_code, response_code, RemotingCommand};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::instance::ClientInstance;
use crate::ClientError;

/// Where [`OffsetStore`] reads an offset from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOffsetType {
    /// Only the in-memory table.
    ReadFromMemory,
    /// Only the backing store (broker or file); the answer also goes into memory.
    ReadFromStore,
    /// Memory, else the backing store.
    MemoryFirstThenStore,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    /// Set by [`OffsetTable::update_and_freeze`]: later updates are ignored until the entry
    /// is removed, so late consumption results cannot move an offset a reset has fixed.
    frozen: bool,
}

/// The in-memory offsets both stores keep.
#[derive(Debug, Default)]
struct OffsetTable {
    entries: Mutex<HashMap<MessageQueue, Entry>>,
}

impl OffsetTable {
    fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut entries = self.entries.lock();
        match entries.get_mut(mq) {
            Some(entry) if entry.frozen => {}
            Some(entry) if increase_only => entry.offset = entry.offset.max(offset),
            Some(entry) => entry.offset = offset,
            None => {
                entries.insert(mq.clone(), Entry { offset, frozen: false });
            }
        }
    }

    fn update_and_freeze(&self, mq: &MessageQueue, offset: i64) {
        self.entries.lock().insert(mq.clone(), Entry { offset, frozen: true });
    }

    fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.entries.lock().get(mq).map(|entry| entry.offset)
    }

    fn remove(&self, mq: &MessageQueue) {
        self.entries.lock().remove(mq);
    }

    fn snapshot(&self, topic: Option<&str>) -> HashMap<MessageQueue, i64> {
        self.entries
            .lock()
            .iter()
            .filter(|(mq, _)| match topic {
                Some(topic) => mq.topic == topic,
                None => true,
            })
            .map(|(mq, entry)| (mq.clone(), entry.offset))
            .collect()
    }

    fn retain(&self, held: &HashSet<MessageQueue>) {
        self.entries.lock().retain(|mq, _| held.contains(mq));
    }
}

/// The methods every store answers from its [`OffsetTable`] alone, reached as `self.<table>`
/// (a field of the two stores, a method of the [`OffsetStore`] that holds either).
macro_rules! memory_offset_methods {
    ($($table:tt)+) => {
        /// Sets the in-memory offset; with `increase_only` it never moves back.
        pub fn update_offset(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
            self.$($table)+.update(mq, offset, increase_only);
        }

        /// Sets the in-memory offset and ignores further updates until [`Self::remove_offset`].
        pub fn update_and_freeze_offset(&self, mq: &MessageQueue, offset: i64) {
            self.$($table)+.update_and_freeze(mq, offset);
        }

        /// Forgets the in-memory offset of `mq` (after the queue was given away).
        pub fn remove_offset(&self, mq: &MessageQueue) {
            self.$($table)+.remove(mq);
        }

        /// The in-memory offsets, of one topic or all.
        pub fn offset_table(&self, topic: Option<&str>) -> HashMap<MessageQueue, i64> {
            self.$($table)+.snapshot(topic)
        }
    };
}

/// Clustering offsets: kept by the broker that owns each queue (Java
/// `RemoteBrokerOffsetStore`).
#[derive(Debug)]
pub struct RemoteOffsetStore {
    instance: Arc<ClientInstance>,
    group: String,
    table: OffsetTable,
}

impl RemoteOffsetStore {
    /// The store of `group`'s offsets, reached through `instance`.
    pub fn new(instance: Arc<ClientInstance>, group: impl Into<String>) -> Self {
        Self { instance, group: group.into(), table: OffsetTable::default() }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    memory_offset_methods!(table);

    /// The offset of `mq`: `Ok(None)` when nothing is stored.
    pub async fn read_offset(
        &self,
        mq: &MessageQueue,
        from: ReadOffsetType,
    ) -> Result<Option<i64>, ClientError> {
        if from != ReadOffsetType::ReadFromStore {
            if let Some(offset) = self.table.get(mq) {
                return Ok(Some(offset));
            }
            if from == ReadOffsetType::ReadFromMemory {
                return Ok(None);
            }
        }
        let stored = self.fetch_consume_offset_from_broker(mq).await?;
        if let Some(offset) = stored {
            self.table.update(mq, offset, false);
        }
        Ok(stored)
    }

    /// Commits the in-memory offset of `mq` (oneway), if there is one.
    pub async fn persist(&self, mq: &MessageQueue) {
        if let Some(offset) = self.table.get(mq) {
            if let Err(error) = self.update_consume_offset_to_broker(mq, offset, true).await {
                tracing::warn!(group = %self.group, ?mq, %error, "committing the offset failed");
            }
        }
    }

    /// Commits the in-memory offsets of the queues in `held` and forgets the others. With
    /// `oneway` false every commit waits for the broker (used at shutdown).
    pub async fn persist_all(&self, held: &HashSet<MessageQueue>, oneway: bool) {
        if held.is_empty() {
            return;
        }
        let mut offsets: Vec<(MessageQueue, i64)> =
            self.table.snapshot(None).into_iter().filter(|(mq, _)| held.contains(mq)).collect();
        offsets.sort();
        for (mq, offset) in offsets {
            if let Err(error) = self.update_consume_offset_to_broker(&mq, offset, oneway).await {
                tracing::warn!(group = %self.group, ?mq, offset, %error, "committing the offset failed");
            }
        }
        self.table.retain(held);
    }

    /// UPDATE_CONSUMER_OFFSET for `mq` to its broker's master (any member without one).
    pub async fn update_consume_offset_to_broker(
        &self,
        mq: &MessageQueue,
        offset: i64,
        oneway: bool,
    ) -> Result<(), ClientError> {
        let addr = self.broker_addr(mq).await?;
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
            bname: Some(mq.broker_name.clone()),
        };
        let request = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET).with_header(&header);
        if oneway {
            return self.instance.invoke_oneway(&addr, request).await;
        }
        let response = self.instance.invoke(&addr, request, self.api_timeout()).await?;
        match response.code {
            response_code::SUCCESS => Ok(()),
            code => Err(broker_error(code, response.remark, addr)),
        }
    }

    /// QUERY_CONSUMER_OFFSET for `mq`: `Ok(None)` when the broker has none (QUERY_NOT_FOUND).
    pub async fn fetch_consume_offset_from_broker(
        &self,
        mq: &MessageQueue,
    ) -> Result<Option<i64>, ClientError> {
        let addr = self.broker_addr(mq).await?;
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            set_zero_if_not_found: None,
            bname: Some(mq.broker_name.clone()),
        };
        let request = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET).with_header(&header);
        let response = self.instance.invoke(&addr, request, self.api_timeout()).await?;
        match response.code {
            response_code::SUCCESS => {
                let header: QueryConsumerOffsetResponseHeader =
                    response.decode_header().map_err(|error| {
                        ClientError::Malformed(format!("QUERY_CONSUMER_OFFSET response: {error}"))
                    })?;
                Ok(Some(header.offset))
            }
            response_code::QUERY_NOT_FOUND => Ok(None),
            code => Err(broker_error(code, response.remark, addr)),
        }
    }

    fn api_timeout(&self) -> Duration {
        self.instance.config().api_timeout
    }

    async fn broker_addr(&self, mq: &MessageQueue) -> Result<String, ClientError> {
        self.instance.master_addr_of(mq).await
    }
}

fn broker_error(code: i32, remark: Option<String>, addr: String) -> ClientError {
    ClientError::Broker { code, remark: remark.unwrap_or_default(), addr }
}

/// The file layout of Java's `OffsetSerializeWrapper`: queue → offset, queues written as
/// object keys in the fastjson dialect.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetFile {
    offset_table: BTreeMap<MessageQueue, i64>,
}

/// Environment variable that overrides [`LocalOffsetStore::default_dir`] (Java's
/// `rocketmq.client.localOffsetStoreDir` system property).
pub const LOCAL_OFFSET_STORE_DIR_ENV: &str = "ROCKETMQ_CLIENT_LOCAL_OFFSET_STORE_DIR";

/// Broadcasting offsets: a JSON file per client and group (Java `LocalFileOffsetStore`).
#[derive(Debug)]
pub struct LocalOffsetStore {
    path: PathBuf,
    table: OffsetTable,
}

impl LocalOffsetStore {
    /// The store at `<dir>/<client_id>/<group>/offsets.json`. Nothing is read until
    /// [`Self::load`].
    pub fn new(dir: impl AsRef<Path>, client_id: &str, group: &str) -> Self {
        let path = dir.as_ref().join(client_id).join(group).join("offsets.json");
        Self { path, table: OffsetTable::default() }
    }

    /// `$ROCKETMQ_CLIENT_LOCAL_OFFSET_STORE_DIR`, else `~/.rocketmq_offsets` (the Java default).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os(LOCAL_OFFSET_STORE_DIR_ENV) {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".rocketmq_offsets")
    }

    /// The offsets file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file (or its `.bak` copy when the file is unreadable) into memory. A missing
    /// file is an empty store.
    pub fn load(&self) -> Result<(), ClientError> {
        for (mq, offset) in self.read_file()? {
            self.table.update(&mq, offset, false);
        }
        Ok(())
    }

    memory_offset_methods!(table);

    /// The offset of `mq`: `Ok(None)` when nothing is stored.
    pub fn read_offset(&self, mq: &MessageQueue, from: ReadOffsetType) -> Result<Option<i64>, ClientError> {
        if from != ReadOffsetType::ReadFromStore {
            if let Some(offset) = self.table.get(mq) {
                return Ok(Some(offset));
            }
            if from == ReadOffsetType::ReadFromMemory {
                return Ok(None);
            }
        }
        let stored = self.read_file()?.get(mq).copied();
        if let Some(offset) = stored {
            self.table.update(mq, offset, false);
        }
        Ok(stored)
    }

    /// Writes the in-memory offsets of the queues in `held` to the file (nothing when `held`
    /// is empty, so a consumer that holds nothing yet never truncates the file).
    pub fn persist_all(&self, held: &HashSet<MessageQueue>) -> Result<(), ClientError> {
        if held.is_empty() {
            return Ok(());
        }
        let offsets = self.table.snapshot(None).into_iter().filter(|(mq, _)| held.contains(mq)).collect();
        self.write_file(offsets)
    }

    /// Writes every in-memory offset to the file.
    pub fn persist(&self) -> Result<(), ClientError> {
        let offsets = self.table.snapshot(None).into_iter().collect();
        self.write_file(offsets)
    }

    fn write_file(&self, offset_table: BTreeMap<MessageQueue, i64>) -> Result<(), ClientError> {
        let bytes = fastjson::to_vec(&OffsetFile { offset_table }, Dialect::Fastjson)
            .map_err(|error| ClientError::Malformed(format!("offsets file: {error}")))?;
        apogee_common::fs::write_atomically(&self.path, &bytes).map_err(|error| {
            ClientError::IllegalArgument(format!("cannot write {}: {error}", self.path.display()))
        })
    }

    fn read_file(&self) -> Result<BTreeMap<MessageQueue, i64>, ClientError> {
        match Self::parse(&self.path) {
            Ok(table) => Ok(table),
            Err(first) => {
                let mut backup = self.path.as_os_str().to_owned();
                backup.push(".bak");
                Self::parse(Path::new(&backup)).map_err(|_| first)
            }
        }
    }

    fn parse(path: &Path) -> Result<BTreeMap<MessageQueue, i64>, ClientError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(error) => {
                return Err(ClientError::IllegalArgument(format!("cannot read {}: {error}", path.display())))
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(BTreeMap::new());
        }
        fastjson::from_slice::<OffsetFile>(&bytes)
            .map(|file| file.offset_table)
            .map_err(|error| ClientError::Malformed(format!("{}: {error}", path.display())))
    }
}

/// The offset store of a consumer: remote for clustering, local for broadcasting.
#[derive(Debug)]
pub enum OffsetStore {
    /// Clustering: offsets on the brokers.
    Remote(RemoteOffsetStore),
    /// Broadcasting: offsets in a local file.
    Local(LocalOffsetStore),
}

impl OffsetStore {
    /// The in-memory offsets of either store.
    fn table(&self) -> &OffsetTable {
        match self {
            Self::Remote(store) => &store.table,
            Self::Local(store) => &store.table,
        }
    }

    memory_offset_methods!(table());

    /// The offset of `mq`: `Ok(None)` when nothing is stored, an error when the store could
    /// not be read.
    pub async fn read_offset(
        &self,
        mq: &MessageQueue,
        from: ReadOffsetType,
    ) -> Result<Option<i64>, ClientError> {
        match self {
            Self::Remote(store) => store.read_offset(mq, from).await,
            Self::Local(store) => store.read_offset(mq, from),
        }
    }

    /// The in-memory offset of `mq`, if any (no I/O).
    pub fn read_memory(&self, mq: &MessageQueue) -> Option<i64> {
        self.table().get(mq)
    }

    /// Commits the offset of one queue (oneway for the broker store).
    pub async fn persist(&self, mq: &MessageQueue) {
        match self {
            Self::Remote(store) => store.persist(mq).await,
            Self::Local(store) => log_local(store.persist()),
        }
    }

    /// Commits the offset of one queue and waits for the broker's answer.
    pub async fn persist_and_wait(&self, mq: &MessageQueue) -> Result<(), ClientError> {
        match self {
            Self::Remote(store) => match store.table.get(mq) {
                Some(offset) => store.update_consume_offset_to_broker(mq, offset, false).await,
                None => Ok(()),
            },
            Self::Local(store) => store.persist(),
        }
    }

    /// Commits the offsets of the queues in `held` (oneway for the broker store).
    pub async fn persist_all(&self, held: &HashSet<MessageQueue>) {
        match self {
            Self::Remote(store) => store.persist_all(held, true).await,
            Self::Local(store) => log_local(store.persist_all(held)),
        }
    }

    /// Commits the offsets of the queues in `held`, waiting for each answer (shutdown).
    pub async fn flush_all(&self, held: &HashSet<MessageQueue>) {
        match self {
            Self::Remote(store) => store.persist_all(held, false).await,
            Self::Local(store) => log_local(store.persist_all(held)),
        }
    }
}

fn log_local(result: Result<(), ClientError>) {
    if let Err(error) = result {
        tracing::warn!(%error, "writing the local offsets file failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(queue_id: i32) -> MessageQueue {
        MessageQueue::new("TopicTest", "broker-a", queue_id)
    }

    #[test]
    fn increase_only_updates_never_move_back_and_frozen_entries_stay() {
        let table = OffsetTable::default();
        table.update(&mq(0), 10, true);
        table.update(&mq(0), 7, true);
        assert_eq!(table.get(&mq(0)), Some(10));
        table.update(&mq(0), 7, false);
        assert_eq!(table.get(&mq(0)), Some(7));
        table.update_and_freeze(&mq(0), 3);
        table.update(&mq(0), 20, false);
        assert_eq!(table.get(&mq(0)), Some(3));
        table.remove(&mq(0));
        table.update(&mq(0), 20, true);
        assert_eq!(table.get(&mq(0)), Some(20));
        table.update(&mq(1), 5, true);
        table.retain(&[mq(1)].into_iter().collect());
        assert_eq!(table.snapshot(None), [(mq(1), 5)].into_iter().collect());
    }

    #[test]
    fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalOffsetStore::new(dir.path(), "127.0.0.1@DEFAULT", "group-b");
        assert_eq!(store.path(), dir.path().join("127.0.0.1@DEFAULT").join("group-b").join("offsets.json"));
        store.load().unwrap();
        assert_eq!(store.read_offset(&mq(0), ReadOffsetType::ReadFromStore).unwrap(), None);
        store.update_offset(&mq(0), 42, true);
        store.update_offset(&mq(1), 7, true);
        store.update_offset(&MessageQueue::new("Other", "broker-b", 3), 9, true);
        // Nothing held: nothing written.
        store.persist_all(&HashSet::new()).unwrap();
        assert!(!store.path().exists());
        store.persist_all(&[mq(0), mq(1)].into_iter().collect()).unwrap();

        let text = std::fs::read_to_string(store.path()).unwrap();
        // Java's layout: queues as bare object keys.
        assert!(text.starts_with(r#"{"offsetTable":{{"#), "{text}");

        let reopened = LocalOffsetStore::new(dir.path(), "127.0.0.1@DEFAULT", "group-b");
        assert_eq!(reopened.read_offset(&mq(0), ReadOffsetType::ReadFromMemory).unwrap(), None);
        assert_eq!(reopened.read_offset(&mq(0), ReadOffsetType::MemoryFirstThenStore).unwrap(), Some(42));
        assert_eq!(reopened.read_offset(&mq(0), ReadOffsetType::ReadFromMemory).unwrap(), Some(42));
        reopened.load().unwrap();
        assert_eq!(reopened.offset_table(Some("TopicTest")), [(mq(0), 42), (mq(1), 7)].into_iter().collect());
        assert_eq!(
            reopened
                .read_offset(&MessageQueue::new("Other", "broker-b", 3), ReadOffsetType::ReadFromStore)
                .unwrap(),
            None
        );
    }

    #[test]
    fn local_store_reads_a_java_file_and_falls_back_to_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalOffsetStore::new(dir.path(), "cid", "g");
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        // Pretty-printed as Java's toJson(true) writes it.
        let java = "{\n\t\"offsetTable\":{{\n\t\t\"brokerName\":\"broker-a\",\n\t\t\"queueId\":1,\n\t\t\"topic\":\"TopicTest\"\n\t}:118\n\t}\n}";
        std::fs::write(store.path(), java).unwrap();
        assert_eq!(store.read_offset(&mq(1), ReadOffsetType::ReadFromStore).unwrap(), Some(118));

        let mut backup = store.path().as_os_str().to_owned();
        backup.push(".bak");
        std::fs::write(&backup, java).unwrap();
        std::fs::write(store.path(), "{not json").unwrap();
        let reopened = LocalOffsetStore::new(dir.path(), "cid", "g");
        reopened.load().unwrap();
        assert_eq!(reopened.offset_table(None), [(mq(1), 118)].into_iter().collect());
    }
}
