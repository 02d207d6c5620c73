//! The raft log and vote of one controller, persisted under its data directory.
//!
//! - `raft-log`: a record file, each record `[u32 length][u32 crc32][JSON]` (big-endian) holding
//!   one operation: an appended entry, a truncation of the conflicting tail, or a purge of the
//!   prefix a snapshot covers. Replaying the records rebuilds the log. Appends are fsynced
//!   before openraft is told they are durable. A torn or corrupt tail (a crash in mid-write,
//!   never acknowledged) ends the replay and is cut off. A purge rewrites the file with only
//!   the live entries, so the file stays about as large as the log openraft keeps.
//! - `raft-vote.json` and `raft-committed.json`: replaced atomically ([`super::file`]).
//!
//! Every write (and its fsync) runs on tokio's blocking pool with the log locked, never on an
//! async worker: the controller shares its runtime with the remoting server.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::file;
use super::{NodeId, StorageError, TypeConfig};

/// Name of the record file.
const LOG_FILE: &str = "raft-log";
/// Name of the vote file.
const VOTE_FILE: &str = "raft-vote.json";
/// Name of the committed-index file.
const COMMITTED_FILE: &str = "raft-committed.json";
/// Largest record accepted on replay; anything larger is corruption.
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Bytes before a record's JSON: length and CRC.
const RECORD_HEADER_BYTES: usize = 8;

/// One operation of the record file.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// An entry appended at its index (replacing nothing: conflicts are truncated first).
    Append(Entry<TypeConfig>),
    /// Every entry at or after this index is removed.
    Truncate(u64),
    /// Every entry up to and including this id is removed (covered by a snapshot).
    Purge(LogId<NodeId>),
}

/// The log in memory, mirrored by the record file.
#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The persistent raft log and vote; clones share one log (a clone is the log reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn encode_record(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(record).map_err(io::Error::other)?;
    if json.len() > MAX_RECORD_BYTES {
        return Err(io::Error::other(format!("raft log record of {} bytes is over the limit", json.len())));
    }
    let length = u32::try_from(json.len()).map_err(io::Error::other)?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Reads every whole record of `bytes`; returns them and the length of the valid prefix.
fn decode_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= RECORD_HEADER_BYTES {
        let length =
            u32::from_be_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]]);
        let crc =
            u32::from_be_bytes([bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7]]);
        let length = length as usize;
        let start = offset + RECORD_HEADER_BYTES;
        if length > MAX_RECORD_BYTES || bytes.len() - start < length {
            break;
        }
        let json = &bytes[start..start + length];
        if crc32fast::hash(json) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(json) else { break };
        records.push(record);
        offset = start + length;
    }
    (records, offset)
}

impl Inner {
    fn replay(&mut self, record: Record) {
        match record {
            Record::Append(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            Record::Truncate(since) => {
                self.entries.split_off(&since);
            }
            Record::Purge(upto) => self.remove_prefix(upto),
        }
    }

    fn remove_prefix(&mut self, upto: LogId<NodeId>) {
        self.entries = self.entries.split_off(&(upto.index + 1));
        if self.last_purged.is_none_or(|purged| purged.index < upto.index) {
            self.last_purged = Some(upto);
        }
    }

    /// Appends `bytes` (whole records) and makes them durable.
    fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }

