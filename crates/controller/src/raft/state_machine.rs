//! The raft state machine of a controller: applies committed [`EventBatch`]es to the
//! [`ControllerState`] in log order, and keeps the latest snapshot in `raft-snapshot.json`
//! under the data directory so a restart resumes from it (then replays the log after it).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError,
    StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::file;
use super::{Applied, NodeId, SharedState, StorageError, TypeConfig};
use crate::state::ControllerState;

/// Name of the snapshot file.
const SNAPSHOT_FILE: &str = "raft-snapshot.json";

/// A snapshot as stored: its metadata and the state it captured (as JSON bytes, the same
/// bytes sent to a follower that lags behind the purged log).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// What the state machine tracks besides the state itself.
#[derive(Debug, Default)]
struct Progress {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The controller's raft state machine; clones share it (a clone is the snapshot builder).
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    dir: PathBuf,
    state: SharedState,
    progress: Arc<Mutex<Progress>>,
}

/// Decodes a snapshot's state and checks it before it replaces the live one.
fn decode_state(data: &[u8]) -> Result<ControllerState, String> {
    let state: ControllerState = serde_json::from_slice(data).map_err(|error| error.to_string())?;
    state.check_invariants()?;
    Ok(state)
}

impl StateMachineStore {
    /// Opens the state machine under `dir`, starting from the stored snapshot if there is one.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut progress = Progress::default();
        let mut state = ControllerState::default();
        if let Some(bytes) = file::read_optional(&dir.join(SNAPSHOT_FILE))? {
            let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
            state = decode_state(&stored.data).map_err(std::io::Error::other)?;
            progress.last_applied = stored.meta.last_log_id;
            progress.last_membership = stored.meta.last_membership.clone();
            progress.snapshot = Some(stored);
        }
        Ok(Self {
            dir: dir.to_owned(),
            state: Arc::new(RwLock::new(state)),
            progress: Arc::new(Mutex::new(progress)),
        })
    }

    /// The applied state, shared with the request handlers.
    pub fn shared_state(&self) -> SharedState {
        Arc::clone(&self.state)
    }

    /// Writes `stored` to the snapshot file, replacing the previous one atomically, on the
    /// blocking pool (it fsyncs).
    async fn persist(&self, stored: &StoredSnapshot) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(stored).map_err(std::io::Error::other)?;
        let path = self.dir.join(SNAPSHOT_FILE);
        tokio::task::spawn_blocking(move || file::replace(&path, &bytes))
            .await
            .map_err(std::io::Error::other)?
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, meta) = {
            // The state and progress are read together so the snapshot is of one log point.
            let state = self.state.read();
            let mut progress = self.progress.lock();
            progress.snapshots_built += 1;
            let data =
                serde_json::to_vec(&*state).map_err(|error| StorageIOError::read_state_machine(&error))?;
            let snapshot_id = match progress.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, progress.snapshots_built),
                None => format!("0-0-{}", progress.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: progress.last_applied,
                last_membership: progress.last_membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        self.persist(&stored)
            .await
            .map_err(|error| StorageIOError::write_snapshot(Some(stored.meta.signature()), &error))?;
        self.progress.lock().snapshot = Some(stored);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let progress = self.progress.lock();
        Ok((progress.last_applied, progress.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write();
        let mut progress = self.progress.lock();
        let mut applied = Vec::new();
        for entry in entries {
            progress.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for event in &batch.events {
                        state.apply(event);
                    }
                    debug_assert_eq!(state.check_invariants(), Ok(()));
                }
                EntryPayload::Membership(membership) => {
                    progress.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            applied.push(Applied);
        }
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let installed = decode_state(&data).map_err(|error| {
            StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(error))
        })?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.persist(&stored)
            .await
            .map_err(|error| StorageIOError::write_snapshot(Some(stored.meta.signature()), &error))?;
        let mut state = self.state.write();
        let mut progress = self.progress.lock();
        *state = installed;
        progress.last_applied = meta.last_log_id;
        progress.last_membership = meta.last_membership.clone();
        progress.snapshot = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let progress = self.progress.lock();
        Ok(progress.snapshot.as_ref().map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}