    /// Rewrites the record file with the purge point and the live entries only.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        if let Some(purged) = self.last_purged {
            encode_record(&Record::Purge(purged), &mut bytes)?;
        }
        for entry in self.entries.values() {
            encode_record(&Record::Append(entry.clone()), &mut bytes)?;
        }
        let path = self.dir.join(LOG_FILE);
        file::replace(&path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, replaying the record file.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = decode_records(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                cut_bytes = bytes.len() - valid,
                "raft log ends in a torn or corrupt record; cutting it off"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        let read_json = |name: &str| -> io::Result<Option<Vec<u8>>> { file::read_optional(&dir.join(name)) };
        let vote = match read_json(VOTE_FILE)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(io::Error::other)?),
            None => None,
        };
        let committed = match read_json(COMMITTED_FILE)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            None => None,
        };
        let mut inner =
            Inner { dir: dir.to_owned(), file, entries: BTreeMap::new(), last_purged: None, vote, committed };
        for record in records {
            inner.replay(record);
        }
        Ok(Self { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Runs `work` on the blocking pool with the log locked: writes fsync, which must not
    /// stall an async worker. The lock is held across that I/O, but only by this store's own
    /// operations.
    async fn on_blocking_pool<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Inner) -> io::Result<R> + Send + 'static,
    ) -> io::Result<R> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&mut inner.lock())).await.map_err(io::Error::other)?
    }

    /// Index of the last entry held (for tests and logs).
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.inner.lock();
        inner.entries.keys().next_back().copied().or(inner.last_purged.map(|id| id.index))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|entry| entry.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        let bytes = serde_json::to_vec(&vote).map_err(|error| StorageIOError::write_vote(&error))?;
        self.on_blocking_pool(move |inner| {
            file::replace(&inner.dir.join(VOTE_FILE), &bytes)?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
        .map_err(|error| StorageIOError::write_vote(&error).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&committed).map_err(|error| StorageIOError::write(&error))?;
        self.on_blocking_pool(move |inner| {
            file::replace(&inner.dir.join(COMMITTED_FILE), &bytes)?;
            inner.committed = committed;
            Ok(())
        })
        .await
        .map_err(|error| StorageIOError::write(&error).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        for entry in &entries {
            let record = Record::Append(entry.clone());
            encode_record(&record, &mut bytes).map_err(|error| StorageIOError::write_logs(&error))?;
        }
        let written = self
            .on_blocking_pool(move |inner| {
                inner.write_durably(&bytes)?;
                for entry in entries {
                    inner.entries.insert(entry.log_id.index, entry);
                }
                Ok(())
            })
            .await;
        let result = match &written {
            Ok(()) => Ok(()),
            Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
        };
        callback.log_io_completed(result);
        written.map_err(|error| StorageIOError::write_logs(&error).into())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        encode_record(&Record::Truncate(log_id.index), &mut bytes)
            .map_err(|error| StorageIOError::write_logs(&error))?;
        self.on_blocking_pool(move |inner| {
            inner.write_durably(&bytes)?;
            inner.entries.split_off(&log_id.index);
            Ok(())
        })
        .await
        .map_err(|error| StorageIOError::write_logs(&error).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.on_blocking_pool(move |inner| {
            inner.remove_prefix(log_id);
            inner.rewrite()
        })
        .await
        .map_err(|error| StorageIOError::write_logs(&error).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::raft::EventBatch;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(EventBatch::default()),
        }
    }

    fn write(store: &LogStore, entries: &[Entry<TypeConfig>]) {
        let mut inner = store.inner.lock();
        let mut bytes = Vec::new();
        for entry in entries {
            encode_record(&Record::Append(entry.clone()), &mut bytes).unwrap();
            inner.entries.insert(entry.log_id.index, entry.clone());
        }
        inner.write_durably(&bytes).unwrap();
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.inner.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn appends_truncations_purges_and_votes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        write(&store, &(1..=10).map(|index| entry(1, index)).collect::<Vec<_>>());
        store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 8)).await.unwrap();
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.unwrap();
        write(&store, &[entry(2, 8)]);
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
        drop(store);

        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&reopened), vec![4, 5, 6, 7, 8]);
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(3));
        assert_eq!(state.last_log_id, Some(LogId::new(CommittedLeaderId::new(2, 1), 8)));
        assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        write(&store, &[entry(1, 1), entry(1, 2)]);
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A third record cut in the middle, then garbage: a crash during the write.
        let mut torn = Vec::new();
        encode_record(&Record::Append(entry(1, 3)), &mut torn).unwrap();
        torn.truncate(torn.len() / 2);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn).unwrap();
        drop(file);

        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        write(&store, &[entry(1, 3)]);
        drop(store);
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn a_flipped_bit_ends_the_replay() {
        let mut bytes = Vec::new();
        encode_record(&Record::Append(entry(1, 1)), &mut bytes).unwrap();
        let first = bytes.len();
        encode_record(&Record::Append(entry(1, 2)), &mut bytes).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        let (records, valid) = decode_records(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(valid, first);
    }
}
